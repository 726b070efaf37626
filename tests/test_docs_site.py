"""The documentation site (mkdocs.yml, docs/): a strict build passes with no warning, has every page the
docs promise, renders the API reference from the docstrings, and the README's links into docs/ resolve.

The strict build fails on a broken link, a missing anchor, a page left out of the nav, an unresolved
mkdocstrings identifier or a docstring griffe cannot parse; the test also refuses any WARNING line, so a
warning that mkdocs does not count as fatal still fails here. It builds into tmp_path only.
"""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PAGES = {  # built page -> what it must talk about (issue 20 item 4's list)
    "index.html": "The two commands",
    "quickstart.html": "The command line",
    "concepts.html": "Stops and the tie rule",
    "data.html": "Validation errors",
    "optimization.html": "Deflated Sharpe",
    "mcp.html": "Claude Desktop",
    "healing.html": "Rollback",
    "trading.html": "Guard rails",
    "jupyter.html": "Voilà",
    "architecture.html": "Layers",
    "security.html": "What is isolated",
    "errors.html": "The JSON shape",
    "install.html": "",
    "deploy.html": "",
    "reference/index.html": "API reference",
}


def _text(page: Path) -> str:
    """A built page's visible text: tags dropped, entities decoded, whitespace collapsed."""
    raw = page.read_text(encoding="utf-8")
    raw = re.sub(r"<(script|style)\b.*?</\1>", " ", raw, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", raw))).strip()


def _first_line(func: object) -> str:
    """The first line of a docstring as rendered text (markdown code marks removed)."""
    line = (func.__doc__ or "").strip().splitlines()[0]
    return re.sub(r"\s+", " ", line.replace("``", "").replace("`", "")).strip()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("docs") / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
         "--site-dir", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{log}"
    return out, log


def test_strict_build_has_no_warning(site: tuple[Path, str]) -> None:
    _, log = site
    warnings = [line for line in log.splitlines() if "WARNING" in line or "ERROR" in line]
    assert not warnings, "\n".join(warnings)


@pytest.mark.parametrize("page", sorted(PAGES))
def test_every_page_is_built(site: tuple[Path, str], page: str) -> None:
    out, _ = site
    path = out / page
    assert path.is_file(), f"{page} missing from the built site"
    assert PAGES[page] in _text(path), f"{page} does not mention {PAGES[page]!r}"


def test_api_reference_renders_the_docstrings(site: tuple[Path, str]) -> None:
    from qlm_kernel.sanity.overall import report
    from qlm_kernel.session.backtesting import backtest
    from qlm_kernel.session.optimizing import optimize
    from qlm_kernel.strategy.signals import Signals

    out, _ = site
    expected = {
        "reference/session.html": [backtest, optimize],
        "reference/sanity.html": [report],
        "reference/strategy.html": [Signals],
    }
    for page, funcs in expected.items():
        squeezed = re.sub(r"\s", "", _text(out / page))  # inline code leaves spaces around its tags
        for func in funcs:
            assert re.sub(r"\s", "", _first_line(func)) in squeezed, f"{page}: {func.__name__}'s docstring"
    errors = _text(out / "reference/errors.html")
    for name in ("QLMError", "DataError", "StrategyError", "ConfigError", "to_dict", "from_dict"):
        assert name in errors


def test_concepts_states_the_statistics_formulas(site: tuple[Path, str]) -> None:
    text = _text(site[0] / "concepts.html")
    for formula in ("bars_per_year = (n - 1) / years",
                    "sharpe = mean(r) / std(r, ddof=1) x sqrt(bars_per_year)",
                    "calmar = cagr / |max_drawdown|", "expectancy = mean(pnl) over closed trades"):
        assert formula in text, formula


def _readme_links() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)\s]+)\)", readme)
    return [link for link in links if not re.match(r"[a-z]+:", link) and not link.startswith("#")]


def test_readme_links_into_docs_resolve() -> None:
    links = _readme_links()
    docs_links = [link for link in links if link.startswith("docs/")]
    assert docs_links, "the README links to no docs/ page"
    for link in links:
        target = ROOT / link.split("#", 1)[0]
        assert target.exists(), f"README links to {link}, which does not exist"


def test_readme_links_every_guide_page() -> None:
    linked = {link.split("#", 1)[0] for link in _readme_links()}
    for page in ("quickstart", "concepts", "data", "optimization", "mcp", "healing", "trading", "jupyter",
                 "architecture", "security", "errors", "install", "deploy"):
        assert f"docs/{page}.md" in linked, f"README does not link docs/{page}.md"
