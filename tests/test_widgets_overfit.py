"""OverfitReportView: the verdict and each check's result and verdict are the report's; one chart per
check is the report's figure; a failed report shows the error panel. In a real headless Chromium (Voilà
page): the verdict and the checks' rows shown equal the in-process report's and every chart draws,
without a JS error."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import nbformat
import pytest

import qlm_kernel as qlm
from qlm_kernel.errors import ConfigError
from qlm_kernel.widgets import OverfitReportView, show
from qlm_kernel.widgets.live import STATIC
from tests.browser_helpers import CHROMIUM, artifacts_dir, chromium_page, real_page_errors
from tests.voila_helpers import free_port, isolated_env, serve

RENDER_TIMEOUT_MS = 180_000

REPORT = """
import numpy as np
import pandas as pd
import qlm_kernel as qlm

rng = np.random.default_rng(3)
moves = rng.normal(0.0, 0.01, 800)
position = np.cumsum(rng.random((800, 60)) < 0.1, axis=0) % 2
matrix = pd.DataFrame(np.vstack([np.zeros((1, 60)), position[:-1]]) * moves[:, None])
rep = qlm.sanity.report(matrix, reps=200, seed=0)
"""


@pytest.fixture(scope="module")
def rep():
    scope: dict = {}
    exec(REPORT, scope)  # the same code the browser page runs
    return scope["rep"]


def test_summary_and_charts_are_the_reports(rep) -> None:
    view = OverfitReportView(rep)
    s = view.summary
    assert s.verdict == rep.verdict and s.passed is rep.passed is False
    assert s.checks == [{"name": c.name, "passed": c.passed, "verdict": c.verdict} for c in rep.checks]
    figures = rep.figures()
    assert list(view.charts) == list(figures) == ["pbo", "deflated_sharpe", "reality_check"]
    for name, chart in view.charts.items():
        assert [tr.type for tr in chart.data] == [tr.type for tr in figures[name].data]
    assert view.widget.children == (s, *view.charts.values())
    assert isinstance(show(rep), OverfitReportView)
    assert qlm.widgets.OverfitReportView is OverfitReportView


def test_errors_show_the_panel(rep) -> None:
    failed = OverfitReportView.run("not-a-job-id")
    assert failed.summary.error["code"] == "NOT_FOUND" and failed.summary.title.endswith("failed")
    assert failed.widget.children == (failed.summary,)
    with pytest.raises(ConfigError):
        OverfitReportView(42)
    assert "export default { render }" in (STATIC / "overfit.js").read_text()


def _page(folder: Path) -> Path:
    display = """
from IPython.display import display
from qlm_kernel.widgets import OverfitReportView

view = OverfitReportView(rep)
view.widget.add_class("qlmw-test-overfit")
display(view.widget)
"""
    book = nbformat.v4.new_notebook()
    book.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}}
    book.cells = [nbformat.v4.new_code_cell(src.strip()) for src in (REPORT, display)]
    path = folder / "overfit_page.ipynb"
    nbformat.write(book, path)
    return path


@pytest.mark.slow
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium missing")
def test_the_browser_shows_the_verdict_the_checks_and_every_chart(tmp_path: Path, rep) -> None:
    env = isolated_env(tmp_path)
    pages = tmp_path / "pages"
    pages.mkdir()
    _page(pages)
    port = free_port()
    voila = shutil.which("voila", path=str(Path(sys.executable).parent)) or "voila"
    cmd = [voila, str(pages), "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1",
           "--show_tracebacks=True"]
    errors: list[str] = []
    with serve(cmd, env, port, tmp_path / "voila.log") as url, chromium_page(viewport=(1400, 2400)) as page:
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(url + "voila/render/overfit_page.ipynb", timeout=RENDER_TIMEOUT_MS)
        root = ".qlmw-test-overfit"
        try:
            page.wait_for_selector(f"{root} .qlmw-overfit[data-status='done']", timeout=RENDER_TIMEOUT_MS)
        except Exception as exc:
            log = (tmp_path / "voila.log").read_text(errors="replace")[-3000:]
            raise AssertionError(f"the report widget did not render; voila log:\n{log}") from exc
        assert page.inner_text(f"{root} .qlmw-overfit-verdict") == rep.verdict
        assert page.get_attribute(f"{root} .qlmw-overfit-verdict", "data-passed") == "false"
        rows = page.eval_on_selector_all(
            f"{root} .qlmw-overfit-checks tr",
            "trs => trs.map(tr => [tr.dataset.check, tr.dataset.passed,"
            " tr.querySelector('.qlmw-overfit-why').innerText])",
        )
        assert rows == [[c.name, "true" if c.passed else "false", c.verdict] for c in rep.checks]
        page.wait_for_function(
            "(sel) => { const plots = [...document.querySelectorAll(sel + ' .js-plotly-plot')];"
            " return plots.length === 3 && plots.every(p => p.data && p.data.length); }",
            arg=root, timeout=60_000,
        )
        page.locator(root).screenshot(path=str(artifacts_dir() / "overfit-report.png"))
    assert real_page_errors(errors) == []
