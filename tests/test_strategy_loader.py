"""Loading strategy files afresh, resolving strategy-like objects, and the error trace they produce."""

from __future__ import annotations

import json
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from qlm_kernel import ConfigError, StrategyError
from qlm_kernel.strategy import (
    Signals,
    SignalsStrategy,
    Strategy,
    compute_signals,
    examples_dir,
    load_strategy,
    resolve_strategy,
)

HEADER = "from qlm_kernel import Strategy, Param, Signals, indicators as ta\n"


def data(n: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    index = pd.date_range("2023-01-01", periods=n, freq="D", tz="UTC")
    return pd.DataFrame(
        {"open": close, "high": close * 1.01, "low": close * 0.99, "close": close, "volume": 1.0},
        index=index,
    )


def write(path, body: str) -> str:
    path.write_text(HEADER + textwrap.dedent(body))
    return str(path)


def line_of(path: str, needle: str) -> int:
    with open(path) as fh:
        return next(i for i, text in enumerate(fh, 1) if needle in text)


def check_trace(err: StrategyError, path: str, needle: str) -> None:
    """The error points at the line holding ``needle`` in ``path`` and serializes to JSON."""
    ctx = err.context
    assert ctx["file"] == path
    assert ctx["line"] == line_of(path, needle)
    marked = [ln for ln in ctx["excerpt"].splitlines() if ln.startswith(">")]
    assert len(marked) == 1 and needle in marked[0] and f" {ctx['line']} |" in marked[0]
    assert needle in ctx["source_line"]
    assert err.hint
    json.dumps(err.to_dict())


STRAT = """
class Demo(Strategy):
    fast = Param({fast}, min=1)

    def signals(self, data):
        return Signals(entry_long=data["close"] > {level})
"""


def test_each_load_runs_the_current_file(tmp_path):
    path = write(tmp_path / "demo.py", STRAT.format(fast=5, level=0))
    first = load_strategy(path)
    assert first.fast.default == 5 and first.source_file == path
    write(tmp_path / "demo.py", STRAT.format(fast=8, level=1e9))
    second = load_strategy(path)
    assert second is not first and second.fast.default == 8
    assert not compute_signals(second(), data()).entry_long.any()
    assert first.source_hash != second.source_hash and "1000000000.0" in second.source_text
    # one module per file stays registered (Numba's cache needs an importable name): the latest load's
    [name] = [m for m in sys.modules if m.startswith("qlm_strategy_demo")]
    assert vars(sys.modules[name])[second.__name__] is second


def test_syntax_error_has_file_line_and_excerpt(tmp_path):
    path = write(
        tmp_path / "broken.py",
        """
        class Broken(Strategy)
            def signals(self, data):
                return Signals()
        """,
    )
    with pytest.raises(StrategyError) as info:
        load_strategy(path)
    err = info.value
    assert err.code == "STRATEGY_SYNTAX"
    assert err.context["exception_type"] == "SyntaxError" and err.context["column"]
    check_trace(err, path, "class Broken(Strategy)")


def test_exception_at_import_is_located(tmp_path):
    path = write(
        tmp_path / "imports.py",
        """
        import numpy as np
        RATIO = 1 / 0
        """,
    )
    with pytest.raises(StrategyError) as info:
        load_strategy(path)
    err = info.value
    assert err.code == "STRATEGY_IMPORT" and err.context["exception_type"] == "ZeroDivisionError"
    check_trace(err, path, "RATIO = 1 / 0")
    assert [f["file"] for f in err.context["frames"]] == [path]
    assert err.traceback.startswith("Traceback") and "ZeroDivisionError" in err.traceback


def test_bad_param_declaration_points_at_the_param_line(tmp_path):
    path = write(
        tmp_path / "decl.py",
        """
        class Decl(Strategy):
            fast = Param(5, min=10)

            def signals(self, data):
                return Signals()
        """,
    )
    with pytest.raises(StrategyError) as info:
        load_strategy(path)
    check_trace(info.value, path, "fast = Param(5, min=10)")
    assert info.value.context["cause"]["code"] == "BAD_PARAM"


def test_name_error_in_signals(tmp_path):
    path = write(
        tmp_path / "nameerr.py",
        """
        class NameErr(Strategy):
            period = Param(14, min=2)

            def signals(self, data):
                rsi = ta.rsi(data["close"], self.period)
                return Signals(entry_long=rsi < treshold)
        """,
    )
    strat = resolve_strategy(path, period=10)
    with pytest.raises(StrategyError) as info:
        compute_signals(strat, data())
    err = info.value
    assert err.code == "STRATEGY_RUNTIME"
    check_trace(err, path, "rsi < treshold")
    ctx = err.context
    assert ctx["exception_type"] == "NameError" and "treshold" in ctx["exception_message"]
    assert ctx["function"] == "signals"
    assert ctx["strategy"] == "NameErr" and ctx["params"] == {"period": 10}
    assert ctx["data"]["rows"] == 300 and ctx["data"]["columns"] == ["open", "high", "low", "close", "volume"]
    assert ctx["data"]["dtypes"]["close"] == "float64"
    assert ctx["source_hash"] and ctx["strategy_file"] == path
    assert all(f["file"] == path for f in ctx["frames"])  # QLM and library frames trimmed
    assert "compute.py" not in err.traceback
    assert isinstance(err.__cause__, NameError)


def test_key_error_on_capitalized_column_hints_lower_case(tmp_path):
    path = write(
        tmp_path / "keyerr.py",
        """
        class KeyErr(Strategy):
            def signals(self, data):
                close = data["Close"]
                return Signals(entry_long=close > 0)
        """,
    )
    with pytest.raises(StrategyError) as info:
        compute_signals(path, data())
    err = info.value
    check_trace(err, path, 'data["Close"]')
    assert err.context["exception_type"] == "KeyError"
    assert "data['close']" in err.hint


def test_innermost_user_frame_wins_and_library_frames_are_skipped(tmp_path):
    path = write(
        tmp_path / "deep.py",
        """
        def helper(close):
            return close.rolling(window=-3).mean()


        class Deep(Strategy):
            def signals(self, data):
                x = helper(data["close"])
                return Signals(entry_long=x > 0)
        """,
    )
    with pytest.raises(StrategyError) as info:
        compute_signals(path, data())
    err = info.value
    check_trace(err, path, "close.rolling(window=-3)")  # inside pandas, reported at the user's call
    assert err.context["function"] == "helper"
    assert [f["function"] for f in err.context["frames"]] == ["signals", "helper"]


def test_qlm_errors_from_indicators_keep_their_hint(tmp_path):
    path = write(
        tmp_path / "period.py",
        """
        class Period(Strategy):
            def signals(self, data):
                fast = ta.sma(data["close"], 0)
                return Signals(entry_long=fast > 0)
        """,
    )
    with pytest.raises(StrategyError) as info:
        compute_signals(path, data())
    err = info.value
    check_trace(err, path, 'ta.sma(data["close"], 0)')
    assert err.context["exception_type"] == "ConfigError"
    assert err.context["cause"]["context"]["indicator"] == "sma"
    assert "period=14" in err.hint


def test_excerpt_shows_the_code_that_ran_even_after_an_edit(tmp_path):
    path = write(
        tmp_path / "edited.py",
        """
        class Edited(Strategy):
            def signals(self, data):
                return Signals(entry_long=undefined_name)
        """,
    )
    strat = resolve_strategy(path)
    (tmp_path / "edited.py").write_text("# rewritten\n" * 10)
    with pytest.raises(StrategyError) as info:
        compute_signals(strat, data())
    assert "undefined_name" in info.value.context["excerpt"]


@pytest.mark.parametrize(
    ("body", "hint"),
    [
        ("pass", "return Signals"),
        ("return {'entry_long': data['close'] > 0}", "Signals(**signals)"),
        ("return data['close'] > 0, data['close'] < 0", "instead of a tuple"),
        ("return data['close'] > 0", "wrap it"),
    ],
)
def test_wrong_return_type_is_bad_signals(tmp_path, body, hint):
    path = write(
        tmp_path / "ret.py",
        f"""
        class Ret(Strategy):
            def signals(self, data):
                {body}
        """,
    )
    with pytest.raises(StrategyError) as info:
        compute_signals(path, data())
    err = info.value
    assert err.code == "BAD_SIGNALS" and hint in err.hint
    assert err.context["file"] == path and err.context["line"] == line_of(path, "def signals")
    json.dumps(err.to_dict())


def test_invalid_signals_are_reported_with_strategy_and_construction_line(tmp_path):
    path = write(
        tmp_path / "short.py",
        """
        class Short(Strategy):
            def signals(self, data):
                entries = (data["close"] > 0).iloc[:-1]
                return Signals(entry_long=entries)
        """,
    )
    with pytest.raises(StrategyError) as info:
        compute_signals(path, data())
    err = info.value
    assert err.code == "BAD_SIGNALS" and err.context["field"] == "entry_long"
    assert err.context["expected"] == 300 and err.context["got"] == 299
    assert err.context["line"] == line_of(path, "return Signals(entry_long=entries)")
    assert err.context["strategy"] == "Short" and err.context["file"] == path


def test_keyboard_interrupt_is_not_swallowed(tmp_path):
    path = write(
        tmp_path / "kbd.py",
        """
        class Kbd(Strategy):
            def signals(self, data):
                raise KeyboardInterrupt
        """,
    )
    with pytest.raises(KeyboardInterrupt):
        compute_signals(path, data())


# -- picking the class ----------------------------------------------------------------------------


def test_no_class_ambiguous_and_class_name(tmp_path):
    empty = write(tmp_path / "empty.py", "X = 1\n")
    with pytest.raises(StrategyError) as info:
        load_strategy(empty)
    assert info.value.code == "NO_STRATEGY_CLASS" and info.value.hint

    two = write(
        tmp_path / "two.py",
        """
        class A(Strategy):
            def signals(self, data):
                return Signals()


        class B(Strategy):
            def signals(self, data):
                return Signals()
        """,
    )
    with pytest.raises(StrategyError) as info:
        load_strategy(two)
    err = info.value
    assert err.code == "AMBIGUOUS_STRATEGY" and err.context["classes"] == ["A", "B"]
    assert "class_name='A'" in err.hint
    assert load_strategy(two, class_name="B").__name__ == "B"
    assert type(resolve_strategy(f"{two}:A")).__name__ == "A"
    with pytest.raises(StrategyError, match="no Strategy class named 'C'"):
        load_strategy(two, class_name="C")


def test_helper_base_class_and_imported_classes_do_not_count(tmp_path):
    path = write(
        tmp_path / "family.py",
        """
        from qlm_kernel.strategy import SignalsStrategy


        class Base(Strategy):
            n = Param(3, min=1)


        class Leaf(Base):
            def signals(self, data):
                return Signals()
        """,
    )
    assert load_strategy(path).__name__ == "Leaf"


def test_missing_and_non_python_files(tmp_path):
    with pytest.raises(StrategyError) as info:
        load_strategy(tmp_path / "nope.py")
    assert info.value.code == "NOT_FOUND"
    txt = tmp_path / "s.txt"
    txt.write_text("x")
    with pytest.raises(StrategyError, match=r"\.py file"):
        load_strategy(txt)


# -- names and resolve_strategy -------------------------------------------------------------------


def test_bare_names_search_workspace_then_examples(tmp_path, monkeypatch):
    monkeypatch.setenv("QLM_HOME", str(tmp_path))
    assert load_strategy("sma_cross").source_file == str(examples_dir() / "sma_cross.py")
    (tmp_path / "strategies").mkdir()
    mine = write(tmp_path / "strategies" / "sma_cross.py", STRAT.format(fast=3, level=0))
    assert load_strategy("sma_cross").source_file == mine  # the workspace wins
    assert load_strategy("sma_cross.py").source_file == mine
    with pytest.raises(StrategyError) as info:
        resolve_strategy("sma_crosss")
    err = info.value
    assert err.code == "NOT_FOUND" and "did you mean 'sma_cross'" in err.hint
    assert str(tmp_path / "strategies" / "sma_crosss.py") in err.context["searched"]


def test_resolve_strategy_accepts_every_form(tmp_path):
    path = write(tmp_path / "demo.py", STRAT.format(fast=5, level=0))
    cls = load_strategy(path)
    assert resolve_strategy(cls, fast=2).fast == 2
    inst = cls(fast=3)
    assert resolve_strategy(inst) is inst
    changed = resolve_strategy(inst, fast=4)
    assert changed.fast == 4 and inst.fast == 3
    assert resolve_strategy(tmp_path / "demo.py", fast=6).fast == 6
    sig = Signals(entry_long=np.ones(3, dtype=bool))
    wrapped = resolve_strategy(sig)
    assert isinstance(wrapped, SignalsStrategy) and isinstance(wrapped, Strategy)
    assert compute_signals(sig, pd.DataFrame({"close": [1.0, 2.0, 3.0]})) is sig
    with pytest.raises(ConfigError):
        resolve_strategy(sig, fast=1)
    with pytest.raises(ConfigError) as info:
        resolve_strategy(42)
    assert info.value.code == "BAD_STRATEGY" and info.value.hint
