"""A fake embedder whose cosines the tests set: each text maps to a unit vector."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def unit(angle_deg: float) -> np.ndarray:
    """A 2-d unit vector; two of them have cosine cos(angle difference)."""
    a = np.radians(angle_deg)
    return np.array([np.cos(a), np.sin(a), 0.0])


class FakeEmbed:
    """texts -> the vectors in `table`; any other text gets its own orthogonal direction
    (cosine 0 with everything else), so only the table's pairs are similar."""

    def __init__(self, table: Mapping[str, np.ndarray] | None = None, dim: int = 64) -> None:
        self.table, self.dim, self.others = dict(table or {}), dim, {}
        self.calls: list[list[str]] = []

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        rows = []
        for t in texts:
            if t in self.table:
                v = np.zeros(self.dim)
                v[: len(self.table[t])] = self.table[t]
            else:
                v = np.zeros(self.dim)
                v[3 + self.others.setdefault(t, len(self.others)) % (self.dim - 3)] = 1.0
            rows.append(v / np.linalg.norm(v))
        return np.array(rows, dtype=np.float32)
