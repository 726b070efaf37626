"""Numba kernels: the bar-by-bar event loop, signal handling, fills, stops and trade bookkeeping.

Arrays in, arrays out; no Python objects, so ``nogil=True`` lets threads run columns in parallel.
``simulate_column`` runs one column (one parameter set / one asset), compiled once per mode
(`MODE_ENTRIES`); the optimizer runs columns on threads. Portfolios drive the same order helpers
(`decide_target`, `open_position`, `close_position`, `stop_level`) over a group of columns sharing
cash in `group_kernels.simulate_group`.

Semantics (documented in docs/concepts.md):
- signals: entry+exit of one side on the same bar cancel; a long entry and a short entry on the same
  bar cancel; an opposite entry while in a position reverses it (two orders: close, then open);
  repeated entries in the held direction are ignored (no pyramiding).
- fills: ``fill=close`` fills at the signal bar's close; ``fill=next_open`` at the next bar's open.
- costs: slippage moves the fill price against the trader; fees = |units| * fill price * fees
  + fixed_fees per order.
- stops (fractions of the unslipped entry price, sampled at the signal bar) are checked intrabar on
  high/low from the bar after a close fill, or from the fill bar itself for next-open fills:
  the protective stop (stop-loss / trailing, whichever is tighter) is checked before take-profit
  (pessimistic rule); a bar opening beyond a level fills at the open (gap-through); stop exits pay
  slippage and fees. The trailing reference is the best high (long) / low (short) of the bars
  *before* the current one, starting at the entry price. With ``fill=close`` a bar with a stop exit
  ignores that bar's signals.
- margin: buying power is ``leverage`` x cash at entry. A position is liquidated when a bar's price
  reaches the level where the account's net liquidation value (cash + position at that price, less
  the exit's slippage and fees) falls to ``maintenance_margin`` x the position's value; it fills at
  that level (at the open when the bar gaps through it) with costs, checked with the stops on the
  same bars (a protective stop strictly nearer the open fills first; a take-profit never does), and
  the run trades no more: later bars carry the equity left (negative only after a gap: a debt).
"""

from __future__ import annotations

import numpy as np
from numba import literally, njit

from qlm_kernel.arrays import read_only
from qlm_kernel.engine.layout import (
    CFG_CLOSE_AT_END,
    CFG_DIRECTION,
    CFG_FEES,
    CFG_FILL,
    CFG_FIXED_FEES,
    CFG_INIT_CASH,
    CFG_INTEGER,
    CFG_LEVERAGE,
    CFG_MAINTENANCE,
    CFG_SIZE,
    CFG_SIZE_TYPE,
    CFG_SLIPPAGE,
    DIR_LONG,
    DIR_SHORT,
    EXIT_END,
    EXIT_LIQUIDATION,
    EXIT_OPEN,
    EXIT_REVERSAL,
    EXIT_SIGNAL,
    EXIT_STOP_LOSS,
    EXIT_TAKE_PROFIT,
    EXIT_TRAILING_STOP,
    FILL_CLOSE,
    SIZE_PERCENT,
    SIZE_UNITS,
    ST_BAD_PRICE_BAR,
    ST_BEST_TRADE,
    ST_EXPOSURE_BARS,
    ST_FEES,
    ST_FINAL_CASH,
    ST_FINAL_POSITION,
    ST_FINAL_VALUE,
    ST_GROSS_LOSS,
    ST_GROSS_PROFIT,
    ST_LIQUIDATION_BAR,
    ST_MAX_DD,
    ST_MAX_DD_BARS,
    ST_N_CLOSED,
    ST_N_LONG,
    ST_N_ORDERS,
    ST_N_R,
    ST_N_REJECTED,
    ST_N_SHORT,
    ST_N_TRADES,
    ST_N_WINS,
    ST_SUM_DOWN2,
    ST_SUM_R,
    ST_SUM_R2,
    ST_SUM_TRADE_RET,
    ST_WORST_TRADE,
    TR_ENTRY_BAR,
    TR_ENTRY_FEES,
    TR_ENTRY_PRICE,
    TR_EXIT_BAR,
    TR_EXIT_FEES,
    TR_EXIT_PRICE,
    TR_EXIT_REASON,
    TR_PNL,
    TR_RETURN,
    TR_SIZE,
)

