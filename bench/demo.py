"""`make demo`: the five strategies on the built-in task with the bundled model
(`harness-run -m experiment=quick`), then `harness-report`, then how long it all took and
where the time went:

    model work   loading the model (its first load includes the one-time GGUF conversion),
                 fit (training, indexing; forgetting is measured inside it) and predict
                 (test and seen questions)
    overhead     the machine profile's calibration, scoring, the report, and the rest
                 (process start-up, reading the task, Hydra)

Writes bench/out/demo.json (the phases, the decision summary and the accuracy table, with
the machine, date, commit, the dtype it computed in and the CPU class), or demo-float32.json
for a float32 demo (an AVX2-only CPU, or ADAPTBENCH_CPU_BF16=0); `python -m bench.publish`
copies them to docs/measured/.

    python -m bench.demo [extra harness-run overrides]
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"


def measured(command: str) -> dict[str, str]:
    """Where and when: the machine (CPU, cores, memory), the UTC date and the git commit."""
    from harness.system import git_commit, machine_id

    m = machine_id()
    machine = (f"{m.get('cpu') or 'CPU'}, {m.get('logical_cpus')} logical CPUs, "
               f"{m.get('memory_gb')} GB" + (f", {m['gpu']}" if m.get("gpu") else ""))
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    commit = (git_commit() or "unknown")[:12] + ("+changes" if dirty else "")
    return {"machine": machine, "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
            "commit": commit, "command": command}


def compute_class(sweep: Path) -> dict[str, str]:
    """What the demo computed in (the runs' recorded dtype) and what the CPU offers: the two
    CPU classes a user meets (AVX-512 with bf16 runs the demo in bfloat16; AVX2-only ones, or
    ADAPTBENCH_CPU_BF16=0, in float32) take very different times."""
    from harness.system import bf16_forced_off, cpu_bf16_native

    dtypes = {json.loads(p.read_text()).get("dtype") for p in sweep.glob("*/metrics.json")}
    dtypes.discard(None)
    native = cpu_bf16_native()
    cpu = ("AVX-512 with bf16" if native else "no native bf16 (AVX2-class)") + (
        ", float32 forced by ADAPTBENCH_CPU_BF16=0" if native and bf16_forced_off() else "")
    return {"compute": "/".join(sorted(dtypes)) or "unknown", "cpu_class": cpu}


def demo_file(compute: str) -> str:
    """bench/out/demo.json for a bfloat16 demo, demo-float32.json for a float32 one: the
    results page and the README keep one of each CPU class."""
    return "demo.json" if compute == "bfloat16" else f"demo-{compute.replace('/', '-')}.json"


def phases(sweep: Path, wall_s: float, report_s: float) -> dict[str, float]:
    """Seconds per phase over the sweep's runs, from their metrics.json."""
    runs = [json.loads(p.read_text()) for p in sorted(sweep.glob("*/metrics.json"))]
    load = sum(float(m.get("model_load_s") or 0) for m in runs)
    fit = sum(float(m.get("fit_s") or 0) for m in runs)
    predict = sum(float(m.get("predict_wall_s") or 0) + float(m.get("seen_s") or 0) for m in runs)
    calibration = sum(float((m.get("modelled") or {}).get("calibration_s") or 0) for m in runs)
    scoring = sum(sum((m.get("eval_s") or {}).values()) for m in runs)
    out = {"model load and conversion": load, "fit (training, indexing)": fit,
           "predict": predict, "calibration": calibration, "scoring": scoring,
           "report": report_s}
    out["start-up and the rest"] = max(0.0, wall_s - sum(out.values()))
    return {k: round(v, 1) for k, v in out.items()}


def breakdown(ph: dict[str, float], wall_s: float) -> list[str]:
    model = ph["model load and conversion"] + ph["fit (training, indexing)"] + ph["predict"]
    minutes, seconds = divmod(round(wall_s), 60)
    lines = [f"make demo took {minutes} min {seconds} s; where the time went:"]
    lines += [f"  {name:<28} {sec:8.1f} s  {sec / wall_s:6.1%}" for name, sec in ph.items()]
    lines += [f"  model work {model / wall_s:.0%}; calibration {ph['calibration'] / wall_s:.0%}; "
              f"everything else {(wall_s - model) / wall_s:.0%}"]
    return lines


def explorer_shot(sweep: Path, out: Path) -> dict:
    """A screenshot of the report's Items section in headless Chromium (the docs' picture of
    the explorer): the items the variants disagree on, the first of them opened. Also reads,
    for every pair of the paired table, the count its link opens against the McNemar count the
    table prints. {} when Chromium or Playwright is missing."""
    from urllib.parse import urljoin

    from bench.browser import CHROMIUM as chromium
    from bench.browser import FLAGS

    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return {}
    if chromium is None:
        return {}
    url = (sweep / "report.html").as_uri()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        page.goto(url, wait_until="load")
        links = page.eval_on_selector_all(
            "table[data-table=pairs] tbody a", "as => as.map(a => [a.textContent, a.getAttribute('href')])")
        checked = {}
        for text, href in links:
            target = urljoin(url, href)  # items.html#... when the items are beside the report
            if target.split("#")[0] == page.url.split("#")[0]:
                page.evaluate("h => { location.hash = h; }", "#" + target.split("#", 1)[1])
            else:
                page.goto(target, wait_until="load")
            page.wait_for_selector("#items-root[data-ready=true]")
            shown = int(page.get_attribute("[data-items-total]", "data-items-total"))
            checked[href] = {"table": int(text), "explorer": shown}
        page.goto(url.replace("report.html", links[0][1].split("#")[0] or "report.html")
                  + "#items/disagree", wait_until="load") if links else None
        page.wait_for_selector("#items-root[data-ready=true]")
        first = page.get_attribute("tr[data-item]", "data-item")
        if first:
            page.click(f"tr[data-item='{first}']")
        page.wait_for_selector("#items")
        page.evaluate("document.getElementById('items').scrollIntoView()")
        page.screenshot(path=str(out))
        total = page.eval_on_selector_all("table[data-items] th", "hs => hs.length")
        browser.close()
    return {"screenshot": out.name, "pairs_checked": checked, "columns": total - 3,
            "link_counts_match": all(c["table"] == c["explorer"] for c in checked.values())}


def main(argv: list[str] | None = None) -> int:
    extra = list(sys.argv[1:] if argv is None else argv)
    bin_dir = Path(sys.executable).parent
    sweep = ROOT / "results" / "multirun" / datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    t0 = time.perf_counter()
    run = subprocess.run([str(bin_dir / "harness-run"), "-m", "experiment=quick",
                          f"hydra.sweep.dir={sweep}", *extra],
                         env={**__import__("os").environ, "HYDRA_FULL_ERROR": "1"})
    t1 = time.perf_counter()
    report = subprocess.run([str(bin_dir / "harness-report"), str(sweep)])
    t2 = time.perf_counter()
    if run.returncode or report.returncode:
        return run.returncode or report.returncode
    ph = phases(sweep, t2 - t0, t2 - t1)
    lines = breakdown(ph, t2 - t0)
    print("\n" + "\n".join(lines))
    md = (sweep / "report.md").read_text(encoding="utf-8")
    decision = md.split("## Decision summary")[1].split("\n## ")[0].strip()
    accuracy = md.split("## Accuracy")[1].split("\n## ")[0].strip().split("\n\n")[-1]
    OUT.mkdir(parents=True, exist_ok=True)
    items = explorer_shot(sweep, OUT / "items.png")
    if items:
        print(f"Items explorer: {OUT / 'items.png'}; every paired-table link opens its McNemar "
              f"count: {items['link_counts_match']}")
    where = measured("make demo" + (" " + " ".join(extra) if extra else "")) | compute_class(sweep)
    (OUT / demo_file(where["compute"])).write_text(json.dumps({
        "title": f"make demo ({where['compute']})", "measured": where,
        "wall_s": {"total": round(t2 - t0, 1)}, "phases_s": ph,
        "shares": {k: round(v / (t2 - t0), 4) for k, v in ph.items()},
        "sample": {"decision": decision, "accuracy": accuracy}, "items": items}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
