"""What a run records of its memory: the peak the memory model (harness.cost.memory)
predicts for what the run computed, beside the peak measured.

Measured: the process's peak resident set (VmHWM on Linux; peak allocated memory on CUDA)
in each phase, less the memory in use when the run started (its baseline: the libraries,
and any model an earlier run of the process loaded). Predicted: the largest of the run's phases,
each the memory model's terms for it:

  load     (CPU) the checkpoint file, mapped while its tensors are read, and the weights in
           the model's dtype (transformers copies them out of the mapping, also when the
           file holds that dtype)
  fit      training: the trained copy, its gradients, optimizer states and activations for
           the largest micro-batch trained on, beside the model the run serves from (QLoRA:
           or making its 4-bit copy, if that is larger); an index: the embedder and vectors
  predict  the weights (and a tuned copy), a scoring batch's logits and KV cache (the
           longest prompts, with the context repeated per choice), the retrieval index

Phases served from a cache (a cached artifact, cached predictions) computed nothing and
are left out; a model an earlier run loaded is in the baseline, so its weights are too."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from harness.cost.memory import QUANT_OVERHEAD, SLACK, Dims, Memory, MemoryPlan, predict
from harness.retrieval.embedder import loaded_embedders, weights_bytes
from harness.run.memory_check import plan_of
from harness.run.outcome import Predicted
from harness.system import peak_memory_mb, release_freed_memory, reset_peak_memory
from harness.types import FitReport, Strategy

MB = 2**20
HOW = ("peak resident set since the run started (VmHWM; on CUDA peak allocated) less the "
       "memory in use then: the interpreter, the strategy's libraries, a model loaded before")


@dataclass(frozen=True)
class Loaded:
    """How the run's model was loaded: seconds, the memory in use before (MB), whether this
    run loaded it (False: an earlier run of the process had, its weights are in the
    baseline), and the embedders the process held before (their keys)."""

    seconds: float
    baseline_mb: float
    fresh: bool
    embedders: frozenset[str] = frozenset()


def checkpoint_bytes(model: Any) -> float:
    """The size of the weight files the model was loaded from (0 when unknown)."""
    folder = Path(str(getattr(model.config, "_name_or_path", "") or ""))
    if not folder.is_dir():
        return 0.0
    return float(sum(p.stat().st_size for p in folder.iterdir()
                     if p.suffix in (".safetensors", ".bin")))


def _quantizing(d: Dims, plan: MemoryPlan, lm_bytes: float, half: bool) -> Memory:
    """QLoRA's 4-bit copy being made (harness.tuning.quantize): the float32 weights (loaded
    for it when the model serves in 16 bits), written to a temporary checkpoint and read
    back (the file mapped while its tensors are quantized), and the 4-bit result, beside the
    model the run serves from."""
    float32 = d.params * 4.0
    quantized = predict(d, replace(plan, trains="none", resident_bytes=0.0)).terms["weights"]
    return Memory({"resident": lm_bytes, "weights": float32 if half else 0.0,
                   "checkpoint": float32, "quantized": quantized})


def _mb(mem: Memory) -> dict[str, float]:
    slack = mem.total - mem.counted
    out = {**mem.terms, "slack": slack, "total": mem.total}
    if mem.apart:
        out["apart"] = -mem.apart  # gradients and activations: never both at their peak
    return {k: round(v / MB, 1) for k, v in out.items()}


def memory_fields(lm: Any, strategy: dict[str, Any], *, fit: Any, scoring_batch: int,
                  prompt_tokens: int, choices: int, choice_tokens: int,
                  computed_predictions: bool,
                  retrieval_bytes: float, loaded: Loaded, peaks_mb: dict[str, float],
                  device: str) -> dict[str, Any]:
    """metrics.json -> memory: the predicted peak (by phase, with its terms) and the
    measured one, in MB."""
    model = lm.model
    config = model.config.to_dict()
    if not Dims.sizes(config):
        return {"predicted_mb": None, "measured_mb": None,
                "off": f"the memory model sizes LLaMA-style configs ({', '.join(Dims.SIZED_BY)}); "
                       f"{config.get('model_type', 'this model')} has not all of them"}
    d = Dims.from_config(config)
    width = model.dtype.itemsize
    half = width == 2
    lm_bytes = d.params * width if loaded.fresh else 0.0
    phases: dict[str, Memory] = {}
    if loaded.fresh and device == "cpu":
        phases["load"] = Memory({"weights": lm_bytes, "checkpoint": checkpoint_bytes(model)})
    base = plan_of(strategy, half)
    notes = getattr(fit, "notes", None) or {}
    tuned_copy = 0.0
    if base.trains != "none":
        tuned_copy = d.params * width if base.trains == "all" else 0.0
        if not fit.cache_hit:
            rows, seq = notes.get("largest_micro_batch") or (base.batch, base.seq)
            plan = replace(base, batch=int(rows), seq=int(seq), resident_bytes=lm_bytes,
                           adapter_params=fit.trainable_params if base.trains == "adapter" else 0,
                           unquantized_bytes=4.0,  # harness.tuning keeps them float32
                           shards=int(notes.get("processes") or 1) if notes.get("sharded") else 1)
            phases["fit"] = predict(d, plan)
            if base.regime in QUANT_OVERHEAD:  # QLoRA's copy: the larger of the two is the peak
                quantizing = _quantizing(d, plan, lm_bytes, half)
                if quantizing.counted > phases["fit"].counted:
                    phases["fit"] = quantizing
    elif retrieval_bytes:
        phases["fit"] = Memory({"weights": lm_bytes, "retrieval": retrieval_bytes})
    if computed_predictions:
        plan = MemoryPlan(trains="none", regime="bf16" if half else "float32", batch=scoring_batch,
                    seq=prompt_tokens, choices=choices, choice_tokens=choice_tokens,
                    retrieval_bytes=retrieval_bytes, resident_bytes=tuned_copy)
        mem = predict(d, plan)
        phases["predict"] = Memory({**mem.terms, "weights": lm_bytes})
    slack = SLACK.get(device, (0.0, 0.0))
    phases = {k: Memory(v.terms, slack, v.apart) for k, v in phases.items()}
    if not phases:
        return {"predicted_mb": None, "measured_mb": None,
                "off": "nothing was computed: the model, artifact and predictions were cached"}
    scoring = {"batch": scoring_batch, "seq": prompt_tokens, "choices": choices,
               "choice_tokens": choice_tokens, "retrieval_bytes": retrieval_bytes}
    return {**_record(phases, loaded, peaks_mb), "plan": _plan_record(base, d, fit, notes, scoring)}


def _plan_record(base: MemoryPlan, d: Dims, fit: Any, notes: dict, scoring: dict) -> dict[str, Any]:
    """What the run computed, without the model's size: the plan another model is sized by
    (harness.cost.target, report.project_model)."""
    if base.trains == "none":
        return {"trains": "none", **scoring}
    rows, seq = notes.get("largest_micro_batch") or (base.batch, base.seq)
    out = {"trains": base.trains, "batch": int(rows), "seq": int(seq),
           "checkpointing": base.checkpointing, "grads_kept": base.grads_kept,
           "serving": scoring}  # how the tuned model answered: what serving it needs
    if base.trains == "adapter":
        out.update(quantized=base.regime in QUANT_OVERHEAD, adapter_rank=base.adapter_rank,
                   adapter_dropout=base.adapter_dropout,
                   adapter_per_layer_width=(getattr(fit, "trainable_params", 0) or 0)
                   / (d.layers * d.hidden))
    return out


def _record(phases: dict[str, Memory], loaded: Loaded, peaks_mb: dict[str, float]) -> dict:
    """The predicted peak (its phase and terms) beside the measured one, per phase."""
    top = max(phases, key=lambda k: phases[k].total)
    measured = {k: round(max(0.0, v - loaded.baseline_mb), 1) for k, v in peaks_mb.items()}
    peak = max(measured.values())
    predicted = phases[top].total / MB
    return {
        "predicted_mb": round(predicted, 1), "measured_mb": peak,
        "ratio": round(predicted / peak, 3) if peak else None,
        "peak_phase": top, "terms_mb": _mb(phases[top]),
        "phases_mb": {k: {"predicted": round(phases[k].total / MB, 1) if k in phases else None,
                          "measured": v} for k, v in measured.items()},
        "baseline_mb": round(loaded.baseline_mb, 1), "model_loaded_here": loaded.fresh,
        "measured_as": HOW, "off": None,
    }


def mark_peak() -> float:
    """The peak memory (MB) since the last mark, and a new window from now (what the last
    phase freed handed back first: the next phase's peak is not the last one's leftovers)."""
    peak = peak_memory_mb()
    release_freed_memory()
    reset_peak_memory()
    return peak


def run_memory(cfg: DictConfig, lm: Any, strategy: Strategy, fit: FitReport, run: Predicted,
               loaded: Loaded, peaks: dict[str, float]) -> dict[str, Any]:
    """metrics.json -> memory (harness.run.memory): predicted and measured peak."""
    if lm.where == "served":
        return {"predicted_mb": None, "measured_mb": None,
                "off": "a served model: its memory is the server's"}
    new = [e for k, e in loaded_embedders().items() if k not in loaded.embedders]
    index = float((fit.notes or {}).get("index_bytes") or 0) if strategy.retrieval_k else 0.0
    return memory_fields(
        lm, OmegaConf.to_container(cfg.strategy, resolve=True), fit=fit,
        scoring_batch=int(cfg.answer.batch_size),
        prompt_tokens=max((p.usage.prompt_tokens for p in run.preds), default=0),
        choices=max((len(e.choices) for e in run.examples), default=0),
        choice_tokens=_longest_choice(lm, run.examples),
        computed_predictions=run.cache_hits < len(run.examples),
        retrieval_bytes=index + sum(map(weights_bytes, new)), loaded=loaded, peaks_mb=peaks,
        device=lm.device.type)


def _longest_choice(lm: Any, examples: list) -> int:
    """The longest answer choice of `examples`, in the model's tokens."""
    texts = sorted({c for e in examples for c in e.choices}, key=len, reverse=True)[:50]
    return max((len(lm.tokenizer(" " + t, add_special_tokens=False).input_ids) for t in texts),
               default=0)