NO_CHANGE = 2  # "target position" meaning: keep what we hold

NO_INTRABAR = 0  # intrabar checks a column needs (a compile-time literal of `simulate_column`)
LIQUIDATION = 1
STOPS = 2  # stops and liquidation


@njit(nogil=True, cache=True, error_model="numpy")
def decide_target(pos: float, el: bool, xl: bool, es: bool, xs: bool, direction: int) -> int:
    """Target position sign (+1, 0, -1) from this bar's signals, or NO_CHANGE."""
    if direction == DIR_LONG:
        es = False
        xs = False
    elif direction == DIR_SHORT:
        el = False
        xl = False
    if el and xl:
        el = False
        xl = False
    if es and xs:
        es = False
        xs = False
    if el and es:
        el = False
        es = False
    if pos == 0.0:
        if el:
            return 1
        if es:
            return -1
        return NO_CHANGE
    if pos > 0.0:
        if es:
            return -1
        if xl:
            return 0
        return NO_CHANGE
    if el:
        return 1
    if xs:
        return 0
    return NO_CHANGE


# The leaf helpers below (entry_units, exit_fill, liquidation_level, pick) are ordinary calls that LLVM
# inlines: inlining them at Numba IR level too ("always") cost a third of the cold compile of the twelve
# modes (47 s -> 32 s of CPU without) for no run-time difference (bench/engine.py, bench/portfolio.py).
# The position helpers (open/close_position, stop_level) stay IR-inlined: the grouped kernel runs about
# 10% slower without that.
@njit(nogil=True, cache=True, error_model="numpy")
def entry_units(sign: int, price: float, cash: float, cfg: np.ndarray) -> tuple[float, float, float]:
    """Units, slipped fill price and fee for a new position; units == 0 means refused.

    Buying power is ``cash`` x leverage; a debt (cash <= 0) buys nothing."""
    cash = cash * cfg[CFG_LEVERAGE]
    slip = cfg[CFG_SLIPPAGE]
    fees = cfg[CFG_FEES]
    fixed = cfg[CFG_FIXED_FEES]
    adj = price * (1.0 + slip * sign)
    size = cfg[CFG_SIZE]
    size_type = int(cfg[CFG_SIZE_TYPE])
    if np.isnan(size):
        units = ((cash - fixed) / (1.0 + fees)) / adj
    elif size_type == SIZE_PERCENT:
        units = ((size * cash - fixed) / (1.0 + fees)) / adj
    else:
        units = size if size_type == SIZE_UNITS else size / price
        affordable = ((cash - fixed) / (1.0 + fees)) / adj
        if units > affordable:
            units = affordable
    if cfg[CFG_INTEGER] != 0.0:
        units = np.floor(units)
    if not units > 0.0:
        return 0.0, adj, 0.0
    return units, adj, units * adj * fees + fixed


@njit(nogil=True, cache=True, error_model="numpy")
def exit_fill(pos: float, price: float, cfg: np.ndarray) -> tuple[float, float]:
    """Slipped fill price and fee for closing ``pos`` at ``price``."""
    slip = cfg[CFG_SLIPPAGE]
    adj = price * (1.0 - slip * ((pos > 0.0) - (pos < 0.0)))
    return adj, abs(pos) * adj * cfg[CFG_FEES] + cfg[CFG_FIXED_FEES]


@njit(nogil=True, cache=True, error_model="numpy")
def liquidation_level(pos: float, cash: float, price: float, cfg: np.ndarray) -> float:
    """The price at which ``pos`` with ``cash`` is liquidated: net liquidation value (after the exit's
    slippage and fees) equals maintenance_margin x the position's value. A long whose level is below
    a billionth of its entry ``price`` can never be liquidated (0 is returned: an all-cash entry
    leaves cash of +-1e-13, not a level worth a check a bar); a short always has a level."""
    slip = cfg[CFG_SLIPPAGE]
    fees = cfg[CFG_FEES]
    fixed = cfg[CFG_FIXED_FEES]
    maintenance = cfg[CFG_MAINTENANCE]
    units = abs(pos)
    if pos > 0.0:
        per_unit = (1.0 - slip) * (1.0 - fees) - maintenance  # value kept per unit of price
        if per_unit <= 0.0:
            return np.inf
        level = (fixed - cash) / (units * per_unit)
        return level if level > 1e-9 * price else 0.0
    return (cash - fixed) / (units * ((1.0 + slip) * (1.0 + fees) + maintenance))


