"""Peak memory of a variant, predicted from the model's dimensions and the run's settings:
what decides whether a study fits one device, and which plan makes it fit.

Terms, in bytes (P: all parameters; T: the trainable ones; N: shards, FSDP / ZeRO-3):

  weights      P x bytes per weight of the precision (REGIMES) / N; 4-bit weights add
               their block scales (QUANT_OVERHEAD); embeddings and the LM head stay 16-bit
  copies       autocast's 16-bit copies of float32 weights, kept for the forward pass
  gradients    T x bytes per gradient / N; made while the backward pass frees the
               activations, so the peak holds the larger of the two (unless gradients are
               kept between micro-batches: grad_accum > 1)
  optimizer    AdamW: two moments per trainable parameter (+ a float32 master copy where
               the weights themselves are 16-bit) / N
  gathered     FSDP / ZeRO-3: the full 16-bit weights of the unit being computed, and the
               next one prefetched (2 x the largest decoder layer)
  activations  the tensors autograd saves for the backward pass, per token and decoder
               layer, counted for a LLaMA block as transformers computes it (the count of
               Korthikanti et al. 2022, done for this block; `saved_per_token`): the norms'
               inputs, the inputs of every linear whose weight trains, q and k and their
               rotated halves, what attention saves (q, the key/value heads repeated to the
               query heads, the output; the attention probabilities, heads x sequence per
               token, only where attention is not fused), the MLP's gate, up and act(gate);
               a LoRA linear's dropout mask and its input. The residual stream has the weights'
               dtype and the linears' outputs the compute dtype: under autocast every linear
               saves its own cast copy of its input. Checkpointed: each layer's input, and one
               layer's full set while it is recomputed. Plus the loss: the logits in the
               compute dtype, their float32 log-softmax and, while the backward pass starts,
               two float32 gradients of that size.
  kv_cache     generation: 2 x layers x kv width x cached tokens
  scoring      choices scored after a shared context (harness.models.local): the context's
               KV cache repeated per choice (kv_cache), the continuations' logits (compute
               dtype, concatenated with the context's last, then float32 and its
               log-softmax), and attention over the repeated cache, the grouped key/value
               heads repeated to the query heads for one layer at a time
  retrieval    the embedder's weights and the index's vectors (float32)
  resident     other copies of the model the process holds meanwhile (the harness keeps
               the model it serves from while a float32 copy of it trains)

Precision regimes (bytes per parameter: weight, autocast copy, gradient, optimizer state;
and per activation element: the residual stream, the linears' outputs):

  float32   4, 0, 4, 8      everything float32
  amp       4, 2, 4, 8      float32 weights, bf16 autocast (what harness.tuning runs);
                            = LLaMA-Factory's "Full (bf16 or fp16)": 18 bytes/param
  master    2, 0, 2, 12     16-bit weights and gradients, float32 master + moments
                            (the ZeRO paper's mixed-precision Adam: 16 bytes/param)
  bf16      2, 0, 2, 4      pure bf16, moments in bf16 (LLaMA-Factory's pure_bf16: 8)
  nf4       0.5, 0, -, -    4-bit frozen weights (QLoRA): only adapters train

Every figure is an estimate from these counts: allocator slack, CUDA context, fragmentation
and framework buffers come on top (`overhead`: stated shares, SLACK per device)."""

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
# What a device's measured peak holds beyond the counted tensors, as shares of them: of the
# tensors that live through a phase (weights, states, the index, the mapped checkpoint) and
# of those made and freed batch after batch (activations, KV cache, logits). CPU: the
# resident set above a baseline that holds the interpreter and the run's libraries. The
# tokenizer and framework buffers come on top, and glibc's allocator keeps freed blocks for
# reuse: over batches of varying shapes the resident set grows past the live transient
# tensors (with MALLOC_MMAP_THRESHOLD_=131072 scoring with retrieval held 1.00x its live
# memory, but tuning ran 55% slower). The shares are fitted to ten runs on the bundled model
# (prompt, rag, lora, full, QLoRA; bf16 and float32): every ratio within 0.85-1.15
# (docs/cost-model.md). CUDA: torch's peak allocated memory is the live tensors themselves.
SLACK = {"cpu": (0.15, 0.3), "cuda": (0.0, 0.0)}
TRANSIENT = ("activations", "kv_cache", "scoring")
ADAPTER_REGIME = "float32"  # LoRA weights, their gradients and AdamW moments
# bytes per activation element: the residual stream (the weights' dtype), the linears'
# outputs, and what autocast computes attention and casts linear inputs in. QLoRA's base keeps
# its norms and embeddings in float32 (peft's prepare_model_for_kbit_training); its 4-bit
# linears return their input's dtype
ACTIVATION = {"float32": (4.0, 4.0, 4.0), "amp": (4.0, 2.0, 2.0), "master": (2.0, 2.0, 2.0),
              "bf16": (2.0, 2.0, 2.0), "int8": (4.0, 4.0, 2.0), "nf4": (4.0, 4.0, 2.0)}


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

    SIZED_BY = ("hidden_size", "intermediate_size", "num_hidden_layers",
                "num_attention_heads", "vocab_size")  # what from_config needs of a config

    @classmethod
    def sizes(cls, cfg: Mapping[str, Any]) -> bool:
        """Whether `cfg` holds what from_config needs (a LLaMA-style config)."""
        return all(k in cfg for k in cls.SIZED_BY)

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
class MemoryPlan:
    """How a variant runs: what trains, in which precision, on how many shards."""

    trains: str = "none"  # none | all (every weight) | adapter
    regime: str = "amp"  # REGIMES: the base weights' precision
    adapter_params: int = 0  # trainable adapter parameters (LoRA), ADAPTER_REGIME
    adapter_rank: int = 16  # LoRA's r: its A output, saved per adapted linear
    adapter_dropout: bool = True  # LoRA dropout > 0: a saved mask per adapted linear
    batch: int = 1  # sequences per step (per shard)
    seq: int = 512
    checkpointing: bool = False
    fused_attention: bool = True
    shards: int = 1
    kv_tokens: int = 0  # cached tokens while generating (batch x context)
    choices: int = 0  # inference: choices scored per context (`batch` contexts of `seq`)
    choice_tokens: int = 0  # inference: the longest choice, in tokens
    retrieval_bytes: float = 0.0  # embedder weights + index vectors
    resident_bytes: float = 0.0  # other copies of the model held meanwhile
    unquantized_bytes: float = 2.0  # per weight that 4-bit or 8-bit leaves (embeddings, head)
    overhead: tuple[float, float] = (0.0, 0.0)  # shares added (lasting, transient): SLACK
    # gradients kept between micro-batches (grad_accum > 1); else they are made as the
    # backward pass frees the activations (set_to_none after each step), and the peak holds
    # the larger of the two
    grads_kept: bool = False

    @property
    def residual_bytes(self) -> float:
        return ACTIVATION[self.regime][0]

    @property
    def compute_bytes(self) -> float:
        """What attention and the casts of linear inputs compute in."""
        return ACTIVATION[self.regime][2]


