"""The front door and the manual: a short README, a docs site that builds with --strict (every
link resolves, the API pages render), and a results page whose figures all come from the
benchmark's output, each file naming its machine, date and commit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.docs_hooks import results_markdown

ROOT = Path(__file__).resolve().parent.parent


def test_the_readme_is_a_front_door():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 200
    assert "make demo" in text and "make test" in text and "## Layout" in text


def test_the_docs_build_strictly(tmp_path):
    res = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q",
                          "--site-dir", str(tmp_path / "site")], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    reference = (tmp_path / "site" / "reference" / "index.html").read_text(encoding="utf-8")
    assert "requests_sent" in reference and "choice_correct" in reference  # generated tables
    api = (tmp_path / "site" / "extending" / "index.html").read_text(encoding="utf-8")
    assert "score_letters" in api and "retrieval_k" in api  # the contracts, from the code


def test_every_published_figure_names_its_machine_date_and_commit(tmp_path):
    for path in sorted((ROOT / "docs" / "measured").glob("*.json")):
        where = json.loads(path.read_text(encoding="utf-8")).get("measured") or {}
        assert {"machine", "date", "commit"} <= set(where), path
    (tmp_path / "bench.json").write_text(json.dumps({
        "title": "A bench", "measured": {"machine": "2-core Xeon", "date": "2026-12-02",
                                         "commit": "abc1234"},
        "scoring": {"harness_s": 1.5, "ratio": 4.2}}))
    page = results_markdown(tmp_path)
    assert "## A bench" in page and "2-core Xeon" in page and "2026-12-02" in page
    assert "`abc1234`" in page and "| ratio | 4.2 |" in page
    assert "No measurements" in results_markdown(tmp_path / "none")
