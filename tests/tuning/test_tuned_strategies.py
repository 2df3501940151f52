"""lora / full / hybrid end to end on the tiny model, the artifact cache, and its key."""

from __future__ import annotations

import dataclasses
import json
import time

import pytest

from harness.run.runner import run
from harness.tuning import artifact_key
from harness.tuning.loop import TrainSettings
from harness.tuning.rows import TrainRow
from tests.conftest import compose_cfg

SMALL = ["model=tiny-random", "cache_dir=${results_dir}/cache", "task.n_entities=6",
         "task.n_paraphrases=1", "seen_eval_limit=8",
         "strategy.train.max_steps=2", "strategy.train.batch_size=4", "answer.generate=false"]


def _run(tmp_path, name, overrides):
    return run(compose_cfg([*SMALL, *overrides], tmp_path), tmp_path / name)


@pytest.mark.parametrize("strategy", ["lora", "full", "hybrid"])
def test_tuned_run_writes_every_cost_field(tmp_path, strategy):
    m = _run(tmp_path, strategy, [f"strategy={strategy}"])
    assert m["status"] == "complete" and m["trains"] is True
    fit, notes = m["fit"], m["fit"]["notes"]
    assert 0 < fit["trainable_params"] <= fit["total_params"] and fit["train_tokens"] > 0
    assert fit["flops_est"] >= 4 * fit["total_params"] * fit["train_tokens"]
    assert fit["wall_s"] > 0 and fit["peak_mem_mb"] > 0 and fit["cache_hit"] is False
    index = notes["index"] if strategy == "hybrid" else {"build_s": 0.0, "index_bytes": 0}
    index_s = index["build_s"]
    assert notes["train_wall_s"] > 0  # charged what training (and indexing) took
    assert fit["build_s"] == pytest.approx(notes["train_wall_s"] + index_s)
    artifact = tmp_path / "cache" / "artifacts"
    on_disk = [p for p in artifact.rglob("*") if p.is_file() and p.name not in (
        "train.json", ".complete", "manifest.json")]
    assert fit["artifact_bytes"] == sum(p.stat().st_size for p in on_disk) + index["index_bytes"]
    assert on_disk
    assert notes["train_steps"] == 2 and len(notes["val_loss"]) >= 1
    # padding: the share trained on, and with the length grouping the other way
    assert 0 <= notes["pad_share"] < 1 and 0 <= notes["pad_share_other_grouping"] < 1
    rows, width = notes["largest_micro_batch"]
    assert 1 <= rows <= 4 and width > 1
    mem = m["memory"]  # predicted (by phase) beside measured
    assert mem["off"] is None and mem["peak_phase"] in ("load", "fit", "predict")
    assert mem["phases_mb"]["fit"]["predicted"] > 0 and mem["measured_mb"] > 0
    assert mem["terms_mb"]["total"] == mem["predicted_mb"]
    assert notes["best_val_loss"] == min(notes["val_loss"])
    assert len(notes["artifact_key"]) == 20 and notes["method"]["kind"] in ("lora", "full")
    forgetting = fit["forgetting"]
    assert forgetting["control_prompts"] == 24 and 0 <= forgetting["control_greedy_agreement"] <= 1
    assert forgetting["control_perplexity_before"] > 0
    assert m["seen"]["split"] == "train" and m["seen"]["n_examples"] == 8
    assert m["seen"]["choice_accuracy"] is not None
    assert m["leakage"]["test_seen_in_fit"] == 0 and m["leakage"]["examples_seen_in_fit"] > 0
    assert (tmp_path / strategy / "predictions_seen.jsonl").is_file()
    if strategy == "full":
        assert fit["trainable_params"] == fit["total_params"]
        assert fit["flops_est"] == pytest.approx(6 * fit["total_params"] * fit["train_tokens"])
    else:
        assert fit["notes"]["merged_for_predict"] is True
    if strategy == "hybrid":
        assert m["can_cite"] and m["recall_at_k"] is not None
        assert fit["notes"]["data"]["raft_rows"] == m["split_sizes"]["train"]


def test_rerun_loads_the_cached_artifact(tmp_path):
    args = ["strategy=lora", "strategy.train.max_steps=6", "strategy.measure_forgetting=false"]
    t0 = time.perf_counter()
    first = _run(tmp_path, "a", args)
    t_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    second = _run(tmp_path, "b", args)
    t_second = time.perf_counter() - t0
    assert not first["fit"]["cache_hit"] and second["fit"]["cache_hit"]
    assert first["fit"]["notes"]["artifact_key"] == second["fit"]["notes"]["artifact_key"]
    assert second["choice_accuracy"] == first["choice_accuracy"]
    assert second["fit_s"] < first["fit_s"] and t_second < t_first
    third = _run(tmp_path, "c", [*args, "seed=1"])
    assert not third["fit"]["cache_hit"]


