"""The calibration measurements behind the machine profile (harness.cost.profile): each function
times one kind of work at a few shapes and returns (work, fastest seconds, repeat spread)
per shape, the work counted by the same code (harness.cost.work) that counts a run's.

They run the model, the trainer and the embedder, so they live with the apps that hold
those (the runner, harness-calibrate); `measurer` hands them to the profile, which fits and
caches what they measure and itself runs nothing."""

from __future__ import annotations

import copy
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.cost.profile import Measure, Point
from harness.cost.work import METER, Shape, Work, add, search_work


def measurer(lm: Any, get_embedder: Callable[[], Any] | None = None) -> Measure:
    """The profile's `measure` for this model (and embedder, built only if a section needs
    it): section name -> its calibration points."""
    def measure(name: str, repeats: int) -> dict[str, list[Point]]:
        if name == "forward":
            return {"forward": calibrate_forward(lm, repeats)}
        if name.startswith("decode/"):
            batch = int(name.split("/")[1])
            step, spread = calibrate_decode(lm, batch, repeats)
            return {name: [({f"decode_steps/{batch}": 1.0}, step, spread)]}
        if name in ("train/frozen", "train/full", "optim", "train_eval"):
            return calibrate_training(lm, repeats)  # one measurement gives all four
        if name == "trainer":  # whole short runs; the profile takes the passes out
            return {"trainer": calibrate_trainer(lm, repeats)}
        if name.startswith("embed/"):
            if get_embedder is None:
                raise RuntimeError("calibrating the embedder needs it")
            return {name: calibrate_embed(get_embedder(), repeats)}
        if name == "search":
            return {"search": calibrate_search(repeats)}
        if name == "bm25":
            return {"bm25": calibrate_bm25(repeats)}
        raise ValueError(f"unknown profile section {name}")
    return measure


