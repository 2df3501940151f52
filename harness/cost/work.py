"""The work a run does, counted from what it computes rather than timed: model positions,
their FLOPs, generated tokens, training passes, embeddings and index operations.

Counts depend only on the config, the seed and the model, never on how busy the machine
was, so a cost model built on them (harness.cost.profile: work / the machine's measured
throughput; harness.cost.projection: work / another machine's peak) gives the same answer every
time the same run is made. Cached results (predictions, embeddings, trained artifacts)
store the work that made them, and a cache hit replays it: a run is charged the work its
results took, as it is charged the seconds.

FLOPs (one multiply-add = 2 FLOPs; Kaplan et al. 2020, "Scaling Laws", section 2.1):
  forward, per position      2 * N_body  (+ 2 * V * d where the LM head computes logits)
  attention, per position    4 * n_layer * d_attn * (positions it attends to)
  training, per position     forward + 2 * N_bwd (activation gradients) + 2 * N_train
                             (weight gradients): 6 * N for full tuning, ~4 * N for LoRA;
                             attention: 3x its forward term
  a decode step, per row     forward of one position attending to the context so far;
                             bytes read: every weight once per step + the rows' KV cache
N_body = parameters of the decoder layers and final norm (the input embedding is a lookup,
not a matmul); V * d = the LM head; d_attn = query heads * head dim. Padding positions
are counted: the hardware computes them.

A `Work` is a flat mapping of named counters, added key by key. Decode counters carry the
batch size after a slash (`decode_steps/16`), training counters the training mode
(`train_flops/full`, `train_flops/frozen`), because each has its own throughput.
"""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Work = dict[str, float]

# What each counter means (docs/cost-model.md and metrics.json build_work / predict_work).
COUNTERS = {
    "fwd_positions": "positions run through the model in whole-sequence passes (prefill, "
                     "choice scoring, log-likelihoods), padding included",
    "fwd_flops": "their linear-layer FLOPs (2 N_body per position + 2 V d per logit)",
    "fwd_attn_flops": "their attention FLOPs",
    "fwd_calls": "forward passes",
    "decode_tokens": "tokens generated one step at a time (rows x steps)",
    "decode_steps/B": "decode steps at batch size B",
    "decode_flops/B": "their FLOPs",
    "decode_bytes/B": "bytes they read (weights once per step + KV cache)",
    "train_positions": "positions in training steps (rows x padded width x passes)",
    "train_flops/MODE": "training FLOPs: forward + activation gradients (+ weight gradients "
                        "for the trainable parameters); MODE full, frozen (adapters) or 4bit "
                        "(adapters on a 4-bit base, QLoRA)",
    "train_wgrad_flops": "the weight-gradient part of the training FLOPs",
    "train_adapter_elems": "positions x the summed widths of PEFT adapter layers (their "
                           "element-wise work)",
    "train_passes/MODE": "micro-batches (forward + backward passes)",
    "train_steps/MODE": "optimizer steps",
    "train_runs": "training runs (the loop's start-up)",
    "optim_params": "trainable parameters x optimizer steps",
    "train_eval_positions": "validation positions during training",
    "train_eval_flops": "their FLOPs",
    "train_eval_batches": "validation batches",
    "embed_texts": "texts embedded",
    "embed_positions": "embedder positions (padding included)",
    "embed_flops": "embedder FLOPs",
    "embed_batches": "embedder batches",
    "search_queries": "vector-index queries",
    "search_flops": "vector comparisons x 2 d (an exact flat index)",
    "index_vectors": "vectors added to an index",
    "bm25_tokens": "tokens indexed by BM25",
    "bm25_queries": "BM25 queries",
}


def add(total: Work, more: Mapping[str, float]) -> Work:
    for k, v in more.items():
        total[k] = total.get(k, 0.0) + float(v)
    return total


def flops(work: Mapping[str, float]) -> float:
    """Every FLOP the work counts (model, embedder, vector search)."""
    return float(sum(v for k, v in work.items()
                     if k.split("/")[0].endswith("flops") and k != "train_wgrad_flops"))


