"""QLoRA on the tiny model: LoRA trained on a 4-bit (NF4, double-quant) copy of the base
through bitsandbytes on this CPU, served on the full-precision base, and exported merged
into that base (harness-export); and the fail-fast errors when 4-bit cannot run."""

from __future__ import annotations

import builtins
import json

import pytest
import torch

from harness.cost.work import Shape, param_count
from harness.errors import ConfigError
from harness.run.runner import run
from harness.tuning.methods import AdapterSettings, Method
from harness.tuning.quantize import QuantSettings, check_4bit, quantized_copy
from tests.conftest import compose_cfg

pytest.importorskip("bitsandbytes", reason="QLoRA needs bitsandbytes (make setup installs it)")

SMALL = ["model=tiny-random", "cache_dir=${results_dir}/cache", "task.n_entities=6",
         "task.n_paraphrases=1", "strategy=lora", "strategy.train.max_steps=4",
         "strategy.train.batch_size=4", "answer.generate=false",
         "strategy.measure_forgetting=false", "cost.model_time=false"]


def test_quantized_copy_packs_the_linear_weights_and_keeps_the_count(tmp_path):
    from harness.models.loading import load_model

    model, _ = load_model({"name_or_path": "tiny-random", "cache_dir": str(tmp_path)})
    q = quantized_copy(model, QuantSettings())
    packed = [p for p in q.parameters() if getattr(p, "quant_state", None) is not None]
    assert packed and all(p.dtype == torch.uint8 for p in packed)
    assert param_count(q.parameters()) == param_count(model.parameters())
    assert Shape.of(q).body_params == Shape.of(model).body_params
    # every linear of the blocks is 4-bit: 7 per block (q, k, v, o, gate, up, down)
    assert len(packed) == 7 * model.config.num_hidden_layers
    linear = sum(p.numel() for n, p in model.named_parameters() if "layers" in n and
                 n.endswith("proj.weight"))
    assert sum(p.numel() for p in packed) == linear // 2  # two 4-bit values per byte


def test_qlora_trains_and_serves_on_the_full_base(tmp_path):
    plain = run(compose_cfg(SMALL, tmp_path), tmp_path / "lora")
    m = run(compose_cfg([*SMALL, "strategy.adapter.quantize=4bit"], tmp_path), tmp_path / "qlora")
    assert m["status"] == "complete" and plain["status"] == "complete"
    fit, notes = m["fit"], m["fit"]["notes"]
    assert notes["method"]["quantize"] == "4bit" and notes["method"]["quant_type"] == "nf4"
    assert notes["train_precision"].startswith("QLoRA: 4-bit NF4 (double quant), bfloat16")
    assert notes["served_on"] == "the float32 base, adapter merged"
    # the same adapter shapes and parameter counts as plain LoRA, a different artifact
    assert fit["trainable_params"] == plain["fit"]["trainable_params"]
    assert fit["total_params"] == plain["fit"]["total_params"]
    assert notes["artifact_key"] != plain["fit"]["notes"]["artifact_key"]
    # trained: finite losses, 4 steps, and the weights it trained on were smaller
    first, last = notes["train_loss_first_last"]
    assert notes["train_steps"] == 4 and all(map(lambda x: x == x and x < 100, (first, last)))
    # the blocks' linear weights shrink from 4 bytes to half a byte each (the embeddings,
    # norms and adapters stay float32): 2 layers x (64x64 x2 + 64x32 x2 + 64x128 x3), less
    # the quantization constants of the 14 layers: a byte per block of 64 weights, and per
    # layer NF4's 16-value table, one float32 scale and double quant's 256-value table
    linear = 2 * (2 * 64 * 64 + 2 * 64 * 32 + 3 * 64 * 128)
    constants = linear / 64 + 14 * (16 * 4 + 4 + 256 * 4 + 4)
    saved = (plain["fit"]["notes"]["train_weights_mb"] - notes["train_weights_mb"]) * 2**20
    assert saved == pytest.approx(3.5 * linear - constants, abs=16)
    # its work is counted as 4-bit training, which the profile does not model
    assert m["build_work"]["train_passes/4bit"] == 4
    assert "train_passes/frozen" not in m["build_work"]
    assert m["versions"]["bitsandbytes"]
    # exported merged into the full-precision base it was served on, it scores what was measured
    from harness.export.cli import main as export_main

    assert export_main([str(tmp_path / "qlora"), "--out", str(tmp_path / "export"),
                        "--format", "merged", "--check"]) == 0
    parity = json.loads((tmp_path / "export" / "parity.json").read_text())
    assert parity["links"][0]["same_choice"] == 1.0 and parity["reproduces"]
    readme = (tmp_path / "export" / "README.md").read_text()
    assert "This QLoRA adapter was trained on a 4-bit copy" in readme


def test_qlora_without_bitsandbytes_fails_before_training(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_bnb(name, *args, **kwargs):
        if name == "bitsandbytes" or name.startswith("bitsandbytes."):
            raise ImportError("No module named 'bitsandbytes'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_bnb)
    with pytest.raises(ConfigError, match=r"needs bitsandbytes.*adaptbench\[qlora\]"):
        run(compose_cfg([*SMALL, "strategy.adapter.quantize=4bit"], tmp_path), tmp_path / "r")
    m = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert m["status"] == "failed" and m.get("fit") in (None, {})


def test_a_device_bitsandbytes_cannot_use_fails_with_the_reason():
    with pytest.raises(ConfigError, match="cannot run 4-bit layers on meta"):
        check_4bit(torch.device("meta"), QuantSettings())


@pytest.mark.parametrize("settings,message", [
    ({"quantize": "3bit"}, "unknown adapter.quantize '3bit'"),
    ({"quantize": "4bit", "method": "ia3"}, "set adapter.method=lora"),
    ({"quantize": "4bit", "quant_type": "int4"}, "unknown adapter.quant_type 'int4'"),
    ({"quantize": "4bit", "quant_compute_dtype": "float8"}, "unknown dtype 'float8'"),
])
def test_bad_quantization_settings_fail_clearly(settings, message):
    with pytest.raises(ConfigError, match=message):
        Method(AdapterSettings(**settings)).check(torch.device("cpu"))
