"""The one training loop every tuned strategy shares: Hugging Face `Trainer` (so the same
config runs under `accelerate launch` on many GPUs and on this CPU), with validation loss
each epoch or every N steps, early stopping, the best checkpoint kept, and a clear error
when the loss stops being finite."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import (
    EarlyStoppingCallback,
    PreTrainedModel,
    PrinterCallback,
    ProgressCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from harness.errors import ConfigError
from harness.ranks import world
from harness.tuning.rows import IGNORE, TrainRow, plan_batches
from harness.tuning.shard import SHARD_MODES, shard, states_mb
from harness.types import Pruning

SCHEDULES = ("linear", "cosine", "constant", "constant_with_warmup")


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass(frozen=True)
class TrainSettings:
    lr: float = 1e-4  # LoRA usually wants ~10x the full-tuning rate (Biderman et al. 2024)
    lr_schedule: str = "cosine"  # linear | cosine | constant | constant_with_warmup
    warmup_ratio: float = 0.05
    batch_size: int = 8  # rows per step per device; higher: more memory
    grad_accum: int = 1  # effective batch = batch_size * grad_accum * devices
    epochs: float = 8.0  # early stopping usually ends it sooner
    max_steps: int = -1  # > 0 overrides epochs
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    group_by_length: bool = True  # batches of similar length: less padding, faster steps
    eval_every: int = 0  # 0: validate each epoch; N > 0: every N steps
    # Validation loss is a poor guide to choice accuracy when injecting facts (on
    # synthetic_facts it rose after epoch 3 while accuracy kept rising), so by default the
    # final weights are served; `best` + patience serves the lowest-validation-loss checkpoint.
    early_stopping_patience: int = 0  # validations without improvement before stopping; 0: off
    checkpoint: str = "last"  # last: the final weights; best: the lowest validation loss
    # Recompute each decoder layer's activations in the backward pass (non-reentrant
    # torch.utils.checkpoint): a layer's input is kept instead of everything it saves, for
    # about one more forward pass of compute. The same weights (not part of the artifact key).
    gradient_checkpointing: bool = False
    # none: each process holds the whole model states (data parallel); fsdp: PyTorch FSDP2
    # shards weights, gradients and optimizer states over the processes (harness.tuning.shard;
    # full tuning; one process: nothing to shard)
    shard: str = "none"

    @classmethod
    def from_config(cls, train: Mapping[str, Any]) -> TrainSettings:
        """The settings of a strategy's `train` block. Its `lr_scale` multiplies `lr`, so one
        sweep can move every method's rate by the same factor although their own rates
        differ (experiment=learn_forget); the product is the rate trained with and the one
        the artifact's cache key holds."""
        train = dict(train)
        scale = float(train.pop("lr_scale", 1.0))
        if not scale > 0:
            raise ConfigError(f"train.lr_scale must be > 0, got {scale}")
        if "lr" in train and train["lr"] is not None:
            train["lr"] = float(train["lr"]) * scale
        return cls(**train)

    def __post_init__(self) -> None:
        if self.lr_schedule not in SCHEDULES:
            raise ConfigError(f"unknown lr_schedule '{self.lr_schedule}'; choose one of: "
                             f"{', '.join(SCHEDULES)}")
        if not self.lr > 0 or self.batch_size < 1 or self.grad_accum < 1:
            raise ConfigError("train.lr must be > 0, train.batch_size and train.grad_accum >= 1")
        if self.epochs <= 0 and self.max_steps <= 0:
            raise ConfigError("train.epochs or train.max_steps must be > 0")
        if self.shard not in SHARD_MODES:
            raise ConfigError(f"unknown train.shard '{self.shard}'; choose one of: {', '.join(SHARD_MODES)}")
        if self.shard == "fsdp" and self.checkpoint == "best":
            raise ConfigError("train.shard=fsdp serves the last weights (keeping the best "
                              "checkpoint of sharded weights is not supported): set train.checkpoint=last")
        if self.checkpoint not in ("best", "last"):
            raise ConfigError(f"unknown train.checkpoint '{self.checkpoint}'; choose one of: best, last")
        if self.checkpoint == "last" and self.early_stopping_patience > 0:
            raise ConfigError("train.checkpoint=last trains to the end: set "
                             "train.early_stopping_patience=0 (early stopping keeps the best)")


