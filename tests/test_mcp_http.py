"""The in-kernel MCP server over streamable HTTP and SSE, driven by the real SDK client.

One server (a daemon thread of this test process, like a notebook kernel) on a temporary workspace.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from pathlib import Path

import httpx2
import pytest

import qlm_kernel.mcp as qmcp
from qlm_kernel.events import subscribe
from qlm_kernel.store import default_store
from tests.mcp_helpers import (
    BROKEN_NAME_ERROR,
    SMALL_SAMPLE,
    error_record,
    http_client,
    serving,
    sse_session,
    structured,
)

EXPECTED_TOOLS = {
    "list_strategies",
    "read_strategy",
    "write_strategy",
    "strategy_history",
    "run_backtest",
    "optimize_parameters",
    "get_job",
    "cancel_job",
    "list_jobs",
    "list_runs",
    "sanity_check",
    "list_datasets",
    "analyze_market_structure",
    "get_system_status",
    "heal_strategy",
    "start_paper_session",
    "paper_session_status",
    "stop_paper_session",
    "list_paper_sessions",
}


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("mcp_home")


@pytest.fixture(scope="module")
def server(home):
    with serving(home) as handle:
        yield handle


def run(coro):
    return asyncio.run(coro)


# --- tools ------------------------------------------------------------------------------------------


def test_lists_every_tool_with_a_typed_schema(server):
    async def go():
        async with http_client(server) as client:
            return (await client.list_tools()).tools

    tools = {t.name: t for t in run(go())}
    assert set(tools) >= EXPECTED_TOOLS
    backtest = tools["run_backtest"].input_schema
    assert backtest["required"] == ["strategy"]
    assert {"strategy", "dataset", "sample", "params", "settings"} <= set(backtest["properties"])
    assert "description" in backtest["properties"]["sample"]
    assert tools["optimize_parameters"].input_schema["required"] == ["strategy", "space"]
    assert "ctx" not in tools["optimize_parameters"].input_schema["properties"]
    assert all(t.description for t in tools.values())


def test_an_assistant_lists_edits_runs_and_optimizes(server, home):
    async def go():
        async with http_client(server) as client:
            listed = structured(await client.call_tool("list_strategies", {}))
            read = structured(await client.call_tool("read_strategy", {"name": "sma_cross"}))
            written = structured(
                await client.call_tool(
                    "write_strategy", {"name": "my_cross.py", "code": read["code"], "message": "copy"}
                )
            )
            again = structured(
                await client.call_tool(
                    "write_strategy",
                    {"name": "my_cross.py", "code": read["code"].replace("Param(10", "Param(12")},
                )
            )
            history = structured(await client.call_tool("strategy_history", {"name": "my_cross"}))
            bt = structured(
                await client.call_tool(
                    "run_backtest",
                    {
                        "strategy": "my_cross.py",
                        "sample": SMALL_SAMPLE,
                        "params": {"slow": 40},
                        "settings": {"fees": 0.001},
                        "report": True,
                    },
                )
            )
            runs = structured(await client.call_tool("list_runs", {"limit": 5}))
            report = await client.read_resource(bt["report"]["uri"])
            run_res = await client.read_resource(f"qlm://runs/{bt['run_id']}")
            source = await client.read_resource("qlm://strategies/my_cross.py")
            return listed, read, written, again, history, bt, runs, report, run_res, source

    listed, read, written, again, history, bt, runs, report, run_res, source = run(go())
    assert {"sma_cross", "rsi_reversion", "donchian_breakout"} <= {s["name"] for s in listed["strategies"]}
    assert read["origin"] == "examples" and "class SmaCross" in read["code"]
    assert (written["version"], again["version"]) == (1, 2)
    assert written["syntax"] == {"ok": True}
    assert (home / "strategies" / "my_cross.py").read_text() == read["code"].replace("Param(10", "Param(12")
    assert [v["author"] for v in history["versions"]] == ["assistant", "assistant"]
    assert bt["params"] == {"fast": 12, "slow": 40}
    assert bt["settings"]["fees"] == 0.001 and bt["bars"] == 3000
    assert bt["trades"]["count"] == bt["stats"]["n_trades"] > 0
    assert bt["run_id"] == runs["runs"][0]["id"]
    stored = default_store().get_run(bt["run_id"])
    assert stored["source"] == "mcp" and stored["strategy_version_id"] == again["version_id"]
    assert "<html" in report.contents[0].text.lower()
    assert json.loads(run_res.contents[0].text)["id"] == bt["run_id"]
    assert "Param(12" in source.contents[0].text


def test_a_broken_strategy_returns_file_line_and_excerpt(server, home):
    async def go():
        async with http_client(server) as client:
            structured(
                await client.call_tool("write_strategy", {"name": "typo.py", "code": BROKEN_NAME_ERROR})
            )
            result = await client.call_tool("run_backtest", {"strategy": "typo", "sample": SMALL_SAMPLE})
            prompt = await client.get_prompt("fix_strategy", {"strategy": "typo"})
            status = structured(await client.call_tool("get_system_status", {}))
            return result, prompt, status

    result, prompt, status = run(go())
    err = error_record(result)
    assert err["type"] == "StrategyError"
    assert Path(err["context"]["file"]).name == "typo.py"
    assert err["context"]["line"] == 10
    assert "clsoe" in err["context"]["excerpt"] and "NameError" in err["message"] + err["traceback"]
    text = prompt.messages[0].content.text
    assert "clsoe" in text and "write_strategy" in text and "NameError" in text
    assert status["mcp"]["url"] == server.url  # the server is alive after the failure


def test_optimize_sends_progress_and_returns_the_job(server):
    notes = []

    async def progress(done, total, message):
        notes.append((done, total, message))

    async def go():
        async with http_client(server) as client:
            result = structured(
                await client.call_tool(
                    "optimize_parameters",
                    {
                        "strategy": "sma_cross",
                        "space": {"fast": [5, 10, 15, 20, 25], "slow": [40, 60, 80, 100, 120, 150]},
                        "sample": {"kind": "synthetic", "n": 40_000, "seed": 1},
                    },
                    progress_callback=progress,
                )
            )
            job = structured(await client.call_tool("get_job", {"job_id": result["job_id"], "trials": 3}))
            jobs = structured(await client.call_tool("list_jobs", {}))
            return result, job, jobs

    result, job, jobs = run(go())
    assert result["status"] == "done" and result["n_trials"] == 30
    assert set(result["best_params"]) == {"fast", "slow"} and len(result["top"]) == 5
    assert notes and notes[-1][0] == notes[-1][1] == 30.0
    assert len({n[0] for n in notes}) >= 2, notes  # progress arrived during the run, not only at the end
    assert "trials" in notes[0][2]
    assert job["status"] == "done" and job["progress"] == 1.0
    assert job["sample"] == {"kind": "synthetic", "n": 40_000, "seed": 1}  # the job says what it ran on
    assert result["job_id"] in {j["id"] for j in jobs["jobs"]}


def test_status_answers_while_an_optimization_runs(server):
    async def go():
        async with http_client(server) as client:
            opt = asyncio.ensure_future(
                client.call_tool(
                    "optimize_parameters",
                    {
                        "strategy": "sma_cross",
                        "space": {"fast": list(range(5, 45, 2)), "slow": [60, 90, 120, 150]},
                        "sample": {"kind": "synthetic", "n": 200_000, "seed": 2},
                    },
                )
            )
            seen_running = None
            for _ in range(400):
                await asyncio.sleep(0.05)
                status = structured(await client.call_tool("get_system_status", {}))
                if status["running_jobs"]:
                    seen_running = status
                    break
            finished_first = opt.done()
            result = await opt
            return seen_running, finished_first, result

    seen_running, finished_first, result = run(go())
    assert not result.is_error
    assert seen_running is not None and not finished_first
    job = seen_running["running_jobs"][0]
    assert job["total"] == 80 and job["done"] < 80
    for key in ("memory", "cpu", "numba", "database", "bus", "workers", "mcp"):
        assert key in seen_running
    busy = [w for w in seen_running["workers"]["strategy"]["workers"] if w["state"] == "busy"]
    assert [w["target"] for w in busy] == ["qlm_kernel.mcp.tools:optimize_parameters"]  # not in the kernel
    assert busy[0]["pid"] != seen_running["pid"]
    assert seen_running["database"]["size_bytes"] > 0 and seen_running["mcp"]["connected"] >= 1


def test_research_tools(server):
    async def go():
        async with http_client(server) as client:
            datasets = structured(await client.call_tool("list_datasets", {}))
            market = structured(
                await client.call_tool("analyze_market_structure", {"sample": {"kind": "goog"}})
            )
            look = structured(
                await client.call_tool(
                    "sanity_check", {"strategy": "sma_cross", "check": "lookahead", "sample": SMALL_SAMPLE}
                )
            )
            noise = structured(
                await client.call_tool(
                    "sanity_check",
                    {
                        "strategy": "sma_cross",
                        "check": "white_noise",
                        "sample": SMALL_SAMPLE,
                        "space": {"fast": [5, 10], "slow": [30, 50]},
                        "n": 4,
                    },
                )
            )
            bad = await client.call_tool("sanity_check", {"strategy": "sma_cross", "check": "astrology"})
            return datasets, market, look, noise, bad

    datasets, market, look, noise, bad = run(go())
    assert "synthetic" in datasets["samples"]["kinds"]
    assert market["bars"] > 2000 and 0.2 < market["hurst"]["exponent"] < 0.8
    assert market["volatility"]["regime"] in {"low", "normal", "high"}
    assert look["passed"] is True and look["name"] == "lookahead"
    assert noise["name"] == "white_noise" and "verdict" in noise
    assert error_record(bad)["code"] == "BAD_ARGUMENT"


def test_twenty_concurrent_calls_are_each_answered_run_or_busy(server):
    """Backtests run in worker processes; past the workers a call is BUSY at once (never queued), the
    status calls all answer, and a BUSY call run again afterwards succeeds."""

    async def go():
        async with http_client(server) as client:
            calls = []
            for i in range(20):
                if i % 2:
                    calls.append(client.call_tool("get_system_status", {}))
                else:
                    calls.append(
                        client.call_tool(
                            "run_backtest",
                            {"strategy": "rsi_reversion", "sample": {**SMALL_SAMPLE, "seed": i}},
                        )
                    )
            results = await asyncio.gather(*calls)
            busy = [i for i, r in zip(range(0, 20, 2), results[::2], strict=True) if r.is_error]
            retried = [await client.call_tool("run_backtest", {"strategy": "rsi_reversion",
                                                               "sample": {**SMALL_SAMPLE, "seed": i}})
                       for i in busy]
            return results, busy, retried

    results, busy, retried = run(go())
    assert not any(r.is_error for r in results[1::2])
    assert all(error_record(results[i])["code"] == "BUSY" for i in busy)
    assert len(busy) <= 10 - 1  # at least one backtest ran at once
    ran = {r.structured_content["sample"]["seed"] for r in results[::2] if not r.is_error}
    ran |= {structured(r)["sample"]["seed"] for r in retried}
    assert ran == set(range(0, 20, 2))


def test_client_calls_publish_on_the_kernel_bus(server):
    seen = []
    done = threading.Event()

    def collect(event):
        seen.append(event)
        if event.topic == "mcp.tool.finished":
            done.set()

    with subscribe("*", collect):

        async def go():
            async with http_client(server) as client:
                structured(
                    await client.call_tool("run_backtest", {"strategy": "sma_cross", "sample": SMALL_SAMPLE})
                )

        run(go())
        assert done.wait(5)
        time.sleep(0.2)
    topics = [e.topic for e in seen]
    for topic in (
        "mcp.tool.called",
        "engine.backtest.started",
        "engine.backtest.finished",
        "mcp.tool.finished",
    ):
        assert topic in topics, topics
    assert topics.index("mcp.tool.called") < topics.index("engine.backtest.finished")
    called = next(e for e in seen if e.topic == "mcp.tool.called")
    assert called.payload["tool"] == "run_backtest" and called.source == "mcp"


def test_sse_transport(server):
    async def go():
        async with sse_session(server) as client:
            tools = (await client.list_tools()).tools
            bt = structured(
                await client.call_tool("run_backtest", {"strategy": "sma_cross", "sample": SMALL_SAMPLE})
            )
            broken = await client.call_tool("run_backtest", {"strategy": "typo.py", "sample": SMALL_SAMPLE})
            status = structured(await client.call_tool("get_system_status", {}))
            return tools, bt, broken, status

    tools, bt, broken, status = run(go())
    assert {t.name for t in tools} >= EXPECTED_TOOLS
    assert bt["stats"]["n_trades"] > 0
    assert error_record(broken)["context"]["line"] == 10
    assert status["mcp"]["open_sse_streams"] == 1
    assert "sse" in {c["transport"] for c in status["mcp"]["clients"]}


def test_cancel_job_stops_a_running_optimization(server):
    async def go():
        async with http_client(server) as client, http_client(server) as other:
            opt = asyncio.ensure_future(
                client.call_tool(
                    "optimize_parameters",
                    {
                        "strategy": "sma_cross",
                        "space": {"fast": list(range(2, 60)), "slow": [80, 120, 160, 200]},
                        "sample": {"kind": "synthetic", "n": 200_000, "seed": 3},
                    },
                )
            )
            job_id = None
            for _ in range(400):
                await asyncio.sleep(0.05)
                running = structured(await other.call_tool("list_jobs", {"status": "running"}))["jobs"]
                if running:
                    job_id = running[0]["id"]
                    break
            cancelled = structured(await other.call_tool("cancel_job", {"job_id": job_id}))
            result = structured(await opt)
            unknown = await other.call_tool("cancel_job", {"job_id": "no-such-job"})
            return job_id, cancelled, result, unknown

    job_id, cancelled, result, unknown = run(go())
    assert job_id is not None
    assert cancelled == {"job_id": job_id, "status": "running", "cancel_requested": True}
    assert result["job_id"] == job_id and result["status"] == "cancelled"
    assert result["n_trials"] < 58 * 4
    assert default_store().get_job(job_id)["status"] == "cancelled"
    assert error_record(unknown)["code"] == "NOT_FOUND"


# --- security ---------------------------------------------------------------------------------------

INIT = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}


def post(server, *, headers=None, body=None, url=None):
    with httpx2.Client(timeout=10) as hc:
        return hc.post(
            url or server.url,
            json=INIT if body is None else body,
            headers={"Accept": "application/json, text/event-stream", **(headers or {})},
        )


def test_requests_without_the_token_are_refused(server):
    assert post(server).status_code == 401
    assert post(server, headers={"Authorization": "Bearer wrong-token-0123456789"}).status_code == 401
    with httpx2.Client(timeout=10) as hc:
        assert hc.get(server.sse_url).status_code == 401


def test_dns_rebinding_is_refused(server):
    auth = server.headers()
    assert post(server, headers={**auth, "Origin": "http://evil.example"}).status_code == 403
    assert post(server, headers={**auth, "Host": "evil.example"}).status_code == 421
    assert post(server, headers={**auth, "Origin": f"http://127.0.0.1:{server.port}"}).status_code != 403


def test_oversized_requests_are_refused(server):
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "write_strategy", "arguments": {"name": "big.py", "code": "#" * 2_000_000}},
    }
    assert post(server, headers=server.headers(), body=body).status_code == 413


TRAVERSALS = {
    "../escape.py": "PATH_TRAVERSAL",
    "/tmp/abs.py": "ABSOLUTE_PATH",
    "..%2Fescape.py": "ENCODED_PATH",
    "%2e%2e/escape.py": "ENCODED_PATH",
    "\uff0e\uff0e\uff0fescape.py": "UNICODE_NAME",
    "notes.txt": "NOT_PY",
    "sub/dir.py": "PATH_TRAVERSAL",
    "link.py": "SYMLINK",
}


def test_every_traversal_form_is_refused_and_nothing_is_written(server, home, tmp_path):
    outside = tmp_path / "outside.py"
    outside.write_text("ORIGINAL = 1\n")
    (home / "strategies").mkdir(exist_ok=True)
    (home / "strategies" / "link.py").symlink_to(outside)
    before = sorted(p.name for p in home.parent.rglob("*.py"))

    async def go():
        async with http_client(server) as client:
            out = {}
            for name in TRAVERSALS:
                out[name] = await client.call_tool("write_strategy", {"name": name, "code": "HACKED = 1\n"})
            out["big"] = await client.call_tool("write_strategy", {"name": "big.py", "code": "#" * 300_000})
            out["read"] = await client.call_tool("read_strategy", {"name": "../../etc/passwd"})
            out["run"] = await client.call_tool("run_backtest", {"strategy": "/etc/passwd"})
            return out

    results = run(go())
    for name, code in TRAVERSALS.items():
        record = error_record(results[name])
        assert (record["type"], record["code"]) == ("SecurityError", code), name
    assert error_record(results["big"])["code"] == "FILE_TOO_LARGE"
    assert error_record(results["read"])["type"] == "SecurityError"
    assert error_record(results["run"])["type"] == "SecurityError"
    assert outside.read_text() == "ORIGINAL = 1\n"
    assert sorted(p.name for p in home.parent.rglob("*.py")) == before
    (home / "strategies" / "link.py").unlink()


def test_binding_beyond_loopback_needs_named_hosts():
    from qlm_kernel.errors import SecurityError

    with pytest.raises(SecurityError) as info:
        qmcp.start(host="0.0.0.0")
    assert info.value.code == "UNSAFE_BIND"


# --- lifecycle --------------------------------------------------------------------------------------


def test_start_stop_cycles_leak_no_threads_or_ports(home):
    before = set(threading.enumerate())
    baseline = len(before)
    ports = []
    for _ in range(4):
        handle = qmcp.start()
        ports.append(handle.port)

        async def go(h=handle):
            async with http_client(h) as client:
                return structured(await client.call_tool("get_system_status", {}))

        assert run(go())["mcp"]["running"] is True
        handle.stop()
        assert not handle.running
    time.sleep(0.5)
    assert not [t for t in set(threading.enumerate()) - before if t.name.startswith("qlm-mcp-")]
    assert len(threading.enumerate()) <= baseline + 1
    for port in ports:  # every port is free again
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))
    assert not {h.port for h in qmcp.running_servers()} & set(ports)


def test_handle_shows_a_client_config_with_the_token_masked(server):
    config = server.client_config()["mcpServers"]["qlm"]
    assert config["url"] == server.url and config["headers"]["Authorization"] == f"Bearer {server.token}"
    shown = server._repr_html_() + repr(server)  # notebook outputs are saved to disk
    assert server.token not in shown and server.token[:8] not in shown
    assert "mcpServers" in shown and f"...{server.token[-4:]}" in shown
    assert str(server.config_path) in shown and (server.config_path.stat().st_mode & 0o777) == 0o600
    assert json.loads(server.config_path.read_text()) == server.client_config()


def test_the_token_comes_from_a_private_file_never_the_command_line(tmp_path, capsys):
    from qlm_kernel.errors import SecurityError
    from qlm_kernel.mcp.security import resolve_token

    file = tmp_path / "token"
    file.write_text("a-token-of-at-least-16-chars\n")
    file.chmod(0o644)
    with pytest.raises(SecurityError) as caught:
        resolve_token(None, file)
    assert caught.value.code == "TOKEN_FILE_OPEN" and "chmod 600" in caught.value.hint
    file.chmod(0o600)
    assert resolve_token(None, file) == "a-token-of-at-least-16-chars"
    from qlm_kernel.cli import main

    assert main(["mcp", "--http", "--token", "a-token-of-at-least-16-chars"]) == 2  # usage error, no server
    assert "did you mean --token-file?" in capsys.readouterr().err
