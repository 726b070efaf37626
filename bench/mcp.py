"""MCP round-trip benchmark: `get_system_status` and `run_backtest` on 1M bars over streamable HTTP.

Run: ``.venv/bin/python bench/mcp.py [--calls 200] [--backtests 20] [--bars 1000000]``. Starts the
in-kernel server (a daemon thread of this process) on a temporary workspace with a 1M-bar dataset,
connects the real SDK client and times sequential calls. References measured in the same run:
the same functions called in-process (no MCP, no HTTP) — the floor the transport adds to — and a bare
HTTP round trip to the same uvicorn server (a 401 answered by the auth layer: the cost of HTTP alone).
The issue's goal: p50 <= 5 ms for the status call. Since issue 16, ``run_backtest`` over MCP runs in a
worker process (the kernel never runs an assistant's code): the HTTP figure includes the hand-off to
the worker; the dataset reaches the worker memory-mapped (``DataManager.load``), timed here against
reading the same dataset from its Parquet file.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# This file is named like the SDK package: take its own folder off the path so ``import mcp`` finds the SDK.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))


def percentiles(samples: list[float]) -> tuple[float, float]:
    """(p50, p99) in milliseconds."""
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered) * 1000.0, p99 * 1000.0


def timed(fn: Any, n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


async def timed_async(fn: Any, n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        await fn()
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200, help="status calls per measurement")
    parser.add_argument("--backtests", type=int, default=20, help="backtest calls per measurement")
    parser.add_argument("--bars", type=int, default=1_000_000)
    args = parser.parse_args()

    os.environ["QLM_HOME"] = tempfile.mkdtemp(prefix="qlm-bench-mcp-")
    os.environ["QLM_RECORD_RUNS"] = "1"
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    import qlm_kernel as qlm
    import qlm_kernel.mcp as qmcp
    from qlm_kernel.mcp import tools
    from qlm_kernel.session import data_manager, system_status

    data_manager().register_frame(qlm.sample_data("synthetic", n=args.bars, seed=0), "bench")
    backtest_args = {"strategy": "sma_cross", "dataset": "bench", "params": {"fast": 10, "slow": 50}}
    tools.run_backtest(**backtest_args)  # compile / warm caches before timing anything
    handle = qmcp.start()

    async def over_http() -> tuple[list[float], list[float], list[float]]:
        async with (
            httpx2.AsyncClient(headers=handle.headers(), timeout=httpx2.Timeout(300.0)) as hc,
            Client(streamable_http_client(handle.url, http_client=hc)) as client,
            httpx2.AsyncClient(timeout=30) as bare,
        ):
            for _ in range(10):
                await client.call_tool("get_system_status", {})
            status = await timed_async(lambda: client.call_tool("get_system_status", {}), args.calls)
            http_only = await timed_async(lambda: bare.post(handle.url, json={}), args.calls)
            await client.call_tool("run_backtest", backtest_args)
            backtests = await timed_async(
                lambda: client.call_tool("run_backtest", backtest_args), args.backtests
            )
            return status, http_only, backtests

    try:
        status_http, http_only, backtest_http = asyncio.run(over_http())
    finally:
        handle.stop()
    status_local = timed(system_status, args.calls)
    backtest_local = timed(lambda: tools.run_backtest(**backtest_args), args.backtests)
    manager = data_manager()
    mapped_load = timed(lambda: manager.load("bench"), 20)
    for path in manager._mapped_paths("bench"):
        path.unlink()
    parquet_load = []
    for _ in range(20):
        parquet_load += timed(lambda: manager.load("bench"), 1)  # reads the Parquet, maps again
        for path in manager._mapped_paths("bench"):
            path.unlink()

    rows = [
        ("get_system_status over HTTP (MCP)", *percentiles(status_http)),
        ("system_status() in-process", *percentiles(status_local)),
        ("bare HTTP round trip (401 from auth)", *percentiles(http_only)),
        (f"run_backtest over HTTP, {args.bars:,} bars", *percentiles(backtest_http)),
        (f"run_backtest in-process, {args.bars:,} bars", *percentiles(backtest_local)),
        (f"dataset load, memory-mapped, {args.bars:,} bars", *percentiles(mapped_load)),
        (f"dataset load, from Parquet, {args.bars:,} bars", *percentiles(parquet_load)),
    ]
    print(f"MCP round trips ({args.calls} status calls, {args.backtests} backtests; sequential)")
    for label, p50, p99 in rows:
        print(f"  {label:<42} p50 {p50:8.2f} ms   p99 {p99:8.2f} ms")
    s50, l50, h50 = rows[0][1], rows[1][1], rows[2][1]
    b50, bl50 = rows[3][1], rows[4][1]
    print(f"status: MCP/HTTP p50 {s50:.2f} ms (goal <= 5 ms: {'met' if s50 <= 5 else 'NOT met'}); "
          f"the work itself {l50:.2f} ms, bare HTTP {h50:.2f} ms, MCP layer {s50 - h50 - l50:.2f} ms")
    print(f"backtest: MCP/HTTP p50 {b50:.1f} ms vs in-process {bl50:.1f} ms -> transport overhead "
          f"{b50 - bl50:.1f} ms ({b50 / bl50:.2f}x; goal <= 1.5x: "
          f"{'met' if b50 <= 1.5 * bl50 else 'NOT met'})")
    m50, q50 = rows[5][1], rows[6][1]
    print(f"a worker's first load of the dataset: mapped {m50:.2f} ms vs Parquet {q50:.1f} ms "
          f"({q50 / m50:.0f}x)")


if __name__ == "__main__":
    main()
