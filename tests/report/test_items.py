"""The report's item explorer and items.parquet. Every count the explorer shows in headless
Chromium is checked against the same count made with pandas straight from the runs'
predictions.jsonl; the pair filter against the paired table's McNemar counts; a rag row's
passages against what the run retrieved; and a 5,000-item x 10-variant study opens one page
of rows at a time (its load time is measured by `make bench`, section items)."""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path
from urllib.parse import quote

import pandas as pd

from bench.items_scale import write_sweep
from harness.report.items import fragment, item_frame, views
from harness.report.render import write_items_page
from harness.report.variants import make_variants
from harness.run_folders import read_runs
from tests.report.browser import chromium_page, needs_chromium, open_items

VARIANTS = ["prompt", "rag", "lora", "full", "hybrid"]


def _predictions(sweep: Path) -> pd.DataFrame:
    """One row per complete run's item: id, variant (the quick sweep's variants are its
    strategies), right, and what the explorer searches and filters on."""
    rows = []
    for d in sorted(sweep.iterdir()):
        m = d / "metrics.json"
        if not m.is_file() or json.loads(m.read_text()).get("status") != "complete":
            continue
        variant = json.loads(m.read_text())["strategy"]
        for line in (d / "predictions.jsonl").read_text().splitlines():
            p = json.loads(line)
            chosen = p["choices"][p["choice"]] if p.get("choice") is not None else ""
            rows.append({"id": p["id"], "variant": variant,
                         "right": p["scores"]["choice_correct"] >= 0.5,
                         "text": " ".join([p["id"], p["question"], *p["gold"], chosen,
                                           p.get("output") or ""]).lower(),
                         "doc": p["source_ids"][0], "seen": p.get("source_in_train"),
                         "citations": [c["source_id"] for c in p["citations"]],
                         "sources": p["source_ids"], "choices": p["choices"]})
    return pd.DataFrame(rows)


def test_items_parquet_has_every_answer_of_every_variant(quick_sweep):
    frame = pd.read_parquet(quick_sweep / "items.parquet")
    preds = _predictions(quick_sweep)
    assert len(frame) == len(preds) == 5 * 72
    assert sorted(frame.variant.unique()) == sorted(VARIANTS)
    assert set(frame.split) == {"test"} and frame.correct.dtype == "boolean"
    merged = frame.merge(preds, on=["id", "variant"])
    assert (merged.correct == merged.right).all()
    rag = merged[merged.variant == "rag"]
    assert (rag.retrieved_ids.map(list) == rag.citations).all() and rag.retrieved_ids.map(len).min() > 0
    assert frame[frame.variant == "prompt"].retrieved_ids.map(len).max() == 0
    assert {"score.choice_correct", "score.recall_at_k", "seed", "output", "source_ids",
            "source_in_train"} <= set(frame.columns)
    md = (quick_sweep / "report.md").read_text()
    wide = preds.pivot(index="id", columns="variant", values="right")
    n = wide.sum(axis=1)
    assert (f"all right on {(n == 5).sum()}, all wrong on {(n == 0).sum()}, the variants "
            f"disagree on {((n > 0) & (n < 5)).sum()}") in md