def test_hybrid_lora_rag_mode_reuses_the_lora_adapter(tmp_path):
    common = ["strategy.measure_forgetting=false"]
    lora = _run(tmp_path, "lora", ["strategy=lora", *common])
    hybrid = _run(tmp_path, "hybrid", ["strategy=hybrid", "strategy.mode=lora+rag", *common])
    assert hybrid["fit"]["cache_hit"]
    assert hybrid["fit"]["notes"]["artifact_key"] == lora["fit"]["notes"]["artifact_key"]


@pytest.mark.parametrize("adapter", [
    ["strategy.adapter.method=ia3"],
    ["strategy.adapter.method=prompt_tuning", "strategy.adapter.num_virtual_tokens=4"],
    ["strategy.adapter.use_dora=true", "strategy.adapter.target_modules=[q_proj,v_proj]"],
    ["strategy.adapter.merge=false"],
])
def test_other_peft_methods_run(tmp_path, adapter):
    m = _run(tmp_path, "run", ["strategy=lora", "strategy.measure_forgetting=false", *adapter])
    assert m["status"] == "complete" and m["fit"]["trainable_params"] > 0
    merged = m["fit"]["notes"]["merged_for_predict"]
    assert merged is (not any("prompt_tuning" in a or "merge=false" in a for a in adapter))


def test_full_with_frozen_bottom_layers(tmp_path):
    m = _run(tmp_path, "run", ["strategy=full", "strategy.freeze_layers=1",
                               "strategy.measure_forgetting=false"])
    fit = m["fit"]
    assert 0 < fit["trainable_params"] < fit["total_params"]
    n, t, tr = fit["total_params"], fit["train_tokens"], fit["trainable_params"]
    assert fit["flops_est"] == pytest.approx(2 * n * t + 4 * tr * t)


@pytest.mark.parametrize("override,message", [
    ("strategy.adapter.r=0", "adapter.r must be >= 1"),
    ("strategy.adapter.method=lokr", "choose one of: lora, ia3, prompt_tuning"),
    ("strategy.train.lr=0", "train.lr must be > 0"),
])
def test_bad_tuning_values_fail_clearly(tmp_path, override, message):
    with pytest.raises(ValueError, match=message):
        _run(tmp_path, "run", ["strategy=lora", override])
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["status"] == "failed"


def test_artifact_key_changes_with_every_input():
    rows = [TrainRow((1, 2, 3), (-100, 2, 3), "qa:a")]
    val = [TrainRow((4, 5), (-100, 5), "qa:b")]
    base = dict(model_name="m", fingerprint="f", split_hash="s", rows=rows, val_rows=val,
                method={"kind": "lora", "r": 16}, train_settings=TrainSettings(), seed=0)
    key = artifact_key(**base)
    assert artifact_key(**base) == key
    variants = {
        "model_name": "other", "fingerprint": "g", "split_hash": "t",
        "rows": [TrainRow((1, 2, 4), (-100, 2, 4), "qa:a")],
        "val_rows": [TrainRow((4, 6), (-100, 6), "qa:b")],
        "method": {"kind": "lora", "r": 8},
        "train_settings": dataclasses.replace(TrainSettings(), lr=2e-4), "seed": 1,
    }
    for field, value in variants.items():
        assert artifact_key(**{**base, field: value}) != key, field


def test_same_seed_gives_identical_training_and_predictions(tmp_path):
    """Two trainings from scratch (separate caches) with one seed agree exactly on CPU."""
    runs = []
    for name in ("a", "b"):
        m = _run(tmp_path, name, ["strategy=full", "strategy.measure_forgetting=false",
                                  "strategy.train.max_steps=3", f"cache_dir={tmp_path}/cache-{name}"])
        assert not m["fit"]["cache_hit"]
        runs.append(m)
    a, b = runs
    assert (a["split_hash"], a["split_ids_hash"]) == (b["split_hash"], b["split_ids_hash"])
    # the key hashes every training row in order: same data, same order
    assert a["fit"]["notes"]["artifact_key"] == b["fit"]["notes"]["artifact_key"]
    assert (a["choice_accuracy"], a["seen"]) == (b["choice_accuracy"], b["seen"])
    assert a["fit"]["notes"]["val_loss"] == b["fit"]["notes"]["val_loss"]
    assert a["fit"]["notes"]["train_loss_first_last"] == b["fit"]["notes"]["train_loss_first_last"]
    preds = [(tmp_path / n / "predictions.jsonl").read_text() for n in ("a", "b")]
    strip = [[{k: v for k, v in json.loads(x).items() if k != "usage"} for x in p.splitlines()]
             for p in preds]
    assert strip[0] == strip[1]
