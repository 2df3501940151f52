"""The model wrapper on the tiny random model: scoring equals the naive per-choice loop,
and batching does not change greedy output."""

from __future__ import annotations

import pytest
import torch

from harness.data.synthetic import generate
from harness.models import get_lm
from harness.models.local import LM
from harness.prompting import PromptSettings, build_messages

TINY = {"name_or_path": "tiny-random", "dtype": "float32", "device": "cpu"}


@pytest.fixture(scope="module")
def lm() -> LM:
    return get_lm(TINY)


@pytest.fixture(scope="module")
def prompts(lm) -> tuple[list[str], list[tuple[str, ...]]]:
    _, examples = generate(n_entities=30, seed=1)
    settings = PromptSettings()
    return [lm.render(build_messages(settings, e.question)) for e in examples], [
        e.choices for e in examples]


def naive_logprob(lm: LM, context: str, choice: str) -> float:
    ctx, cont = lm.encode(context), lm.encode_continuation(choice)
    with torch.no_grad():
        logits = lm.model(torch.tensor([ctx + cont])).logits[0]
    logp = torch.log_softmax(logits.float(), -1)
    return sum(logp[len(ctx) - 1 + j, t].item() for j, t in enumerate(cont))


def test_chat_template_is_used(lm):
    text = lm.render([{"role": "user", "content": "hi"}])
    assert lm.chat and "<|im_start|>assistant" in text


def test_shared_context_scoring_equals_naive_loop(lm, prompts):
    contexts, choices = prompts[0][:6], [list(c) for c in prompts[1][:6]]
    choices[2] = choices[2][:2]  # questions may have different numbers of choices
    scores = lm.score_choices(contexts, choices, batch_size=4)
    for ctx, chs, s in zip(contexts, choices, scores):
        assert len(s.logprobs) == len(chs)
        for ch, lp in zip(chs, s.logprobs):
            assert lp == pytest.approx(naive_logprob(lm, ctx, ch), abs=1e-3)


def test_scoring_is_batch_invariant(lm, prompts):
    contexts, choices = prompts[0][:16], prompts[1][:16]
    one = lm.score_choices(contexts, choices, batch_size=1)
    eight = lm.score_choices(contexts, choices, batch_size=8)
    argmax = [max(range(len(s.logprobs)), key=s.logprobs.__getitem__) for s in one]
    argmax8 = [max(range(len(s.logprobs)), key=s.logprobs.__getitem__) for s in eight]
    assert argmax == argmax8


def test_greedy_generation_batch_1_and_8_agree(lm, prompts):
    texts = prompts[0][:48]
    one = lm.generate(texts, max_new_tokens=12, batch_size=1)
    eight = lm.generate(texts, max_new_tokens=12, batch_size=8)
    agree = sum(a.text == b.text for a, b in zip(one, eight)) / len(texts)
    assert agree >= 0.99, [(a.text, b.text) for a, b in zip(one, eight) if a.text != b.text]
    assert all(g.prompt_tokens > 0 and 1 <= g.completion_tokens <= 12 for g in one)
    assert all("\n" not in g.text for g in eight)


def test_generation_stops_at_newline(lm):
    assert any("\n" in lm.tokenizer.decode([t]) for t in lm.stop_ids)
    assert lm.tokenizer.convert_tokens_to_ids("<|im_end|>") in lm.stop_ids


def test_plain_prompt_format_without_chat_template(lm):
    plain = LM(lm.model, lm.tokenizer, "tiny", use_chat_template=False)
    text = plain.render(build_messages(PromptSettings(system="S", instruction=""), "Q?",
                                       shots=[("A?", "a")]))
    assert text == "S\n\nQuestion: A?\nAnswer: a\n\nQuestion: Q?\nAnswer:"
    s = plain.score_choices([text], [["yes", "no"]])[0]
    assert s.logprobs[0] == pytest.approx(naive_logprob(plain, text, "yes"), abs=1e-3)


def test_whole_sequence_scoring_matches_shared_context(lm, prompts):
    whole = LM(lm.model, lm.tokenizer, "tiny", share_context=False)
    contexts, choices = prompts[0][:5], prompts[1][:5]
    a = lm.score_choices(contexts, choices, batch_size=3)
    b = whole.score_choices(contexts, choices, batch_size=3)
    for x, y in zip(a, b):
        assert x.logprobs == pytest.approx(y.logprobs, abs=1e-3)


def _entries(path, kind):
    return [p for p in path.glob(f"{kind}-*") if p.is_dir()]


def test_prediction_cache_returns_what_was_computed_without_the_model(tmp_path, lm, prompts,
                                                                      monkeypatch):
    from harness.models.prediction_cache import CACHE_METER

    ctx, choices = prompts[0][:12], prompts[1][:12]
    cached = LM(lm.model, lm.tokenizer, "tiny", cache=tmp_path)
    first = cached.score_choices(ctx, choices, batch_size=4)
    gens = cached.generate(ctx[:4], max_new_tokens=5, batch_size=4)
    assert len(_entries(tmp_path, "score")) == 1 and len(_entries(tmp_path, "generate")) == 1
    hits = CACHE_METER.hits

    def no_model(*a, **k):  # a hit must not run the model
        raise AssertionError("the model ran on a cache hit")

    again = LM(lm.model, lm.tokenizer, "tiny", cache=tmp_path)
    with monkeypatch.context() as m:
        m.setattr(lm.model, "forward", no_model)
        assert again.score_choices(ctx, choices, batch_size=4) == first  # seconds included
        assert again.generate(ctx[:4], max_new_tokens=5, batch_size=4) == gens
        with pytest.raises(AssertionError, match="model ran"):  # a miss does run it
            again.score_choices(ctx, choices, batch_size=2)
    assert CACHE_METER.hits == hits + 2
    # anything that changes the outputs is a different entry
    cached.score_choices(ctx, choices, batch_size=3)
    LM(lm.model, lm.tokenizer, "tiny", cache=tmp_path, identity="tiny|tuned:abc").score_choices(
        ctx, choices, batch_size=4)
    assert len(_entries(tmp_path, "score")) == 3


def test_corrupted_prediction_cache_entry_is_recomputed(tmp_path, lm, prompts, caplog):
    cached = LM(lm.model, lm.tokenizer, "tiny", cache=tmp_path)
    first = cached.score_choices(prompts[0][:4], prompts[1][:4], batch_size=4)
    entry = _entries(tmp_path, "score")[0]
    (entry / "results.json").write_text('{"seconds": 1, "results": [')  # truncated
    again = cached.score_choices(prompts[0][:4], prompts[1][:4], batch_size=4)
    assert "discarding prediction cache entry" in caplog.text
    assert [r.logprobs for r in again] == [r.logprobs for r in first]
