"""Every MCP tool, resource and the prompt, called once over each transport: streamable HTTP, SSE, stdio."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

import qlm_kernel as qlm
from tests.mcp_helpers import error_record, http_client, serving, sse_session, stdio_params, structured

SMALL = {"kind": "synthetic", "n": 3000, "seed": 1}
UNIVERSE = "pair"
FAKE_EXCHANGE = Path(__file__).with_name("fake_exchange.py")


def import_universe(home: Any) -> Any:
    """Store a two-symbol universe (for run_portfolio) in workspace ``home``; returns ``home``."""
    frames = {sym: qlm.sample_data("synthetic", n=1000, seed=k) for k, sym in enumerate(("AAA", "BBB"))}
    qlm.DataManager(home).import_universe(frames, UNIVERSE)
    return home


async def call_every_tool(client: Client) -> dict[str, Any]:
    """One successful call of each tool (and a read of each resource kind); their structured results."""
    tools = {t.name for t in (await client.list_tools()).tools}
    out: dict[str, Any] = {}

    async def call(name: str, args: dict[str, Any]) -> dict[str, Any]:
        out[name] = structured(await client.call_tool(name, args))
        return out[name]

    await call("list_strategies", {})
    code = (await call("read_strategy", {"name": "sma_cross"}))["code"]
    await call("write_strategy", {"name": "every_tool.py", "code": code, "message": "copy"})
    await call("strategy_history", {"name": "every_tool"})
    run = await call("run_backtest", {"strategy": "every_tool", "sample": SMALL, "report": True})
    await call("run_portfolio", {"strategy": "every_tool", "universe": UNIVERSE, "params": {"fast": 5}})
    job = await call(
        "optimize_parameters",
        {"strategy": "every_tool", "space": {"fast": [5, 10], "slow": [30, 60]}, "sample": SMALL},
    )
    await call("get_job", {"job_id": job["job_id"]})
    out["cancel_job"] = error_record(await client.call_tool("cancel_job", {"job_id": job["job_id"]}))
    assert out["cancel_job"]["code"] == "JOB_FINISHED"  # finished already: the same error as everywhere
    await call("list_jobs", {})
    await call("list_runs", {"limit": 3})
    assert (await call("reproduce_run", {"run_id": run["run_id"]}))["equal"] is True
    await call("sanity_check", {"strategy": "every_tool", "check": "lookahead", "sample": SMALL})
    fetched = await call("download_data", {"exchange": "binance", "symbols": ["BTC/USDT"], "timeframe": "1h",
                                           "since": "2023-11-01"})
    assert fetched["complete"] is True and fetched["datasets"][0]["rows"] > 0
    listed = await call("list_datasets", {})
    assert fetched["datasets"][0]["name"] in {d["name"] for d in listed["datasets"]}
    await call("analyze_market_structure", {"sample": SMALL})
    await call("get_system_status", {})
    await call("heal_strategy", {"strategy": "every_tool", "sample": SMALL})  # passes: nothing to heal
    paper = await call(
        "start_paper_session",
        {"strategy": "every_tool", "sample": {"kind": "synthetic", "n": 300}, "speed": 0},
    )
    await call("paper_session_status", {"session_id": paper["session_id"]})
    await call("stop_paper_session", {"session_id": paper["session_id"]})
    await call("list_paper_sessions", {})
    assert set(out) == tools, sorted(
        tools ^ set(out)
    )  # nothing listed went uncalled, nothing unlisted called
    out["resources"] = [
        (await client.read_resource("qlm://strategies/every_tool.py")).contents[0].text,
        (await client.read_resource(f"qlm://runs/{run['run_id']}")).contents[0].text,
        (await client.read_resource(run["report"]["uri"])).contents[0].text,
    ]
    out["prompt"] = (
        (await client.get_prompt("fix_strategy", {"strategy": "every_tool"})).messages[0].content.text
    )
    return out


def check(out: dict[str, Any]) -> None:
    assert out["write_strategy"]["version"] >= 1 and out["run_backtest"]["stats"]["n_trades"] > 0
    assert out["run_portfolio"]["symbols"] == ["AAA", "BBB"] and out["run_portfolio"]["stats"]["n_trades"] > 0
    assert out["optimize_parameters"]["status"] == "done" and out["sanity_check"]["passed"] is True
    assert out["heal_strategy"]["status"] == "passed"
    assert out["stop_paper_session"]["status"] in {"finished", "stopped"}
    assert "class SmaCross" in out["resources"][0] and "<html" in out["resources"][2].lower()
    assert "every_tool.py" in out["prompt"]


@pytest.fixture(scope="module")
def exchange_url():
    """A local fake exchange (tests/fake_exchange.py), the server option QLM_EXCHANGE_URL points at it."""
    proc = subprocess.Popen([sys.executable, str(FAKE_EXCHANGE), "secret", "key"], stdout=subprocess.PIPE,
                            text=True)
    try:
        url = f"http://127.0.0.1:{int(proc.stdout.readline().split()[1])}"
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("QLM_EXCHANGE_URL", url)  # read by the in-kernel server's download_data
            yield url
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory, exchange_url):
    with serving(import_universe(tmp_path_factory.mktemp("every_tool_home"))) as handle:
        yield handle


def test_every_tool_over_streamable_http(server):
    async def go():
        async with http_client(server) as client:
            return await call_every_tool(client)

    check(asyncio.run(go()))


def test_every_tool_over_sse(server):
    async def go():
        async with sse_session(server) as client:
            return await call_every_tool(client)

    check(asyncio.run(go()))


def test_every_tool_over_stdio(tmp_path, exchange_url):
    async def go():
        params = stdio_params(str(import_universe(tmp_path / "home")), QLM_EXCHANGE_URL=exchange_url)
        async with Client(params) as client:
            return await call_every_tool(client)

    check(asyncio.run(go()))
