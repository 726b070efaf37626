"""Trace capture the heal loop relies on: time limit, bad signals, no-trade warning, version id, store."""

from __future__ import annotations

import threading
import time

import pytest
from heal_cases import ENDLESS_LOOP, NAN_INDICATOR, SHAPE, SYNTAX

import qlm_kernel as qlm
from qlm_kernel.errors import ConfigError, StrategyError
from qlm_kernel.store import default_store
from qlm_kernel.strategy import compute_signals, diagnose_no_trades, load_strategy, time_limit_scope
from qlm_kernel.strategy.timelimit import run_limited


@pytest.fixture(scope="module")
def df():
    return qlm.sample_data("synthetic", n=2000, seed=0)


def write(tmp_path, name, code):
    path = tmp_path / name
    path.write_text(code)
    return path


def test_an_endless_loop_is_stopped_at_its_line(tmp_path, df):
    path = write(tmp_path, "loop.py", ENDLESS_LOOP.broken)
    started = time.perf_counter()
    with pytest.raises(StrategyError) as info:
        compute_signals(str(path), df, time_limit=0.5)
    assert time.perf_counter() - started < 2.0
    err = info.value
    assert err.code == "TIMEOUT" and err.context["line"] in ENDLESS_LOOP.lines
    assert err.context["exception_type"] == "TimeoutError" and err.context["interrupted"] is True
    assert ENDLESS_LOOP.fragment in err.context["excerpt"] and "loop" in err.hint
    assert err.context["time_limit_s"] == 0.5 and err.context["data"]["rows"] == len(df)
    assert not [t for t in threading.enumerate() if t.name == "qlm-user-code" and t.is_alive()]


def test_a_loop_at_import_time_is_stopped_too(tmp_path):
    path = write(
        tmp_path, "hang.py", "from qlm_kernel import Strategy\n\nn = 0\nwhile True:\n    n = n + 1\n"
    )
    with time_limit_scope(0.3), pytest.raises(StrategyError) as info:
        load_strategy(path)
    assert info.value.code == "TIMEOUT" and info.value.context["line"] in (4, 5)


def test_without_a_limit_user_code_runs_inline_and_errors_pass_through():
    assert run_limited(threading.current_thread, None) is threading.current_thread()
    assert run_limited(threading.current_thread, 5.0) is not threading.current_thread()
    with pytest.raises(ZeroDivisionError):
        run_limited(lambda: 1 / 0, 5.0)
    with pytest.raises(ConfigError):
        time_limit_scope(0).__enter__()


def test_bad_signals_carry_excerpt_params_and_data(tmp_path, df):
    path = write(tmp_path, "shape.py", SHAPE.broken)
    with pytest.raises(StrategyError) as info:
        qlm.backtest(str(path), df, record=False)
    ctx = info.value.context
    assert info.value.code == "BAD_SIGNALS" and ctx["line"] == SHAPE.line and ctx["field"] == "entry_long"
    assert (ctx["expected"], ctx["got"]) == (2000, 1999)
    assert SHAPE.fragment in ctx["excerpt"] and ctx["params"] == {} and ctx["data"]["rows"] == 2000


def test_library_frames_are_summarized_not_dropped(tmp_path, df):
    code = (
        "from qlm_kernel import Strategy, Signals\n\n\nclass Bad(Strategy):\n"
        "    def signals(self, data):\n"
        "        return Signals(entry_long=data['close'].rolling(-1).mean() > 0)\n"
    )
    with pytest.raises(StrategyError) as info:
        compute_signals(str(write(tmp_path, "bad.py", code)), df)
    summary = info.value.context["library_frames"]
    assert summary["omitted"] >= 1 and "pandas" in " ".join(summary["packages"])
    assert "library frame(s) omitted" in info.value.traceback


