"""Headless Chromium (Debian's, installed by scripts/ensure_chromium.sh) driven by Playwright.

Playwright cannot download its own browsers here, so tests start the system Chromium with the flags
that keep it offline and quiet. One Chromium serves the whole test run, every pytest-xdist worker
included: the first test that needs it starts it (under a file lock in ``$QLM_TEST_CHROMIUM_DIR``, a
folder tests/conftest.py makes for the run and removes, with the browser, at its end), and each test
gets a fresh browser context (its own cookies, storage and viewport) over the DevTools protocol.
Screenshots go to ``$QLM_ARTIFACTS`` (default ``<repo>/artifacts``), kept as test artifacts.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import tempfile
import time
import urllib.request
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


SHARED_DIR_VAR = "QLM_TEST_CHROMIUM_DIR"
START_TIMEOUT_S = 30.0


def _answers(endpoint: str) -> bool:
    """Whether a Chromium answers DevTools requests at ``endpoint``."""
    try:
        with urllib.request.urlopen(f"{endpoint}/json/version", timeout=2) as reply:
            return reply.status == 200
    except OSError:
        return False


def _start_chromium(root: Path) -> str:
    """Start a headless Chromium with DevTools on a free loopback port; its endpoint URL."""
    profile = Path(tempfile.mkdtemp(prefix="profile-", dir=root))
    proc = subprocess.Popen(
        [CHROMIUM, "--headless", "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
         f"--user-data-dir={profile}", *CHROMIUM_ARGS, "about:blank"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    (root / "pid").write_text(str(proc.pid))
    port_file = profile / "DevToolsActivePort"  # Chromium writes the port it bound here
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        lines = port_file.read_text().splitlines() if port_file.exists() else []
        if lines and lines[0].isdigit() and _answers(endpoint := f"http://127.0.0.1:{lines[0]}"):
            return endpoint
        if proc.poll() is not None:
            raise RuntimeError(f"Chromium ({CHROMIUM}) exited with {proc.returncode} at start")
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"Chromium ({CHROMIUM}) did not open its DevTools port in {START_TIMEOUT_S:.0f} s")


def shared_chromium_endpoint() -> str:
    """The DevTools endpoint of the run's one Chromium, started here when no live one is recorded."""
    root = Path(os.environ.get(SHARED_DIR_VAR) or tempfile.mkdtemp(prefix="qlm-chromium-"))
    os.environ[SHARED_DIR_VAR] = str(root)  # outside pytest (a script using this module): keep reusing it
    with open(root / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one starter across the xdist worker processes
        recorded = root / "endpoint"
        if recorded.exists() and _answers(endpoint := recorded.read_text()):
            return endpoint
        endpoint = _start_chromium(root)
        recorded.write_text(endpoint)
        return endpoint


def stop_shared_chromium(root: Path) -> None:
    """End the Chromium started under ``root`` (the run's end; nothing when none was started)."""
    with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
        os.killpg(int((root / "pid").read_text()), signal.SIGKILL)


@contextlib.contextmanager
def chromium_page(viewport: tuple[int, int] = (1400, 1000)) -> Iterator[Any]:
    """A fresh page, in a fresh browser context of the run's shared headless Chromium; the context
    (cookies, storage, pages) is closed afterwards."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.connect_over_cdp(shared_chromium_endpoint())
        context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
        try:
            yield context.new_page()
        finally:
            context.close()


ANYWIDGET_SLOW_START = "[anywidget] Failed to initialize model."
"""anywidget's front end gives a model a fixed 2 s (``AbortSignal.timeout(2000)``) to load its ES module
and run ``initialize``, then reports this rejection as a page error. With both cores busy with the rest
of the suite a Voila page has taken longer and still rendered every part the test then checks."""


def real_page_errors(errors: list[str]) -> list[str]:
    """The page errors of a widget page, without anywidget's 2-second start-up rejection (the test's
    own assertions on what the widgets show say whether they started)."""
    return [error for error in errors if error != ANYWIDGET_SLOW_START]