# entry state slots: a small array the rare paths share; position and cash stay in registers
PS_ENTRY_BAR = 0
PS_ENTRY_PRICE = 1  # slipped fill price
PS_ENTRY_FEES = 2
PS_REF = 3  # unslipped fill price: the stops' reference
PS_TRAIL = 4  # best high (long) / low (short) before the current bar
PS_SL = 5
PS_TP = 6
PS_TSL = 7
N_PS = 8


@njit(nogil=True, cache=True, error_model="numpy", inline="always")
def close_position(
    ps: np.ndarray,
    trades: np.ndarray,
    k: int,
    cfg: np.ndarray,
    pos: float,
    price: float,
    bar: int,
    reason: int,
) -> float:
    """Record trade ``k`` as the exit of ``pos`` at ``price`` (slippage, fees); return the cash change."""
    if reason == EXIT_OPEN:  # still open: marked at the raw price, no exit costs yet
        adj, fee = price, 0.0
    else:
        adj, fee = exit_fill(pos, price, cfg)
    if k < trades.shape[0]:
        trades[k, TR_ENTRY_BAR] = ps[PS_ENTRY_BAR]
        trades[k, TR_EXIT_BAR] = bar
        trades[k, TR_ENTRY_PRICE] = ps[PS_ENTRY_PRICE]
        trades[k, TR_EXIT_PRICE] = adj
        trades[k, TR_SIZE] = pos
        trades[k, TR_ENTRY_FEES] = ps[PS_ENTRY_FEES]
        trades[k, TR_EXIT_FEES] = fee
        trades[k, TR_EXIT_REASON] = reason
    return adj * pos - fee


@njit(nogil=True, cache=True, error_model="numpy", inline="always")
def open_position(
    ps: np.ndarray,
    cfg: np.ndarray,
    target: int,
    price: float,
    cash: float,
    bar: int,
    signal_bar: int,
    sl_a: np.ndarray,
    tp_a: np.ndarray,
    tsl_a: np.ndarray,
) -> tuple[float, float]:
    """Open a ``target`` (+1/-1) position at ``price``; return (signed units, cost). Units 0 = refused.

    Stop fractions are sampled at ``signal_bar`` (the bar whose data decided the trade).
    """
    units, adj, fee = entry_units(target, price, cash, cfg)
    if units == 0.0:
        return 0.0, 0.0
    pos = units * target
    ps[PS_ENTRY_BAR] = bar
    ps[PS_ENTRY_PRICE] = adj
    ps[PS_ENTRY_FEES] = fee
    ps[PS_REF] = price
    ps[PS_TRAIL] = price
    ps[PS_SL] = pick(sl_a, signal_bar)
    ps[PS_TP] = pick(tp_a, signal_bar)
    ps[PS_TSL] = pick(tsl_a, signal_bar)
    return pos, adj * pos + fee


