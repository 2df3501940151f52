"""The tuned fit: train (or load from the artifact cache) a tuned copy of the model, measure
forgetting and report cost; and the freshness updates of a tuned model (continue, retrain).

Artifacts are keyed by the model (name and weights fingerprint), the split hash, every
training row, the method settings, the training settings and the seed.

FLOPs estimate (stated in every run): forward 2*N*T, activation gradients 2*N_bwd*T,
weight gradients 2*N_train*T, where N = all parameters, N_train = trainable ones,
N_bwd = parameters the backward pass runs through (N for full tuning, LoRA, IA3 and
prompt tuning; only the unfrozen top for full tuning with frozen bottom layers) and
T = training tokens. Full tuning: 6*N*T. Validation passes are not counted."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import PreTrainedModel

from harness.cache import cached_dir, is_whole
from harness.cost.work import METER, Shape, Work, add, param_count, train_mode
from harness.data.update import TaskUpdate
from harness.errors import ConfigError
from harness.models.local import LM
from harness.ranks import agree, distributed, is_main, world
from harness.run_files import read_json, write_json
from harness.system import cache_root, peak_memory_mb, release_freed_memory
from harness.tuning.forgetting import measure_forgetting
from harness.tuning.loop import TrainResult, TrainSettings, train
from harness.tuning.methods import Method
from harness.tuning.quantize import weights_mb
from harness.tuning.rows import TrainRow, rows_about
from harness.tuning.shard import full_state_dict
from harness.types import FitReport, Pruning

HALF_DTYPES = (torch.bfloat16, torch.float16)  # trained in mixed precision

ARTIFACT_FORMAT = 3  # bump when the saved layout changes


def artifact_key(*, model_name: str, fingerprint: str, split_hash: str,
                 rows: Sequence[TrainRow], val_rows: Sequence[TrainRow], method: dict,
                 train_settings: TrainSettings, seed: int, parent: str = "",
                 processes: int = 1) -> str:
    train = dataclasses.asdict(train_settings)
    train.pop("gradient_checkpointing")  # recomputing activations gives the same weights
    train.pop("shard")  # so does sharding them (the processes are in the key)
    head = {"format": ARTIFACT_FORMAT, "model": model_name, "fingerprint": fingerprint,
            "split_hash": split_hash, "method": method, "train": train, "seed": seed}
    if parent:  # trained on from another artifact
        head["parent"] = parent
    if processes > 1:  # data-parallel: each step sees batch_size x grad_accum x processes rows
        head["processes"] = processes
    h = hashlib.sha256(json.dumps(head, sort_keys=True, default=str).encode())
    for tag, group in ((b"T", rows), (b"V", val_rows)):
        for r in group:
            h.update(tag + repr((r.input_ids, r.labels)).encode())
    return h.hexdigest()[:20]


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()
               and p.name not in ("train.json", ".complete"))


def compute_dtype(lm: LM) -> torch.dtype | None:
    """The autocast dtype training runs under: the LM's, when it is a half type (mixed
    precision); None for a float32 model."""
    return lm.model.dtype if lm.model.dtype in HALF_DTYPES else None


def master_weights(lm: LM) -> PreTrainedModel:
    """The float32 weights training starts from: the LM's own model when it is float32;
    for a half-precision one, its source's float32 weights (loaded again, when the LM can)
    or a float32 copy (rounding the source to half loses what small updates need)."""
    if compute_dtype(lm) is None:
        return lm.model
    return lm.load_float32() if lm.load_float32 else copy.deepcopy(lm.model).float()


@dataclass
class Tuned:
    lm: LM
    report: FitReport


class Pruned(Exception):
    """A search's pruner stopped training: the model is not what its settings describe, so
    it is not cached under their key; it serves its trial's predictions only."""

    def __init__(self, info: dict) -> None:
        super().__init__(f"pruned at epoch {info.get('pruned_at_epoch')}")
        self.info = info


