"""Two strategies a user might write in their own module, outside the repository, with the
public parts of the harness only (copied into a temporary directory by test_wheel.py).

ToyTrained trains (a small LoRA through harness.tuning) and cannot cite; ToyCiting
retrieves by word overlap (no embedder) and cites the documents it put in the prompt."""

from __future__ import annotations

import re
import time

from harness.answering import answer
from harness.context import StrategyContext
from harness.prompting import Passage, build_messages, fit_passages
from harness.tuning import AdapterSettings, DataSettings, Method, TrainSettings, build_rows, fit_tuned
from harness.types import Citation, FitReport


class ToyTrained:
    trains = True
    cites = False
    retrieval_k = None

    def __init__(self, ctx: StrategyContext, *, name: str = "toy_trained", steps: int = 2,
                 rank: int = 4) -> None:
        self.ctx, self.name, self.steps, self.rank = ctx, name, steps, rank
        self.lm = ctx.lm

    def fit(self, task):
        ctx = self.ctx
        rows, val_rows, counts = build_rows(ctx.lm, ctx.prompt, task,
                                            DataSettings(paraphrases=0, max_seq_len=128), ctx.seed)
        method = Method(AdapterSettings(r=self.rank, alpha=2 * self.rank,
                                        target_modules=("q_proj", "v_proj")))
        tuned = fit_tuned(ctx.lm, method, rows, val_rows,
                          TrainSettings(lr=1e-3, batch_size=4, max_steps=self.steps),
                          split_hash=task.split_hash, seed=ctx.seed, cache_dir=ctx.cache_dir,
                          progress=ctx.progress, notes={"data": counts})
        self.lm = tuned.lm
        return tuned.report

    def predict(self, examples):
        messages = [build_messages(self.ctx.prompt, e.question) for e in examples]
        return answer(self.lm, examples, messages, self.ctx.answer)


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


class ToyCiting:
    trains = False
    cites = True

    def __init__(self, ctx: StrategyContext, *, name: str = "toy_citing", k: int = 2) -> None:
        self.ctx, self.name, self.retrieval_k = ctx, name, k
        self.docs = []

    def fit(self, task):
        t0 = time.perf_counter()
        self.docs = [(d, _words(d.title + " " + d.text)) for d in task.corpus]
        return FitReport(wall_s=time.perf_counter() - t0, examples_seen=frozenset())

    def predict(self, examples):
        passages, citations = [], []
        for e in examples:
            q = _words(e.question)
            ranked = sorted(self.docs, key=lambda dw: (-len(q & dw[1]), dw[0].id))[:self.retrieval_k]
            ps = [Passage(d.id, d.text, float(len(q & w))) for d, w in ranked]
            ps = fit_passages(ps, self.ctx.prompt.context_budget_tokens, self.ctx.lm.count_tokens)
            passages.append(ps)
            citations.append([Citation(p.source_id, p.score) for p in ps])
        messages = [build_messages(self.ctx.prompt, e.question, passages=ps)
                    for e, ps in zip(examples, passages)]
        return answer(self.ctx.lm, examples, messages, self.ctx.answer, citations=citations)
