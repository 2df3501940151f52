"""`python -m harness.scoring.threshold DIR ...`: calibrate an embedder's stored semantic
threshold once, on the runs of tasks that have answer choices, for tasks that have none.

Pools the calibration pairs (harness.scoring.semantic) of every run under the given sweep
or run directories (their predictions.jsonl: outputs and choices), embeds them with the
embedder config given (default: conf/embedder/minilm.yaml), and prints the threshold, how
well it separates the pairs, and the two lines to put in the embedder's YAML.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path

from harness.retrieval import get_embedder
from harness.run_files import find_runs
from harness.scoring.semantic import best_threshold, calibration_pairs, pair_cosines
from harness.system import config_dir, group_config
from harness.types import Example


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m harness.scoring.threshold",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("dirs", nargs="+", type=Path, help="sweep or run directories")
    ap.add_argument("--embedder", default="minilm",
                    help="an embedder config name (conf/embedder/) or a YAML file")
    args = ap.parse_args(argv)
    path = Path(args.embedder)
    if path.is_file():
        cfg = group_config(path.parent.name, path.stem, [path.parent.parent])
    else:
        cfg = group_config("embedder", args.embedder, [config_dir()])
    if cfg is None:
        ap.error(f"no embedder config '{args.embedder}'")
    pairs, runs, used = [], [], 0
    for run in find_runs(args.dirs):
        preds = run / "predictions.jsonl"
        if not preds.is_file():
            continue
        rows = [json.loads(x) for x in preds.read_text(encoding="utf-8").splitlines() if x.strip()]
        exs = [Example(r["id"], r.get("question", ""), tuple(r["gold"]), tuple(r["choices"]))
               for r in rows]
        got = calibration_pairs(exs, [r.get("output") for r in rows])
        if got:
            runs.append(run)
            pairs += got
            used += sum(1 for _, _, m in got if m)
    if not pairs:
        print("calibrate: no run output names exactly one answer choice (runs need choices "
              "and answer.generate=true)", file=sys.stderr)
        return 2
    cos = pair_cosines(get_embedder(cfg).embed, pairs)
    pos = [c for c, m in cos if m]
    neg = [c for c, m in cos if not m]
    cut, bal, auc = best_threshold(pos, neg)
    print(f"{len(runs)} runs, {used} outputs naming one choice: {len(pos)} matching and "
          f"{len(neg)} other pairs")
    print(f"threshold {cut:.4f}  balanced accuracy {bal:.3f}  ROC AUC {auc:.3f}")
    print("\nfor the embedder's YAML:")
    print(f"semantic_threshold: {cut:.4f}")
    print(f'semantic_threshold_note: "calibrated {date.today()} on {used} outputs of '
          f'{len(runs)} runs (AUC {auc:.3f}, balanced accuracy {bal:.3f})"')
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
