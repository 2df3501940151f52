"""The stress corpus (bench/stress.py, generated here, never committed): each file is loaded,
cut and counted, or named and skipped, in bounded time and memory, and nothing else in the
folder is lost. Bounds are generous on purpose: they catch a quadratic path (minutes to
hours on these sizes), not a slow machine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.stress import make, many_small

SECONDS_PER_FILE = 150  # reading + the cloze pass; linear code takes < 40 s on 5 MB here
PEAK_RSS_MB = 2000

LOADED = ("unpunctuated.txt", "one_line.txt", "minified.md", "records.json.txt", "nested.html",
          "latin1.txt", "normal.txt", "thousands_of_pages.pdf")
SKIPPED = {"empty.txt": "empty file", "binary.txt": "binary content",
           "encrypted.pdf": "encrypted PDF", "truncated.pdf": "unreadable PDF"}


def _read(root: Path) -> dict:
    res = subprocess.run([sys.executable, "-m", "bench.stress", "read", str(root)],
                         capture_output=True, text=True, timeout=1200)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout)


def test_every_messy_file_is_loaded_cut_or_named_and_skipped(tmp_path):
    what = make(tmp_path / "messy", megabytes=2.0, pdf_pages=2000)
    assert (tmp_path / "messy" / "one_line.txt").stat().st_size > 4.5e6  # one 5 MB line
    out = _read(tmp_path / "messy")
    files = out["files"]
    assert set(files) == set(what)
    for name in LOADED:
        assert files[name]["outcome"].startswith("loaded"), (name, files[name])
    for name, why in SKIPPED.items():
        assert files[name]["outcome"].startswith("skipped: ") and why in files[name]["outcome"]
    for name, row in files.items():
        assert row["read_s"] + row.get("scan_s", 0) < SECONDS_PER_FILE, (name, row)
    # the long blocks were cut before the sentence segmenter, and the cuts counted
    assert files["unpunctuated.txt"]["paragraphs_cut"] == 1
    assert files["one_line.txt"]["paragraphs_cut"] == 1
    assert files["nested.html"]["sentences"] == 1  # its one sentence, 5,000 levels down
    assert files["minified.md"]["kept"] == files["records.json.txt"]["kept"] == 0  # code, data
    assert files["one_line.txt"]["kept"] > 1000  # its prose still makes questions
    # the folder as a whole: the good files kept, the bad ones named
    assert out["documents"] == len(LOADED) and out["skipped"] == len(SKIPPED)
    assert out["peak_rss_mb"] < PEAK_RSS_MB
    print(json.dumps(out, indent=1))


def test_ten_thousand_small_files(tmp_path):
    many_small(tmp_path / "many", 10_000)
    out = _read(tmp_path / "many")
    assert out["documents"] == 10_000 and out["skipped"] == 0
    assert out["read_corpus_s"] + out["scan_s"] < 300 and out["peak_rss_mb"] < PEAK_RSS_MB


def test_the_peak_is_the_reading_process_own_not_its_parent(tmp_path):
    """A child's rusage maximum on Linux includes the forking parent's resident set (it
    survives exec): from a 2 GB test worker, every child looked 2 GB large. The peak is the
    child's own VmHWM."""
    many_small(tmp_path / "few", 20)
    ballast = b"\x01" * (800 * 2**20)  # the parent: 800 MB resident while the child runs
    out = _read(tmp_path / "few")
    assert len(ballast) and out["documents"] == 20
    assert out["peak_rss_mb"] < 400, out["peak_rss_mb"]
