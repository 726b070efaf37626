"""The QLM Jupyter server extension's handlers on a real store, through a real Jupyter server (jp_fetch).

Shapes of every endpoint, authentication and authorization, QLMError JSON answers, read-only access (a
missing database is never created), no request path reaching the file system, job cancel, the live event
stream, and store reads off the event loop (a read waiting for a locked database delays no other request).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_server.auth.authorizer import Authorizer
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from qlm_kernel.store import Store

pytest.importorskip("qlm_jupyterlab", reason="the extension is installed by scripts/setup.sh")

pytest_plugins = ["pytest_jupyter.jupyter_server"]

DIFF = "--- a/sma.py\n+++ b/sma.py\n@@ -1,2 +1,2 @@\n-x = 1\n+x = 2\n"


@pytest.fixture
def qlm_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty workspace named by QLM_HOME."""
    home = tmp_path / "qlm-home"
    home.mkdir()
    monkeypatch.setenv("QLM_HOME", str(home))
    return home


class HeaderRoleAuthorizer(Authorizer):
    """A real server authorizer with roles from a request header: ``X-Test-Role: reader`` may only read
    the ``qlm`` resource, ``nobody`` may do nothing with it; requests without the header may do all."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        """Allow by role (the header), for the qlm resource only."""
        role = handler.request.headers.get("X-Test-Role")
        if resource != "qlm" or role is None:
            return True
        return role == "reader" and action == "read"


@pytest.fixture
def jp_server_config(qlm_home: Path) -> dict[str, Any]:
    """Enable the extension (QLM_HOME is set before the server starts), with the role authorizer."""
    return {"ServerApp": {"jpserver_extensions": {"qlm_jupyterlab": True},
                          "authorizer_class": HeaderRoleAuthorizer}}


@pytest.fixture
def filled(qlm_home: Path) -> dict[str, Any]:
    """A store with a running and a finished job, runs, versions, a heal session and MCP events."""
    ids: dict[str, Any] = {}
    with Store(qlm_home / "qlm.db") as store:
        ids["running"] = store.create_job("optimize", config={"strategy": "SmaCross", "method": "grid",
                                                              "objective": "sharpe"}, total=40)
        store.update_job(ids["running"], status="running", done=10,
                         best={"params": {"fast": 5}, "value": 1.5})
        ids["done"] = store.create_job("optimize", config={"strategy": "SmaCross"}, total=4)
        store.update_job(ids["done"], done=4)
        store.finish_job(ids["done"], "done", best={"params": {"fast": 10}, "value": 0.7})
        version = store.save_strategy_version("sma.py", "x = 1\n")
        store.save_strategy_version("sma.py", "x = 2\n", author="healer")
        ids["run"] = store.record_run(strategy="sma.py", strategy_version_id=version["id"],
                                      params={"fast": 10},
                                      stats={"sharpe": 1.25, "total_return": 0.1, "n_trades": 12,
                                             "extra": float("nan")}, duration_s=0.01)
        ids["bad_run"] = store.record_run(strategy="sma.py", error={"type": "StrategyError", "code": "X",
                                                                    "message": "boom"})
        sid = store.create_heal_session("sma.py", max_attempts=3, model="scripted")
        t = time.time()
        store.add_heal_step(sid, index=1, attempt=0, kind="run", ok=False, started_at=t, ended_at=t + 0.1,
                            data={"error": {"code": "STRATEGY_RUNTIME", "message": "NameError"}})
        store.add_heal_step(sid, index=2, attempt=1, kind="patch", ok=True, started_at=t, ended_at=t + 0.2,
                            data={"diff": DIFF, "version": 2})
        store.finish_heal_session(sid, "healed", healed=True, attempts=1)
        ids["heal"] = sid
        ids["last_event"] = store.append_events([
            {"topic": "job.progress", "payload": {"job_id": ids["running"], "done": 10, "total": 40}},
            {"topic": "mcp.server.started", "payload": {"transport": "http", "url": "http://127.0.0.1:9/mcp"},
             "source": "mcp"},
            {"topic": "mcp.client.connected", "payload": {"client": "claude", "version": "1.0",
                                                          "transport": "streamable-http"}, "source": "mcp"},
            {"topic": "mcp.tool.called", "payload": {"tool": "run_backtest"}, "source": "mcp"},
            {"topic": "heal.finished", "payload": {"session_id": sid, "status": "healed"}},
        ])
    reports = qlm_home / "reports"
    reports.mkdir()
    (reports / f"run-{ids['run']}.html").write_text("<html><body>report</body></html>")
    return ids


async def get(jp_fetch: Any, path: str, **params: Any) -> Any:
    """GET qlm/api/<path> and decode the JSON."""
    response = await jp_fetch("qlm", "api", *path.split("/"), params=params or None)
    assert response.headers["Content-Type"].startswith("application/json")
    return json.loads(response.body)


async def error_of(jp_fetch: Any, path: str, method: str = "GET", **kwargs: Any) -> tuple[int, dict]:
    """The status and decoded JSON body of a request expected to fail."""
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("qlm", "api", *path.split("/"), method=method, **kwargs)
    return info.value.code, json.loads(info.value.response.body)


async def test_shapes(jp_fetch: Any, filled: dict[str, Any], qlm_home: Path) -> None:
    status = await get(jp_fetch, "status")
    assert status["qlm_home"] == str(qlm_home.resolve()) and status["db_exists"] is True
    assert status["poll_seconds"] <= 0.5

    jobs = (await get(jp_fetch, "jobs"))["jobs"]
    assert [j["id"] for j in jobs] == [filled["done"], filled["running"]]
    running = jobs[1]
    assert running["status"] == "running" and running["done"] == 10 and running["total"] == 40
    assert running["progress"] == pytest.approx(0.25) and running["strategy"] == "SmaCross"
    assert running["best"] == {"params": {"fast": 5}, "value": 1.5} and running["stale"] is False
    assert jobs[0]["progress"] == 1.0 and jobs[0]["status"] == "done"
    assert [j["id"] for j in (await get(jp_fetch, "jobs", status="running"))["jobs"]] == [filled["running"]]
    assert (await get(jp_fetch, f"jobs/{filled['running']}"))["job"]["method"] == "grid"

    runs = (await get(jp_fetch, "runs"))["runs"]
    assert [r["id"] for r in runs] == [filled["bad_run"], filled["run"]]
    ok = runs[1]
    assert ok["stats"] == {"sharpe": 1.25, "total_return": 0.1, "n_trades": 12}  # key stats only
    assert ok["params"] == {"fast": 10} and ok["has_report"] is True
    assert runs[0]["error"] == {"type": "StrategyError", "code": "X", "message": "boom"}
    full = (await get(jp_fetch, f"runs/{filled['run']}"))["run"]
    assert full["stats"]["extra"] is None and "settings" in full  # NaN becomes null
    report = await jp_fetch("qlm", "api", "runs", str(filled["run"]), "report")
    assert report.headers["Content-Type"].startswith("text/html") and b"report" in report.body

    strategies = (await get(jp_fetch, "strategies"))["strategies"]
    assert strategies[0]["name"] == "sma.py" and strategies[0]["versions"] == 2
    versions = (await get(jp_fetch, "strategies/sma.py/versions"))["versions"]
    assert [(v["version"], v["author"]) for v in versions] == [(1, "user"), (2, "healer")]
    assert "code" not in versions[0]

    sessions = (await get(jp_fetch, "heal"))["sessions"]
    assert sessions[0]["id"] == filled["heal"] and sessions[0]["status"] == "healed"
    session = (await get(jp_fetch, f"heal/{filled['heal']}"))["session"]
    assert [s["kind"] for s in session["steps"]] == ["run", "patch"]
    assert session["steps"][1]["data"]["diff"] == DIFF

    events = await get(jp_fetch, "events", after=0)
    assert events["last_id"] == filled["last_event"] and len(events["events"]) == 5
    assert {"id", "topic", "payload", "source", "created_at", "time"} <= set(events["events"][0])
    only_mcp = await get(jp_fetch, "events", after=0, topic="mcp.*")
    assert [e["topic"] for e in only_mcp["events"]] == ["mcp.server.started", "mcp.client.connected",
                                                        "mcp.tool.called"]
    assert len((await get(jp_fetch, "events", after=2, limit=1))["events"]) == 1

    mcp = await get(jp_fetch, "mcp")
    server = mcp["servers"][0]
    assert server["url"] == "http://127.0.0.1:9/mcp" and server["status"] == "running"
    assert server["reachable"] is False  # nothing listens on port 9
    http = server["config"]["http"]["mcpServers"]["qlm"]
    assert http["type"] == "http" and http["url"] == server["url"]
    assert "<token" in http["headers"]["Authorization"]  # a placeholder: tokens are never stored
    assert mcp["stdio_config"]["mcpServers"]["qlm"] == {"command": "qlm", "args": ["mcp", "--stdio"],
                                                        "env": {"QLM_HOME": str(qlm_home.resolve())}}
    assert [c["client"] for c in mcp["clients"]] == ["claude"] and mcp["tool_calls"] == 1
    with Store(qlm_home / "qlm.db") as store:
        store.append_events([{"topic": "mcp.server.stopped", "payload": {"transport": "http",
                                                                         "url": server["url"]}}])
    assert (await get(jp_fetch, "mcp"))["servers"][0]["status"] == "stopped"


async def test_missing_database_reads_empty_and_is_never_created(jp_fetch: Any, qlm_home: Path) -> None:
    for path, key in (("jobs", "jobs"), ("runs", "runs"), ("strategies", "strategies"), ("heal", "sessions"),
                      ("events", "events"), ("strategies/x.py/versions", "versions")):
        assert (await get(jp_fetch, path))[key] == []
    assert (await get(jp_fetch, "mcp"))["servers"] == []
    assert (await get(jp_fetch, "status"))["db_exists"] is False
    code, body = await error_of(jp_fetch, "jobs/abc/cancel", method="POST", body=b"")
    assert code == 404 and body["error"]["code"] == "NOT_FOUND"
    assert list(qlm_home.iterdir()) == []  # nothing created, not even the database


async def test_errors_are_qlm_errors_as_json(jp_fetch: Any, filled: dict[str, Any]) -> None:
    for path, status, code in (("jobs/nope", 404, "NOT_FOUND"), ("runs/999", 404, "NOT_FOUND"),
                               ("heal/nope", 404, "NOT_FOUND"), ("runs/999/report", 404, "NOT_FOUND"),
                               (f"runs/{filled['bad_run']}/report", 404, "NOT_FOUND")):
        got, body = await error_of(jp_fetch, path)
        assert got == status and body["error"]["code"] == code and body["error"]["type"] == "ConfigError"
        assert body["error"]["message"] and "hint" in body["error"]
    got, body = await error_of(jp_fetch, "jobs", params={"limit": "lots"})
    assert got == 400 and "limit" in body["error"]["message"]
    got, body = await error_of(jp_fetch, "events", params={"topic": "Bad Topic!"})
    assert got == 400 and body["error"]["type"] == "ConfigError"
    got, body = await error_of(jp_fetch, "jobs", params={"status": "sleeping"})
    assert got == 400


async def test_authentication_is_required(jp_fetch: Any, filled: dict[str, Any]) -> None:
    bad = {"Authorization": "token wrong"}
    for path in ("status", "jobs", f"jobs/{filled['running']}", "runs", f"runs/{filled['run']}",
                 f"runs/{filled['run']}/report", "strategies", "strategies/sma.py/versions", "heal",
                 f"heal/{filled['heal']}", "events", "events/stream", "mcp", "quickstart"):
        with pytest.raises(HTTPClientError) as info:
            await jp_fetch("qlm", "api", *path.split("/"), headers=bad, follow_redirects=False)
        assert info.value.code == 403, path
        assert b"sma.py" not in (info.value.response.body or b"")
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("qlm", "api", "jobs", filled["running"], "cancel", method="POST", body=b"",
                       headers=bad)
    assert info.value.code == 403
    with Store(_db(filled), readonly=True) as store:
        assert store.get_job(filled["running"])["cancel_requested"] is False


def _db(filled: dict[str, Any]) -> Path:
    """The test workspace's database (QLM_HOME is set by the qlm_home fixture)."""
    import os

    return Path(os.environ["QLM_HOME"]) / "qlm.db"


