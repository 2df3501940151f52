"""The memory model's activation count against what autograd really saves: every tensor a
LLaMA's forward pass saves for backward is counted (torch's saved-tensor hooks, each storage
once, parameters left out), and the difference between a 4-layer and a 2-layer model, per
token and layer, is compared with harness.cost.memory.saved_per_token for full tuning and
LoRA, in float32 and under bf16 autocast. The layers have SmolLM2-135M's shapes (random
weights, a small vocabulary); on the bundled model itself the count agreed within 1%
(docs/cost-model.md)."""

from __future__ import annotations

import pytest
import torch

from harness.cost.memory import Dims, MemoryPlan, saved_per_token

BATCH, SEQ = 2, 48
SHAPES = {"hidden_size": 576, "intermediate_size": 1536, "num_attention_heads": 9,
          "num_key_value_heads": 3, "vocab_size": 1024, "tie_word_embeddings": True}


def model(layers: int, trains: str):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    m = LlamaForCausalLM(LlamaConfig(**SHAPES, num_hidden_layers=layers,
                                     attn_implementation="sdpa")).float()
    if trains == "adapter":
        from peft import LoraConfig, get_peft_model

        m = get_peft_model(m, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05,
                                         target_modules="all-linear"))
    return m.train()


def saved_bytes(m, autocast: bool) -> int:
    """Bytes of activations the forward pass (with the loss) saves for backward."""
    params = {p.untyped_storage().data_ptr() for p in m.parameters()}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params and (SEQ in t.shape or (t.dim() and t.shape[0] == BATCH * SEQ)):
            seen[ptr] = max(seen.get(ptr, 0), t.untyped_storage().nbytes())
        return t

    ids = torch.randint(10, 1000, (BATCH, SEQ))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            m(input_ids=ids, labels=ids)
    return sum(seen.values())


@pytest.mark.parametrize("trains", ["all", "adapter"])
@pytest.mark.parametrize("autocast", [False, True])
def test_saved_activations_match_the_count(trains, autocast):
    per_layer = (saved_bytes(model(4, trains), autocast)
                 - saved_bytes(model(2, trains), autocast)) / 2 / (BATCH * SEQ)
    plan = MemoryPlan(trains=trains, regime="amp" if autocast else "float32", adapter_rank=8)
    counted = saved_per_token(Dims.from_config({**SHAPES, "num_hidden_layers": 2}), plan)
    assert counted == pytest.approx(per_layer, rel=0.02), (counted, per_layer)
