"""Questions written by a language model (harness-make-task generator=llm).

The corpus is cut into passages (the retriever's chunking); passages are drawn round-robin
over the documents with the seed. For each, the model writes a question (one line) and then
answers it from the passage (one line), with the prompts of a versioned config file
(conf/qgen/). Each pair then passes filters, the reason for every drop counted:

    unparsed      the question is empty or does not end with "?", or the answer is empty
    too_long      the answer has more than `max_answer_words` words
    unsupported   the answer does not occur in its passage (words compared after lowercasing
                  and turning punctuation into spaces)
    in_question   the answer is already in the question
    duplicate     the question's word set overlaps an earlier one's by `duplicate_jaccard`
                  or more (near-duplicates)
    distractors   fewer same-kind distractors than n_choices - 1 exist

Distractors are spans of the answer's kind (date, year, name, number, term; see cloze) found
in other documents, plus other documents' generated answers of that kind. A kept question
that the same model answers correctly without its passage is flagged
(`answerable_without_context`): it measures the model's prior knowledge, not adaptation.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from harness.answering import AnswerSettings, answer
from harness.data.generate.cloze import (
    KINDS,
    NAME,
    PATTERNS,
    ClozeSettings,
    Item,
    round_robin,
    scan,
    with_choices,
)
from harness.models import LanguageModel
from harness.prompting import PromptSettings, build_messages
from harness.retrieval import chunk_documents
from harness.scoring import contains, words
from harness.types import Document, Example

PROMPT_KEYS = ("version", "system", "question", "answer", "shots", "paraphrase_system",
               "paraphrase_cloze", "paraphrase", "paraphrase_shots")


@dataclass(frozen=True)
class LLMSettings:
    chunk_words: int = 120  # passage length in words
    max_answer_words: int = 8  # longer answers are explanations, not facts
    duplicate_jaccard: float = 0.8  # word-set overlap at which a question is a near-duplicate
    oversample: float = 3.0  # passages tried per question asked (the filters drop many)
    max_question_tokens: int = 48
    max_answer_tokens: int = 16
    batch_size: int = 8
    flag_prior_knowledge: bool = True  # ask each kept question without its passage


def prompt_hash(prompts: Mapping[str, object]) -> str:
    return hashlib.sha256(json.dumps({k: prompts.get(k) for k in PROMPT_KEYS},
                                     sort_keys=True).encode()).hexdigest()[:16]


def supported(answer_text: str, passage: str) -> bool:
    """The answer's words occur in the passage, in order (scoring's `contains`)."""
    return contains(passage, [answer_text]) > 0


def answer_kind(text: str) -> str:
    """The kind of span the answer is, as cloze types them (term: any other short answer)."""
    for kind in KINDS[:-1]:
        if re.fullmatch(NAME if kind == "name" else PATTERNS[kind], text):
            return kind
    return "term"


def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


def _clean(text: str) -> str:
    text = " ".join(text.split()).strip().strip('"').strip()
    return re.sub(r"^(?:question|answer)\s*:\s*", "", text, flags=re.I).rstrip(".").strip()


def generate_llm(docs: Sequence[Document], lm: LanguageModel, prompts: Mapping[str, str], *,
                 n_questions: int, n_choices: int = 4, seed: int = 0,
                 settings: LLMSettings = LLMSettings(), cloze: ClozeSettings | None = None,
                 progress: bool = False) -> tuple[list[Item], dict[str, int]]:
    rng = random.Random(seed)
    pool = {k: list(v) for k, v in scan(docs, cloze or ClozeSettings(), rng).pool.items()}
    chunks = chunk_documents(docs, settings.chunk_words, 0)
    per_doc: dict[str, list] = {}
    for c in chunks:
        per_doc.setdefault(c.doc_id, []).append(c)
    wanted = max(1, int(n_questions * settings.oversample))
    passages = [chunk for _, (_, chunk) in zip(range(wanted), round_robin(per_doc, rng))]
    counts: Counter = Counter(passages=len(passages))
    questions, answers = _write(lm, prompts, passages, settings, progress)
    kept = _keep(passages, questions, answers, settings, counts)
    for _, a, kind, c in kept:
        pool[kind].append((a, c.doc_id))
    items = []
    for q, a, kind, c in kept:
        if len(items) >= n_questions:
            break
        choices = with_choices(a, kind, pool, c.doc_id, n_choices, rng, c.text)
        if choices is None:
            counts["dropped_distractors"] += 1
            continue
        items.append(Item(q, a, kind, c.doc_id, c.text, choices))
    if settings.flag_prior_knowledge and items:
        items = _flag_prior_knowledge(lm, items, settings)
        counts["answerable_without_context"] = sum(bool(i.answerable_without_context)
                                                   for i in items)
    counts["kept"] = len(items)
    counts.update({f"kind_{k}": sum(i.kind == k for i in items) for k in KINDS})
    return items, dict(counts)


def _write(lm: LanguageModel, prompts: Mapping[str, str], passages: Sequence, settings: LLMSettings,
           progress: bool) -> tuple[list[str], list[str]]:
    """The model writes a question for each passage, then answers it from the passage."""
    shots = list(prompts.get("shots") or ())

    def ask(step: str, **fields: str):
        """The chat for one step (question or answer): the system line, each worked example
        as a user request and its reply, then this request."""
        messages = [{"role": "system", "content": prompts["system"]}]
        for shot in shots:
            messages += [{"role": "user", "content": prompts[step].format(**shot)},
                         {"role": "assistant", "content": shot[step]}]
        return lm.render([*messages, {"role": "user", "content": prompts[step].format(**fields)}])

    questions = [_clean(g.text) for g in lm.generate(
        [ask("question", passage=c.text) for c in passages],
        max_new_tokens=settings.max_question_tokens, batch_size=settings.batch_size,
        progress=progress)]
    answers = [_clean(g.text) for g in lm.generate(
        [ask("answer", passage=c.text, question=q) for c, q in zip(passages, questions)],
        max_new_tokens=settings.max_answer_tokens, batch_size=settings.batch_size,
        progress=progress)]
    return questions, answers


def _keep(passages: Sequence, questions: Sequence[str], answers: Sequence[str],
          settings: LLMSettings, counts: Counter) -> list[tuple[str, str, str, object]]:
    """The (question, answer, kind, passage) that pass the filters; what was dropped and
    why is counted."""
    kept: list[tuple[str, str, str, object]] = []
    seen: list[set[str]] = []
    for c, q, a in zip(passages, questions, answers):
        reason = None
        if not q.endswith("?") or not a:
            reason = "unparsed"
        elif len(a.split()) > settings.max_answer_words:
            reason = "too_long"
        elif not supported(a, c.text):
            reason = "unsupported"
        elif supported(a, q):
            reason = "in_question"
        elif any(_jaccard(set(words(q)), s) >= settings.duplicate_jaccard for s in seen):
            reason = "duplicate"
        if reason:
            counts[f"dropped_{reason}"] += 1
            continue
        seen.append(set(words(q)))
        kept.append((q, a, answer_kind(a), c))
    return kept


def _flag_prior_knowledge(lm: LanguageModel, items: list[Item], settings: LLMSettings) -> list[Item]:
    """Ask each question with no passage, the way zero-shot prompting will: with choices,
    by log-likelihood; without, by greedy generation (correct = the answer is contained)."""
    examples = [Example(id=str(i), question=it.question, answers=(it.answer,), choices=it.choices)
                for i, it in enumerate(items)]
    prompt = PromptSettings()
    messages = [build_messages(prompt, e.question) for e in examples]
    preds = answer(lm, examples, messages, AnswerSettings(
        score_choices=True, generate=not items[0].choices, batch_size=settings.batch_size))
    flagged = []
    for it, e, p in zip(items, examples, preds):
        known = (e.choices[p.choice] == it.answer if p.choice is not None
                 else bool(p.output) and contains(p.output, [it.answer]) > 0)
        flagged.append(replace(it, answerable_without_context=bool(known)))
    return flagged

