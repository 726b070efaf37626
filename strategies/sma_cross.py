"""SMA crossover, long only: the "hello world" of trend following.

Rule: go long when the fast simple moving average crosses above the slow one; exit when it
crosses back below. Crossings are only counted once both averages exist (after ``slow`` bars), so
the warm-up never produces a signal.
"""

from qlm_kernel import Param, Signals, Strategy
from qlm_kernel import indicators as ta


class SmaCross(Strategy):
    """Long when SMA(fast) crosses above SMA(slow); flat when it crosses back below."""

    fast = Param(10, min=2, max=200, doc="bars in the fast average")
    slow = Param(50, min=5, max=500, doc="bars in the slow average")

    def signals(self, data):
        close = data["close"]
        fast, slow = ta.sma(close, self.fast), ta.sma(close, self.slow)
        return Signals(
            entry_long=ta.crossed_above(fast, slow),
            exit_long=ta.crossed_below(fast, slow),
        )
