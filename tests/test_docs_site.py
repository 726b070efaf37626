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

ROOT = Path(__file__).resolve().parents[1]

PAGES = {  # built page -> what it must talk about (issue 20 item 4's list, plus the other helpers' two pages)
    "index.html": ("The two commands", "bash scripts/demo.sh", "bash scripts/test.sh"),
    "quickstart.html": ("qlm.backtest", "The command line"),
    "concepts.html": ("Fill models", "Stops and the tie rule", "Sizing", "Statistics"),
    "data.html": ("Accepted formats", "Validation errors", "Downloading market data"),
    "optimization.html": ("PBO", "Deflated Sharpe", "How to read it", "The overfitting report"),
    "mcp.html": ("Claude Desktop", "Claude Code", "VS Code", "stdio", "Authorization", "Bearer"),
    "healing.html": ("The loop", "Rollback"),
    "trading.html": ("paper broker", "Guard rails"),
    "jupyter.html": ("JupyterLab extension", "Voilà"),
    "architecture.html": ("Layers", "import-linter"),
    "security.html": ("What is isolated", "What is not isolated"),
    "errors.html": ("The JSON shape", "Codes"),
    "install.html": (),
    "deploy.html": (),
    "reference/index.html": ("API reference",),
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


def _build(out: Path) -> str:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
         "--site-dir", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{log}"
    return log


def test_strict_build(tmp_path: Path) -> None:
    """One build (a test of its own, so pytest-xdist never builds the site twice), then every check on it."""
    from qlm_kernel.sanity.overall import report
    from qlm_kernel.session.backtesting import backtest
    from qlm_kernel.session.optimizing import optimize
    from qlm_kernel.strategy.signals import Signals

    out = tmp_path / "site"
    log = _build(out)
    problems = [line for line in log.splitlines() if "WARNING" in line or "ERROR" in line]

    for page, topics in PAGES.items():
        if not (out / page).is_file():
            problems.append(f"{page} missing from the built site")
            continue
        text = _text(out / page)
        problems += [f"{page} does not mention {topic!r}" for topic in topics if topic not in text]

    rendered = {  # the API reference shows the docstrings (first lines compared without whitespace:
        "reference/session.html": [backtest, optimize],  # inline code leaves spaces around its tags)
        "reference/sanity.html": [report],
        "reference/strategy.html": [Signals],
    }
    for page, funcs in rendered.items():
        squeezed = re.sub(r"\s", "", _text(out / page))
        problems += [f"{page}: {func.__name__}'s docstring is not rendered" for func in funcs
                     if re.sub(r"\s", "", _first_line(func)) not in squeezed]
    errors = _text(out / "reference/errors.html")
    names = ("QLMError", "DataError", "StrategyError", "ConfigError", "to_dict", "from_dict")
    problems += [f"reference/errors.html lacks {name}" for name in names if name not in errors]

    concepts = _text(out / "concepts.html")
    problems += [f"concepts.html lacks the formula {formula!r}" for formula in (
        "bars_per_year = (n - 1) / years",
        "sharpe = mean(r) / std(r, ddof=1) x sqrt(bars_per_year)",
        "calmar = cagr / |max_drawdown|",
        "expectancy = mean(pnl) over closed trades",
    ) if formula not in concepts]
    assert not problems, "\n".join(problems)


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
