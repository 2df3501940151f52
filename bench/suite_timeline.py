"""Where the suite's time goes, from a timeline that tests/conftest.py writes when
ADAPTBENCH_TEST_TIMELINE names a file:

    ADAPTBENCH_TEST_TIMELINE=/tmp/t.jsonl make test
    python -m bench.suite_timeline /tmp/t.jsonl

prints each worker's busy seconds and idle tail, and the tests with the most CPU seconds
(the worker's and its waited-for children's; a server or cluster started elsewhere is not
counted)."""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("timeline", type=Path)
    ap.add_argument("--top", type=int, default=30)
    args = ap.parse_args(argv)
    rows = [json.loads(line) for line in args.timeline.read_text().splitlines() if line.strip()]
    if not rows:
        raise SystemExit(f"{args.timeline}: no tests recorded")
    t0 = min(r["start"] for r in rows)
    end = max(r["start"] + r["s"] for r in rows)
    print(f"{len(rows)} tests, {end - t0:.0f} s from the first start to the last end, "
          f"{sum(r['cpu_s'] for r in rows):.0f} CPU s counted")
    workers = defaultdict(list)
    for r in rows:
        workers[r["worker"]].append(r)
    for w, rs in sorted(workers.items()):
        last = max(r["start"] + r["s"] for r in rs) - t0
        print(f"  {w}: {len(rs)} tests, busy {sum(r['s'] for r in rs):.0f} s, "
              f"CPU {sum(r['cpu_s'] for r in rs):.0f} s, last ends at {last:.0f} s "
              f"(idle tail {end - t0 - last:.0f} s)")
    print(f"\nmost CPU seconds (top {args.top}):")
    for r in sorted(rows, key=lambda r: -r["cpu_s"])[:args.top]:
        print(f"  {r['cpu_s']:7.1f} CPU s {r['s']:7.1f} s  {r['worker']:>4} "
              f"at {r['start'] - t0:6.0f} s  {r['test']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
