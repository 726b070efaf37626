"""The container image (Containerfile, deploy/), built and run for real with podman (issue 20).

A module fixture makes the local Debian base image (deploy/make_base_image.sh, cached in podman's storage
between runs), builds the image (deploy/build_image.sh, podman's layer cache makes a re-build quick) and
starts one container: `qlm mcp --http` bound to 0.0.0.0 inside, published on the host's loopback only
(``-p 127.0.0.1:<free port>:8765``), the token from the environment, QLM_HOME on a host folder. From the
host, the real MCP SDK client over streamable HTTP runs a backtest; requests without the token, with a
wrong one or for a foreign Host are refused; the server runs as uid 10001; the run is in the mounted
store. Other containers check the refusal to start without a token, a mounted token file, and JupyterLab
(QLM's extension) and Voila (the dashboard) started as docs/deploy.md says. Containers are always
removed. Needs root on Linux (podman and debootstrap); elsewhere skipped. Parallel workers (xdist) share
one build (a file lock) and each starts its own containers.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import math
import os
import secrets
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest

from tests.mcp_helpers import SMALL_SAMPLE, http_client, structured

REPO = Path(__file__).resolve().parents[1]
PODMAN = REPO / "deploy" / "podman.sh"
IMAGE = "localhost/qlm:test"
QLM_UID = 10001
MCP_PORT = 8765

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not sys.platform.startswith("linux") or os.geteuid() != 0,
        reason="the container test needs root on Linux (podman, debootstrap for the base image)",
    ),
]


def podman(*args: str, timeout: float = 120, check: bool = True, **env: str) -> subprocess.CompletedProcess:
    """deploy/podman.sh ARGS (this machine's podman settings); its output; fails the test when it fails."""
    done = subprocess.run(
        ["bash", str(PODMAN), *args], capture_output=True, text=True, timeout=timeout,
        env={**os.environ, **env},
    )
    if check and done.returncode != 0:
        pytest.fail(f"podman {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Endpoint:
    """What tests.mcp_helpers.http_client needs: the URL and the bearer token's header."""

    url: str
    token: str

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Running:
    name: str
    endpoint: Endpoint
    home: Path
    port: int


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> str:
    """The image, built once for all workers (they wait on a lock; the later ones find podman's cache)."""
    lock_path = tmp_path_factory.getbasetemp().parent / "qlm-container-build.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        started = time.monotonic()
        done = subprocess.run(
            ["bash", str(REPO / "deploy" / "build_image.sh"), IMAGE],
            capture_output=True, text=True, timeout=1500,
        )
        if done.returncode != 0:
            pytest.fail(f"building the image failed ({done.returncode}):\n{done.stderr[-6000:]}")
        print(f"image {IMAGE} ready in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return IMAGE


def wait_healthy(name: str, timeout: float = 120) -> None:
    """Until the image's HEALTHCHECK passes (`podman healthcheck run`); fails with the logs if it dies."""
    deadline = time.monotonic() + timeout
    while True:
        if podman("healthcheck", "run", name, check=False).returncode == 0:
            return
        state = podman("inspect", "--format", "{{.State.Status}}", name, check=False).stdout.strip()
        if state not in ("running", "created") or time.monotonic() > deadline:
            logs = podman("logs", name, check=False)
            pytest.fail(f"container {name} not healthy ({state}):\n{logs.stdout}\n{logs.stderr}")
        time.sleep(1)


@contextlib.contextmanager
def container(image: str, home: Path, *args: str, command: tuple[str, ...] = (), inner_port: int = MCP_PORT,
              **env: str) -> Iterator[Running]:
    """A detached container of `image` (its default command: MCP) with `inner_port` published on a free
    loopback port of the host, QLM_HOME on `home` (owned by uid 10001, as the image's user needs); once
    its health check passes. Removed afterwards whatever happened."""
    os.chown(home, QLM_UID, QLM_UID)
    port = free_port()
    name = f"qlm-test-{os.getpid()}-{secrets.token_hex(4)}"
    run = [
        "run", "-d", "--name", name,
        "-p", f"127.0.0.1:{port}:{inner_port}",
        "-v", f"{home}:/home/qlm/.qlm",
        # no systemd here to schedule health checks: they are run on demand (podman healthcheck run)
        "--health-interval", "disable",
        *args, image, *command,
    ]
    try:
        podman(*run, **env)
        wait_healthy(name)
        token = env.get("QLM_MCP_TOKEN", "")
        yield Running(name, Endpoint(f"http://127.0.0.1:{port}/mcp", token), home, port)
    finally:
        podman("rm", "-f", "-t", "3", name, check=False)


@pytest.fixture(scope="module")
def served(image, tmp_path_factory) -> Iterator[Running]:
    """The default command: MCP over HTTP, the token from the environment (`-e QLM_MCP_TOKEN` without a
    value: podman takes it from its own environment, so the token is not on a command line)."""
    home = tmp_path_factory.mktemp("container_qlm_home")
    token = secrets.token_urlsafe(32)
    with container(image, home, "-e", "QLM_MCP_TOKEN", QLM_MCP_TOKEN=token) as running:
        yield running


def initialize_request(url: str, headers: dict[str, str]) -> httpx2.Response:
    """A raw MCP initialize POST (what a client sends first)."""
    body = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "probe", "version": "0"}}}
    return httpx2.post(url, json=body, timeout=30, headers={
        "Accept": "application/json, text/event-stream", **headers})


