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

from harness.cost.memory import GB, Dims, Plan, activation_elements, predict

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
    mem = predict(d, Plan(trains="full", regime="master"))
    assert states(mem) == 16 * d.params  # exactly
    assert states(mem) / GB == pytest.approx(128.5, rel=0.01)  # "an 8B model needs ~128 GB"


def test_deepspeed_zero3_per_gpu_formula():
    d = Dims.from_config(LLAMA31_8B)
    largest = d.vocab * d.hidden  # the largest single module: the embedding (or the LM head)
    for gpus in (2, 4, 8):
        deepspeed = 4 * largest + 18 * d.params / gpus
        ours = predict(d, Plan(trains="full", regime="amp", shards=gpus))
        assert states(ours) + ours.terms["gathered"] == pytest.approx(deepspeed, rel=0.10)


@pytest.mark.parametrize("regime,trains,table_gb", [
    ("amp", "full", 120),  # Full (bf16 or fp16), 32 bits
    ("bf16", "full", 60),  # Full (pure_bf16)
    ("bf16", "adapter", 16),  # Freeze/LoRA, 16 bits
    ("int8", "adapter", 10),  # QLoRA, 8 bits
    ("nf4", "adapter", 6),  # QLoRA, 4 bits
])
def test_llama_factory_hardware_table(regime, trains, table_gb):
    d = Dims.from_config(LLAMA2_7B)
    adapters = 2 * 32 * 8 * 4096 * 7 if trains == "adapter" else 0  # rank 8 on 7 linears
    mem = predict(d, Plan(trains=trains, regime=regime, adapter_params=adapters, batch=1,
                          seq=1024, checkpointing=True))
    assert mem.total / GB == pytest.approx(table_gb, rel=0.25), mem.gb()


def test_checkpointing_keeps_one_layer_and_fused_attention_drops_the_scores():
    d = Dims.from_config(LLAMA31_8B)
    tokens, logits = 2048, 2048 * d.vocab * 4 * 2  # float32 logits and their gradient
    layer = activation_elements(d, tokens, fused=True) * tokens * 2  # bf16
    plain = predict(d, Plan(trains="full", seq=tokens)).terms["activations"]
    ckpt = predict(d, Plan(trains="full", seq=tokens, checkpointing=True)).terms["activations"]
    assert plain == d.layers * layer + logits
    assert ckpt == d.layers * d.hidden * tokens * 2 + layer + logits  # inputs + one layer
    assert plain - logits > 10 * (ckpt - logits)
    unfused = activation_elements(d, 2048, fused=False) - activation_elements(d, 2048, True)
    assert unfused == d.heads * 2048  # the attention probabilities, per token


def test_sharding_divides_the_model_states():
    d = Dims.from_config(LLAMA31_8B)
    one = predict(d, Plan(trains="full", regime="amp"))
    two = predict(d, Plan(trains="full", regime="amp", shards=2))
    assert states(two) == pytest.approx(states(one) / 2)
