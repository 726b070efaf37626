"""Shared pieces of the widget tests: a temp workspace, small data, a broken strategy and a scripted model."""

from __future__ import annotations

import re
from typing import Any

import pytest

from qlm_kernel.store import close_default_store

BROKEN = """from qlm_kernel import Strategy, Param, Signals, indicators as ta


class SmaCross(Strategy):
    fast = Param(10, min=2, max=200)
    slow = Param(50, min=5, max=500)

    def signals(self, data):
        close = data["close"]
        f, s = ta.sma(close, self.fast), ta.sma(clsoe, self.slow)
        return Signals(entry_long=ta.crossed_above(f, s), exit_long=ta.crossed_below(f, s))
"""

SMALL_SPACE = {"fast": [5, 10, 15, 20], "slow": [40, 60, 80]}
BIG_SPACE = {"fast": list(range(2, 200)), "slow": list(range(20, 500))}


def scripted_model(prompt: str) -> dict[str, Any]:
    """Fix the NameError the trace names, using the full source from the prompt."""
    wrong, right = re.search(r"name '(\w+)' is not defined\. Did you mean: '(\w+)'", prompt).groups()
    source = re.search(r"## Current file: \S+ \(full source\)\n```python\n(.*?)```", prompt, re.S).group(1)
    return {"text": "```python\n" + source.replace(wrong, right) + "```", "thinking": f"{wrong!r} is a typo"}


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A fresh QLM_HOME with its own store, closed afterwards."""
    monkeypatch.setenv("QLM_HOME", str(tmp_path / "home"))
    close_default_store()
    yield tmp_path / "home"
    close_default_store()


def count_sends(widget: Any) -> list[dict[str, Any]]:
    """Record every state message the widget sends to the front end (one per batched push)."""
    sent: list[dict[str, Any]] = []
    original = widget.send_state

    def send_state(key: Any = None) -> None:
        sent.append({"key": key})
        original(key)

    widget.send_state = send_state
    return sent