async def test_no_request_path_reaches_the_file_system(jp_fetch: Any, jp_http_port: int, jp_base_url: str,
                                                       jp_auth_header: dict, filled: dict[str, Any],
                                                       qlm_home: Path) -> None:
    secret = qlm_home.parent / "secret.html"
    secret.write_text("secret")
    (qlm_home / "reports" / "run-x.html").write_text("secret")
    root = f"http://127.0.0.1:{jp_http_port}{jp_base_url}qlm/api/"
    client = AsyncHTTPClient()
    for path in ("runs/..%2F..%2Fsecret/report", "runs/../../secret/report", "runs/x/report",
                 "runs/-1/report", "runs/1.5/report", "runs/%2e%2e/report",
                 "runs/1%2F..%2F..%2Fsecret/report",
                 "strategies/..%2F..%2Fetc%2Fpasswd/versions", "strategies/../../../etc/passwd/versions",
                 "heal/..%2F..%2Fsecret", "jobs/..%2Fqlm.db", "quickstart/..%2F..%2Fsecret",
                 "runs/%00/report", "strategies/a%00b/versions"):
        response = await client.fetch(root + path, headers=jp_auth_header, raise_error=False)
        assert response.code in (400, 404), path
        assert b"secret" not in (response.body or b""), path
    # names with dots only ever become SQL parameters
    response = await client.fetch(root + "strategies/..passwd/versions", headers=jp_auth_header)
    assert json.loads(response.body)["versions"] == []


