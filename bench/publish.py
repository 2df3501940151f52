"""Publish the benchmark's output: copy bench/out/demo*.json (one per CPU class: demo.json in
bfloat16, demo-float32.json) into docs/measured/, and bench/out/perf.json there as one file
per section it holds (bench-<section>.json, each with its machine, date, commit and checks:
a later `make bench BENCH_ARGS="--only <section>"` replaces that section alone), where the
results page reads them; put the demo's time on each CPU class, its decision summary and its
accuracy table into the README's sample.

    python -m bench.publish        (after make demo and/or make bench)
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT, MEASURED = ROOT / "bench" / "out", ROOT / "docs" / "measured"
START, END = "<!-- sample:start -->", "<!-- sample:end -->"


def _minutes(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s"


def demo_times(demos: list[dict]) -> str:
    """One line per CPU class: how long `make demo` took, on which machine, in which dtype."""
    lines = []
    for d in demos:
        m = d["measured"]
        cpu = m.get("cpu_class", "CPU class not recorded")
        lines.append(f"- {m.get('compute', 'unknown dtype')} compute ({cpu}): "
                     f"**{_minutes(d['wall_s']['total'])}** on {m['machine']}, {m['date']}, "
                     f"commit `{m['commit']}`")
    return "`make demo` took, per CPU class:\n\n" + "\n".join(lines)


def readme_sample(demo: dict, demos: list[dict] | None = None) -> str:
    """The README's sample: the demo's decision summary and accuracy table (from `demo`),
    and the demo's time on each CPU class measured (`demos`, by default `demo` alone)."""
    m = demo["measured"]
    return (f"{START}\n{demo_times(demos or [demo])}\n\n"
            f"The sample below: {m['machine']}, {m['date']}, commit `{m['commit']}` "
            f"(`{m['command']}`, {m.get('compute', 'unknown dtype')}):\n\n"
            f"{demo['sample']['decision']}\n\n{demo['sample']['accuracy']}\n{END}")


def perf_sections(perf: Path) -> list[str]:
    """bench/out/perf.json split into docs/measured/bench-<section>.json; their names."""
    if not perf.is_file():
        return []
    data = json.loads(perf.read_text(encoding="utf-8"))
    if not {"machine", "date", "commit"} <= set(data.get("measured") or {}):
        print(f"bench.publish: {perf} does not say where and when it was measured; skipped",
              file=sys.stderr)
        return []
    names = []
    for section, seconds in (data.get("section_s") or {}).items():
        if section not in data:
            continue
        out = {"title": f"make bench: {section}", "measured": data["measured"],
               "model": data.get("model"), "threads": data.get("threads"),
               section: data[section], "seconds": {section: seconds},
               "checks": [c for c in data.get("checks", []) if c.get("section") == section]}
        path = MEASURED / f"bench-{section}.json"
        path.write_text(json.dumps(out, indent=2), encoding="utf-8")
        names.append(path.name)
    return names


def main() -> int:
    MEASURED.mkdir(parents=True, exist_ok=True)
    published: list[str] = []
    if (OUT / "items.png").is_file():  # the explorer on the demo sweep (getting-started.md)
        shutil.copyfile(OUT / "items.png", MEASURED / "items.png")
        published.append("items.png")
    published += perf_sections(OUT / "perf.json")
    for src in sorted(OUT.glob("demo*.json")):
        if not src.is_file():
            continue
        data = json.loads(src.read_text(encoding="utf-8"))
        if not {"machine", "date", "commit"} <= set(data.get("measured") or {}):
            print(f"bench.publish: {src} does not say where and when it was measured; skipped",
                  file=sys.stderr)
            continue
        shutil.copyfile(src, MEASURED / src.name)
        published.append(src.name)
    # demo.json (bfloat16) first: its sample goes into the README; then the other classes
    paths = sorted(MEASURED.glob("demo*.json"), key=lambda p: (p.name != "demo.json", p.name))
    demos = [json.loads(p.read_text(encoding="utf-8")) for p in paths]
    if any(n.startswith("demo") for n in published) and demos:
        readme = ROOT / "README.md"
        text = readme.read_text(encoding="utf-8")
        i, j = text.index(START), text.index(END) + len(END)
        text = text[:i] + readme_sample(demos[0], demos) + text[j:]
        readme.write_text(text, encoding="utf-8")
    print(f"published {', '.join(published) or 'nothing'} to {MEASURED}")
    return 0 if published else 1


if __name__ == "__main__":
    raise SystemExit(main())