def test_an_all_nan_indicator_is_a_warning_naming_it(tmp_path, df):
    strat = load_strategy(write(tmp_path, "stoch.py", NAN_INDICATOR.broken))()
    assert qlm.backtest(strat, df, record=False).stats["n_trades"] == 0
    warning = diagnose_no_trades(strat, df)
    ctx = warning.context
    assert warning.code == "NO_TRADES" and ctx["severity"] == "warning"
    assert ctx["nan_locals"][0] == {
        "name": "k",
        "line": NAN_INDICATOR.line,
        "nan_share": 1.0,
        "dtype": "float64",
    }
    assert ctx["signal_counts"]["entry_long"] == 0 and "'k'" in warning.hint


FLAKY_RERUN = """from qlm_kernel import Strategy, Signals
import numpy as np

CALLS = []


class Flaky(Strategy):
    def signals(self, data):
        CALLS.append(1)
        if len(CALLS) > 1:
            {second}
        never = np.zeros(len(data), dtype=bool)
        return Signals(entry_long=never, exit_long=never)
"""


@pytest.mark.parametrize(("second", "code", "exception_type"), [
    ("while True:\n                pass", "TIMEOUT", "TimeoutError"),
    ("return 1 / 0", "STRATEGY_RUNTIME", "ZeroDivisionError"),
    ("raise SystemExit(2)", "STRATEGY_RUNTIME", "SystemExit"),
], ids=["overrun", "new_error", "system_exit"])
def test_a_no_trade_rerun_that_fails_raises_its_own_traced_error(tmp_path, df, second, code, exception_type):
    """The re-run is strategy code too: an overrun or a new failure is a StrategyError, never a raw escape."""
    strat = load_strategy(write(tmp_path, "flaky.py", FLAKY_RERUN.format(second=second)))()
    with time_limit_scope(0.3):
        assert qlm.backtest(strat, df, record=False).stats["n_trades"] == 0
        with pytest.raises(StrategyError) as info:
            diagnose_no_trades(strat, df)
    assert info.value.code == code and info.value.context["exception_type"] == exception_type
    assert info.value.context["line"] in (11, 12) and info.value.context["strategy_class"] == "Flaky"


def test_a_recorded_failure_names_its_strategy_version(home, df, monkeypatch):
    monkeypatch.setenv("QLM_RECORD_RUNS", "1")
    folder = home / "strategies"
    folder.mkdir(parents=True)
    (folder / "typo.py").write_text(SYNTAX.broken)
    with pytest.raises(StrategyError) as info:
        qlm.backtest("typo", df)
    version_id = info.value.context["strategy_version_id"]
    assert version_id is not None
    assert default_store().get_strategy_version(version_id)["code"] == SYNTAX.broken
    assert default_store().get_run(info.value.context["run_id"])["strategy_version_id"] == version_id


def test_heal_store_rows_refuse_bad_input(home):
    store = default_store()
    sid = store.create_heal_session("s", max_attempts=2, model="m")
    with pytest.raises(ConfigError):
        store.add_heal_step(sid, index=0, attempt=0, kind="dance", ok=True, started_at=0.0, ended_at=1.0)
    with pytest.raises(ConfigError) as info:
        store.add_heal_step("nope", index=0, attempt=0, kind="run", ok=True, started_at=0.0, ended_at=1.0)
    assert info.value.code == "NOT_FOUND"
    with pytest.raises(ConfigError):
        store.finish_heal_session(sid, "running", healed=False, attempts=0)
    store.add_heal_step(
        sid, index=0, attempt=1, kind="run", ok=False, started_at=10.0, ended_at=10.25, data={"x": 1}
    )
    store.finish_heal_session(sid, "not_healed", healed=False, attempts=1, error=RuntimeError("boom"))
    session = store.get_heal_session(sid)
    assert session["steps"][0]["duration_s"] == pytest.approx(0.25) and session["error"]["message"] == "boom"
    assert store.list_heal_sessions(status="not_healed")[0]["id"] == sid
    assert store.list_heal_sessions(strategy="other") == []
