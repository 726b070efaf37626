"""Front-end limits, in one place: how much work one request may ask for, by who is asking.

The notebook user (and the CLI user at their own terminal) is trusted with their machine: no caps.
Requests from an MCP client are someone else's code asking the user's kernel to work, so they are
capped: sample size, grid size and trials, white-noise series, walk-forward splits, and the internal
knobs (threads, batch sizes, resume, recording) are not theirs to set at all.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

from qlm_kernel.errors import ConfigError


@dataclass(frozen=True)
class Limits:
    """Caps for one kind of front end (None = no cap)."""

    name: str
    max_sample_bars: int | None = None
    max_trials: int | None = None
    max_noise_series: int | None = None
    max_splits: int | None = None
    max_threads: int | None = None
    default_sample: dict[str, Any] | None = field(default=None)
    """Data used when a request names none (None: the caller must name data)."""

    def check(self, what: str, value: int | None, cap: int | None, hint: str) -> None:
        """Refuse ``value`` above ``cap`` with a ConfigError naming the limit (code LIMIT_EXCEEDED)."""
        if cap is not None and value is not None and value > cap:
            raise ConfigError(
                f"{what} = {value:,} is over the {self.name} limit of {cap:,}",
                hint=hint,
                code="LIMIT_EXCEEDED",
                limit=cap,
                value=value,
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


MAX_LISTED = 500
"""Rows one listing returns at most (jobs, runs, heal sessions, paper sessions), for every front end."""


def listing(limit: Any) -> int:
    """A listing's ``limit`` as an int in [1, `MAX_LISTED`]."""
    return max(1, min(int(limit), MAX_LISTED))


USER = Limits("user")
"""Python API and CLI: the user's own machine, no caps."""

MCP = Limits(
    "MCP",
    max_sample_bars=5_000_000,
    max_trials=20_000,
    max_noise_series=500,
    max_splits=20,
    max_threads=os.cpu_count() or 1,
    default_sample={"kind": "synthetic", "n": 10_000, "seed": 0},
)
"""Requests from an MCP client."""
