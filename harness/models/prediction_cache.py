"""The in-process model's prediction cache: a call's results stored under a hash of the
model's identity, the method, every input and setting; an identical later call (a re-run of
a sweep into a new directory) reads them back, with the seconds measured and the work
counted when they were computed. `CACHE_METER` sums what such hits saved, so the runner can
charge a run the original predict time. (A served model caches each response instead:
harness.models.endpoint.)"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.cache import cached_dir
from harness.cost.work import METER

CACHE_FORMAT = 3  # bump when what a call returns, or how it is computed, changes


@dataclass
class CacheMeter:
    hits: int = 0
    misses: int = 0
    saved_s: float = 0.0  # seconds the hits took when computed, minus reading them now


CACHE_METER = CacheMeter()


def cached_call(cache: Path | None, kind: str, head: dict[str, Any], cls: type,
                compute: Callable[[], list]) -> list:
    """compute(), or what an identical earlier call (same `head`) stored under `cache`."""
    if cache is None:
        return compute()
    head = {"format": CACHE_FORMAT, **head}
    key = hashlib.sha256(json.dumps(head, sort_keys=True).encode()).hexdigest()[:24]
    fresh: dict[str, list] = {}

    def build(tmp: Path) -> None:
        t0 = time.perf_counter()
        with METER.scope() as work:
            fresh["r"] = compute()
        (tmp / "results.json").write_text(json.dumps({
            "seconds": time.perf_counter() - t0, "work": work,
            "results": [dataclasses.asdict(r) for r in fresh["r"]]}), encoding="utf-8")

    t0 = time.perf_counter()
    entry = cached_dir(Path(cache) / f"{kind}-{key}", build, what="prediction cache entry")
    if "r" in fresh:
        CACHE_METER.misses += 1
        return fresh["r"]
    data = json.loads((entry / "results.json").read_text(encoding="utf-8"))
    results = [cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in r.items()})
               for r in data["results"]]
    CACHE_METER.hits += 1
    CACHE_METER.saved_s += float(data["seconds"]) - (time.perf_counter() - t0)
    METER.add(data["work"])  # the work these results took when they were computed
    return results
