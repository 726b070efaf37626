"""`qlm.optimize` and its job operations, as every front end starts them.

``qlm.optimize(...)`` runs a search (`qlm_kernel.optimization.optimize`); the job it creates is
watched and stopped with ``qlm.optimize.status(job_id)``, ``qlm.optimize.list()``,
``qlm.optimize.cancel(job_id)`` and continued with ``qlm.optimize.resume(job_id)`` — the same
functions the CLI (``qlm jobs``), the MCP tools and the widgets call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from qlm_kernel.errors import OptimizationError
from qlm_kernel.optimization import OptimizationResult
from qlm_kernel.optimization import optimize as run_search
from qlm_kernel.session.jobs import cancel_job, get_job, list_jobs
from qlm_kernel.session.limits import USER, Limits
from qlm_kernel.session.spec import check_sample_size
from qlm_kernel.store.jobs import JOB_LIST_FIXES
from qlm_kernel.workspace import stores
from qlm_kernel.workspace.data import check_sample


def optimize(
    strategy: Any,
    data: Any = None,
    space: Mapping[str, Any] | None = None,
    *,
    dataset: str | None = None,
    sample: dict[str, Any] | None = None,
    n_jobs: int | None = None,
    resume: str | None = None,
    limits: Limits = USER,
    isolate: bool = False,
    time_limit: float | None = None,
    **options: Any,
) -> OptimizationResult:
    """Search ``space`` for the parameters of ``strategy`` that are best by ``objective``.

    Every argument is `qlm_kernel.optimization.optimize`'s (``method="auto"``, ``objective="sharpe"``,
    ``maximize``, ``constraints``, ``n_trials``, ``seed``, ``executor``, ``batch_size``, ``record``,
    ``progress``, ``patience``, and backtest settings by name); data as in `qlm.backtest` (a frame or
    file, ``dataset=`` or ``sample=``). ``limits`` caps the work for front ends that serve others
    (MCP): its default sample when no data is named, the sample size, threads and evaluations.
    ``isolate=True`` runs the search in a worker process (`qlm_kernel.session.isolate`; a strategy file,
    progress callbacks still called here), killed after ``time_limit`` seconds (default 600).
    """
    if options.pop("per_symbol", False):
        return _per_symbol(strategy, data, space, dataset=dataset, n_jobs=n_jobs, limits=limits,
                           isolate=isolate, time_limit=time_limit, **options)
    if isolate:
        from qlm_kernel.session.isolate import run_in_worker

        progress = options.pop("progress", None)
        kwargs = {"data": data, "space": space, "dataset": dataset, "sample": sample, "n_jobs": n_jobs,
                  "resume": resume, "limits": limits, **options}
        return run_in_worker("qlm_kernel.session.optimizing:optimize", strategy, kwargs, time_limit, progress)
    if data is None and dataset is None and sample is None and resume is None:
        sample = limits.default_sample
    if sample is not None:
        check_sample_size(sample, limits)
        sample = check_sample(sample, limits.max_sample_bars)
    if limits.max_threads is not None and n_jobs is not None:
        n_jobs = min(int(n_jobs), limits.max_threads)
    return run_search(strategy, data, space, dataset=dataset, sample=sample, n_jobs=n_jobs, resume=resume,
                      max_trials=limits.max_trials, **options)


def _per_symbol(strategy: Any, data: Any, space: Mapping[str, Any] | None, *, dataset: str | None,
                **options: Any) -> Any:
    """``per_symbol=True``: each symbol of a universe optimized on its own bars (one job per symbol);
    the result trades every symbol with its own best parameters (`PerSymbolOptimization.backtest`)."""
    from qlm_kernel.sanity.universes import universe_of
    from qlm_kernel.session.symbol_optimizing import optimize_per_symbol

    universe = universe_of(data, dataset)
    if universe is None:
        raise OptimizationError(
            "per_symbol=True optimizes each symbol of a universe; this data is a single asset",
            hint="pass a universe: qlm.optimize(strategy, 'my_universe', space, per_symbol=True)",
            code="BAD_SETTING",
        )
    return optimize_per_symbol(strategy, universe, space, optimize, **options)


def resume_job(
    job_id: str, *, n_jobs: int | None = None, progress: Callable[[dict[str, Any]], Any] | None = None
) -> OptimizationResult:
    """Finish a stored optimization job (killed, cancelled or failed) from its recorded configuration:
    the same strategy file, data, space, method and settings; trials already stored are not re-run."""
    with stores.reading() as store:
        job = None if store is None else store.get_job(str(job_id))
    if job is None or job.get("kind") != "optimize":
        raise OptimizationError(
            f"no optimization job {job_id!r} to resume",
            code="NOT_FOUND",
            hint="a job id comes from an optimization",
            fixes=JOB_LIST_FIXES,
            job_id=str(job_id),
        )
    config = job.get("config") or {}
    path = config.get("strategy_path")
    if not path:
        raise OptimizationError(
            f"job {job_id} ran a strategy defined in a notebook, not a file; resume needs the class",
            hint=f"call qlm.optimize(YourStrategy, ..., resume={str(job_id)!r})",
            code="RESUME_MISMATCH",
            job_id=str(job_id),
        )
    from qlm_kernel.strategy import resolve_strategy

    strategy = resolve_strategy(f"{path}:{config.get('class_name')}", **(config.get("fixed_params") or {}))
    return optimize(
        strategy if config.get("fixed_params") else type(strategy),
        None,
        config.get("space"),
        method=config.get("method", "auto"),
        objective=config.get("objective", "sharpe"),
        maximize=config.get("maximize"),
        constraints=config.get("constraints"),
        n_trials=config.get("n_trials"),
        seed=config.get("seed", 0),
        patience=config.get("patience", 5),
        n_jobs=n_jobs,
        resume=str(job_id),
        progress=progress,
        **(config.get("settings") or {}),
    )


optimize.cancel = cancel_job  # type: ignore[attr-defined]
optimize.status = get_job  # type: ignore[attr-defined]
optimize.list = list_jobs  # type: ignore[attr-defined]
optimize.resume = resume_job  # type: ignore[attr-defined]
