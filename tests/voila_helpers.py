"""Start Voilà for the browser tests: own HOME, Jupyter dirs and QLM workspace, a free port, and a
clean stop (the server and its kernels) by process group."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def isolated_env(tmp: Path) -> dict[str, str]:
    """The environment for a Jupyter process that must not touch the user's files."""
    home = tmp / "home"
    for sub in ("home", "qlm", "runtime", "config", "data"):
        (tmp / sub).mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(
        {
            "HOME": str(home),
            "QLM_HOME": str(tmp / "qlm"),
            "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
            "JUPYTER_CONFIG_DIR": str(tmp / "config"),
            "JUPYTER_DATA_DIR": str(tmp / "data"),
            "IPYTHONDIR": str(home / ".ipython"),
            "QLM_RECORD_RUNS": "0",
            "PYTHONUNBUFFERED": "1",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        }
    )
    return env


@contextlib.contextmanager
def serve(cmd: list[str], env: dict[str, str], port: int, log: Path, timeout: float = 60.0) -> Iterator[str]:
    """Run ``cmd`` (a Voilà server on ``port``) until the block ends; yields its base URL."""
    url = f"http://127.0.0.1:{port}/"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"voila exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:  # any HTTP answer means it listens (this URL starts no kernel)
                with urllib.request.urlopen(url + "voila/static/ready", timeout=2):
                    break
            except urllib.error.HTTPError:
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"voila did not start in {timeout} s:\n{log.read_text()[-3000:]}"
                    ) from None
                time.sleep(0.2)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
