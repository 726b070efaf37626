"""Test-wide defaults: backtests are not recorded unless a test asks (the recording tests do).

Recording every backtest of the property and oracle tests would only slow the suite down; the
default (recording on) is covered by tests/test_session_recording.py, which restores it.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("QLM_RECORD_RUNS", "0")


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
