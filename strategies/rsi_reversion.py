"""RSI mean reversion, long only: buy weakness, sell strength.

Rule: enter long while Wilder's RSI(period) is below ``lower`` (oversold); exit when it rises above
``upper`` (overbought). Levels, not crossings: an entry that could not fill (already long) is
simply repeated, and the engine ignores entries while a position is open. ``lower < upper`` by the
parameter ranges, so a bar is never both an entry and an exit.
"""

from qlm_kernel import Param, Signals, Strategy
from qlm_kernel import indicators as ta


class RsiReversion(Strategy):
    """Long when RSI < lower, flat when RSI > upper."""

    period = Param(14, min=2, max=100, doc="RSI look-back in bars (Wilder smoothing)")
    lower = Param(30.0, min=1.0, max=50.0, step=5.0, doc="oversold level: enter below it")
    upper = Param(70.0, min=50.0, max=99.0, step=5.0, doc="overbought level: exit above it")

    def signals(self, data):
        rsi = ta.rsi(data["close"], self.period)
        return Signals(entry_long=rsi < self.lower, exit_long=rsi > self.upper)
