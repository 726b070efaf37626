"""Test-wide defaults: backtests are not recorded unless a test asks (the recording tests do), and
each pytest-xdist worker gets its own HOME and QLM_HOME.

Recording every backtest of the property and oracle tests would only slow the suite down; the
default (recording on) is covered by tests/test_session_recording.py, which restores it.

Under ``pytest -n N`` (the test command runs on every core) the workers are separate processes that
would otherwise share one workspace, one SQLite store and one Jupyter runtime directory: this module
runs first in every worker, before anything imports ``qlm_kernel``, and points HOME and QLM_HOME at
``<the given dir>/<worker id>`` (gw0, gw1, ...). Ports are always free ones the OS hands out.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("QLM_RECORD_RUNS", "0")


def _isolate_worker() -> None:
    """Give this xdist worker its own HOME and QLM_HOME (subfolders of the ones the run was given)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return
    for var in ("HOME", "QLM_HOME"):
        base = os.environ.get(var)
        if base:
            own = Path(base) / f"xdist-{worker}"
            own.mkdir(parents=True, exist_ok=True)
            os.environ[var] = str(own)


_isolate_worker()
_CHROMIUM_DIR = pytest.StashKey[str]()


LONGEST_FIRST = (
    "tests/test_container.py", "tests/test_first_run.py", "tests/test_wheel_install.py",
    "tests/test_mcp_isolation.py",
    "tests/test_engine_properties.py", "tests/test_cli_store.py", "tests/test_frontend_browser.py",
    "tests/test_widgets_overfit.py", "tests/test_execution_replay.py", "tests/test_widgets_dashboard.py",
    "tests/test_sanity_report.py", "tests/test_cli.py", "tests/test_mcp_every_tool.py",
    "tests/test_optimize_jobs.py", "tests/test_isolation_pool.py", "tests/test_jupyterlab_browser.py",
    "tests/test_engine_oracle_vectorbt.py", "tests/test_widgets_portfolio.py", "tests/test_mcp_heal.py",
    "notebooks/optimization.ipynb", "tests/test_docs_site.py",
)
"""The test files that take longest (measured with --durations), longest first. The test command
distributes whole files over the workers in collection order (``--dist loadfile
--no-loadscope-reorder``), so these go first and the short files fill in at the end, instead of a
long file starting last and running alone."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Put the files of LONGEST_FIRST first, in that order (a stable sort: tests keep their order
    within a file, and every other file its collection order)."""
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


def pytest_configure(config: pytest.Config) -> None:
    """In the controlling process (before xdist starts its workers, which inherit the variable): a
    folder for the run's one shared Chromium (tests/browser_helpers.py starts it on first use)."""
    from tests.browser_helpers import SHARED_DIR_VAR

    if not os.environ.get("PYTEST_XDIST_WORKER") and not os.environ.get(SHARED_DIR_VAR):
        config.stash[_CHROMIUM_DIR] = os.environ[SHARED_DIR_VAR] = tempfile.mkdtemp(prefix="qlm-chromium-")


def pytest_unconfigure(config: pytest.Config) -> None:
    """The run's end: stop the shared Chromium (if a test started one) and remove its folder."""
    from tests.browser_helpers import SHARED_DIR_VAR, stop_shared_chromium

    root = config.stash.get(_CHROMIUM_DIR, None)
    if root:
        stop_shared_chromium(Path(root))
        shutil.rmtree(root, ignore_errors=True)
        os.environ.pop(SHARED_DIR_VAR, None)



@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh, empty QLM_HOME (workspace and store) for one test; the event writer and the shared
    store are closed afterwards so the next test starts clean."""
    from qlm_kernel.session import stop_event_recorder
    from qlm_kernel.store import close_default_store

    root = tmp_path / "home"
    monkeypatch.setenv("QLM_HOME", str(root))
    close_default_store()
    yield root
    stop_event_recorder()
    close_default_store()