@dataclass(frozen=True)
class Memory:
    terms: dict[str, float] = field(default_factory=dict)  # bytes
    overhead: tuple[float, float] = (0.0, 0.0)  # shares added: lasting, transient terms
    apart: float = 0.0  # bytes of two terms never held at once (gradients vs activations)

    @property
    def counted(self) -> float:
        return sum(self.terms.values()) - self.apart

    @property
    def total(self) -> float:
        transient = sum(v for k, v in self.terms.items() if k in TRANSIENT)
        lasting = self.counted - transient
        return lasting * (1.0 + self.overhead[0]) + transient * (1.0 + self.overhead[1])

    def gb(self) -> dict[str, float]:
        return {k: round(v / GB, 3) for k, v in {**self.terms, "total": self.total}.items()}


def saved_per_token(d: Dims, p: MemoryPlan, seq: int | None = None) -> float:
    """Bytes autograd saves per token for one decoder layer of a LLaMA block (see the module
    text), for what `p` trains, in its regime; `seq` for unfused attention's scores. Counted
    from transformers' LlamaDecoderLayer and peft's LoRA layer: rotary embeddings save only
    cos and sin; SDPA saves q, k, v (grouped heads unrepeated) and its output, which
    o_proj reads as a view; a frozen linear saves nothing for its input's gradient."""
    h, i, q, kv = d.hidden, d.intermediate, d.heads * d.head_dim, d.kv_heads * d.head_dim
    res, out, comp = ACTIVATION[p.regime]
    cast = comp != res  # autocast: each linear saves a cast copy of its input of its own
    attention = comp * (2 * q + 2 * kv) + (0.0 if p.fused_attention else
                                             comp * d.heads * (seq or p.seq))
    mlp = 3 * out * i  # gate, up, act(gate)
    if p.trains == "all":  # norms: input and normalized input; every linear's input
        norms = 2 * 2 * res * h
        inputs = 5 * comp * h if cast else 2 * res * h  # q, k, v / gate, up read one input
        down = comp * i if cast and out != comp else out * i
        return norms + inputs + down + attention + mlp
    if p.trains == "adapter":  # norms: input; LoRA on all seven linears: peft casts the input
        a = ACTIVATION[ADAPTER_REGIME][0]  # to the adapter's float32, dropout saves a mask of
        mask = a if p.adapter_dropout else 0.0  # it, lora_A its (autocast) input and lora_B
        lora_in = comp if cast else a  # lora_A's output
        per = (5 * h + q + i) * (mask + lora_in) + 7 * comp * p.adapter_rank
        return 2 * res * h + per + attention + mlp
    return 0.0