@njit(nogil=True, cache=True, error_model="numpy", inline="always")
def stop_level(ps: np.ndarray, pos: float, oi: float, hi: float, li: float) -> tuple[float, int]:
    """Intrabar stop check for ``pos``: (fill price, exit reason), or (NaN, -1) when nothing is hit.

    Updates the trailing reference with this bar's extreme *after* the check.
    """
    ref = ps[PS_REF]
    trail = ps[PS_TRAIL]
    sl = ps[PS_SL]
    tp = ps[PS_TP]
    tsl = ps[PS_TSL]
    level = np.nan
    reason = -1
    if pos > 0.0:
        stop = ref * (1.0 - sl) if not np.isnan(sl) else -1.0
        tstop = trail * (1.0 - tsl) if not np.isnan(tsl) else -1.0
        prot = max(stop, tstop)
        if prot > 0.0:
            if oi <= prot:
                level = oi
            elif li <= prot:
                level = prot
            reason = EXIT_STOP_LOSS if stop >= tstop else EXIT_TRAILING_STOP
        if np.isnan(level) and not np.isnan(tp):
            take = ref * (1.0 + tp)
            if oi >= take:
                level = oi
            elif hi >= take:
                level = take
            reason = EXIT_TAKE_PROFIT
        ps[PS_TRAIL] = max(trail, hi)
    else:
        stop = ref * (1.0 + sl) if not np.isnan(sl) else np.inf
        tstop = trail * (1.0 + tsl) if not np.isnan(tsl) else np.inf
        prot = min(stop, tstop)
        if prot < np.inf:
            if oi >= prot:
                level = oi
            elif hi >= prot:
                level = prot
            reason = EXIT_STOP_LOSS if stop <= tstop else EXIT_TRAILING_STOP
        if np.isnan(level) and not np.isnan(tp):
            take = ref * (1.0 - tp)
            if oi <= take:
                level = oi
            elif li <= take:
                level = take
            reason = EXIT_TAKE_PROFIT
        ps[PS_TRAIL] = min(trail, li)
    return level, reason


@njit(nogil=True, cache=True, error_model="numpy")
def pick(a: np.ndarray, i: int) -> float:
    """Flexible per-bar lookup: a length-1 array broadcasts over all bars."""
    return a[0] if a.shape[0] == 1 else a[i]


