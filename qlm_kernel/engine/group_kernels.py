"""The grouped kernel: many symbols (columns) trading from one shared cash balance, bar by bar.

It is the single-asset engine's order machinery driven over a group: the same signal rules
(`decide_target`), sizing (`entry_units`), fills, slippage and fees (`open_position`,
`close_position`), stops (`stop_level`) and trade records as `kernels.simulate_column`; only the
loop differs (bars outside, the group's columns inside, one cash balance). The single-asset loop
keeps its own register-tuned copy of the bar loop, so the single-asset path is not slowed by the
group's bookkeeping; a one-symbol group reproduces it exactly (tested).

Group rules (docs/concepts.md "Portfolio mode"):
- a symbol with no bar at a time (``has`` False) does not trade then: its signals are ignored, its
  stops are not checked, a next-open order waits for its next bar; it is valued at its last close.
- orders of one bar execute in increasing order of their estimated value, so sells (which free
  cash) go before buys; ties keep symbol order (vectorbt's ``call_seq="auto"``). Long only, a sale
  executes as its signal is read (it cannot depend on the cash) and the entries keep symbol order
  unless units size them (equal estimates otherwise): no sort.
- buying power of an order = leverage x (cash + long positions at the order's prices - short
  positions at their entry value) - (long positions + short positions at entry value): with
  leverage 1 this is the cash left after setting aside twice each short's entry value (its
  proceeds and as much again as collateral), vectorbt's ``free_cash`` with ``lock_cash=True``.
  Buying power within 1e-11 of the group's value (at the previous bar) is the rounding residue of
  cash already spent (the order in which a bar's sales add up moves its last bits) and
  counts as none (vectorbt rounds such sums to zero too), so no dust positions are opened.
- margin: the single-asset rule on the group: when, during a bar, the group's net liquidation value
  (cash + positions less their exit slippage and fees) reaches ``maintenance_margin`` x the gross value
  of its positions, every position is liquidated (`_liquidation_prices`) with costs and the group trades
  no more. A protective stop strictly nearer the open fills first; a take-profit never does.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from qlm_kernel.engine.group_signals import EL, ES, XL, XS, first_byte
from qlm_kernel.engine.kernels import (
    N_PS,
    NO_CHANGE,
    NO_INTRABAR,
    PS_ENTRY_BAR,
    PS_ENTRY_FEES,
    PS_ENTRY_PRICE,
    PS_REF,
    STOPS,
    close_position,
    decide_target,
    liquidation_level,
    open_position,
    stop_level,
)
from qlm_kernel.engine.layout import (
    CFG_DIRECTION,
    CFG_FEES,
    CFG_FIXED_FEES,
    CFG_INIT_CASH,
    CFG_LEVERAGE,
    CFG_MAINTENANCE,
    CFG_SIZE,
    CFG_SIZE_TYPE,
    CFG_SLIPPAGE,
    DIR_LONG,
    EXIT_END,
    EXIT_LIQUIDATION,
    EXIT_OPEN,
    EXIT_REVERSAL,
    EXIT_SIGNAL,
    EXIT_TAKE_PROFIT,
    SIZE_PERCENT,
    SIZE_UNITS,
    SIZE_VALUE,
    ST_BAD_PRICE_BAR,
    ST_FINAL_CASH,
    ST_FINAL_VALUE,
    ST_LIQUIDATION_BAR,
    ST_MAX_DD,
    ST_MAX_DD_BARS,
    ST_N_R,
    ST_N_REJECTED,
    ST_N_TRADES,
    ST_SUM_DOWN2,
    ST_SUM_R,
    ST_SUM_R2,
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

# group-only outputs (``extra``)
GX_BAD_COLUMN = 0  # column of the bad price (ST_BAD_PRICE_BAR is its bar), else -1
GX_EXPOSURE_BARS = 1  # bars closing with any position open
N_GX = 2


@njit(nogil=True, cache=True, error_model="numpy", inline="always")
def _column(a: np.ndarray, j: int) -> np.ndarray:
    """Column ``j`` of a (bars or 1) x (columns or 1) stop array, as the 1-D per-bar array the
    single-asset helpers take."""
    return a[:, 0] if a.shape[1] == 1 else a[:, j]


@njit(nogil=True, cache=True, error_model="numpy", inline="always")
def _order_estimate(
    pos: float, target: int, price: float, cash: float, free: float, cfg: np.ndarray
) -> float:
    """Estimated signed value of the order(s) that take ``pos`` to ``target``: the sort key of a bar's
    orders (negative = sells). An all-in entry counts as infinite, as in vectorbt."""
    value = 0.0
    if pos != 0.0:
        value -= pos * price
    if target != 0:
        size = cfg[CFG_SIZE]
        size_type = int(cfg[CFG_SIZE_TYPE])
        if np.isnan(size):
            est = np.inf
        elif size_type == SIZE_PERCENT:
            est = size * (cash if target > 0 else max(free, 0.0))
        elif size_type == SIZE_VALUE:
            est = size
        else:
            est = size * price
        value += target * est
    return value


@njit(nogil=True, cache=True, error_model="numpy", inline="always")
def _sort_orders(values: np.ndarray, cols: np.ndarray, q: int) -> None:
    """Stable insertion sort of the first ``q`` orders by value (few orders a bar)."""
    for a in range(1, q):
        v = values[a]
        col = cols[a]
        b = a - 1
        while b >= 0 and values[b] > v:
            values[b + 1] = values[b]
            cols[b + 1] = cols[b]
            b -= 1
        values[b + 1] = v
        cols[b + 1] = col


@njit(nogil=True, cache=True, error_model="numpy", inline="always")
def _marked(
    pos: np.ndarray, val: np.ndarray, has: np.ndarray, i: int, born: bool
) -> tuple[float, bool, bool, bool]:
    """(value of the positions at bar ``i``'s valuation prices, whether any position is open, whether
    every close of the bar is a positive number, whether every column has had a bar), in one pass.

    Four partial sums in a fixed order, so the adds pipeline and the result does not depend on the
    machine. Once every column has had a bar (``born``) no valuation price is NaN and the loop needs no
    select; before, a column without a first bar yet (NaN price) holds nothing and its missing close
    is not a bad one."""
    m = pos.shape[0]
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    j = 0
    if born:
        ok = True
        held = False
        while j + 4 <= m:
            v0 = val[i, j]
            v1 = val[i, j + 1]
            v2 = val[i, j + 2]
            v3 = val[i, j + 3]
            p0 = pos[j]
            p1 = pos[j + 1]
            p2 = pos[j + 2]
            p3 = pos[j + 3]
            s0 += p0 * v0
            s1 += p1 * v1
            s2 += p2 * v2
            s3 += p3 * v3
            ok &= (v0 > 0.0) & (v1 > 0.0) & (v2 > 0.0) & (v3 > 0.0)
            held |= (p0 != 0.0) | (p1 != 0.0) | (p2 != 0.0) | (p3 != 0.0)
            j += 4
        while j < m:
            v0 = val[i, j]
            s0 += pos[j] * v0
            ok &= v0 > 0.0
            held |= pos[j] != 0.0
            j += 1
        return (s0 + s1) + (s2 + s3), held, ok, True
    bad = 0
    unborn = 0
    held = False
    while j < m:
        v0 = val[i, j]
        s0 += pos[j] * (v0 if v0 == v0 else 0.0)
        bad += has[i, j] & (not v0 > 0.0)
        unborn += v0 != v0
        held |= pos[j] != 0.0
        j += 1
    return s0, held, bad == 0, unborn == 0


@njit(nogil=True, cache=True, error_model="numpy", inline="always")
def _bad_close(val: np.ndarray, has: np.ndarray, i: int) -> int:
    """The first column whose bar ``i`` has a close that is not a positive number, else -1."""
    for j in range(val.shape[1]):
        if has[i, j] and not val[i, j] > 0.0:
            return j
    return -1


@njit(nogil=True, cache=True, error_model="numpy", inline="always")
def _long_value(
    pos: np.ndarray, o: np.ndarray, val: np.ndarray, has: np.ndarray, i: int, at_open: bool
) -> float:
    """Value of the long positions at bar ``i``: at the open (the last close for a column without a
    bar) or at the valuation close."""
    total = 0.0
    for j in range(pos.shape[0]):
        if pos[j] > 0.0:
            total += pos[j] * (o[i, j] if at_open and has[i, j] else val[i, j])
    return total


@njit(nogil=True, cache=True, error_model="numpy")
def _liquidation_prices(
    o: np.ndarray, h: np.ndarray, lo: np.ndarray, val: np.ndarray, has: np.ndarray, i: int, pos: np.ndarray,
    ps: np.ndarray, cash: float, cfg: np.ndarray, fill_close: bool, liq_px: np.ndarray,
) -> bool:
    """Whether the group reaches its maintenance level during bar ``i``, and each position's fill then.

    One position: the single-asset level (`liquidation_level`), at the open on a gap. Several: the
    positions are taken to move together from their open to their adverse extreme (low for a long,
    high for a short; a position without a bar stays at its last close), so the margin left after exit
    costs, net liquidation value - maintenance x gross value, is linear along the way and the fill point
    is where it reaches zero (the open if it is already there)."""
    m = pos.shape[0]
    slip = cfg[CFG_SLIPPAGE]
    fees = cfg[CFG_FEES]
    fixed = cfg[CFG_FIXED_FEES]
    maintenance = cfg[CFG_MAINTENANCE]
    held = 0
    only = -1
    for j in range(m):
        if pos[j] != 0.0:
            held += 1
            only = j
    if held == 0:
        return False
    if held == 1:
        j = only
        if not has[i, j] or (fill_close and ps[j, PS_ENTRY_BAR] >= i):
            return False
        liq = liquidation_level(pos[j], cash, ps[j, PS_REF], cfg)
        if pos[j] > 0.0:
            if liq > 0.0 and lo[i, j] <= liq:
                liq_px[j] = min(o[i, j], liq)
                return True
        elif h[i, j] >= liq:
            liq_px[j] = max(o[i, j], liq)
            return True
        return False
    start = cash
    end = cash
    for j in range(m):
        p = pos[j]
        if p == 0.0:
            continue
        moving = has[i, j] and not (fill_close and ps[j, PS_ENTRY_BAR] >= i)
        p0 = o[i, j] if moving else val[i, j]
        p1 = (lo[i, j] if p > 0.0 else h[i, j]) if moving else p0
        # margin left per unit of price: a long's sale keeps (1-slip)(1-fees); a short's cover costs more
        kept = (1.0 - slip) * (1.0 - fees) - maintenance if p > 0.0 else -((1.0 + slip) * (1.0 + fees)
                                                                          + maintenance)
        start += abs(p) * p0 * kept - fixed
        end += abs(p) * p1 * kept - fixed
        liq_px[j] = p0  # a position that does not move fills where it stands
    if end > 0.0:
        return False
    t = 0.0 if start <= 0.0 else start / (start - end)
    for j in range(m):
        p = pos[j]
        if p != 0.0 and has[i, j] and not (fill_close and ps[j, PS_ENTRY_BAR] >= i):
            extreme = lo[i, j] if p > 0.0 else h[i, j]
            liq_px[j] = o[i, j] + t * (extreme - o[i, j])
    return True


@njit(nogil=True, cache=True, error_model="numpy")
def simulate_group(
    o: np.ndarray,
    h: np.ndarray,
    lo: np.ndarray,
    c: np.ndarray,
    val: np.ndarray,
    has: np.ndarray,
    codes: np.ndarray,
    words: np.ndarray,
    sl_a: np.ndarray,
    tp_a: np.ndarray,
    tsl_a: np.ndarray,
    cfg: np.ndarray,
    equity: np.ndarray,
    trades: np.ndarray,
    trade_col: np.ndarray,
    stats: np.ndarray,
    extra: np.ndarray,
    fill_close: bool,
    intrabar: int,
    close_at_end: bool,
) -> int:
    """Simulate a group of columns sharing one cash balance. Prices are (bars x columns); ``val`` is
    the valuation price (last close), ``has`` whether the column has a bar. Signals are one code a
    cell (`group_signals`: bits EL/XL/ES/XS), read eight cells at a time as the ``words`` view of
    ``codes``, so a bar costs a few word tests plus its signal cells.
    Fills ``equity`` (the group's value at every bar), ``trades`` rows in order of entry (bar, then
    column) with their column in ``trade_col``, and the group's accumulators in ``stats``; trade
    pnl/return and trade statistics come from `kernels.finish_trades`. Returns the number of trades."""
    n, m = c.shape
    direction = int(cfg[CFG_DIRECTION])
    leverage = cfg[CFG_LEVERAGE]
    init_cash = cfg[CFG_INIT_CASH]
    # long only: every sale is a long's exit, whose fill does not depend on the cash, so exits execute
    # as they are met (the bar's sales still all precede its buys); and unless units size the entries,
    # every entry's estimated value is the same, so the entries' order is the symbol order: no sort
    long_only = direction == DIR_LONG
    presorted = long_only and not (int(cfg[CFG_SIZE_TYPE]) == SIZE_UNITS and not np.isnan(cfg[CFG_SIZE]))
    pos = np.zeros(m)
    ps = np.zeros((m, N_PS))
    ps[:, PS_ENTRY_BAR] = -1
    slot = np.full(m, -1, dtype=np.int64)  # each open position's trade row
    pending = np.full(m, NO_CHANGE, dtype=np.int64)
    pending_bar = np.full(m, -1, dtype=np.int64)
    stopped = np.zeros(m, dtype=np.bool_)
    stop_px = np.full(m, np.nan)  # this bar's stop fill of each column (NaN = none)
    stop_why = np.zeros(m, dtype=np.int64)
    liq_px = np.full(m, np.nan)  # each position's fill if the group is liquidated this bar
    prices = np.zeros(m)  # each order column's price
    targets = np.full(m, NO_CHANGE, dtype=np.int64)
    order_cols = np.empty(m, dtype=np.int64)
    order_values = np.empty(m)
    waiting = np.empty(m, dtype=np.int64)  # columns with a next-open order
    n_waiting = 0
    cash = init_cash
    debt = 0.0  # entry value of the short positions held
    k = 0
    n_rejected = 0
    bad_bar = -1
    bad_col = -1
    liq_bar = -1
    exposure_bars = 0
    prev_eq = init_cash
    last = -1  # last bar simulated
    born = False  # every column has had a bar (no NaN valuation price from then on)

    for i in range(n):
        # 1) next-open orders decided at each column's previous bar
        if not fill_close and n_waiting > 0:
            _by_column(waiting, n_waiting)  # in column order, as the orders of a bar are listed
            q = 0
            kept = 0
            for a in range(n_waiting):
                j = waiting[a]
                if not has[i, j]:
                    waiting[kept] = j
                    kept += 1
                    continue
                oi = o[i, j]
                if not oi > 0.0:
                    bad_bar = i
                    bad_col = j
                    break
                target = pending[j]
                pending[j] = NO_CHANGE
                if target == 0 and long_only:
                    if pos[j] != 0.0:
                        cash += close_position(ps[j], trades, slot[j], cfg, pos[j], oi, i, EXIT_SIGNAL)
                        pos[j] = 0.0
                    continue
                prices[j] = oi
                targets[j] = target
                order_cols[q] = j
                q += 1
            if bad_bar >= 0:
                break
            n_waiting = kept
            if q > 0:
                cash, debt, k, n_rejected = _execute_orders(
                    order_cols, order_values, q, targets, pending_bar, pos, ps, slot, prices, cash, debt, k,
                    n_rejected, i, cfg, leverage, sl_a, tp_a, tsl_a, trades, trade_col, o, val, has, True,
                    presorted, abs(prev_eq),
                )
        # 2) intrabar: the group's liquidation and each position's stops (the single-asset rules)
        ruined = False
        if intrabar != NO_INTRABAR:
            for j in range(m):
                stop_px[j] = np.nan
                stopped[j] = False
                if intrabar == STOPS and pos[j] != 0.0 and has[i, j] and (
                    ps[j, PS_ENTRY_BAR] < i or not fill_close
                ):
                    level, reason = stop_level(ps[j], pos[j], o[i, j], h[i, j], lo[i, j])
                    if reason >= 0 and not np.isnan(level):
                        stop_px[j] = level
                        stop_why[j] = reason
            ruined = _liquidation_prices(o, h, lo, val, has, i, pos, ps, cash, cfg, fill_close, liq_px)
            for j in range(m):  # a stop fills unless the liquidation comes first (a take-profit never does)
                first = not ruined or (
                    stop_why[j] != EXIT_TAKE_PROFIT and (stop_px[j] - liq_px[j]) * pos[j] > 0.0
                )
                if not np.isnan(stop_px[j]) and first:
                    if pos[j] < 0.0:
                        debt -= -pos[j] * ps[j, PS_ENTRY_PRICE]
                    cash += close_position(ps[j], trades, slot[j], cfg, pos[j], stop_px[j], i, stop_why[j])
                    pos[j] = 0.0
                    stopped[j] = True
                    if ruined:  # the positions left face the move without it
                        ruined = _liquidation_prices(
                            o, h, lo, val, has, i, pos, ps, cash, cfg, fill_close, liq_px
                        )
            if ruined:
                for j in range(m):
                    if pos[j] != 0.0:
                        cash += close_position(ps[j], trades, slot[j], cfg, pos[j], liq_px[j], i,
                                               EXIT_LIQUIDATION)
                        pos[j] = 0.0
                        stopped[j] = True
                debt = 0.0
                liq_bar = i
        # 3) this bar's signals (only the cells that have one): orders at the close, or queued for the
        #    column's next open
        q = 0
        if not ruined:
            for b in range(words.shape[1]):
                word = words[i, b]
                while word != 0:  # only the cells with a signal (most words have none)
                    byte, word = first_byte(word)
                    j = b * 8 + byte
                    code = codes[i, j]
                    if not has[i, j]:
                        continue
                    target = decide_target(pos[j], (code & EL) != 0, (code & XL) != 0, (code & ES) != 0,
                                           (code & XS) != 0, direction)
                    if target == NO_CHANGE:
                        continue
                    if not fill_close:
                        if pending[j] == NO_CHANGE:
                            waiting[n_waiting] = j
                            n_waiting += 1
                        pending[j] = target
                        pending_bar[j] = i
                    elif target == 0 and long_only:
                        cash += close_position(ps[j], trades, slot[j], cfg, pos[j], val[i, j], i, EXIT_SIGNAL)
                        pos[j] = 0.0
                    elif intrabar == NO_INTRABAR or not stopped[j]:
                        targets[j] = target
                        pending_bar[j] = i
                        prices[j] = val[i, j]
                        order_cols[q] = j
                        q += 1
        if q > 0:
            cash, debt, k, n_rejected = _execute_orders(
                order_cols, order_values, q, targets, pending_bar, pos, ps, slot, prices, cash, debt, k,
                n_rejected, i, cfg, leverage, sl_a, tp_a, tsl_a, trades, trade_col, o, val, has, False,
                presorted, abs(prev_eq),
            )
        # 4) optionally close what is left at the last bar (each column at its last close)
        if close_at_end and i == n - 1:
            for j in range(m):
                if pos[j] != 0.0:
                    if pos[j] < 0.0:
                        debt -= -pos[j] * ps[j, PS_ENTRY_PRICE]
                    cash += close_position(ps[j], trades, slot[j], cfg, pos[j], val[i, j], i, EXIT_END)
                    pos[j] = 0.0
        # 5) mark to market: cash + every position at its valuation price; a bad close stops the run
        #    (its bar's equity and all after are NaN, and the run raises naming it)
        held, holding, closes_ok, born = _marked(pos, val, has, i, born)
        if not closes_ok:
            bad_col = _bad_close(val, has, i)
            if bad_col >= 0:
                bad_bar = i
                break
        eq = cash + held
        exposure_bars += holding
        equity[i] = eq
        prev_eq = eq
        last = i
        if liq_bar >= 0:
            equity[i + 1:] = eq
            break

    # open positions at the end are reported as open trades marked at their last close
    if bad_bar < 0:
        for j in range(m):
            if pos[j] != 0.0:
                close_position(ps[j], trades, slot[j], cfg, pos[j], val[n - 1, j], -1, EXIT_OPEN)
    finish_group(equity, init_cash, last, prev_eq, cash, n_rejected, bad_bar, bad_col, liq_bar,
                 exposure_bars, stats, extra)
    stats[ST_N_TRADES] = k
    return k


@njit(nogil=True, cache=True, error_model="numpy", inline="always")
def _by_column(cols: np.ndarray, q: int) -> None:
    """Insertion sort of the first ``q`` columns (next-open orders wait in arrival order)."""
    for a in range(1, q):
        col = cols[a]
        b = a - 1
        while b >= 0 and cols[b] > col:
            cols[b + 1] = cols[b]
            b -= 1
        cols[b + 1] = col


@njit(nogil=True, cache=True, error_model="numpy")
def finish_group(
    equity: np.ndarray, init_cash: float, last: int, final_value: float, cash: float,
    n_rejected: int, bad_bar: int, bad_col: int, liq_bar: int, exposure_bars: int, stats: np.ndarray,
    extra: np.ndarray,
) -> None:
    """A group run's accumulators (`equity_stats` and the run's end state) and its ``extra`` outputs;
    the equity after a bad price is NaN (the run raises a DataError naming it)."""
    if bad_bar >= 0:
        equity[bad_bar:] = np.nan
    equity_stats(equity, init_cash, last, stats)
    stats[ST_N_REJECTED] = n_rejected
    stats[ST_FINAL_VALUE] = final_value
    stats[ST_FINAL_CASH] = cash
    stats[ST_BAD_PRICE_BAR] = bad_bar
    stats[ST_LIQUIDATION_BAR] = liq_bar
    extra[GX_EXPOSURE_BARS] = exposure_bars
    extra[GX_BAD_COLUMN] = bad_col


@njit(nogil=True, cache=True, error_model="numpy", inline="always")
def _execute_orders(
    order_cols: np.ndarray,
    order_values: np.ndarray,
    q: int,
    targets: np.ndarray,
    signal_bars: np.ndarray,
    pos: np.ndarray,
    ps: np.ndarray,
    slot: np.ndarray,
    prices: np.ndarray,
    cash: float,
    debt: float,
    k: int,
    n_rejected: int,
    i: int,
    cfg: np.ndarray,
    leverage: float,
    sl_a: np.ndarray,
    tp_a: np.ndarray,
    tsl_a: np.ndarray,
    trades: np.ndarray,
    trade_col: np.ndarray,
    o: np.ndarray,
    val: np.ndarray,
    has: np.ndarray,
    at_open: bool,
    presorted: bool,
    scale: float,
) -> tuple[float, float, int, int]:
    """Execute one bar's ``q`` orders (columns in ``order_cols`` in column order, at ``prices``), sells
    first. A position opened gets the next trade row (its exit completes it); the bar's new rows are then
    put in column order, so the rows are in order of entry bar, then column."""
    if q > 1 and not presorted:  # one order, or orders of equal estimates, need no sequence
        free = cash - 2.0 * debt
        for a in range(q):
            j = order_cols[a]
            order_values[a] = _order_estimate(pos[j], targets[j], prices[j], cash, free, cfg)
        _sort_orders(order_values, order_cols, q)
    first_row = k
    for a in range(q):
        j = order_cols[a]
        target = targets[j]
        price = prices[j]
        if pos[j] != 0.0:
            if pos[j] < 0.0:
                debt -= -pos[j] * ps[j, PS_ENTRY_PRICE]
            reason = EXIT_REVERSAL if target != 0 else EXIT_SIGNAL
            cash += close_position(ps[j], trades, slot[j], cfg, pos[j], price, i, reason)
            pos[j] = 0.0
        if target != 0:
            longs = _long_value(pos, o, val, has, i, at_open) if leverage != 1.0 else 0.0
            power = leverage * (cash + longs - debt) - (longs + debt)  # buying power
            if power <= 1e-11 * (abs(cash) + longs + 2.0 * debt + scale):  # rounding residue of spent cash
                power = 0.0
            if sl_a.shape[1] == 1 and tp_a.shape[1] == 1 and tsl_a.shape[1] == 1:  # one stop for all
                units, cost = open_position(
                    ps[j], cfg, target, price, power / leverage, i, signal_bars[j], sl_a[:, 0], tp_a[:, 0],
                    tsl_a[:, 0],
                )
            else:
                units, cost = open_position(
                    ps[j], cfg, target, price, power / leverage, i, signal_bars[j],
                    _column(sl_a, j), _column(tp_a, j), _column(tsl_a, j),
                )
            pos[j] = units
            cash -= cost
            n_rejected += units == 0.0
            if units < 0.0:
                debt += -units * ps[j, PS_ENTRY_PRICE]
            if units != 0.0:
                slot[j] = k
                trade_col[k] = j
                _open_row(trades, k, ps[j], pos[j])
                k += 1
    if k - first_row > 1:  # the bar's new rows in column order (orders ran by value: rarely needed)
        _rows_by_column(trades, trade_col, slot, first_row, k)
    return cash, debt, k, n_rejected


@njit(nogil=True, cache=True, error_model="numpy", inline="always")
def _rows_by_column(
    trades: np.ndarray, trade_col: np.ndarray, slot: np.ndarray, start: int, end: int
) -> None:
    """Insertion sort of trade rows ``start:end`` by column, moving each row whole and its ``slot``;
    a single pass of comparisons when they are in order already."""
    for a in range(start + 1, end):
        if trade_col[a - 1] < trade_col[a]:
            continue
        b = a
        while b > start and trade_col[b - 1] > trade_col[b]:
            for f in range(trades.shape[1]):
                trades[b - 1, f], trades[b, f] = trades[b, f], trades[b - 1, f]
            trade_col[b - 1], trade_col[b] = trade_col[b], trade_col[b - 1]
            slot[trade_col[b - 1]] = b - 1
            slot[trade_col[b]] = b
            b -= 1


@njit(nogil=True, cache=True, error_model="numpy", inline="always")
def _open_row(trades: np.ndarray, k: int, ps: np.ndarray, pos: float) -> None:
    """Trade row ``k`` as an open trade at its entry; its exit completes it (`close_position`). Written
    now, the row is in cache when the exit comes a few bars later (a cold row costs a memory miss)."""
    if k < trades.shape[0]:
        trades[k, TR_ENTRY_BAR] = ps[PS_ENTRY_BAR]
        trades[k, TR_EXIT_BAR] = -1
        trades[k, TR_ENTRY_PRICE] = ps[PS_ENTRY_PRICE]
        trades[k, TR_EXIT_PRICE] = np.nan
        trades[k, TR_SIZE] = pos
        trades[k, TR_ENTRY_FEES] = ps[PS_ENTRY_FEES]
        trades[k, TR_EXIT_FEES] = 0.0
        trades[k, TR_EXIT_REASON] = EXIT_OPEN
        trades[k, TR_PNL] = 0.0
        trades[k, TR_RETURN] = 0.0


@njit(nogil=True, cache=True, error_model="numpy")
def equity_stats(equity: np.ndarray, init_cash: float, last: int, stats: np.ndarray) -> None:
    """The per-bar accumulators of an equity curve up to bar ``last`` (as `simulate_column` keeps
    them): sums of simple returns, squares and downside squares, max drawdown and its length. A bar's
    return (the first against ``init_cash``) counts where the previous equity is positive: the
    returns `stats.bar_returns` gives, the same series `BacktestResult.returns` shows."""
    n_r = 0
    sum_r = 0.0
    sum_r2 = 0.0
    sum_down2 = 0.0
    peak = init_cash
    trough = init_cash
    max_dd = 0.0
    peak_bar = -1
    max_dd_bars = 0
    prev_eq = init_cash
    for i in range(last + 1):
        eq = equity[i]
        if prev_eq > 0.0:
            n_r += 1
            r = eq / prev_eq - 1.0
            sum_r += r
            sum_r2 += r * r
            down = min(r, 0.0)
            sum_down2 += down * down
        if eq >= peak:
            if trough < peak:
                max_dd = min(max_dd, trough / peak - 1.0)
                max_dd_bars = max(max_dd_bars, i - peak_bar - 1)
            peak = eq
            trough = eq
            peak_bar = i
        else:
            trough = min(trough, eq)
        prev_eq = eq
    stats[:] = 0.0
    stats[ST_SUM_R] = sum_r
    stats[ST_SUM_R2] = sum_r2
    stats[ST_SUM_DOWN2] = sum_down2
    stats[ST_MAX_DD] = max(min(max_dd, trough / peak - 1.0), -1.0)  # a debt is not a deeper drawdown
    stats[ST_N_R] = n_r
    if trough < peak:
        max_dd_bars = max(max_dd_bars, last - peak_bar)
    stats[ST_MAX_DD_BARS] = max_dd_bars