async def test_cancel_sets_the_flag_a_worker_polls(jp_fetch: Any, filled: dict[str, Any]) -> None:
    response = await jp_fetch("qlm", "api", "jobs", filled["running"], "cancel", method="POST", body=b"")
    assert json.loads(response.body) == {"job_id": filled["running"], "status": "running",
                                         "cancel_requested": True}  # the one reply of qlm.optimize.cancel
    with Store(_db(filled), readonly=True) as store:
        assert store.cancel_requested(filled["running"]) is True
    code, body = await error_of(jp_fetch, f"jobs/{filled['done']}/cancel", method="POST", body=b"")
    assert code == 400 and body["error"]["code"] == "JOB_FINISHED"  # already finished
    code, body = await error_of(jp_fetch, "jobs/nope/cancel", method="POST", body=b"")
    assert code == 404 and body["error"]["code"] == "NOT_FOUND"
    assert (await get(jp_fetch, f"jobs/{filled['running']}"))["job"]["cancel_requested"] is True


async def test_sidebar_shows_what_the_session_api_returns(jp_fetch: Any, filled: dict[str, Any],
                                                         qlm_home: Path) -> None:
    """The sidebar is a skin over `qlm_kernel.session`: the same job views, runs and errors."""
    from qlm_kernel import session
    from qlm_kernel.errors import QLMError

    def without_age(view: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in view.items() if k != "heartbeat_age_s"}

    sidebar_jobs = (await get(jp_fetch, "jobs"))["jobs"]
    assert [without_age(v) for v in sidebar_jobs] == [without_age(v) for v in session.list_jobs(limit=50)]
    one = (await get(jp_fetch, f"jobs/{filled['running']}", trials="2"))["job"]
    assert without_age(one) == without_age(session.get_job(filled["running"], 2))
    full = (await get(jp_fetch, f"runs/{filled['run']}"))["run"]
    stored = session.get_run(filled["run"])
    assert full["stats"] == stored["stats"] and full["strategy_version"] == stored["strategy_version"]
    for path, call in ((f"jobs/{filled['done']}/cancel", lambda: session.cancel_job(filled["done"])),
                       ("jobs/nope/cancel", lambda: session.cancel_job("nope"))):
        _, body = await error_of(jp_fetch, path, method="POST", body=b"")
        with pytest.raises(QLMError) as info:
            call()
        python = info.value.to_dict()
        assert {k: body["error"][k] for k in ("type", "code", "message", "hint")} == {
            k: python[k] for k in ("type", "code", "message", "hint")}


