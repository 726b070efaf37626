"""Retention as every front end applies it: `prune_store` deletes what the workspace no longer keeps.

The rules and defaults live with the store (`qlm_kernel.store.retention`): events 30 days and at most
1,000,000 rows; trials and heal steps kept unless configured (``QLM_RETAIN_*`` environment variables or
the store config's ``retention.*`` keys). A writable store applies them by itself at most once a day
when it opens; this runs them now (``qlm store prune``).
"""

from __future__ import annotations

from typing import Any

from qlm_kernel.home import PathLike
from qlm_kernel.store import Store
from qlm_kernel.store.retention import resolve_settings
from qlm_kernel.workspace import stores


def prune_store(*, dry_run: bool = False, home: PathLike | None = None, **overrides: Any) -> dict[str, Any]:
    """Apply the retention settings to the workspace database now; ``dry_run`` only counts.

    ``overrides`` (``events_days``, ``events_max_rows``, ``trials_days``, ``heal_steps_days``; None or
    "forever" keeps all) replace the configured values for this call. Reply: ``{"events": n, "trials": n,
    "heal_steps": n, "settings": {...}, "dry_run": bool, "database": bool}``. Without a database nothing
    is created and nothing pruned.
    """
    path = stores.db_path(home)
    if dry_run:
        with stores.reading(home) as store:
            if store is not None:
                return {**store.prune(dry_run=True, **overrides), "database": True}
    elif path.is_file():
        with Store(path, housekeeping=False) as store:  # its own counts: no prune-on-open first
            return {**store.prune(**overrides), "database": True}
    settings = resolve_settings({}, **overrides)
    return {"events": 0, "trials": 0, "heal_steps": 0, "settings": settings, "dry_run": dry_run,
            "database": False}
