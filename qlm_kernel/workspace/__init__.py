"""Workspace services: what the research layers (optimization, healing, sanity, execution) share.

Data resolution (a frame, a file, a dataset name or a sample spec), data fingerprints, recording of
runs and bus events in the store, the confined strategy files, and the recorded backtest. It sits
below `qlm_kernel.session` (the one façade front ends call) and above the engine, strategy and data
layers; see docs/architecture.md "Layers" for the import contract.
"""

from __future__ import annotations

from qlm_kernel.lazy import Exports, lazy_getattr

_EXPORTS: Exports = {
    "data_manager": ("qlm_kernel.workspace.data", "data_manager"),
    "ensure_event_recorder": ("qlm_kernel.workspace.recording", "ensure_event_recorder"),
    "frame_fingerprint": ("qlm_kernel.workspace.fingerprints", "frame_fingerprint"),
    "qlm_home": ("qlm_kernel.home", "qlm_home"),
    "record_run": ("qlm_kernel.workspace.recording", "record_run"),
    "recorded_backtest": ("qlm_kernel.workspace.runs", "recorded_backtest"),
    "recording_enabled": ("qlm_kernel.workspace.recording", "recording_enabled"),
    "resolve_data": ("qlm_kernel.workspace.data", "resolve_data"),
    "seed_fingerprint": ("qlm_kernel.workspace.fingerprints", "seed_fingerprint"),
    "stop_event_recorder": ("qlm_kernel.workspace.recording", "stop_event_recorder"),
    "universe_of": ("qlm_kernel.workspace.data", "universe_of"),
    "workspace_dir": ("qlm_kernel.home", "workspace_dir"),
}
"""Names load on first use (`qlm_kernel.lazy`): a listing imports no engine."""

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())