@njit(nogil=True, cache=True, error_model="numpy")
def simulate_column(
    o: np.ndarray,
    h: np.ndarray,
    lo: np.ndarray,
    c: np.ndarray,
    el: np.ndarray,
    xl: np.ndarray,
    es: np.ndarray,
    xs: np.ndarray,
    sl_a: np.ndarray,
    tp_a: np.ndarray,
    tsl_a: np.ndarray,
    cfg: np.ndarray,
    equity: np.ndarray,
    trades: np.ndarray,
    stats: np.ndarray,
    fill_close: bool,
    intrabar: int,
    close_at_end: bool,
) -> int:
    """Simulate one column: fills ``equity`` (if length n), ``trades`` rows and the bar statistics.

    ``intrabar`` says which intrabar checks on high/low the column needs: `NO_INTRABAR` (an all-cash
    long: nothing can stop or liquidate it), `LIQUIDATION` (a short or a margin account), `STOPS`
    (stops, and liquidations). ``fill_close``, ``intrabar`` and ``close_at_end`` are compile-time
    literals (one machine-code
    specialization each): code for a mode that is off is removed, which keeps the hot loop's
    values in registers (a never-taken branch still cost ~1 ns a bar in register spills).

    ``trades`` needs one row per entry signal (plus one) to hold every trade; the trade columns
    pnl/return and the trade statistics are filled afterwards by ``finish_trades``. Returns the
    number of trades. ``stats[ST_BAD_PRICE_BAR]`` is the first bar whose close (or needed open) is
    not finite and positive -- the run stops there -- else -1.
    """
    literally(fill_close)
    literally(intrabar)
    literally(close_at_end)
    n = c.shape[0]
    direction = int(cfg[CFG_DIRECTION])
    record_equity = equity.shape[0] == n
    init_cash = cfg[CFG_INIT_CASH]
    ps = np.zeros(N_PS)
    ps[PS_ENTRY_BAR] = -1
    pos = 0.0
    cash = init_cash
    k = 0  # trades recorded
    n_rejected = 0
    pending = NO_CHANGE  # next-open mode: the target decided at the previous close
    pending_bar = -1
    liq = 0.0  # liquidation level of the position held
    liq_on = False  # False for a long that no price can liquidate (skips the low's load)
    liq_bar = -1

    sum_r = 0.0
    sum_r2 = 0.0
    sum_down2 = 0.0
    peak = init_cash  # running maximum of equity
    trough = init_cash  # lowest equity since that peak (divide only when a new peak closes it)
    max_dd = 0.0
    peak_bar = -1  # bar of the running peak (-1: the initial cash)
    max_dd_bars = 0
    prev_eq = init_cash
    bad_bar = -1

    for i in range(n):
        ci = c[i]
        if not ci > 0.0:  # NaN or non-positive; infinities are the data layer's to refuse
            bad_bar = i
            break
        # 1) next-open mode: execute the order decided at the previous close
        if not fill_close and pending != NO_CHANGE:
            oi = o[i]
            if not oi > 0.0:
                bad_bar = i
                break
            if pos != 0.0:
                reason = EXIT_REVERSAL if pending != 0 else EXIT_SIGNAL
                cash += close_position(ps, trades, k, cfg, pos, oi, i, reason)
                k += 1
                pos = 0.0
            if pending != 0:
                pos, cost = open_position(ps, cfg, pending, oi, cash, i, pending_bar, sl_a, tp_a, tsl_a)
                cash -= cost
                n_rejected += pos == 0.0
                liq = liquidation_level(pos, cash, oi, cfg)
                liq_on = pos < 0.0 or liq > 0.0
            pending = NO_CHANGE
        # 2) intrabar: liquidation and stops on the position held
        stopped = False
        if intrabar != NO_INTRABAR and pos != 0.0 and (ps[PS_ENTRY_BAR] < i or not fill_close):
            liq_fill = np.nan
            if liq_on:
                if pos > 0.0:
                    if lo[i] <= liq:
                        liq_fill = min(o[i], liq)
                elif h[i] >= liq:
                    liq_fill = max(o[i], liq)
            if intrabar == STOPS:
                level, reason = stop_level(ps, pos, o[i], h[i], lo[i])
                if reason >= 0 and not np.isnan(level) and (
                    np.isnan(liq_fill) or (reason != EXIT_TAKE_PROFIT and (level - liq_fill) * pos > 0.0)
                ):
                    cash += close_position(ps, trades, k, cfg, pos, level, i, reason)
                    k += 1
                    pos = 0.0
                    stopped = True
            if pos != 0.0 and not np.isnan(liq_fill):
                cash += close_position(ps, trades, k, cfg, pos, liq_fill, i, EXIT_LIQUIDATION)
                k += 1
                pos = 0.0
                stopped = True
                liq_bar = i
        # 3) this bar's signals: act at the close, or queue for the next open. (Branches beat a
        #    lookup table here: the table's load sits on the loop-carried position chain.)
        target = NO_CHANGE
        if el[i] | xl[i] | es[i] | xs[i]:  # most bars carry no signal (bitwise: one branch)
            target = decide_target(pos, el[i], xl[i], es[i], xs[i], direction)
        if target != NO_CHANGE:
            if not fill_close:
                if i < n - 1:
                    pending = target
                    pending_bar = i
            elif not stopped:
                if pos != 0.0:
                    reason = EXIT_REVERSAL if target != 0 else EXIT_SIGNAL
                    cash += close_position(ps, trades, k, cfg, pos, ci, i, reason)
                    k += 1
                    pos = 0.0
                if target != 0:
                    pos, cost = open_position(ps, cfg, target, ci, cash, i, i, sl_a, tp_a, tsl_a)
                    cash -= cost
                    n_rejected += pos == 0.0
                    liq = liquidation_level(pos, cash, ci, cfg)
                    liq_on = pos < 0.0 or liq > 0.0
        # 4) optionally close what is left at the last close
        if close_at_end and i == n - 1 and pos != 0.0:
            cash += close_position(ps, trades, k, cfg, pos, ci, i, EXIT_END)
            k += 1
            pos = 0.0
        # 5) mark to market and accumulate the bar statistics
        eq = cash + pos * ci
        if eq != prev_eq and prev_eq > 0.0:
            r = eq / prev_eq - 1.0
            sum_r += r
            sum_r2 += r * r
            down = min(r, 0.0)  # branch-free: a coin-flip branch here costs ~3 ns a bar
            sum_down2 += down * down
        if eq >= peak:
            if trough < peak:  # a drawdown just ended: its depth and length
                max_dd = min(max_dd, trough / peak - 1.0)
                max_dd_bars = max(max_dd_bars, i - peak_bar - 1)
            peak = eq
            trough = eq
            peak_bar = i
        else:
            trough = min(trough, eq)
        if record_equity:
            equity[i] = eq
        prev_eq = eq
        if liq_bar >= 0:  # liquidated: nothing trades any more, the equity left stays
            if record_equity:
                equity[i + 1:] = eq
            break

    # an open position at the end is reported as an open trade marked at the last close
    if pos != 0.0 and bad_bar < 0:
        close_position(ps, trades, k, cfg, pos, c[n - 1], -1, EXIT_OPEN)
        k += 1

    stats[:] = 0.0
    stats[ST_N_TRADES] = k
    stats[ST_N_REJECTED] = n_rejected
    stats[ST_FINAL_VALUE] = prev_eq
    stats[ST_MAX_DD] = max(min(max_dd, trough / peak - 1.0), -1.0)  # a debt is not a deeper drawdown
    stats[ST_SUM_R] = sum_r
    stats[ST_SUM_R2] = sum_r2
    stats[ST_SUM_DOWN2] = sum_down2
    last = n - 1 if bad_bar < 0 else bad_bar - 1
    if liq_bar >= 0:  # returns end at the liquidation: the dead account's flat bars are not returns
        last = liq_bar
    # one return a bar for bars 0..last, the first against the initial cash (equity stays positive
    # before a liquidation, and a liquidation ends the loop: every one of them is defined)
    stats[ST_N_R] = max(last + 1, 0)
    if trough < peak:  # still in a drawdown at the end
        max_dd_bars = max(max_dd_bars, last - peak_bar)
    stats[ST_MAX_DD_BARS] = max_dd_bars
    stats[ST_FINAL_POSITION] = pos
    stats[ST_FINAL_CASH] = cash
    stats[ST_BAD_PRICE_BAR] = bad_bar
    stats[ST_LIQUIDATION_BAR] = liq_bar
    return k


