"""`system_status`: what the kernel is doing and can afford, cheap enough to poll (a few ms).

Memory and CPU from psutil, running jobs from the store, the Numba kernels' compile/cache state,
the database file, the worker pools, the MCP clients seen and the event bus counters. Reads only;
never compiles.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from qlm_kernel.errors import QLMError
from qlm_kernel.jsonsafe import json_safe

_PROCESS: psutil.Process | None = None


def _process() -> psutil.Process:
    global _PROCESS
    if _PROCESS is None or _PROCESS.pid != os.getpid():
        _PROCESS = psutil.Process()
        _PROCESS.cpu_percent(None)  # prime: later calls measure since the previous one, without sleeping
    return _PROCESS


def memory_status() -> dict[str, Any]:
    """Machine memory (total, available, percent used) and this process's resident size."""
    vm = psutil.virtual_memory()
    return {
        "total_bytes": vm.total,
        "available_bytes": vm.available,
        "percent_used": vm.percent,
        "process_rss_bytes": _process().memory_info().rss,
    }


def cpu_status() -> dict[str, Any]:
    """Cores, load averages and this process's CPU use since the previous status call (percent)."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (None, None, None)
    return {
        "cores": psutil.cpu_count(logical=True),
        "process_percent": _process().cpu_percent(None),
        "load_avg_1m": load[0],
        "load_avg_5m": load[1],
        "load_avg_15m": load[2],
        "threads": _process().num_threads(),
    }


def numba_status() -> dict[str, Any]:
    """Engine kernels compiled in this process and the on-disk cache they load from (never compiles)."""
    kernels = sys.modules.get("qlm_kernel.engine.kernels")
    if kernels is None:
        return {"engine_loaded": False, "compiled_modes": 0, "modes": 0, "cache_dir": None, "cache_files": 0}
    entries = dict(getattr(kernels, "MODE_ENTRIES", {}))
    compiled = sum(1 for d in entries.values() if getattr(d, "signatures", None))
    cache_dir = None
    for dispatcher in entries.values():
        cache_dir = getattr(getattr(dispatcher, "stats", None), "cache_path", None)
        if cache_dir:
            break
    files = len(list(Path(cache_dir).glob("*.nbi"))) if cache_dir and Path(cache_dir).is_dir() else 0
    hits = sum(sum(d.stats.cache_hits.values()) for d in entries.values() if hasattr(d, "stats"))
    misses = sum(sum(d.stats.cache_misses.values()) for d in entries.values() if hasattr(d, "stats"))
    return {
        "engine_loaded": True,
        "modes": len(entries),
        "compiled_modes": compiled,
        "cache_dir": cache_dir,
        "cache_files": files,
        "cache_hits": hits,
        "cache_misses": misses,
        "disable_jit": bool(os.environ.get("NUMBA_DISABLE_JIT")),
    }


def database_status() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The store file (path, size with WAL, schema version) and the jobs currently running."""
    from qlm_kernel.store import default_store

    try:
        store = default_store()
        path = Path(store.path)
        size = sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
        running = store.list_jobs(status="running", limit=100)
        info = {"path": str(path), "size_bytes": size, "schema_version": store.schema_version, "ok": True}
    except QLMError as err:
        return {"ok": False, "error": err.to_dict()}, []
    jobs = [
        {
            "id": j["id"],
            "kind": j["kind"],
            "done": j["done"],
            "total": j["total"],
            "best": j.get("best"),
            "updated_at": j["updated_at"],
        }
        for j in running
    ]
    return info, jobs


def system_status(server: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything above plus the MCP server's own view (transport, url, clients) when given."""
    from qlm_kernel.events import get_bus
    from qlm_kernel.session.workers import workers_status

    started = time.perf_counter()
    database, jobs = database_status()
    status = {
        "time": time.time(),
        "pid": os.getpid(),
        "python": platform.python_version(),
        "memory": memory_status(),
        "cpu": cpu_status(),
        "numba": numba_status(),
        "database": database,
        "running_jobs": jobs,
        "bus": get_bus().stats(),
        "workers": workers_status(),
        "mcp": server or {},
    }
    status["elapsed_ms"] = (time.perf_counter() - started) * 1000.0
    return json_safe(status)
