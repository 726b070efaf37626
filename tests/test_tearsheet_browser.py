"""The tearsheet in a real headless Chromium (Debian's, driven by Playwright): a saved report opens
offline with no console errors, every panel draws its plotly chart with traces, the warnings banner and
grouped stats show, the trades table pages through every trade; a screenshot goes to artifacts_dir()."""

from __future__ import annotations

from pathlib import Path

import pytest

import qlm_kernel as qlm
from qlm_kernel.engine.report.panels import PANELS
from tests.browser_helpers import CHROMIUM, artifacts_dir, chromium_page

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason="Debian chromium missing (scripts/ensure_chromium.sh)"
    ),
]


def _open(page, path: Path) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(path.as_uri())
    page.wait_for_function("() => document.body.dataset.rendered", timeout=60_000)
    return errors


def test_saved_tearsheet_renders_every_panel(tmp_path: Path) -> None:
    df = qlm.sample_data("synthetic", n=30_000, seed=0)
    res = qlm.backtest("sma_cross", df, fast=10, slow=50, fees=0.001)
    path = Path(res.save_report(str(tmp_path / "tearsheet.html")))
    with chromium_page((1400, 1000)) as page:
        errors = _open(page, path)
        assert page.evaluate("() => document.body.dataset.rendered") == "1", errors
        assert errors == []
        assert page.inner_text("#qlm-title") == "SmaCross(fast=10, slow=50)"
        for name in PANELS:
            chart = page.locator(f"#panel-{name} .js-plotly-plot")
            assert chart.count() == 1, name
            traces = page.evaluate(f"() => document.getElementById('chart-{name}').data.length")
            assert traces >= 1 and page.locator(f"#chart-{name} .main-svg").count() >= 1, name
        assert page.locator("#qlm-stats table[data-group='Risk'] tr[data-stat='sharpe']").count() == 1
        assert page.locator("#qlm-settings tr.changed[data-setting='fees']").count() == 1
        # the log-scale button switches the equity axis
        page.locator("#chart-equity .updatemenu-button").nth(1).click()
        page.wait_for_function("() => document.getElementById('chart-equity').layout.yaxis.type === 'log'")
        # every trade is reachable: the last page ends with the last trade
        n = len(res.trades)
        rows = page.locator("#qlm-trades tbody tr")
        assert rows.count() == min(50, n)
        page.locator("#panel-trades button.last").click()
        assert page.locator("#qlm-trades tbody tr").last.get_attribute("data-trade") == str(n)
        last = res.trades.iloc[-1]
        cells = page.locator("#qlm-trades tbody tr").last.locator("td").all_inner_texts()
        assert cells[1] == last["direction"] and cells[8] == f"{last['pnl']:,.2f}"
        page.locator("#panel-trades input.goto").fill("7")
        page.locator("#panel-trades input.goto").dispatch_event("change")
        assert page.locator("#qlm-trades tbody tr.marked").get_attribute("data-trade") == "7"
        page.screenshot(path=str(artifacts_dir() / "tearsheet.png"), full_page=True)


def test_few_trades_banner_shows_in_the_browser(tmp_path: Path) -> None:
    df = qlm.sample_data("synthetic", n=3_000, seed=0)
    res = qlm.backtest("sma_cross", df, fast=50, slow=200)
    path = Path(res.save_report(str(tmp_path / "few.html")))
    with chromium_page() as page:
        errors = _open(page, path)
        assert errors == [] and page.evaluate("() => document.body.dataset.rendered") == "1"
        banner = page.inner_text("#qlm-warnings")
        assert "FEW_TRADES" in banner and "fewer than 30" in banner and "Why it matters" in banner
        page.screenshot(path=str(artifacts_dir() / "tearsheet-few-trades.png"))
