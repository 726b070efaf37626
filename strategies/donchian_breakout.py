"""Donchian channel breakout, long and short, with an ATR stop (the Turtle-style system).

Rules, all on closes compared with the channel of the *previous* bars (no lookahead):

- enter long when the close breaks above the highest high of the last ``entry`` bars;
- enter short when the close breaks below the lowest low of the last ``entry`` bars;
- exit a long when the close falls below the lowest low of the last ``exit`` bars, and exit a
  short when it rises above the highest high of the last ``exit`` bars (a tighter channel);
- a stop-loss ``atr_mult`` ATRs away from the entry: ``sl_stop = atr_mult * ATR / close`` as a
  fraction of the price, sampled by the engine at the entry bar (NaN during ATR warm-up = no stop).
"""

from qlm_kernel import Param, Signals, Strategy
from qlm_kernel import indicators as ta


class DonchianBreakout(Strategy):
    """Breakout of the N-bar channel, exit on the opposite M-bar channel, ATR stop-loss."""

    entry = Param(20, min=5, max=200, doc="bars in the breakout (entry) channel")
    exit = Param(10, min=2, max=100, doc="bars in the exit channel")
    atr_period = Param(14, min=2, max=100, doc="ATR look-back (Wilder)")
    atr_mult = Param(2.0, min=0.5, max=10.0, step=0.5, doc="stop distance in ATRs")

    def signals(self, data):
        high, low, close = data["high"], data["low"], data["close"]
        entry_ch = ta.donchian(high, low, self.entry)
        exit_ch = ta.donchian(high, low, self.exit)
        prev_entry_hi, prev_entry_lo = entry_ch.upper.shift(1), entry_ch.lower.shift(1)
        prev_exit_hi, prev_exit_lo = exit_ch.upper.shift(1), exit_ch.lower.shift(1)
        atr = ta.atr(high, low, close, self.atr_period)
        return Signals(
            entry_long=close > prev_entry_hi,
            exit_long=close < prev_exit_lo,
            entry_short=close < prev_entry_lo,
            exit_short=close > prev_exit_hi,
            sl_stop=self.atr_mult * atr / close,
        )