def loss_bytes(d: Dims, p: MemoryPlan) -> float:
    """Per token: the logits (compute dtype), their float32 log-softmax, and the two float32
    gradients of that size the backward pass starts with."""
    return d.vocab * (p.compute_bytes + 4.0 + 2 * 4.0)


def _state_terms(d: Dims, p: MemoryPlan) -> dict[str, float]:
    w, copy, grad, optim = REGIMES[p.regime]
    n = max(p.shards, 1)
    body = d.params - d.embedding_params
    quant = p.regime in QUANT_OVERHEAD
    weights = (body * (w + QUANT_OVERHEAD[p.regime]) + d.embedding_params * p.unquantized_bytes) if quant \
        else d.params * w
    out = {"weights": weights / n}
    if copy and p.trains == "all":  # autocast caches the casts of weights that train
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


def _activation_bytes(d: Dims, p: MemoryPlan) -> float:
    tokens = p.batch * p.seq
    layer = saved_per_token(d, p) * tokens
    kept = (d.layers * d.hidden * tokens * p.residual_bytes + layer) if p.checkpointing \
        else d.layers * layer
    return kept + tokens * loss_bytes(d, p)


def _scoring_terms(d: Dims, p: MemoryPlan) -> dict[str, float]:
    """Inference: a batch of contexts, each choice scored after its context's cache."""
    c = p.compute_bytes
    rows = p.batch * max(p.choices, 1)
    cache = 2 * d.layers * d.kv_heads * d.head_dim * c * rows * p.seq
    logits = rows * (p.choice_tokens + 1) * d.vocab * (2 * c + 8.0)
    attention = rows * (p.seq + p.choice_tokens) * d.heads * d.head_dim * c * 2
    return {"kv_cache": cache, "scoring": logits + attention}


def predict(d: Dims, p: MemoryPlan) -> Memory:
    """The predicted peak of one process (one shard)."""
    terms = _state_terms(d, p)
    apart = 0.0
    if p.trains != "none":
        terms["activations"] = _activation_bytes(d, p)
        if not p.grads_kept:
            apart = min(terms["activations"], terms.get("gradients", 0.0))
    else:
        terms.update(_scoring_terms(d, p))
    if p.kv_tokens:  # generation's cache, when larger than scoring's
        gen = 2 * d.layers * d.kv_heads * d.head_dim * p.kv_tokens * p.compute_bytes
        terms["kv_cache"] = max(terms.get("kv_cache", 0.0), gen)
    if p.retrieval_bytes:
        terms["retrieval"] = p.retrieval_bytes
    if p.resident_bytes:
        terms["resident"] = p.resident_bytes
    return Memory(terms, p.overhead, apart)