def test_a_backtest_over_http_from_the_host_is_answered_and_stored(served):
    async def go():
        async with http_client(served.endpoint) as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            bt = structured(await client.call_tool(
                "run_backtest", {"strategy": "sma_cross", "sample": SMALL_SAMPLE, "params": {"slow": 40}}))
            return tools, bt

    tools, bt = asyncio.run(go())
    assert {"run_backtest", "list_runs", "write_strategy"} <= tools
    assert bt["bars"] == SMALL_SAMPLE["n"]
    assert bt["trades"]["count"] == bt["stats"]["n_trades"] > 0
    final = bt["stats"]["final_value"]
    assert isinstance(final, float) and math.isfinite(final) and final > 0
    assert isinstance(bt["run_id"], int)
    print(f"backtest in the container: {bt['seconds']:.2f} s, {bt['stats']['n_trades']} trades, "
          f"final value {final:.2f}", file=sys.stderr)
    # recorded in the store on the mounted volume: the host sees the run
    db = served.home / "qlm.db"
    assert db.is_file()
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        query = "SELECT strategy, status, source FROM runs WHERE id = ?"
        row = conn.execute(query, (bt["run_id"],)).fetchone()
    assert row == ("sma_cross", "ok", "mcp")


def test_requests_without_the_token_a_wrong_one_or_a_foreign_host_are_refused(served):
    url = served.endpoint.url
    assert initialize_request(url, {}).status_code == 401
    wrong = {"Authorization": f"Bearer {secrets.token_urlsafe(32)}"}
    assert initialize_request(url, wrong).status_code == 401
    assert initialize_request(url, {"Authorization": "Bearer"}).status_code == 401
    good = served.endpoint.headers()
    assert initialize_request(url, good).status_code == 200
    # DNS rebinding guard: the token is not enough for a Host or Origin the server was not told about
    assert initialize_request(url, {**good, "Host": f"evil.example:{served.port}"}).status_code == 421
    assert initialize_request(url, {**good, "Origin": "http://evil.example"}).status_code == 403


def test_the_server_runs_as_a_non_root_user_published_on_loopback_only(served):
    assert podman("exec", served.name, "id", "-u").stdout.strip() == str(QLM_UID)
    # PID 1 is the server itself (the entrypoint execs it), owned by the image's user
    assert podman("exec", served.name, "stat", "-c", "%u", "/proc/1").stdout.strip() == str(QLM_UID)
    inspect = json.loads(podman("inspect", served.name).stdout)[0]
    bindings = inspect["HostConfig"]["PortBindings"][f"{MCP_PORT}/tcp"]
    assert [b["HostIp"] for b in bindings] == ["127.0.0.1"]
    assert inspect["Config"]["User"] == "qlm"
    health = podman("healthcheck", "run", served.name)
    assert health.returncode == 0


def test_the_server_refuses_to_start_without_a_token(image):
    done = podman("run", "--rm", "--health-interval", "disable", image, check=False, timeout=60)
    assert done.returncode == 64
    assert "refusing to serve MCP over HTTP without a token" in done.stderr


def test_the_token_from_a_mounted_secret_file(image, tmp_path):
    token = secrets.token_urlsafe(32)
    secret = tmp_path / "token"
    secret.write_text(token + "\n")
    os.chown(secret, QLM_UID, QLM_UID)
    secret.chmod(0o400)
    home = tmp_path / "home"
    home.mkdir()
    with container(image, home, "-v", f"{secret}:/run/secrets/qlm_mcp_token:ro") as running:
        url = running.endpoint.url
        assert initialize_request(url, {"Authorization": f"Bearer {token}"}).status_code == 200
        assert initialize_request(url, {}).status_code == 401


def test_jupyterlab_with_qlms_extension_and_the_voila_dashboard_run_from_the_image(image, tmp_path):
    """The lines docs/deploy.md gives: JupyterLab serves QLM's labextension and server extension; Voila
    renders the dashboard notebook."""
    token = secrets.token_urlsafe(24)
    (tmp_path / "lab").mkdir()
    lab_args = ("-e", "JUPYTER_TOKEN", "-e", "QLM_HEALTH_URL=http://127.0.0.1:8888/api")
    lab_command = ("jupyter", "lab", "--ip", "0.0.0.0", "--port", "8888", "--no-browser")
    with container(image, tmp_path / "lab", *lab_args, command=lab_command, inner_port=8888,
                   JUPYTER_TOKEN=token) as lab:
        base = f"http://127.0.0.1:{lab.port}"
        extensions = httpx2.get(f"{base}/lab/api/extensions", params={"token": token}, timeout=60).json()
        assert [e["enabled"] for e in extensions if e["name"] == "qlm-jupyterlab"] == [True]
        assert httpx2.get(f"{base}/lab/api/extensions", timeout=60).status_code == 403  # no token
        listed = podman("exec", lab.name, "jupyter", "server", "extension", "list")
        servers = listed.stdout + listed.stderr
        assert "qlm_jupyterlab" in servers and "enabled" in servers
    (tmp_path / "voila").mkdir()
    voila_args = ("-e", "QLM_HEALTH_URL=http://127.0.0.1:8866/")
    voila_command = ("voila", "notebooks/dashboard.ipynb", "--Voila.ip=0.0.0.0", "--port", "8866",
                     "--no-browser")
    with container(image, tmp_path / "voila", *voila_args, command=voila_command, inner_port=8866) as voila:
        page = httpx2.get(f"http://127.0.0.1:{voila.port}/", timeout=120)
        assert page.status_code == 200 and "<title>dashboard</title>" in page.text
