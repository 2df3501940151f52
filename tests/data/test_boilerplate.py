"""Boilerplate out before questions are made or anything is indexed: a folder whose pages
carry a navigation bar, a repeated footer and code blocks makes no question from them,
and generation.json counts what was dropped. Templated facts are not boilerplate."""

from __future__ import annotations

import json

from harness.data.boilerplate import BoilerplateSettings, strip_boilerplate
from harness.types import Document
from tests.data.test_generate import _make_task, corpus

FOOTER = ("Copyright (C) 2024 The Lighthouse Society. Permission is granted to copy this "
          "page under the terms of the GNU Free Documentation License.")


def _pages(fence: str = "```") -> list[Document]:
    docs = corpus()
    out = []
    for i, d in enumerate(docs):
        nxt, prev = docs[(i + 1) % len(docs)].title, docs[i - 1].title
        text = (f"Next: {nxt} lighthouse, Previous: {prev} lighthouse, Up: Coastal lights [Index]\n\n"
                f"{d.text}\n\n"
                f"{fence}\nkeeper_log += storm_count(ledger) when the lamp_{i} is lit\n{fence}\n\n"
                f"{FOOTER}")
        out.append(Document(id=d.id, text=text, title=d.title))
    return out


def test_recurring_lines_go_and_facts_stay():
    pages = _pages(fence="")
    kept, counts = strip_boilerplate(pages)
    assert counts["lines_dropped"] == 2 * len(pages)  # the navigation bar and the footer
    for before, after in zip(corpus(), kept):
        assert "Next:" not in after.text and "Copyright" not in after.text
        for line in before.text.split("\n\n"):  # every fact line is still there
            assert line in after.text
    # templated facts (same words, different names and numbers) are not boilerplate
    facts = [Document(f"d{i}", f"Price: {10 + i} EUR\n\nThe tower at {p} is tall.", p)
             for i, p in enumerate(["Varne", "Dunmore", "Kestrel", "Halden", "Orrin"])]
    same, c = strip_boilerplate(facts)
    assert [d.text for d in same] == [d.text for d in facts] and c["lines_dropped"] == 0
    # off, or too few documents to tell: nothing is dropped
    assert strip_boilerplate(pages, BoilerplateSettings(enabled=False))[0] == pages
    assert strip_boilerplate(pages[:2])[1]["lines_dropped"] == 0


def test_make_task_asks_nothing_of_navigation_footers_or_code(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    for d in _pages():
        (folder / d.id).write_text(f"# {d.title}\n\n{d.text}\n")
    res = _make_task(tmp_path, "corpus_path=docs", "out_dir=out", "n_questions=40")
    assert res.returncode == 0, res.stderr[-3000:]
    rows = [json.loads(x) for x in (tmp_path / "out" / "examples.jsonl").read_text().splitlines()]
    how = json.loads((tmp_path / "out" / "generation.json").read_text())
    assert rows
    for r in rows:
        text = r["question"] + " ".join(r["choices"])
        assert not any(s in text for s in ("Next:", "Copyright", "Permission", "+=", "lamp_"))
    bp = how["corpus"]["boilerplate"]
    assert bp["lines_dropped"] == 24 and bp["chars_dropped"] > 0 and bp["examples"]
    assert how["counts"]["dropped_code"] == 12  # the code line of each page
