"""Which QLM workspace the Jupyter server shows.

The workspace is found by QLM's one rule (`qlm_kernel.home.home_path`): ``$QLM_HOME``, else the server
config ``c.QLMJupyterLab.qlm_home``, else ``<server root_dir>/.qlm`` (where kernels started at the
root put it by default). Every read goes through `qlm_kernel.session` with ``home=`` this folder,
which opens ``<home>/qlm.db`` read-only and only when it exists: looking never creates, migrates or
locks anything, and a missing database reads as an empty workspace.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from qlm_kernel.home import DB_FILENAME, home_path


class Workspace:
    """The QLM workspace of one Jupyter server: its folder and the files the sidebar links to."""

    def __init__(self, home: str | os.PathLike[str]) -> None:
        self.home = Path(home).expanduser().resolve()
        self.db_path = self.home / DB_FILENAME

    @classmethod
    def from_server(cls, root_dir: str | None, configured: str | None = None) -> Workspace:
        """The workspace for a server: QLM_HOME, then the configured path, then ``<root_dir>/.qlm``."""
        return cls(home_path(configured=configured, base=root_dir or "."))

    def report_path(self, run_id: int) -> Path:
        """``<home>/reports/run-<id>.html``: the name is built from an integer, never from a request."""
        return self.home / "reports" / f"run-{int(run_id)}.html"

    def info(self) -> dict[str, Any]:
        """Where the workspace is and whether it has a database yet."""
        return {"qlm_home": str(self.home), "db_path": str(self.db_path), "db_exists": self.db_path.is_file()}