def fit_tuned(lm: LM, method: Method, rows: Sequence[TrainRow], val_rows: Sequence[TrainRow],
              train_settings: TrainSettings, *, split_hash: str, seed: int,
              cache_dir: str | None = None, forgetting: bool = True,
              progress: bool = True, notes: dict | None = None,
              parent: FitReport | None = None,
              pruning: Pruning | None = None) -> Tuned:
    """Train (or load from the artifact cache) a tuned copy of `lm`'s model; with `parent`
    (the report of an earlier fit_tuned), train on from that artifact instead of the base.
    `pruning`: a search trial's pruner (harness.tuning.loop.train); a pruned model is not
    cached."""
    if train_settings.shard == "fsdp" and method.peft:
        raise ConfigError("train.shard=fsdp shards full tuning; an adapter's own states are "
                          "small and its frozen base is not sharded: use train.shard=none")
    parent_key = str(parent.notes["artifact_key"]) if parent else ""
    key = artifact_key(model_name=lm.name, fingerprint=lm.fingerprint, split_hash=split_hash,
                       rows=rows, val_rows=val_rows, method=method.describe(),
                       train_settings=train_settings, seed=seed, parent=parent_key,
                       processes=world()[1])
    target = cache_root(cache_dir) / "artifacts" / f"{method.kind}-{key}"
    t0 = time.perf_counter()
    trained: dict[str, PreTrainedModel] = {}
    build = _artifact_builder(lm, method, rows, val_rows, train_settings, seed=seed,
                              progress=progress, parent=parent, trained=trained, pruning=pruning)
    try:
        if distributed():  # every rank trains, or none: rank 0's look at the cache decides
            whole = agree(is_whole(target) if is_main() else None)
            target = cached_dir(target, build, rebuild=not whole)
        else:
            target = cached_dir(target, build)
        info = read_json(target / "train.json")
    except Pruned as stop:  # nothing was cached
        target, info = None, stop.info
    hit = "model" not in trained
    model = method.load(lm.model, target) if hit else trained["model"]
    METER.add(info["work"])  # what training computed, also when the artifact was cached
    served, merged = method.for_inference(model)
    tuned_lm = LM(served, lm.tokenizer, lm.name, use_chat_template=lm.chat,
                  share_context=not (method.peft and method.settings.method == "prompt_tuning"),
                  identity=f"{lm.identity}|{method.kind}:{key}", cache=lm.cache)
    wall = time.perf_counter() - t0
    with METER.paused():  # evaluation, not the build's work (rank 0's alone)
        control = measure_forgetting(lm, tuned_lm) if forgetting and is_main() else None
    all_notes = {**(notes or {}), **_artifact_notes(lm, method, info, merged=merged, key=key,
                                                    parent_key=parent_key, target=target)}
    return Tuned(tuned_lm, _fit_report(method, info, wall_s=wall, hit=hit, target=target,
                                       notes=all_notes, forgetting=control, rows=rows))


