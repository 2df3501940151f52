"""Paraphrased questions (harness-make-task paraphrase=true): a model rewrites each
generated question in its own words, so that a question no longer repeats its source
sentence (which lets lexical search, and lexical shortcuts, find the answer verbatim).

A cloze question becomes a question whose answer is the blank; any other question is
reworded. Sentence-style choices (the whole source sentence with each candidate filled in)
would give the sentence away again, so the choices become the candidates alone: the part
in which the choices differ. Each rewrite is checked, and a rejected one is dropped from
the set, the reason counted:

    unparsed       empty, or not a question (no "?")
    answer_leaked  the answer (or, with choices, the correct candidate) is in the rewrite
    copied         it still shares a run of more than `max_copied_words` words with its
                   source, or no fewer of its content words than the original did
    meaning        its embedding (the run's embedder, cosine) is further than
                   `min_similarity` from the original question's with the blank named
    duplicate      the same question (case and punctuation aside) as a rewrite kept before
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from harness.data.generate.cloze import BLANK, Item, question_key
from harness.data.generate.validity import longest_shared_run, overlap
from harness.models import LanguageModel
from harness.scoring import contains, words


@dataclass(frozen=True)
class ParaphraseSettings:
    max_copied_words: int = 4  # a longer shared word run with the source is a copy
    min_similarity: float = 0.5  # cosine of the rewrite and the original (meaning kept)
    max_tokens: int = 48
    batch_size: int = 8


def span_choices(choices: Sequence[str]) -> tuple[str, ...]:
    """Choices that are one sentence with different candidates filled in, reduced to the
    candidates: the common prefix and suffix (at word boundaries) removed."""
    if len(choices) < 2:
        return tuple(choices)
    prefix = os.path.commonprefix(list(choices))
    prefix = prefix[:prefix.rfind(" ") + 1] if " " in prefix else ""
    rev = [c[::-1] for c in choices]
    suffix = os.path.commonprefix(rev)[::-1]
    suffix = suffix[suffix.find(" "):] if " " in suffix else ""
    out = tuple(c[len(prefix):len(c) - len(suffix)].strip(" ,.;:") for c in choices)
    return out if all(out) and len(set(out)) == len(out) else tuple(choices)


def _instruction(prompts: Mapping[str, str], it: Item) -> str:
    key = "paraphrase_cloze" if BLANK in it.question else "paraphrase"
    return prompts[key].format(question=it.question)


def paraphrase(items: Sequence[Item], lm: LanguageModel, prompts: Mapping[str, str],
               embed: Callable[[list[str]], np.ndarray],
               settings: ParaphraseSettings = ParaphraseSettings(), *,
               progress: bool = False) -> tuple[list[Item], dict[str, int]]:
    """The items whose rewrite passes the checks, with the rewrite as their question."""
    shots = []  # worked examples as earlier turns: a small model needs them to ask at all
    for shot in prompts.get("paraphrase_shots") or ():
        key = "paraphrase_cloze" if BLANK in shot["question"] else "paraphrase"
        shots += [{"role": "user", "content": prompts[key].format(question=shot["question"])},
                  {"role": "assistant", "content": shot["rewrite"]}]
    chats = [lm.render([{"role": "system", "content": prompts["paraphrase_system"]}, *shots,
                        {"role": "user", "content": _instruction(prompts, it)}]) for it in items]
    rewrites = [" ".join(g.text.split()).strip().strip('"') for g in lm.generate(
        chats, max_new_tokens=settings.max_tokens, batch_size=settings.batch_size,
        progress=progress)]
    rewrites = [r.split("?")[0] + "?" if "?" in r else r for r in rewrites]  # one question
    named = [it.question.replace(BLANK, "what") for it in items]
    vecs = embed(named + rewrites) if items else np.zeros((0, 1))
    sims = np.sum(vecs[:len(items)] * vecs[len(items):], axis=1)  # normalized embeddings
    counts: Counter = Counter(paraphrase_tried=len(items))
    kept, asked = [], set()
    for it, new, sim in zip(items, rewrites, sims):
        choices = span_choices(it.choices) if it.choices else ()
        answer = choices[it.choices.index(it.answer)] if it.answer in it.choices and choices \
            else it.answer
        reason = _reject(it, new, answer, float(sim), settings)
        if reason is None and question_key(new) in asked:
            reason = "duplicate"
        if reason:
            counts[f"paraphrase_rejected_{reason}"] += 1
            continue
        asked.add(question_key(new))
        kept.append(replace(it, question=new, answer=answer, choices=choices))
    counts["paraphrase_kept"] = len(kept)
    return kept, dict(counts)


def _reject(it: Item, new: str, answer: str, sim: float, s: ParaphraseSettings) -> str | None:
    if not new.endswith("?") or len(words(new)) < 3:
        return "unparsed"
    if contains(new, [answer]) > 0:
        return "answer_leaked"
    if (longest_shared_run(words(new), words(it.context)) > s.max_copied_words
            or overlap(new, it.context)[0] >= overlap(it.question, it.context)[0]):
        return "copied"
    if sim < s.min_similarity:
        return "meaning"
    return None
