"""Messy folders, generated (never committed), and what reading them does: each file's
outcome (loaded, cut and counted, or named and skipped), its seconds, and the peak memory of
the process. Used by tests/data/test_stress.py and `make bench` (section "scaling").

    python -m bench.stress make DIR       write the stress corpus into DIR
    python -m bench.stress read DIR       read it as harness-make-task would: JSON out
"""

from __future__ import annotations

import io
import json
import random
import sys
import time
from pathlib import Path

WORDS = ("harbour", "valve", "ledger", "granite", "pier", "oak", "signal", "tide", "north",
         "keeper", "storm", "lantern", "boat", "board", "town", "metres", "record", "row")


def words(n: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(n))


def prose(n_sentences: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    return " ".join(f"The {rng.choice(WORDS)} of {rng.choice(WORDS).title()} was built in "
                    f"{rng.randint(1800, 1999)} by the {rng.choice(WORDS)} board."
                    for _ in range(n_sentences))


def _pdf(pages: int, lines: list[str] | None = None) -> bytes:
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf)
    for i in range(pages):
        for j, line in enumerate(lines or [f"Page {i}: the granite pier was extended in {1850 + i % 150}."]):
            c.drawString(72, 760 - 16 * j, line)
        c.showPage()
    c.save()
    return buf.getvalue()


def _encrypted() -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(_pdf(1))))
    writer.encrypt("secret")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def make(root: Path, *, megabytes: float = 2.0, pdf_pages: int = 2000) -> dict[str, str]:
    """The stress corpus: file -> what it is. Sizes scale with `megabytes`."""
    root.mkdir(parents=True, exist_ok=True)
    n_words = int(megabytes * 1e6 / 6)
    files = {
        "unpunctuated.txt": (words(n_words), "a block of words without sentence punctuation"),
        "one_line.txt": (prose(int(2.5 * megabytes * 1e6 / 60)),
                         "one line of prose, no newline"),
        "minified.md": ("var a=1;function f(x){return x*2+a}" * int(megabytes * 1e6 / 36 / 2),
                        "minified JavaScript saved as Markdown"),
        "records.json.txt": (json.dumps([{"id": i, "name": f"item{i}", "tags": ["a", "b"]}
                                         for i in range(int(megabytes * 1e6 / 50 / 2))]),
                             "JSON on one line"),
        "nested.html": ("<html><body>" + "<div>" * 5000 + "<p>The granite pier at the deep "
                        "harbour was built in 1900 by the tide board of the town.</p>"
                        + "</div>" * 5000 + "</body></html>", "HTML nested 5,000 deep"),
        "empty.txt": ("", "an empty file"),
        "latin1.txt": ("Le caf\u00e9 du port a \u00e9t\u00e9 construit en 1902 pr\u00e8s de "
                       "la jet\u00e9e.\n".encode("latin-1"), "text in a legacy encoding (Latin-1)"),
        "binary.txt": (random.Random(1).randbytes(20000), "binary data named .txt"),
        "thousands_of_pages.pdf": (_pdf(pdf_pages), f"a PDF of {pdf_pages} pages"),
        "encrypted.pdf": (_encrypted(), "an encrypted PDF"),
        "truncated.pdf": (_pdf(3)[:900], "a PDF cut short"),
        "normal.txt": (prose(40, seed=3), "ordinary prose (must survive its neighbours)"),
    }
    for name, (content, _) in files.items():
        data = content if isinstance(content, bytes) else content.encode("utf-8")
        (root / name).write_bytes(data)
    return {name: what for name, (_, what) in files.items()}


def many_small(root: Path, n: int = 10_000) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (root / f"note{i:05d}.txt").write_text(prose(2, seed=i) + "\n")


def read(root: Path) -> dict:
    """Read `root` as harness-make-task does (task.on_bad_file=skip) and find cloze spans:
    per file its outcome, seconds and counts (a folder of more than 50 files is scanned as a
    whole instead), and the process's peak memory."""
    from harness.data import read_corpus
    from harness.data.documents import BadFile, extract
    from harness.data.generate.cloze import ClozeSettings, scan
    from harness.system import process_peak_mb
    from harness.types import Document

    per_file = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        t0 = time.perf_counter()
        try:
            title, text = extract(path)
            outcome = f"loaded ({len(text):,} characters)"
        except BadFile as e:
            title, text, outcome = "", "", f"skipped: {e}"
        row = per_file[path.name] = {"outcome": outcome, "read_s": round(time.perf_counter() - t0, 3)}
        if text and len(per_file) <= 50:  # the cloze pass over this one file: sentences, spans
            t0 = time.perf_counter()
            found = scan([Document(path.name, text, title)], ClozeSettings(), random.Random(0))
            row |= {"scan_s": round(time.perf_counter() - t0, 3), **dict(found.counts),
                    "kept": sum(map(len, found.per_doc.values()))}
    t0 = time.perf_counter()
    docs, info = read_corpus(root, {"on_bad_file": "skip", "folder": {"include": ["*"]}})
    out = {"files": per_file, "documents": len(docs), "skipped": info.get("skipped"),
           "boilerplate": info["boilerplate"], "read_corpus_s": round(time.perf_counter() - t0, 3)}
    if len(per_file) > 50:  # the files were not scanned one by one: the folder at once
        t0 = time.perf_counter()
        found = scan(docs, ClozeSettings(), random.Random(0))
        out |= {"scan_s": round(time.perf_counter() - t0, 3), "counts": dict(found.counts)}
    # VmHWM, not getrusage: Linux carries the forking parent's peak across exec into the
    # child's ru_maxrss, so a 2 GB test worker made this 2 GB process look 2 GB large
    return out | {"peak_rss_mb": process_peak_mb()}


if __name__ == "__main__":
    verb, where = sys.argv[1], Path(sys.argv[2])
    if verb == "make":
        print(json.dumps(make(where), indent=1))
    else:
        print(json.dumps(read(where), indent=1))
