"""Test-wide defaults: backtests are not recorded unless a test asks (the recording tests do).

Recording every backtest of the property and oracle tests would only slow the suite down; the
default (recording on) is covered by tests/test_session_recording.py, which restores it.
"""

from __future__ import annotations

import os

os.environ.setdefault("QLM_RECORD_RUNS", "0")
