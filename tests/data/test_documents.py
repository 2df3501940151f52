"""A corpus from a folder (txt, md, html, pdf, gzipped) and from data exports (parquet,
json arrays, other column names), and each kind of bad file: an error naming the file, or
a skip that the run records."""

from __future__ import annotations

import gzip
import io
import json

import pandas as pd
import pytest

from harness.data import TaskDataError, build_task, read_corpus
from harness.data.documents import load_folder
from tests.conftest import write_jsonl


def _pdf(text_lines: list[str], title: str | None = None, password: str | None = None) -> bytes:
    from pypdf import PdfReader, PdfWriter
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf)
    if title:
        c.setTitle(title)
    for i, line in enumerate(text_lines):
        c.drawString(72, 760 - 16 * i, line)
    c.save()
    if password is None:
        return buf.getvalue()
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(buf.getvalue())))
    writer.encrypt(password)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "docs"
    (root / "guide").mkdir(parents=True)
    (root / "notes.txt").write_text("Plain notes. The kettle boils at 97 degrees here.\n")
    (root / "guide" / "setup.md").write_text(
        "Intro line\n\n# Setting up the *Harbour* pump\n\nThe pump needs **two** valves and a "
        "[manual](http://x).\n\n```\nrun --fast\n```\n")
    (root / "guide" / "page.html").write_text(
        "<html><head><title>Lighthouse keepers</title></head><body><nav>Home | About</nav>"
        "<article><h1>Keepers</h1><p>The lighthouse at Varne was kept by Ada Morrow from "
        "1881 to 1907, and she logged every storm in a green ledger.</p><p>Her successor "
        "kept a blue ledger and wrote much less about the weather at sea.</p></article>"
        "</body></html>")
    (root / "report.pdf").write_bytes(_pdf(["The dam holds 40 million litres.",
                                            "It was finished in 1962."], title="Dam report"))
    (root / "old.txt.gz").write_bytes(gzip.compress(b"Archived text about the old mill."))
    (root / "image.png").write_bytes(b"\x89PNG\r\n")  # not a document: not matched
    (root / ".hidden.txt").write_text("never read")
    return root


def test_every_file_type_becomes_a_document(folder):
    docs, info = read_corpus(folder)
    by_id = {d.id: d for d in docs}
    assert sorted(by_id) == ["guide/page.html", "guide/setup.md", "notes.txt", "old.txt.gz",
                             "report.pdf"]
    boilerplate = info.pop("boilerplate")  # five unrelated files: nothing recurs
    assert boilerplate["lines_dropped"] == boilerplate["sentences_dropped"] == 0
    assert info == {"source": "folder", "files": 5, "documents": 5, "skipped": 0,
                    "skipped_files": []}
    md = by_id["guide/setup.md"]
    assert md.title == "Setting up the Harbour pump"  # the first heading, markup removed
    assert "The pump needs two valves and a manual." in md.text and "**" not in md.text
    assert "run --fast" in md.text
    html = by_id["guide/page.html"]
    assert html.title == "Keepers"  # trafilatura: the main heading, else <title>
    assert "Ada Morrow from 1881 to 1907" in html.text
    assert "<p>" not in html.text
    pdf = by_id["report.pdf"]
    assert pdf.title == "Dam report" and "40 million litres" in pdf.text and "1962" in pdf.text
    assert by_id["notes.txt"].title == "notes" and "97 degrees" in by_id["notes.txt"].text
    assert by_id["old.txt.gz"].text == "Archived text about the old mill."


def test_include_patterns_choose_the_files(folder):
    (folder / "tool.py").write_text("def pump():\n    return 'two valves'\n")
    docs, _ = read_corpus(folder, {"folder": {"include": ["*.py", "*.txt"]}})
    assert sorted(d.id for d in docs) == ["notes.txt", "old.txt.gz", "tool.py"]
    with pytest.raises(TaskDataError, match="no file under this folder matches"):
        read_corpus(folder, {"folder": {"include": ["*.rst"]}})


