"""Executors for batches of trials: a thread pool (default) or a `dask.distributed.Client`.

Both take a list of params and return trial rows in the same order. The numba kernels and the
indicators release the GIL, so threads use every core without copying the data; Dask gets the frame
scattered once and rebuilds the strategy class once per worker process (cached by (path, sha)).
Trials share indicators through the `Evaluator`'s memo, which it installs in whichever thread runs a
trial: the threads here share one, a Dask worker process has its own (its evaluator is cached per job).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pandas as pd

from qlm_kernel.optimization.evaluate import Evaluator

_worker_lock = threading.Lock()
_worker_classes: dict[tuple[str, str | None, str], type] = {}
_worker_evaluators: dict[tuple[Any, ...], Evaluator] = {}
_batch_lock = threading.Lock()
_threads_in_batch: Counter[int] = Counter()


@contextlib.contextmanager
def _batch() -> Iterator[None]:
    """Mark the calling thread as waiting on a batch (what the job heartbeat asks `in_batch`)."""
    ident = threading.get_ident()
    with _batch_lock:
        _threads_in_batch[ident] += 1
    try:
        yield
    finally:
        with _batch_lock:
            _threads_in_batch[ident] -= 1
            if _threads_in_batch[ident] <= 0:
                del _threads_in_batch[ident]


def in_batch(thread_ident: int | None) -> bool:
    """True while the thread ``thread_ident`` waits in a runner's `run` (a batch being computed)."""
    with _batch_lock:
        return _threads_in_batch.get(thread_ident, 0) > 0  # type: ignore[arg-type]


class ThreadRunner:
    """Evaluate trials on ``n_jobs`` threads sharing one `Evaluator`."""

    def __init__(self, evaluator: Evaluator, n_jobs: int | None) -> None:
        self.evaluator = evaluator
        self.n_jobs = max(1, int(n_jobs or os.cpu_count() or 1))
        self.pool = ThreadPoolExecutor(self.n_jobs, thread_name_prefix="qlm-opt") if self.n_jobs > 1 else None

    @property
    def workers(self) -> int:
        return self.n_jobs

    def run(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        with _batch():
            if self.pool is None:
                return self.evaluator.evaluate_many(batch)
            return list(self.pool.map(self.evaluator.evaluate, batch))

    def close(self) -> None:
        """Stop the threads and free the job's indicator memo."""
        if self.pool is not None:
            self.pool.shutdown(wait=True)
        self.evaluator.close_memo()


def strategy_ref(cls: type) -> tuple[Any, ...]:
    """How a worker finds the class: ("file", path, class name, sha) for files, else ("class", cls)."""
    path, sha = getattr(cls, "source_file", None), getattr(cls, "source_hash", None)
    if path and sha and os.path.exists(path):
        return ("file", str(path), cls.__name__, sha)
    return ("class", cls)


def _worker_class(ref: tuple[Any, ...]) -> type:
    if ref[0] == "class":
        return ref[1]
    _, path, name, sha = ref
    with _worker_lock:
        cls = _worker_classes.get((path, name, sha))
    if cls is None:
        from qlm_kernel.strategy import load_strategy

        cls = load_strategy(path, name)
        with _worker_lock:
            _worker_classes[(path, name, sha)] = cls
    return cls


def dask_task(
    frame: pd.DataFrame,
    ref: tuple[Any, ...],
    settings: dict[str, Any],
    fixed: dict[str, Any],
    token: str,
    batch: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """Run on a Dask worker: evaluate ``batch`` with an `Evaluator` cached per (job token, worker)."""
    key = (token, os.getpid())
    with _worker_lock:
        ev = _worker_evaluators.get(key)
    if ev is None:
        ev = Evaluator(_worker_class(ref), frame, settings, fixed)
        with _worker_lock:
            _worker_evaluators.clear()  # keep only the current job's evaluator
            _worker_evaluators[key] = ev
    return ev.evaluate_many(batch)


class DaskRunner:
    """Evaluate trials on a Dask cluster: one task per chunk, gathered as they complete."""

    def __init__(
        self,
        client: Any,
        cls: type,
        frame: pd.DataFrame,
        settings: dict[str, Any],
        fixed: dict[str, Any],
        token: str,
    ) -> None:
        self.client = client
        self.fixed = dict(fixed)
        self.ref = strategy_ref(cls)
        self.settings = dict(settings)
        self.token = token
        self.frame_future = client.scatter(frame, broadcast=True)
        try:
            self._workers = max(1, len(client.scheduler_info().get("workers", {})))
        except Exception:
            self._workers = 1

    @property
    def workers(self) -> int:
        return self._workers

    def run(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        with _batch():
            return self._run(batch)

    def _run(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        from distributed import as_completed

        n = max(1, min(len(batch), self._workers * 2))
        size = -(-len(batch) // n)
        chunks = [batch[i : i + size] for i in range(0, len(batch), size)]
        futures = {
            self.client.submit(
                dask_task,
                self.frame_future,
                self.ref,
                self.settings,
                self.fixed,
                self.token,
                chunk,
                pure=False,
            ): i
            for i, chunk in enumerate(chunks)
        }
        parts: dict[int, list[dict[str, Any]]] = {}
        for fut in as_completed(list(futures)):
            parts[futures[fut]] = fut.result()
        return [row for i in range(len(chunks)) for row in parts[i]]

    def close(self) -> None:
        with contextlib.suppress(Exception):  # best effort cleanup
            self.client.cancel(self.frame_future)
