"""Lookahead by truncation: does any signal on bar t change when the data after t is removed?

A strategy may only use what was known at the close of each bar. Re-running ``signals()`` on the
data truncated at a cut and comparing with the full run on every bar before the cut exposes
``shift(-1)``, centered rolling windows, full-sample normalization (``close / close.max()``),
back-filling and similar leaks: any difference proves the value at that bar depended on later bars.
The converse does not hold — a leak that happens not to change a signal at the tested cuts goes
unnoticed — so more cuts make the check stricter. `qlm.sanity.lookahead` reports on it; the paper
replay refuses a strategy it catches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from qlm_kernel.errors import ConfigError, QLMError
from qlm_kernel.strategy.base import SignalsStrategy, Strategy
from qlm_kernel.strategy.compute import compute_signals
from qlm_kernel.strategy.signals import SIGNAL_FIELDS, STOP_FIELDS

MIN_BARS = 50
FIELDS = (*SIGNAL_FIELDS, *STOP_FIELDS)


@dataclass
class LookaheadFindings:
    """What the truncation test saw: the cuts tried and every (cut, field) whose values changed."""

    strategy: str
    params: dict[str, Any]
    n_bars: int
    cuts: list[int]
    findings: list[dict[str, Any]] = field(default_factory=list)
    n_differences: int = 0

    @property
    def first(self) -> dict[str, Any] | None:
        """The earliest changed bar (then the earliest cut), or None when nothing changed."""
        return min(self.findings, key=lambda f: (f["bar"], f["cut"])) if self.findings else None

    def verdict(self) -> str:
        """One or two plain sentences: what leaked where, or that nothing did."""
        first = self.first
        if first is None:
            return (
                f"No lookahead found in {self.strategy}: signals and stops on all bars before each of "
                f"{len(self.cuts)} cuts are identical with and without the later data (a leak that never "
                "changes a value at these cuts would go unnoticed)."
            )
        return (
            f"Lookahead in {self.strategy}: {first['field']} at bar {first['bar']} ({first['time']}) is "
            f"{first['full_value']!r} with the full data but {first['truncated_value']!r} when the data "
            f"ends at bar {first['cut'] - 1}, so the strategy uses data from after that bar. Look for "
            "shift(-k), centered rolling windows, bfill, or statistics over the whole series."
        )


def find_lookahead(
    strat: Strategy, frame: pd.DataFrame, *, cuts: Any = None, n_cuts: int = 5
) -> LookaheadFindings:
    """Compare ``strat``'s signals and per-bar stops on ``frame`` with runs on truncated copies.

    ``cuts``: numbers of bars to keep (each 1 <= cut < len(frame)); default ``n_cuts`` cuts evenly
    spaced over the second half of the data, each keeping at least 50 bars, the last dropping only
    the final bar. Stops compare NaN equal to NaN, relative tolerance 1e-9.
    """
    if isinstance(strat, SignalsStrategy):
        raise ConfigError(
            "lookahead needs a strategy to re-run on truncated data, not ready-made Signals",
            hint="pass the Strategy class, instance, file path or name that produced the signals",
            code="BAD_STRATEGY",
        )
    n = len(frame)
    cut_list = _cuts(cuts, n_cuts, n)
    full = _arrays(compute_signals(strat, frame), n, frame.index)
    out = LookaheadFindings(type(strat).name, strat.params, n, [int(c) for c in cut_list])
    for cut in cut_list:
        part_frame = frame.iloc[:cut].copy()
        try:
            part = _arrays(compute_signals(strat, part_frame), cut, part_frame.index)
        except QLMError as err:
            err.context.setdefault("lookahead_cut", int(cut))
            raise
        for name in FIELDS:
            diff = _differences(full[name], part[name], cut)
            if diff.size == 0:
                continue
            out.n_differences += int(diff.size)
            bar = int(diff[0])
            out.findings.append(
                {
                    "cut": int(cut),
                    "field": name,
                    "bar": bar,
                    "time": str(frame.index[bar]),
                    "full_value": _value(full[name], bar),
                    "truncated_value": _value(part[name], bar),
                    "n_bars_changed": int(diff.size),
                }
            )
    return out


def _cuts(cuts: Any, n_cuts: int, n: int) -> list[int]:
    if cuts is not None:
        values = [cuts] if np.isscalar(cuts) else list(cuts)
        out = []
        for c in values:
            if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or not 1 <= c < n:
                raise ConfigError(
                    f"lookahead: each cut must be an integer number of bars in [1, {n - 1}], got {c!r}",
                    hint=f"e.g. cuts=[{n // 2}, {n - 1}] keeps the first {n // 2} and {n - 1} bars",
                    code="BAD_CUTS",
                    value=repr(c),
                )
            out.append(int(c))
        if not out:
            raise ConfigError(
                "lookahead: cuts is empty", hint="leave cuts=None for the default", code="BAD_CUTS"
            )
        return sorted(set(out))
    if n <= MIN_BARS:
        raise ConfigError(
            f"lookahead needs more than {MIN_BARS} bars of data, got {n}",
            hint="pass a longer history (the check truncates it and needs warm-up on both sides)",
            code="TOO_FEW_BARS",
            n_bars=n,
        )
    if isinstance(n_cuts, bool) or not isinstance(n_cuts, (int, np.integer)) or n_cuts < 1:
        raise ConfigError(
            f"lookahead: n_cuts must be an integer >= 1, got {n_cuts!r}",
            hint="the default is 5",
            code="BAD_CUTS",
            value=repr(n_cuts),
        )
    lo = max(MIN_BARS, n // 2)
    points = np.linspace(lo, n - 1, int(n_cuts)) if n_cuts > 1 else np.array([n - 1])
    return sorted({round(float(p)) for p in points})


def _arrays(sig: Any, n: int, index: pd.Index) -> dict[str, np.ndarray]:
    arrays = dict(zip(SIGNAL_FIELDS, sig.to_arrays(n, index), strict=True))
    arrays.update(zip(STOP_FIELDS, sig.stop_arrays(n, index), strict=True))
    return arrays


def _differences(full: np.ndarray, part: np.ndarray, cut: int) -> np.ndarray:
    """Bars < cut where the two runs disagree (stop arrays of length 1 are a constant)."""
    a = np.broadcast_to(full, (cut,)) if full.shape[0] == 1 else full[:cut]
    b = np.broadcast_to(part, (cut,)) if part.shape[0] == 1 else part
    if a.dtype == np.bool_:
        return np.flatnonzero(a != b)
    same = np.isclose(a, b, rtol=1e-9, atol=0.0, equal_nan=True)
    return np.flatnonzero(~same)


def _value(arr: np.ndarray, bar: int) -> Any:
    value = arr[0] if arr.shape[0] == 1 else arr[bar]
    value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value
