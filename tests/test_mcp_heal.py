"""Self-healing and paper trading through a real MCP client: the client's own model is sampled.

The sampling callback plays the assistant's model: it checks that each prompt carries the error type,
the file, the line and the excerpt, then answers with the fix. Both protocol eras are exercised: the
2026 request/retry exchange (streamable HTTP) and mid-call sampling requests (legacy, over SSE).
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from heal_cases import CASES, ENDLESS_LOOP, NAME_ERROR, Case
from mcp_types import CreateMessageResult, TextContent

from qlm_kernel.events import subscribe
from qlm_kernel.store import default_store
from qlm_kernel.workspace.strategies import strategy_file_path, strategy_history, write_strategy
from tests.mcp_helpers import error_record, http_client, serving, sse_session, structured

SAMPLE = {"kind": "synthetic", "n": 2000, "seed": 0}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with serving(tmp_path_factory.mktemp("mcp_heal_home")) as handle:
        yield handle


def scripted_model(replies, prompts, *, checks: Case | None = None):
    """A sampling callback answering ``replies`` in order and keeping every prompt it was sent."""
    queue = list(replies)

    async def sampling(context, params):
        prompt = params.messages[0].content.text
        prompts.append(prompt)
        assert params.system_prompt and "repair" in params.system_prompt.lower()
        if checks is not None:
            assert checks.error_type in prompt or checks.code in prompt
            assert f"{checks.name}.py" in prompt
            assert any(f"line {line}" in prompt for line in checks.lines)
            assert any(f"> {line:>2} |" in prompt or f">{line:>3} |" in prompt for line in checks.lines) or (
                checks.fragment in prompt
            )
        text = queue.pop(0) if queue else "no idea"
        return CreateMessageResult(
            role="assistant", content=TextContent(type="text", text=text), model="scripted"
        )

    return sampling


def fenced(code: str) -> str:
    return f"I found the problem.\n```python\n{code}```\n"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_broken_strategy_is_healed_through_sampling(server, case):
    write_strategy(case.name, case.broken, author="user")
    prompts: list[str] = []
    steps = []
    with subscribe("heal.*", steps.append):

        async def go():
            async with http_client(
                server, sampling_callback=scripted_model([fenced(case.fixed)], prompts, checks=case)
            ) as client:
                return structured(
                    await client.call_tool(
                        "heal_strategy", {"strategy": case.name, "sample": SAMPLE, "time_limit": 1.0}
                    )
                )

        report = asyncio.run(go())
        time.sleep(0.2)
    assert report["healed"] is True and report["status"] == "healed", report
    assert report["attempts"] == 1 and report["sampled_replies"] == 1 and len(prompts) == 1
    assert case.fragment in prompts[0]
    assert strategy_file_path(case.name).read_text() == case.fixed
    history = strategy_history(case.name)
    assert history[-1]["author"] == "healer"
    stored = default_store().get_heal_session(report["session_id"])
    assert stored["status"] == "healed" and [s["kind"] for s in stored["steps"]][-1] == "finished"
    assert {"heal.started", "heal.patch", "heal.finished"} <= {e.topic for e in steps}
    assert {e.payload["session_id"] for e in steps} == {report["session_id"]}


def test_a_refused_reply_costs_an_attempt_then_the_next_one_heals(server):
    write_strategy(NAME_ERROR.name, NAME_ERROR.broken, author="user")
    evil = NAME_ERROR.fixed.replace("from qlm_kernel", "import subprocess\nfrom qlm_kernel", 1)
    prompts: list[str] = []

    async def go():
        async with http_client(
            server, sampling_callback=scripted_model([fenced(evil), fenced(NAME_ERROR.fixed)], prompts)
        ) as client:
            return structured(
                await client.call_tool("heal_strategy", {"strategy": NAME_ERROR.name, "sample": SAMPLE})
            )

    report = asyncio.run(go())
    assert report["healed"] is True and report["attempts"] == 2 and len(prompts) == 2
    assert "FORBIDDEN_IMPORT" in prompts[1] and "subprocess" in prompts[1]
    refused = [s for s in report["steps"] if s["kind"] == "refused"]
    assert refused and refused[0]["data"]["error"]["code"] == "FORBIDDEN_IMPORT"


def test_garbage_every_time_rolls_back_and_keeps_every_version(server):
    write_strategy(ENDLESS_LOOP.name, ENDLESS_LOOP.broken, author="user")
    before = len(strategy_history(ENDLESS_LOOP.name))
    outside = NAME_ERROR.fixed.replace("class SmaCross", "# file: ../../evil.py\nclass SmaCross")
    still_broken = ENDLESS_LOOP.broken.replace("level = close.copy()", "level = close.copy()  # tried")
    prompts: list[str] = []

    async def go():
        async with http_client(
            server, sampling_callback=scripted_model(["lol", fenced(still_broken), fenced(outside)], prompts)
        ) as client:
            return structured(
                await client.call_tool(
                    "heal_strategy", {"strategy": ENDLESS_LOOP.name, "sample": SAMPLE, "time_limit": 0.5}
                )
            )

    report = asyncio.run(go())
    assert report["healed"] is False and report["status"] == "not_healed" and len(prompts) == 3
    assert strategy_file_path(ENDLESS_LOOP.name).read_text() == ENDLESS_LOOP.broken  # restored
    history = strategy_history(ENDLESS_LOOP.name)
    assert [h["author"] for h in history[before:]] == [
        "healer",
        "healer",
    ]  # the tried patch, then the restore
    assert [s["kind"] for s in report["steps"]][-2:] == ["rollback", "finished"]


def test_legacy_protocol_sampling_over_sse(server):
    write_strategy(NAME_ERROR.name, NAME_ERROR.broken, author="user")
    prompts: list[str] = []

    async def go():
        async with sse_session(
            server, mode="legacy", sampling_callback=scripted_model([fenced(NAME_ERROR.fixed)], prompts)
        ) as client:
            return structured(
                await client.call_tool("heal_strategy", {"strategy": NAME_ERROR.name, "sample": SAMPLE})
            )

    report = asyncio.run(go())
    assert report["healed"] is True and len(prompts) == 1


def test_without_sampling_the_tool_diagnoses_only(server):
    write_strategy(NAME_ERROR.name, NAME_ERROR.broken, author="user")

    async def go():
        async with http_client(server) as client:
            return structured(
                await client.call_tool("heal_strategy", {"strategy": NAME_ERROR.name, "sample": SAMPLE})
            )

    report = asyncio.run(go())
    assert report["status"] == "diagnosed" and report["healed"] is False
    assert report["diagnosis"]["context"]["line"] == NAME_ERROR.line
    assert strategy_file_path(NAME_ERROR.name).read_text() == NAME_ERROR.broken


def test_an_endless_loop_in_run_backtest_is_a_timeout_not_a_lost_thread(server):
    write_strategy(ENDLESS_LOOP.name, ENDLESS_LOOP.broken, author="user")

    async def go():
        async with http_client(server) as client:
            started = time.perf_counter()
            result = await client.call_tool(
                "run_backtest", {"strategy": ENDLESS_LOOP.name, "sample": SAMPLE, "time_limit": 0.5}
            )
            return result, time.perf_counter() - started

    result, seconds = asyncio.run(go())
    err = error_record(result)
    assert err["code"] == "TIMEOUT" and err["context"]["line"] in ENDLESS_LOOP.lines
    assert seconds < 10


def test_heal_refuses_paths(server):
    async def go():
        async with http_client(server) as client:
            return await client.call_tool("heal_strategy", {"strategy": "../../etc/passwd.py"})

    assert error_record(asyncio.run(go()))["type"] == "SecurityError"


def test_paper_session_tools(server):
    done = threading.Event()

    async def go():
        async with http_client(server) as client:
            started = structured(
                await client.call_tool(
                    "start_paper_session",
                    {
                        "strategy": "sma_cross",
                        "sample": {"kind": "synthetic", "n": 400},
                        "params": {"fast": 5, "slow": 20},
                        "speed": 0,
                    },
                )
            )
            sid = started["session_id"]
            status = None
            for _ in range(200):
                status = structured(await client.call_tool("paper_session_status", {"session_id": sid}))
                if status["status"] != "running":
                    done.set()
                    break
                await asyncio.sleep(0.05)
            listed = structured(await client.call_tool("list_paper_sessions", {}))
            slow = structured(
                await client.call_tool(
                    "start_paper_session",
                    {"strategy": "sma_cross", "sample": {"kind": "synthetic", "n": 5000}, "speed": 50},
                )
            )
            stopped = structured(
                await client.call_tool("stop_paper_session", {"session_id": slow["session_id"]})
            )
            unknown = await client.call_tool("paper_session_status", {"session_id": "nope"})
            return sid, status, listed, stopped, unknown

    sid, status, listed, stopped, unknown = asyncio.run(go())
    assert done.is_set() and status["status"] == "finished", status
    assert status["bars_processed"] == 400 and status["n_fills"] > 0
    assert sid in {s["session_id"] for s in listed["sessions"]}
    assert stopped["status"] in {"stopped", "finished"} and stopped["bars_processed"] < 5000
    assert error_record(unknown)["code"] == "NOT_FOUND"
