"""Dashboard: the home's own datasets are offered first and backtested like `qlm.backtest` does; stored
universes are offered after them and run as portfolios (`qlm.backtest_portfolio`), in Python and in
the real Voilà dashboard in a headless Chromium."""

from __future__ import annotations

from pathlib import Path

import pytest

import qlm_kernel as qlm
from qlm_kernel.formatting import stat_rows, stat_text
from qlm_kernel.session import data_manager
from qlm_kernel.widgets import Dashboard, PortfolioReport
from qlm_kernel.widgets.dashboard import default_datasets, workspace_datasets, workspace_universes
from tests.browser_helpers import CHROMIUM, artifacts_dir, chromium_page, real_page_errors
from tests.voila_helpers import REPO, free_port, isolated_env, serve

NO_CHROMIUM = "Debian chromium missing (scripts/ensure_chromium.sh)"


def test_workspace_datasets_come_first_and_run(home) -> None:
    assert all(not name.startswith("dataset ") for name in default_datasets())  # empty home
    frame = qlm.sample_data("synthetic", n=3000, seed=9)
    data_manager().register_frame(frame, "mine")
    names = list(default_datasets())
    assert names[0] == "dataset mine (3,000 bars)" and any(n.startswith("synthetic") for n in names)
    board = Dashboard()
    assert board.dataset.value == names[0] and board.runs == 1
    expected = qlm.backtest(board.strategy.value, frame, record=False, fees=board.fees.value / 10_000,
                            **board.params())
    assert board.report.result.stats["n_trades"] == expected.stats["n_trades"]
    assert board.report.result.stats["final_value"] == expected.stats["final_value"]


# --- universes: picked in the same dropdown, run as a portfolio ---------------------------------------
TRIO = ("AAA", "BBB", "CCC")


def _import_trio(n: int = 1_200) -> None:
    frames = {s: qlm.sample_data("synthetic", n=n, seed=90 + k) for k, s in enumerate(TRIO)}
    frames["CCC"] = frames["CCC"].iloc[200:]  # starts late: missing bars
    data_manager().import_universe(frames, "trio")


def test_a_universe_is_offered_after_the_datasets_and_runs_as_a_portfolio(home) -> None:
    _import_trio()
    data_manager().register_frame(qlm.sample_data("synthetic", n=2_000, seed=3), "single")
    assert list(workspace_universes()) == ["universe trio (3 symbols, 1,200 bars)"]
    assert list(workspace_datasets()) == ["dataset single (2,000 bars)"]  # universes are not datasets
    board = Dashboard()
    options = list(board.dataset.options)
    assert options[0] == "dataset single (2,000 bars)" and options[-1].startswith("universe trio")
    assert board.children[1] is board.report and board.size.layout.display == "none"
    single = board.report.result
    board.dataset.value = options[-1]
    assert board.is_portfolio() and board.children[1] is board.portfolio and board.runs == 2
    assert board.size.layout.display is None and "on 3 symbols" in board.status.value
    expected = qlm.backtest_portfolio(board.strategy.value, "trio", record=False, fill="close", fees=0.0,
                                      size=0.2, size_type="percent", **board.params())
    shown = board.portfolio.result
    assert shown.stats["final_value"] == expected.stats["final_value"]
    assert board.portfolio.summary.stats == stat_rows(expected.stats)
    board.sliders.children[0].value = 20
    board.size.value = 50
    board.fees.value = 10
    again = qlm.backtest_portfolio(board.strategy.value, "trio", record=False, fill="close", fees=0.001,
                                   size=0.5, size_type="percent", fast=20, slow=board.params()["slow"])
    assert board.runs == 5 and board.portfolio.result.stats["final_value"] == again.stats["final_value"]
    board.dataset.value = options[0]  # back to the single dataset: as before
    assert board.children[1] is board.report and board.size.layout.display == "none"
    assert board.report.result.stats["n_trades"] == qlm.backtest(
        board.strategy.value, data_manager().load("single"), record=False, fees=0.001, fast=20,
        slow=board.params()["slow"]).stats["n_trades"]
    assert single is not board.report.result


