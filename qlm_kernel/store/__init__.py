"""QLM's persistence: one SQLite file (WAL) under QLM_HOME, owned by `Store`; nothing else opens it.

>>> from qlm_kernel.store import Store, default_store
>>> store = default_store()                      # <QLM_HOME>/qlm.db, migrated on open
>>> run_id = store.record_run(strategy="sma.py", params={"fast": 10}, stats={"sharpe": 1.2})

Records: datasets, strategies/strategy_versions, runs, jobs/trials, events, config (see `Store`).
Jobs are owned (pid, host) and kept alive by `qlm_kernel.store.heartbeat`; orphans become ``abandoned``.
Retention of events, trials and heal steps: `qlm_kernel.store.retention`.
Errors: every database failure is a `QLMSystemError` with code DB_BUSY, DB_READONLY, DB_FULL,
DB_CORRUPT, DB_CANTOPEN, DB_IO, DB_CONSTRAINT, DB_CLOSED, DB_TOO_NEW, DB_FOREIGN or DB_ERROR; bad
arguments are `ConfigError`s (``NOT_FOUND`` for unknown ids).
"""

from __future__ import annotations

from qlm_kernel.store.base import DB_FILENAME, default_path
from qlm_kernel.store.codec import canonical_key as trial_key
from qlm_kernel.store.core import Store
from qlm_kernel.store.default import close_default_store, default_store
from qlm_kernel.store.jobs import (
    ACTIVE_STATUSES,
    FINAL_STATUSES,
    JOB_STATUSES,
    RESUMABLE_STATUSES,
    STALE_AFTER_S,
    orphan_reason,
    owner_alive,
    reaped_payload,
    stale_after_seconds,
)
from qlm_kernel.store.migrations import LATEST_VERSION, MIGRATIONS, Migration
from qlm_kernel.store.strategies import AUTHORS, code_sha256

SCHEMA_VERSION = LATEST_VERSION

__all__ = [
    "ACTIVE_STATUSES",
    "AUTHORS",
    "DB_FILENAME",
    "FINAL_STATUSES",
    "JOB_STATUSES",
    "MIGRATIONS",
    "RESUMABLE_STATUSES",
    "SCHEMA_VERSION",
    "STALE_AFTER_S",
    "Migration",
    "Store",
    "close_default_store",
    "code_sha256",
    "default_path",
    "default_store",
    "orphan_reason",
    "owner_alive",
    "reaped_payload",
    "stale_after_seconds",
    "trial_key",
]
