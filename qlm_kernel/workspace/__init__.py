"""Workspace services: what the research layers (optimization, healing, sanity, execution) share.

Data resolution (a frame, a file, a dataset name or a sample spec), data fingerprints, recording of
runs and bus events in the store, the confined strategy files, and the recorded backtest. It sits
below `qlm_kernel.session` (the one façade front ends call) and above the engine, strategy and data
layers; see the README's "Architecture" section for the import contract.
"""

from __future__ import annotations

from qlm_kernel.home import qlm_home, workspace_dir
from qlm_kernel.workspace.data import data_manager, resolve_data
from qlm_kernel.workspace.fingerprints import frame_fingerprint, seed_fingerprint
from qlm_kernel.workspace.recording import (
    ensure_event_recorder,
    record_run,
    recording_enabled,
    stop_event_recorder,
)
from qlm_kernel.workspace.runs import recorded_backtest

__all__ = [
    "data_manager",
    "ensure_event_recorder",
    "frame_fingerprint",
    "qlm_home",
    "record_run",
    "recorded_backtest",
    "recording_enabled",
    "resolve_data",
    "seed_fingerprint",
    "stop_event_recorder",
    "workspace_dir",
]
