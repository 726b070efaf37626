"""The session API every front end calls (notebooks, CLI, MCP, widgets): one code path, many skins.

`backtest` runs the pure engine and adds what a research session needs around it: events on the
kernel's bus, runs and strategy versions in the workspace store, data named by dataset or sample.
"""

from __future__ import annotations

from qlm_kernel.session.backtest import backtest
from qlm_kernel.session.data import data_manager, resolve_data
from qlm_kernel.session.fingerprints import frame_fingerprint
from qlm_kernel.session.recording import ensure_event_recorder, recording_enabled, stop_event_recorder

__all__ = [
    "backtest",
    "data_manager",
    "ensure_event_recorder",
    "frame_fingerprint",
    "recording_enabled",
    "resolve_data",
    "stop_event_recorder",
]
