from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from harness.cache import cached_dir, problem
from harness.models.loading import load_model
from harness.retrieval.embedder import _resolve_embedder_path


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

    assert cached_dir(target, build) == target
    assert (target / "weights.bin").read_text() == "ok" and (target / ".complete").exists()
    assert not (target / "half-written.bin").exists() and "incomplete cache entry" in caplog.text
    cached_dir(target, build)
    assert len(calls) == 1  # complete entries are reused


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete"])
def test_corrupted_cache_entry_is_detected_and_rebuilt(tmp_path, caplog, damage):
    target = tmp_path / "entry"
    calls = []

    def build(tmp):
        calls.append(tmp)
        (tmp / "weights.bin").write_bytes(bytes(range(256)) * 64)

    cached_dir(target, build)
    weights = target / "weights.bin"
    if damage == "truncate":
        weights.write_bytes(weights.read_bytes()[:100])
    elif damage == "flip":  # same size, one byte changed
        data = bytearray(weights.read_bytes())
        data[5000] ^= 0xFF
        weights.write_bytes(bytes(data))
    else:
        weights.unlink()
    cached_dir(target, build)
    assert len(calls) == 2 and "discarding cache entry" in caplog.text
    assert weights.read_bytes() == bytes(range(256)) * 64


def test_two_processes_filling_one_cache_entry_build_it_once(tmp_path):
    """Both wait on one lock; the entry is built once and is whole."""
    script = (
        "import sys, time, pathlib\n"
        "from harness.cache import cached_dir, problem\n"
        "def build(tmp):\n"
        "    (pathlib.Path(sys.argv[2]) / f'built-{sys.argv[3]}').write_text('x')\n"
        "    for i in range(20):\n"
        "        (tmp / f'part{i}').write_bytes(b'y' * 100000); time.sleep(0.02)\n"
        "cached_dir(pathlib.Path(sys.argv[1]), build)\n"
    )
    target, log = tmp_path / "entry", tmp_path / "log"
    log.mkdir()
    procs = [subprocess.Popen([sys.executable, "-c", script, str(target), str(log), str(i)])
             for i in range(2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    assert len(list(log.iterdir())) == 1
    assert problem(target) is None and len(list(target.glob("part*"))) == 20