def timed(fn: Callable[[], Any], repeats: int, warmup: int = 1,
          min_total_s: float = 0.5, max_repeats: int = 20,
          typical: bool = False) -> tuple[float, float]:
    """(fastest of the timings after `warmup` untimed calls, median / fastest - 1): at least
    `repeats` timings, more for a fast call until they add up to `min_total_s` (a median of
    three 30 ms timings is mostly noise), at most `max_repeats`. `typical`: the median
    instead of the fastest, for a call whose time wanders by itself (the optimizer step)."""
    for _ in range(warmup):
        fn()
    ts: list[float] = []
    while len(ts) < max(repeats, 1) or (sum(ts) < min_total_s and len(ts) < max_repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    best, median = min(ts), float(np.median(ts))
    if typical:
        return median, float(np.percentile(ts, 75) / max(median, 1e-9) - 1)
    return best, median / max(best, 1e-9) - 1


def _ids(lm: Any, rows: int, width: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    vocab = int(lm.model.config.vocab_size)
    return torch.randint(min(100, vocab - 1), vocab - 1, (rows, width), generator=g).to(lm.device)


def _max_width(lm: Any, want: int) -> int:
    limit = getattr(lm.model.config, "max_position_embeddings", None) or want
    return max(8, min(want, int(limit) // 2))


def calibrate_forward(lm: Any, repeats: int) -> list[Point]:
    """Whole-sequence passes as runs make them: choice scoring (a context pass, then the
    choices' pass over its shared KV cache; tokenising included) at several batch sizes
    and context lengths, the work counted by the same code that counts a run's."""
    points = []
    choices = ["the river", "a city in the north", "1907", "Maria Lopez"]
    # up to ~450 tokens: RAG prompts hold a 512-token passage budget; five shapes that span
    # the batch sizes and context lengths runs use, small enough to time in seconds
    for rows, words in ((1, 24), (4, 60), (16, 60), (4, 420)):
        contexts = _words(rows, words, rows * words)
        with METER.scope() as work:
            lm._score_choices(contexts, [choices] * rows, batch_size=rows, progress=False)
        best, spread = timed(lambda contexts=contexts, rows=rows: lm._score_choices(
            contexts, [choices] * rows, batch_size=rows, progress=False), repeats)
        points.append((work, best, spread))
    return points


def calibrate_decode(lm: Any, batch: int, repeats: int, steps: int = 8) -> tuple[float, float]:
    """Seconds per generation step at this batch size: (n + steps tokens - n tokens) / steps."""
    ids = _ids(lm, batch, _max_width(lm, 64))
    mask = torch.ones_like(ids)

    def gen(n: int) -> Callable[[], Any]:
        return lambda: lm.model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=n,
                                         min_new_tokens=n, do_sample=False, num_beams=1,
                                         eos_token_id=lm.stop_ids,
                                         pad_token_id=lm.tokenizer.pad_token_id)

    with torch.inference_mode():
        short, s1 = timed(gen(1), repeats)
        long, s2 = timed(gen(1 + steps), repeats)
    return max(long - short, 1e-6) / steps, max(s1, s2)


def _training_model(lm: Any) -> Any:
    """A copy of the weights training starts from (harness.tuning.fit.master_weights), free
    to be frozen and stepped."""
    from harness.tuning.fit import master_weights

    model = master_weights(lm)
    return copy.deepcopy(model) if model is lm.model else model


def _freeze_to_bottom(model: Any) -> None:
    """Freeze every weight but the smallest of the first layer, so gradients still flow back
    through every layer (as for LoRA) while almost nothing is trained."""
    params = list(model.parameters())
    for p in params:
        p.requires_grad_(False)
    min((p for n, p in model.named_parameters() if ".0." in n),
        key=lambda p: p.numel(), default=params[0]).requires_grad_(True)


def _autocast(lm: Any) -> Callable[[], Any]:
    """The autocast context training runs under (harness.tuning.fit.compute_dtype)."""
    from harness.tuning.fit import compute_dtype

    half = compute_dtype(lm)
    return (lambda: torch.autocast(lm.device.type, dtype=half)) if half else \
        (lambda: torch.autocast(lm.device.type, enabled=False))


TRAIN_SHAPES = [(2, 32), (4, 48)]  # rows x width of the timed training batches
# frozen without adapters: one shape; with LoRA on every linear: two (three points for the
# section's three terms: FLOPs, passes, adapter elements)
FROZEN_SHAPES = [TRAIN_SHAPES[-1]]
LORA_SHAPES = [TRAIN_SHAPES[0], TRAIN_SHAPES[-1]]


def _passes(lm: Any, net: Any, shape: Shape, repeats: int,
            shapes: list[tuple[int, int]] = TRAIN_SHAPES) -> list[Point]:
    """Forward + backward of `net` at each training shape, with the work they count."""
    autocast = _autocast(lm)
    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    total = sum(p.numel() for p in net.parameters())
    pts = []
    for rows, width in shapes:
        width = _max_width(lm, width)
        ids = _ids(lm, rows, width)

        def step(ids=ids) -> None:
            with autocast():
                loss = net(input_ids=ids, labels=ids).loss
            loss.backward()
            net.zero_grad(set_to_none=True)

        best, spread = timed(step, repeats, warmup=1)
        pts.append((shape.train_pass(rows, width, trainable, total, total), best, spread))
    return pts


def calibrate_training(lm: Any, repeats: int) -> dict[str, list[Point]]:
    """Forward + backward of both training modes, validation passes and the optimizer step,
    on the master weights under the run's autocast (as harness.tuning.loop trains)."""
    model = _training_model(lm)
    model.train()
    shape = Shape.of(model)
    params = list(model.parameters())
    out: dict[str, list[Point]] = {"train/frozen": [], "train/full": []}
    _freeze_to_bottom(model)
    out["train/frozen"] += _passes(lm, model, shape, repeats, FROZEN_SHAPES)
    model.requires_grad_(True)
    out["train/full"] += _passes(lm, model, shape, repeats)
    # LoRA layers on every linear (the lora strategy's default): what adapters add per position
    from peft import LoraConfig, get_peft_model

    for p in params:
        p.requires_grad_(False)
    lora = get_peft_model(copy.deepcopy(model), LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05,
                                                           target_modules="all-linear"))
    lora.train()
    out["train/frozen"] += _passes(lm, lora, Shape.of(lora), repeats, LORA_SHAPES)
    del lora
    out["optim"] = [_optimizer_point(params, repeats)]
    out["train_eval"] = _eval_points(lm, model, shape, repeats)
    return out  # the copy of the model is freed with this frame


def _optimizer_point(params: list[Any], repeats: int) -> Point:
    """The optimizer over every parameter (full tuning's case; an adapter's is ~free)."""
    for p in params:
        p.requires_grad_(True)
        p.grad = torch.randn_like(p) * 1e-3
    opt = torch.optim.AdamW(params, lr=1e-6)

    def opt_step() -> None:
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()

    # its state settles in a few steps; memory-bound, its step time wanders by itself (0.29 s
    # to 0.6 s here on an idle machine): the typical (median) step of six
    best, spread = timed(opt_step, max(repeats, 6), warmup=2, typical=True)
    return {"optim_params": float(sum(p.numel() for p in params))}, best, spread


def _eval_points(lm: Any, model: Any, shape: Shape, repeats: int) -> list[Point]:
    """Validation passes (no gradients) at the training shapes."""
    autocast = _autocast(lm)
    model.eval()
    pts = []
    with torch.no_grad():
        for rows, width in TRAIN_SHAPES:
            width = _max_width(lm, width)
            ids = _ids(lm, rows, width)

            def evaluate(ids=ids) -> None:
                with autocast():
                    model(input_ids=ids, labels=ids)

            best, spread = timed(evaluate, repeats, warmup=1)
            pts.append((shape.train_eval(rows, width), best, spread))
    return pts


def calibrate_trainer(lm: Any, repeats: int, steps: int = 2) -> list[Point]:
    """What the training loop (harness.tuning.loop.train: the Trainer, its scheduler,
    logging and callbacks) adds to the passes: a cost per run and per optimizer step,
    from runs of 1 and 1 + `steps` steps on one-token rows of a frozen model."""
    from harness.tuning.fit import compute_dtype
    from harness.tuning.loop import TrainSettings, train
    from harness.tuning.rows import TrainRow

    model = _training_model(lm)
    _freeze_to_bottom(model)
    half = compute_dtype(lm)
    ids = tuple(int(i) for i in _ids(lm, 1, 4)[0].tolist())
    rows = [TrainRow(ids, ids, f"doc:{i}") for i in range(1 + steps)]
    shape = Shape.of(model)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    points = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (1, 1 + steps):
            settings = TrainSettings(batch_size=1, max_steps=n, epochs=1, lr=1e-9)
            # a whole Trainer run per timing, its cost mostly set-up: one fewer timing suffices
            best, spread = timed(lambda settings=settings: train(
                model, lm.tokenizer.pad_token_id or 0, rows, [], settings, Path(tmp), seed=0,
                progress=False, compute_dtype=half), max(1, repeats - 1))
            work: Work = {"train_runs": 1, "train_steps/frozen": n, "optim_params": trainable * n}
            for _ in range(n):
                add(work, shape.train_pass(1, len(ids), trainable, total, total))
            points.append((work, best, spread))
    return points


def _words(n_texts: int, n_words: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    vocab = ["the", "model", "index", "answer", "question", "retrieval", "document", "river",
             "year", "founded", "city", "measure", "cost", "machine", "report", "library"]
    return [" ".join(rng.choice(vocab, n_words)) for _ in range(n_texts)]


# Cheap sections (the embedder, vector search, BM25: seconds in all) are timed at least this
# many times: their calls are short and noisy, and more timings cost little.
CHEAP_REPEATS = 3


def calibrate_embed(embedder: Any, repeats: int) -> list[Point]:
    repeats = max(repeats, CHEAP_REPEATS)
    points = []
    for n_texts, n_words in ((16, 12), (32, 24), (32, 120)):
        texts = _words(n_texts, n_words, n_words)
        best, spread = timed(lambda texts=texts: embedder.model.encode(
            texts, batch_size=embedder.batch_size, normalize_embeddings=True), repeats)
        points.append((embedder.work(texts), best, spread))
    return points


def calibrate_search(repeats: int) -> list[Point]:
    import faiss

    repeats = max(repeats, CHEAP_REPEATS)
    rng = np.random.default_rng(0)
    points = []
    for n, queries in ((5000, 16), (40000, 64)):
        base = rng.standard_normal((n, 384)).astype(np.float32)
        index = faiss.IndexFlatIP(384)
        index.add(base)
        q = rng.standard_normal((queries, 384)).astype(np.float32)
        best, spread = timed(lambda index=index, q=q: index.search(q, 10), repeats)
        points.append((search_work(queries, n, 384), best, spread))
    return points


def calibrate_bm25(repeats: int) -> list[Point]:
    import bm25s

    repeats = max(repeats, CHEAP_REPEATS)
    points = []
    for n_docs, n_queries in ((500, 16), (4000, 128)):
        corpus = [t.split() for t in _words(n_docs, 60, n_docs)]
        queries = [t.split() for t in _words(n_queries, 8, 1)]
        tokens = sum(len(t) for t in corpus)
        index = bm25s.BM25()
        best, spread = timed(lambda corpus=corpus, index=index: index.index(
            corpus, show_progress=False), repeats)
        points.append(({"bm25_tokens": tokens}, best, spread))
        best, spread = timed(lambda queries=queries, index=index: index.retrieve(
            queries, k=10, show_progress=False, n_threads=1), repeats)
        points.append(({"bm25_queries": n_queries}, best, spread))
    return points
