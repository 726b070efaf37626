"""Target-weight rebalancing over a group sharing cash, and the exit trades of its order ledger.

The group loop of `group_kernels` with a different order source: instead of entry/exit signals, a
(bars x symbols) array of target weights (NaN = leave as is). On a rebalancing bar each weighted
symbol is traded to ``weight x group value`` (the value before the bar's orders, at the order
prices), sells first; buys (and new shorts) are capped by the buying power left, a partial fill
(vectorbt's ``from_orders(size_type="targetpercent")``); a sale whose proceeds would not pay its
own fees is not made (as vectorbt). With a ``drift`` threshold, a symbol whose
weight has moved more than that from its last target is traded back to it on any bar. Positions
grow and shrink in steps, so the kernel records orders; `exit_trades` turns them into round trips
(average entry price; a reduction closes that part, with entry fees pro rata, as vectorbt's exit
trades).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from qlm_kernel.engine.group_kernels import (
    _liquidation_prices,
    _sort_orders,
    finish_group,
)
from qlm_kernel.engine.kernels import N_PS, PS_ENTRY_BAR, PS_REF
from qlm_kernel.engine.layout import (
    CFG_FEES,
    CFG_FIXED_FEES,
    CFG_INIT_CASH,
    CFG_INTEGER,
    CFG_LEVERAGE,
    CFG_SLIPPAGE,
    EXIT_LIQUIDATION,
    EXIT_OPEN,
    EXIT_SIGNAL,
    TR_ENTRY_BAR,
    TR_ENTRY_FEES,
    TR_ENTRY_PRICE,
    TR_EXIT_BAR,
    TR_EXIT_FEES,
    TR_EXIT_PRICE,
    TR_EXIT_REASON,
    TR_SIZE,
)

# order record
OR_BAR = 0
OR_COL = 1
OR_UNITS = 2  # signed: > 0 bought, < 0 sold
OR_PRICE = 3  # fill price after slippage
OR_FEES = 4
OR_REASON = 5  # EXIT_SIGNAL = a rebalance, EXIT_LIQUIDATION
N_ORDER_FIELDS = 6


@njit(nogil=True, cache=True, error_model="numpy", inline="always")
def _fill(
    j: int, delta: float, price: float, i: int, reason: int, pos: np.ndarray, avg: np.ndarray, cash: float,
    debt: float, cfg: np.ndarray, orders: np.ndarray, q: int,
) -> tuple[float, float, int]:
    """Trade ``delta`` units of column ``j`` at ``price`` (slippage and fees applied): record the
    order, update position, average entry, cash and the shorts' entry value."""
    side = 1.0 if delta > 0.0 else -1.0
    adj = price * (1.0 + cfg[CFG_SLIPPAGE] * side)
    fee = abs(delta) * adj * cfg[CFG_FEES] + cfg[CFG_FIXED_FEES]
    p = pos[j]
    new = p + delta
    if p < 0.0:  # the short's entry value leaves the books as it is covered
        debt -= (min(-p, delta) if delta > 0.0 else 0.0) * avg[j]
    if new != 0.0 and (p == 0.0 or (p > 0.0) != (new > 0.0)):
        avg[j] = adj  # a new position (or the far side of a reversal) starts at this price
    elif abs(new) > abs(p):
        avg[j] = (avg[j] * abs(p) + adj * abs(delta)) / abs(new)
    if new < 0.0:
        debt += max(0.0, -new - max(-p, 0.0)) * adj
    if new == 0.0:
        avg[j] = 0.0
    pos[j] = new
    cash -= delta * adj + fee
    if q < orders.shape[0]:
        orders[q, OR_BAR] = i
        orders[q, OR_COL] = j
        orders[q, OR_UNITS] = delta
        orders[q, OR_PRICE] = adj
        orders[q, OR_FEES] = fee
        orders[q, OR_REASON] = reason
    return cash, debt, q + 1


