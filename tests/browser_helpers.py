"""Headless Chromium (Debian's, installed by scripts/ensure_chromium.sh) driven by Playwright.

Playwright cannot download its own browsers here, so tests launch the system Chromium with the flags
that keep it offline and quiet. Screenshots go to ``$QLM_ARTIFACTS`` (default ``<repo>/artifacts``),
kept as test artifacts.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("QLM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]


def artifacts_dir() -> Path:
    """Where screenshots are saved (created)."""
    root = Path(os.environ.get("QLM_ARTIFACTS", Path(__file__).resolve().parents[1] / "artifacts"))
    root.mkdir(parents=True, exist_ok=True)
    return root


@contextlib.contextmanager
def chromium_page(viewport: tuple[int, int] = (1400, 1000)) -> Iterator[Any]:
    """A fresh page in a headless Chromium; the browser is closed afterwards."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
            yield page
        finally:
            browser.close()
