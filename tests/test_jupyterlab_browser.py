"""The QLM sidebar in a real JupyterLab, driven by headless Chromium: a job started by another process
appears, progresses live to 100 %, its events reach the live log, and its run opens as a report.

JupyterLab runs as a subprocess on a temporary root, HOME, Jupyter dirs and QLM_HOME; the optimization
runs in a second subprocess writing to the same QLM_HOME. Screenshots go to tests/browser_helpers'
artifacts directory.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser_helpers import CHROMIUM, artifacts_dir, chromium_page

pytestmark = pytest.mark.slow

VENV_BIN = Path(sys.executable).parent
LABEXTENSION = Path(sys.prefix) / "share" / "jupyter" / "labextensions" / "qlm-jupyterlab" / "package.json"

OPTIMIZE = """
import qlm_kernel as qlm
from qlm_kernel.session import ensure_event_recorder

ensure_event_recorder()  # persist this process's bus events in the store, as a kernel does
df = qlm.sample_data("synthetic", n=200_000, seed=0)
opt = qlm.optimize("sma_cross", df, space={"fast": list(range(2, 52, 2)), "slow": list(range(60, 200, 7))},
                   method="grid", batch_size=25)
qlm.backtest("sma_cross", df, **opt.best_params)
print(opt.job_id, flush=True)
"""

MCP_SERVER = """
import sys
import qlm_kernel.mcp
from qlm_kernel.session import ensure_event_recorder

ensure_event_recorder()
handle = qlm_kernel.mcp.start(port=0)
print(handle.url, flush=True)
sys.stdin.read()  # serve until the test closes stdin
handle.stop()
"""

DIFF = """--- a/broken.py
+++ b/broken.py
@@ -8,3 +8,3 @@
     def signals(self, data):
-        f = ta.sma(data["close"], self.fastt)
+        f = ta.sma(data["close"], self.fast)
         s = ta.sma(data["close"], self.slow)
