"""Parameter optimization: grid, random and genetic (DEAP) searches as recorded, resumable jobs.

``optimize(strategy, data, space, method=..., objective=...)`` returns an `OptimizationResult`;
``cancel(job_id)`` stops a running one after its current batch. Trials run on threads (the engine
releases the GIL) or on a ``dask.distributed`` cluster.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from qlm_kernel.optimize.api import optimize
from qlm_kernel.optimize.job import cancel
from qlm_kernel.optimize.result import OptimizationResult
from qlm_kernel.optimize.search import AUTO_GRID_LIMIT, METHODS
from qlm_kernel.optimize.space import grid_size, resolve_space

__all__ = [
    "AUTO_GRID_LIMIT",
    "METHODS",
    "OptimizationResult",
    "cancel",
    "grid_size",
    "optimize",
    "resolve_space",
]


class _CallableModule(types.ModuleType):
    """Makes ``qlm.optimize(...)`` work even where Python bound the name to this package."""

    def __call__(self, *args: Any, **kwargs: Any) -> OptimizationResult:
        return optimize(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
