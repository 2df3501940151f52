"""Peak memory predicted against measured, one run per strategy in a process of its own, on
model=small-random (SmolLM2's architecture, 4 layers of width 192, random weights): the
memory model's terms for what each run computed (weights, gradients, optimizer states,
activations, the scoring batch's logits and KV cache, the index) must account for what the
process held, within 20%, and the peak must fall in the phase that computes the most.

With the slack for the allocator's kept blocks (fitted on the bundled model: 30% of the
transient terms) the prediction runs high at this size: measured 1.06 (QLoRA) to 1.35
(full), so the whole prediction is held to [0.75, 1.4] here. The bundled model's ratios,
held to 25%, are `make bench`'s (section memory; the results page)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.memory import RUNS, run_alone, summary

PHASE = {"rag": "predict", "lora": "fit", "full": "fit", "qlora": "fit"}


# prompt's predict phase is rag's without the index (make bench measures all five at 135M)
@pytest.mark.parametrize("name", list(PHASE))
def test_peak_memory_is_predicted_from_what_the_run_computed(tmp_path, name, monkeypatch):
    monkeypatch.setenv("ADAPTBENCH_TEST_WARM", "0")  # a fresh process, not a fork (tests/warm.py)
    m = run_alone(tmp_path, name, RUNS[name], ["model=small-random"],
                  Path(os.environ["ADAPTBENCH_CACHE"]))
    mem = m["memory"]
    print(summary(name, m))
    assert mem["off"] is None and mem["model_loaded_here"] is True
    assert mem["phases_mb"].keys() == {"load", "fit", "predict"}
    assert mem["peak_phase"] == PHASE[name]
    terms = mem["terms_mb"]
    assert 0.8 <= (terms["total"] - terms["slack"]) / mem["measured_mb"] <= 1.2, mem
    assert 0.75 <= mem["ratio"] <= 1.4, mem
    if PHASE[name] == "fit":
        assert m["fit"]["cache_hit"] is False and terms["activations"] > terms["weights"]
    if name == "qlora":
        assert terms["weights"] < 0.95 * terms["resident"]  # the 4-bit base is smaller
