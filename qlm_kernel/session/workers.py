"""Where code the notebook user did not write runs: the worker pool, as the front ends use it.

`run_isolated` sends a call (``"qlm_kernel.module:function"`` and JSON-like keyword arguments) to this
process's `qlm_kernel.isolation.WorkerPool` under a hard, kill-enforced time limit. When a worker is
killed or dies mid-call, the optimization jobs it owned are closed in the store at once (``cancelled``
for a cancelled call, ``abandoned`` otherwise), so no job is left ``running`` without an owner.
The notebook path (`qlm.backtest`, `qlm.optimize`) stays in the kernel unless asked (``isolate=True``).
"""

from __future__ import annotations

import contextlib
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


def run_isolated(target: str, kwargs: dict[str, Any] | None = None, *, pool: str = "strategy",
                 pool_size: int | None = None, **call: Any) -> Any:
    """``target(**kwargs)`` in a worker process of the pool ``pool`` (``paper`` for sessions, sized
    ``pool_size`` when first made). ``call`` is `WorkerPool.call`'s keywords: ``time_limit`` (required;
    TIMEOUT past it), ``cancel`` (CANCELLED when set), ``progress``, ``stall``, ``started``, ``what``,
    ``reported_limit``. BUSY at once when every worker is taken."""
    return _pool(pool, pool_size).call(target, kwargs, **call)


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
