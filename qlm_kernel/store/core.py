"""`Store`: the one object that opens QLM's SQLite database, combining the record repositories."""

from __future__ import annotations

import logging

from qlm_kernel.errors import QLMError
from qlm_kernel.store import migrations as mig
from qlm_kernel.store.config import ConfigMixin
from qlm_kernel.store.datasets import DatasetsMixin
from qlm_kernel.store.eventlog import EventsMixin
from qlm_kernel.store.heal import HealMixin
from qlm_kernel.store.jobs import JobsMixin
from qlm_kernel.store.ledger import LedgerMixin
from qlm_kernel.store.paper import PaperMixin
from qlm_kernel.store.retention import RetentionMixin
from qlm_kernel.store.runs import RunsMixin
from qlm_kernel.store.strategies import StrategiesMixin

_log = logging.getLogger("qlm_kernel.store")


class Store(DatasetsMixin, StrategiesMixin, RunsMixin, JobsMixin, EventsMixin, ConfigMixin, HealMixin,
            PaperMixin, RetentionMixin, LedgerMixin):
    """QLM's database: ``Store(path=None)`` opens ``<QLM_HOME>/qlm.db`` (created and migrated if needed).

    Options: ``readonly=True`` opens with SQLite's read-only mode plus ``PRAGMA query_only`` (writes
    raise DB_READONLY); ``busy_timeout`` (seconds, default 10) and ``retries`` (default 3) bound how
    long a write waits for the lock before DB_BUSY; ``pragmas`` adds per-connection pragmas (e.g.
    ``{"max_page_count": N}``); ``migrations`` replaces the schema steps (tests, extensions);
    ``housekeeping=False`` skips the reaping and pruning below (an explicit `prune` wants its own counts).

    Opening a writable store also does its housekeeping, cheaply: jobs whose owner died or stopped
    beating are marked ``abandoned`` (one indexed read; see `qlm_kernel.store.jobs`), and the retention
    settings are applied at most once a day (see `qlm_kernel.store.retention`). A failure there (a
    busy database, a bad retention variable) is logged and never stops the store from opening.

    Thread-safe: each thread uses its own connection. Fork-safe: a forked child opens fresh
    connections. Every method returns plain dicts/lists and raises only `QLMError`s.
    """

    def _after_open(self) -> None:
        """Reap orphaned jobs (recorded in the event log) and prune when due; only on QLM's own schema."""
        if not all(step in self.migrations for step in mig.MIGRATIONS):
            return  # a test or tool opened it with other migrations: the tables may differ
        for name, task in (("reap abandoned jobs", lambda: self.reap_jobs(log_events=True)),
                           ("apply retention", self.prune_if_due)):
            try:
                task()
            except QLMError as err:
                _log.warning("store %s: could not %s at open: %s", self.path, name, err)

    def __enter__(self) -> Store:
        return self
