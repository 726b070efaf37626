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
    """Caps for one kind of front end (None = no cap); ``option_prefix`` names the server options that
    set them (``QLM_MCP_MAX_TRIALS`` for ``max_trials`` ...), quoted in every refusal."""

    name: str
    max_sample_bars: int | None = None
    max_trials: int | None = None
    """Evaluations one request may plan: grid size, random/genetic trials, series x grid of a check."""
    max_noise_series: int | None = None
    max_splits: int | None = None
    max_threads: int | None = None
    max_paper_sessions: int | None = None
    """Paper sessions running at once in this process."""
    max_time_limit: float | None = None
    """The largest ``time_limit`` (seconds) a request may give a tool that runs strategy code."""
    default_sample: dict[str, Any] | None = field(default=None)
    """Data used when a request names none (None: the caller must name data)."""
    option_prefix: str | None = None

    def option(self, cap: str) -> str | None:
        """The server option (environment variable) that sets ``cap``, or None."""
        return f"{self.option_prefix}{cap.upper()}" if self.option_prefix else None

    def check(self, what: str, value: float | None, cap: str, hint: str = "") -> None:
        """Refuse ``value`` above the cap named ``cap`` with a ConfigError (code LIMIT_EXCEEDED) naming
        the cap and the server option that raises it."""
        limit = getattr(self, cap)
        if limit is None or value is None or value <= limit:
            return
        option = self.option(cap)
        how = (f"the cap is the server option {option} (an environment variable of the process that "
               f"starts the kernel or `qlm mcp`), not a tool argument") if option else ""
        raise ConfigError(
            f"{what} = {value:,} is over the {self.name} limit of {limit:,} ({cap})",
            hint="; ".join(part for part in (hint, how) if part),
            code="LIMIT_EXCEEDED",
            limit=limit,
            value=value,
            cap=cap,
            option=option,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


CAPS = ("max_sample_bars", "max_trials", "max_noise_series", "max_splits", "max_threads",
        "max_paper_sessions", "max_time_limit")


def limits_from_env(name: str, prefix: str, env: dict[str, str] | None = None, **defaults: Any) -> Limits:
    """`Limits` with ``defaults``, each cap overridable by the environment variable ``prefix + CAP``."""
    source = os.environ if env is None else env
    values = dict(defaults)
    for cap in CAPS:
        text = source.get(f"{prefix}{cap.upper()}", "").strip()
        if not text:
            continue
        try:
            number = float(text) if cap == "max_time_limit" else int(text)
        except ValueError:
            number = -1
        if number <= 0:
            raise ConfigError(f"{prefix}{cap.upper()}={text!r} is not a positive number",
                              hint="set it to a positive number (an integer for counts)",
                              code="BAD_OPTION", option=f"{prefix}{cap.upper()}")
        values[cap] = number
    return Limits(name, option_prefix=prefix, **values)


MAX_LISTED = 500
"""Rows one listing returns at most (jobs, runs, heal sessions, paper sessions), for every front end."""


def listing(limit: Any) -> int:
    """A listing's ``limit`` as an int in [1, `MAX_LISTED`]."""
    return max(1, min(int(limit), MAX_LISTED))


USER = Limits("user")
"""Python API and CLI: the user's own machine, no caps."""

MCP = limits_from_env(
    "MCP",
    "QLM_MCP_",
    max_sample_bars=5_000_000,
    max_trials=20_000,
    max_noise_series=500,
    max_splits=20,
    max_threads=os.cpu_count() or 1,
    max_paper_sessions=4,
    max_time_limit=3600.0,
    default_sample={"kind": "synthetic", "n": 10_000, "seed": 0},
)
"""Requests from an MCP client; every cap is a server option ``QLM_MCP_<CAP>`` (e.g. QLM_MCP_MAX_TRIALS)."""
