"""Dashboard: the home's own datasets are offered first and backtested like `qlm.backtest` does."""

from __future__ import annotations

import qlm_kernel as qlm
from qlm_kernel.session import data_manager
from qlm_kernel.widgets import Dashboard
from qlm_kernel.widgets.dashboard import default_datasets


def test_workspace_datasets_come_first_and_run(home) -> None:
    assert all(not name.startswith("dataset ") for name in default_datasets())  # empty home
    frame = qlm.sample_data("synthetic", n=3000, seed=9)
    data_manager().register_frame(frame, "mine")
    names = list(default_datasets())
    assert names[0] == "dataset mine (3,000 bars)" and any(n.startswith("synthetic") for n in names)
    board = Dashboard()
    assert board.dataset.value == names[0] and board.runs == 1
    expected = qlm.backtest(board.strategy.value, frame, record=False, fees=board.fees.value / 10_000,
                            **board.params())
    assert board.report.result.stats["n_trades"] == expected.stats["n_trades"]
    assert board.report.result.stats["final_value"] == expected.stats["final_value"]
