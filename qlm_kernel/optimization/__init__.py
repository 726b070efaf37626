"""Parameter optimization: grid, random and genetic (DEAP) searches as recorded, resumable jobs.

``optimize(strategy, data, space, method=..., objective=...)`` returns an `OptimizationResult`;
``cancel_in_process(job_id)`` stops one running here after its current batch. Trials run on threads
(the engine releases the GIL) or on a ``dask.distributed`` cluster.

Names load on first use (PEP 562, `qlm_kernel.lazy`): a job listing that asks whether a job runs here
(`running_in_process`) imports the job registry, not the engine and pandas behind `optimize`.
"""

from __future__ import annotations

from qlm_kernel.lazy import Exports, lazy_getattr

_EXPORTS: Exports = {
    "AUTO_GRID_LIMIT": ("qlm_kernel.optimization.search", "AUTO_GRID_LIMIT"),
    "METHODS": ("qlm_kernel.optimization.search", "METHODS"),
    "OptimizationResult": ("qlm_kernel.optimization.result", "OptimizationResult"),
    "cancel_in_process": ("qlm_kernel.optimization.job", "cancel_in_process"),
    "grid_size": ("qlm_kernel.optimization.space", "grid_size"),
    "optimize": ("qlm_kernel.optimization.api", "optimize"),
    "resolve_space": ("qlm_kernel.optimization.space", "resolve_space"),
    "running_in_process": ("qlm_kernel.optimization.job", "running_in_process"),
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())
