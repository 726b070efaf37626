"""`Store`: the one object that opens QLM's SQLite database, combining the record repositories."""

from __future__ import annotations

from qlm_kernel.store.config import ConfigMixin
from qlm_kernel.store.datasets import DatasetsMixin
from qlm_kernel.store.eventlog import EventsMixin
from qlm_kernel.store.heal import HealMixin
from qlm_kernel.store.jobs import JobsMixin
from qlm_kernel.store.paper import PaperMixin
from qlm_kernel.store.runs import RunsMixin
from qlm_kernel.store.strategies import StrategiesMixin


class Store(DatasetsMixin, StrategiesMixin, RunsMixin, JobsMixin, EventsMixin, ConfigMixin, HealMixin,
            PaperMixin):
    """QLM's database: ``Store(path=None)`` opens ``<QLM_HOME>/qlm.db`` (created and migrated if needed).

    Options: ``readonly=True`` opens with SQLite's read-only mode plus ``PRAGMA query_only`` (writes
    raise DB_READONLY); ``busy_timeout`` (seconds, default 10) and ``retries`` (default 3) bound how
    long a write waits for the lock before DB_BUSY; ``pragmas`` adds per-connection pragmas (e.g.
    ``{"max_page_count": N}``); ``migrations`` replaces the schema steps (tests, extensions).

    Thread-safe: each thread uses its own connection. Fork-safe: a forked child opens fresh
    connections. Every method returns plain dicts/lists and raises only `QLMError`s.
    """

    def __enter__(self) -> Store:
        return self
