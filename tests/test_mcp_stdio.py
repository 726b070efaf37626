"""``qlm mcp --stdio`` as an MCP client launches it: a subprocess speaking MCP on stdin/stdout."""

from __future__ import annotations

import asyncio

import pytest
from mcp import Client

from qlm_kernel.store import Store
from tests.mcp_helpers import BROKEN_NAME_ERROR, SMALL_SAMPLE, error_record, stdio_params, structured

CHATTY = '''"""Prints while computing signals: must not corrupt the stdio protocol stream."""
from qlm_kernel import Param, Signals, Strategy
from qlm_kernel import indicators as ta


class Chatty(Strategy):
    period = Param(20, min=2, max=200)

    def signals(self, data):
        print("computing signals for", len(data), "bars")
        m = ta.sma(data["close"], self.period)
        return Signals(entry_long=ta.crossed_above(data["close"], m),
                       exit_long=ta.crossed_below(data["close"], m))
'''


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


def test_stdio_server_lists_edits_runs_and_records(home):
    progress = []

    async def on_progress(done, total, message):
        progress.append(done)

    async def go():
        async with Client(stdio_params(str(home))) as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            call = client.call_tool
            written = structured(await call("write_strategy", {"name": "chatty.py", "code": CHATTY}))
            chatty = structured(await call("run_backtest", {"strategy": "chatty", "sample": SMALL_SAMPLE}))
            structured(await call("write_strategy", {"name": "typo.py", "code": BROKEN_NAME_ERROR}))
            broken = await client.call_tool("run_backtest", {"strategy": "typo.py", "sample": SMALL_SAMPLE})
            refused = await client.call_tool("write_strategy", {"name": "../../x.py", "code": "x = 1"})
            opt = structured(
                await client.call_tool(
                    "optimize_parameters",
                    {"strategy": "chatty", "space": {"period": [5, 10, 20, 40]}, "sample": SMALL_SAMPLE},
                    progress_callback=on_progress,
                )
            )
            status = structured(await client.call_tool("get_system_status", {}))
            market = structured(await client.call_tool("analyze_market_structure", {"sample": SMALL_SAMPLE}))
            return tools, written, chatty, broken, refused, opt, status, market

    tools, written, chatty, broken, refused, opt, status, market = asyncio.run(go())
    assert {"run_backtest", "optimize_parameters", "get_system_status", "write_strategy"} <= tools
    assert written["version"] == 1 and (home / "strategies" / "chatty.py").exists()
    assert chatty["stats"]["n_trades"] > 0  # the strategy's print went to stderr, the protocol survived
    err = error_record(broken)
    assert err["type"] == "StrategyError" and err["context"]["line"] == 10
    assert error_record(refused)["code"] == "PATH_TRAVERSAL"
    assert opt["n_trials"] == 4 and progress and progress[-1] == 4.0
    assert status["mcp"]["transport"] == "stdio" and status["mcp"]["connected"] == 1
    assert market["bars"] == 3000

    # The stand-alone process recorded its runs, versions and events in the workspace store.
    with Store(home / "qlm.db", readonly=True) as store:
        runs = store.list_runs(limit=10)
        assert {r["source"] for r in runs} == {"mcp"}
        assert {r["status"] for r in runs} == {"ok", "error"}
        assert [v["author"] for v in store.strategy_history("chatty")] == ["assistant"]
        topics = {e["topic"] for e in store.tail_events(limit=500)}
    assert {"mcp.server.started", "mcp.tool.called", "mcp.tool.failed", "engine.backtest.finished"} <= topics
