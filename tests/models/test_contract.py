"""The LM contract's shared rules, without a server: letters read from top log-probs, the
letter prompt, echoed continuations found by their text offsets (with and without the
generated token listed), the in-process letter scores against a direct forward pass, the
method `auto` resolves to, and a strategy's model chosen per strategy in a sweep."""

from __future__ import annotations

import pytest
import torch

from harness.answering import AnswerSettings, choice_method, with_letters
from harness.errors import ConfigError
from harness.models import LETTER_FLOOR, LanguageModel, get_lm, letter_logprobs
from harness.models.served import _continuation_logprob
from harness.run.compose import effective_config
from tests.conftest import compose_cfg


def test_letters_are_read_from_the_top_tokens_whatever_their_spacing():
    top = {" B": -0.2, "B": -1.5, "A": -2.0, "The": -0.1, " C.": -0.3, "c": -0.4}
    assert letter_logprobs(top, 4) == (-2.0, -0.2, LETTER_FLOOR, LETTER_FLOOR)
    assert letter_logprobs({}, 2) == (LETTER_FLOOR, LETTER_FLOOR)


def test_the_letter_prompt_lists_the_choices_after_the_question():
    msgs = [{"role": "system", "content": "S"}, {"role": "user", "content": "Question: Q?"}]
    out = with_letters(msgs, ["red", "blue"], "Answer with the letter.")
    assert out[0] == msgs[0] and msgs[1]["content"] == "Question: Q?"  # not changed in place
    assert out[1]["content"] == "Question: Q?\n\nChoices:\nA. red\nB. blue\n\nAnswer with the letter."


def _echo(tokens: list[str], logprobs: list[float | None]) -> dict:
    offsets, pos = [], 0
    for t in tokens:
        offsets.append(pos)
        pos += len(t)
    return {"choices": [{"text": "".join(tokens), "logprobs": {
        "tokens": tokens, "token_logprobs": logprobs, "text_offset": offsets}}]}


@pytest.mark.parametrize("generated", [True, False])  # vLLM / OpenAI list it; llama.cpp does not
def test_the_continuation_is_found_by_its_text_offsets(generated):
    tokens = ["The", " capital", " is", " Par", "is"] + (["."] if generated else [])
    lps = [None, -3.0, -1.0, -0.5, -0.25] + ([-0.1] if generated else [])
    context, prompt = "The capital is", "The capital is Paris"
    total, n, ctx = _continuation_logprob(_echo(tokens, lps), len(context), len(prompt))
    assert (total, n, ctx) == (-0.75, 2, 3)


def test_in_process_letter_scores_are_the_next_token_logprobs():
    lm = get_lm({"name_or_path": "tiny-random", "dtype": "float32"})
    prompt = lm.render([{"role": "user", "content": "Pick one.\nA. x\nB. y\nC. z"}])
    scores = lm.score_letters([prompt, prompt + " A"], [3, 3], top_k=49152, batch_size=2)
    ids = torch.tensor([lm.encode(prompt)])
    logp = torch.log_softmax(lm.model(input_ids=ids).logits[0, -1].float(), -1)
    for i, letter in enumerate("ABC"):
        want = max(logp[t].item() for t in range(logp.shape[0])
                   if lm.tokenizer.decode([t]).strip() == letter)
        assert scores[0].logprobs[i] == pytest.approx(want, abs=1e-5)
    assert scores[0].choice_tokens == (1, 1, 1) and scores[1].logprobs != scores[0].logprobs
    few = lm.score_letters([prompt], [3], top_k=1)[0].logprobs  # only the top token is read
    assert sum(x > LETTER_FLOOR for x in few) <= 1


def test_auto_is_loglik_in_process_and_the_settings_are_checked():
    lm = get_lm({"name_or_path": "tiny-random", "dtype": "float32"})
    assert isinstance(lm, LanguageModel) and lm.where == "local"
    assert choice_method(lm, "auto")[0] == "loglik"
    assert choice_method(lm, "letter") == ("letter", "answer.choice_scoring=letter")
    with pytest.raises(ConfigError, match="choose one of: loglik, letter, auto"):
        AnswerSettings(choice_scoring="logits")


def test_a_strategy_can_run_on_a_model_of_its_own():
    base = ["strategy=prompt", "model=tiny-random"]
    served = "per_strategy.prompt.model={base_url: 'http://127.0.0.1:9/v1', name: m}"
    cfg = effective_config(compose_cfg([*base, f"+{served}"]))
    assert cfg.model.base_url == "http://127.0.0.1:9/v1" and "name_or_path" not in cfg.model
    named = effective_config(compose_cfg([*base, "+per_strategy.prompt.model=smollm2-135m"]))
    assert named.model.name_or_path.endswith("SmolLM2-135M-Instruct.Q4_1.gguf")
    merged = effective_config(compose_cfg([*base, "+per_strategy.prompt.model={dtype: bfloat16}"]))
    assert merged.model.name_or_path == "tiny-random" and merged.model.dtype == "bfloat16"
    other = effective_config(compose_cfg(["strategy=rag", "model=tiny-random", f"+{served}"]))
    assert other.model.name_or_path == "tiny-random"  # only prompt moves
    with pytest.raises(ConfigError, match="no model config 'gpt5'"):
        effective_config(compose_cfg([*base, "+per_strategy.prompt.model=gpt5"]))
