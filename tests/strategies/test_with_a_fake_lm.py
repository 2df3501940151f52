"""The built-in strategies, composed from harness parts, against a fake model that satisfies
the LM contract (harness.models.contract) and answers from what its prompt holds: prompt,
rag and retrieval_only need nothing else, and a tuned strategy refuses a served model."""

from __future__ import annotations

import re

import pytest

from harness.answering import AnswerSettings
from harness.context import StrategyContext
from harness.errors import ConfigError
from harness.models import ChoiceScores, Generation, LanguageModel, LoglikCheck, plain_prompt
from harness.prompting import PromptSettings
from harness.types import Document, Example, Task
from strategies.lora import LoRAStrategy
from strategies.prompt import PromptStrategy
from strategies.rag import RAGStrategy
from strategies.retrieval_only import RetrievalOnlyStrategy


class FakeLM:
    """Prefers the choice whose text appears in the prompt (so it is right exactly when its
    passages hold the answer); generates the first capitalised word of the last passage."""

    name = "fake"
    identity = "fake|1"
    cache = None

    def __init__(self, where: str = "local", exact: bool = True) -> None:
        self.where, self.exact, self.calls = where, exact, []

    def render(self, messages):
        return plain_prompt(messages)

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def loglik_check(self) -> LoglikCheck:
        return LoglikCheck(self.exact, "a fake: its log-likelihoods are what it says")

    def generate(self, prompts, *, max_new_tokens=16, batch_size=8, progress=False):
        self.calls.append(("generate", len(prompts)))
        out = []
        for p in prompts:
            words = re.findall(r"\b[A-Z][a-z]+\b", p.split("Question:")[0].split("[1]")[-1])
            out.append(Generation(words[0] if words else "", 10, 1, 0.01, 0.01))
        return out

    def score_choices(self, contexts, choices, *, batch_size=8, progress=False):
        self.calls.append(("score_choices", len(contexts)))
        return [ChoiceScores(tuple(0.0 if c in ctx.split("Question:")[0] else -5.0 for c in chs),
                             (1,) * len(chs), 10, 0.01, 0.01) for ctx, chs in zip(contexts, choices)]

    def score_letters(self, prompts, n_choices, *, top_k=20, batch_size=8, progress=False):
        self.calls.append(("score_letters", len(prompts)))
        out = []
        for p, n in zip(prompts, n_choices):
            passages, listed = p.split("Question:")[0], p.split("Choices:")[1]
            lines = [x.split(". ", 1)[1] for x in listed.strip().splitlines()[:n]]
            out.append(ChoiceScores(tuple(0.0 if c in passages else -5.0 for c in lines),
                                    (1,) * n, 10, 0.01, 0.01))
        return out


CITIES = ["Oslo", "Lima", "Quito", "Hanoi", "Perth", "Tunis"]
BIRDS = ["kestrel", "heron", "plover", "swift", "osprey", "wren"]
DOCS = tuple(Document(f"d{i}", f"The {b} company is based in {c}.")
             for i, (b, c) in enumerate(zip(BIRDS, CITIES)))
EXAMPLES = tuple(Example(f"q{i}", f"Where is the {BIRDS[i]} company based?", (c,),
                         choices=tuple(CITIES[:4]) if i < 4 else (c, "Oslo"), source_ids=(f"d{i}",),
                         split="test" if i % 2 else "train")
                 for i, c in enumerate(CITIES))
TASK = Task("fake", DOCS, EXAMPLES, "hash")


def context(lm: LanguageModel, **answer) -> StrategyContext:
    return StrategyContext(lm=lm, prompt=PromptSettings(), answer=AnswerSettings(**answer),
                           get_embedder=lambda: pytest.fail("no embedder: retriever=bm25"),
                           retriever_cfg={"_target_": "harness.retrieval.bm25.BM25Retriever",
                                          "name": "bm25"}, progress=False)


def test_the_fake_satisfies_the_contract():
    assert isinstance(FakeLM(), LanguageModel)


def test_prompt_without_passages_knows_nothing_and_rag_finds_each_answer():
    lm = FakeLM()
    test = TASK.split("test")
    prompt = PromptStrategy(context(lm, generate=False))
    prompt.fit(TASK)
    assert all(p.choice == 0 for p in prompt.predict(test))  # no evidence: the first choice
    rag = RAGStrategy(context(lm, generate=True), k=1)
    report = rag.fit(TASK)
    assert report.examples_seen == frozenset() and report.notes["retriever"] == "bm25"
    preds = rag.predict(test)
    assert [e.choices[p.choice] for e, p in zip(test, preds)] == [e.answer for e in test]
    assert [p.citations[0].source_id for p in preds] == [e.source_ids[0] for e in test]
    assert [p.output for p in preds] == ["The"] * len(test)  # generation ran too
    assert all(p.usage.retrieval_latency_s > 0 for p in preds)


def test_letter_scoring_through_the_same_strategy():
    lm = FakeLM(exact=False)  # auto: its log-likelihoods fail the check, letters are used
    rag = RAGStrategy(context(lm, generate=False), k=1)
    rag.fit(TASK)
    test = TASK.split("test")
    preds = rag.predict(test)
    assert [e.choices[p.choice] for e, p in zip(test, preds)] == [e.answer for e in test]
    assert ("score_letters", len(test)) in lm.calls and not any(c[0] == "score_choices" for c in lm.calls)


def test_retrieval_only_never_calls_the_model():
    lm = FakeLM()
    only = RetrievalOnlyStrategy(context(lm), k=1, depth=3)
    only.fit(TASK)
    preds = only.predict(TASK.split("test"))
    assert lm.calls == [] and all(p.output is None and p.choice is None for p in preds)
    assert all(len(p.citations) == 3 for p in preds)


def test_a_tuned_strategy_refuses_a_served_model_before_any_work():
    lm = FakeLM(where="served")
    with pytest.raises(ConfigError, match="strategy 'lora' trains the model's weights"):
        LoRAStrategy(context(lm), adapter={}, data={}, train={})
    assert lm.calls == []


def test_generate_auto_writes_text_only_where_there_are_no_choices():
    import dataclasses

    lm = FakeLM()
    mixed = [*TASK.split("test"), dataclasses.replace(EXAMPLES[1], id="free", choices=())]
    rag = RAGStrategy(context(lm, generate="auto"), k=1)
    rag.fit(TASK)
    preds = rag.predict(mixed)
    assert [p.output is None for p in preds] == [True] * (len(mixed) - 1) + [False]
    assert ("generate", 1) in lm.calls and preds[-1].choice is None
    with pytest.raises(ConfigError, match="true, false or auto"):
        AnswerSettings(generate="sometimes")
