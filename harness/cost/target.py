"""A study projected to the model a team will deploy (report.project_model): each run's counted
work rescaled from the model that ran to a target model, and the smallest plan that fits the
target on one GPU of a hardware profile, or on several.

Rescaling keeps what the run processed (positions, decode steps, passes, embeddings,
searches) and swaps the model's share of the work:

  forward      2 N_body per position + the LM head's FLOPs x V'd' / V d (the logits the run
               computed); attention x L' d_attn' / L d_attn
  training     its dense FLOPs x (N_body' + N_head') / (N_body + N_head), attention included
               (at the run's lengths it is a few percent of the total: an approximation);
               weight gradients and optimizer steps x the trainable parameters' ratio (full
               tuning: the target's parameters over those the run trained; an adapter:
               L' d' / L d, for the same rank and target modules)
  decode       FLOPs x the dense ratio; bytes: the weights once per step in bf16, the KV
               cache x L' d_kv' / L d_kv in bf16
  embedder, vector search, BM25: unchanged (the same retriever beside any model)

Memory (harness.cost.memory) is the target's, on a GPU: bf16 inference; full tuning in mixed
precision (float32 master weights, 16 bytes per parameter with AdamW); LoRA on a bf16 base
(QLoRA on its 4-bit base); the run's own batch, sequence length and choices. A plan fits when
its predicted peak is at most USABLE of the GPU's memory. Plans tried, smallest first: as the
run was made; with gradient checkpointing (training; a third more training FLOPs); QLoRA (an
adapter); sharded over 2, 4 or 8 GPUs (FSDP for training, weights split for inference),
seconds divided by the GPUs (ideal scaling: communication not counted) and cost the same."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harness.cost.memory import GB, Dims, MemoryPlan, predict
from harness.errors import ConfigError
from harness.system import group_config

USABLE = 0.9  # of a GPU's memory a plan may use: the CUDA context and fragmentation beside
FSDP_GPU_COUNTS = (2, 4, 8)
RECOMPUTE = 4 / 3  # training FLOPs with checkpointing: forward + backward (3) + forward again


@dataclass(frozen=True)
class Target:
    name: str
    dims: Dims
    where: str  # the file it came from


def load_target(name: str, search_dirs: list[Path]) -> Target:
    """conf/cost/models/<name>.yaml (a config.json's fields), or a path to a config.json or
    a model folder holding one."""
    import json

    import yaml

    path = Path(name).expanduser()
    if path.is_dir():
        path = path / "config.json"
    if path.suffix in (".json", ".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise ConfigError(f"report.project_model: no such file {path}")
        text = path.read_text(encoding="utf-8")
        cfg, where = (json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)), str(path)
    else:
        cfg, where = group_config("cost/models", name, search_dirs, None), f"conf/cost/models/{name}.yaml"
        if cfg is None:
            known = sorted({p.stem for s in search_dirs
                            for p in (Path(s) / "cost" / "models").glob("*.yaml")})
            raise ConfigError(f"report.project_model: no model '{name}' (conf/cost/models/{name}.yaml "
                              f"or a config.json); known: {', '.join(known)}")
    if not isinstance(cfg, Mapping) or not Dims.sizes(cfg):
        raise ConfigError(f"{where}: a LLaMA-style config needs {', '.join(Dims.SIZED_BY)}")
    label = cfg.get("name") or (path.parent.name if path.name == "config.json" else
                                (path.stem if path.is_file() else name))
    return Target(str(label), Dims.from_config(cfg), where)


def shape_of(d: Dims) -> dict[str, float]:
    """The target's harness.cost.work.Shape fields, in bf16."""
    return {"layers": d.layers, "d_attn": d.heads * d.head_dim, "d_kv": d.kv_heads * d.head_dim,
            "body_params": d.params - d.embedding_params,  # decoder layers and final norm
            "head_params": d.vocab * d.hidden, "bytes_per_param": 2}


def _ratio(a: float, b: float) -> float:
    return a / b if b else 0.0


def rescale(work: Mapping[str, float], src: Mapping[str, float], dst: Mapping[str, float],
            params: float) -> dict[str, float]:
    """`work` counted on the `src` shape (metrics.json model_shape) as the `dst` shape would
    have done it (formulas in the module docstring); `params`: the target's parameters (what
    full tuning trains there)."""
    dense = _ratio(dst["body_params"] + dst["head_params"], src["body_params"] + src["head_params"])
    attn = _ratio(dst["layers"] * dst["d_attn"], src["layers"] * src["d_attn"])
    kv = _ratio(dst["layers"] * dst["d_kv"] * 2, src["layers"] * src["d_kv"] * src["bytes_per_param"])
    adapter = _ratio(dst["layers"] * dst["d_attn"], src["layers"] * src["d_attn"])
    full = any(k == "train_flops/full" for k in work)
    wgrad = work.get("train_wgrad_flops", 0)
    trained = wgrad / (2.0 * work["train_positions"]) if work.get("train_positions") else 0.0
    trainable = _ratio(params, trained) if full else adapter
    out = dict(work)
    body = 2.0 * src["body_params"] * work.get("fwd_positions", 0)
    if "fwd_flops" in work:
        out["fwd_flops"] = 2.0 * dst["body_params"] * work.get("fwd_positions", 0) \
            + max(work["fwd_flops"] - body, 0.0) * _ratio(dst["head_params"], src["head_params"])
    out["fwd_attn_flops"] = work.get("fwd_attn_flops", 0) * attn
    for k, v in work.items():
        if k.startswith("train_flops/"):
            out[k] = (v - wgrad) * dense + wgrad * trainable
        elif k.startswith("decode_flops/"):
            out[k] = v * dense
        elif k.startswith("decode_bytes/"):
            steps = work.get("decode_steps/" + k.split("/", 1)[1], 0)
            weights = steps * (src["body_params"] + src["head_params"]) * src["bytes_per_param"]
            out[k] = steps * (dst["body_params"] + dst["head_params"]) * 2 + max(v - weights, 0) * kv
    for k in ("train_wgrad_flops", "optim_params"):
        if k in work:
            out[k] = work[k] * trainable
    if "train_adapter_elems" in work:
        out["train_adapter_elems"] = work["train_adapter_elems"] * adapter
    if "train_eval_flops" in work:
        out["train_eval_flops"] = work["train_eval_flops"] * dense
    return out


def gpu_plans(record: Mapping[str, Any], d: Dims) -> list[tuple[str, MemoryPlan, float]]:
    """The plans to try for a run on the target, smallest first: (words, plan, FLOPs factor
    of its training). `record`: metrics.json -> memory -> plan."""
    trains = str(record.get("trains") or "none")
    if trains == "none":
        p = MemoryPlan(trains="none", regime="bf16", batch=int(record.get("batch") or 1),
                 seq=int(record.get("seq") or 0), choices=int(record.get("choices") or 0),
                 choice_tokens=int(record.get("choice_tokens") or 0),
                 retrieval_bytes=float(record.get("retrieval_bytes") or 0))
        return [("1 GPU", p, 1.0)] + [(f"weights split over {n} GPUs", replace(p, shards=n), 1.0)
                                      for n in FSDP_GPU_COUNTS]
    adapter = trains == "adapter"
    regime = "nf4" if record.get("quantized") else ("bf16" if adapter else "amp")
    p = MemoryPlan(trains=trains, regime=regime, batch=int(record.get("batch") or 1),
             seq=int(record.get("seq") or 512),
             adapter_params=int(float(record.get("adapter_per_layer_width") or 0) * d.layers * d.hidden),
             adapter_rank=int(record.get("adapter_rank") or 16),
             adapter_dropout=bool(record.get("adapter_dropout", True)),
             checkpointing=bool(record.get("checkpointing")), grads_kept=bool(record.get("grads_kept")),
             unquantized_bytes=2.0)
    ck = replace(p, checkpointing=True)
    factor = RECOMPUTE if ck.checkpointing and not p.checkpointing else 1.0
    plans = [("1 GPU", p, 1.0), ("1 GPU, gradient checkpointing", ck, factor)]
    if adapter and regime != "nf4":
        plans.append(("1 GPU, QLoRA (4-bit base), gradient checkpointing",
                      replace(ck, regime="nf4"), factor))
    plans += [(f"FSDP over {n} GPUs, gradient checkpointing", replace(ck, shards=n), factor)
              for n in FSDP_GPU_COUNTS]
    return plans


def smallest_fit(record: Mapping[str, Any], d: Dims, memory_gb: float
                 ) -> tuple[str, float, float, int] | None:
    """(plan words, predicted peak GB per GPU, FLOPs factor, GPUs) of the first plan that
    fits `memory_gb` x USABLE; None when none does (or nothing to size)."""
    for words, plan, factor in gpu_plans(record, d):
        peak = predict(d, plan).total / GB
        if peak <= memory_gb * USABLE:
            return words, peak, factor, max(plan.shards, 1)
    return None
