from __future__ import annotations

import pytest
import torch

from harness.models import _atomic_dir, load_model
from harness.retrieval import _resolve_embedder_path


def test_missing_model_package_says_what_to_do():
    with pytest.raises(FileNotFoundError, match="'nopkg' is not installed.*make setup"):
        load_model({"name_or_path": "gguf-package:nopkg/model.gguf", "device": "cpu"})
    with pytest.raises(FileNotFoundError, match="embedder.*make setup"):
        _resolve_embedder_path("package:nopkg/model")


def test_tiny_model_weights_follow_init_seed_only():
    a, tok = load_model({"name_or_path": "tiny-random", "device": "cpu", "init_seed": 0})
    b, _ = load_model({"name_or_path": "tiny-random", "device": "cpu", "init_seed": 0})
    c, _ = load_model({"name_or_path": "tiny-random", "device": "cpu", "init_seed": 1})
    wa, wb, wc = (m.get_input_embeddings().weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)
    assert tok.padding_side == "left" and tok.pad_token is not None


def test_incomplete_cache_entry_is_rebuilt(tmp_path, caplog):
    target = tmp_path / "entry"
    target.mkdir()
    (target / "half-written.bin").write_text("x")  # a crash left this, without .complete
    calls = []

    def build(tmp):
        calls.append(tmp)
        (tmp / "weights.bin").write_text("ok")

    assert _atomic_dir(target, build) == target
    assert (target / "weights.bin").read_text() == "ok" and (target / ".complete").exists()
    assert not (target / "half-written.bin").exists() and "incomplete cache entry" in caplog.text
    _atomic_dir(target, build)
    assert len(calls) == 1  # complete entries are reused
