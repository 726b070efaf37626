"""Where code the notebook user did not write runs: the worker pool, as the front ends use it.

`run_isolated` sends a call (``"qlm_kernel.module:function"`` and JSON-like keyword arguments) to this
process's `qlm_kernel.isolation.WorkerPool` under a hard, kill-enforced time limit. When a worker is
killed or dies mid-call, the optimization jobs it owned are closed in the store at once (``cancelled``
for a cancelled call, ``abandoned`` otherwise), so no job is left ``running`` without an owner.
The notebook path (`qlm.backtest`, `qlm.optimize`) stays in the kernel unless asked (``isolate=True``).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

from qlm_kernel.errors import QLMError
from qlm_kernel.isolation import WorkerPool, default_pool, existing_pool


def _ending(reason: str) -> str:
    return "cancelled" if reason == "cancelled" else "abandoned"


def _closing_jobs_of(pid: int, reason: str) -> None:
    """The pool's `on_killing` hook, before the kill: how the worker's jobs will end."""
    from qlm_kernel.session.jobs import expect_end

    expect_end(pid, _ending(reason))


def _close_jobs_of(pid: int, reason: str) -> None:
    """The pool's `on_lost` hook: jobs owned by the lost worker stop being ``running``, and a heal it
    was running is rolled back (the file gets its version from before the heal back, if unchanged)."""
    from qlm_kernel.healing import recover_interrupted_heals
    from qlm_kernel.session.jobs import reap_jobs

    reap_jobs([pid], status=_ending(reason))
    with contextlib.suppress(QLMError):
        recover_interrupted_heals()


def _pool(name: str = "strategy", size: int | None = None) -> WorkerPool:
    """The pool ``name`` with this layer's hooks (the jobs of a killed worker are closed)."""
    return default_pool(on_lost=_close_jobs_of, on_killing=_closing_jobs_of, name=name, size=size)


def run_isolated(
    target: str,
    kwargs: dict[str, Any] | None = None,
    *,
    time_limit: float,
    progress: Callable[[dict[str, Any]], Any] | None = None,
    cancel: threading.Event | None = None,
    what: str = "the strategy's code",
    pool: str = "strategy",
    pool_size: int | None = None,
    **options: Any,
) -> Any:
    """``target(**kwargs)`` in a worker process, killed after ``time_limit`` s (TIMEOUT) or when
    ``cancel`` is set (CANCELLED); BUSY at once when every worker is taken. ``pool`` names the pool
    (``paper`` for sessions, sized ``pool_size`` when first made); ``options`` go to `WorkerPool.call`
    (``stall``, ``started``)."""
    workers = _pool(pool, pool_size)
    return workers.call(target, kwargs, time_limit=time_limit, progress=progress, cancel=cancel, what=what,
                        **options)


def warm_workers(paper_sessions: int | None = None) -> None:
    """Start the strategy pool's workers and one paper-session worker in the background (a server calls
    this when it starts), so the first request does not pay a worker's start-up (about a second)."""
    _pool().warm()
    _pool("paper", paper_sessions).warm(1)


def workers_status() -> dict[str, Any]:
    """Each pool's size, workers and counters (``{"started": False}`` before anything used it)."""
    out: dict[str, Any] = {}
    for name in ("strategy", "paper"):
        pool = existing_pool(name)
        out[name] = {"started": False} if pool is None else {"started": True, **pool.status()}
    return out
