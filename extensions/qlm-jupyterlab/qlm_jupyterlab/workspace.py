"""Which QLM workspace the Jupyter server reads, and the read-only store it opens there.

The workspace is ``$QLM_HOME``, else the server config ``c.QLMJupyterLab.qlm_home``, else
``<server root_dir>/.qlm`` (where kernels started at the root put it by default). Every read opens
``<home>/qlm.db`` with ``Store(path, readonly=True)`` and only when the file exists: looking never
creates, migrates or locks anything, and a missing database reads as an empty workspace. WAL lets
these readers run while kernels and other processes write.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from qlm_kernel.store import DB_FILENAME, Store


class Workspace:
    """The QLM workspace of one Jupyter server: paths plus a cached read-only `Store`."""

    def __init__(self, home: str | os.PathLike[str]) -> None:
        self.home = Path(home).expanduser().resolve()
        self.db_path = self.home / DB_FILENAME
        self._lock = threading.Lock()
        self._store: Store | None = None

    @classmethod
    def from_server(cls, root_dir: str | None, configured: str | None = None) -> Workspace:
        """The workspace for a server: QLM_HOME, then the configured path, then ``<root_dir>/.qlm``."""
        home = os.environ.get("QLM_HOME") or configured or str(Path(root_dir or ".") / ".qlm")
        return cls(home)

    def reader(self) -> Store | None:
        """The read-only store, opened on first use; None while the database does not exist."""
        with self._lock:
            if self._store is not None and not self._store.closed:
                return self._store
            if not self.db_path.is_file():
                return None
            self._store = Store(self.db_path, readonly=True)
            return self._store

    def writer(self) -> Store | None:
        """A short-lived read-write store (close it after use); None while there is no database."""
        if not self.db_path.is_file():
            return None
        return Store(self.db_path)

    def report_path(self, run_id: int) -> Path:
        """``<home>/reports/run-<id>.html``: the name is built from an integer, never from a request."""
        return self.home / "reports" / f"run-{int(run_id)}.html"

    def close(self) -> None:
        """Close the cached store (server shutdown, tests)."""
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None

    def info(self) -> dict[str, Any]:
        """Where the workspace is and whether it has a database yet."""
        return {"qlm_home": str(self.home), "db_path": str(self.db_path), "db_exists": self.db_path.is_file()}
