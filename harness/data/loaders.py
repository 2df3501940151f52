"""Read a user's corpus and examples from JSONL, JSON, CSV or Parquet, validating every
record (a corpus may also be a folder of documents: harness.data.documents).

corpus:   {"id": str, "text": str, "title": str?, "paraphrases": [str]?}
examples: {"id": str, "question": str, "answer": str | [str], "choices": [str]?,
           "source_ids": [str]?, "split": "train" | "val" | "test"?, ...}
          (any other field, e.g. "difficulty" or "topic", is kept as the example's metadata:
          the report's item explorer shows it and can filter by it)

In CSV the same columns are used; list fields hold a JSON list (["a", "b"]) or
values separated by "|". A .json file holds one array of objects or one object per line; a
record's "line" is then its 1-based position (in Parquet, its row). A corpus export with
other column names maps them with `columns` (task.columns: {id: doc_id, text: body}).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.data.errors import TaskDataError
from harness.types import SPLITS, Document, Example

Record = tuple[int, dict[str, Any]]  # (1-based line number, parsed record)
EXAMPLE_FIELDS = ("id", "question", "answer", "choices", "source_ids", "split")


def read_records(path: str | Path) -> list[Record]:
    """Parse a .jsonl, .json, .csv or .parquet file into (line, record) pairs."""
    path = Path(path)
    if not path.is_file():
        raise TaskDataError("file not found", path=path, hint="check the task's *_path settings")
    if path.suffix.lower() == ".parquet":
        return _parquet_records(path)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise TaskDataError(
            f"bytes are not valid UTF-8 (byte offset {e.start})",
            path=path,
            line=line,
            hint="re-save the file as UTF-8",
        ) from None
    suffix = path.suffix.lower()
    if suffix == ".json" and text.lstrip().startswith("["):
        records = _json_array_records(path, text)
    else:
        records = list(_csv_records(path, text) if suffix == ".csv" else _jsonl_records(path, text))
    if not records:
        raise TaskDataError("file holds no records", path=path, hint="add at least one record")
    return records


def _jsonl_records(path: Path, text: str) -> Iterator[Record]:
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise TaskDataError(
                f"malformed JSON ({e.msg} at column {e.colno})",
                path=path,
                line=lineno,
                hint="each line must be one JSON object",
            ) from None
        if not isinstance(rec, dict):
            raise TaskDataError(
                f"expected a JSON object, got {type(rec).__name__}", path=path, line=lineno
            )
        yield lineno, rec


def _json_array_records(path: Path, text: str) -> list[Record]:
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as e:
        raise TaskDataError(f"malformed JSON ({e.msg})", path=path, line=e.lineno) from None
    bad = next((i for i, r in enumerate(rows, 1) if not isinstance(r, dict)), None)
    if bad is not None:
        raise TaskDataError(f"record {bad} of the array is not a JSON object", path=path)
    return list(enumerate(rows, start=1))


def _parquet_records(path: Path) -> list[Record]:
    import pandas as pd

    try:
        frame = pd.read_parquet(path)
    except Exception as e:  # pyarrow raises several types for a broken file
        raise TaskDataError(f"cannot read Parquet ({type(e).__name__}: {e})", path=path) from None
    records = []
    for row, rec in enumerate(frame.to_dict(orient="records"), start=1):
        clean = {}
        for key, value in rec.items():
            if hasattr(value, "tolist"):  # numpy arrays (list columns) and scalars
                value = value.tolist()
            if value is None or (isinstance(value, float) and value != value):  # null / NaN
                continue
            clean[str(key)] = value
        records.append((row, clean))
    return records


def _csv_records(path: Path, text: str) -> Iterator[Record]:
    reader = csv.DictReader(text.splitlines(keepends=True))
    for row in reader:
        rec = {k: v for k, v in row.items() if k is not None and v not in (None, "")}
        if rec:
            yield reader.line_num, rec


def _list_field(rec: dict, key: str, path: Path, line: int, *, csv_mode: bool) -> list[str] | None:
    value = rec.get(key)
    if value is None:
        return None
    if csv_mode and isinstance(value, str):
        value = json.loads(value) if value.strip().startswith("[") else value.split("|")
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TaskDataError(
            f"must be a string or a list of strings, got {type(value).__name__}",
            path=path,
            line=line,
            field=key,
        )
    return [v.strip() if csv_mode else v for v in value]


def _str_field(rec: dict, key: str, path: Path, line: int, *, required: bool) -> str | None:
    if key not in rec or rec[key] is None:
        if required:
            raise TaskDataError("is missing", path=path, line=line, field=key)
        return None
    value = rec[key]
    if not isinstance(value, str):
        raise TaskDataError(
            f"must be a string, got {type(value).__name__} ({value!r})",
            path=path,
            line=line,
            field=key,
        )
    if required and not value.strip():
        raise TaskDataError("is empty", path=path, line=line, field=key)
    return value


def _check_unique(seen: dict[str, int], id_: str, path: Path, line: int) -> None:
    if id_ in seen:
        raise TaskDataError(
            f"duplicate id '{id_}' (first seen on line {seen[id_]})",
            path=path,
            line=line,
            field="id",
            hint="ids must be unique within a file",
        )
    seen[id_] = line


CORPUS_FIELDS = ("id", "text", "title", "paraphrases")


def _renamed(rec: dict[str, Any], columns: dict[str, str]) -> dict[str, Any]:
    """A record with the user's column names mapped to the corpus fields."""
    out = {k: v for k, v in rec.items() if k not in columns.values()}
    for field_name, column in columns.items():
        if column in rec:
            value = rec[column]
            # an integer id column of an export is read as text
            out[field_name] = str(value) if field_name == "id" and type(value) is int else value
    return out


