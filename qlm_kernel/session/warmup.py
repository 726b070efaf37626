"""`warm_engine`: compile every engine mode ahead of the first backtest, in parallel on the cores.

The engine kernel is compiled once per mode (fill at close / next open; intrabar checks none /
liquidation / stops and liquidation; close at end:
twelve modes) and cached on disk by Numba; a cold machine pays that compile inside its first backtest
of each mode. `warm_engine` pays it up front — the run command's set-up and ``qlm warmup`` (for a
machine whose cache was cleared) call it — by running a tiny backtest in every mode, the modes spread
over worker processes (one per core; Numba keeps one cache index per mode, so they never write the same
file). Every indicator kernel is compiled too (one more share of the work), and so are the two grouped
kernels of portfolio mode (signals, target weights). Kernels take their inputs read-only
(`qlm_kernel.arrays.read_only`), so what is compiled here is what every later call uses.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np

INTRABAR_SETTINGS: tuple[dict[str, Any], ...] = ({}, {"leverage": 2.0}, {"sl_stop": 0.05})
"""Settings that select each intrabar mode for long-only signals: none, liquidation checks, stops."""

MODES: tuple[dict[str, Any], ...] = tuple(
    {"fill": fill, **intrabar, "close_at_end": end}
    for fill in ("close", "next_open") for intrabar in INTRABAR_SETTINGS for end in (False, True)
)
"""One set of settings per engine mode (`qlm_kernel.engine.kernels.MODE_ENTRIES`)."""

PORTFOLIO_MODES: tuple[dict[str, Any], ...] = ({"portfolio": "signals"}, {"portfolio": "weights"})
"""The grouped kernels: signals over a universe (`group_kernels`) and target weights (`weight_kernels`)."""

INDICATORS: dict[str, Any] = {"indicators": "all"}
"""Every indicator of `qlm_kernel.indicators`, once (each compiles its own small kernel)."""


def compile_modes(modes: list[dict[str, Any]]) -> float:
    """Run a tiny backtest in each of ``modes`` (compiling or loading each mode); seconds taken."""
    from qlm_kernel.data.samples import sample_data
    from qlm_kernel.indicators import crossed_above, crossed_below, sma
    from qlm_kernel.strategy import Signals
    from qlm_kernel.strategy.run import backtest

    started = time.perf_counter()
    frame = sample_data("synthetic", n=200, seed=0)
    close = frame["close"]
    fast, slow = sma(close, 5), sma(close, 20)
    entries, exits = np.asarray(crossed_above(fast, slow)), np.asarray(crossed_below(fast, slow))
    for settings in modes:
        if "portfolio" in settings:
            _compile_portfolio(settings["portfolio"], frame)
        elif "indicators" in settings:
            _compile_indicators(frame)
        else:
            backtest(Signals(entry_long=entries, exit_long=exits), frame, **settings)
    return time.perf_counter() - started


def _compile_indicators(frame: Any) -> None:
    """Each indicator on a tiny frame (and the optimizer's both-directions cross, under a memo)."""
    from qlm_kernel import indicators as ind
    from qlm_kernel.indicators.memo import memo_scope

    h, lo, c = frame["high"], frame["low"], frame["close"]
    for one in (ind.sma, ind.ema, ind.wma, ind.rolling_std, ind.highest, ind.lowest, ind.zscore):
        one(c, 5)
    for one in (ind.rsi, ind.roc, ind.bollinger, ind.macd):
        one(c)
    ind.true_range(h, lo, c)
    ind.atr(h, lo, c)
    ind.donchian(h, lo)
    ind.crossed_above(c, 100.0)
    ind.crossed_below(c, ind.sma(c, 5))
    with memo_scope():  # an optimizer's memo: the cross of both directions in one pass, and the checksum
        ind.crossed_above(c, ind.sma(c, 5))


def _compile_portfolio(kind: str, frame: Any) -> None:
    """A tiny two-symbol portfolio run: by signals (a strategy on each symbol) or by target weights."""
    import pandas as pd

    from qlm_kernel.data.universe import Universe
    from qlm_kernel.strategy.portfolio_run import backtest_portfolio
    from qlm_kernel.strategy.weights import TargetWeights

    universe = Universe("warmup", {"A": frame, "B": frame.iloc[::2]})
    if kind == "signals":
        backtest_portfolio("sma_cross", universe, fast=5, slow=20, size=0.5, size_type="percent")
    else:
        weights = pd.DataFrame({"A": [0.5], "B": [0.5]}, index=universe.index[:1])
        backtest_portfolio(TargetWeights(weights, rebalance="W"), universe)


def warm_engine(jobs: int | None = None) -> dict[str, Any]:
    """Compile (or load from the disk cache) every engine mode, ``jobs`` processes at once (default: the
    cores); returns ``{"modes", "processes", "seconds"}``."""
    every = (*MODES, *PORTFOLIO_MODES, INDICATORS)
    processes = max(1, min(int(jobs or os.cpu_count() or 1), len(MODES)))
    started = time.perf_counter()
    if processes == 1:
        compile_modes(list(every))
    else:
        import multiprocessing

        shares = [list(every[i::processes]) for i in range(processes)]
        context = multiprocessing.get_context("spawn")  # fresh interpreters: nothing inherited half-set-up
        with ProcessPoolExecutor(max_workers=processes, mp_context=context) as pool:
            list(pool.map(compile_modes, shares))
    return {"modes": len(MODES), "portfolio_modes": len(PORTFOLIO_MODES), "processes": processes,
            "seconds": time.perf_counter() - started}
