"""Write the report as report.md (plots as files beside it) and a self-contained
report.html (plots embedded as data URIs: it opens offline, with no other file). The item
explorer's data is embedded once in report.html; above report.items_inline_mb it goes to a
sibling items.html instead, which the report links to."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup, escape

from harness.report.build import Report
from harness.report.fmt import MUTED
from harness.report.items import INLINE_MB, View, explorer_data, summary_line, to_json
from harness.report.plots import TITLES
from harness.run_files import atomic_write_text


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
    env.globals["zip"] = zip
    return env


def _asset(name: str) -> Markup:
    """A stylesheet or script of the templates folder, as it is (not a template)."""
    from importlib.resources import files

    return Markup(files("harness.report").joinpath("templates", name).read_text(encoding="utf-8"))


ITEMS_NOTE = (
    "One row per question, one column per variant: its answer (the choice it picked, or the "
    "start of its generated text), ✓ right or ✗ wrong by the primary metric ({metric} ≥ 0.5, "
    "averaged over its seeds; for one seed of a yes/no metric, the outcome the paired tests "
    "count). Click a row for each variant's full output, its choice log-probabilities, the "
    "passages it retrieved in rank order with the gold source marked, every score, and the "
    "question's metadata. The filters live in the link: #items/disagree, #items/all-wrong, "
    "#items/all-right, #items/right=A/wrong=B, doc=, seen=yes|no, q=, sort=right. "
    "items.parquet beside the report holds the same answers, one row per item, variant and "
    "seed.")


def items_context(views: list[View], metric: str, compare: list[tuple[str, str]], sibling: str,
                  cap_mb: float) -> tuple[dict | None, dict | None]:
    """What report.html shows in its Items section and, when the data is above `cap_mb`,
    the sibling page's own (None: nothing to show, or no sibling)."""
    if not any(v.columns for v in views):
        return None, None
    text = to_json(explorer_data(views, metric=metric, compare=compare))
    mb = len(text.encode("utf-8")) / 1e6
    test = views[0]
    base = {"note": ITEMS_NOTE.format(metric=metric or "the primary metric"),
            "css": _asset("items.css"), "js": _asset("items.js"),
            "n_items": len({i for v in test.columns for i in v.item_ids}),
            "n_columns": len(test.columns), "mb": f"{mb:.1f}", "cap": f"{cap_mb:g}"}
    if mb <= cap_mb:
        return {**base, "json": Markup(text), "href": ""}, None
    return {**base, "json": None, "href": sibling}, {**base, "json": Markup(text), "href": ""}


def write_items_page(path: Path, views: list[View], *, title: str, metric: str,
                     compare: list[tuple[str, str]] = (), report_href: str = "report.html") -> Path:
    """The item explorer on a page of its own (what report.html links to when its items are
    above report.items_inline_mb)."""
    _, page = items_context(views, metric, list(compare), path.name, 0.0)
    if page is None:
        raise ValueError("no items to show: the views hold no variant")
    atomic_write_text(path, _env().get_template("items_page.html.j2").render(
        r={"title": title}, items=page, css=_asset("report.css"), report_href=report_href))
    return path


def write_report(report: Report, out_dir: Path, stem: str = "report",
                 items_inline_mb: float = INLINE_MB) -> tuple[Path, Path]:
    """<stem>.md (plots beside it) and a self-contained <stem>.html under out_dir (with the
    items in <stem minus 'report'>items.html beside it when they are above items_inline_mb)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    env = _env()
    rel = {name: str(path.relative_to(out_dir)) for name, path in report.plots.items()}
    md = env.get_template("report.md.j2").render(r=report, plots=rel, plot_titles=TITLES,
                                                  items_line=summary_line)
    images = {name: base64.b64encode(path.read_bytes()).decode("ascii")
              for name, path in report.plots.items()}
    md_path, html_path = out_dir / f"{stem}.md", out_dir / f"{stem}.html"
    sibling = out_dir / ("items.html" if stem == "report" else f"{stem}-items.html")
    items, page = items_context(report.items, report.metric, report.compare, sibling.name,
                                items_inline_mb)
    html = env.get_template("report.html.j2").render(
        r=report, images=images, plot_titles=TITLES, muted=MUTED, css=_asset("report.css"),
        items=items)
    atomic_write_text(md_path, md)
    atomic_write_text(html_path, html)
    if page is not None:
        write_items_page(sibling, report.items, title=report.title, metric=report.metric,
                         compare=report.compare, report_href=html_path.name)
    elif sibling.exists():  # from an earlier, larger report of this folder
        sibling.unlink()
    return md_path, html_path
