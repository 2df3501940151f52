"""The benchmark script runs end to end on the tiny model (its numbers mean nothing there;
`make bench` runs it on the bundled model), a few sections per test so that they can run
side by side."""

from __future__ import annotations

import json
import os

from bench.perf import main, padding_share
from harness.tuning.rows import TrainRow

BASE = ["--model", "tiny-random", "--questions", "8", "--batch-size", "4", "--train-steps", "2",
        "--served-requests", "8", "--served-rounds", "1",
        "--sweep-args", "strategy=prompt,rag", "task.n_entities=15"]


def _bench(tmp_path, *sections: str, extra: tuple[str, ...] = ()) -> dict:
    assert main([*BASE, *extra, "--out", str(tmp_path), "--only", *sections]) == 0
    out = json.loads((tmp_path / "perf.json").read_text())
    assert set(out["section_s"]) == set(sections) - {"dtype_sweep"}  # seconds per section
    return out


def _checks(out: dict) -> set[str]:
    return {c["what"] for c in out["checks"]}


def test_in_process_sections(tmp_path):
    out = _bench(tmp_path, "scoring", "generation", "training", "questions", "free_form")
    s = out["scoring"]
    assert s["max_abs_logprob_diff_vs_naive"] < 1e-3  # same numbers as the naive loop
    assert s["harness_s"] > 0 and s["naive_s"] > 0 and s["floor_s"] > 0
    assert out["generation"]["harness_tokens"] == out["generation"]["raw_tokens"]
    assert 0 <= out["training"]["padding_share_length_grouped"] < 1
    q = out["questions"]  # 200 cloze questions from a 1 MB corpus; the llm generator ran
    assert q["cloze_questions"] == 200 and q["cloze_corpus_bytes"] >= 1_000_000
    assert q["llm_passages"] == 16 and q["llm_s"] > 0 and 0 <= q["llm_kept"] <= 16
    ff = out["free_form"]  # the scorer ran on 96 answers; the judge graded them
    assert ff["answers"] == 96 and ff["semantic_s"] > 0 and ff["judge_answers_per_s"] > 0
    assert ff["semantic_calibration_auc"] > 0.5  # real MiniLM: naming the gold moves the cosine
    assert _checks(out) >= {"200 cloze questions from 1 MB, seconds",
                            "scoring vs naive per-choice loop", "training tok/s vs bare loop"}


def test_retrieval_and_sweep_sections(tmp_path):
    out = _bench(tmp_path, "retrieval", "sweep",
                 extra=("--retrievers", "dense", "bm25", "--chunk-sizes", "120"))
    r = out["retrieval"]  # retrieval only over a 2 x 1 grid (make bench: 3 x 3); BM25 build speed
    assert r["sweep_runs"] == 2 and r["sweep_s"] > 0 and r["bm25_documents_per_s"] > 0
    sw = out["sweep"]
    assert sw["first_complete_runs"] == sw["cached_complete_runs"] == 2
    assert sw["first_prediction_cache_hits"] == 0 < sw["cached_prediction_cache_hits"]
    # the re-run reads the caches: counted, not timed (seconds belong to the bench's ratio,
    # and a busy machine can make a cached tiny-model sweep no faster than its first run)
    assert sw["first_fit_cache_hits"] == 0 < sw["cached_fit_cache_hits"]
    assert sw["cached_s"] > 0 and sw["first_s"] > 0
    assert "quick sweep: cached re-run / first run" in _checks(out)


def test_dtype_section(tmp_path):
    # float32 vs bfloat16 on the same inputs, and the sweep in each dtype (of one strategy
    # here: the section's code is the same for any number)
    d = _bench(tmp_path, "dtype", "dtype_sweep",
               extra=("--sweep-args", "strategy=prompt", "task.n_entities=15"))["dtype"]
    assert 0 <= d["scoring_same_choice"] <= 1 and d["scoring_max_logprob_diff"] >= 0
    assert len(d["training_loss_float32"]) == len(d["training_loss_bfloat16"]) == 2
    assert set(d["quick_accuracy_float32"]) == set(d["quick_accuracy_bfloat16"]) == {"prompt"}
    assert isinstance(d["bf16_fit_as_default"], bool)


