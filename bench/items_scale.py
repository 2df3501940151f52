"""A synthetic sweep of the size a team's study reaches: N test items x V variants, each a
run folder as the runner writes it (metrics.json, config.yaml, predictions.jsonl), with
choices and their log-probabilities, generated answers, retrieved passages for the variants
that retrieve, per-item scores and an examples file's own fields. The item explorer's scale
test and `make bench --only items` read it through harness-report like any sweep.

    python -m bench.items_scale OUT_DIR [--items 5000] [--variants 10]
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import yaml

STRATEGIES = ("prompt", "rag", "lora", "full", "hybrid")
RETRIEVES = {"rag", "hybrid"}
WORDS = ("harbour ledger tariff quarry lantern meridian orchard cobalt vessel charter "
         "granary beacon cistern foundry parish tannery ferry mill archive toll").split()


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def write_sweep(out: Path, n_items: int = 5000, n_variants: int = 10, *, seed: int = 0,
                n_docs: int | None = None, k: int = 3) -> Path:
    """The sweep folder `out` with n_variants run folders (strategies cycled; the variants of
    one strategy differ in strategy.k) answering the same n_items four-choice questions."""
    rng = random.Random(seed)
    n_docs = n_docs or max(1, n_items // 3)
    docs = [f"doc-{d:05d}" for d in range(n_docs)]
    texts = {d: " ".join(_sentence(rng, 12) for _ in range(4)) for d in docs}
    items = []
    for i in range(n_items):
        doc = docs[i % n_docs]
        choices = [f"{rng.choice(WORDS)} {i}-{c}" for c in range(4)]
        items.append({"id": f"q{i:05d}", "question": f"Item {i}: {_sentence(rng, 10)[:-1]}?",
                      "gold": [choices[i % 4]], "choices": choices, "gold_choice": i % 4,
                      "source_ids": [doc], "source_in_train": i % 5 != 0,
                      "meta": {"difficulty": ("easy", "medium", "hard")[i % 3]}})
    out.mkdir(parents=True, exist_ok=True)
    for v in range(n_variants):
        strategy = STRATEGIES[v % len(STRATEGIES)]
        skill = 0.3 + 0.6 * v / max(1, n_variants - 1)
        _write_run(out / f"{v}_{strategy}_seed0", strategy, v, k, items, texts, skill, rng)
    return out


def _write_run(d: Path, strategy: str, v: int, k: int, items: list[dict], texts: dict,
               skill: float, rng: random.Random) -> None:
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.yaml").write_text(yaml.safe_dump(
        {"seed": 0, "strategy": {"name": strategy, "k": k + v // len(STRATEGIES)},
         "model": {"name_or_path": "m"}}), encoding="utf-8")
    right = 0
    docs = list(texts)
    with (d / "predictions.jsonl").open("w", encoding="utf-8") as f:
        for it in items:
            ok = rng.random() < skill
            right += ok
            choice = it["gold_choice"] if ok else (it["gold_choice"] + 1 + rng.randrange(3)) % 4
            logprobs = [round(-rng.uniform(5, 30), 5) for _ in range(4)]
            logprobs[choice] = round(max(logprobs) + rng.uniform(0.1, 2), 5)
            cited = []
            if strategy in RETRIEVES:
                ranked = ([it["source_ids"][0]] if ok else []) + rng.sample(docs, k)
                cited = [{"source_id": doc, "score": round(1 - r / 10, 5), "text": texts[doc]}
                         for r, doc in enumerate(dict.fromkeys(ranked)) if r < k]
            f.write(json.dumps({
                **{key: it[key] for key in ("id", "question", "gold", "choices", "gold_choice",
                                            "source_ids", "source_in_train", "meta")},
                "output": f"{it['choices'][choice]}, as the passage says.", "choice": choice,
                "choice_logprobs": logprobs, "split": "test",
                "scores": {"choice_correct": float(ok), "contains": float(ok)},
                "usage": {"latency_s": 0.2}, "citations": cited,
                "can_cite": strategy in RETRIEVES}) + "\n")
    (d / "metrics.json").write_text(json.dumps({
        "status": "complete", "strategy": strategy, "seed": 0, "n_examples": len(items),
        "task": "synthetic-scale", "split_hash": "s", "primary_metric": "choice_accuracy",
        "choice_accuracy": right / len(items), "seconds_per_query": 0.1, "build_s": 1.0,
        "retrieval_k": k if strategy in RETRIEVES else None, "can_cite": strategy in RETRIEVES,
        "trains": strategy in ("lora", "full", "hybrid"),
        "cost": {"hardware": "cpu", "usd_per_hour": 1.0, "api": {}}}), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--items", type=int, default=5000)
    ap.add_argument("--variants", type=int, default=10)
    args = ap.parse_args(argv)
    print(write_sweep(args.out, args.items, args.variants))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def bench_items(work: Path, n_items: int = 5000, n_variants: int = 10, loads: int = 3) -> dict:
    """The item explorer at scale: harness-report over a synthetic n_items x n_variants sweep
    (seconds; report.html and items.parquet sizes), then report.html opened in headless
    Chromium `loads` times (seconds until the explorer has drawn its first page: the
    median, target <= 3) and one filter applied (seconds until redrawn)."""
    import shutil
    import statistics
    import subprocess
    import sys
    import time

    from bench.browser import CHROMIUM, FLAGS

    work = work.resolve()  # its report is opened as a file:// URL
    shutil.rmtree(work, ignore_errors=True)
    sweep = write_sweep(work / "sweep", n_items, n_variants)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "harness.report.cli", str(sweep)], check=True,
                   capture_output=True)
    out = {"items": n_items, "variants": n_variants,
           "report_s": round(time.perf_counter() - t0, 2),
           "report_html_mb": round((sweep / "report.html").stat().st_size / 1e6, 2),
           "items_parquet_mb": round((sweep / "items.parquet").stat().st_size / 1e6, 2),
           "items_inline": not (sweep / "items.html").exists()}
    if CHROMIUM is None:
        return {**out, "browser": "no chromium on PATH: load time not measured"}
    from playwright.sync_api import sync_playwright

    url = (sweep / "report.html").as_uri()
    opened, filtered = [], []
    with sync_playwright() as p:
        for _ in range(loads):
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
            page = browser.new_page(viewport={"width": 1366, "height": 900})
            t0 = time.perf_counter()
            page.goto(url + "#items", wait_until="load")
            page.wait_for_selector("#items-root[data-ready=true]")
            opened.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            page.select_option("select[data-control=mode]", "disagree")
            page.wait_for_function("location.hash === '#items/disagree'")
            filtered.append(time.perf_counter() - t0)
            browser.close()
    return {**out, "open_s": round(statistics.median(opened), 3),
            "open_s_max": round(max(opened), 3), "filter_s": round(statistics.median(filtered), 3)}
