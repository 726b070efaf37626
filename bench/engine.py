"""Engine benchmark: qlm.backtest vs a bare Numba loop vs vectorbt, same arrays, one process.

Run: ``.venv/bin/python bench/engine.py [--bars 1000000] [--repeat 15]``. Prints medians after
warm-up and the ratios the foundation issue sets as floors: full engine <= 4x the bare loop,
>= 50x faster than vectorbt's ``from_signals(...).stats()``, and a second process that imports
QLM and runs its first backtest (Numba cache warm) in <= 3 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings

import numpy as np
from numba import njit

os.environ.setdefault("QLM_HOME", tempfile.mkdtemp(prefix="qlm-bench-"))  # recorded runs go here

import qlm_kernel as qlm
from qlm_kernel import indicators as ta
from qlm_kernel.engine import layout as L
from qlm_kernel.engine.kernels import run_column_lazy


@njit(nogil=True, cache=True)
def bare_loop(
    close: np.ndarray,
    entries: np.ndarray,
    exits: np.ndarray,
    init_cash: float,
    fees: float,
    equity: np.ndarray,
) -> float:
    """The same fills with nothing else: long-only, all cash, at the close, proportional fees."""
    cash = init_cash
    pos = 0.0
    for i in range(close.shape[0]):
        price = close[i]
        if pos == 0.0:
            if entries[i] and not exits[i]:
                pos = cash / (1.0 + fees) / price
                cash -= pos * price * (1.0 + fees)
        elif exits[i] and not entries[i]:
            cash += pos * price * (1.0 - fees)
            pos = 0.0
        equity[i] = cash + pos * price
    return cash + pos * close[-1]


def median_time(fn, repeat: int) -> float:
    fn()  # warm-up (compilation, caches)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def second_process_seconds() -> float:
    code = textwrap.dedent(
        """
        import time
        t = time.perf_counter()
        import qlm_kernel as qlm
        df = qlm.sample_data("synthetic", n=10_000, seed=1)
        res = qlm.backtest("sma_cross", df, fees=0.001)
        res.stats, res.trades
        print(time.perf_counter() - t)
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)  # warm the cache
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--skip-vectorbt", action="store_true")
    args = parser.parse_args()

    df = qlm.sample_data("synthetic", n=args.bars, seed=0)
    close = df["close"]
    fast, slow = ta.sma(close, 10), ta.sma(close, 50)
    entries = ta.crossed_above(fast, slow).to_numpy()
    exits = ta.crossed_below(fast, slow).to_numpy()
    signals = qlm.Signals(entry_long=entries, exit_long=exits)
    fees = 0.001
    c = close.to_numpy()
    equity = np.empty(len(c))

    res = qlm.backtest(signals, df, fees=fees, direction="long", record=False)
    check = bare_loop(c, entries, exits, 10_000.0, fees, equity)
    assert abs(check - res.stats["final_value"]) <= 1e-6 * abs(check), (check, res.stats["final_value"])

    def engine() -> None:
        r = qlm.backtest(signals, df, fees=fees, direction="long", record=False)
        r.stats  # noqa: B018 - the statistics Series is part of the measured work

    def full() -> None:
        r = qlm.backtest(signals, df, fees=fees, direction="long", record=False)
        r.stats, r.trades  # noqa: B018 - so is the pandas trades table here

    def recorded() -> None:
        r = qlm.backtest(signals, df, fees=fees, direction="long")  # run + version + events in the store
        r.stats, r.trades  # noqa: B018

    settings = qlm.engine.BacktestSettings(fees=fees, direction="long").pack()
    o, h, lo = (df[k].to_numpy() for k in ("open", "high", "low"))
    nan1 = np.array([np.nan])
    no_short = np.zeros(len(c), dtype=bool)
    trades = np.empty((int(entries.sum()) + 1, L.N_TRADE_FIELDS))
    acc = np.empty(L.N_STATS)

    def kernel_only() -> None:
        run_column_lazy(
            o, h, lo, c, entries, exits, no_short, no_short, nan1, nan1, nan1, settings, equity, trades, acc
        )

    t_bare = median_time(lambda: bare_loop(c, entries, exits, 10_000.0, fees, equity), args.repeat)
    t_kernel = median_time(kernel_only, args.repeat)
    t_engine = median_time(engine, args.repeat)
    t_full = median_time(full, args.repeat)
    t_recorded = median_time(recorded, max(3, args.repeat // 3))
    print(f"bars: {len(df):,}   trades: {res.stats['n_trades']:,}   (SMA 10/50 cross, fees {fees})")
    print(f"bare numba loop          {t_bare * 1e3:8.2f} ms   1.00x")
    print(f"qlm kernel (per-mode entry){t_kernel * 1e3:8.2f} ms   {t_kernel / t_bare:5.2f}x bare")
    print(
        f"qlm.backtest + res.stats {t_engine * 1e3:8.2f} ms   {t_engine / t_bare:5.2f}x bare   (target <= 4x)"
    )
    print(f"  + res.trades DataFrame   {t_full * 1e3:8.2f} ms   {t_full / t_bare:5.2f}x bare")
    print(f"  recorded in the store    {t_recorded * 1e3:8.2f} ms   (SQLite run row + events, fsync)")

    if not args.skip_vectorbt:
        import vectorbt as vbt

        def vectorbt_run() -> None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pf = vbt.Portfolio.from_signals(
                    close, entries, exits, fees=fees, init_cash=10_000.0, freq="1h"
                )
                pf.stats()

        t_vbt = median_time(vectorbt_run, max(3, args.repeat // 5))
        print(
            f"vectorbt from_signals+stats {t_vbt * 1e3:5.1f} ms   qlm is {t_vbt / t_full:5.1f}x faster"
            "   (target >= 50x)"
        )
    t_second = second_process_seconds()
    print(f"second process: import + first backtest {t_second:.2f} s   (target <= 3 s)")


if __name__ == "__main__":
    main()
