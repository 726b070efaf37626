"""Parameter optimization: grid, random and genetic (DEAP) searches as recorded, resumable jobs.

``optimize(strategy, data, space, method=..., objective=...)`` returns an `OptimizationResult`;
``cancel_in_process(job_id)`` stops one running here after its current batch. Trials run on threads
(the engine releases the GIL) or on a ``dask.distributed`` cluster.
"""

from __future__ import annotations

from qlm_kernel.optimization.api import optimize
from qlm_kernel.optimization.job import cancel_in_process, running_in_process
from qlm_kernel.optimization.result import OptimizationResult
from qlm_kernel.optimization.search import AUTO_GRID_LIMIT, METHODS
from qlm_kernel.optimization.space import grid_size, resolve_space

__all__ = [
    "AUTO_GRID_LIMIT",
    "METHODS",
    "OptimizationResult",
    "cancel_in_process",
    "grid_size",
    "optimize",
    "resolve_space",
    "running_in_process",
]
