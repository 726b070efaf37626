"""`research_loop`: the question QLM exists to answer, in one call — is this strategy's edge real?

Optimize the strategy on a train span (the first ``train_fraction`` of the bars), run the best
parameters on the span it never saw, judge the selection with PBO (Bailey et al., CSCV over the
train-span trials) and the deflated Sharpe ratio (the best of N trials, corrected for N), and say it in
one honest sentence. The run command's demo ends with it; ``qlm research`` runs it on any strategy.

The verdict's rule (stated so nobody has to guess): the edge "may be real" only when the out-of-sample
objective is positive, PBO is below 0.5 and the deflated Sharpe passes (DSR > 0.95); otherwise "this
edge is not real" (with which of the three failed). A pass is not proof: check other data.

On a universe (a `Universe`, a dict symbol -> frame, or a stored universe's name as ``data`` or
``dataset=``) the same loop runs in portfolio mode: the split is by time on the universe's union bars
(the first ``train_fraction`` of its timestamps, then the rest; each span is `Universe.between` its first
and last timestamp, so a symbol without a bar in a span is left out of it), the train span is optimized
as a portfolio (one parameter set for every symbol, shared cash), the best parameters are run with the
portfolio backtest on the test span (recorded like ``qlm.backtest_portfolio``, source "research"), and
PBO and the deflated Sharpe judge the portfolio trials' equity. The test span starts flat, as for one
asset: nothing is carried over from the train span.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from qlm_kernel.errors import ConfigError
from qlm_kernel.jsonsafe import json_safe
from qlm_kernel.sanity import deflated_sharpe, pbo, universe_of
from qlm_kernel.session.limits import USER, Limits
from qlm_kernel.session.optimizing import optimize
from qlm_kernel.session.spec import DataSource
from qlm_kernel.workspace.runs import recorded_backtest

DEFAULT_TRAIN_FRACTION = 0.7


def split_train_test(frame: Any, train_fraction: float) -> tuple[Any, Any]:
    """(train, test): the first ``train_fraction`` of the bars and the rest (both non-empty). A `Universe`
    is split on its union bars (module docstring): two universes, by time."""
    if not 0.1 <= float(train_fraction) <= 0.9:
        raise ConfigError(f"train_fraction={train_fraction!r} must be between 0.1 and 0.9",
                          hint="e.g. train_fraction=0.7 (optimize on the first 70 %, test on the rest)",
                          code="BAD_ARGUMENT", value=repr(train_fraction))
    cut = int(len(frame) * float(train_fraction))
    if not hasattr(frame, "iloc"):  # a universe: cut by time
        from qlm_kernel.sanity.universes import span

        return span(frame, 0, cut), span(frame, cut, len(frame))
    return frame.iloc[:cut], frame.iloc[cut:]


def verdict_sentence(n_variants: int, objective: str, in_sample: float | None, out_of_sample: float | None,
                     pbo_value: float | None, dsr_passed: bool, dsr_value: float | None) -> tuple[bool, str]:
    """(may_be_real, the sentence) by the rule in this module's docstring."""
    def num(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.2f}"

    failed = []
    if out_of_sample is None or out_of_sample <= 0:
        failed.append(f"it loses out of sample ({objective} {num(out_of_sample)})")
    if pbo_value is None or pbo_value >= 0.5:
        failed.append(f"the selection is more likely overfit than not (PBO {num(pbo_value)})")
    if not dsr_passed:
        failed.append(f"the best {objective} is not significant once {n_variants} tries are counted "
                      f"(DSR {num(dsr_value)})")
    head = (f"the best of {n_variants} variants earns {objective} {num(in_sample)} in sample, "
            f"{num(out_of_sample)} out of sample; PBO {num(pbo_value)}, deflated Sharpe {num(dsr_value)}: ")
    if failed:
        return False, head + "this edge is not real — " + "; ".join(failed) + "."
    return True, head + "this edge may be real; check it on other data before trusting it."


