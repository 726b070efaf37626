"""Realistic broken strategies (as text: some do not even parse) and their fixes, for the heal tests.

Each case: ``broken`` source, ``fixed`` source, the trace ``code`` and ``error_type`` the diagnosis
must report, the ``line`` it must point at and a fragment of that line the excerpt must show
(``lines``: every line an interrupted loop may be caught on, the loop's condition or its body).
"""

from __future__ import annotations

from dataclasses import dataclass

HEADER = "from qlm_kernel import Strategy, Param, Signals, indicators as ta\n\n\n"


class Script:
    """A heal model that returns the given replies in order; an exception instance is raised instead,
    a callable is called with the prompt. Keeps every prompt it was sent."""

    def __init__(self, *replies):
        self.replies, self.prompts = list(replies), []

    def __call__(self, prompt):
        self.prompts.append(prompt)
        reply = self.replies.pop(0)
        if isinstance(reply, BaseException):
            raise reply
        return reply(prompt) if callable(reply) else reply


@dataclass(frozen=True)
class Case:
    name: str
    broken: str
    fixed: str
    code: str
    error_type: str
    line: int
    fragment: str
    other_lines: tuple[int, ...] = ()

    @property
    def lines(self) -> tuple[int, ...]:
        return (self.line, *self.other_lines)


SMA_BODY = """class SmaCross(Strategy):
    fast = Param(10, min=2, max=200)
    slow = Param(50, min=5, max=500)

    def signals(self, data):
        close = data["close"]
        f, s = ta.sma(close, self.fast), ta.sma({arg}, self.slow)
        return Signals(entry_long=ta.crossed_above(f, s), exit_long=ta.crossed_below(f, s))
"""

NAME_ERROR = Case(
    "name_typo",
    HEADER + SMA_BODY.format(arg="clsoe"),
    HEADER + SMA_BODY.format(arg="close"),
    "STRATEGY_RUNTIME",
    "NameError",
    10,
    "ta.sma(clsoe, self.slow)",
)

COLUMN_BODY = """class Breakout(Strategy):
    window = Param(20, min=2, max=200)

    def signals(self, data):
        high = ta.highest(data["high"], self.window).shift(1)
        close = data["{col}"]
        return Signals(entry_long=close > high, exit_long=close < ta.sma(close, self.window))
"""

WRONG_COLUMN = Case(
    "column_case",
    HEADER + COLUMN_BODY.format(col="Close"),
    HEADER + COLUMN_BODY.format(col="close"),
    "STRATEGY_RUNTIME",
    "KeyError",
    9,
    'close = data["Close"]',
)

SHAPE_BODY = """import numpy as np


class Momentum(Strategy):
    def signals(self, data):
        close = data["close"].to_numpy()
        up = {up}
        down = {down}
        return Signals(entry_long=up, exit_long=down)
"""

SHAPE = Case(
    "shape_mismatch",
    HEADER + SHAPE_BODY.format(up="close[1:] > close[:-1]", down="close[1:] < close[:-1]"),
    HEADER
    + SHAPE_BODY.format(
        up="np.r_[False, close[1:] > close[:-1]]", down="np.r_[False, close[1:] < close[:-1]]"
    ),
    "BAD_SIGNALS",
    "",
    12,
    "return Signals(entry_long=up, exit_long=down)",
)

NAN_BODY = """class Stochastic(Strategy):
    lookback = Param({lookback}, min=1, max=200)

    def signals(self, data):
        close = data["close"]
        hi, lo = ta.highest(close, self.lookback), ta.lowest(close, self.lookback)
        k = (close - lo) / (hi - lo)
        return Signals(entry_long=k < 0.1, exit_long=k > 0.9)
"""

NAN_INDICATOR = Case(
    "nan_division",
    HEADER + NAN_BODY.format(lookback=1),
    HEADER + NAN_BODY.format(lookback=14),
    "NO_TRADES",
    "NoTrades",
    10,
    "k = (close - lo) / (hi - lo)",
)

NAN_SIGNAL_BODY = """class Direction(Strategy):
    def signals(self, data):
        move = data["close"].diff()
        entry = {entry}
        return Signals(entry_long=entry, exit_long=move < 0)
"""

NAN_SIGNAL = Case(
    "nan_signal",
    HEADER + NAN_SIGNAL_BODY.format(entry="move / move.abs()"),
    HEADER + NAN_SIGNAL_BODY.format(entry="move > 0"),
    "BAD_SIGNALS",
    "",
    8,
    "return Signals(entry_long=entry, exit_long=move < 0)",
)

SYNTAX = Case(
    "syntax_error",
    HEADER + SMA_BODY.format(arg="close").replace("def signals(self, data):", "def signals(self, data)"),
    HEADER + SMA_BODY.format(arg="close"),
    "STRATEGY_SYNTAX",
    "SyntaxError",
    8,
    "def signals(self, data)",
)

LOOP_BODY = """class Trailing(Strategy):
    def signals(self, data):
        close = data["close"].to_numpy()
        level = close.copy()
        i = 1
        while i < len(close):
            level[i] = max(level[i - 1] * 0.99, close[i])
{step}        entry = close > level * 1.0
        return Signals(entry_long=close >= level, exit_long=close < level * 0.995)
"""

ENDLESS_LOOP = Case(
    "endless_loop",
    HEADER + LOOP_BODY.format(step=""),
    HEADER + LOOP_BODY.format(step="            i += 1\n"),
    "TIMEOUT",
    "TimeoutError",
    10,
    "level[i] = max(level[i - 1] * 0.99, close[i])",
    other_lines=(9,),
)

CASES = [NAME_ERROR, WRONG_COLUMN, SHAPE, NAN_INDICATOR, NAN_SIGNAL, SYNTAX, ENDLESS_LOOP]
