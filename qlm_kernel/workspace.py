"""Where QLM keeps its files: the workspace named by ``QLM_HOME`` (default ``./.qlm``).

Layout: ``<home>/qlm.db`` (the store), ``<home>/strategies/`` (strategy files written by users and
assistants), ``<home>/data/`` (imported, validated datasets), ``<home>/reports/``.
"""

from __future__ import annotations

import os
from pathlib import Path


def qlm_home(home: str | os.PathLike[str] | None = None) -> Path:
    """The workspace root: the argument, else ``$QLM_HOME``, else ``./.qlm``; created if missing."""
    root = Path(home if home is not None else os.environ.get("QLM_HOME", ".qlm")).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root.resolve()


def workspace_dir(name: str, home: str | os.PathLike[str] | None = None) -> Path:
    """A sub-folder of the workspace (``strategies``, ``data``, ``reports``), created if missing."""
    path = qlm_home(home) / name
    path.mkdir(parents=True, exist_ok=True)
    return path