def research_loop(
    strategy: Any,
    data: Any = None,
    *,
    space: Mapping[str, Any],
    dataset: str | None = None,
    sample: dict[str, Any] | None = None,
    train_fraction: float = DEFAULT_TRAIN_FRACTION,
    objective: str = "sharpe",
    limits: Limits = USER,
    record: bool | None = None,
    **settings: Any,
) -> dict[str, Any]:
    """Optimize on the train span, test the best out of sample, judge with PBO and DSR; a JSON-safe dict
    with the spans, the best parameters, both stats, both checks' numbers and ``verdict``.

    ``data`` may be a universe (module docstring): then ``portfolio`` is True and each span also lists
    its ``symbols``; the test run is a portfolio backtest."""
    universe = universe_of(data, dataset) if sample is None and not isinstance(data, pd.DataFrame) else None
    if universe is not None:
        return _portfolio_loop(strategy, universe, space=space, train_fraction=train_fraction,
                               objective=objective, limits=limits, record=record, **settings)
    frame, dataset_name = DataSource.of(data, dataset=dataset, sample=sample, limits=limits).resolve(limits)
    train, test = split_train_test(frame, train_fraction)
    opt = optimize(strategy, train, space, method="grid", objective=objective, record=record,
                   limits=limits, **settings)
    if opt.best_params is None:
        raise ConfigError("no variant of the strategy produced a usable result on the train span",
                          hint="widen the space or the data; see the trials for the errors",
                          code="NO_FEASIBLE_TRIAL")
    oos = recorded_backtest(strategy, test, params=opt.best_params, settings=settings, dataset=dataset_name,
                            record=record, source="research")
    overfit, deflated = pbo(opt), deflated_sharpe(opt)
    return _answer(opt, oos, overfit, deflated, objective, dataset_name, _span(train), _span(test))


def _span(data: Any) -> dict[str, Any]:
    out = {"bars": len(data), "start": str(data.index[0]), "end": str(data.index[-1])}
    if hasattr(data, "symbols"):
        out["symbols"] = list(data.symbols)
    return out


def _portfolio_loop(strategy: Any, universe: Any, *, space: Mapping[str, Any], train_fraction: float,
                    objective: str, limits: Limits, record: bool | None, **settings: Any) -> dict[str, Any]:
    """`research_loop` on a universe (module docstring)."""
    from qlm_kernel.session.checks import check_universe_cells
    from qlm_kernel.session.portfolios import backtest_portfolio

    check_universe_cells(universe, limits)
    train, test = split_train_test(universe, train_fraction)
    opt = optimize(strategy, train, space, method="grid", objective=objective, record=record,
                   limits=limits, **settings)
    if opt.best_params is None:
        raise ConfigError("no variant of the strategy produced a usable result on the train span",
                          hint="widen the space or the data; see the trials for the errors",
                          code="NO_FEASIBLE_TRIAL")
    oos = backtest_portfolio(strategy, test, record=record, source="research", limits=limits,
                             **opt.best_params, **settings)
    found = _answer(opt, oos, pbo(opt), deflated_sharpe(opt), objective, universe.name, _span(train),
                    _span(test))
    found["portfolio"] = True
    return found


def _answer(opt: Any, oos: Any, overfit: Any, deflated: Any, objective: str, dataset_name: str | None,
            train: dict[str, Any], test: dict[str, Any]) -> dict[str, Any]:
    in_sample = opt.best_stats.get(objective) if opt.best_stats else None
    out_of_sample = oos.stats.get(objective)
    real, sentence = verdict_sentence(len(opt.trials), objective, in_sample, out_of_sample,
                                      overfit.numbers.get("pbo"), bool(deflated.passed),
                                      deflated.numbers.get("dsr"))
    return json_safe({
        "strategy": oos.strategy_name,
        "dataset": dataset_name,
        "objective": objective,
        "train": train,
        "test": test,
        "variants": len(opt.trials),
        "job_id": opt.job_id,
        "best_params": opt.best_params,
        "in_sample": opt.best_stats,
        "out_of_sample": dict(oos.stats),
        "pbo": overfit.to_dict(),
        "deflated_sharpe": deflated.to_dict(),
        "warnings": opt.warnings,
        "may_be_real": real,
        "verdict": sentence,
    })
