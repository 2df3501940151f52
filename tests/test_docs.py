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
    (tmp_path / "demo-float32.json").write_text(json.dumps({
        "title": "make demo (float32)", "measured": {
            "machine": "2-core EPYC", "date": "2026-12-04", "commit": "abc1234",
            "compute": "float32", "cpu_class": "no native bf16 (AVX2-class)"},
        "wall_s": {"total": 659.9}}))
    assert "Computed in float32 (no native bf16 (AVX2-class))." in results_markdown(tmp_path)


def test_the_readme_gives_the_demo_time_for_each_cpu_class():
    from bench.demo import demo_file
    from bench.publish import readme_sample

    def demo(compute: str, cpu: str, seconds: float) -> dict:
        return {"measured": {"machine": "2-core EPYC", "date": "2026-12-04", "commit": "abc1234",
                             "command": "make demo", "compute": compute, "cpu_class": cpu},
                "wall_s": {"total": seconds}, "sample": {"decision": "- rag wins", "accuracy": "| t |"}}

    fast, slow = demo("bfloat16", "AVX-512 with bf16", 499.5), demo("float32", "AVX2-class", 719.6)
    assert (demo_file("bfloat16"), demo_file("float32")) == ("demo.json", "demo-float32.json")
    text = readme_sample(fast, [fast, slow])
    assert "bfloat16 compute (AVX-512 with bf16): **8 min 20 s**" in text
    assert "float32 compute (AVX2-class): **12 min 0 s**" in text  # not "11 min 60 s"
    assert text.count("- rag wins") == 1 and text.startswith("<!-- sample:start -->")
    published = sorted((ROOT / "docs" / "measured").glob("demo*.json"))
    assert published and all("compute" in json.loads(p.read_text())["measured"] for p in published)
