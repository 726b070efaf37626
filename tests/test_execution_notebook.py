"""notebooks/paper_trading.ipynb runs top to bottom in seconds (code cells executed in order)."""

from __future__ import annotations

import time
from pathlib import Path

import nbformat

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "paper_trading.ipynb"


def test_paper_trading_notebook_runs_top_to_bottom(tmp_path, monkeypatch):
    monkeypatch.setenv("QLM_HOME", str(tmp_path))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    scope: dict = {"__name__": "__main__"}
    started = time.perf_counter()
    for cell in nb.cells:
        if cell.cell_type == "code":
            exec(compile(cell.source, f"{NOTEBOOK.name}:cell", "exec"), scope)
    assert time.perf_counter() - started < 10
    report = scope["report"]
    assert report.summary["n_matched"] > 0 and report.summary["mean_entry_diff_bps"] > 0
    assert scope["slow_report"].summary["mean_entry_delay_s"] > 0
