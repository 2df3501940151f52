"""report.html in headless Chromium: it renders offline with its tables and plots, with no
console or page errors, and fits a laptop screen. Chromium comes from Debian's package
(`make test` installs it); Playwright drives it (no browser download)."""

from __future__ import annotations

import pytest

from tests.report.browser import CHROMIUM, FLAGS, needs_chromium
from tests.report.test_report import PLOTS, TABLES

pytestmark = needs_chromium


def test_report_html_renders_in_chromium(quick_sweep, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    html = quick_sweep / "report.html"
    errors: list[str] = []
    requests: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": 1366, "height": 768})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(html.as_uri(), wait_until="load")
        tables = page.eval_on_selector_all("table[data-table]", "ts => ts.map(t => t.dataset.table)")
        rows = page.eval_on_selector_all("table[data-table] tbody tr", "rs => rs.length")
        images = page.eval_on_selector_all(
            "figure[data-plot] img",
            "is => is.map(i => [i.closest('figure').dataset.plot, i.complete, i.naturalWidth])")
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        shot = tmp_path / "report.png"
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert errors == []
    assert sorted(tables) == sorted(TABLES)
    assert rows >= 5 * 7  # five variants in each per-variant table
    assert sorted(name for name, _, _ in images) == sorted(PLOTS)
    assert all(done and width > 300 for _, done, width in images)
    assert overflow <= 0  # wide tables scroll inside their box, not the page
    assert all(u.startswith(("file:", "data:")) for u in requests)  # opens offline
    assert shot.stat().st_size > 50_000
