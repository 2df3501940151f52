"""Safe loading: no remote code unless asked, no pickles in the project's caches, and no
torch.load without weights_only=True in the project's code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import harness.models.loading as models
from harness.run.runner import run
from tests.conftest import compose_cfg

ROOT = Path(__file__).resolve().parents[2]


class _Stop(Exception):
    pass


@pytest.mark.parametrize("setting, expected", [(None, False), (True, True)])
def test_remote_code_is_off_unless_turned_on(monkeypatch, setting, expected):
    seen = {}

    def fake_from_pretrained(path, **kwargs):
        seen.update(kwargs)
        raise _Stop

    monkeypatch.setattr(models.AutoTokenizer, "from_pretrained", fake_from_pretrained)
    cfg = {"name_or_path": "some-org/some-model", "device": "cpu"}
    if setting is not None:
        cfg["trust_remote_code"] = setting
    with pytest.raises(_Stop):
        models.load_model(cfg)
    assert seen["trust_remote_code"] is expected


def test_caches_hold_no_pickles(tmp_path):
    """A tuned run fills the model, embedding and artifact caches: every file is
    safetensors, JSON, NumPy without objects, or text, never a pickle or a torch zip."""
    cache = tmp_path / "cache"
    cfg = compose_cfg(["model=tiny-random", "strategy=hybrid", "strategy.mode=lora+rag",
                       "task.n_entities=30", "limit=5", "seen_eval_limit=5",
                       "strategy.train.max_steps=2", f"cache_dir={cache}"], tmp_path)
    run(cfg, tmp_path / "run")
    files = [p for p in cache.rglob("*") if p.is_file() and not p.name.endswith(".lock")]
    assert any(p.suffix == ".safetensors" for p in files) and any(p.suffix == ".npy" for p in files)
    for p in files:
        head = p.read_bytes()[:4]
        assert not head.startswith(b"\x80"), f"{p} looks like a pickle"
        assert head != b"PK\x03\x04", f"{p} looks like a torch.save zip"
        assert p.suffix not in (".bin", ".pt", ".pth", ".pkl", ".pickle"), p


def test_no_torch_load_without_weights_only():
    calls = []
    for path in [*ROOT.glob("harness/**/*.py"), *ROOT.glob("strategies/*.py"),
                 *ROOT.glob("bench/*.py")]:
        for m in re.finditer(r"torch\.load\(([^)]*)\)", path.read_text()):
            calls.append((path.name, "weights_only=True" in m.group(1)))
    assert all(ok for _, ok in calls), calls