def _artifact_builder(lm: LM, method: Method, rows: Sequence[TrainRow],
                      val_rows: Sequence[TrainRow], settings: TrainSettings, *, seed: int,
                      progress: bool, parent: FitReport | None,
                      trained: dict[str, PreTrainedModel],
                      pruning: Pruning | None = None):
    """build(tmp): train from the master weights (or on from `parent`'s artifact), save the
    artifact and what training took into tmp; the model to serve goes into `trained`. A
    pruned training raises Pruned (with what it took) after the model is in `trained`."""
    base, half = lm.model, compute_dtype(lm) is not None

    def build(tmp: Path) -> None:
        source = master_weights(lm)  # float32; a copy of its own when the LM is 16-bit
        model = (method.resume(source, Path(parent.notes["artifact_dir"])) if parent
                 else method.prepare(source, own=source is not base))
        del source  # QLoRA trains on a 4-bit copy: the float32 weights can go,
        release_freed_memory()  # with what quantizing them left behind
        result = train(model, lm.tokenizer.pad_token_id, rows, val_rows, settings,
                       tmp / "work", seed=seed, progress=progress,
                       compute_dtype=compute_dtype(lm), pruning=pruning)
        # the float32 master weights: continuing keeps precision; sharded: gathered by
        # every process, written by rank 0 (the others build into a folder of their own)
        state = full_state_dict(model) if result.sharded else None
        if is_main() or not result.sharded:
            method.save(model, tmp, state_dict=state)
        del state
        shutil.rmtree(tmp / "work", ignore_errors=True)
        total = param_count(model.parameters())
        trainable = param_count(p for p in model.parameters() if p.requires_grad)
        work = training_work(Shape.of(model), result, trainable=trainable, total=total,
                             backward=method.backward_params(total, trainable),
                             mode="4bit" if method.quant else None)
        info = {**dataclasses.asdict(result), "total_params": total,
                "trainable_params": trainable, "work": work, "peak_mem_mb": peak_memory_mb(),
                "train_weights_mb": round(weights_mb(model), 6)}
        write_json(tmp / "train.json", info)
        if method.quant or (result.sharded and is_main()):  # served on the LM's own base,
            # as deployed (QLoRA); a sharded model's forward needs every process: rank 0
            # predicts alone, from the weights it saved
            del model
            trained["model"] = method.load(base, tmp)
        elif result.sharded:  # rank > 0: it stops after fit, serving nothing
            trained["model"] = model
        else:  # served in the LM's dtype
            trained["model"] = model.to(base.dtype) if half else model
        if result.pruned_at_epoch is not None:
            raise Pruned(info)

    return build


def _fit_report(method: Method, info: dict, *, wall_s: float, hit: bool, target: Path | None,
                notes: dict, forgetting: dict | None, rows: Sequence[TrainRow]) -> FitReport:
    total, trainable = info["total_params"], info["trainable_params"]
    tokens = int(info["train_tokens"])
    n_bwd = method.backward_params(total, trainable)
    return FitReport(
        wall_s=wall_s, trainable_params=trainable, total_params=total, train_tokens=tokens,
        flops_est=float(2 * total * tokens + 2 * n_bwd * tokens + 2 * trainable * tokens),
        peak_mem_mb=info["peak_mem_mb"] if not hit else peak_memory_mb(),
        artifact_bytes=_dir_bytes(target) if target else 0, cache_hit=hit, build_s=float(info["wall_s"]),
        notes=notes, forgetting=forgetting, examples_seen=frozenset(train_example_ids(rows)))


def _artifact_notes(lm: LM, method: Method, info: dict, *, merged: bool, key: str,
                    parent_key: str, target: Path | None) -> dict:
    """What fit.notes says about the artifact and its training."""
    base = lm.model
    dtype = str(base.dtype).removeprefix("torch.")
    return {
        "method": method.describe(),
        "merged_for_predict": merged,
        "artifact_key": key,
        "parent_artifact_key": parent_key or None,
        "artifact_dir": str(target) if target else None,  # None: pruned, not kept
        "pruned_at_epoch": info.get("pruned_at_epoch"),
        "train_wall_s": info["wall_s"],  # of the run that trained it (also on a cache hit)
        "train_precision": _precision(method, base.dtype, compute_dtype(lm) is not None),
        # what the trained model's weights held in memory (a 4-bit base: its packed size)
        "train_weights_mb": info.get("train_weights_mb"),
        "served_on": (f"the {dtype} base, adapter " + ("merged" if merged else "separate"))
        if method.peft else f"the tuned weights, {dtype}",
        "train_steps": info["steps"],
        # pad tokens among the tokens of the micro-batches trained on; and with the length
        # grouping switched (train.group_by_length), the same rows and steps
        "pad_share": info.get("pad_share"),
        "pad_share_other_grouping": info.get("pad_share_other"),
        # (rows, padded width) of the largest micro-batch: the activations' peak
        "largest_micro_batch": max(info.get("micro_batches") or [[0, 0]],
                                   key=lambda b: b[0] * b[1]),
        # data-parallel processes; rows per optimizer step = batch x grad_accum x processes
        "processes": info.get("processes", 1),
        "global_batch": info.get("global_batch"),
        # FSDP2 (train.shard=fsdp), and the model states rank 0 held: weights and optimizer
        # states, its shard and the whole (harness.tuning.shard.states_mb)
        "sharded": info.get("sharded", False),
        "states_mb": info.get("states_mb"),
        "lr_logged_max": info.get("lr_logged_max"),  # the Trainer's own record of the rate
        "epochs_run": info["epochs_run"],
        "stopped_early": info["stopped_early"],
        "best_val_loss": info["best_val_loss"],
        "val_loss": info["val_loss"],
        "train_loss_first_last": [info["train_loss"][0], info["train_loss"][-1]]
        if info["train_loss"] else None,
        "flops_formula": "2*N*T + 2*N_bwd*T + 2*N_train*T",
    }