@needs_chromium
def test_each_filter_shows_what_pandas_counts(quick_sweep):
    preds = _predictions(quick_sweep)
    wide = preds.pivot(index="id", columns="variant", values="right")
    n = wide.sum(axis=1)
    items = preds.drop_duplicates("id").set_index("id")
    doc = items.doc.value_counts().index[0]
    word = items.loc[items.index[0], "text"].split()[-1]  # a word of the first item's answers
    expected = {
        "#items": len(wide), "#items/disagree": int(((n > 0) & (n < 5)).sum()),
        "#items/all-wrong": int((n == 0).sum()), "#items/all-right": int((n == 5).sum()),
        f"#items/doc={quote(doc)}": int((items.doc == doc).sum()),
        "#items/seen=yes": int((items.seen == True).sum()),  # noqa: E712 (a column of bools)
        "#items/seen=no": int((items.seen == False).sum()),  # noqa: E712
        f"#items/q={quote(word)}": int(preds.groupby("id").text.apply(" ".join)
                                       .str.contains(word, regex=False).sum()),
        "#items/disagree/right=rag": int(((n > 0) & (n < 5) & wide.rag).sum()),
    }
    for a, b in itertools.permutations(VARIANTS, 2):
        expected[f"#items/right={a}/wrong={b}"] = int((wide[a] & ~wide[b]).sum())
    assert expected["#items/seen=yes"] + expected["#items/seen=no"] == 72
    assert expected["#items/seen=yes"] > 0 and expected["#items/disagree"] > 0
    url = (quick_sweep / "report.html").as_uri()
    with chromium_page() as page:
        got = {frag: open_items(page, url + frag) for frag in expected}
        shown = page.eval_on_selector_all("tr[data-item]", "rs => rs.length")
        open_items(page, url + "#items/sort=right")
        first = page.eval_on_selector("tr[data-item] td:last-child", "td => td.textContent")
        assert page.errors == []
    assert got == expected
    assert shown == expected[list(expected)[-1]]  # every matching row is drawn (under a page)
    assert first == f"{int(n.min())}/5"  # fewest right first


@needs_chromium
def test_the_paired_table_links_to_exactly_its_discordant_items(quick_sweep):
    url = (quick_sweep / "report.html").as_uri()
    md = (quick_sweep / "report.md").read_text().split("## Paired comparisons")[1]
    rows = [r.split("|") for r in md.split("\n\n")[2].splitlines()[2:]]
    mcnemar = {(r[1].strip(), r[2].strip()): tuple(int(x) for x in r[8].split("/")) for r in rows}
    assert len(mcnemar) == 10
    with chromium_page() as page:
        page.goto(url, wait_until="load")
        links = page.eval_on_selector_all(
            "table[data-table=pairs] tbody tr",
            "rs => rs.map(r => [r.cells[0].textContent, r.cells[1].textContent, "
            "[...r.querySelectorAll('a')].map(a => [a.textContent, a.getAttribute('href')])])")
        for a, b, anchors in links:
            assert [int(t) for t, _ in anchors] == list(mcnemar[(a, b)])
            assert [h for _, h in anchors] == [fragment(("right", a), ("wrong", b)),
                                               fragment(("right", b), ("wrong", a))]
        page.click("table[data-table=pairs] tbody tr:first-child a")  # a reader's click
        page.wait_for_function("location.hash.startsWith('#items/right=')")
        page.wait_for_selector("#items-root[data-ready=true]")
        total = int(page.get_attribute("[data-items-total]", "data-items-total"))
        right = page.eval_on_selector("select[data-control=right]", "s => s.value")
        assert page.errors == []
    assert total == mcnemar[(links[0][0], links[0][1])][0] and right == links[0][0]


@needs_chromium
def test_a_rag_row_opens_on_its_passages_with_the_gold_source_marked(quick_sweep):
    preds = _predictions(quick_sweep)
    rag = preds[preds.variant == "rag"].set_index("id")
    item = next(i for i, r in rag.iterrows() if len(r.citations) > 1 and r.sources[0] in r.citations)
    url = (quick_sweep / "report.html").as_uri()
    with chromium_page() as page:
        open_items(page, url + f"#items/q={quote(item)}")
        page.click(f"tr[data-item='{item}']")
        page.wait_for_selector(f"tr[data-detail='{item}']")
        hash_after = page.evaluate("location.hash")
        passages = page.eval_on_selector_all(
            f"tr[data-detail='{item}'] section[data-variant=rag] ol[data-passages] li",
            "ls => ls.map(l => [l.dataset.doc, l.dataset.gold])")
        logprobs = page.eval_on_selector_all(
            f"tr[data-detail='{item}'] section[data-variant=prompt] table[data-logprobs] tr",
            "rs => rs.length")
        tuned_note = page.text_content(f"tr[data-detail='{item}'] section[data-variant=lora]")
        page.goto("about:blank")
        open_items(page, url + hash_after)  # the link to an open row opens it again
        reopened = page.query_selector(f"tr[data-detail='{item}']") is not None
        assert page.errors == []
    gold = set(rag.loc[item, "sources"])
    assert [d for d, _ in passages] == rag.loc[item, "citations"]  # rank order
    assert [g == "true" for _, g in passages] == [d in gold for d, _ in passages]
    assert logprobs == len(rag.loc[item, "choices"])
    assert "cannot cite sources" in tuned_note
    assert hash_after.endswith("/open=" + quote(item)) and reopened