def load_corpus(path: str | Path, columns: dict[str, str] | None = None) -> list[Document]:
    path = Path(path)
    columns = dict(columns or {})
    unknown = sorted(set(columns) - set(CORPUS_FIELDS))
    if unknown:
        raise TaskDataError(f"task.columns names unknown fields {unknown}; map any of: "
                            f"{', '.join(CORPUS_FIELDS)}")
    docs, seen = [], {}
    for line, rec in read_records(path):
        rec = _renamed(rec, columns) if columns else rec
        id_ = _str_field(rec, "id", path, line, required=True)
        _check_unique(seen, id_, path, line)
        text = _str_field(rec, "text", path, line, required=True)
        title = _str_field(rec, "title", path, line, required=False) or ""
        paraphrases = _list_field(rec, "paraphrases", path, line,
                                  csv_mode=path.suffix.lower() == ".csv")
        docs.append(Document(id=id_, text=text, title=title, paraphrases=tuple(paraphrases or ())))
    return docs


def load_examples(path: str | Path, corpus_ids: set[str]) -> tuple[list[Example], dict[str, int]]:
    """Examples plus a map id -> line number (so later checks can point at the line)."""
    path = Path(path)
    csv_mode = path.suffix.lower() == ".csv"
    examples, seen = [], {}
    for line, rec in read_records(path):
        id_ = _str_field(rec, "id", path, line, required=True)
        _check_unique(seen, id_, path, line)
        question = _str_field(rec, "question", path, line, required=True)
        if "answer" not in rec:
            raise TaskDataError("is missing", path=path, line=line, field="answer")
        answers = _list_field(rec, "answer", path, line, csv_mode=csv_mode) or []
        if not answers or any(not a.strip() for a in answers):
            raise TaskDataError(
                "is empty", path=path, line=line, field="answer", hint="give the gold answer text"
            )
        choices = _list_field(rec, "choices", path, line, csv_mode=csv_mode) or []
        if choices and not set(answers) & set(choices):
            raise TaskDataError(
                f"none of the choices {choices} is the answer {answers}",
                path=path,
                line=line,
                field="choices",
                hint="include the gold answer among the choices",
            )
        if len(choices) != len(set(choices)):
            raise TaskDataError("holds duplicate choices", path=path, line=line, field="choices")
        source_ids = _list_field(rec, "source_ids", path, line, csv_mode=csv_mode) or []
        for sid in source_ids:
            if sid not in corpus_ids:
                raise TaskDataError(
                    f"'{sid}' names no document in the corpus",
                    path=path,
                    line=line,
                    field="source_ids",
                    hint="use ids from the corpus file",
                )
        split = _str_field(rec, "split", path, line, required=False) or ""
        if split and split not in SPLITS:
            raise TaskDataError(
                f"unknown split '{split}'; choose one of: {', '.join(SPLITS)}",
                path=path,
                line=line,
                field="split",
            )
        examples.append(
            Example(
                id=id_,
                question=question,
                answers=tuple(answers),
                choices=tuple(choices),
                source_ids=tuple(source_ids),
                split=split,
                meta={k: v for k, v in rec.items() if k not in EXAMPLE_FIELDS},
            )
        )
    return examples, seen
