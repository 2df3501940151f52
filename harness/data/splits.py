"""Assign train/val/test splits, check them for leakage, and hash them."""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from harness.data.errors import TaskDataError
from harness.types import SPLITS, Example


def normalize_question(q: str) -> str:
    return re.sub(r"\s+", " ", q.strip().lower())


def assign_splits(
    examples: Sequence[Example],
    ratios: Sequence[float],
    seed: int,
    *,
    path: str | Path | None = None,
    lines: dict[str, int] | None = None,
) -> list[Example]:
    """Keep splits given in the data; otherwise split by seeded ratios (train, val, test)."""
    given = [e for e in examples if e.split]
    if given and len(given) != len(examples):
        missing = next(e for e in examples if not e.split)
        raise TaskDataError(
            "is missing while other examples set it",
            path=path,
            line=(lines or {}).get(missing.id),
            field="split",
            hint="give every example a split, or none and let task.split_ratios decide",
        )
    if given:
        return list(examples)
    if len(ratios) != 3 or any(r < 0 for r in ratios) or sum(ratios) <= 0:
        raise TaskDataError(
            f"task.split_ratios must be three non-negative numbers (train, val, test), got {list(ratios)}"
        )
    total = sum(ratios)
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    n_train = round(len(order) * ratios[0] / total)
    n_val = round(len(order) * ratios[1] / total)
    split_of = {}
    for rank, idx in enumerate(order):
        split_of[idx] = "train" if rank < n_train else "val" if rank < n_train + n_val else "test"
    return [replace(e, split=split_of[i]) for i, e in enumerate(examples)]


def check_splits(
    examples: Sequence[Example],
    *,
    task_name: str,
    require_val: bool,
    path: str | Path | None = None,
    lines: dict[str, int] | None = None,
) -> None:
    """Fail on empty splits and on test/val questions that also appear in train."""
    counts = {s: sum(e.split == s for e in examples) for s in SPLITS}
    needed = ("train", "val", "test") if require_val else ("train", "test")
    for s in needed:
        if counts[s] == 0:
            raise TaskDataError(
                f"task '{task_name}': split '{s}' is empty ({len(examples)} examples, counts {counts})",
                path=path,
                field="split",
                hint="add examples or change task.split_ratios",
            )
    train_q = {normalize_question(e.question): e for e in examples if e.split == "train"}
    for e in examples:
        if e.split in ("val", "test") and normalize_question(e.question) in train_q:
            other = train_q[normalize_question(e.question)]
            raise TaskDataError(
                f"{e.split} example '{e.id}' has the same question as train example "
                f"'{other.id}' (line {(lines or {}).get(other.id, '?')}): train/test leakage",
                path=path,
                line=(lines or {}).get(e.id),
                field="question",
                hint="remove or reword one of them",
            )


def split_hashes(examples: Sequence[Example]) -> tuple[str, dict[str, str]]:
    """sha256 of each split's sorted ids, and one over all three."""
    per = {}
    for s in SPLITS:
        ids = sorted(e.id for e in examples if e.split == s)
        per[s] = hashlib.sha256(json.dumps(ids).encode()).hexdigest()[:16]
    overall = hashlib.sha256(json.dumps(per, sort_keys=True).encode()).hexdigest()[:16]
    return overall, per
