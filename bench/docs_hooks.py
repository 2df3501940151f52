"""MkDocs hooks (mkdocs.yml -> hooks): the parts of the docs that are generated, so they
cannot go stale: the run record's schema from harness.run_record, and the results page from the
benchmark's output in docs/measured/*.json (each file names its machine, date and commit)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

MEASURED = Path(__file__).resolve().parent.parent / "docs" / "measured"


def _run_keys() -> str:
    from harness.run_record import RUN_KEYS

    rows = [f"| `{k}` | {v or '(as above)'} |" for k, v in RUN_KEYS.items()]
    return "\n".join(["| key | what |", "|---|---|", *rows])


def _metrics() -> str:
    from harness.run_record import METRICS

    rows = [f"| `{m.name}` | `{m.item_key}` | {m.label} | {m.kind} | "
            f"{'higher' if m.higher_is_better else 'lower'} |" for m in METRICS.values()]
    return "\n".join(["| metrics.json | per item | label | kind | better |",
                      "|---|---|---|---|---|", *rows])


def _value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list | dict):
        text = json.dumps(v)
        return text if len(text) <= 80 else text[:77] + "..."
    return str(v).replace("|", "\\|")


def _section(name: str, data: dict[str, Any]) -> str:
    rows = [f"| {k} | {_value(v)} |" for k, v in data.items()]
    return "\n".join([f"### {name}", "", "| figure | value |", "|---|---|", *rows, ""])


def results_markdown(folder: Path = MEASURED) -> str:
    """One section per measured file: where and when, then its figures, section by section."""
    files = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if not files:
        return "No measurements published yet: run `make bench`, then `python -m bench.publish`."
    out = []
    for path in files:
        data = json.loads(path.read_text(encoding="utf-8"))
        where = data.get("measured") or {}
        out += [f"## {data.get('title', path.stem)}", "",
                f"Measured on **{where.get('machine', 'an unnamed machine')}**, "
                f"{where.get('date', 'undated')}, commit `{where.get('commit', 'unknown')}`"
                + (f": `{where['command']}`" if where.get("command") else "") + "."
                + (f" Computed in {where['compute']} ({where.get('cpu_class', 'CPU class not recorded')})."
                   if where.get("compute") else ""), ""]
        for key, value in data.items():
            if key in ("measured", "title", "sample"):  # the sample goes to the README
                continue
            if isinstance(value, dict) and value and all(not isinstance(v, dict) for v in value.values()):
                out.append(_section(key, value))
            elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
                cols = list(value[0])
                out += [f"### {key}", "", "| " + " | ".join(cols) + " |",
                        "|" + "---|" * len(cols),
                        *["| " + " | ".join(_value(r.get(c)) for c in cols) + " |" for r in value], ""]
    return "\n".join(out)


def readme_section(title: str) -> str:
    """The body of one of README.md's sections (its one home; the docs site shows it too),
    with links into docs/ made relative to the site."""
    text = (MEASURED.parent.parent / "README.md").read_text(encoding="utf-8")
    start = text.index(f"## {title}\n") + len(title) + 4
    end = text.find("\n## ", start)
    return text[start:end if end >= 0 else None].strip().replace("](docs/", "](")


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    for marker, make in (("<!-- run-keys -->", _run_keys), ("<!-- metrics -->", _metrics),
                         ("<!-- results -->", results_markdown)):
        if marker in markdown:
            markdown = markdown.replace(marker, make())
    for title in re.findall(r"<!-- readme: ([^>]+?) -->", markdown):
        markdown = markdown.replace(f"<!-- readme: {title} -->", readme_section(title))
    return markdown
