"""Portfolio benchmark: qlm.backtest_portfolio vs its grouped kernel vs a bare Numba loop vs vectorbt.

Run: ``.venv/bin/python bench/portfolio.py [--symbols 100] [--bars 100000] [--repeat 7] [--quick]``.
One synthetic universe (``sample_data("synthetic", seed=seed+j)`` per symbol, aligned by
``qlm.load_universe``), an SMA 10/50 cross per symbol (entries = crossed above, exits = crossed below,
computed once as wide boolean arrays outside every timed region), shared cash, ``size=0.05,
size_type="percent"`` (5% of the free cash per entry), ``fees=0.001``, long only, fills at the close.
Measured in this process, warm (one untimed run first), min and median of ``--repeat`` runs:

1. ``qlm.backtest_portfolio(Signals(wide frames), universe, ...)`` then ``res.stats``;
2. the grouped kernel alone (``engine.group_api.simulate_universe`` on the prepared wide arrays);
3. vectorbt 1.2 ``Portfolio.from_signals(..., cash_sharing=True, group_by=True, call_seq="auto",
   lock_cash=True)`` plus ``.stats()`` (and ``.final_value()`` alone);
4. a bare Numba loop of the same rule (the speed reference): shared cash, percent-of-cash sizing,
   fees, sells before buys within a bar, mark to market every bar, equity array out.

It checks QLM's final value against vectorbt's and the bare loop's (and the equity curves), measures
the QLM run's peak extra memory with tracemalloc against the bytes of its inputs (the universe's OHLC
arrays and the signal arrays), and shows that a 500-symbol x 1,000,000-bar universe is refused by
``check_memory`` before anything is allocated. Targets (issue): end to end >= 50x faster than
vectorbt, <= 4x the bare loop, peak extra memory <= 2x the inputs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import tracemalloc
import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd
from numba import njit

os.environ.setdefault("QLM_HOME", tempfile.mkdtemp(prefix="qlm-bench-"))  # nothing should land here
os.environ.setdefault("QLM_RECORD_RUNS", "0")

import qlm_kernel as qlm
from qlm_kernel import indicators as ta
from qlm_kernel.data.memory import check_memory
from qlm_kernel.data.universe import wide_bytes
from qlm_kernel.engine import layout as L
from qlm_kernel.engine.group_api import simulate_universe
from qlm_kernel.engine.group_kernels import N_GX, simulate_group
from qlm_kernel.engine.group_signals import encode_signals
from qlm_kernel.engine.kernels import column_mode
from qlm_kernel.engine.portfolio_result import PortfolioResult
from qlm_kernel.engine.settings import BacktestSettings
from qlm_kernel.errors import QLMError
from qlm_kernel.strategy.portfolio_run import portfolio_signals

INIT_CASH = 10_000.0
SIZE = 0.05
FEES = 0.001
FAST, SLOW = 10, 50
REFUSED = (500, 1_000_000)  # symbols x bars that must be refused before allocating


@njit(nogil=True, cache=True)
def bare_loop(
    close: np.ndarray,
    entries: np.ndarray,
    exits: np.ndarray,
    init_cash: float,
    size: float,
    fees: float,
    equity: np.ndarray,
) -> float:
    """The same rule with nothing else: (bars x symbols) arrays, one cash balance, long only at the
    close. In one pass over a bar's symbols the exits sell (all units, less fees) and the entries are
    queued; then the queued entries buy in symbol order, each spending ``size`` x the cash left (fees
    included); equity = cash + positions at the close. Signals are tested first (they are rare), so
    the common cell is a load, a multiply and an add without a branch on the position."""
    n, m = close.shape
    pos = np.zeros(m)
    buys = np.empty(m, dtype=np.int64)
    cash = init_cash
    for i in range(n):
        held = 0.0
        nb = 0
        for j in range(m):
            e = entries[i, j]
            if e != exits[i, j]:  # exactly one of the two signals
                if not e:
                    if pos[j] > 0.0:
                        cash += pos[j] * close[i, j] * (1.0 - fees)
                        pos[j] = 0.0
                elif pos[j] == 0.0:
                    buys[nb] = j
                    nb += 1
            held += pos[j] * close[i, j]
        for b in range(nb):
            j = buys[b]
            units = size * cash / (1.0 + fees) / close[i, j]
            pos[j] = units
            cash -= units * close[i, j] * (1.0 + fees)
            held += units * close[i, j]
        equity[i] = cash + held
    return equity[n - 1]


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """(min, median) seconds of ``repeat`` runs after one untimed warm-up run."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def build(symbols: int, bars: int, seed: int) -> tuple[qlm.Universe, np.ndarray, np.ndarray]:
    """The universe and its wide (bars x symbols, C order) entry and exit arrays."""
    frames = {f"S{j:03d}": qlm.sample_data("synthetic", n=bars, seed=seed + j) for j in range(symbols)}
    universe = qlm.load_universe(frames, name="bench")
    del frames
    n, m = universe.close.shape
    entries = np.zeros((n, m), dtype=bool)
    exits = np.zeros((n, m), dtype=bool)
    for j in range(m):
        c = np.ascontiguousarray(universe.close[:, j])
        fast, slow = ta.sma(c, FAST), ta.sma(c, SLOW)
        entries[:, j] = ta.crossed_above(fast, slow)
        exits[:, j] = ta.crossed_below(fast, slow)
    return universe, entries, exits


