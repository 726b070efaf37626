"""A heal cut short by its worker being killed (a model's fix that never returns to the interpreter) is
answered TIMEOUT, and the strategy file is rolled back to its version from before the heal."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from qlm_kernel.errors import QLMError
from qlm_kernel.mcp import tools
from qlm_kernel.session import history
from qlm_kernel.session.strategies import write_strategy
from qlm_kernel.session.workers import run_isolated
from tests.heal_cases import HEADER, NAME_ERROR

# A "fix" that hangs in C: builtin sum over a range holds the GIL and checks no async exception, so only
# killing the process stops it (no import needed: it passes the heal's import policy).
HANGING_FIX = HEADER + '''class SmaCross(Strategy):
    fast = Param(10, min=2, max=200)
    slow = Param(50, min=5, max=500)

    def signals(self, data):
        close = data["close"]
        total = sum(range(10**15))
        f, s = ta.sma(close, self.fast), ta.sma(close, self.slow + total * 0)
        return Signals(entry_long=ta.crossed_above(f, s), exit_long=ta.crossed_below(f, s))
'''


def test_a_heal_killed_mid_run_is_timeout_and_the_file_is_rolled_back(home: Path) -> None:
    write_strategy("typo.py", NAME_ERROR.broken, author="user")
    path = home / "strategies" / "typo.py"
    arguments = {"strategy": "typo.py", "sample": {"kind": "synthetic", "n": 2000, "seed": 0},
                 "max_attempts": 1, "time_limit": 1.5, "replies": [f"```python\n{HANGING_FIX}```"]}
    started = time.perf_counter()
    with pytest.raises(QLMError) as caught:
        run_isolated("qlm_kernel.mcp.tools:heal_strategy", arguments,
                     time_limit=tools.heal_deadline(1, 1.5))
    seconds = time.perf_counter() - started
    assert caught.value.code == "TIMEOUT" and "1.5 s" in caught.value.message
    assert seconds < 15  # the re-run was killed at its own limit, not at the heal's deadline (~37 s)
    assert path.read_text() == NAME_ERROR.broken  # the healer's hanging version is gone
    [session] = history.list_heal_sessions(home=home)
    assert session["status"] == "error"
    assert "HEAL_INTERRUPTED" in str(session)