BAD_FILES = {
    "empty.txt": (b"   \n", "empty file"),
    "junk.txt": (b"\x00\x01\x02binary\xff", "binary content"),
    "noise.md": (bytes(range(128, 256)) * 50, "not text in UTF-8 or a legacy encoding"),
    "corrupt.pdf": (b"%PDF-1.4 this is not really a pdf", "unreadable PDF"),
    "locked.pdf": (None, "encrypted PDF"),
    "blank.html": (b"<html><head><title>x</title></head><body></body></html>", "no text found"),
    "broken.txt.gz": (b"\x1f\x8b\x08 not gzip at all", "corrupt gzip"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_a_bad_file_stops_the_load_naming_it(tmp_path, name):
    root = tmp_path / "docs"
    root.mkdir()
    (root / "good.txt").write_text("A good document about rivers.")
    raw, message = BAD_FILES[name]
    (root / name).write_bytes(raw if raw is not None else _pdf(["secret"], password="pw"))
    with pytest.raises(TaskDataError) as info:
        load_folder(root)
    assert str(info.value).startswith(f"{root / name}: ") and message in str(info.value)
    assert "task.on_bad_file=skip" in str(info.value)


def test_bad_files_can_be_skipped_and_are_counted(tmp_path):
    root = tmp_path / "docs"
    root.mkdir()
    (root / "good.txt").write_text("A good document about rivers.")
    for name, (raw, _) in BAD_FILES.items():
        (root / name).write_bytes(raw if raw is not None else _pdf(["secret"], password="pw"))
    docs, info = load_folder(root, on_bad_file="skip")
    assert [d.id for d in docs] == ["good.txt"]
    assert info["files"] == 1 + len(BAD_FILES) and info["skipped"] == len(BAD_FILES)
    reasons = {s["file"]: s["reason"] for s in info["skipped_files"]}
    for name, (_, message) in BAD_FILES.items():
        assert message in reasons[name], name


def test_a_task_on_a_folder_records_what_was_skipped(tmp_path, folder):
    (folder / "empty.md").write_text("")
    examples = write_jsonl(tmp_path / "examples.jsonl", [
        {"id": f"q{i}", "question": f"What does the dam hold, take {i}?", "answer": "40 million litres",
         "source_ids": ["report.pdf"], "split": s}
        for i, s in enumerate(["train", "val", "test", "test"])])
    cfg = {"name": "mine", "kind": "files", "corpus_path": str(folder),
           "examples_path": str(examples), "on_bad_file": "skip"}
    task = build_task(cfg)
    assert len(task.corpus) == 5 and task.corpus_info["skipped"] == 1
    assert task.corpus_info["skipped_files"] == [{"file": "empty.md", "reason": "empty file"}]
    with pytest.raises(TaskDataError, match="empty.md: empty file"):
        build_task({**cfg, "on_bad_file": "error"})


def test_parquet_and_json_exports_with_other_column_names(tmp_path):
    rows = [{"doc_id": 1, "body": "The first text.", "name": "One"},
            {"doc_id": 2, "body": "The second text.", "name": "Two"}]
    pd.DataFrame(rows).to_parquet(tmp_path / "corpus.parquet")
    (tmp_path / "corpus.json").write_text(json.dumps(
        [{**r, "doc_id": str(r["doc_id"])} for r in rows]))
    columns = {"columns": {"id": "doc_id", "text": "body", "title": "name"}}
    for name in ("corpus.parquet", "corpus.json"):
        docs, info = read_corpus(tmp_path / name, columns)
        assert [(d.id, d.text, d.title) for d in docs] == [
            ("1", "The first text.", "One"), ("2", "The second text.", "Two")], name
        assert info["documents"] == 2
    with pytest.raises(TaskDataError, match=r"corpus.parquet:1: field 'text': is missing"):
        read_corpus(tmp_path / "corpus.parquet", {"columns": {"id": "doc_id"}})
    with pytest.raises(TaskDataError, match="unknown fields"):
        read_corpus(tmp_path / "corpus.json", {"columns": {"body": "text"}})
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 nonsense")
    with pytest.raises(TaskDataError, match="bad.parquet: cannot read Parquet"):
        read_corpus(tmp_path / "bad.parquet")


@pytest.mark.parametrize("text, encoding", [
    ("caf\xe9 au lait", "latin-1"), ("M\xfcller stra\xdfe", "cp1252"),
    ("Le caf\xe9 du port a \xe9t\xe9 construit pr\xe8s de la jet\xe9e. " * 20, "latin-1"),
    ("\u3053\u308c\u306f\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\u3067\u3059\u3002"
     "\u6771\u4eac\u306e\u6e2f\u306b\u3064\u3044\u3066\u3002", "shift_jis"),
])
def test_text_in_a_legacy_encoding_is_read(tmp_path, text, encoding):
    (tmp_path / "old.txt").write_bytes(text.encode(encoding))
    docs, _ = load_folder(tmp_path)
    assert docs[0].text == text.strip()