def peak_extra_bytes(fn: Callable[[], object]) -> int:
    """Peak bytes allocated (tracemalloc: Python objects and numpy buffers) while ``fn`` runs, above
    what was allocated before it."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        fn()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def raw_kernel(
    universe: qlm.Universe, arrays: tuple[np.ndarray | None, ...], settings: BacktestSettings
) -> Callable[[], int]:
    """`simulate_group` alone on preallocated outputs and signals already encoded (what
    `simulate_universe` wraps)."""
    n = universe.close.shape[0]
    el, xl, es, xs, sl_a, tp_a, tsl_a = arrays
    cfg = settings.pack()
    codes, words, entries, short_entries = encode_signals(el, xl, es, xs)
    mode = column_mode(cfg, sl_a.ravel(), tp_a.ravel(), tsl_a.ravel(), np.array([short_entries > 0]))
    out = (
        np.empty(n),
        np.empty((entries + 1, L.N_TRADE_FIELDS)),
        np.empty(entries + 1, dtype=np.int64),
        np.empty(L.N_STATS),
        np.zeros(N_GX),
    )
    u = universe
    return lambda: simulate_group(
        u.open,
        u.high,
        u.low,
        u.close,
        u.valuation_close,
        u.has_bar,
        codes,
        words,
        sl_a,
        tp_a,
        tsl_a,
        cfg,
        *out,
        *mode,
    )


def rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-300)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--bars", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="smoke size: 10 symbols x 5,000 bars, 3 runs")
    parser.add_argument("--skip-vectorbt", action="store_true")
    parser.add_argument("--no-breakdown", action="store_true", help="skip the per-stage timings")
    args = parser.parse_args()
    if args.quick:
        args.symbols, args.bars, args.repeat = 10, 5_000, 3

    t0 = time.perf_counter()
    universe, entries, exits = build(args.symbols, args.bars, args.seed)
    n, m = universe.close.shape
    cols = list(universe.symbols)
    signals = qlm.Signals(
        entry_long=pd.DataFrame(entries, index=universe.index, columns=cols),
        exit_long=pd.DataFrame(exits, index=universe.index, columns=cols),
    )
    kwargs = {"size": SIZE, "size_type": "percent", "fees": FEES, "init_cash": INIT_CASH, "direction": "long"}
    print(
        f"universe: {m} symbols x {n:,} bars (built in {time.perf_counter() - t0:.1f} s, untimed); "
        f"SMA {FAST}/{SLOW} cross per symbol, {int(entries.sum()):,} entry and {int(exits.sum()):,} exit "
        f"signals; shared cash {INIT_CASH:,.0f}, size {SIZE} percent, fees {FEES}, long, at the close"
    )

    # 1) QLM end to end
    def qlm_run() -> qlm.engine.PortfolioResult:
        res = qlm.backtest_portfolio(signals, universe, **kwargs)
        res.stats  # noqa: B018 - the statistics Series is part of the measured work
        return res

    res = qlm_run()
    qlm_final = float(res.stats["final_value"])
    t_qlm = timed(qlm_run, args.repeat)

    # 2) the grouped kernel alone, on arrays prepared once (in the frames' memory order, no short fields)
    settings = BacktestSettings(**kwargs)
    el_f = np.asfortranarray(entries)
    xl_f = np.asfortranarray(exits)
    nan11 = np.full((1, 1), np.nan)
    no_stops = (nan11, nan11, nan11)
    kernel_final = simulate_universe(universe, el_f, xl_f, None, None, *no_stops, settings)[0][-1]
    t_kernel = timed(lambda: simulate_universe(universe, el_f, xl_f, None, None, *no_stops, settings),
                     args.repeat)

    # 4) the bare loop (on C-ordered signals: the order its loop reads)
    equity = np.empty(n)
    close = universe.close
    bare_final = bare_loop(close, entries, exits, INIT_CASH, SIZE, FEES, equity)
    bare_equity = equity.copy()
    t_bare = timed(lambda: bare_loop(close, entries, exits, INIT_CASH, SIZE, FEES, equity), args.repeat)

    # 6) peak memory of one end-to-end run against its inputs
    ohlc = sum(getattr(universe, k).nbytes for k in ("open", "high", "low", "close"))
    inputs = ohlc + entries.nbytes + exits.nbytes
    peak = peak_extra_bytes(qlm_run)

    # where the end-to-end time goes (each stage alone, min of a few runs) and the tables after it;
    # measured before vectorbt runs (its allocations would slow what follows)
    breakdown: list[tuple[str, float]] = []
    if not args.no_breakdown:
        prepared = portfolio_signals(signals, universe, settings, {})[0]
        out = simulate_universe(universe, *prepared, settings)

        def result() -> PortfolioResult:
            eq, trades, trade_cols, acc = out
            return PortfolioResult(
                data=universe,
                settings=settings,
                params={},
                strategy_name="Signals",
                equity=eq,
                trade_records=trades,
                accumulators=acc,
                trade_columns=trade_cols,
                meta={},
            )

        stages = [
            (
                "wide Signals -> kernel arrays (portfolio_signals)",
                lambda: portfolio_signals(signals, universe, settings, {}),
                3,
            ),
            (
                "encode + grouped kernel + trade stats (simulate_universe)",
                lambda: simulate_universe(universe, *prepared, settings),
                3,
            ),
            ("  of which the Numba loop (simulate_group)", raw_kernel(universe, prepared, settings), 3),
            ("PortfolioResult + res.stats", lambda: result().stats, 3),
            ("  of which the benchmark index (res._close)", lambda: result()._close, 3),
            ("res.trades table (after the run, not in e2e)", lambda: result().trades, 3),
            ("res.orders table (after the run, not in e2e)", lambda: result().orders, 3),
            ("res.symbol_stats (after the run, not in e2e)", lambda: result().symbol_stats, 1),
        ]
        breakdown = [(label, timed(fn, reps)[0]) for label, fn, reps in stages]

    # 3) vectorbt
    t_vbt = t_vbt_final = None
    vbt_final = None
    if not args.skip_vectorbt:
        import vectorbt as vbt

        close_df = pd.DataFrame(close, index=universe.index, columns=cols)
        entries_df, exits_df = signals.entry_long, signals.exit_long

        def vbt_portfolio() -> object:
            return vbt.Portfolio.from_signals(
                close_df,
                entries_df,
                exits_df,
                size=SIZE,
                size_type="percent",
                fees=FEES,
                init_cash=INIT_CASH,
                cash_sharing=True,
                group_by=True,
                call_seq="auto",
                lock_cash=True,
                freq="1h",
            )

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pf = vbt_portfolio()
            vbt_final = float(pf.final_value())
            vbt_equity = pf.value().to_numpy()
            vbt_repeat = max(3, args.repeat // 2)
            t_vbt = timed(lambda: vbt_portfolio().stats(), vbt_repeat)
            t_vbt_final = timed(lambda: vbt_portfolio().final_value(), vbt_repeat)

    # 5) agreement
    qlm_equity = res.equity.to_numpy()
    print(
        f"trades: {int(res.stats['n_trades']):,}   final value: qlm {qlm_final:,.6f}   "
        f"kernel {kernel_final:,.6f}"
        f"   bare {bare_final:,.6f}" + (f"   vectorbt {vbt_final:,.6f}" if vbt_final is not None else "")
    )
    print(
        f"  qlm vs bare loop: final {rel(qlm_final, bare_final):.1e} rel, equity curve max "
        f"{np.max(np.abs(qlm_equity - bare_equity) / np.abs(bare_equity)):.1e} rel"
    )
    if vbt_final is not None:
        print(
            f"  qlm vs vectorbt:  final {rel(qlm_final, vbt_final):.1e} rel, equity curve max "
            f"{np.max(np.abs(qlm_equity - vbt_equity) / np.abs(vbt_equity)):.1e} rel   (should be ~1e-9)"
        )

    # 7) the table and the ratios
    def row(label: str, t: tuple[float, float], note: str = "") -> None:
        print(f"{label:<40}{t[0] * 1e3:10.2f}{t[1] * 1e3:10.2f}   {t[1] / t_bare[1]:7.2f}x   {note}")

    print(f"\n{'(ms, warm)':<40}{'min':>10}{'median':>10}   {'vs bare':>8}")
    row("bare numba loop", t_bare)
    row("qlm grouped kernel (simulate_universe)", t_kernel)
    row("qlm.backtest_portfolio + res.stats", t_qlm, "(target <= 4x bare)")
    if t_vbt is not None and t_vbt_final is not None:
        row("vectorbt from_signals + final_value()", t_vbt_final)
        row("vectorbt from_signals + stats()", t_vbt)
    print(
        f"\nqlm end to end / bare loop: {t_qlm[1] / t_bare[1]:.2f}x (target <= 4x)   "
        f"kernel / bare loop: {t_kernel[1] / t_bare[1]:.2f}x   "
        f"kernel share of qlm: {t_kernel[1] / t_qlm[1]:.0%}"
    )
    if t_vbt is not None and t_vbt_final is not None:
        print(
            f"qlm is {t_vbt[1] / t_qlm[1]:.1f}x faster than vectorbt from_signals + stats() "
            f"(target >= 50x); {t_vbt_final[1] / t_qlm[1]:.1f}x vs from_signals + final_value()"
        )
    print(
        f"peak extra memory of one qlm run (tracemalloc): {peak / 2**20:,.1f} MiB = {peak / inputs:.2f}x "
        f"the inputs ({ohlc / 2**20:,.1f} MiB OHLC + {(entries.nbytes + exits.nbytes) / 2**20:,.1f} MiB "
        f"signals)   (target <= 2x)"
    )

    if breakdown:
        print("\nbreakdown of the qlm run (ms, min; each stage alone):")
        for label, t in breakdown:
            print(f"  {label:<52}{t * 1e3:9.1f}")
    # the memory guard: refused before allocating, never built
    big_m, big_n = REFUSED
    try:
        check_memory(wide_bytes(big_n, big_m), what=f"universe 'big' ({big_n:,} bars x {big_m} symbols)")
    except QLMError as exc:
        print(f"{big_m} symbols x {big_n:,} bars refused before allocating: {exc}")
    else:
        print(
            f"{big_m} symbols x {big_n:,} bars NOT refused: {wide_bytes(big_n, big_m) / 2**30:.1f} GiB fits "
            "this machine's memory budget"
        )


if __name__ == "__main__":
    main()
