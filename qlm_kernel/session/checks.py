"""The overfitting and lookahead checks, as every front end runs them (one function, one set of defaults).

``sanity_check("white_noise", strategy, sample=..., space=..., settings=...)`` runs one check and
returns its `SanityReport`. Strategy parameters and backtest settings are separate: the lookahead
check re-runs ``signals()`` with the params (settings cannot change signals, but are still checked),
the others pass the settings to every backtest. Defaults are the Python API's (`qlm.sanity.*`).
"""

from __future__ import annotations

from typing import Any

from qlm_kernel.engine.settings import unknown_key_error
from qlm_kernel.errors import ConfigError
from qlm_kernel.optimization import grid_size
from qlm_kernel.sanity import SanityReport, deflated_sharpe, lookahead, pbo, walk_forward, white_noise
from qlm_kernel.session.limits import USER, Limits
from qlm_kernel.session.optimizing import optimize
from qlm_kernel.session.spec import RunSpec, check_mapping

CHECKS = ("lookahead", "white_noise", "walk_forward", "pbo", "deflated_sharpe")
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
    if check == "walk_forward":
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
    (``n_splits`` folds), ``pbo`` and ``deflated_sharpe`` search ``space`` (the last two run one grid
    optimization, recorded as a job, and judge it).
    """
    if check not in CHECKS:
        raise unknown_key_error("check", check, CHECKS, code="BAD_ARGUMENT")
    spec = RunSpec.build(
        strategy, params=params, settings=settings, data=data, dataset=dataset, sample=sample, limits=limits
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
    return pbo(opt) if check == "pbo" else deflated_sharpe(opt)