def test_a_universe_the_strategy_fails_on_shows_the_error_panel(home) -> None:
    frames = {s: qlm.sample_data("synthetic", n=600, seed=k) for k, s in enumerate(TRIO)}
    board = Dashboard(datasets={"small": lambda: frames["AAA"]},
                      universes={"my trio": frames, "bad": {"ZZZ": qlm.Signals()}},
                      strategies={"sma_cross": "sma_cross"})
    board.dataset.value = "my trio"
    assert isinstance(board.children[1], PortfolioReport)
    assert board.portfolio.summary.symbols == list(TRIO)
    board.dataset.value = "bad"  # not a universe qlm.backtest_portfolio can read
    assert board.portfolio.summary.error is not None and "failed" in board.status.value
    assert board.children[1] is board.portfolio


@pytest.mark.slow
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=NO_CHROMIUM)
def test_voila_dashboard_runs_a_picked_universe(tmp_path: Path, monkeypatch) -> None:
    """The real dashboard (scripts/dashboard.sh) over an isolated QLM_HOME holding a universe: pick it,
    and the final value shown is an in-process ``qlm.backtest_portfolio``'s on the same universe."""
    from qlm_kernel.session import stop_event_recorder
    from qlm_kernel.store import close_default_store

    env = isolated_env(tmp_path)
    monkeypatch.setenv("QLM_HOME", env["QLM_HOME"])
    close_default_store()
    try:
        _import_trio()
        expected = qlm.backtest_portfolio("sma_cross", "trio", record=False, fill="close", fees=0.0,
                                          size=0.2, size_type="percent", fast=10, slow=50)
    finally:
        stop_event_recorder()
        close_default_store()
    label = "universe trio (3 symbols, 1,200 bars)"
    port = free_port()
    env["QLM_DASHBOARD_PORT"] = str(port)
    errors: list[str] = []
    with (
        serve(["bash", str(REPO / "scripts" / "dashboard.sh")], env, port, tmp_path / "voila.log") as url,
        chromium_page(viewport=(1400, 2400)) as page,
    ):
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(url, timeout=90_000)
        page.wait_for_selector(".qlmw-report-stats td[data-stat='Sharpe']", timeout=90_000)
        assert page.inner_text(".qlmw-dashboard-status").startswith("run 1")
        select = page.locator(".qlmw-dashboard-controls select").first
        options = [o.replace("\xa0", " ") for o in select.locator("option").all_inner_texts()]
        assert options[-1] == label  # ipywidgets writes the spaces as no-break spaces
        select.select_option(index=options.index(label))
        page.wait_for_function(
            "() => document.querySelector('.qlmw-dashboard-status').innerText.startsWith('run 2')",
            timeout=60_000,
        )
        assert "on 3 symbols" in page.inner_text(".qlmw-dashboard-status")
        page.wait_for_selector(".qlmw-portfolio-stats td[data-stat='Final value']", timeout=30_000)
        shown = page.inner_text(".qlmw-portfolio-stats td[data-stat='Final value']")
        assert shown == stat_text("final_value", expected.stats["final_value"])
        rows = page.eval_on_selector_all(
            ".qlmw-portfolio-symbols tbody tr", "trs => trs.map(t => t.dataset.symbol)"
        )
        assert rows == list(TRIO)
        title = page.inner_text(".qlmw-portfolio .qlmw-title")
        assert title == "Portfolio SmaCross(fast=10, slow=50) on trio (3 symbols)"
        assert page.locator(".qlmw-dashboard-size").is_visible()
        page.wait_for_function(
            "() => [...document.querySelectorAll('.js-plotly-plot')].some(p => p.data &&"
            " p.data.some(t => t.type === 'heatmap'))",
            timeout=30_000,
        )
        page.screenshot(path=str(artifacts_dir() / "dashboard-universe.png"), full_page=True)
    assert real_page_errors(errors) == []
