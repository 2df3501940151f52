"""Question generation from a corpus: cloze spans and distractors, and harness-make-task
end to end (its examples.jsonl runs as a task)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from harness.data.generate.cloze import BLANK, ClozeSettings, generate_cloze, shape, spans
from harness.run.runner import run
from harness.types import Document
from tests.conftest import compose_cfg

PLACES = ["Varne", "Dunmore", "Kestrel", "Halden", "Orrin", "Brask", "Tolven", "Mirren",
          "Caddow", "Pellam", "Quorn", "Sefton"]
KEEPERS = ["Ada Morrow", "Jonas Pike", "Mara Quill", "Tobias Wren", "Ida Fenn", "Hugo Lark",
           "Nell Carver", "Otto Brisk", "Ruth Ambler", "Silas Dray", "Vera Holt", "Emil Stroud"]


def corpus() -> list[Document]:
    docs = []
    for i, (place, keeper) in enumerate(zip(PLACES, KEEPERS)):
        year, height = 1850 + 7 * i, 20 + 3 * i
        text = (f"The lighthouse at {place} was first lit in {year} after a long winter.\n\n"
                f"Its keeper for many years was {keeper}, who wrote every storm into a ledger.\n\n"
                f"The tower at {place} stands {height} metres above the rocks of the bay.\n\n"
                f"Ships passing {place} used the signal_lamp_{i} beacon on foggy nights.")
        docs.append(Document(id=f"{place.lower()}.md", text=text, title=place))
    return docs


def test_spans_are_typed():
    found = spans("On 14 May 2020 the Harbour Board paid 1,024 pounds for the signal_lamp, in 1999.",
                  {"signal_lamp"})
    assert [(s.kind, s.text) for s in found] == [
        ("date", "14 May 2020"), ("year", "1999"), ("name", "Harbour Board"),
        ("number", "1,024"), ("term", "signal_lamp")]
    assert shape("signal_lamp") == shape("other_name") != shape("plain")


@pytest.mark.parametrize("sentence", [
    "The branch sami/2015wk00 fixes the crash in fsck today.",  # a year inside a branch name
    "Version 1.16 lists the changes since 1.15a in this file.",  # a number inside a version tag
    "Build it with gcc4 and x86 flags on the old boxes.",
    "A time like 23:59:60 is rejected on hosts without leap seconds.",  # parts of a time
    "Version 1.36 (25-Aug-95) added group support to the tool.",  # the day of a date string
    "It is an enhanced getopt(1) that shell scripts can detect.",  # a man-page section
])
def test_spans_are_whole_tokens(sentence):
    """A number or year glued to letters is part of an identifier: masking it leaves a
    question whose blank sits inside a word ('since ____a')."""
    glued = {"2015", "15", "1.15", "4", "86", "23", "59", "60", "25", "95", "1"}
    assert not [s.text for s in spans(sentence, set()) if s.text in glued]


def test_cloze_items_mask_one_span_with_same_kind_distractors():
    docs = corpus()
    by_id = {d.id: d for d in docs}
    span_choices = ClozeSettings(choices_as="span")
    items, counts = generate_cloze(docs, n_questions=30, n_choices=4, seed=3, settings=span_choices)
    assert len(items) == counts["kept"] == 30
    assert counts["candidates"] == 30 + sum(v for k, v in counts.items() if k.startswith("dropped_")
                                            and k not in ("dropped_sentence_length",
                                                          "dropped_no_salient_span"))
    assert len({i.question for i in items}) == 30 and len({i.doc_id for i in items}) == 12
    for it in items:
        assert it.question.count(BLANK) == 1
        assert it.question.replace(BLANK, it.answer) == f"{by_id[it.doc_id].title}: {it.context}"
        assert it.context in " ".join(by_id[it.doc_id].text.split())
        assert len(it.choices) == 4 and it.answer in it.choices and len(set(it.choices)) == 4
        others = [c for c in it.choices if c != it.answer]
        # distractors: the same kind of span, from other documents, not in the sentence
        assert all(c not in it.context for c in others)
        assert all(c not in by_id[it.doc_id].text for c in others)
        if it.kind == "year":
            assert all(c.isdigit() and len(c) == 4 for c in others)
        if it.kind == "name":
            assert all(c in KEEPERS for c in others)
    assert {i.kind for i in items} >= {"year", "name", "number"}
    again, _ = generate_cloze(docs, n_questions=30, n_choices=4, seed=3, settings=span_choices)
    assert again == items  # the seed fixes everything
    other, _ = generate_cloze(docs, n_questions=30, n_choices=4, seed=4, settings=span_choices)
    assert other != items
    # the default: each choice is the sentence with one candidate filled in
    whole, _ = generate_cloze(docs, n_questions=30, n_choices=4, seed=3)
    for span_item, item in zip(items, whole):
        assert item.answer == item.context == span_item.context
        before, after = span_item.question.split(": ", 1)[1].split(BLANK)
        assert item.choices == tuple(before + c + after for c in span_item.choices)


def test_free_form_and_too_few_distractors():
    docs = corpus()
    items, _ = generate_cloze(docs, n_questions=10, n_choices=0)
    assert len(items) == 10 and all(i.choices == () for i in items)
    items, counts = generate_cloze(docs[:2], n_questions=10, n_choices=4)  # 1 other document
    assert items == [] and counts["dropped_too_few_distractors"] > 0
    strict, counts = generate_cloze(docs, n_questions=10, settings=ClozeSettings(min_words=50))
    assert strict == [] and counts["dropped_sentence_length"] == counts["sentences"]


def _make_task(tmp_path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.data.generate.cli", *args,
                           "progress=false"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)


def test_make_task_writes_a_task_that_runs(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    for d in corpus():
        (folder / d.id).write_text(f"# {d.title}\n\n{d.text}\n")
    res = _make_task(tmp_path, "corpus_path=docs", "out_dir=mytask", "n_questions=30", "seed=1")
    assert res.returncode == 0, res.stderr[-3000:]
    rows = [json.loads(x) for x in (tmp_path / "mytask" / "examples.jsonl").read_text().splitlines()]
    how = json.loads((tmp_path / "mytask" / "generation.json").read_text())
    assert len(rows) == how["written"] == how["counts"]["kept"] == 30
    assert how["generator"] == "cloze" and how["seed"] == 1 and how["corpus"]["documents"] == 12
    assert how["split_sizes"] == {"train": 15, "val": 3, "test": 12}
    v = how["validity"]  # cloze copies its sentence: full overlap, and the shortcut works
    assert v["questions"] == 30 and v["overlap_mean"] > 0.9 and v["longest_shared_run_median"] >= 5
    assert v["shortcut_accuracy"] >= 0.5 and any("shortcut" in w for w in v["warnings"])
    assert v["documents_covered"] == 1.0 and 0 < v["largest_document_share"] <= 0.1
    assert all(r["question"].startswith("Fill in the blank: ") and r["answer"] in r["choices"]
               for r in rows)
    cfg = compose_cfg(["model=tiny-random", "strategy=rag", "task=custom",
                       f"task.corpus_path={folder}",
                       f"task.examples_path={tmp_path / 'mytask' / 'examples.jsonl'}",
                       "answer.generate=false"], tmp_path)
    m = run(cfg, tmp_path / "run")
    assert m["status"] == "complete" and m["n_examples"] == 12
    assert m["recall_at_k"] >= 0.9  # the masked sentence finds its own document
    assert m["corpus"]["source"] == "folder" and m["corpus"]["documents"] == 12
    assert m["corpus"]["question_set"]["validity"] == v  # the run carries it to the report


def test_make_task_errors_are_one_line(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("Too short.")
    res = _make_task(tmp_path, "corpus_path=docs", "out_dir=out")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "harness-make-task: error:" in res.stderr and "no question could be made" in res.stderr
    how = json.loads((tmp_path / "out" / "generation.json").read_text())  # what was tried
    assert how["written"] == 0 and how["counts"]["sentences"] == 1 and "no question" in how["error"]
    assert not (tmp_path / "out" / "examples.jsonl").exists()
    res = _make_task(tmp_path, "corpus_path=docs")
    assert res.returncode == 2 and "give out_dir=..." in res.stderr and "Traceback" not in res.stderr
    assert (tmp_path / "out" / "make_task.log").is_file()  # the log sits beside the set
    res = _make_task(tmp_path, "corpus_path=docs", "out_dir=out", "generator=magic")
    assert res.returncode == 2 and "unknown generator 'magic'; choose one of: cloze" in res.stderr


@pytest.mark.parametrize("bad", ["n_questions=0", "n_choices=1"])
def test_make_task_rejects_bad_counts(tmp_path, bad):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("Some text that is long enough to be a sentence here.")
    res = _make_task(tmp_path, "corpus_path=docs", "out_dir=out", bad)
    assert res.returncode == 2 and "n_questions must be >= 1" in res.stderr


class StubLM:
    """An LM whose outputs the test sets: the question and answer it writes for a passage
    (by the passage's place name) and which choice it prefers without a passage."""

    name = "stub"

    def __init__(self, writes: dict[str, tuple[str, str]], knows: set[str] = frozenset()):
        self.writes, self.knows, self.calls = writes, knows, []

    def render(self, messages) -> str:
        return "\n".join(m["content"] for m in messages)

    def _place(self, prompt: str) -> str:
        return next(p for p in PLACES if f"at {p}" in prompt or f"passing {p}" in prompt)

    def generate(self, prompts, *, max_new_tokens=16, batch_size=8, progress=False):
        from harness.models import Generation

        self.calls.append(len(prompts))
        out = []
        for p in prompts:
            q, a = self.writes.get(self._place(p.split("\nQuestion: ")[0]), ("", ""))
            out.append(Generation(a if "\nQuestion: " in p else q, 1, 1, 0.0, 0.0))
        return out

    def score_choices(self, contexts, choices, *, batch_size=8, progress=False):
        from harness.models import ChoiceScores

        # a known answer wins; otherwise a choice that is no generated answer (a wrong one)
        answers = {a for _, a in self.writes.values()}
        return [ChoiceScores(tuple(1.0 if c in self.knows else 0.0 if c in answers else 0.5
                                   for c in chs), (1,) * len(chs), 1, 0.0, 0.0)
                for chs in choices]

    def count_tokens(self, text: str) -> int:
        return len(text.split())


def test_llm_generator_filters_and_flags():
    from harness.data.generate.llm import LLMSettings, generate_llm, supported

    writes = {
        "Varne": ("When was the lighthouse at Varne first lit?", "1850"),       # kept
        "Dunmore": ("Who kept the Dunmore light?", "Jonas Pike"),               # kept, known
        "Kestrel": ("Who kept the Kestrel light?", "Captain Nobody"),           # unsupported
        "Halden": ("What is at Halden", "a tower"),                             # unparsed: no ?
        "Orrin": ("How tall is the tower at Orrin?",
                  "it stands thirty two metres above the rocks of the bay"),     # too long
        "Brask": ("Which lighthouse stands at Brask?", "Brask"),                # in the question
        "Tolven": ("When was the lighthouse at Varne first lit?", "1892"),      # duplicate of Varne
    }
    docs = corpus()
    lm = StubLM(writes, knows={"Jonas Pike"})
    prompts = {"version": 1, "system": "s", "question": "Q {passage}",
               "answer": "A {passage}\nQuestion: {question}"}
    items, counts = generate_llm(docs, lm, prompts, n_questions=12, n_choices=4, seed=0,
                                 settings=LLMSettings(chunk_words=200, oversample=1.0))
    assert counts["passages"] == 12 and lm.calls[:2] == [12, 12]  # questions, then answers
    by_answer = {i.answer: i for i in items}
    assert sorted(by_answer) == ["1850", "Jonas Pike"]
    assert counts["kept"] == 2 and counts["dropped_unsupported"] == 1
    assert counts["dropped_unparsed"] == 1 + 5  # Halden, and the 5 places it writes nothing for
    assert counts["dropped_too_long"] == 1
    assert counts["dropped_in_question"] == 1 and counts["dropped_duplicate"] == 1
    varne, dunmore = by_answer["1850"], by_answer["Jonas Pike"]
    assert varne.kind == "year" and len(varne.choices) == 4 and "1850" in varne.choices
    assert all(c.isdigit() and len(c) == 4 for c in varne.choices)
    assert dunmore.kind == "name" and set(dunmore.choices) - {"Jonas Pike"} <= set(KEEPERS)
    assert varne.answerable_without_context is False and dunmore.answerable_without_context is True
    assert counts["answerable_without_context"] == 1
    assert supported("os.path.getsize", "call os.path.getsize() on it")
    assert not supported("getsize", "call getsizeof on it")


def test_make_task_llm_on_the_tiny_model(tmp_path):
    """The real model path once: the tiny random model writes noise, which the filters
    drop; generation.json says so, and the command fails with one line when nothing is left."""
    folder = tmp_path / "docs"
    folder.mkdir()
    for d in corpus()[:4]:
        (folder / d.id).write_text(d.text)
    res = _make_task(tmp_path, "corpus_path=docs", "out_dir=out", "generator=llm",
                     "model=tiny-random", "n_questions=4", "llm.max_question_tokens=8",
                     "llm.max_answer_tokens=4")
    assert res.returncode == 2 and "no question could be made from 4 documents" in res.stderr
    assert "dropped_" in res.stderr and "Traceback" not in res.stderr
