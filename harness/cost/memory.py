"""Peak memory of a variant, predicted from the model's dimensions and the run's settings:
what decides whether a study fits one device, and which plan makes it fit.

Terms, in bytes (P: all parameters; T: the trainable ones; N: shards, FSDP / ZeRO-3):

  weights      P x bytes per weight of the precision (REGIMES) / N; 4-bit weights add
               their block scales (QUANT_OVERHEAD); embeddings and the LM head stay 16-bit
  copies       autocast's 16-bit copies of float32 weights, kept for the forward pass
  gradients    T x bytes per gradient / N
  optimizer    AdamW: two moments per trainable parameter (+ a float32 master copy where
               the weights themselves are 16-bit) / N
  gathered     FSDP / ZeRO-3: the full 16-bit weights of the unit being computed, and the
               next one prefetched (2 x the largest decoder layer)
  activations  what the backward pass keeps, per token and decoder layer (counted as
               Korthikanti et al. 2022 count GPT's 34 bytes/token/hidden, here for a LLaMA
               block: two norm inputs, the normed inputs of attention and the MLP, q, k, v,
               the attention output, gate, up, act(gate) and their product); the attention
               probabilities (heads x sequence per token) only where attention is not
               fused. Checkpointed: each layer's input, and one layer's full set while it
               is recomputed. Plus the logits and their gradient in float32 for the loss.
  kv_cache     generation: 2 x layers x kv width x cached tokens
  scoring      one forward pass without gradients: the logits (float32) of a batch
  retrieval    the embedder's weights and the index's vectors (float32)

Precision regimes (bytes per parameter: weight, autocast copy, gradient, optimizer state):

  float32   4, 0, 4, 8      everything float32
  amp       4, 2, 4, 8      float32 weights, bf16 autocast (what harness.tuning runs);
                            = LLaMA-Factory's "Full (bf16 or fp16)": 18 bytes/param
  master    2, 0, 2, 12     16-bit weights and gradients, float32 master + moments
                            (the ZeRO paper's mixed-precision Adam: 16 bytes/param)
  bf16      2, 0, 2, 4      pure bf16, moments in bf16 (LLaMA-Factory's pure_bf16: 8)
  nf4       0.5, 0, -, -    4-bit frozen weights (QLoRA): only adapters train

Every figure is an estimate from these counts: allocator slack, CUDA context, fragmentation
and framework buffers come on top (`overhead`, a stated share)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

GB = 1e9
REGIMES = {  # weight, autocast copy, gradient, optimizer state: bytes per parameter
    "float32": (4.0, 0.0, 4.0, 8.0),
    "amp": (4.0, 2.0, 4.0, 8.0),
    "master": (2.0, 0.0, 2.0, 12.0),
    "bf16": (2.0, 0.0, 2.0, 4.0),
    "int8": (1.0, 0.0, 0.0, 0.0),
    "nf4": (0.5, 0.0, 0.0, 0.0),
}
# bitsandbytes 4-bit: one float32 absmax per 64 weights, itself quantized to 8 bits per 256
# blocks (double quantization): 8/64 + 32/(64*256) bits per weight
QUANT_OVERHEAD = {"nf4": (8 / 64 + 32 / (64 * 256)) / 8, "int8": 4 / 64}
ADAPTER_REGIME = "float32"  # LoRA weights, their gradients and AdamW moments


@dataclass(frozen=True)
class Dims:
    """What the memory model needs of a decoder-only transformer."""

    params: int  # all parameters, tied embeddings once
    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    embedding_params: int  # input embeddings + an untied LM head (kept 16-bit when quantized)
    layer_params: int  # one decoder layer's: the unit FSDP gathers

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> Dims:
        """From a transformers config.json of a LLaMA-style model (LLaMA, Qwen2, Mistral,
        SmolLM): parameters counted from the dimensions."""
        h, layers = int(cfg["hidden_size"]), int(cfg["num_hidden_layers"])
        heads = int(cfg["num_attention_heads"])
        kv = int(cfg.get("num_key_value_heads") or heads)
        hd = int(cfg.get("head_dim") or h // heads)
        inter, vocab = int(cfg["intermediate_size"]), int(cfg["vocab_size"])
        bias = bool(cfg.get("attention_bias", cfg.get("model_type") == "qwen2"))
        attn = h * heads * hd * 2 + h * kv * hd * 2 + (heads * hd + 2 * kv * hd if bias else 0)
        layer = attn + 3 * h * inter + 2 * h
        emb = vocab * h * (1 if cfg.get("tie_word_embeddings", False) else 2)
        return cls(params=layers * layer + emb + h, layers=layers, hidden=h,
                   intermediate=inter, heads=heads, kv_heads=kv, head_dim=hd, vocab=vocab,
                   embedding_params=emb, layer_params=layer)


@dataclass(frozen=True)
class Plan:
    """How a variant runs: what trains, in which precision, on how many shards."""

    trains: str = "none"  # none | all (every weight) | adapter
    regime: str = "amp"  # REGIMES: the base weights' precision
    adapter_params: int = 0  # trainable adapter parameters (LoRA), ADAPTER_REGIME
    batch: int = 1  # sequences per step (per shard)
    seq: int = 512
    act_bytes: float = 2.0  # bytes per activation element: 2 under bf16 autocast, 4 float32
    checkpointing: bool = False
    fused_attention: bool = True
    shards: int = 1
    kv_tokens: int = 0  # cached tokens while generating (batch x context)
    retrieval_bytes: float = 0.0  # embedder weights + index vectors
    overhead: float = 0.0  # share added for what the counts leave out


@dataclass(frozen=True)
class Memory:
    terms: dict[str, float] = field(default_factory=dict)  # bytes
    overhead: float = 0.0

    @property
    def total(self) -> float:
        return sum(self.terms.values()) * (1.0 + self.overhead)

    def gb(self) -> dict[str, float]:
        return {k: round(v / GB, 3) for k, v in {**self.terms, "total": self.total}.items()}


def activation_elements(d: Dims, seq: int, fused: bool) -> float:
    """Elements the backward pass keeps per token for one decoder layer."""
    d_attn, d_kv = d.heads * d.head_dim, d.kv_heads * d.head_dim
    per_token = 4 * d.hidden + 2 * d_attn + 2 * d_kv + 4 * d.intermediate
    return per_token + (0 if fused else d.heads * seq)


def _state_terms(d: Dims, p: Plan) -> dict[str, float]:
    w, copy, grad, optim = REGIMES[p.regime]
    n = max(p.shards, 1)
    body = d.params - d.embedding_params
    quant = p.regime in QUANT_OVERHEAD
    weights = (body * (w + QUANT_OVERHEAD[p.regime]) + d.embedding_params * 2.0) if quant \
        else d.params * w
    out = {"weights": weights / n}
    if copy and p.trains != "none":
        out["copies"] = d.params * copy / n
    if p.trains == "all":
        out["gradients"] = d.params * grad / n
        out["optimizer"] = d.params * optim / n
    elif p.trains == "adapter":
        a_weight, _, a_grad, a_optim = REGIMES[ADAPTER_REGIME]
        out["weights"] += p.adapter_params * a_weight
        out["gradients"] = p.adapter_params * a_grad
        out["optimizer"] = p.adapter_params * a_optim
    if n > 1:
        out["gathered"] = 2 * d.layer_params * 2.0
    return out


def _activation_bytes(d: Dims, p: Plan) -> float:
    tokens = p.batch * p.seq
    layer = activation_elements(d, p.seq, p.fused_attention) * tokens * p.act_bytes
    kept = (d.layers * d.hidden * tokens * p.act_bytes + layer) if p.checkpointing \
        else d.layers * layer
    return kept + tokens * d.vocab * 4.0 * 2  # logits and their gradient, float32


def predict(d: Dims, p: Plan) -> Memory:
    """The predicted peak of one process (one shard)."""
    terms = _state_terms(d, p)
    if p.trains != "none":
        terms["activations"] = _activation_bytes(d, p)
    else:
        terms["scoring"] = p.batch * p.seq * d.vocab * 4.0
    if p.kv_tokens:
        terms["kv_cache"] = 2 * d.layers * d.kv_heads * d.head_dim * p.kv_tokens * p.act_bytes
    if p.retrieval_bytes:
        terms["retrieval"] = p.retrieval_bytes
    return Memory(terms, p.overhead)

