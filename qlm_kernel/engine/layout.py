"""Column layouts shared by the Numba kernels and their Python wrappers.

Kernels take plain float64 arrays (no Python objects, so ``nogil=True`` really frees the GIL);
these integer constants name the slots of the per-column settings vector, of the per-trade record
and of the per-column statistics accumulator.
"""

from __future__ import annotations

# --- settings vector (one row per column) -------------------------------------------------------
CFG_FILL = 0  # 0 = at the signal bar's close, 1 = at the next bar's open
CFG_FEES = 1  # proportional fee, fraction of traded value
CFG_FIXED_FEES = 2  # cash per order
CFG_SLIPPAGE = 3  # fraction of price, always against the trader
CFG_INIT_CASH = 4
CFG_SIZE = 5  # NaN = all available cash
CFG_SIZE_TYPE = 6  # 0 units, 1 value (cash), 2 percent of equity
CFG_INTEGER = 7  # 1 = whole units only
CFG_DIRECTION = 8  # 0 long, 1 short, 2 both
CFG_CLOSE_AT_END = 9  # 1 = close an open position at the last close, with costs
CFG_LEVERAGE = 10  # buying power = leverage * cash at entry (1 = cash account)
CFG_MAINTENANCE = 11  # liquidate when net liquidation value <= this fraction of the position's value
N_CFG = 12

FILL_CLOSE = 0
FILL_NEXT_OPEN = 1
SIZE_UNITS = 0
SIZE_VALUE = 1
SIZE_PERCENT = 2
DIR_LONG = 0
DIR_SHORT = 1
DIR_BOTH = 2

FILL_CODES = {"close": FILL_CLOSE, "next_open": FILL_NEXT_OPEN}
SIZE_TYPE_CODES = {"units": SIZE_UNITS, "value": SIZE_VALUE, "percent": SIZE_PERCENT}
DIRECTION_CODES = {"long": DIR_LONG, "short": DIR_SHORT, "both": DIR_BOTH}

# --- trade record ---------------------------------------------------------------------------------
TR_ENTRY_BAR = 0
TR_EXIT_BAR = 1  # -1 while the trade is still open at the last bar
TR_ENTRY_PRICE = 2  # fill price after slippage
TR_EXIT_PRICE = 3  # fill price after slippage (last close for an open trade)
TR_SIZE = 4  # signed units: > 0 long, < 0 short
TR_ENTRY_FEES = 5
TR_EXIT_FEES = 6
TR_EXIT_REASON = 7
TR_PNL = 8  # net of both legs' fees
TR_RETURN = 9  # pnl / (|size| * entry_price)
N_TRADE_FIELDS = 10

EXIT_SIGNAL = 0
EXIT_STOP_LOSS = 1
EXIT_TAKE_PROFIT = 2
EXIT_TRAILING_STOP = 3
EXIT_REVERSAL = 4
EXIT_END = 5
EXIT_OPEN = 6
EXIT_LIQUIDATION = 7
EXIT_REASONS = (
    "signal", "stop_loss", "take_profit", "trailing_stop", "reversal", "end", "open", "liquidation"
)

# --- per-column statistics accumulator ----------------------------------------------------------
ST_FINAL_VALUE = 0
ST_N_TRADES = 1  # closed and open
ST_N_CLOSED = 2
ST_N_WINS = 3
ST_GROSS_PROFIT = 4
ST_GROSS_LOSS = 5  # positive number
ST_MAX_DD = 6  # most negative (equity / running peak - 1)
ST_SUM_R = 7  # sum of per-bar simple returns
ST_SUM_R2 = 8
ST_SUM_DOWN2 = 9  # sum of squared negative returns (downside deviation)
ST_N_R = 10  # number of per-bar returns
ST_EXPOSURE_BARS = 11  # bars closing with an open position
ST_FEES = 12
ST_MAX_DD_BARS = 13  # longest run of bars below a previous peak
ST_N_ORDERS = 14
ST_N_REJECTED = 15  # entries refused: not enough cash for one unit / for fees
ST_SUM_TRADE_RET = 16  # over closed trades
ST_BEST_TRADE = 17
ST_WORST_TRADE = 18
ST_N_LONG = 19
ST_N_SHORT = 20
ST_FINAL_POSITION = 21
ST_FINAL_CASH = 22
ST_BAD_PRICE_BAR = 23  # first bar whose price is not finite and positive, else -1
ST_LIQUIDATION_BAR = 24  # bar of the liquidation that ended trading, else -1
N_STATS = 25
