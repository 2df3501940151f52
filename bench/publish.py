"""Publish the benchmark's output: copy bench/out/demo.json and bench/out/perf.json (each
with its machine, date and commit) into docs/measured/, where the results page reads them,
and put the demo's decision summary and accuracy table into the README's sample.

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


def readme_sample(demo: dict) -> str:
    m = demo["measured"]
    return (f"{START}\nMeasured on {m['machine']}, {m['date']}, commit `{m['commit']}` "
            f"(`{m['command']}`, {demo['wall_s']['total'] / 60:.0f} min):\n\n"
            f"{demo['sample']['decision']}\n\n{demo['sample']['accuracy']}\n{END}")


def main() -> int:
    MEASURED.mkdir(parents=True, exist_ok=True)
    published = []
    for name in ("demo.json", "perf.json"):
        src = OUT / name
        if not src.is_file():
            continue
        data = json.loads(src.read_text(encoding="utf-8"))
        if not {"machine", "date", "commit"} <= set(data.get("measured") or {}):
            print(f"bench.publish: {src} does not say where and when it was measured; skipped",
                  file=sys.stderr)
            continue
        shutil.copyfile(src, MEASURED / name)
        published.append(name)
        if name == "demo.json":
            readme = ROOT / "README.md"
            text = readme.read_text(encoding="utf-8")
            i, j = text.index(START), text.index(END) + len(END)
            text = text[:i] + readme_sample(data) + text[j:]
            readme.write_text(text, encoding="utf-8")
    print(f"published {', '.join(published) or 'nothing'} to {MEASURED}")
    return 0 if published else 1


if __name__ == "__main__":
    raise SystemExit(main())