class Meter:
    """Collects the work done while a scope is open: `with METER.scope() as w:` ... `w` holds
    every count added inside, also by nested scopes. `paused()` stops counting (evaluation
    work such as the forgetting control is not a strategy's cost)."""

    def __init__(self) -> None:
        self._open: list[Work] = []
        self._paused = 0

    @property
    def active(self) -> bool:
        """Is anything counting? (Work that is costly to count can be skipped when not.)"""
        return bool(self._open) and not self._paused

    def add(self, work: Mapping[str, float]) -> None:
        if not self.active:
            return
        for w in self._open:
            add(w, work)

    @contextlib.contextmanager
    def scope(self) -> Iterator[Work]:
        w: Work = {}
        self._open.append(w)
        try:
            yield w
        finally:  # by identity: two scopes with equal counts are still two scopes
            del self._open[next(i for i, o in enumerate(self._open) if o is w)]

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        self._paused += 1
        try:
            yield
        finally:
            self._paused -= 1


METER = Meter()


def _triangle(new: int, past: int) -> int:
    """Attended positions summed over `new` causal positions after `past` cached ones."""
    return new * past + new * (new + 1) // 2


@dataclass(frozen=True)
class Shape:
    """What the FLOP formulas need from a transformer."""

    layers: int
    d_attn: int  # query heads * head dim
    d_kv: int  # key/value heads * head dim
    body_params: int  # decoder layers + final norm (+ adapters)
    head_params: int  # LM head (vocab x d); 0 for an encoder without one
    bytes_per_param: int
    # PEFT adapter layers (LoRA, IA3): the sum of their input and output widths. Their
    # FLOPs are few, but each adds element-wise work (dropout, scaling, the sum) per position.
    adapter_width: int = 0

    @classmethod
    def of(cls, model: Any) -> Shape:
        """From a transformers model (a PEFT wrapper too: its adapters count in the body)."""
        cfg = model.config
        layers = int(getattr(cfg, "num_hidden_layers", 0) or getattr(cfg, "n_layer", 0))
        d = int(getattr(cfg, "hidden_size", 0) or getattr(cfg, "n_embd", 0))
        heads = int(getattr(cfg, "num_attention_heads", 0) or getattr(cfg, "n_head", 1))
        head_dim = int(getattr(cfg, "head_dim", 0) or d // heads)
        kv = int(getattr(cfg, "num_key_value_heads", 0) or heads)
        params = {id(p): p for p in model.parameters()}  # tied weights once
        emb = model.get_input_embeddings().weight
        out = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
        head = out.weight if out is not None else None
        body = param_count(p for i, p in params.items()
                           if i != id(emb) and (head is None or i != id(head)))
        dtype = next(iter(params.values())).dtype
        return cls(layers=layers, d_attn=heads * head_dim, d_kv=kv * head_dim,
                   body_params=int(body), head_params=int(head.numel()) if head is not None else 0,
                   bytes_per_param=int(dtype.itemsize), adapter_width=_adapter_width(model))

    def attn(self, new: int, past: int = 0) -> float:
        return 4.0 * self.layers * self.d_attn * _triangle(new, past)

    def forward(self, rows: int, width: int, logits_per_row: int, past: int = 0) -> Work:
        """A no-grad pass over `rows` sequences of `width` new positions after `past` cached
        ones, computing logits at `logits_per_row` positions of each."""
        return {"fwd_positions": rows * width,
                "fwd_flops": 2.0 * rows * (self.body_params * width
                                           + self.head_params * logits_per_row),
                "fwd_attn_flops": rows * self.attn(width, past), "fwd_calls": 1}

    def decode(self, rows: int, steps: int, context: int) -> Work:
        """`steps` generation steps of `rows` rows after `context` cached positions: step s
        feeds one new position per row, which attends to context + s positions and reads
        context + s - 1 cached keys and values."""
        if steps <= 0:
            return {}
        per_pos = 2.0 * (self.body_params + self.head_params)
        weights = (self.body_params + self.head_params) * self.bytes_per_param
        kv_read = rows * 2 * self.layers * self.d_kv * self.bytes_per_param * (
            steps * context + steps * (steps - 1) / 2)
        b = f"/{rows}"
        return {"decode_tokens": rows * steps, "decode_steps" + b: steps,
                "decode_flops" + b: rows * (steps * per_pos
                                            + 4.0 * self.layers * self.d_attn
                                            * (steps * context + steps * (steps + 1) / 2)),
                "decode_bytes" + b: steps * weights + kv_read}

    def train_pass(self, rows: int, width: int, trainable: int, backward: int,
                   total: int, mode: str | None = None) -> Work:
        """Forward and backward over one micro-batch of rows x width positions. `total`,
        `backward`, `trainable`: all parameters, those the backward pass runs through, the
        trainable ones (as in harness.tuning.fit's estimate). `mode`: the kind of training
        (default: train_mode's full or frozen; 4bit for adapters on a 4-bit base)."""
        positions = rows * width
        dense = self.body_params + self.head_params  # every position gets logits in training
        share = backward / max(total, 1)  # of the network the backward pass runs through
        fb = positions * 2.0 * dense * (1 + share) + 3.0 * rows * self.attn(width)
        wgrad = positions * 2.0 * trainable
        mode = mode or train_mode(trainable, total)
        out = {"train_positions": positions, f"train_flops/{mode}": fb + wgrad,
               "train_wgrad_flops": wgrad, f"train_passes/{mode}": 1}
        if self.adapter_width:
            out["train_adapter_elems"] = positions * self.adapter_width
        return out

    def train_eval(self, rows: int, width: int) -> Work:
        return {"train_eval_positions": rows * width,
                "train_eval_flops": 2.0 * rows * width * (self.body_params + self.head_params)
                + rows * self.attn(width), "train_eval_batches": 1}


def param_count(params: Iterable[Any]) -> int:
    """Parameters counted as the model's: a packed 4-bit weight (bitsandbytes) counts its
    unpacked size, kept in its quant_state."""
    total = 0
    for p in params:
        state = getattr(p, "quant_state", None)
        total += int(math.prod(state.shape)) if state is not None else int(p.numel())
    return total


def _adapter_width(model: Any) -> int:
    # A model holds PEFT layers only if peft was imported; importing it just to look costs
    # ~2 s per process (it imports bitsandbytes, which compiles kernels)
    tuners = sys.modules.get("peft.tuners.tuners_utils")
    if tuners is None:
        return 0
    BaseTunerLayer = tuners.BaseTunerLayer
    return int(sum(getattr(m, "in_features", 0) + getattr(m, "out_features", 0)
                   for m in model.modules() if isinstance(m, BaseTunerLayer)))


def train_mode(trainable: int, total: int) -> str:
    """full: most weights train (weight gradients and optimizer state for all); frozen: an
    adapter or a prompt on a frozen model. Each has its own measured throughput."""
    return "full" if trainable * 2 >= total else "frozen"


def embed_work(shape: Shape, token_lengths: Sequence[int], batch_size: int) -> Work:
    """An encoder embedding texts of these token lengths, longest first in batches of
    `batch_size` padded to the batch's longest (as sentence-transformers batches them)."""
    lengths = sorted(token_lengths, reverse=True)
    w: Work = {"embed_texts": len(lengths)}
    for i in range(0, len(lengths), batch_size):
        batch = lengths[i:i + batch_size]
        width = batch[0]
        add(w, {"embed_positions": len(batch) * width,
                # bidirectional: every position attends to the whole (padded) text
                "embed_flops": len(batch) * (2.0 * width * shape.body_params
                                             + 4.0 * shape.layers * shape.d_attn * width * width),
                "embed_batches": 1})
    return w


def search_work(queries: int, vectors: int, dim: int) -> Work:
    """Exact inner-product search of `queries` against `vectors` (an upper bound for an
    approximate index, which compares fewer)."""
    return {"search_queries": queries, "search_flops": 2.0 * queries * vectors * dim}
