"""PaperPnL: follows the next paper session started in the kernel and shows its live P&L."""

from __future__ import annotations

import pytest

import qlm_kernel as qlm
from qlm_kernel.execution.feeds import DataFrameFeed
from qlm_kernel.widgets import PaperPnL


def test_follows_a_paper_session_to_its_end(home) -> None:
    df = qlm.sample_data("synthetic", n=600, seed=2)
    widget, other = PaperPnL(), PaperPnL(session_id="someone-else")
    assert widget.status == "waiting" and widget.session_id == ""
    res = qlm.paper_trade("sma_cross", DataFrameFeed(df), fast=5, slow=20, latency=0.0, slippage=0.0)
    widget.wait_idle(), other.wait_idle()
    sid = res.meta["session_id"]
    assert widget.session_id == sid and widget.status == "finished"
    assert widget.bars == 600 and widget.n_fills == len(res.fills) > 0
    assert widget.equity == pytest.approx(float(res.equity.iloc[-1]))
    assert widget.pnl == pytest.approx(widget.equity - 10_000.0)
    assert widget.curve[-1] == [600, pytest.approx(widget.equity)] and len(widget.curve) <= 600
    assert 0 < len(widget.fills) <= 8 and {"side", "price", "size"} <= set(widget.fills[-1])
    assert widget.pushes < 60  # 600 bars of events, throttled
    assert other.status == "waiting" and other.bars == 0  # bound to another session id
    widget.close(), other.close()
