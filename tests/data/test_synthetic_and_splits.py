from __future__ import annotations

from dataclasses import replace

from harness.data import build_task
from harness.data.splits import split_hashes
from harness.data.synthetic import generate

DEFAULT = {"name": "synthetic_facts", "kind": "synthetic_facts"}


def test_synthetic_is_seeded_and_well_formed():
    docs, examples = generate(n_entities=60, seed=3)
    docs2, examples2 = generate(n_entities=60, seed=3)
    assert docs == docs2 and examples == examples2
    assert generate(n_entities=60, seed=4)[1] != examples
    ids = {d.id for d in docs}
    assert len({e.question for e in examples}) == len(examples) == 60 * 4
    for e in examples:
        assert len(e.choices) == 4 and len(set(e.choices)) == 4
        assert e.answer in e.choices and set(e.source_ids) <= ids
        doc = next(d for d in docs if d.id == e.source_ids[0])
        assert e.answer in doc.text  # the document states the answer
        assert all(e.answer in p for p in doc.paraphrases)
    assert all(len(d.paraphrases) == 3 for d in docs)


def test_default_size_has_at_least_150_test_questions():
    task = build_task(DEFAULT)
    assert len(task.split("test")) >= 150
    train_q = {e.question for e in task.split("train")}
    assert not train_q & {e.question for e in task.split("test")}


def test_splits_are_fixed_by_split_seed_and_hashed():
    a, b = build_task(DEFAULT), build_task(DEFAULT)
    assert a.split_hash == b.split_hash and a.split("test") == b.split("test")
    c = build_task({**DEFAULT, "split_seed": 1})
    assert c.split_hash != a.split_hash and c.split_ids_hash["test"] != a.split_ids_hash["test"]


def test_split_hash_changes_with_membership():
    task = build_task({**DEFAULT, "n_entities": 30})
    moved = [replace(e, split="train") if e.split == "test" and i % 2 else e
             for i, e in enumerate(task.examples)]
    assert split_hashes(moved)[0] != task.split_hash