@njit(nogil=True, cache=True, error_model="numpy")
def finish_trades(trades: np.ndarray, k: int, stats: np.ndarray, n_bars: int) -> None:
    """Fill each trade's pnl and return, and the trade statistics, from the first ``k`` records."""
    n_closed = 0
    n_wins = 0
    gross_profit = 0.0
    gross_loss = 0.0
    sum_ret = 0.0
    best = -np.inf
    worst = np.inf
    fees = 0.0
    n_long = 0
    held = 0.0  # bars closing with a position: exit_bar - entry_bar (to the end for an open trade)
    for j in range(k):
        pos = trades[j, TR_SIZE]
        entry_price = trades[j, TR_ENTRY_PRICE]
        pnl = (trades[j, TR_EXIT_PRICE] - entry_price) * pos - trades[j, TR_ENTRY_FEES]
        pnl -= trades[j, TR_EXIT_FEES]
        ret = pnl / (abs(pos) * entry_price)
        trades[j, TR_PNL] = pnl
        trades[j, TR_RETURN] = ret
        fees += trades[j, TR_ENTRY_FEES] + trades[j, TR_EXIT_FEES]
        n_long += pos > 0.0
        if trades[j, TR_EXIT_REASON] == EXIT_OPEN:
            held += n_bars - trades[j, TR_ENTRY_BAR]
            continue
        held += trades[j, TR_EXIT_BAR] - trades[j, TR_ENTRY_BAR]
        n_closed += 1
        sum_ret += ret
        best = max(best, ret)
        worst = min(worst, ret)
        if pnl > 0.0:
            n_wins += 1
            gross_profit += pnl
        else:
            gross_loss -= pnl
    stats[ST_N_CLOSED] = n_closed
    stats[ST_N_WINS] = n_wins
    stats[ST_GROSS_PROFIT] = gross_profit
    stats[ST_GROSS_LOSS] = gross_loss
    stats[ST_SUM_TRADE_RET] = sum_ret
    stats[ST_BEST_TRADE] = best if n_closed > 0 else np.nan
    stats[ST_WORST_TRADE] = worst if n_closed > 0 else np.nan
    stats[ST_FEES] = fees
    stats[ST_N_ORDERS] = k + n_closed
    stats[ST_N_LONG] = n_long
    stats[ST_N_SHORT] = k - n_long
    stats[ST_EXPOSURE_BARS] = held