@needs_chromium
def test_a_bad_link_says_which_variant_it_lacks(quick_sweep):
    url = (quick_sweep / "report.html").as_uri()
    with chromium_page() as page:
        total = open_items(page, url + "#items/right=lroa")
        problem = page.text_content(".items-problem")
        assert page.errors == []
    assert total == 0 and "no variant named 'lroa'" in problem and "hybrid" in problem


@needs_chromium
def test_five_thousand_items_by_ten_variants_open_a_page_at_a_time(tmp_path):
    sweep = write_sweep(tmp_path / "big", n_items=5000, n_variants=10)
    runs = read_runs([sweep])
    variants = make_variants(runs)
    page_file = write_items_page(tmp_path / "items.html", views(variants, []),
                                 title="scale", metric="choice_accuracy")
    frame = item_frame(views(variants, []))
    wide = frame.pivot(index="id", columns="variant", values="correct").astype(bool)
    n = wide.sum(axis=1)
    with chromium_page() as page:
        t0 = time.perf_counter()
        total = open_items(page, page_file.as_uri())
        load_s = time.perf_counter() - t0
        drawn = page.eval_on_selector_all("tr[data-item]", "rs => rs.length")
        page.select_option("select[data-control=mode]", "disagree")
        page.wait_for_function("location.hash === '#items/disagree'")
        disagree = int(page.get_attribute("[data-items-total]", "data-items-total"))
        page.click("text=next ›")
        second = page.get_attribute("tr[data-item]", "data-item")
        assert page.errors == []
    print(f"5,000 x 10: {page_file.stat().st_size / 1e6:.1f} MB, opened in {load_s:.2f} s")
    assert total == 5000 and drawn == 100
    assert disagree == int(((n > 0) & (n < 10)).sum())
    assert second == sorted(wide.index[(n > 0) & (n < 10)])[100]
    assert load_s < 60  # a hang, not a timing target: make bench times it against 3 s


@needs_chromium
def test_items_above_the_cap_go_beside_the_report_and_its_links_follow(quick_sweep, tmp_path):
    from harness.report.cli import main as report_main

    assert report_main([str(quick_sweep), "report.items_inline_mb=0.01", "--out", str(tmp_path)]) == 0
    html = (tmp_path / "report.html").read_text()
    assert 'id="items-data"' not in html and 'data-items-elsewhere="items.html"' in html
    with chromium_page() as page:
        page.goto((tmp_path / "report.html").as_uri(), wait_until="load")
        href = page.get_attribute("table[data-table=pairs] tbody a", "href")
        count = int(page.text_content("table[data-table=pairs] tbody a"))
        page.click("table[data-table=pairs] tbody a")
        page.wait_for_selector("#items-root[data-ready=true]")
        total = int(page.get_attribute("[data-items-total]", "data-items-total"))
        assert page.errors == []
    assert href.startswith("items.html#items/right=") and total == count
    assert report_main([str(quick_sweep), "--out", str(tmp_path)]) == 0  # under the cap again
    assert not (tmp_path / "items.html").exists()
