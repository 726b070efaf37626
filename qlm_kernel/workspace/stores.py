"""How the session reaches the workspace database without side effects.

A read opens ``<home>/qlm.db`` read-only and only when the file exists: looking (list jobs, show a
run, cancel an unknown id) never creates, migrates or locks anything, and a missing database reads as
an empty workspace. A write to an existing database goes through the process's shared store.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from qlm_kernel.errors import QLMSystemError
from qlm_kernel.home import PathLike, home_path
from qlm_kernel.store import DB_FILENAME, Store, default_store


def db_path(home: PathLike | None = None) -> Path:
    """``<home>/qlm.db`` of the given (or current) workspace, without creating anything."""
    return home_path(home) / DB_FILENAME


@contextlib.contextmanager
def reading(home: PathLike | None = None) -> Iterator[Store | None]:
    """A read-only `Store` for the duration of the block; None when the workspace has no database (or
    its writer created the file but has not created the schema yet). A database at an older schema is
    refused (``DB_READONLY``): a read never migrates."""
    path = db_path(home)
    store = None
    if path.is_file():
        try:
            store = Store(path, readonly=True)
        except QLMSystemError as err:  # created (schema 0) but not yet migrated by its writer: empty
            being_created = err.code == "DB_READONLY" and err.context.get("schema_version") == 0
            if not being_created or err.context.get("operation") != "migrate":
                raise
    if store is None:
        yield None
        return
    with store:
        yield store


@contextlib.contextmanager
def writing(home: PathLike | None = None) -> Iterator[Store | None]:
    """A writable store of an existing database (the shared one for the current workspace); None when
    there is no database, so a write that needs existing records never creates an empty file."""
    path = db_path(home)
    if not path.is_file():
        yield None
        return
    if home is None or path == db_path():
        yield default_store()
        return
    with Store(path) as store:
        yield store
