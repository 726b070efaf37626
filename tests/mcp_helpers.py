"""Shared pieces of the MCP tests: real SDK clients over streamable HTTP, SSE and stdio."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx2
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from tests.heal_cases import NAME_ERROR

SMALL_SAMPLE = {"kind": "synthetic", "n": 3000, "seed": 0}

BROKEN_NAME_ERROR = NAME_ERROR.broken  # the heal tests' NameError case: 'clsoe' on line 10


@contextlib.contextmanager
def serving(root: Path) -> Iterator[Any]:
    """The in-kernel MCP server (a daemon thread of this process) on a workspace at ``root``, with
    recording on; afterwards the server, the event writer and the shared store are closed."""
    import pytest

    import qlm_kernel.mcp as qmcp
    from qlm_kernel.session import stop_event_recorder
    from qlm_kernel.store import close_default_store

    mp = pytest.MonkeyPatch()
    mp.setenv("QLM_HOME", str(root))
    mp.setenv("QLM_RECORD_RUNS", "1")
    handle = qmcp.start()
    try:
        yield handle
    finally:
        handle.stop()
        stop_event_recorder()
        close_default_store()
        mp.undo()


@contextlib.asynccontextmanager
async def http_client(handle: Any, **kwargs: Any) -> AsyncIterator[Client]:
    """A real SDK client over streamable HTTP with the server's bearer token."""
    async with (
        httpx2.AsyncClient(headers=handle.headers(), timeout=httpx2.Timeout(120.0)) as hc,
        Client(streamable_http_client(handle.url, http_client=hc), **kwargs) as client,
    ):
        yield client


@contextlib.asynccontextmanager
async def sse_session(handle: Any, **kwargs: Any) -> AsyncIterator[Client]:
    """A real SDK client over the legacy SSE transport."""
    async with Client(sse_client(handle.sse_url, headers=handle.headers(), timeout=30), **kwargs) as client:
        yield client


def stdio_params(home: str, **env: str) -> StdioServerParameters:
    """Launch ``qlm mcp --stdio`` with this interpreter, in workspace `home`."""
    return StdioServerParameters(
        command=sys.executable,
        args=["-c", "import sys; from qlm_kernel.cli import main; sys.exit(main(['mcp', '--stdio']))"],
        env={"QLM_HOME": home, "QLM_RECORD_RUNS": "1", "PYTHONPATH": os.pathsep.join(sys.path), **env},
    )


def structured(result: Any) -> dict[str, Any]:
    """The structured result of a successful call (fails the test with the error JSON otherwise)."""
    assert not result.is_error, result.content[0].text if result.content else result
    return result.structured_content


def error_record(result: Any) -> dict[str, Any]:
    """The QLMError record of a failed call (text JSON and structured content agree)."""
    assert result.is_error, result
    record = json.loads(result.content[0].text)
    assert result.structured_content == {"error": record}
    return record