@dataclass
class TrainResult:
    wall_s: float
    steps: int
    epochs_run: float
    train_tokens: int  # non-padding tokens seen by the model in training (all passes)
    train_loss: list[float] = field(default_factory=list)  # per logged step
    val_loss: list[float] = field(default_factory=list)  # per validation
    best_val_loss: float | None = None
    stopped_early: bool = False
    # what the steps computed, for harness.cost.work: (rows, padded width) of every micro-batch
    # trained on, of every batch of one validation pass, and how many validations ran
    micro_batches: list[tuple[int, int]] = field(default_factory=list)
    eval_batches: list[tuple[int, int]] = field(default_factory=list)
    evals: int = 0
    processes: int = 1  # data-parallel processes (harness.ranks)
    global_batch: int = 0  # rows per optimizer step: batch_size x grad_accum x processes
    lr_logged_max: float | None = None  # the highest learning rate the Trainer logged
    pruned_at_epoch: float | None = None  # a search's pruner stopped training here
    # the share of pad tokens in the micro-batches trained on, and what the same rows and
    # steps would pad with length grouping the other way (train.group_by_length)
    pad_share: float | None = None
    pad_share_other: float | None = None
    recomputed: bool = False  # gradient checkpointing: each micro-batch's forward ran twice
    sharded: bool = False  # FSDP2 over the processes (train.shard=fsdp)
    # MB of weights and optimizer states this process held at the end, and unsharded
    # (harness.tuning.shard.states_mb)
    states_mb: dict[str, float] = field(default_factory=dict)


