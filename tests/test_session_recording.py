"""qlm.backtest records runs, strategy versions and bus events in a real SQLite workspace store."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest

import qlm_kernel as qlm
from qlm_kernel.data import fingerprint_frame
from qlm_kernel.errors import StrategyError
from qlm_kernel.session import stop_event_recorder
from qlm_kernel.store import close_default_store, default_store

STRATEGY = """
from qlm_kernel import Strategy, Param, Signals, indicators as ta

class Cross(Strategy):
    fast = Param(5, min=2, max=50)
    slow = Param(20, min=5, max=200)

    def signals(self, data):
        f, s = ta.sma(data["close"], self.fast), ta.sma(data["close"], self.slow)
        return Signals(entry_long=ta.crossed_above(f, s), exit_long=ta.crossed_below(f, s))
"""


@pytest.fixture()
def workspace(tmp_path, monkeypatch):
    """A fresh QLM_HOME with recording on (the default outside the test suite)."""
    stop_event_recorder()
    close_default_store()
    monkeypatch.setenv("QLM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("QLM_RECORD_RUNS", "1")
    home = qlm.workspace.qlm_home()
    (home / "strategies").mkdir(exist_ok=True)
    yield home
    stop_event_recorder()
    close_default_store()


@pytest.fixture(scope="module")
def df():
    return qlm.sample_data("synthetic", n=3000, seed=5)


def test_backtest_is_recorded_with_version_fingerprint_and_stats(workspace, df):
    (workspace / "strategies" / "cross.py").write_text(STRATEGY)
    res = qlm.backtest("cross", df, fast=7, fees=0.001)
    run = default_store().get_run(res.meta["run_id"])
    assert run["strategy"] == "cross" and run["status"] == "ok" and run["source"] == "python"
    assert run["params"] == {"fast": 7, "slow": 20}
    assert run["settings"]["fees"] == 0.001
    assert run["data_fingerprint"] == fingerprint_frame(df)
    assert run["stats"]["final_value"] == pytest.approx(res.stats["final_value"])
    assert run["stats"]["n_trades"] == res.stats["n_trades"]
    version = default_store().get_strategy_version(run["strategy_version_id"])
    assert version["code"] == STRATEGY and version["author"] == "user"


def test_a_new_version_only_when_the_code_changes(workspace, df):
    path = workspace / "strategies" / "cross.py"
    path.write_text(STRATEGY)
    first = qlm.backtest("cross", df)
    again = qlm.backtest("cross", df, fast=9)
    path.write_text(STRATEGY.replace("crossed_below(f, s)", "crossed_below(f, s) | (data['close'] < 0)"))
    edited = qlm.backtest("cross", df)
    store = default_store()
    ids = [store.get_run(r.meta["run_id"])["strategy_version_id"] for r in (first, again, edited)]
    assert ids[0] == ids[1] != ids[2]
    history = store.strategy_history("cross")
    assert [v["version"] for v in history] == [1, 2]


def test_failed_backtest_records_the_error_and_still_raises(workspace, df):
    (workspace / "strategies" / "typo.py").write_text(
        STRATEGY.replace('data["close"], self.slow', "close, self.slow")
    )
    with pytest.raises(StrategyError) as info:
        qlm.backtest("typo", df)
    run_id = info.value.context["run_id"]
    run = default_store().get_run(run_id)
    assert run["status"] == "error" and run["error"]["type"] == "StrategyError"
    assert run["error"]["context"]["line"] == info.value.context["line"]
    assert "NameError" in run["error"]["context"]["exception_type"]


def test_record_false_writes_nothing(workspace, df):
    res = qlm.backtest("sma_cross", df, record=False)
    assert res.meta["run_id"] is None
    assert default_store().list_runs() == []


def test_events_reach_the_bus_and_the_store(workspace, df):
    seen = []
    with qlm.subscribe("engine.backtest.*", seen.append) as sub:
        res = qlm.backtest("sma_cross", df)
        sub.wait_idle(5)
    assert [e.topic for e in seen] == ["engine.backtest.started", "engine.backtest.finished"]
    assert seen[1].payload["run_id"] == res.meta["run_id"]
    stop_event_recorder()  # flush the batch writer
    events = default_store().tail_events(topics=["engine.backtest.*", "store.run.*"])
    topics = [e["topic"] for e in events]
    assert topics == ["engine.backtest.started", "store.run.recorded", "engine.backtest.finished"]
    assert events[-1]["payload"]["run_id"] == res.meta["run_id"]
    ids = [e["id"] for e in events]
    assert ids == sorted(ids)


def test_a_broken_store_never_costs_the_result(workspace, df):
    db = workspace / "qlm.db"
    db.write_bytes(b"this is not a database" * 100)
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    res = qlm.backtest("sma_cross", df, record=True)
    assert res.stats["bars"] == len(df) and res.meta["run_id"] is None
    assert res.meta["record_error"]["code"] == "DB_CORRUPT"
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before


def test_datasets_by_name_are_recorded(workspace, df):
    qlm.session.data_manager().register_frame(df, "prices")
    assert [d["name"] for d in default_store().list_datasets()] == ["prices"]
    res = qlm.backtest("sma_cross", dataset="prices")
    run = default_store().get_run(res.meta["run_id"])
    assert run["dataset"] == "prices" and run["data_fingerprint"] == fingerprint_frame(df)
    by_name = qlm.backtest("sma_cross", "prices")
    assert by_name.stats["final_value"] == res.stats["final_value"]
    sample = qlm.backtest("sma_cross", sample={"kind": "synthetic", "n": 500, "seed": 1})
    assert sample.stats["bars"] == 500


def test_concurrent_backtests_from_threads_are_all_recorded(workspace, df):
    errors: list[BaseException] = []
    ids: list[int] = []
    lock = threading.Lock()

    def work(fast: int) -> None:
        try:
            for k in range(5):
                res = qlm.backtest("sma_cross", df, fast=fast + k, source="thread")
                with lock:
                    ids.append(res.meta["run_id"])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f,)) for f in (3, 10, 20, 30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(ids)) == 20
    runs = default_store().list_runs(limit=100)
    assert sorted(r["id"] for r in runs) == sorted(ids)


def test_strategy_files_elsewhere_are_filed_by_stem(workspace, df, tmp_path):
    path = Path(tmp_path / "elsewhere" / "my_cross.py")
    path.parent.mkdir()
    path.write_text(STRATEGY)
    res = qlm.backtest(str(path), df)
    assert default_store().get_run(res.meta["run_id"])["strategy"] == "my_cross"


def test_a_bad_frame_is_recorded_as_an_error_run(workspace, df):
    broken = df.drop(columns="low")
    with pytest.raises(qlm.DataError) as info:
        qlm.backtest("sma_cross", broken)
    run = default_store().get_run(info.value.context["run_id"])
    assert (
        run["status"] == "error" and run["error"]["type"] == "DataError" and run["data_fingerprint"] is None
    )
