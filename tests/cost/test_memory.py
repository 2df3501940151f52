"""The memory model against published figures, each with its stated tolerance:

- the ZeRO paper (Rajbhandari et al. 2020, section 3.1): mixed-precision Adam keeps 16 bytes
  per parameter of model states (2 fp16 weights + 2 fp16 gradients + 12 fp32 master weights,
  momentum and variance): exact;
- DeepSpeed's estimate_zero3_model_states_mem_needs without offload, per GPU: 4 bytes of the
  largest layer + 18 bytes per parameter / GPUs: within 10%;
- LLaMA-Factory's hardware table (README, "estimated", 7B column; its runs use gradient
  checkpointing by default, batch 1, cutoff 1024): within 25%.
"""

from __future__ import annotations

import pytest

from harness.cost.memory import GB, Dims, MemoryPlan, loss_bytes, predict, saved_per_token

LLAMA31_8B = {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
              "num_key_value_heads": 8, "head_dim": 128, "intermediate_size": 14336,
              "vocab_size": 128256, "tie_word_embeddings": False, "model_type": "llama"}
LLAMA2_7B = {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
             "num_key_value_heads": 32, "intermediate_size": 11008, "vocab_size": 32000,
             "tie_word_embeddings": False, "model_type": "llama"}
STATES = ("weights", "copies", "gradients", "optimizer")


def states(mem) -> float:
    return sum(v for k, v in mem.terms.items() if k in STATES)


def test_parameter_counts_match_the_published_sizes():
    assert Dims.from_config(LLAMA31_8B).params == pytest.approx(8.03e9, rel=0.005)
    assert Dims.from_config(LLAMA2_7B).params == pytest.approx(6.74e9, rel=0.005)


def test_zero_paper_sixteen_bytes_per_parameter():
    d = Dims.from_config(LLAMA31_8B)
    mem = predict(d, MemoryPlan(trains="all", regime="master"))
    assert states(mem) == 16 * d.params  # exactly
    assert states(mem) / GB == pytest.approx(128.5, rel=0.01)  # "an 8B model needs ~128 GB"


def test_deepspeed_zero3_per_gpu_formula():
    d = Dims.from_config(LLAMA31_8B)
    largest = d.vocab * d.hidden  # the largest single module: the embedding (or the LM head)
    for gpus in (2, 4, 8):
        deepspeed = 4 * largest + 18 * d.params / gpus
        ours = predict(d, MemoryPlan(trains="all", regime="amp", shards=gpus))
        assert states(ours) + ours.terms["gathered"] == pytest.approx(deepspeed, rel=0.10)


@pytest.mark.parametrize("regime,trains,table_gb", [
    ("amp", "all", 120),  # Full (bf16 or fp16), 32 bits
    ("bf16", "all", 60),  # Full (pure_bf16)
    ("bf16", "adapter", 16),  # Freeze/LoRA, 16 bits
    ("int8", "adapter", 10),  # QLoRA, 8 bits
    ("nf4", "adapter", 6),  # QLoRA, 4 bits
])
def test_llama_factory_hardware_table(regime, trains, table_gb):
    d = Dims.from_config(LLAMA2_7B)
    adapters = 2 * 32 * 8 * 4096 * 7 if trains == "adapter" else 0  # rank 8 on 7 linears
    mem = predict(d, MemoryPlan(trains=trains, regime=regime, adapter_params=adapters, batch=1,
                          seq=1024, checkpointing=True))
    assert mem.total / GB == pytest.approx(table_gb, rel=0.25), mem.gb()


def test_checkpointing_keeps_one_layer_and_fused_attention_drops_the_scores():
    d = Dims.from_config(LLAMA31_8B)
    tokens = 2048
    plan = MemoryPlan(trains="all", seq=tokens)  # amp: float32 residual stream, bf16 compute
    layer = saved_per_token(d, plan) * tokens
    loss = tokens * loss_bytes(d, plan)
    plain = predict(d, plan).terms["activations"]
    ckpt = predict(d, MemoryPlan(trains="all", seq=tokens, checkpointing=True)).terms["activations"]
    assert plain == d.layers * layer + loss
    assert ckpt == d.layers * d.hidden * tokens * 4 + layer + loss  # inputs + one layer
    assert plain - loss > 10 * (ckpt - loss)
    unfused = saved_per_token(d, MemoryPlan(trains="all", fused_attention=False), seq=2048) \
        - saved_per_token(d, plan)
    assert unfused == d.heads * 2048 * 2  # the attention probabilities, per token, bf16


def test_gradients_and_activations_peak_apart_unless_accumulated():
    d = Dims.from_config(LLAMA31_8B)
    one = predict(d, MemoryPlan(trains="all", seq=1024))
    kept = predict(d, MemoryPlan(trains="all", seq=1024, grads_kept=True))
    assert kept.total - one.total == pytest.approx(min(one.terms["gradients"],
                                                       one.terms["activations"]))


def test_sharding_divides_the_model_states():
    d = Dims.from_config(LLAMA31_8B)
    one = predict(d, MemoryPlan(trains="all", regime="amp"))
    two = predict(d, MemoryPlan(trains="all", regime="amp", shards=2))
    assert states(two) == pytest.approx(states(one) / 2)


def test_a_run_that_cannot_fit_stops_before_loading_in_one_line(tmp_path):
    """An 8B config.json and no weights: the check must stop the run before anything is
    loaded (loading would fail otherwise, on the missing weights)."""
    import json

    from harness.errors import ConfigError
    from harness.run.runner import run
    from tests.conftest import compose_cfg

    model = tmp_path / "llama-8b"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({**LLAMA31_8B, "architectures": ["LlamaForCausalLM"]}))
    base = ["strategy=full", "model=hf", f"model.name_or_path={model}", "model.dtype=float32",
            "task.n_entities=12"]
    with pytest.raises(ConfigError) as e:
        run(compose_cfg(base, tmp_path), tmp_path / "run")
    msg = str(e.value)
    assert "\n" not in msg and "would not fit: predicted peak" in msg
    assert "(every weight trained, float32)" in msg
    assert "GB available on cpu" in msg and "strategy=lora" in msg and "memory.check=false" in msg
    # the override runs it anyway: it gets as far as loading, which finds no weights
    with pytest.raises(Exception) as e2:
        run(compose_cfg([*base, "memory.check=false"], tmp_path), tmp_path / "run2")
    assert "would not fit" not in str(e2.value)


def test_plans_follow_the_strategy_config():
    from harness.run.memory_check import plan_of

    assert plan_of({"k_shot": 3}, half=True).trains == "none"
    lora = plan_of({"train": {"batch_size": 4, "grad_accum": 2}, "data": {"max_seq_len": 256},
                    "adapter": {"method": "lora", "r": 8, "dropout": 0.0}}, half=True)
    assert (lora.trains, lora.regime, lora.batch, lora.seq) == ("adapter", "amp", 4, 256)
    assert (lora.adapter_rank, lora.adapter_dropout, lora.grads_kept) == (8, False, True)
    assert (lora.residual_bytes, lora.compute_bytes) == (4.0, 2.0)
    qlora = plan_of({"train": {}, "adapter": {"quantize": "4bit"}}, half=False)
    assert qlora.regime == "nf4"
    full = plan_of({"train": {"batch_size": 8, "gradient_checkpointing": True}}, half=False)
    assert (full.regime, full.checkpointing, full.compute_bytes) == ("float32", True, 4.0)
