"""float32 against bfloat16 on the same inputs, in one run (`make bench`, section "dtype"):
scoring (the share of questions with the same chosen choice, the largest log-prob
difference, questions/s), greedy generation (the share of identical answers, tokens/s),
mixed-precision training (loss at every step, tokens/s) and the quick sweep in each dtype
(wall time, the five accuracies with their 95% intervals, the ranking). bfloat16 is fit to
be the default only if every accuracy lies inside the other dtype's interval and the
ranking is the same; the section says whether that holds."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from harness.models import get_lm
from harness.system import cpu_has_bf16
from harness.tuning.loop import TrainSettings, train
from harness.tuning.methods import FullSettings, Method


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def bench_dtype(model_cfg: dict, scoring_inputs, training_rows, *, n: int, batch_size: int,
                train_steps: int, sweep_model: list[str], work: Path, sweep: bool = True,
                sweep_args: tuple[str, ...] = ()) -> dict:
    lms = {dt: get_lm({**model_cfg, "dtype": dt}) for dt in ("float32", "bfloat16")}
    contexts, choices, _ = scoring_inputs(lms["float32"], n)
    out: dict = {"cpu_bf16": cpu_has_bf16()}
    scores, gens, losses = {}, {}, {}
    for dt, lm in lms.items():
        lm.score_choices(contexts[:batch_size], choices[:batch_size], batch_size=batch_size)  # warm
        scores[dt], out[f"scoring_s_{dt}"] = _timed(
            lambda lm=lm: lm.score_choices(contexts, choices, batch_size=batch_size))
        gens[dt], out[f"generation_s_{dt}"] = _timed(
            lambda lm=lm: lm.generate(contexts[: n // 2], max_new_tokens=24, batch_size=batch_size))
        out[f"generation_tok_per_s_{dt}"] = sum(g.completion_tokens for g in gens[dt]) / \
            out[f"generation_s_{dt}"]
        rows = training_rows(lm)
        source = lm.load_float32() if lm.load_float32 else lm.model
        model = Method(FullSettings()).prepare(source).float()
        torch.manual_seed(0)
        res, out[f"training_s_{dt}"] = _timed(lambda model=model, rows=rows, lm=lm, dt=dt: train(
            model, lm.tokenizer.pad_token_id, rows, [], TrainSettings(
                lr=1e-4, batch_size=8, max_steps=train_steps, warmup_ratio=0.0),
            work / f"train-{dt}", seed=0, progress=False,
            compute_dtype=None if dt == "float32" else torch.bfloat16))
        losses[dt] = res.train_loss
        out[f"training_tok_per_s_{dt}"] = res.train_tokens / res.wall_s
        del model
    a = np.array([s.logprobs for s in scores["float32"]])
    b = np.array([s.logprobs for s in scores["bfloat16"]])
    la, lb = np.array(losses["float32"]), np.array(losses["bfloat16"])
    out.update({
        "scoring_same_choice": float((a.argmax(1) == b.argmax(1)).mean()),
        "scoring_max_logprob_diff": float(np.abs(a - b).max()),
        "generation_same_answer": float(np.mean([x.text == y.text for x, y in
                                                 zip(gens["float32"], gens["bfloat16"])])),
        "training_loss_float32": [round(float(x), 4) for x in la],
        "training_loss_bfloat16": [round(float(x), 4) for x in lb],
        "training_loss_max_rel_diff": float(np.max(np.abs(lb - la) / la)),
        "scoring_speedup": out["scoring_s_float32"] / out["scoring_s_bfloat16"],
        "generation_speedup": out["generation_tok_per_s_bfloat16"] / out["generation_tok_per_s_float32"],
        "training_speedup": out["training_tok_per_s_bfloat16"] / out["training_tok_per_s_float32"],
    })
    if sweep:
        out.update(quick_sweeps(sweep_model, work / "sweeps", sweep_args))
    return out


def quick_sweeps(model_overrides: list[str], work: Path, sweep_args=()) -> dict:
    """experiment=quick in float32 and in bfloat16, each without prediction or artifact
    caches (a warm-up run converts the model and embeds the corpus first, for both)."""
    from harness.report.variants import make_variants
    from harness.run_folders import read_runs

    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    cmd = [sys.executable, "-m", "harness.run.runner"]
    base = ["progress=false", f"cache_dir={work / 'cache'}", *model_overrides]
    warm = subprocess.run([*cmd, *base, "strategy=rag", "limit=1", "answer.generate=false",
                           "task.n_entities=45", "task.n_paraphrases=1",
                           "task.split_ratios=[0.5,0.1,0.4]", f"hydra.run.dir={work / 'warm'}"],
                          capture_output=True, text=True)
    if warm.returncode != 0:
        raise RuntimeError(f"warm-up failed:\n{warm.stderr[-2000:]}")
    out: dict = {}
    est = {}
    for dt in ("float32", "bfloat16"):
        t0 = time.perf_counter()
        res = subprocess.run([*cmd, "-m", *base, "experiment=quick", f"model.dtype={dt}", *sweep_args,
                              f"hydra.sweep.dir={work / dt}"], capture_output=True, text=True)
        out[f"quick_sweep_s_{dt}"] = time.perf_counter() - t0
        if res.returncode != 0:
            raise RuntimeError(f"the {dt} quick sweep failed:\n{res.stderr[-3000:]}")
        variants = make_variants(read_runs([work / dt]))
        est[dt] = {v.name: v.estimate for v in variants}
        out[f"quick_accuracy_{dt}"] = {v.name: f"{v.estimate.mean:.3f} [{v.estimate.low:.3f}, "
                                              f"{v.estimate.high:.3f}]" for v in variants}
        out[f"quick_ranking_{dt}"] = " > ".join(
            sorted(est[dt], key=lambda n, e=est[dt]: (-e[n].mean, n)))
    inside = all(est["float32"][n].low <= est["bfloat16"][n].mean <= est["float32"][n].high
                 and est["bfloat16"][n].low <= est["float32"][n].mean <= est["bfloat16"][n].high
                 for n in est["float32"] if n in est["bfloat16"])
    same = out["quick_ranking_float32"] == out["quick_ranking_bfloat16"]
    out["quick_sweep_speedup"] = out["quick_sweep_s_float32"] / out["quick_sweep_s_bfloat16"]
    out["accuracies_inside_other_ci"] = inside
    out["same_ranking"] = same
    out["bf16_fit_as_default"] = inside and same
    json.dumps(out)  # plain values only
    return out
