"""Headless Chromium for the report's browser tests: Debian's package (`make test` installs
it), driven by Playwright (no browser download). Without it the tests skip and say why."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from bench.browser import CHROMIUM, FLAGS

needs_chromium = pytest.mark.skipif(CHROMIUM is None,
                                    reason="no chromium on PATH (make test installs Debian's)")


@contextmanager
def chromium_page(width: int = 1366, height: int = 768) -> Iterator:
    """A page of a fresh headless Chromium; `page.errors` collects console and page errors."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": width, "height": height})
        page.errors = []
        page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: page.errors.append(str(e)))
        try:
            yield page
        finally:
            browser.close()


def open_items(page, url: str) -> int:
    """Go to `url` (a report with an #items fragment, or a new fragment of the page already
    open) and return how many items the explorer's view holds."""
    if page.url.split("#")[0] == url.split("#")[0] and "#" in url:
        page.evaluate("h => { location.hash = h; }", "#" + url.split("#", 1)[1])
    else:
        page.goto(url, wait_until="load")
    page.wait_for_selector("#items-root[data-ready=true]")
    return int(page.get_attribute("[data-items-total]", "data-items-total"))
