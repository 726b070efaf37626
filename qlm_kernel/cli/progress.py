"""A stage-by-stage progress bar on stderr (tqdm), for commands that can take more than a second.

Honest by construction: the bar advances when a named stage finishes, it never guesses a
percentage inside a stage. It is off with ``--json`` or ``--quiet`` and when stderr is not a
terminal, so pipes, logs and JSON consumers never see carriage-return noise.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from typing import TextIO


def progress_wanted(args: argparse.Namespace, stream: TextIO | None = None) -> bool:
    """True when a bar helps: not ``--json``, not ``--quiet``, and stderr is an interactive terminal."""
    if getattr(args, "json", False) or getattr(args, "quiet", False):
        return False
    target = stream or sys.stderr
    isatty = getattr(target, "isatty", None)
    return bool(isatty and isatty())


def terminal_size(stream: TextIO, fallback: tuple[int, int] = (80, 24)) -> tuple[int, int]:
    """(columns, lines) of the terminal behind ``stream``; ``fallback`` when unknown or reported as 0
    (fresh pseudo-terminals report 0x0, and tqdm then silently draws nothing)."""
    try:
        size = os.get_terminal_size(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return fallback
    return (size.columns or fallback[0], size.lines or fallback[1])


class Stages:
    """A tqdm bar over a fixed list of stage names; use ``with stages.stage(name):`` around each."""

    def __init__(self, names: Sequence[str], *, enabled: bool, stream: TextIO | None = None) -> None:
        from tqdm import tqdm  # here, not at the top: every command module imports this one (parser build)

        self.names = list(names)
        self.enabled = enabled
        target = stream or sys.stderr
        columns, lines = terminal_size(target)
        self._bar = tqdm(
            total=len(self.names),
            file=target,
            disable=not enabled,
            leave=False,
            unit="stage",
            desc=f"{self.names[0]}..." if self.names else "",
            ncols=columns,
            nrows=lines,
            bar_format="{desc} |{bar}| {n_fmt}/{total_fmt} stages [{elapsed}]",
        )

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Show ``name`` as the current stage while the block runs, then advance the bar by one."""
        if name not in self.names:
            raise ValueError(f"unknown stage {name!r}; declared: {self.names}")
        self._bar.set_description_str(f"{name}...", refresh=True)
        yield
        self._bar.update(1)

    def close(self) -> None:
        """Remove the bar from the terminal (the result is printed after it)."""
        self._bar.close()

    def __enter__(self) -> Stages:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
