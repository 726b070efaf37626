"""paper_trade sessions: a SIGKILLed session resumes without duplicate orders; session API."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pandas as pd
import pytest

import qlm_kernel as qlm
from qlm_kernel.errors import ConfigError
from qlm_kernel.execution import paper_replay, paper_trade
from qlm_kernel.store import Store

SETTINGS = {"fees": 0.001, "latency": 0.0, "slippage": 0.0}
N = 400

SCRIPT = textwrap.dedent(
    """
    import sys
    import qlm_kernel as qlm
    from qlm_kernel.execution import DataFrameFeed, paper_trade
    from qlm_kernel.store import Store

    df = qlm.sample_data("synthetic", n=N_BARS, seed=3)
    feed = DataFrameFeed(df, pace=0.01)
    paper_trade("donchian_breakout", feed, session_id="killme", store=Store(sys.argv[1]),
                publish=False, fees=0.001, latency=0.0, slippage=0.0)
""".replace("N_BARS", str(N))
)


def test_a_killed_session_resumes_without_duplicate_orders(tmp_path):
    db = tmp_path / "qlm.db"
    script = tmp_path / "session.py"
    script.write_text(SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), str(db)])
    try:
        deadline = time.time() + 60
        bars = 0
        while time.time() < deadline:
            time.sleep(0.05)
            if db.exists():
                with Store(db) as s:
                    row = s.get_paper_session("killme")
                bars = row["bars_processed"] if row else 0
                if bars >= 150:
                    break
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert 150 <= bars < N, bars
    df = qlm.sample_data("synthetic", n=N, seed=3)
    with Store(db) as store:
        killed = store.get_paper_session("killme")
        assert killed["status"] == "running" and killed["bars_processed"] < N  # died mid-session
        before = {o["client_order_id"] for o in store.paper_orders("killme")}
        res = paper_trade("donchian_breakout", df, resume="killme", store=store, publish=False, **SETTINGS)
        orders = store.paper_orders("killme")
        fills = store.paper_fills("killme")
        assert store.get_paper_session("killme")["status"] == "finished"
    ids = [o["client_order_id"] for o in orders]
    assert len(ids) == len(set(ids)) and before <= set(ids)
    reference = paper_replay("donchian_breakout", df, signals="incremental", **SETTINGS)
    assert ids == [o for o in reference.orders["client_order_id"].str.replace("replay", "killme")]
    assert len(fills) == len(reference.fills)
    bt = qlm.backtest("donchian_breakout", df, fill="next_open", fees=0.001, record=False)
    pd.testing.assert_frame_equal(res.trades, bt.trades, check_exact=True)
    assert res.equity.to_numpy().tolist() == bt.equity.to_numpy().tolist()


def test_resume_refuses_other_settings_and_a_misaligned_feed(tmp_path):
    df = qlm.sample_data("synthetic", n=120, seed=1)
    with Store(tmp_path / "qlm.db") as store:
        paper_trade("sma_cross", df.iloc[:60], session_id="s1", store=store, publish=False, fast=5, slow=20)
        with pytest.raises(ConfigError) as info:
            paper_trade("sma_cross", df, resume="s1", store=store, publish=False, fast=6, slow=20)
        assert info.value.code == "PAPER_RESUME_MISMATCH" and "params" in info.value.context["fields"]
        with pytest.raises(ConfigError) as info:
            paper_trade("sma_cross", df.iloc[1:], resume="s1", store=store, publish=False, fast=5, slow=20)
        assert info.value.code == "PAPER_RESUME_MISMATCH"
        res = paper_trade("sma_cross", df, resume="s1", store=store, publish=False, fast=5, slow=20)
        assert store.get_paper_session("s1")["bars_processed"] == 120 and len(res.equity) == 120
        with pytest.raises(ConfigError) as info:
            paper_trade("sma_cross", df, session_id="s1", store=store, publish=False)
        assert info.value.code == "SESSION_EXISTS"


def test_events_carry_orders_fills_and_live_pnl(tmp_path):
    df = qlm.sample_data("synthetic", n=300, seed=2)
    seen = []
    with qlm.subscribe("paper.*", seen.append), Store(tmp_path / "qlm.db") as store:
        res = paper_trade("sma_cross", df, store=store, fast=5, slow=20, fees=0.001)
        deadline = time.time() + 5
        while time.time() < deadline and not any(e.topic == "paper.session.stopped" for e in seen):
            time.sleep(0.02)
    topics = [e.topic for e in seen]
    assert topics[0] == "paper.session.started" and topics[-1] == "paper.session.stopped"
    assert topics.count("paper.pnl") == len(df)
    assert (
        topics.count("paper.fill") == len(res.fills) > 0
        and "paper.order" in topics
        and "paper.position" in topics
    )
    last = [e for e in seen if e.topic == "paper.pnl"][-1].payload
    assert last["equity"] == pytest.approx(res.final_value) and last["bars_processed"] == len(df)


def test_session_api_runs_in_the_background_and_reports_json(tmp_path, monkeypatch):
    from qlm_kernel.session.paper import (
        list_paper_sessions,
        paper_session_status,
        start_paper_session,
        stop_paper_session,
    )

    monkeypatch.setenv("QLM_HOME", str(tmp_path))
    started = start_paper_session(
        "sma_cross",
        sample={"kind": "synthetic", "n": 2000, "seed": 0},
        params={"fast": 5, "slow": 20},
        settings={"fees": 0.001},
        speed=100,
    )
    sid = started["session_id"]
    time.sleep(0.4)
    status = paper_session_status(sid)
    assert status["status"] == "running" and 0 < status["bars_processed"] < 2000
    assert set(status) >= {"position", "cash", "equity", "pnl", "n_orders", "n_fills", "last_error"}
    stopped = stop_paper_session(sid)
    assert stopped["status"] == "stopped" and stopped["bars_processed"] < 2000
    assert any(s["session_id"] == sid and s["status"] == "stopped" for s in list_paper_sessions())
    fast = start_paper_session("rsi_reversion", sample={"kind": "synthetic", "n": 300, "seed": 1}, speed=0)
    deadline = time.time() + 20
    while time.time() < deadline and paper_session_status(fast["session_id"])["status"] == "running":
        time.sleep(0.05)
    done = paper_session_status(fast["session_id"])
    assert done["status"] == "finished" and done["bars_processed"] == 300
    with pytest.raises(ConfigError):
        paper_session_status("nope")
    with pytest.raises(qlm.StrategyError):
        start_paper_session("no_such_strategy", sample={"kind": "synthetic", "n": 100})