@njit(nogil=True, cache=True, error_model="numpy")
def simulate_weights(
    o: np.ndarray,
    h: np.ndarray,
    lo: np.ndarray,
    c: np.ndarray,
    val: np.ndarray,
    has: np.ndarray,
    weights: np.ndarray,
    drift: float,
    cfg: np.ndarray,
    fill_close: bool,
    equity: np.ndarray,
    orders: np.ndarray,
    stats: np.ndarray,
    extra: np.ndarray,
) -> int:
    """Rebalance a group to target ``weights`` (bars x columns, NaN = no target that bar). Fills
    ``equity`` and ``orders`` (one row per fill); returns the number of orders."""
    n, m = c.shape
    leverage = cfg[CFG_LEVERAGE]
    fees = cfg[CFG_FEES]
    fixed = cfg[CFG_FIXED_FEES]
    slip = cfg[CFG_SLIPPAGE]
    integer = cfg[CFG_INTEGER] != 0.0
    init_cash = cfg[CFG_INIT_CASH]
    pos = np.zeros(m)
    avg = np.zeros(m)  # average entry price (slipped) of each position
    held_ps = np.zeros((m, N_PS))  # what the margin check reads: entry bar (-1: held before), reference
    held_ps[:, PS_ENTRY_BAR] = -1
    liq_px = np.full(m, np.nan)
    target_w = np.full(m, np.nan)  # last target of each column (for drift)
    pending = np.full(m, np.nan)  # next-open mode: weights decided at the column's last bar
    prices = np.zeros(m)
    explicit = np.zeros(m, dtype=np.bool_)  # a target given for this bar (not a drift check)
    deltas = np.zeros(m)  # units to trade this bar
    cols = np.empty(m, dtype=np.int64)
    values = np.empty(m)
    cash = init_cash
    debt = 0.0
    q = 0
    n_rejected = 0
    bad_bar = -1
    bad_col = -1
    liq_bar = -1
    exposure_bars = 0
    last = -1
    prev_eq = init_cash
    for i in range(n):
        for j in range(m):
            if has[i, j] and not c[i, j] > 0.0:
                bad_bar = i
                bad_col = j
        if bad_bar >= 0:
            break
        # intrabar: the group's margin on the positions held into this bar (the signal engine's rule)
        for j in range(m):
            held_ps[j, PS_REF] = avg[j]
        if _liquidation_prices(o, h, lo, val, has, i, pos, held_ps, cash, cfg, False, liq_px):
            for j in range(m):
                if pos[j] != 0.0:
                    cash, debt, q = _fill(j, -pos[j], liq_px[j], i, EXIT_LIQUIDATION, pos, avg, cash, debt,
                                          cfg, orders, q)
            liq_bar = i
        # the bar's orders: pending next-open weights, this bar's weights at the close, drift
        k = 0
        for j in range(m):
            if fill_close:
                prices[j] = val[i, j]
                w = weights[i, j] if has[i, j] else np.nan
            else:
                prices[j] = o[i, j] if has[i, j] else val[i, j]
                w = pending[j] if has[i, j] else np.nan
                if has[i, j]:
                    if not np.isnan(w) and not o[i, j] > 0.0:
                        bad_bar = i
                        bad_col = j
                    pending[j] = weights[i, j]
            explicit[j] = not np.isnan(w)
            if explicit[j]:
                target_w[j] = w
            if (explicit[j] or (not np.isnan(drift) and has[i, j])) and not np.isnan(target_w[j]):
                cols[k] = j
                k += 1
        if bad_bar >= 0:
            break
        if k > 0 and liq_bar < 0:
            value = cash  # the group's value before this bar's orders, at the order prices
            for j in range(m):
                if pos[j] != 0.0:
                    value += pos[j] * prices[j]
            kk = 0
            for a in range(k):  # target units and the sort key; drop what needs no trade
                j = cols[a]
                target = target_w[j] * value / prices[j] if value > 0.0 else 0.0
                if integer:
                    target = np.trunc(target)
                if not explicit[j] and value > 0.0 and abs(pos[j] * prices[j] / value - target_w[j]) <= drift:
                    continue
                delta = target - pos[j]
                if abs(delta) <= 1e-12 * max(abs(target), abs(pos[j])):
                    continue
                deltas[j] = delta
                cols[kk] = j
                values[kk] = delta * prices[j]
                kk += 1
            _sort_orders(values, cols, kk)
            for a in range(kk):
                j = cols[a]
                delta = deltas[j]
                price = prices[j]
                p = pos[j]
                side = 1.0 if delta > 0.0 else -1.0
                reduce = min(abs(delta), abs(p)) if p * delta < 0.0 else 0.0
                add = abs(delta) - reduce
                if add > 0.0:  # new exposure: capped by the buying power left after the reduction
                    adj = price * (1.0 + slip * side)
                    longs = 0.0
                    if leverage != 1.0:
                        for jj in range(m):
                            if pos[jj] > 0.0:
                                longs += pos[jj] * prices[jj]
                    cash_after = cash - side * reduce * adj - reduce * adj * fees - fixed
                    if p > 0.0:
                        longs -= reduce * price if leverage != 1.0 else 0.0
                    debt_after = debt - (reduce * avg[j] if p < 0.0 else 0.0)
                    power = leverage * (cash_after + longs - debt_after) - (longs + debt_after)
                    if power <= 1e-11 * (abs(cash) + abs(longs) + 2.0 * debt):
                        power = 0.0
                    affordable = power / (adj * (1.0 + fees))
                    if integer:
                        affordable = np.floor(affordable)
                    if add > affordable:
                        add = max(affordable, 0.0)
                        n_rejected += add == 0.0
                    delta = side * (reduce + add)
                    if delta == 0.0:
                        continue
                if delta < 0.0:  # a sale that would not even pay its own fees is not made
                    proceeds = -delta * price * (1.0 - slip)
                    if proceeds - proceeds * fees - fixed < 0.0:
                        n_rejected += 1
                        continue
                cash, debt, q = _fill(j, delta, price, i, EXIT_SIGNAL, pos, avg, cash, debt, cfg, orders, q)
        # mark to market at the last closes
        eq = cash
        gross = 0.0
        for j in range(m):
            prices[j] = val[i, j]
            if pos[j] != 0.0:
                eq += pos[j] * prices[j]
                gross += abs(pos[j] * prices[j])
        exposure_bars += gross > 0.0
        equity[i] = eq
        prev_eq = eq
        last = i
        if liq_bar >= 0:
            equity[i + 1:] = eq
            break
    finish_group(equity, init_cash, last, prev_eq, cash, n_rejected, bad_bar, bad_col, liq_bar,
                 exposure_bars, stats, extra)
    return q


