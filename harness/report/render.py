"""Write the report as report.md (plots as files beside it) and a self-contained
report.html (plots embedded as data URIs: it opens offline, with no other file)."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup, escape

from harness.report.build import Report
from harness.report.fmt import MUTED
from harness.report.plots import TITLES
from harness.results import atomic_write_text


def md_table(df: pd.DataFrame) -> str:
    if df.empty:
        return "_(none)_"

    def cell(x: object) -> str:
        return str(x).replace("|", "\\|").replace("\n", " ")

    head = "| " + " | ".join(cell(c) for c in df.columns) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(cell(x) for x in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *body])


_BOLD = re.compile(r"\*\*(.+?)\*\*")


def md_inline(text: str) -> Markup:
    """**bold** to <strong>, everything else escaped."""
    return Markup(_BOLD.sub(r"<strong>\1</strong>", str(escape(text))))


def _env() -> Environment:
    env = Environment(loader=PackageLoader("harness.report", "templates"),
                      autoescape=select_autoescape(["html.j2"], default_for_string=False),
                      keep_trailing_newline=True)
    env.filters["md_table"] = md_table
    env.filters["md_inline"] = md_inline
    return env


def write_report(report: Report, out_dir: Path, stem: str = "report") -> tuple[Path, Path]:
    """<stem>.md (plots beside it) and a self-contained <stem>.html under out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    env = _env()
    rel = {name: str(path.relative_to(out_dir)) for name, path in report.plots.items()}
    md = env.get_template("report.md.j2").render(r=report, plots=rel, plot_titles=TITLES)
    images = {name: base64.b64encode(path.read_bytes()).decode("ascii")
              for name, path in report.plots.items()}
    html = env.get_template("report.html.j2").render(
        r=report, images=images, plot_titles=TITLES, muted=MUTED)
    md_path, html_path = out_dir / f"{stem}.md", out_dir / f"{stem}.html"
    atomic_write_text(md_path, md)
    atomic_write_text(html_path, html)
    return md_path, html_path
