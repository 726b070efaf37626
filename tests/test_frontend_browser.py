"""The front end in a real headless Chromium (Debian's) driven by Playwright, served by Voilà.

- the dashboard (scripts/dashboard.sh) renders; moving a slider changes the stats and the chart;
- a notebook page: OptimizationProgress reaches 100 %, HealingTrace shows the diff, a job started by
  an MCP assistant after the page is open fills a widget live (updates from background threads), and
  the Cancel button stops a running job.

Voilà's harmless console noise (version warnings, an offline font CDN miss, plotly's setData error)
is ignored; screenshots go to artifacts_dir().
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from tests.browser_helpers import CHROMIUM, artifacts_dir, chromium_page
from tests.frontend_pages import write_widgets_page
from tests.voila_helpers import REPO, free_port, isolated_env, serve

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason="Debian chromium missing (scripts/ensure_chromium.sh)"
    ),
]

RENDER_TIMEOUT_MS = 90_000


def _stats(page) -> str:
    return page.inner_text(".qlmw-report-stats")


def _chart_signature(page) -> str:
    return page.evaluate(
        "() => { const d = document.querySelector('.js-plotly-plot').data;"
        " const eq = d.find(t => t.name === 'equity');"
        " return d.length + ':' + eq.y.length + ':' + Array.from(eq.y).slice(-5).join(','); }"
    )


def test_dashboard_slider_changes_chart_and_stats(tmp_path: Path) -> None:
    env = isolated_env(tmp_path)
    port = free_port()
    env["QLM_DASHBOARD_PORT"] = str(port)
    with (
        serve(["bash", str(REPO / "scripts" / "dashboard.sh")], env, port, tmp_path / "voila.log") as url,
        chromium_page() as page,
    ):
        page.goto(url, timeout=RENDER_TIMEOUT_MS)
        page.wait_for_selector(".qlmw-report-stats td[data-stat='Sharpe']", timeout=RENDER_TIMEOUT_MS)
        page.wait_for_selector(".js-plotly-plot", timeout=RENDER_TIMEOUT_MS)
        page.wait_for_function("() => document.querySelector('.js-plotly-plot').data", timeout=30_000)
        assert "Sharpe" in _stats(page) and "Buy & hold return" in _stats(page)
        before_stats, before_chart = _stats(page), _chart_signature(page)
        assert page.inner_text(".qlmw-dashboard-status").startswith("run 1")
        page.screenshot(path=str(artifacts_dir() / "dashboard-before.png"))

        fast = page.locator(".widget-slider", has_text="fast")
        handle = fast.locator(".noUi-handle")
        handle.focus()
        for _ in range(10):
            handle.press("ArrowRight")
        page.wait_for_function(
            "() => !document.querySelector('.qlmw-dashboard-status').innerText.startsWith('run 1')",
            timeout=30_000,
        )
        page.wait_for_function(
            "(before) => document.querySelector('.qlmw-report-stats').innerText !== before",
            arg=before_stats,
            timeout=30_000,
        )
        page.wait_for_timeout(500)  # the chart's trace update follows the stats message
        after_stats, after_chart = _stats(page), _chart_signature(page)
        assert after_stats != before_stats
        assert after_chart != before_chart
        assert fast.locator(".widget-readout").inner_text().strip() != "10"
        page.screenshot(path=str(artifacts_dir() / "dashboard-after-slider.png"))


def test_widgets_page_progress_heal_mcp_and_cancel(tmp_path: Path) -> None:
    env = isolated_env(tmp_path)
    pages = tmp_path / "pages"
    pages.mkdir()
    write_widgets_page(pages)
    port = free_port()
    voila = shutil.which("voila", path=str(Path(sys.executable).parent)) or "voila"
    cmd = [
        voila,
        str(pages),
        "--no-browser",
        f"--port={port}",
        "--Voila.ip=127.0.0.1",
        "--show_tracebacks=True",
    ]
    with serve(cmd, env, port, tmp_path / "voila.log") as url, chromium_page(viewport=(1400, 1800)) as page:
        page.goto(url + "voila/render/widgets_page.ipynb", timeout=RENDER_TIMEOUT_MS)
        # a job run in a cell: the bar reaches 100 %
        page.wait_for_selector(
            ".qlmw-test-foreground .qlmw-progress[data-status='done']", timeout=RENDER_TIMEOUT_MS
        )
        assert page.inner_text(".qlmw-test-foreground .qlmw-progress-percent") == "100%"
        assert "trials 20 / 20" in page.inner_text(".qlmw-test-foreground .qlmw-progress-counts")
        assert page.locator(".qlmw-test-foreground .qlmw-chart-line").count() == 1
        # the heal session: the diff, the error excerpt and the outcome
        page.wait_for_selector(".qlmw-test-heal .qlmw-heal[data-status='healed']", timeout=30_000)
        diff = page.inner_text(".qlmw-test-heal .qlmw-diff")
        assert "-        f, s = ta.sma(close, self.fast), ta.sma(clsoe, self.slow)" in diff
        assert "+        f, s = ta.sma(close, self.fast), ta.sma(close, self.slow)" in diff
        assert page.locator(".qlmw-test-heal .qlmw-diff-add").count() == 1
        assert "clsoe" in page.inner_text(".qlmw-test-heal .qlmw-heal-excerpt")
        assert "typo" in page.inner_text(".qlmw-test-heal .qlmw-heal-thinking")
        page.locator(".qlmw-test-heal").screenshot(path=str(artifacts_dir() / "healing-trace.png"))
        page.locator(".qlmw-test-foreground").screenshot(
            path=str(artifacts_dir() / "optimization-progress.png")
        )

        # an MCP assistant starts a job after the page is open: the waiting widget follows it live
        assert page.inner_text(".qlmw-test-mcp .qlmw-badge") == "waiting"
        page.click(".qlmw-test-start-mcp")
        page.wait_for_selector(".qlmw-test-mcp .qlmw-progress[data-status='running']", timeout=30_000)
        page.wait_for_selector(".qlmw-test-mcp .qlmw-progress[data-status='done']", timeout=60_000)
        assert page.inner_text(".qlmw-test-mcp .qlmw-progress-percent") == "100%"
        page.wait_for_selector(
            ".qlmw-test-log .qlmw-eventlog-row[data-topic='mcp.tool.finished']", timeout=10_000
        )
        assert (
            page.locator(".qlmw-test-log .qlmw-eventlog-row[data-topic='job.progress']").count() == 0
        )  # filtered
        page.screenshot(path=str(artifacts_dir() / "mcp-job-live.png"), full_page=True)

        # Cancel really stops a running job
        page.click(".qlmw-test-start-long")
        page.wait_for_selector(".qlmw-test-long .qlmw-progress[data-status='running']", timeout=30_000)
        page.wait_for_function(
            "() => document.querySelector('.qlmw-test-long .qlmw-progress-counts')"
            ".innerText.match(/trials [1-9]/)",
            timeout=30_000,
        )
        page.click(".qlmw-test-long .qlmw-cancel")
        page.wait_for_selector(".qlmw-test-long .qlmw-progress[data-status='cancelled']", timeout=30_000)
        counts = page.inner_text(".qlmw-test-long .qlmw-progress-counts")
        done, total = (int(x) for x in counts.split("·")[0].replace("trials", "").split("/"))
        assert 0 < done < total
        page.locator(".qlmw-test-long").screenshot(path=str(artifacts_dir() / "optimization-cancelled.png"))