async def test_event_stream_delivers_new_events_within_a_second(
        jp_fetch: Any, jp_http_port: int, jp_base_url: str, jp_auth_header: dict,
        filled: dict[str, Any]) -> None:
    import asyncio

    chunks: list[tuple[float, str]] = []
    url = f"http://127.0.0.1:{jp_http_port}{jp_base_url}qlm/api/events/stream?after=-1&topic=job.*"
    fetch = asyncio.ensure_future(AsyncHTTPClient().fetch(
        url, headers=jp_auth_header, request_timeout=4,
        streaming_callback=lambda data: chunks.append((time.monotonic(), data.decode()))))
    for _ in range(100):
        if chunks:
            break
        await asyncio.sleep(0.02)
    assert "event: hello" in chunks[0][1] and f'"last_id": {filled["last_event"]}' in chunks[0][1]
    writer = Store(_db(filled))
    sent = time.monotonic()
    writer.append_events([{"topic": "job.progress", "payload": {"job_id": filled["running"], "done": 11}},
                          {"topic": "engine.backtest.finished", "payload": {}},
                          {"topic": "job.finished", "payload": {"job_id": filled["running"]}}])
    writer.close()
    while time.monotonic() - sent < 2 and len(chunks) < 2:
        await asyncio.sleep(0.02)
    arrived, text = chunks[1]
    assert arrived - sent < 1.0
    body = json.loads(text.split("data: ", 1)[1])
    assert [e["topic"] for e in body["events"]] == ["job.progress", "job.finished"]  # the filter applies
    assert text.startswith(f"id: {body['last_id']}\n")
    with pytest.raises(HTTPClientError):  # the stream never ends by itself: the client times out
        await fetch


