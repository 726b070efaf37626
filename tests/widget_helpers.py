"""Shared pieces of the widget tests: small spaces, a broken strategy and a scripted model (the fresh
workspace is the `home` fixture of conftest)."""

from __future__ import annotations

import re
from typing import Any

from tests.heal_cases import NAME_ERROR

BROKEN = NAME_ERROR.broken  # the NameError case of the heal tests (clsoe for close)

SMALL_SPACE = {"fast": [5, 10, 15, 20], "slow": [40, 60, 80]}
BIG_SPACE = {"fast": list(range(2, 200)), "slow": list(range(20, 500))}


def scripted_model(prompt: str) -> dict[str, Any]:
    """Fix the NameError the trace names, using the full source from the prompt."""
    wrong, right = re.search(r"name '(\w+)' is not defined\. Did you mean: '(\w+)'", prompt).groups()
    source = re.search(r"## Current file: \S+ \(full source\)\n```python\n(.*?)```", prompt, re.S).group(1)
    return {"text": "```python\n" + source.replace(wrong, right) + "```", "thinking": f"{wrong!r} is a typo"}


def count_sends(widget: Any) -> list[dict[str, Any]]:
    """Record every state message the widget sends to the front end (one per batched push)."""
    sent: list[dict[str, Any]] = []
    original = widget.send_state

    def send_state(key: Any = None) -> None:
        sent.append({"key": key})
        original(key)

    widget.send_state = send_state
    return sent
