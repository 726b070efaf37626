"""Lookahead check: does any signal on bar t change when the data after t is removed?

A strategy may only use what was known at the close of each bar. Re-running ``signals()`` on the
data truncated at a cut and comparing with the full run on every bar before the cut exposes
``shift(-1)``, centered rolling windows, full-sample normalization (``close / close.max()``),
back-filling and similar leaks: any difference proves the value at that bar depended on later bars.
The converse does not hold — a leak that happens not to change a signal at the tested cuts goes
unnoticed — so more cuts make the check stricter.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from qlm_kernel.errors import ConfigError, QLMError
from qlm_kernel.sanity.report import SanityReport
from qlm_kernel.strategy import (
    SIGNAL_FIELDS,
    STOP_FIELDS,
    SignalsStrategy,
    compute_signals,
    resolve_strategy,
)

MIN_BARS = 50
MAX_FINDINGS = 20


def lookahead(
    strategy: Any,
    data: Any,
    *,
    cuts: Any = None,
    n_cuts: int = 5,
    **params: Any,
) -> SanityReport:
    """Compare the strategy's signals and per-bar stops on the full data with runs on truncated data.

    ``strategy``: anything `resolve_strategy` accepts (class, instance, file path, name), with
    ``params`` applied. ``data``: an OHLCV DataFrame (or a file / dataset name `resolve_data` knows).
    ``cuts``: numbers of bars to keep (each 1 <= cut < len(data)); default ``n_cuts`` cuts evenly
    spaced over the second half of the data, each keeping at least 50 bars, the last dropping only
    the final bar. ``passed`` only if every signal and stop on every bar before every cut is
    identical (stops: NaN equals NaN, relative tolerance 1e-9).
    """
    frame = _frame(data)
    strat = resolve_strategy(strategy, **params)
    if isinstance(strat, SignalsStrategy):
        raise ConfigError(
            "lookahead needs a strategy to re-run on truncated data, not ready-made Signals",
            hint="pass the Strategy class, instance, file path or name that produced the signals",
            code="BAD_STRATEGY",
        )
    n = len(frame)
    cut_list = _cuts(cuts, n_cuts, n)
    full = _arrays(compute_signals(strat, frame), n, frame.index)

    findings: list[dict[str, Any]] = []
    n_diff_total = 0
    for cut in cut_list:
        part_frame = frame.iloc[:cut].copy()
        try:
            part = _arrays(compute_signals(strat, part_frame), cut, part_frame.index)
        except QLMError as err:
            err.context.setdefault("lookahead_cut", int(cut))
            raise
        for field in (*SIGNAL_FIELDS, *STOP_FIELDS):
            diff = _differences(full[field], part[field], cut)
            if diff.size == 0:
                continue
            n_diff_total += int(diff.size)
            bar = int(diff[0])
            findings.append(
                {
                    "cut": int(cut),
                    "field": field,
                    "bar": bar,
                    "time": str(frame.index[bar]),
                    "full_value": _value(full[field], bar),
                    "truncated_value": _value(part[field], bar),
                    "n_bars_changed": int(diff.size),
                }
            )

    name = type(strat).name
    numbers: dict[str, Any] = {
        "n_cuts": len(cut_list),
        "n_bars": n,
        "n_differences": n_diff_total,
        "n_findings": len(findings),
    }
    details: dict[str, Any] = {
        "strategy": name,
        "params": strat.params,
        "cuts": [int(c) for c in cut_list],
        "fields": [*SIGNAL_FIELDS, *STOP_FIELDS],
    }
    if not findings:
        verdict = (
            f"No lookahead found in {name}: signals and stops on all bars before each of {len(cut_list)} "
            "cuts are identical with and without the later data (a leak that never changes a value "
            "at these cuts would go unnoticed)."
        )
        return SanityReport("lookahead", True, verdict, numbers, details)

    first = min(findings, key=lambda f: (f["bar"], f["cut"]))
    numbers.update(first_bar=first["bar"], first_field=first["field"], first_cut=first["cut"])
    details["first"] = first
    details["findings"] = sorted(findings, key=lambda f: (f["bar"], f["cut"]))[:MAX_FINDINGS]
    verdict = (
        f"Lookahead in {name}: {first['field']} at bar {first['bar']} ({first['time']}) is "
        f"{first['full_value']!r} with the full data but {first['truncated_value']!r} when the data "
        f"ends at bar {first['cut'] - 1}, so the strategy uses data from after that bar. Look for "
        "shift(-k), centered rolling windows, bfill, or statistics over the whole series."
    )
    return SanityReport("lookahead", False, verdict, numbers, details)


def _frame(data: Any) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        return data
    from qlm_kernel.session.data import resolve_data

    frame, _ = resolve_data(data)
    return frame


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
