"""Where QLM keeps its files: the one rule for the workspace folder (``QLM_HOME``, default ``./.qlm``).

Layout: ``<home>/qlm.db`` (the store), ``<home>/strategies/`` (strategy files written by users and
assistants), ``<home>/data/`` (imported, validated datasets), ``<home>/reports/``. Every process that
looks for the workspace (kernel, CLI, MCP server, Jupyter server extension) asks `home_path`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DEFAULT_DIRNAME = ".qlm"
DB_FILENAME = "qlm.db"
ENV_VAR = "QLM_HOME"

PathLike = str | os.PathLike[str]


def home_path(
    home: PathLike | None = None, *, configured: PathLike | None = None, base: PathLike | None = None
) -> Path:
    """The workspace root, resolved but not created.

    Precedence: the ``home`` argument, then ``$QLM_HOME``, then ``configured`` (a server's config
    option), then ``<base>/.qlm`` where ``base`` defaults to the current directory (a kernel started
    beside the notebooks; the Jupyter server passes its root folder).
    """
    raw = home if home is not None else os.environ.get(ENV_VAR) or configured
    if raw is None or str(raw) == "":
        raw = Path(base if base is not None else ".") / DEFAULT_DIRNAME
    return Path(raw).expanduser().resolve()


def qlm_home(home: PathLike | None = None) -> Path:
    """The workspace root (`home_path`), created if missing."""
    root = home_path(home)
    root.mkdir(parents=True, exist_ok=True)
    return root


def workspace_dir(name: str, home: PathLike | None = None) -> Path:
    """A sub-folder of the workspace (``strategies``, ``data``, ``reports``), created if missing."""
    path = qlm_home(home) / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def bundled_path(*parts: str) -> Path:
    """A file QLM ships beside its code (the example strategies, the quickstart notebook):
    ``<checkout>/<parts>`` in a source checkout (editable installs), else ``<prefix>/share/qlm/<parts>``
    where a wheel install put it (the wheel's shared data). The checkout's path when neither exists."""
    checkout = Path(__file__).resolve().parents[1]
    in_checkout = checkout.joinpath(*parts)
    if (checkout / "pyproject.toml").is_file():
        return in_checkout
    installed = Path(sys.prefix, "share", "qlm", *parts)
    return installed if installed.exists() else in_checkout