@njit(nogil=True, cache=True, error_model="numpy")
def uses_stops(sl_a: np.ndarray, tp_a: np.ndarray, tsl_a: np.ndarray) -> bool:
    """False only when every stop array is a single NaN (no stop anywhere)."""
    return not (
        sl_a.shape[0] == 1
        and np.isnan(sl_a[0])
        and tp_a.shape[0] == 1
        and np.isnan(tp_a[0])
        and tsl_a.shape[0] == 1
        and np.isnan(tsl_a[0])
    )


# One compiled entry point per mode, so a first backtest compiles only the mode it uses (~3 s
# instead of ~30 s for all twelve).


@njit(nogil=True, cache=True, error_model="numpy")
def _close_plain(o, h, lo, c, el, xl, es, xs, sl_a, tp_a, tsl_a, cfg, equity, trades, stats):
    return simulate_column(
        o, h, lo, c, el, xl, es, xs, sl_a, tp_a, tsl_a, cfg, equity, trades, stats, True, NO_INTRABAR, False
    )


@njit(nogil=True, cache=True, error_model="numpy")
def _close_plain_end(o, h, lo, c, el, xl, es, xs, sl_a, tp_a, tsl_a, cfg, equity, trades, stats):
    return simulate_column(
        o, h, lo, c, el, xl, es, xs, sl_a, tp_a, tsl_a, cfg, equity, trades, stats, True, NO_INTRABAR, True
    )


@njit(nogil=True, cache=True, error_model="numpy")
def _close_liq(o, h, lo, c, el, xl, es, xs, sl_a, tp_a, tsl_a, cfg, equity, trades, stats):
    return simulate_column(
        o, h, lo, c, el, xl, es, xs, sl_a, tp_a, tsl_a, cfg, equity, trades, stats, True, LIQUIDATION, False
    )


@njit(nogil=True, cache=True, error_model="numpy")
def _close_liq_end(o, h, lo, c, el, xl, es, xs, sl_a, tp_a, tsl_a, cfg, equity, trades, stats):
    return simulate_column(
        o, h, lo, c, el, xl, es, xs, sl_a, tp_a, tsl_a, cfg, equity, trades, stats, True, LIQUIDATION, True
    )


@njit(nogil=True, cache=True, error_model="numpy")
def _close_stops(o, h, lo, c, el, xl, es, xs, sl_a, tp_a, tsl_a, cfg, equity, trades, stats):
    return simulate_column(
        o, h, lo, c, el, xl, es, xs, sl_a, tp_a, tsl_a, cfg, equity, trades, stats, True, STOPS, False
    )


@njit(nogil=True, cache=True, error_model="numpy")
def _close_stops_end(o, h, lo, c, el, xl, es, xs, sl_a, tp_a, tsl_a, cfg, equity, trades, stats):
    return simulate_column(
        o, h, lo, c, el, xl, es, xs, sl_a, tp_a, tsl_a, cfg, equity, trades, stats, True, STOPS, True
    )


@njit(nogil=True, cache=True, error_model="numpy")
def _open_plain(o, h, lo, c, el, xl, es, xs, sl_a, tp_a, tsl_a, cfg, equity, trades, stats):
    return simulate_column(
        o, h, lo, c, el, xl, es, xs, sl_a, tp_a, tsl_a, cfg, equity, trades, stats, False, NO_INTRABAR, False
    )


@njit(nogil=True, cache=True, error_model="numpy")
def _open_plain_end(o, h, lo, c, el, xl, es, xs, sl_a, tp_a, tsl_a, cfg, equity, trades, stats):
    return simulate_column(
        o, h, lo, c, el, xl, es, xs, sl_a, tp_a, tsl_a, cfg, equity, trades, stats, False, NO_INTRABAR, True
    )


@njit(nogil=True, cache=True, error_model="numpy")
def _open_liq(o, h, lo, c, el, xl, es, xs, sl_a, tp_a, tsl_a, cfg, equity, trades, stats):
    return simulate_column(
        o, h, lo, c, el, xl, es, xs, sl_a, tp_a, tsl_a, cfg, equity, trades, stats, False, LIQUIDATION, False
    )


