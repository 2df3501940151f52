"""Every invalid input gets an error naming the file, line and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.data import TaskDataError, load_task_files
from tests.conftest import write_jsonl

CORPUS = [{"id": "d1", "text": "Alpha is red."}, {"id": "d2", "text": "Beta is blue."}]


def _examples(n: int = 10) -> list[dict]:
    rows = [{"id": f"q{i}", "question": f"What colour is thing {i}?", "answer": "red",
             "choices": ["red", "blue"], "source_ids": ["d1"]} for i in range(n)]
    return rows


def _load(tmp_path: Path, corpus: list, examples: list, **kw):
    c = write_jsonl(tmp_path / "corpus.jsonl", corpus)
    e = write_jsonl(tmp_path / "examples.jsonl", examples)
    return load_task_files("t", c, e, **kw)


def _error(tmp_path: Path, corpus: list, examples: list, **kw) -> str:
    with pytest.raises(TaskDataError) as info:
        _load(tmp_path, corpus, examples, **kw)
    return str(info.value)


def test_valid_task_loads_and_splits(tmp_path):
    task = _load(tmp_path, CORPUS, _examples(20))
    sizes = {s: len(task.split(s)) for s in ("train", "val", "test")}
    assert sizes == {"train": 14, "val": 3, "test": 3}
    assert len(task.split_hash) == 16


def test_malformed_json(tmp_path):
    rows = _examples(3)
    rows[1] = '{"id": "q1", "question": "x"'
    msg = _error(tmp_path, CORPUS, rows)
    assert "examples.jsonl:2" in msg and "malformed JSON" in msg


def test_missing_field(tmp_path):
    rows = _examples(3)
    del rows[2]["question"]
    msg = _error(tmp_path, CORPUS, rows)
    assert "examples.jsonl:3" in msg and "field 'question'" in msg and "missing" in msg


def test_missing_corpus_text(tmp_path):
    msg = _error(tmp_path, [{"id": "d1"}], _examples(3))
    assert "corpus.jsonl:1" in msg and "field 'text'" in msg


def test_mistyped_field(tmp_path):
    rows = _examples(3)
    rows[0]["answer"] = 42
    msg = _error(tmp_path, CORPUS, rows)
    assert "examples.jsonl:1" in msg and "field 'answer'" in msg and "int" in msg


def test_mistyped_id(tmp_path):
    rows = _examples(3)
    rows[1]["id"] = 7
    msg = _error(tmp_path, CORPUS, rows)
    assert "examples.jsonl:2" in msg and "field 'id'" in msg and "must be a string" in msg


def test_duplicate_ids(tmp_path):
    rows = _examples(4)
    rows[3]["id"] = "q1"
    msg = _error(tmp_path, CORPUS, rows)
    assert "examples.jsonl:4" in msg and "duplicate id 'q1'" in msg and "line 2" in msg


def test_duplicate_corpus_ids(tmp_path):
    msg = _error(tmp_path, CORPUS + [{"id": "d1", "text": "again"}], _examples(3))
    assert "corpus.jsonl:3" in msg and "duplicate id 'd1'" in msg


def test_source_ids_name_no_document(tmp_path):
    rows = _examples(3)
    rows[2]["source_ids"] = ["d9"]
    msg = _error(tmp_path, CORPUS, rows)
    assert "examples.jsonl:3" in msg and "field 'source_ids'" in msg and "'d9'" in msg


def test_empty_split(tmp_path):
    rows = _examples(6)
    for r in rows:
        r["split"] = "train"
    msg = _error(tmp_path, CORPUS, rows)
    assert "split 'test' is empty" in msg and "examples.jsonl" in msg


def test_empty_split_after_ratio_split(tmp_path):
    msg = _error(tmp_path, CORPUS, _examples(2), split_ratios=(0.7, 0.15, 0.15))
    assert "is empty" in msg and "split_ratios" in msg


def test_test_question_also_in_train(tmp_path):
    rows = _examples(4)
    for r, s in zip(rows, ["train", "train", "test", "test"]):
        r["split"] = s
    rows[3]["question"] = "  what colour is THING 0? "
    msg = _error(tmp_path, CORPUS, rows)
    assert "examples.jsonl:4" in msg and "field 'question'" in msg and "leakage" in msg
    assert "'q0' (line 1)" in msg


def test_empty_file(tmp_path):
    msg = _error(tmp_path, CORPUS, [])
    assert "examples.jsonl" in msg and "no records" in msg


def test_non_utf8(tmp_path):
    c = write_jsonl(tmp_path / "corpus.jsonl", CORPUS)
    e = tmp_path / "examples.jsonl"
    e.write_bytes(json.dumps(_examples(1)[0]).encode() + b"\n" + b'{"id": "q\xff"}\n')
    with pytest.raises(TaskDataError) as info:
        load_task_files("t", c, e)
    assert "examples.jsonl:2" in str(info.value) and "UTF-8" in str(info.value)


def test_empty_answer(tmp_path):
    rows = _examples(3)
    rows[1]["answer"] = "  "
    msg = _error(tmp_path, CORPUS, rows)
    assert "examples.jsonl:2" in msg and "field 'answer'" in msg and "empty" in msg


def test_choices_without_answer(tmp_path):
    rows = _examples(3)
    rows[0]["choices"] = ["green", "blue"]
    msg = _error(tmp_path, CORPUS, rows)
    assert "examples.jsonl:1" in msg and "field 'choices'" in msg


def test_unknown_split_value(tmp_path):
    rows = _examples(3)
    rows[0]["split"] = "dev"
    msg = _error(tmp_path, CORPUS, rows)
    assert "examples.jsonl:1" in msg and "unknown split 'dev'" in msg and "train, val, test" in msg


def test_split_given_for_some_only(tmp_path):
    rows = _examples(3)
    rows[0]["split"] = "test"
    msg = _error(tmp_path, CORPUS, rows)
    assert "examples.jsonl:2" in msg and "field 'split'" in msg


def test_missing_file(tmp_path):
    c = write_jsonl(tmp_path / "corpus.jsonl", CORPUS)
    with pytest.raises(TaskDataError, match="nope.jsonl.*file not found"):
        load_task_files("t", c, tmp_path / "nope.jsonl")


def test_csv_with_list_columns(tmp_path):
    (tmp_path / "corpus.csv").write_text("id,text,title\nd1,Alpha is red.,Alpha\nd2,Beta is blue.,\n")
    lines = ["id,question,answer,choices,source_ids,split"]
    for i, s in enumerate(["train", "train", "test"]):
        lines.append(f'q{i},What is thing {i}?,"[""red"", ""scarlet""]",red|blue,d1,{s}')
    (tmp_path / "examples.csv").write_text("\n".join(lines) + "\n")
    task = load_task_files("t", tmp_path / "corpus.csv", tmp_path / "examples.csv")
    ex = task.split("test")[0]
    assert ex.answers == ("red", "scarlet") and ex.choices == ("red", "blue")
    assert ex.source_ids == ("d1",) and task.corpus[0].title == "Alpha"


def test_csv_error_names_line(tmp_path):
    (tmp_path / "corpus.csv").write_text("id,text\nd1,Alpha is red.\n")
    (tmp_path / "examples.csv").write_text("id,question,answer\nq0,What?,red\nq1,,red\n")
    with pytest.raises(TaskDataError) as info:
        load_task_files("t", tmp_path / "corpus.csv", tmp_path / "examples.csv")
    assert "examples.csv:3" in str(info.value) and "field 'question'" in str(info.value)
