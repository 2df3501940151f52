"""What a trial's run says of itself, read from its metrics.json: the one reading the search
(to tell its study and choose) and the report's Tuning section (to show the trials) share."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.cost.prices import run_usd
from harness.run_files import STATUS_COMPLETE, read_json
from harness.search.select import item_se


@dataclass(frozen=True)
class Outcome:
    complete: bool
    value: float | None  # its validation primary metric
    cost_usd: float  # modelled build + predictions (NaN: unpriced)
    pruned: bool
    se: float = math.nan  # the value's standard error over the validation items
    trains: bool = False  # its strategy trains (changes the model's weights)

    @property
    def status(self) -> str:
        """complete | pruned | failed (not complete: failed, killed or still running)."""
        return "failed" if not self.complete else "pruned" if self.pruned else "complete"

    @classmethod
    def from_metrics(cls, m: dict[str, Any], run_dir: Path | None = None) -> Outcome:
        """From a run's metrics; with its folder, the value's standard error too."""
        complete = m.get("status") == STATUS_COMPLETE
        metric = m.get("primary_metric") or ""
        value = m.get(metric) if complete else None
        return cls(complete, float(value) if isinstance(value, int | float) else None,
                   run_usd(m) if complete else math.nan,
                   bool((m.get("search") or {}).get("pruned")),
                   item_se(run_dir, metric) if run_dir and complete and metric else math.nan,
                   bool(m.get("trains")))

    @classmethod
    def read(cls, run_dir: Path) -> Outcome:
        try:
            m = read_json(run_dir / "metrics.json")
        except (OSError, ValueError):
            return cls(False, None, math.nan, False)
        return cls.from_metrics(m, run_dir)