@njit(nogil=True, cache=True, error_model="numpy")
def exit_trades(
    orders: np.ndarray, m: int, last_val: np.ndarray, trades: np.ndarray, trade_col: np.ndarray
) -> int:
    """Round trips of an order ledger (in time order): each reduction of a position closes that many
    units at the position's average entry price, with its share of the entry fees; what is still
    held at the end is an open trade marked at ``last_val``. Returns the number of trades."""
    pos = np.zeros(m)
    avg = np.zeros(m)
    entry_fees = np.zeros(m)
    first_bar = np.full(m, -1.0)
    k = 0
    for r in range(orders.shape[0]):
        j = int(orders[r, OR_COL])
        delta = orders[r, OR_UNITS]
        price = orders[r, OR_PRICE]
        fee = orders[r, OR_FEES]
        bar = orders[r, OR_BAR]
        p = pos[j]
        reduce = min(abs(delta), abs(p)) if p * delta < 0.0 else 0.0
        if reduce > 0.0:
            share = reduce / abs(p)
            trades[k, TR_ENTRY_BAR] = first_bar[j]
            trades[k, TR_EXIT_BAR] = bar
            trades[k, TR_ENTRY_PRICE] = avg[j]
            trades[k, TR_EXIT_PRICE] = price
            trades[k, TR_SIZE] = reduce if p > 0.0 else -reduce
            trades[k, TR_ENTRY_FEES] = entry_fees[j] * share
            trades[k, TR_EXIT_FEES] = fee * reduce / abs(delta)
            trades[k, TR_EXIT_REASON] = orders[r, OR_REASON]
            trade_col[k] = j
            k += 1
            entry_fees[j] -= entry_fees[j] * share
            p = p - reduce if p > 0.0 else p + reduce
            if abs(p) <= 1e-12 * reduce:
                p = 0.0
        add = abs(delta) - reduce
        if add > 0.0:
            add_fee = fee * add / abs(delta)
            if p == 0.0:
                avg[j] = price
                first_bar[j] = bar
                entry_fees[j] = add_fee
            else:
                avg[j] = (avg[j] * abs(p) + price * add) / (abs(p) + add)
                entry_fees[j] += add_fee
            p = p + add if delta > 0.0 else p - add
        pos[j] = p
    for j in range(m):
        if pos[j] != 0.0:
            trades[k, TR_ENTRY_BAR] = first_bar[j]
            trades[k, TR_EXIT_BAR] = -1
            trades[k, TR_ENTRY_PRICE] = avg[j]
            trades[k, TR_EXIT_PRICE] = last_val[j]
            trades[k, TR_SIZE] = pos[j]
            trades[k, TR_ENTRY_FEES] = entry_fees[j]
            trades[k, TR_EXIT_FEES] = 0.0
            trades[k, TR_EXIT_REASON] = EXIT_OPEN
            trade_col[k] = j
            k += 1
    return k