@njit(nogil=True, cache=True, error_model="numpy")
def _open_liq_end(o, h, lo, c, el, xl, es, xs, sl_a, tp_a, tsl_a, cfg, equity, trades, stats):
    return simulate_column(
        o, h, lo, c, el, xl, es, xs, sl_a, tp_a, tsl_a, cfg, equity, trades, stats, False, LIQUIDATION, True
    )


@njit(nogil=True, cache=True, error_model="numpy")
def _open_stops(o, h, lo, c, el, xl, es, xs, sl_a, tp_a, tsl_a, cfg, equity, trades, stats):
    return simulate_column(
        o, h, lo, c, el, xl, es, xs, sl_a, tp_a, tsl_a, cfg, equity, trades, stats, False, STOPS, False
    )


@njit(nogil=True, cache=True, error_model="numpy")
def _open_stops_end(o, h, lo, c, el, xl, es, xs, sl_a, tp_a, tsl_a, cfg, equity, trades, stats):
    return simulate_column(
        o, h, lo, c, el, xl, es, xs, sl_a, tp_a, tsl_a, cfg, equity, trades, stats, False, STOPS, True
    )


MODE_ENTRIES = {
    (True, 0, False): _close_plain,
    (True, 0, True): _close_plain_end,
    (True, 1, False): _close_liq,
    (True, 1, True): _close_liq_end,
    (True, 2, False): _close_stops,
    (True, 2, True): _close_stops_end,
    (False, 0, False): _open_plain,
    (False, 0, True): _open_plain_end,
    (False, 1, False): _open_liq,
    (False, 1, True): _open_liq_end,
    (False, 2, False): _open_stops,
    (False, 2, True): _open_stops_end,
}


def can_liquidate(cfg: np.ndarray, es: np.ndarray) -> bool:
    """Whether a position of this column could ever reach a liquidation level: a short entry the
    direction allows, leverage above 1, a maintenance margin or fixed fees. (An all-cash long without
    these cannot: its level is not above zero.)"""
    return bool(
        cfg[CFG_LEVERAGE] > 1.0
        or cfg[CFG_MAINTENANCE] > 0.0
        or cfg[CFG_FIXED_FEES] > 0.0
        or (int(cfg[CFG_DIRECTION]) != DIR_LONG and es.any())
    )


def column_mode(
    cfg: np.ndarray, sl_a: np.ndarray, tp_a: np.ndarray, tsl_a: np.ndarray, es: np.ndarray
) -> tuple[bool, int, bool]:
    """(fill at close, intrabar checks: `STOPS`, `LIQUIDATION` or `NO_INTRABAR`, close at end) for one
    column's settings, stop arrays and short entries."""
    if uses_stops(sl_a, tp_a, tsl_a):
        intrabar = STOPS
    else:
        intrabar = LIQUIDATION if can_liquidate(cfg, es) else NO_INTRABAR
    return bool(cfg[CFG_FILL] == FILL_CLOSE), intrabar, bool(cfg[CFG_CLOSE_AT_END] != 0.0)


def run_column_lazy(
    o: np.ndarray,
    h: np.ndarray,
    lo: np.ndarray,
    c: np.ndarray,
    el: np.ndarray,
    xl: np.ndarray,
    es: np.ndarray,
    xs: np.ndarray,
    sl_a: np.ndarray,
    tp_a: np.ndarray,
    tsl_a: np.ndarray,
    cfg: np.ndarray,
    equity: np.ndarray,
    trades: np.ndarray,
    stats: np.ndarray,
) -> int:
    """``run_column`` for Python callers: compiles (once, cached on disk) only the needed mode. The
    inputs go in as read-only views (`qlm_kernel.arrays.read_only`): one compiled kernel per mode."""
    entry = MODE_ENTRIES[column_mode(cfg, sl_a, tp_a, tsl_a, es)]
    inputs = [read_only(a) for a in (o, h, lo, c, el, xl, es, xs, sl_a, tp_a, tsl_a)]
    k = entry(*inputs, cfg, equity, trades, stats)
    finish_trades(trades, k, stats, c.shape[0])
    return k
