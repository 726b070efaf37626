"""The indicator memo: same bits with and without it, hits counted, no caching outside a scope, no
stale result after an in-place edit or a recycled address, the bound, threads sharing one scope, and
the optimizer giving the same trials with the memo on and off. No timing assertions."""

from __future__ import annotations

import gc
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest

import qlm_kernel as qlm
from qlm_kernel import ConfigError
from qlm_kernel import indicators as ta
from qlm_kernel.indicators.memo import (
    ENV_MAX_MB,
    ENV_SWITCH,
    Memo,
    current_memo,
    frozen_frame,
    memo_from_env,
    memo_scope,
    use_memo,
)
from qlm_kernel.optimization.evaluate import Evaluator
from qlm_kernel.strategy import Param, Signals, Strategy
from qlm_kernel.strategy.compute import compute_signals


def ohlc(n: int = 2000, seed: int = 1) -> pd.DataFrame:
    """A random-walk OHLC frame on an hourly UTC index (writable, like a user's frame)."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    high = close * (1 + np.abs(rng.normal(0.0, 0.004, n)))
    low = close * (1 - np.abs(rng.normal(0.0, 0.004, n)))
    close[[50, 51, 700]] = np.nan  # NaNs inside the data: warm-up and hold rules are part of the bits
    index = pd.date_range("2022-01-01", periods=n, freq="h", tz="UTC")
    return pd.DataFrame({"open": close, "high": high, "low": low, "close": close}, index=index)


DF = ohlc()

CALLS = {
    "sma": lambda d: ta.sma(d["close"], 10),
    "ema": lambda d: ta.ema(d["close"], 12),
    "wma": lambda d: ta.wma(d["close"], 9),
    "rsi": lambda d: ta.rsi(d["close"]),
    "atr": lambda d: ta.atr(d["high"], d["low"], d["close"], 14),
    "rolling_std": lambda d: ta.rolling_std(d["close"], 20),
    "zscore": lambda d: ta.zscore(d["close"], 20, ddof=0),
    "bollinger": lambda d: ta.bollinger(d["close"], 20, 2.5),
    "macd": lambda d: ta.macd(d["close"], 12, 26, 9),
    "roc": lambda d: ta.roc(d["close"], 10),
    "highest": lambda d: ta.highest(d["high"], 20),
    "lowest": lambda d: ta.lowest(d["low"], 20),
    "donchian": lambda d: ta.donchian(d["high"], d["low"], 20),
    "true_range": lambda d: ta.true_range(d["high"], d["low"], d["close"]),
    "crossed_above": lambda d: ta.crossed_above(ta.sma(d["close"], 5), ta.sma(d["close"], 20)),
    "crossed_below": lambda d: ta.crossed_below(ta.sma(d["close"], 5), ta.sma(d["close"], 20)),
    "crossed_level": lambda d: ta.crossed_below(ta.rsi(d["close"], 7), 30.0),
    "crossed_level_first": lambda d: ta.crossed_above(70, ta.rsi(d["close"], 7)),
}

INPUTS = {
    "frame": lambda: DF,  # writable columns: keyed by checksum
    "frozen": lambda: frozen_frame(DF),  # read-only columns: keyed by address
    "arrays": lambda: {k: DF[k].to_numpy(copy=True) for k in DF.columns},
}


def same_bits(got, want) -> None:
    """Identical type, index, name and bytes (NaN payloads included), field by field for tuples."""
    assert type(got) is type(want)
    if isinstance(want, tuple):
        for g, w in zip(got, want, strict=True):
            same_bits(g, w)
        return
    if isinstance(want, pd.Series):
        pd.testing.assert_series_equal(got, want, check_exact=True)
    assert np.asarray(got).dtype == np.asarray(want).dtype
    assert np.asarray(got).tobytes() == np.asarray(want).tobytes()


@pytest.mark.parametrize("kind", list(INPUTS))
@pytest.mark.parametrize("name", list(CALLS))
def test_same_bits_with_and_without_memo_and_second_call_is_a_hit(name, kind):
    data = INPUTS[kind]()
    plain = CALLS[name](data)
    with memo_scope() as memo:
        first = CALLS[name](data)
        after_first = memo.stats()
        second = CALLS[name](data)
        after_second = memo.stats()
    same_bits(first, plain)
    same_bits(second, plain)
    assert after_first["hits"] == 0 and after_first["misses"] >= 1
    assert after_second["misses"] == after_first["misses"]  # nothing computed the second time
    assert after_second["hits"] == after_first["misses"]  # every call of the second round hit
    assert after_second["bypassed"] == 0


def test_nothing_cached_outside_a_scope():
    close = DF["close"].to_numpy(copy=True)
    assert current_memo() is None
    a, b = ta.sma(close, 5), ta.sma(close, 5)
    assert a is not b and a.flags.writeable  # computed twice, the caller's own arrays
    with memo_scope() as memo:
        ta.sma(close, 5)
    ta.sma(close, 5)
    assert current_memo() is None
    assert memo.stats()["misses"] == 1 and memo.stats()["hits"] == 0


def test_keywords_and_defaults_share_an_entry_but_types_do_not():
    close = DF["close"]
    with memo_scope() as memo:
        ta.sma(close, 5)
        ta.sma(close, period=5)
        ta.sma(x=close, period=np.int64(5))
        ta.rsi(close)
        ta.rsi(close, 14)
        assert memo.stats()["hits"] == 3
        ta.sma(close, 1)
        with pytest.raises(ConfigError):
            ta.sma(close, True)  # True == 1, but a bool period is refused, not served from the cache


def test_in_place_edit_of_a_writable_input_is_not_served_stale():
    values = DF["close"].to_numpy(copy=True)
    series = pd.Series(values.copy(), index=DF.index)
    with memo_scope() as memo:
        before_a = ta.ema(values, 10)
        before_s = ta.ema(series, 10)
        values[1000] *= 1.5
        series.iloc[1000] *= 1.5
        after_a = ta.ema(values, 10)
        after_s = ta.ema(series, 10)
        assert memo.stats()["hits"] == 0
    assert not np.array_equal(before_a[1000:], after_a[1000:])
    same_bits(after_a, ta.ema(values, 10))
    same_bits(after_s, ta.ema(series, 10))
    assert not before_s.equals(after_s)


def test_a_read_only_view_of_writable_memory_is_keyed_by_contents():
    buf = bytearray(np.arange(100, dtype=np.float64).tobytes())
    view = np.frombuffer(buf, dtype=np.float64)
    view.setflags(write=False)  # read-only here, but the bytearray can still change underneath
    with memo_scope() as memo:
        before = ta.sma(view, 3)
        np.frombuffer(buf, dtype=np.float64)[50] = -1e6
        after = ta.sma(view, 3)
        assert memo.stats()["hits"] == 0
    assert after[51] != before[51]
    same_bits(after, ta.sma(view, 3))


def test_a_recycled_address_of_a_read_only_input_is_not_served_stale():
    with memo_scope() as memo:
        for i in range(30):  # freed buffers of the same size are typically reused at the same address
            arr = np.full(4096, float(i))
            arr.setflags(write=False)
            assert ta.sma(arr, 3)[-1] == float(i)
            del arr
            gc.collect(1)  # the young generations: a full collection of a big test process is ~0.4 s
        assert memo.stats()["entries"] == 0  # each entry died with its read-only input


def test_cached_results_cannot_be_corrupted_by_the_caller():
    close = frozen_frame(DF)["close"]
    arr = DF["close"].to_numpy(copy=True)
    with memo_scope():
        first = ta.sma(close, 5)
        first.iloc[100] = -1.0  # copy-on-write: the caller's Series gets its own copy
        first.name = "renamed"
        band = ta.bollinger(close, 20)
        band.mid.iloc[100] = -1.0
        again = ta.sma(close, 5)
        out = ta.sma(arr, 5)
        with pytest.raises(ValueError):
            out[100] = -1.0
        with pytest.raises(ValueError):
            out.setflags(write=True)  # sealed: the cached memory cannot be made writable again
        with pytest.raises(ValueError):
            again.to_numpy().setflags(write=True)
        same_bits(again, ta.sma(DF["close"], 5).rename("close"))
        same_bits(ta.bollinger(close, 20), ta.bollinger(DF["close"], 20))
        same_bits(ta.sma(arr, 5), ta.sma(DF["close"].to_numpy(), 5))


def test_series_name_and_index_are_part_of_the_key():
    close = frozen_frame(DF)["close"]
    with memo_scope():
        named = ta.sma(close, 5)
        other = ta.sma(close.rename("other"), 5)
        shifted = ta.sma(close.set_axis(DF.index.tz_convert("America/New_York")), 5)
    assert named.name == "close" and other.name == "other"
    assert str(shifted.index.tz) == "America/New_York"


def test_bytes_bound_is_respected():
    arr = frozen_frame(DF)["close"].to_numpy()
    size = arr.nbytes
    memo = Memo(max_bytes=5 * size)
    with use_memo(memo):
        for period in range(2, 40):
            ta.sma(arr, period)
            assert memo.stats()["nbytes"] <= 5 * size
    stats = memo.stats()
    assert 1 <= stats["entries"] <= 5
    assert stats["evictions"] + stats["rejected"] >= 38 - 5
    with use_memo(memo):
        ta.sma(arr, 39)  # the newest result is always served
    assert memo.stats()["hits"] == 1


def test_eviction_admits_what_is_reused_sooner_and_drops_the_longest_idle_entry():
    arr = frozen_frame(DF)["close"].to_numpy()
    memo = Memo(max_bytes=None, max_entries=3)  # a window of 1 entry, a main part of 2
    with use_memo(memo):

        def hit(period: int) -> bool:
            before = memo.stats()["hits"]
            ta.sma(arr, period)
            return memo.stats()["hits"] == before + 1

        for period in (2, 3, 4):  # main: 2, 3; window: 4
            assert not hit(period)
        assert hit(2)  # 2 reused (after 3 requests)
        assert not hit(5)  # 4 leaves the window, never reused: it does not evict anything
        assert not hit(4)  # 4 reused after 3 requests
        assert not hit(6)  # 4 leaves the window again; 3 has been idle 5 requests > 3: 3 is evicted
        assert len(memo) == 3
        assert hit(2) and hit(4) and hit(6)  # the newest entry is always served
        assert not hit(3)
    assert memo.stats()["evictions"] >= 1


def test_a_cyclic_sweep_larger_than_the_bound_keeps_what_fits():
    """Fast outer, slow inner, as the grid runs: plain LRU would miss every slow window every round."""
    arr = frozen_frame(DF)["close"].to_numpy()
    memo = Memo(max_bytes=None, max_entries=20)
    rounds, windows = 5, list(range(10, 40))  # 30 slow windows cycling through 20 slots
    with use_memo(memo):
        for _ in range(rounds):
            for period in windows:
                ta.sma(arr, period)
    assert memo.stats()["hits"] >= (rounds - 1) * 15


def test_threads_share_one_scope():
    close = frozen_frame(DF)["close"]
    with memo_scope() as memo:
        want = ta.sma(close, 30)

        def work(_: int) -> pd.Series:
            assert current_memo() is None  # a pool thread starts without the scope ...
            with use_memo(memo):  # ... and joins it explicitly, as the optimizer's Evaluator does
                return ta.sma(close, 30)

        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(work, range(16)))
    for got in results:
        same_bits(got, want)
    assert memo.stats()["hits"] == 16 and memo.stats()["misses"] == 1


def test_concurrent_misses_from_threads_give_identical_results():
    close = frozen_frame(DF)["close"]
    memo = Memo()
    barrier = threading.Barrier(4)

    def work(period: int) -> pd.Series:
        barrier.wait()
        with use_memo(memo):
            return ta.bollinger(close, period).upper

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(work, [20, 20, 20, 20]))
    for got in results:
        same_bits(got, ta.bollinger(DF["close"], 20).upper)
    assert memo.stats()["entries"] == 1


class MemoCross(Strategy):
    """SMA cross used to check that the memo reaches signals() in every way it is run."""

    fast = Param(5, min=2, max=50)
    slow = Param(20, min=5, max=200)

    def signals(self, data):
        close = data["close"]
        f, s = ta.sma(close, self.fast), ta.sma(close, self.slow)
        return Signals(entry_long=ta.crossed_above(f, s), exit_long=ta.crossed_below(f, s))


def test_time_limited_signals_run_in_another_thread_but_see_the_scope():
    frame = frozen_frame(DF)
    with memo_scope() as memo:
        compute_signals(MemoCross(fast=5, slow=20), frame, time_limit=30)
        compute_signals(MemoCross(fast=5, slow=20), frame, time_limit=30)
    assert memo.stats()["hits"] == 1 + 4  # the sibling crossing, then all four calls again


def test_evaluator_shares_indicators_across_trials_on_a_read_only_copy(monkeypatch):
    monkeypatch.delenv(ENV_SWITCH, raising=False)
    data = qlm.sample_data("synthetic", n=3000, seed=2)
    ev = Evaluator(MemoCross, data, {"fees": 0.001})
    rows = [ev.evaluate({"fast": f, "slow": s}) for f in (5, 8) for s in (20, 30)]
    assert all(r["status"] == "ok" for r in rows)
    stats = ev.memo.stats()
    assert stats["misses"] == 4 + 4  # 4 distinct SMAs, 4 one-pass crossings (both directions each)
    assert stats["hits"] == 4 + 4  # the other 4 SMA calls, and each trial's second crossing
    assert not ev.frame["close"].to_numpy().flags.writeable and ev.frame is not data
    assert ev.frame.attrs == data.attrs
    data.iloc[0, 0] = data.iloc[0, 0]  # the caller's frame stays theirs and writable
    ev.close_memo()
    assert ev.memo.stats()["entries"] == 0

    monkeypatch.setenv(ENV_SWITCH, "0")
    off = Evaluator(MemoCross, data, {"fees": 0.001})
    assert off.memo is None and off.frame is data


def test_memo_switch_and_bound_from_the_environment(monkeypatch):
    monkeypatch.setenv(ENV_SWITCH, "off")
    assert memo_from_env() is None
    monkeypatch.setenv(ENV_SWITCH, "1")
    monkeypatch.setenv(ENV_MAX_MB, "64")
    assert memo_from_env().max_bytes == 64 * 2**20
    monkeypatch.setenv(ENV_MAX_MB, "lots")
    with pytest.raises(ConfigError):
        memo_from_env()


def test_frozen_frame_is_a_read_only_copy_with_the_same_values():
    mixed = DF.assign(volume=np.arange(len(DF)))
    for frame in (DF, mixed):
        frozen = frozen_frame(frame)
        pd.testing.assert_frame_equal(frozen, frame, check_exact=True)
        assert all(not frozen[c].to_numpy().flags.writeable for c in frozen.columns)
        assert frozen_frame(frozen) is frozen
    assert frame["close"].to_numpy().base is not None  # the original is untouched


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_optimize_gives_the_same_trials_with_and_without_memo(monkeypatch, n_jobs):
    data = qlm.sample_data("synthetic", n=4000, seed=3)
    space = {"fast": [3, 5, 8, 13], "slow": [20, 30, 50]}

    def run(switch: str):
        monkeypatch.setenv(ENV_SWITCH, switch)
        return qlm.optimize(
            MemoCross, data, space=space, method="grid", fees=0.001, record=False, n_jobs=n_jobs
        )

    on, off = run("1"), run("0")
    pd.testing.assert_frame_equal(on.trials, off.trials, check_exact=True)
    assert [(r["params"], r["stats"], r["equity"]) for r in on.rows] == [
        (r["params"], r["stats"], r["equity"]) for r in off.rows
    ]


@pytest.mark.parametrize("first", ["above", "below"])
def test_one_pass_gives_both_crossings_inside_a_scope(first):
    fast, slow = ta.sma(DF["close"], 5), ta.sma(DF["close"], 20)
    plain_up, plain_down = ta.crossed_above(fast, slow), ta.crossed_below(fast, slow)
    calls = [ta.crossed_above, ta.crossed_below]
    if first == "below":
        calls.reverse()
    with memo_scope() as memo:
        f, s = ta.sma(DF["close"], 5), ta.sma(DF["close"], 20)
        before = memo.stats()
        got = {fn.__name__: fn(f, s) for fn in calls}
        after = memo.stats()
        level = ta.crossed_above(f, 100.0)  # against a level: one direction only, nothing offered
    assert after["misses"] - before["misses"] == 1 and after["hits"] - before["hits"] == 1
    pd.testing.assert_series_equal(got["crossed_above"], plain_up)
    pd.testing.assert_series_equal(got["crossed_below"], plain_down)
    pd.testing.assert_series_equal(level, ta.crossed_above(fast, 100.0))
    assert got["crossed_above"].any() and got["crossed_below"].any()
