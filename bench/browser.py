"""Debian's headless Chromium, as the report's browser tests and the demo's screenshot start
it: no sandbox (root), no GPU, and none of the background connections that this machine's
closed network refuses."""

from __future__ import annotations

import shutil

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