"""


def seed_heal_session(qlm_home: Path) -> str:
    """A finished heal session (failed run, prompt, reply, patch with a diff, verify) in the store."""
    from qlm_kernel.store import Store

    with Store(qlm_home / "qlm.db") as store:
        sid = store.create_heal_session("broken.py", max_attempts=3, model="scripted")
        t = time.time()
        steps = [("run", 0, False, {"error": {"code": "STRATEGY_RUNTIME",
                                              "message": "AttributeError: 'Broken' object has no attribute "
                                                         "'fastt'. Did you mean: 'fast'?"}}),
                 ("diagnose", 0, None, {"text": "STRATEGY_RUNTIME at broken.py line 9"}),
                 ("prompt", 1, None, {"prompt": "Fix the strategy...", "chars": 2048}),
                 ("reply", 1, True, {"text": "The attribute is misspelled; use self.fast."}),
                 ("patch", 1, True, {"diff": DIFF, "version": 2}),
                 ("verify", 1, True, {"stats": {"sharpe": 0.8}}),
                 ("finished", 1, True, {"status": "healed", "healed": True})]
        for index, (kind, attempt, ok, data) in enumerate(steps, 1):
            start = t + index / 10
            store.add_heal_step(sid, index=index, attempt=attempt, kind=kind, ok=ok, started_at=start,
                                ended_at=start + 0.05, data=data)
        store.finish_heal_session(sid, "healed", healed=True, attempts=1)
    return sid


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float) -> None:
    """Wait until `url` answers 200."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer within {timeout} s")
        time.sleep(0.2)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """JupyterLab on a free port with its own HOME, Jupyter dirs, root and QLM workspace."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium not found at {CHROMIUM} (scripts/ensure_chromium.sh installs it)")
    if not LABEXTENSION.is_file():
        pytest.skip("the qlm-jupyterlab extension is not installed (bash scripts/setup.sh builds it)")
    home, root, qlm_home = tmp_path / "home", tmp_path / "root", tmp_path / "qlm"
    for path in (home, root, qlm_home):
        path.mkdir()
    settings = home / "lab-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')  # no news prompt
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, "HOME": str(home), "QLM_HOME": str(qlm_home), "QLM_RECORD_RUNS": "1",
           "JUPYTER_CONFIG_DIR": str(home / ".jupyter"), "JUPYTER_DATA_DIR": str(home / "data"),
           "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "IPYTHONDIR": str(home / ".ipython"),
           "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    log = (tmp_path / "lab.log").open("w")
    proc = subprocess.Popen(
        [str(VENV_BIN / "jupyter"), "lab", "--allow-root", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--expose-app-in-browser",
         f"--LabApp.user_settings_dir={home / 'lab-settings'}",
         "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/api/status?token={token}", 60)
        yield {"base": base, "token": token, "env": env, "qlm_home": qlm_home, "root": root}
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        shutil.copy(tmp_path / "lab.log", artifacts_dir() / "jupyterlab-extension-server.log")


def progress_texts(page: Any) -> list[str]:
    """The progress labels of the job rows shown in the panel."""
    return page.eval_on_selector_all(".qlm-job .qlm-job-progress", "nodes => nodes.map(n => n.textContent)")


def test_job_started_elsewhere_progresses_live_in_the_sidebar(lab: dict[str, Any]) -> None:
    shots = artifacts_dir()
    with chromium_page() as page:
        mcp = subprocess.Popen([sys.executable, "-c", MCP_SERVER], env=lab["env"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
        page.goto(f"{lab['base']}/lab?token={lab['token']}")
        tab = page.locator('.lm-TabBar-tab[data-id="qlm-sidebar"]')
        tab.wait_for(timeout=60_000)
        tab.click()
        panel = page.locator("#qlm-sidebar")
        panel.wait_for(state="visible")
        page.locator(".qlm-stream-state.qlm-live").wait_for(timeout=15_000)
        assert "No jobs yet" in panel.inner_text()
        # note when each event row is first shown, to measure store-to-browser latency
        page.evaluate("""() => {
            window.qlmSeen = {};
            new MutationObserver(() => document.querySelectorAll('.qlm-event').forEach(n => {
                window.qlmSeen[n.dataset.eventId] ??= Date.now();
            })).observe(document.querySelector('.qlm-events'), {childList: true, subtree: true});
        }""")
        page.screenshot(path=str(shots / "jupyterlab-sidebar-empty.png"))

        started = time.monotonic()
        worker = subprocess.Popen([sys.executable, "-c", OPTIMIZE], env=lab["env"], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        page.locator(".qlm-job").first.wait_for(timeout=30_000)
        appeared = time.monotonic() - started
        seen: list[str] = []
        midway = False
        while time.monotonic() - started < 60:
            texts = progress_texts(page)
            seen.extend(t for t in texts if not seen or t != seen[-1])
            if texts and "(100%)" not in texts[0] and "(0%)" not in texts[0] and not midway:
                page.screenshot(path=str(shots / "jupyterlab-sidebar-job-running.png"))
                midway = True
            if texts and "(100%)" in texts[0] and page.locator('.qlm-job[data-status="done"]').count():
                break
            page.wait_for_timeout(100)
        out, err = worker.communicate(timeout=60)
        assert worker.returncode == 0, err
        job_id = out.split()[-1]
        row = page.locator(f'.qlm-job[data-job-id="{job_id}"]')
        assert row.get_attribute("data-status") == "done"
        assert row.locator(".qlm-job-progress").inner_text() == "500/500 (100%)"
        assert any("(100%)" not in t for t in seen), f"never saw the job before it finished: {seen}"

        # the job's events reach the live log, each within about a second of being written
        page.locator('.qlm-event[data-topic="job.finished"]').wait_for(timeout=10_000)
        page.locator('.qlm-event[data-topic="store.run.recorded"]').wait_for(timeout=10_000)
        topics = page.eval_on_selector_all(".qlm-event", "nodes => nodes.map(n => n.dataset.topic)")
        assert {"job.created", "job.progress", "job.finished"} <= set(topics)
        shown_at = page.evaluate("() => window.qlmSeen")
        url = f"{lab['base']}/qlm/api/events?after=0&limit=500&token={lab['token']}"
        events = json.loads(urllib.request.urlopen(url, timeout=5).read())["events"]
        delays = sorted(shown_at[str(e["id"])] / 1000 - e["time"] for e in events if str(e["id"]) in shown_at)
        assert delays, "no event row was observed"
        median = delays[len(delays) // 2]
        assert median < 1.0, f"event delays {delays}"
        page.screenshot(path=str(shots / "jupyterlab-sidebar-job-done.png"))

        # the topic filter narrows the log
        page.fill(".qlm-filter", "engine.*")
        page.wait_for_timeout(100)
        filtered = page.eval_on_selector_all(".qlm-event", "nodes => nodes.map(n => n.dataset.topic)")
        assert filtered and all(t.startswith("engine.") for t in filtered)

        # the recorded run is listed; a click opens its report in the main area
        run = page.locator(".qlm-run").first
        run.wait_for(timeout=10_000)
        run.click()
        report = page.locator(".qlm-report")
        report.wait_for(timeout=10_000)
        assert "sharpe" in report.inner_text()
        page.screenshot(path=str(shots / "jupyterlab-run-report.png"))

        # the dark theme applies through JupyterLab's theme variables
        page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', "
                      "{theme: 'JupyterLab Dark'})")
        page.wait_for_function("() => document.body.dataset.jpThemeLight === 'false'", timeout=15_000)
        page.wait_for_timeout(500)
        page.screenshot(path=str(shots / "jupyterlab-sidebar-dark.png"))

        # a stand-alone MCP server (another process) shows as running and reachable, with Copy config
        mcp_url = mcp.stdout.readline().strip()
        page.click(".qlm-refresh")
        server = page.locator(f'.qlm-mcp-server[data-status="running"]:has-text("{mcp_url}")')
        server.wait_for(timeout=10_000)
        assert server.locator(".qlm-copy").count() == 1
        page.screenshot(path=str(shots / "jupyterlab-sidebar-mcp-running-dark.png"))
        mcp.stdin.close()
        mcp.wait(20)
        page.wait_for_function("url => [...document.querySelectorAll('.qlm-mcp-server')].some(n => "
                               "n.textContent.includes(url) && n.dataset.status === 'stopped')",
                               arg=mcp_url, timeout=10_000)

        # a heal session opens as a timeline with its diff
        sid = seed_heal_session(lab["qlm_home"])
        page.click(".qlm-refresh")
        page.locator(f'.qlm-heal[data-session-id="{sid}"]').click(timeout=10_000)
        timeline = page.locator(".qlm-timeline")
        timeline.wait_for(timeout=10_000)
        assert timeline.locator(".qlm-step").count() == 7
        assert "self.fast)" in timeline.locator(".qlm-diff-add").first.inner_text()
        page.screenshot(path=str(shots / "jupyterlab-heal-timeline-dark.png"))

        # the palette command writes a strategy from the template into the file browser's folder
        page.evaluate("() => { window.jupyterapp.commands.execute('qlm:new-strategy'); }")
        page.locator(".jp-Dialog input").fill("trend_follow")
        page.locator(".jp-Dialog .jp-mod-accept").click()
        page.locator('.lm-TabBar-tab:has-text("trend_follow.py")').wait_for(timeout=10_000)
        strategy = lab["root"] / "trend_follow.py"
        assert "class TrendFollow(Strategy):" in strategy.read_text()
    import qlm_kernel as qlm

    res = qlm.backtest(str(strategy), qlm.sample_data("synthetic", n=5000, seed=0), record=False)
    assert res.stats["n_trades"] > 0  # the template is a working strategy
    print(f"job appeared after {appeared:.1f} s; progress seen: {seen}; event delays (s): "
          f"median {median:.3f}, max {delays[-1]:.3f}")