class _RowDataset(torch.utils.data.Dataset):
    def __init__(self, rows: Sequence[TrainRow]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        return {"input_ids": list(self.rows[i].input_ids), "labels": list(self.rows[i].labels)}


class PadCollator:
    """Right-pads a batch (positions stay 0..n-1 for every row); padded labels are ignored."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, batch: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        width = max(len(b["input_ids"]) for b in batch)
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, b in enumerate(batch):
            n = len(b["input_ids"])
            ids[i, :n] = torch.tensor(b["input_ids"])
            labels[i, :n] = torch.tensor(b["labels"])
            mask[i, :n] = 1
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}


class _QuietProgress(ProgressCallback):
    """The progress bar without a printed line per logged step."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        return control


class _Watch(TrainerCallback):
    """Records losses and stops the run on a non-finite loss."""

    def __init__(self) -> None:
        self.train_loss: list[float] = []
        self.val_loss: list[float] = []
        self.lr: list[float] = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "learning_rate" in logs:
            self.lr.append(float(logs["learning_rate"]))
        for key, store in (("loss", self.train_loss), ("eval_loss", self.val_loss)):
            if key in logs:
                value = float(logs[key])
                if not math.isfinite(value):
                    raise TrainingDivergedError(
                        f"{'training' if key == 'loss' else 'validation'} loss became {value} at "
                        f"step {state.global_step} (epoch {state.epoch:.2f}); lower train.lr, "
                        f"set train.max_grad_norm, or use dtype float32"
                    )
                store.append(value)


class _Prune(TrainerCallback):
    """After each validation, asks `pruning(epoch, validation loss, last)` (a search's trial
    reporter) whether to stop; records the epoch it stopped at."""

    def __init__(self, pruning: Pruning, steps_per_epoch: int) -> None:
        self.pruning, self.steps_per_epoch = pruning, steps_per_epoch
        self.at: float | None = None

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        # the Trainer sees all epochs as one long epoch of the planned order: count real ones
        epoch = round(state.global_step / self.steps_per_epoch, 4)
        loss = (metrics or {}).get("eval_loss")
        last = state.global_step >= state.max_steps  # done anyway: reported, never pruned
        if loss is not None and self.at is None and self.pruning(epoch, float(loss), last) \
                and not last:
            self.at = epoch
            control.should_training_stop = True
        return control


def epoch_orders(rows: Sequence[TrainRow], settings: TrainSettings, seed: int,
                 epochs: int) -> list[int]:
    """Row indices for `epochs` epochs, each planned by `plan_batches` with its own seed;
    a short last batch is topped up from the epoch's first rows so that batches stay
    aligned when the sequence is cut into `batch_size` pieces."""
    order: list[int] = []
    for e in range(epochs):
        batches = plan_batches(rows, settings.batch_size, seed + e, settings.group_by_length)
        flat = [i for b in batches for i in b]
        short = len(flat) % settings.batch_size
        if short:
            flat += flat[: settings.batch_size - short]
        order += flat
    return order


@dataclass(frozen=True)
class _BatchPlan:
    """How many optimizer steps a training run takes, in what row order."""
    processes: int
    steps_per_epoch: int
    total_steps: int
    order: list[int]  # row indices, micro-batch by micro-batch

    @classmethod
    def of(cls, rows: Sequence[TrainRow], settings: TrainSettings, seed: int) -> _BatchPlan:
        # Under several processes (harness.ranks) each step takes grad_accum micro-batches on
        # every process: consecutive micro-batches of the planned order go to processes in
        # turn (accelerate's batch sharding), so a step sees the rows one process would see
        # with grad_accum x processes, and the loss is averaged over all of them.
        processes = world()[1]
        micro_per_epoch = math.ceil(len(rows) / settings.batch_size)
        steps_per_epoch = max(1, math.ceil(micro_per_epoch / (settings.grad_accum * processes)))
        total = settings.max_steps if settings.max_steps > 0 else math.ceil(
            settings.epochs * steps_per_epoch)
        order = epoch_orders(rows, settings, seed, math.ceil(total / steps_per_epoch) + 1)
        return cls(processes, steps_per_epoch, total, order)


def _training_args(model: PreTrainedModel, settings: TrainSettings, plan: _BatchPlan, work_dir: Path,
                   *, has_val: bool, seed: int, progress: bool,
                   compute_dtype: torch.dtype | None) -> TrainingArguments:
    keep_best = has_val and settings.checkpoint == "best"
    every = settings.eval_every or plan.steps_per_epoch
    return TrainingArguments(
        output_dir=str(work_dir / "checkpoints"),
        learning_rate=settings.lr,
        lr_scheduler_type=settings.lr_schedule,
        warmup_steps=settings.warmup_ratio,  # a float below 1 is a ratio of all steps
        per_device_train_batch_size=settings.batch_size,
        per_device_eval_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.grad_accum,
        max_steps=plan.total_steps,
        weight_decay=settings.weight_decay,
        max_grad_norm=settings.max_grad_norm,
        train_sampling_strategy="sequential",  # the planned order already shuffles and groups
        eval_strategy="steps" if has_val else "no",
        save_strategy="steps" if keep_best else "no",
        eval_steps=every,
        save_steps=every,
        load_best_model_at_end=keep_best,
        metric_for_best_model="eval_loss" if has_val else None,
        greater_is_better=False if has_val else None,
        save_total_limit=1,
        save_only_model=True,
        logging_steps=1,
        logging_nan_inf_filter=False,
        report_to=[],
        seed=seed,
        data_seed=seed,
        disable_tqdm=not progress,
        dataloader_num_workers=0,
        dataloader_pin_memory=False,
        remove_unused_columns=False,
        use_cpu=next(model.parameters()).device.type == "cpu",
        gradient_checkpointing=settings.gradient_checkpointing,
        # non-reentrant: works with frozen inputs (LoRA, QLoRA) without forcing input grads
        gradient_checkpointing_kwargs={"use_reentrant": False},
        bf16=compute_dtype == torch.bfloat16,
        fp16=compute_dtype == torch.float16,
    )


def train(model: PreTrainedModel, pad_id: int, rows: Sequence[TrainRow],
          val_rows: Sequence[TrainRow], settings: TrainSettings, work_dir: Path, *,
          seed: int, progress: bool = True, compute_dtype: torch.dtype | None = None,
          pruning: Pruning | None = None) -> TrainResult:
    """Train `model` in place on `rows`; with val rows, the best checkpoint by validation
    loss is loaded back at the end. Batch order is planned here (length-grouped, one
    document's phrasings never in one batch) and fed to the Trainer sequentially.
    `compute_dtype` bfloat16 / float16: mixed precision — the model's float32 weights are the
    master copy and the forward and backward passes run under autocast in that dtype.
    `pruning(epoch, validation loss, last) -> stop?`: a search's pruner, asked after each
    validation (`last`: the final one, which it records but never stops).
    With train.shard=fsdp under several processes the model is sharded in place first
    (harness.tuning.shard); `TrainResult.sharded` says so."""
    if not rows:
        raise ConfigError("no training rows: the task's train split and corpus are empty")
    plan = _BatchPlan.of(rows, settings, seed)
    has_val = len(val_rows) > 0
    args = _training_args(model, settings, plan, work_dir, has_val=has_val, seed=seed,
                          progress=progress, compute_dtype=compute_dtype)
    sharded = settings.shard == "fsdp" and plan.processes > 1
    if sharded:
        shard(model)
    watch = _Watch()
    callbacks: list[TrainerCallback] = [watch]
    if args.load_best_model_at_end and settings.early_stopping_patience > 0:
        callbacks.append(EarlyStoppingCallback(settings.early_stopping_patience))
    prune = _Prune(pruning, plan.steps_per_epoch) if pruning is not None and has_val else None
    if prune is not None:
        callbacks.append(prune)
    trainer = Trainer(model=model, args=args,
                      train_dataset=_RowDataset([rows[i] for i in plan.order]),
                      eval_dataset=_RowDataset(val_rows) if has_val else None,
                      data_collator=PadCollator(pad_id), callbacks=callbacks)
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    if progress:
        trainer.add_callback(_QuietProgress)
    t0 = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - t0
    if args.world_size != plan.processes:
        raise RuntimeError(f"the Trainer runs {args.world_size} processes, the environment "
                           f"says {plan.processes}")
    result = _result(rows, val_rows, settings, plan, trainer, watch, wall)
    result.pruned_at_epoch = prune.at if prune is not None else None
    result.recomputed = settings.gradient_checkpointing
    result.sharded, result.states_mb = sharded, states_mb(model, trainer.optimizer)
    consumed = len(plan.order[: result.steps * result.global_batch])
    other = dataclasses.replace(settings, group_by_length=not settings.group_by_length)
    result.pad_share = pad_share(rows, plan.order[:consumed], settings.batch_size)
    result.pad_share_other = pad_share(rows, _BatchPlan.of(rows, other, seed).order[:consumed],
                                       settings.batch_size)
    return result


def pad_share(rows: Sequence[TrainRow], order: Sequence[int], batch_size: int) -> float | None:
    """The share of pad tokens when `order` is cut into micro-batches of `batch_size` rows,
    each padded to its longest row (PadCollator)."""
    padded = real = 0
    for j in range(0, len(order), batch_size):
        lengths = [len(rows[i].input_ids) for i in order[j:j + batch_size]]
        padded += len(lengths) * max(lengths)
        real += sum(lengths)
    return round(1 - real / padded, 4) if padded else None


def _result(rows: Sequence[TrainRow], val_rows: Sequence[TrainRow], settings: TrainSettings,
            plan: _BatchPlan, trainer: Trainer, watch: _Watch, wall: float) -> TrainResult:
    """What a training run did: the rows it consumed, its batches, losses and rates."""
    steps = trainer.state.global_step
    global_batch = settings.batch_size * settings.grad_accum * plan.processes
    consumed = plan.order[: steps * global_batch]
    b = settings.batch_size
    return TrainResult(
        wall_s=wall,
        steps=steps,
        epochs_run=round(steps / plan.steps_per_epoch, 4),
        train_tokens=sum(len(rows[i].input_ids) for i in consumed),
        train_loss=watch.train_loss,
        val_loss=watch.val_loss,
        best_val_loss=trainer.state.best_metric,
        stopped_early=steps < plan.total_steps,
        micro_batches=[(len(chunk), max(len(rows[i].input_ids) for i in chunk))
                       for chunk in (consumed[j:j + b] for j in range(0, len(consumed), b))],
        eval_batches=[(len(chunk), max(len(r.input_ids) for r in chunk))
                      for chunk in (val_rows[j:j + b] for j in range(0, len(val_rows), b))],
        evals=len(watch.val_loss),
        processes=plan.processes,
        global_batch=global_batch,
        lr_logged_max=max(watch.lr) if watch.lr else None,
    )