def _precision(method: Method, dtype: torch.dtype, half: bool) -> str:
    name = str(dtype).removeprefix("torch.")
    quant = method.quant
    if quant:  # QLoRA: the adapters are then served on the LM's own base (see "served_on")
        return f"QLoRA: {quant.describe()} base, float32 adapters"
    return f"mixed: float32 weights, {name} compute" if half else name


def training_work(shape: Shape, result: TrainResult, *, trainable: int, total: int,
                  backward: int, mode: str | None = None) -> Work:
    """What a training run computed (harness.cost.work): every micro-batch's forward and
    backward (and its recomputed forward, with gradient checkpointing), the optimizer steps,
    and the validation passes. `mode`: see Shape.train_pass."""
    mode = mode or train_mode(trainable, total)
    work: Work = {"train_runs": 1, f"train_steps/{mode}": result.steps,
                  "optim_params": float(trainable) * result.steps}
    for rows, width in result.micro_batches:
        add(work, shape.train_pass(rows, width, trainable, backward, total, mode))
        if result.recomputed:  # gradient checkpointing: the forward again, in the backward
            add(work, shape.train_eval(rows, width))
    for _ in range(result.evals):
        for rows, width in result.eval_batches:
            add(work, shape.train_eval(rows, width))
    return work


def train_example_ids(rows: Sequence[TrainRow]) -> set[str]:
    """Ids of the examples whose questions appear in training rows ("qa:<id>", "raft:<id>")."""
    return {r.source.split(":", 1)[1] for r in rows if r.source.startswith(("qa:", "raft:"))}


UPDATE_MODES = ("continue", "retrain")


def update_tuned(lm: LM, method: Method, rows: Sequence[TrainRow], val_rows: Sequence[TrainRow],
                 train_settings: TrainSettings, *, mode: str, change: TaskUpdate,
                 parent: FitReport, seed: int, continue_epochs: float | None = None,
                 cache_dir: str | None = None, progress: bool = True) -> Tuned:
    """Teach a tuned model the new version of its task. `rows`/`val_rows` are built from the
    new version (`change.new`). retrain: from the base model on all of them (what the first fit did, on
    new data). continue: from the `parent` artifact, on the rows about changed documents
    and questions only, for `continue_epochs` (None: the same epochs as the first fit)."""
    if mode not in UPDATE_MODES:
        raise ConfigError(f"unknown tuned update mode '{mode}'; choose one of: "
                         f"{', '.join(UPDATE_MODES)}")
    start = None
    if mode == "continue":
        rows = rows_about(rows, change.changed_doc_ids, change.changed_example_ids)
        val_rows = rows_about(val_rows, change.changed_doc_ids, change.changed_example_ids)
        if not rows:
            raise ConfigError("continue: no training row is about a changed document or "
                             "question (nothing to learn); use the retrain mode")
        if continue_epochs:
            train_settings = dataclasses.replace(train_settings, epochs=float(continue_epochs),
                                                 max_steps=-1)
        start = parent
    return fit_tuned(lm, method, rows, val_rows, train_settings, split_hash=change.new.split_hash,
                     seed=seed, cache_dir=cache_dir, forgetting=False,
                     progress=progress, parent=start,
                     notes={"update_mode": mode, "update_rows": len(rows)})
