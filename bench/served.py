"""Served-model throughput (`make bench`, section "served"): against llama.cpp's server on a
free loopback port serving the bundled GGUF (harness/export/llamacpp.py), the same letter-scoring
requests sent three ways, each from an empty response cache:

    harness      ServedLM.score_letters with max_concurrency=8 (retries, rate limits, cache
                 writes, response checks included)
    bare         a plain asyncio loop: httpx.AsyncClient, a semaphore of 8, asyncio.gather
    sequential   ServedLM with max_concurrency=1

Requests per second of each and the ratios harness / bare (target >= 0.8: the harness's
bookkeeping must not cost throughput) and harness / sequential (what concurrency buys on
this server; llama-cpp-python answers one request at a time, so little here: vLLM batches
concurrent requests). The server's own time dominates and wanders by +-15% between
identical batches, so harness and bare alternate for `rounds` rounds and the medians are
compared."""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from harness.answering import with_letters
from harness.data.synthetic import generate as synthetic
from harness.export.llamacpp import ALIAS, LlamaServer, skip_reason
from harness.models.endpoint import Endpoint, EndpointSettings
from harness.models.served import ServedLM
from harness.prompting import PromptSettings, build_messages


def letter_prompts(n: int) -> tuple[list[str], list[int]]:
    """n distinct 4-choice questions as letter prompts in the plain format."""
    from harness.models.contract import plain_prompt

    _, examples = synthetic(n_entities=max(n // 4 + 1, 8), seed=1)
    examples = examples[:n]
    prompt = PromptSettings()
    msgs = [with_letters(build_messages(prompt, e.question), e.choices,
                         "Answer with the letter of the correct choice only.") for e in examples]
    return [plain_prompt(m) for m in msgs], [len(e.choices) for e in examples]


def _harness_rps(base_url: str, prompts: list[str], n_choices: list[int], concurrency: int) -> float:
    with tempfile.TemporaryDirectory() as cache:
        lm = ServedLM(Endpoint(EndpointSettings(base_url=base_url, name=ALIAS,
                                                max_concurrency=concurrency), Path(cache)))
        t0 = time.perf_counter()
        lm.score_letters(prompts, n_choices, top_k=20)
        seconds = time.perf_counter() - t0
    assert lm.meter.requests_sent == len(prompts)
    return len(prompts) / seconds


def _bare_rps(base_url: str, prompts: list[str], concurrency: int) -> float:
    async def go() -> None:
        gate = asyncio.Semaphore(concurrency)
        async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
            async def one(p: str) -> None:
                async with gate:
                    r = await client.post("/completions", json={
                        "model": ALIAS, "prompt": p, "max_tokens": 1, "temperature": 0,
                        "logprobs": 20})
                    r.raise_for_status()
                    r.json()

            await asyncio.gather(*(one(p) for p in prompts))

    t0 = time.perf_counter()
    asyncio.run(go())
    return len(prompts) / (time.perf_counter() - t0)


def bench_served(work: Path, n: int = 48, rounds: int = 3) -> dict:
    reason = skip_reason()
    if reason:
        return {"skipped": reason}
    work.mkdir(parents=True, exist_ok=True)
    server = LlamaServer(work).start()
    try:
        prompts, n_choices = letter_prompts(n)
        _bare_rps(server.base_url, prompts[:4], 2)  # warm-up: the server's first requests
        bare, harness = [], []
        for _ in range(rounds):
            bare.append(_bare_rps(server.base_url, prompts, 8))
            harness.append(_harness_rps(server.base_url, prompts, n_choices, 8))
        sequential = _harness_rps(server.base_url, prompts, n_choices, 1)
    finally:
        server.stop()
    h, b = statistics.median(harness), statistics.median(bare)
    return {"requests": n, "rounds": rounds, "harness_rps_c8": h, "bare_asyncio_rps_c8": b,
            "harness_rps_c1": sequential, "harness_over_bare": h / b, "c8_over_c1": h / sequential,
            "harness_rps_c8_each": [round(x, 3) for x in harness],
            "bare_rps_c8_each": [round(x, 3) for x in bare]}


QUICK = ["task.n_entities=45", "task.n_paraphrases=1", "task.split_ratios=[0.5,0.1,0.4]",
         "answer.generate=false", "progress=false", "seen_eval_limit=0",
         "answer.choice_scoring=letter", "strategy=prompt"]
SURE_NATS = 0.5  # an item the model is sure of: its top two letters this far apart


def _letter_logprobs(run_dir: Path) -> dict[str, list[float]]:
    import json

    rows = (run_dir / "predictions.jsonl").read_text().splitlines()
    return {r["id"]: r["choice_logprobs"] for r in map(json.loads, rows)}


def bench_served_agreement(work: Path, model: str = "bundled", n: int = 36) -> dict:
    """The same weights scored by letter in process and served by llama.cpp, on n items of
    the built-in task: how far each letter's log-probability lies apart (and, for scale, a
    letter mapping shifted by one), how often the same letter wins, and on the items the
    model is sure of (top two letters >= 0.5 nats apart). model: `bundled` (SmolLM2-135M:
    de-quantized in process, Q4_1 served) or `small-random` (random weights, f32 both sides,
    the whole vocabulary read since no letter reaches the top 20)."""
    from hydra import compose, initialize_config_dir

    from bench.small_model import small_random_gguf
    from harness.export.gguf import missing_reason
    from harness.models.contract import LETTER_FLOOR
    from harness.run.runner import CONF_DIR, run

    reason = skip_reason() or (missing_reason() if model == "small-random" else None)
    if reason:
        return {"skipped": reason}
    work = work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    if model == "small-random":
        gguf, hf = small_random_gguf(work)
        server = LlamaServer(work, model=gguf, alias="small-random", tokenizer=str(hf))
        local, extra = ["model=small-random"], ["answer.letter_top_k=49152"]
    else:
        server, local, extra = LlamaServer(work), ["model=smollm2-135m"], []
    server.start()
    try:
        def one(name: str, overrides: list[str]) -> dict:
            with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
                cfg = compose(config_name="config", overrides=[
                    *QUICK, *extra, f"limit={n}", f"results_dir={work}",
                    "prediction_cache=false", *overrides])
            return run(cfg, work / name)

        here = one("in_process", local)
        there = one("served", ["model=openai", *server.model_overrides()])
    finally:
        server.stop()
    a, b = _letter_logprobs(work / "in_process"), _letter_logprobs(work / "served")
    gap = [abs(x - y) for i in a for x, y in zip(a[i], b[i])
           if x > LETTER_FLOOR and y > LETTER_FLOOR]  # a letter outside the top k: a bound
    shifted = [abs(x - y) for i in a for x, y in zip(a[i], b[i][1:] + b[i][:1])
               if x > LETTER_FLOOR and y > LETTER_FLOOR]
    top = {i: max(range(len(a[i])), key=a[i].__getitem__) for i in a}
    top_b = {i: max(range(len(b[i])), key=b[i].__getitem__) for i in b}
    sure = [i for i in a if sorted(a[i])[-2] > LETTER_FLOOR  # both top letters read
            and sorted(a[i])[-1] - sorted(a[i])[-2] >= SURE_NATS]
    return {"model": model, "items": len(a), "mean_gap_nats": sum(gap) / len(gap),
            "max_gap_nats": max(gap), "shifted_mapping_gap_nats": sum(shifted) / len(shifted),
            "same_letter": sum(top[i] == top_b[i] for i in a) / len(a),
            "sure_items": len(sure),
            "sure_same_letter": (sum(top[i] == top_b[i] for i in sure) / len(sure)) if sure else None,
            "accuracy_in_process": here["choice_accuracy"], "accuracy_served": there["choice_accuracy"],
            "dtype_in_process": here.get("dtype")}
