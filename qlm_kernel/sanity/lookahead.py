"""`qlm.sanity.lookahead`: the truncation test (`qlm_kernel.strategy.lookahead`) as a `SanityReport`."""

from __future__ import annotations

from typing import Any

import pandas as pd

from qlm_kernel.sanity.report import SanityReport
from qlm_kernel.strategy import resolve_strategy
from qlm_kernel.strategy.lookahead import FIELDS, find_lookahead

MAX_FINDINGS = 20


def lookahead(
    strategy: Any,
    data: Any = None,
    *,
    dataset: str | None = None,
    sample: dict[str, Any] | None = None,
    cuts: Any = None,
    n_cuts: int = 5,
    **params: Any,
) -> SanityReport:
    """Compare the strategy's signals and per-bar stops on the full data with runs on truncated data.

    ``strategy``: anything `resolve_strategy` accepts (class, instance, file path, name), with
    ``params`` applied. ``data``: an OHLCV DataFrame or file, or ``dataset=`` / ``sample=`` as in
    `qlm.backtest`.
    ``cuts``: numbers of bars to keep (each 1 <= cut < len(data)); default ``n_cuts`` cuts evenly
    spaced over the second half of the data, each keeping at least 50 bars, the last dropping only
    the final bar. ``passed`` only if every signal and stop on every bar before every cut is
    identical (stops: NaN equals NaN, relative tolerance 1e-9).
    """
    frame = _frame(data, dataset, sample)
    strat = resolve_strategy(strategy, **params)
    found = find_lookahead(strat, frame, cuts=cuts, n_cuts=n_cuts)
    numbers: dict[str, Any] = {
        "n_cuts": len(found.cuts),
        "n_bars": found.n_bars,
        "n_differences": found.n_differences,
        "n_findings": len(found.findings),
    }
    details: dict[str, Any] = {
        "strategy": found.strategy,
        "params": found.params,
        "cuts": found.cuts,
        "fields": list(FIELDS),
    }
    first = found.first
    if first is not None:
        numbers.update(first_bar=first["bar"], first_field=first["field"], first_cut=first["cut"])
        details["first"] = first
        details["findings"] = sorted(found.findings, key=lambda f: (f["bar"], f["cut"]))[:MAX_FINDINGS]
    return SanityReport("lookahead", first is None, found.verdict(), numbers, details)


def _frame(data: Any, dataset: str | None, sample: dict[str, Any] | None) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame) and dataset is None and sample is None:
        return data
    from qlm_kernel.workspace.data import resolve_data

    frame, _ = resolve_data(data, dataset=dataset, sample=sample)
    return frame
