"""QLM's persistence: one SQLite file (WAL) under QLM_HOME, owned by `Store`; nothing else opens it.

>>> from qlm_kernel.store import Store, default_store
>>> store = default_store()                      # <QLM_HOME>/qlm.db, migrated on open
>>> run_id = store.record_run(strategy="sma.py", params={"fast": 10}, stats={"sharpe": 1.2})

Records: datasets, strategies/strategy_versions, runs, jobs/trials, events, config (see `Store`).
Errors: every database failure is a `QLMSystemError` with code DB_BUSY, DB_READONLY, DB_FULL,
DB_CORRUPT, DB_CANTOPEN, DB_IO, DB_CONSTRAINT, DB_CLOSED, DB_TOO_NEW, DB_FOREIGN or DB_ERROR; bad
arguments are `ConfigError`s (``NOT_FOUND`` for unknown ids).
"""

from __future__ import annotations

from qlm_kernel.store.base import DB_FILENAME, default_path
from qlm_kernel.store.codec import canonical_key as trial_key
from qlm_kernel.store.core import Store
from qlm_kernel.store.default import close_default_store, default_store
from qlm_kernel.store.jobs import FINAL_STATUSES, JOB_STATUSES
from qlm_kernel.store.migrations import LATEST_VERSION, MIGRATIONS, Migration
from qlm_kernel.store.strategies import AUTHORS, code_sha256

SCHEMA_VERSION = LATEST_VERSION

__all__ = [
    "AUTHORS",
    "DB_FILENAME",
    "FINAL_STATUSES",
    "JOB_STATUSES",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Migration",
    "Store",
    "close_default_store",
    "code_sha256",
    "default_path",
    "default_store",
    "trial_key",
]