def test_cost_model_section(tmp_path):
    # from the session's machine profiles: the section's sweeps and checks, without
    # calibrating every section again (tests/cost times harness-calibrate from nothing)
    assert main([*BASE, "--out", str(tmp_path), "--only", "cost_model",
                 "--cost-profiles-from", os.environ["ADAPTBENCH_PROFILE_DIR"],
                 "--sweep-args", "strategy=prompt", "task.n_entities=15"]) == 0
    c = json.loads((tmp_path / "perf.json").read_text())["cost_model"]
    # the same profile prices the idle and the busy runs alike
    assert c["calibrate_all_sections_s"] > 0 and c["measured_busy_over_idle"] > 0
    assert 1.0 <= c["modelled_busy_over_idle"] <= 1.1


def test_served_and_multiprocess_sections(tmp_path):
    out = _bench(tmp_path, "served", "multiprocess", "served_agreement",
                 extra=("--agreement-items", "8"))
    sv = out["served"]  # llama.cpp's server (skipped, saying why, where it is not built)
    assert "skipped" in sv or (sv["requests"] == 8 and sv["harness_rps_c8"] > 0
                               and sv["bare_asyncio_rps_c8"] > 0 and sv["harness_rps_c1"] > 0)
    mp = out["multiprocess"]
    assert mp["one_process_rows_per_s"] > 0 and mp["two_process_rows_per_s"] > 0
    ag = out["served_agreement"]  # the small model here (make bench: the bundled one)
    assert "skipped" in ag or (ag["model"] == "small-random" and ag["items"] == 8
                               and ag["mean_gap_nats"] < 0.01 < ag["shifted_mapping_gap_nats"])


def test_memory_section(tmp_path):
    """The memory section's bookkeeping, on the tiny model's prompt run (the ratio means
    little at that size: tests/cost/test_memory_measured.py holds the small model to it)."""
    assert main([*BASE, "--out", str(tmp_path), "--only", "memory", "--memory-runs", "prompt"]) == 0
    m = json.loads((tmp_path / "perf.json").read_text())["memory"]
    assert m["prompt_phase"] == "predict" and m["prompt_measured_mb"] > 0
    assert m["worst_ratio_off"] == abs(m["prompt_ratio"] - 1)


def test_padding_share_by_hand():
    rows = [TrainRow(tuple(range(n)), tuple(range(n)), f"r{n}") for n in (2, 4, 4, 8)]
    # batches [2, 4] -> 6 real of 8; [4, 8] -> 12 real of 16: 1 - 18/24
    assert padding_share(rows, [[0, 1], [2, 3]]) == 1 - 18 / 24


def test_search_section(tmp_path):
    """A 2-trial lora search three ways (tiny model: the counts are real, the scores noise)."""
    assert main([*BASE, "--out", str(tmp_path), "--only", "search", "--search-trials", "2",
                 "--search-args", "++per_strategy.lora.train.max_steps=3"]) == 0
    s = json.loads((tmp_path / "perf.json").read_text())["search"]
    assert s["independent_trainings"] == 2  # each run trains; picked on the test split
    assert s["search_trainings"] == 3  # 2 trials + the test run training its pick again
    assert s["search_plus_trainings"] == 2  # the test run reused its trial's adapter
    assert s["search_train_steps"] == 3 * 3 and s["search_plus_train_steps"] <= 2 * 3
    assert s["search_chose_trial"] == s["search_plus_chose_trial"] or s["search_plus_pruned"]
    assert 0 <= s["search_chosen_validation"] <= 1
    assert s["search_plus_modelled_usd"] < s["search_modelled_usd"]


def test_scaling_section(tmp_path):
    """make-task and the index build at 1x and 16x of a small corpus (3 documents at 1x;
    `make bench` adds 4x)."""
    assert main([*BASE, "--out", str(tmp_path), "--only", "scaling", "--scaling-docs", "3",
                 "--scaling-scales", "1", "16"]) == 0
    out = json.loads((tmp_path / "perf.json").read_text())
    s = out["scaling"]
    assert s["x16_mb"] > 15 * s["x1_mb"] and "x4_mb" not in s
    for what in ("make_task", "index"):  # each child's own peak, not the test worker's
        assert all(s[f"{what}_x{k}_s"] > 0 and 0 < s[f"{what}_x{k}_peak_mb"] < 1500 for k in (1, 16))
        assert s[f"{what}_x16_over_x1"] == s[f"{what}_x16_s"] / s[f"{what}_x1_s"]
    assert {"make-task: 16x corpus / 1x, seconds", "index build: 16x corpus / 1x, seconds"} \
        <= _checks(out)