async def test_authorization_is_asked_for_read_and_write(jp_fetch: Any, filled: dict[str, Any]) -> None:
    reader, nobody = {"X-Test-Role": "reader"}, {"X-Test-Role": "nobody"}
    jobs = json.loads((await jp_fetch("qlm", "api", "jobs", headers=reader)).body)["jobs"]
    assert {j["id"] for j in jobs} == {filled["running"], filled["done"]}  # a reader may look
    with pytest.raises(HTTPClientError) as info:  # ... but not cancel
        await jp_fetch("qlm", "api", "jobs", filled["running"], "cancel", method="POST", body=b"",
                       headers=reader)
    assert info.value.code == 403
    with Store(_db(filled), readonly=True) as store:
        assert store.get_job(filled["running"])["cancel_requested"] is False
    for path in ("status", "jobs", f"jobs/{filled['running']}", "runs", f"runs/{filled['run']}/report",
                 "strategies", "heal", "events", "events/stream", "mcp", "quickstart"):
        with pytest.raises(HTTPClientError) as info:
            await jp_fetch("qlm", "api", *path.split("/"), headers=nobody)
        assert info.value.code == 403, path
        assert b"SmaCross" not in (info.value.response.body or b""), path


@pytest.fixture
def locked_db(filled: dict[str, Any]) -> Iterator[subprocess.Popen]:
    """Another process holding an exclusive lock on the workspace database until it reads a line."""
    holder = subprocess.Popen([sys.executable, "-c", f"""
import sqlite3, sys
conn = sqlite3.connect({str(_db(filled))!r}, isolation_level=None)
conn.execute("PRAGMA locking_mode = EXCLUSIVE")
conn.execute("BEGIN EXCLUSIVE")
conn.execute("INSERT INTO config (key, value, updated_at) VALUES ('test.lock', '1', 'now')")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("COMMIT")
"""], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    yield holder
    holder.kill()
    holder.wait(timeout=30)


def release(holder: subprocess.Popen) -> None:
    """Let the lock holder commit and exit."""
    assert holder.stdin is not None
    holder.stdin.write("\n")
    holder.stdin.flush()
    holder.wait(timeout=30)


async def test_a_read_waiting_for_a_lock_does_not_block_other_requests(
        jp_fetch: Any, filled: dict[str, Any], locked_db: subprocess.Popen) -> None:
    slow = asyncio.ensure_future(jp_fetch("qlm", "api", "jobs"))  # waits for the lock (busy timeout)
    await asyncio.sleep(0.3)
    assert not slow.done()
    started = time.monotonic()
    status = await asyncio.wait_for(get(jp_fetch, "status"), timeout=5)  # served meanwhile
    quickstart = await asyncio.wait_for(get(jp_fetch, "quickstart"), timeout=5)
    waited = time.monotonic() - started
    assert status["db_exists"] is True and quickstart["name"] == "quickstart.ipynb"
    assert waited < 2.0 and not slow.done()  # the jobs read is still waiting for the lock
    release(locked_db)
    response = await asyncio.wait_for(slow, timeout=30)
    assert {j["id"] for j in json.loads(response.body)["jobs"]} == {filled["running"], filled["done"]}
