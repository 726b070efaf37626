"""The overfitting and lookahead checks, as every front end runs them (one function, one set of defaults).

``sanity_check("white_noise", strategy, sample=..., space=..., settings=...)`` runs one check and
returns its `SanityReport`. Strategy parameters and backtest settings are separate: the lookahead
check re-runs ``signals()`` with the params (settings cannot change signals, but are still checked),
the others pass the settings to every backtest. Defaults are the Python API's (`qlm.sanity.*`).

Portfolios: when the data is a universe (a `Universe`, a dict symbol -> frame, or a stored universe's name
as ``data`` or ``dataset=``), every check runs in portfolio mode: lookahead on each symbol's own frame,
white noise on jointly permuted universes, walk-forward with portfolio windows, PBO and the deflated
Sharpe on a portfolio grid optimization (rules in `qlm_kernel.sanity.universes` and each check).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from qlm_kernel.engine.settings import unknown_key_error
from qlm_kernel.errors import ConfigError
from qlm_kernel.optimization import grid_size
from qlm_kernel.sanity import (
    SanityReport,
    deflated_sharpe,
    lookahead,
    pbo,
    reality_check,
    report,
    universe_of,
    walk_forward,
    white_noise,
)
from qlm_kernel.session.limits import USER, Limits
from qlm_kernel.session.optimizing import optimize
from qlm_kernel.session.spec import RunSpec, check_mapping

CHECKS = ("lookahead", "white_noise", "walk_forward", "pbo", "deflated_sharpe", "reality_check", "report")
"""``report`` runs every check that applies to one grid optimization (`qlm_kernel.sanity.overall`)."""
DEFAULT_NOISE_SERIES = 100
DEFAULT_SPLITS = 5


def check_counts(check: str, space: dict[str, Any], n: int, n_splits: int, limits: Limits) -> None:
    """The front end's caps on one check's work: grid size, white-noise series and folds, and the
    evaluations they multiply to (LIMIT_EXCEEDED naming the cap's server option); cheap, runs nothing."""
    if check == "lookahead" or not space:
        return
    sized = {k: v if isinstance(v, (list, tuple, range)) else [v] for k, v in space.items()}
    grid = grid_size(sized)
    limits.check("grid size", grid, "max_trials", "use fewer values per parameter")
    if check == "white_noise":
        limits.check("white-noise series n", int(n), "max_noise_series", "use a smaller n")
        limits.check("white-noise evaluations (n x grid size)", int(n) * grid, "max_trials",
                     "use a smaller n or fewer values per parameter")
    if check in ("walk_forward", "report"):
        limits.check("walk-forward n_splits", int(n_splits), "max_splits", "use fewer splits")
        limits.check("walk-forward evaluations (n_splits x grid size)", int(n_splits) * grid, "max_trials",
                     "use fewer splits or fewer values per parameter")


def sanity_check(
    check: str,
    strategy: Any,
    *,
    data: Any = None,
    dataset: str | None = None,
    sample: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
    settings: dict[str, Any] | None = None,
    space: dict[str, list[Any]] | None = None,
    n: int = DEFAULT_NOISE_SERIES,
    n_splits: int = DEFAULT_SPLITS,
    objective: str = "sharpe",
    seed: int = 0,
    limits: Limits = USER,
) -> SanityReport:
    """Run one check (``CHECKS``) on a strategy and its data; its report (passed, verdict, numbers).

    ``lookahead`` uses ``params``; ``white_noise`` (``n`` permuted series), ``walk_forward``
    (``n_splits`` folds), ``pbo``, ``deflated_sharpe``, ``reality_check`` (against zero) and ``report``
    search ``space`` (the last four run one grid optimization, recorded as a job, and judge it; ``report``
    runs every check that applies to it, walk-forward with ``n_splits`` folds, and returns an
    `OverfitReport` with one verdict).
    """
    if check not in CHECKS:
        raise unknown_key_error("check", check, CHECKS, code="BAD_ARGUMENT")
    universe = universe_of(data, dataset) if sample is None and not isinstance(data, pd.DataFrame) else None
    if universe is not None:
        spec = RunSpec.build(strategy, params=params, settings=settings, limits=limits)
        check_universe_cells(universe, limits)
        frame, dataset_name = universe, None  # optimize names the job's dataset after the universe
    else:
        spec = RunSpec.build(
            strategy, params=params, settings=settings, data=data, dataset=dataset, sample=sample,
            limits=limits
        )
        frame, dataset_name = spec.data.resolve(limits)
    if check == "lookahead":
        return lookahead(spec.strategy, frame, **spec.params)
    space = check_mapping(space, "space")
    if not space:
        raise ConfigError(
            f"the {check} check needs a parameter space",
            code="BAD_ARGUMENT",
            hint='e.g. space={"fast": [5, 10, 20], "slow": [50, 100]}',
        )
    check_counts(check, space, n, n_splits, limits)
    if check == "white_noise":
        return white_noise(
            spec.strategy, frame, space=space, n=int(n), objective=objective, seed=seed, **spec.settings
        )
    if check == "walk_forward":
        return walk_forward(
            spec.strategy, frame, space=space, n_splits=int(n_splits), objective=objective, **spec.settings
        )
    opt = optimize(
        spec.strategy,
        frame,
        space,
        method="grid",
        objective=objective,
        seed=seed,
        dataset=dataset_name,
        limits=limits,
        **spec.settings,
    )
    if check == "report":
        return report(opt, strategy=spec.strategy, data=frame, space=space, seed=seed, n_splits=int(n_splits))
    if check == "reality_check":
        return reality_check(opt, "zero", seed=seed)
    return pbo(opt) if check == "pbo" else deflated_sharpe(opt)


def check_universe_cells(universe: Any, limits: Limits) -> None:
    """A front end serving others (``limits`` not USER) runs a universe up to the portfolio cap."""
    from qlm_kernel.session.portfolios import MAX_PORTFOLIO_CELLS_MCP

    cells = universe.close.size
    if limits is not USER and cells > MAX_PORTFOLIO_CELLS_MCP:
        raise ConfigError(f"universe {universe.name!r} has {cells:,} bars x symbols, over the {limits.name} "
                          f"limit of {MAX_PORTFOLIO_CELLS_MCP:,}", code="LIMIT_EXCEEDED",
                          hint="run it from a notebook or the CLI", limit=MAX_PORTFOLIO_CELLS_MCP,
                          value=cells)
