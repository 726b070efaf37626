"""qlm.backtest_portfolio is a recorded session run: events on the bus, a run in a real SQLite store
(universe name, universe fingerprint, strategy version, settings with the portfolio entry), failures
recorded with their error, stored universes found by name."""

from __future__ import annotations

import pytest

import qlm_kernel as qlm
from qlm_kernel.errors import StrategyError
from qlm_kernel.session import stop_event_recorder
from qlm_kernel.store import close_default_store, default_store


@pytest.fixture()
def workspace(tmp_path, monkeypatch):
    stop_event_recorder()
    close_default_store()
    monkeypatch.setenv("QLM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("QLM_RECORD_RUNS", "1")
    home = qlm.workspace.qlm_home()
    yield home
    stop_event_recorder()
    close_default_store()


@pytest.fixture(scope="module")
def frames():
    return {s: qlm.sample_data("synthetic", n=1200, seed=90 + k) for k, s in enumerate(("AAA", "BBB", "CCC"))}


def test_a_stored_universe_runs_by_name_and_is_recorded(workspace, frames):
    dm = qlm.DataManager()
    dm.import_universe(frames, "trio")
    seen = []
    with qlm.subscribe("engine.portfolio.*", seen.append) as sub:
        res = qlm.backtest_portfolio("sma_cross", "trio", fast=5, slow=30, size=0.3, size_type="percent")
        sub.wait_idle(5)
    assert [e.topic for e in seen] == ["engine.portfolio.started", "engine.portfolio.finished"]
    assert seen[0].payload["symbols"] == 3
    run = default_store().get_run(res.meta["run_id"])
    assert run["dataset"] == "trio"
    assert run["data_fingerprint"] == qlm.load_universe("trio").fingerprint
    assert run["params"] == {"fast": 5, "slow": 30}
    assert run["settings"]["portfolio"] == {"universe": "trio", "symbols": ["AAA", "BBB", "CCC"],
                                            "orders": "signals"}
    assert run["settings"]["size_type"] == "percent"
    assert run["stats"]["final_value"] == pytest.approx(res.stats["final_value"])
    assert run["strategy_version_id"] is not None  # the strategy code was versioned with the run


def test_target_weights_and_a_failure_are_recorded(workspace, frames):
    import pandas as pd

    u = qlm.load_universe(frames, name="trio")
    w = pd.DataFrame({s: [1 / 3] for s in u.symbols}, index=[u.index[0]])
    res = qlm.backtest_portfolio(qlm.TargetWeights(w, rebalance="W"), u)
    run = default_store().get_run(res.meta["run_id"])
    assert run["strategy"] == "TargetWeights" and run["settings"]["portfolio"]["orders"] == "target_weights"
    with pytest.raises(StrategyError) as err:
        qlm.backtest_portfolio({"ZZZ": qlm.Signals()}, u)
    failed = default_store().get_run(err.value.context["run_id"])
    assert failed["status"] == "error" and failed["dataset"] == "trio"
    assert failed["error"]["code"] == "UNKNOWN_SYMBOL"


def test_record_false_writes_nothing(workspace, frames):
    res = qlm.backtest_portfolio("sma_cross", frames, record=False)
    assert res.meta["run_id"] is None
    assert default_store().list_runs() == []


def test_an_unknown_universe_says_how_each_front_end_imports_one(workspace, frames):
    from qlm_kernel.errors import DataError

    qlm.DataManager().import_universe(frames, "trio")
    with pytest.raises(DataError) as err:
        qlm.backtest_portfolio("sma_cross", "tiro")
    assert "did you mean 'trio'?" in err.value.hint
    assert "qlm data import-universe FILES... --name NAME" in err.value.hint_for("cli")
    assert "import_universe(" in err.value.hint_for("python")
    assert "list_datasets" in err.value.hint_for("mcp")
    run = default_store().get_run(err.value.context["run_id"])
    assert run["status"] == "error" and run["strategy"] == "sma_cross"
