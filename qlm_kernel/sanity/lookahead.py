"""`qlm.sanity.lookahead`: the truncation test (`qlm_kernel.strategy.lookahead`) as a `SanityReport`.

On a universe (portfolio mode) the test runs on each symbol's own frame (``u.frame(sym)``), which is
exactly what the strategy's ``signals()`` sees in a portfolio backtest: a strategy leaks if it leaks on
any symbol. The report names the symbols that fail; a symbol with too few bars for the default cuts
(<= 50) is skipped and listed, and explicit ``cuts`` count each symbol's own bars (cuts at or past a
symbol's last bar are dropped for it).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from qlm_kernel.sanity.check_report import SanityReport
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

    ``data`` may also be a universe (a `Universe`, a dict symbol -> frame, a stored universe's name as
    ``data`` or ``dataset=``): every symbol's own frame is tested (module docstring); ``numbers`` then
    count symbols (``n_symbols``, ``n_checked``, ``n_failed``) and ``details["failed"]`` names them,
    ``details["symbols"]`` holds each symbol's result.
    """
    from qlm_kernel.sanity.universes import universe_of

    strat = resolve_strategy(strategy, **params)
    universe = universe_of(data, dataset) if sample is None and not isinstance(data, pd.DataFrame) else None
    if universe is not None:
        return _universe_lookahead(strat, universe, cuts, n_cuts)
    frame = _frame(data, dataset, sample)
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


def _universe_lookahead(strat: Any, universe: Any, cuts: Any, n_cuts: int) -> SanityReport:
    """The truncation test on each symbol's own frame; fails naming the symbols that leak."""
    from qlm_kernel.strategy.lookahead import MIN_BARS

    per: dict[str, dict[str, Any]] = {}
    failed: list[str] = []
    skipped: list[str] = []
    first_found: tuple[str, Any] | None = None
    n_differences = 0
    for sym in universe.symbols:
        frame = universe.frame(sym)
        n = len(frame)
        own_cuts = None if cuts is None else [c for c in ([cuts] if np.isscalar(cuts) else cuts) if c < n]
        if (cuts is None and n <= MIN_BARS) or (cuts is not None and not own_cuts):
            skipped.append(sym)
            per[sym] = {"checked": False, "n_bars": n}
            continue
        found = find_lookahead(strat, frame, cuts=own_cuts, n_cuts=n_cuts)
        n_differences += found.n_differences
        per[sym] = {"checked": True, "passed": found.first is None, "n_bars": n, "cuts": found.cuts,
                    "n_differences": found.n_differences, "first": found.first}
        if found.first is not None:
            failed.append(sym)
            if first_found is None:
                first_found = (sym, found)
    checked = len(universe.symbols) - len(skipped)
    name = type(strat).name
    if first_found is not None:
        sym, found = first_found
        verdict = (f"Lookahead in {name} on {len(failed)} of {checked} symbols ({', '.join(failed)}). "
                   f"First, {sym}: " + found.verdict().split(": ", 1)[1])
    elif checked:
        verdict = (f"No lookahead found in {name} on any of {checked} symbols: signals and stops before "
                   "every cut are identical with and without the later data"
                   + (f" ({', '.join(skipped)} skipped: too few bars)." if skipped else "."))
    else:
        verdict = f"Nothing was checked: every symbol has too few bars (> {MIN_BARS} needed)."
    numbers: dict[str, Any] = {"n_symbols": len(universe.symbols), "n_checked": checked,
                               "n_failed": len(failed), "n_differences": n_differences}
    details: dict[str, Any] = {"strategy": name, "params": strat.params, "universe": universe.name,
                               "failed": failed, "skipped": skipped, "symbols": per, "fields": list(FIELDS)}
    if first_found is not None:
        details["first"] = {"symbol": first_found[0], **first_found[1].first}
    return SanityReport("lookahead", not failed and checked > 0, verdict, numbers, details)
