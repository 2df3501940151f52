"""Refuse, before loading, a run the memory model says cannot fit (harness.cost.memory).

A local model whose config.json can be read without loading it (a folder, or a hub id in
the local cache) is sized from its dimensions; the run's plan comes from its config: what
the strategy trains (all weights, an adapter, a 4-bit QLoRA base), the precision it trains
in (float32 weights under bf16 autocast, as harness.tuning does, or float32), its batch and
sequence length. Predicted peak above what the device has free: one line, predicted against
available, and what would make it fit. `memory.check=false` runs it anyway. A model that
cannot be sized (the bundled GGUF, a served model, the tiny test model) is not checked."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from harness.cost.memory import GB, SLACK, Dims, MemoryPlan, predict
from harness.errors import ConfigError
from harness.system import resolve_device, resolve_dtype

WHAT = {"none": "inference", "all": "every weight trained", "adapter": "an adapter trained"}


def model_config(name: str) -> dict | None:
    """A model's config.json, from a folder or the local hub cache; None if not at hand."""
    path = Path(name).expanduser()
    if (path / "config.json").is_file():
        return json.loads((path / "config.json").read_text(encoding="utf-8"))
    if "/" not in name or path.exists() or name.startswith("gguf-package:"):
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
        cached = try_to_load_from_cache(name, "config.json")
    except Exception:  # noqa: BLE001 - no cache, a malformed id: not sizable here
        return None
    return json.loads(Path(cached).read_text(encoding="utf-8")) if isinstance(cached, str) \
        else None


def plan_of(strategy: Mapping[str, Any], half: bool) -> MemoryPlan:
    """How the run's strategy uses memory; `half`: the model computes in a 16-bit dtype
    (then training runs on float32 weights under autocast, as harness.tuning does)."""
    train = strategy.get("train")
    if not isinstance(train, Mapping):  # no training: the weights in their dtype
        return MemoryPlan(trains="none", regime="bf16" if half else "float32")
    adapter = strategy.get("adapter") or {}
    seq = int((strategy.get("data") or {}).get("max_seq_len") or 512)
    common = {"batch": int(train.get("batch_size") or 1), "seq": seq,
              "checkpointing": bool(train.get("gradient_checkpointing", False)),
              "grads_kept": int(train.get("grad_accum") or 1) > 1}
    if adapter:
        regime = "nf4" if adapter.get("quantize") == "4bit" else ("amp" if half else "float32")
        return MemoryPlan(trains="adapter", regime=regime, adapter_rank=int(adapter.get("r") or 0),
                    adapter_dropout=float(adapter.get("dropout") or 0) > 0, **common)
    return MemoryPlan(trains="all", regime="amp" if half else "float32", **common)


def available_bytes(device: str) -> float:
    if device.startswith("cuda"):
        import torch
        return float(torch.cuda.mem_get_info()[0])
    import psutil
    return float(psutil.virtual_memory().available)


def check_fits(model: Mapping[str, Any], strategy: Mapping[str, Any]) -> None:
    """Raise a one-line ConfigError when the run would not fit; nothing when it would, or
    when the model cannot be sized without loading it."""
    config = model_config(str(model.get("name_or_path", "")))
    if config is None or not Dims.sizes(config):
        return
    device = resolve_device(str(model.get("device", "auto")))  # as load_model does
    dtype = resolve_dtype(str(model.get("dtype", "float32")), device)
    dims = Dims.from_config(config)
    plan = plan_of(strategy, half=dtype.itemsize == 2)
    if plan.trains != "none":  # the model the run serves from stays loaded while a copy trains
        plan = replace(plan, resident_bytes=dims.params * dtype.itemsize)
    mem = predict(dims, replace(plan, overhead=SLACK.get(device.type, (0.0, 0.0))))
    free = available_bytes(device.type)
    if mem.total <= free:
        return
    ways: list[str] = []
    if plan.trains == "all":
        ways += ["strategy=lora", "strategy=lora strategy.adapter.quantize=4bit"]
    elif plan.trains == "adapter" and plan.regime != "nf4":
        ways.append("strategy.adapter.quantize=4bit")
    if plan.trains != "none" and not plan.checkpointing:
        ways.append("strategy.train.gradient_checkpointing=true")
    if plan.trains != "none" and plan.batch > 1:
        ways.append(f"strategy.train.batch_size={max(1, plan.batch // 2)}")
    raise ConfigError(
        f"model {model.get('name_or_path')} would not fit: predicted peak "
        f"{mem.total / GB:.1f} GB ({WHAT[plan.trains]}, {plan.regime}) > {free / GB:.1f} GB "
        f"available on {device.type}; try {' or '.join(ways) if ways else 'a machine with more memory'}, "
        "or memory.check=false to run it anyway")
