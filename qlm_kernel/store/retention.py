"""Retention: how long events, trials and heal steps are kept, and `prune()` that applies it.

Defaults (`DEFAULTS`): events 30 days and at most 1,000,000 rows; trials and heal steps are kept for
ever (they are research results: a job's trials are its table of results, heal steps the audit trail
of every patch), unless configured. Each setting comes from, in order: the environment
(``QLM_RETAIN_EVENTS_DAYS``, ``QLM_RETAIN_EVENTS_ROWS``, ``QLM_RETAIN_TRIALS_DAYS``,
``QLM_RETAIN_HEAL_DAYS``), the store's config (``store.set_config("retention.trials_days", 180)``), the
default. A value is a positive number, or ``forever`` / ``off`` / ``none`` (JSON null in the config)
to keep everything.

What is deleted: events older than ``events_days`` or beyond the newest ``events_max_rows``; the trials
of jobs that finished (done, failed, cancelled, abandoned) more than ``trials_days`` ago (the job rows
stay, with their best result; resuming such a job recomputes its trials); the steps of heal sessions
that ended more than ``heal_steps_days`` ago (the session rows stay, with their outcome).

A writable store applies it when it opens at most once a day (`PRUNE_EVERY_S`; the time of the last
prune is the ``maintenance`` table's ``prune`` row); `prune()` applies it now. Deletes run in short
transactions of at most `CHUNK_ROWS` rows so other writers wait little. Freed pages are reused by
SQLite; the file does not shrink (``VACUUM`` does that).
"""

from __future__ import annotations

import math
import os
import time
from typing import Any

from qlm_kernel.errors import ConfigError
from qlm_kernel.store import codec
from qlm_kernel.store.base import StoreBase

SETTINGS: dict[str, tuple[str, str]] = {  # setting -> (environment variable, config key)
    "events_days": ("QLM_RETAIN_EVENTS_DAYS", "retention.events_days"),
    "events_max_rows": ("QLM_RETAIN_EVENTS_ROWS", "retention.events_max_rows"),
    "trials_days": ("QLM_RETAIN_TRIALS_DAYS", "retention.trials_days"),
    "heal_steps_days": ("QLM_RETAIN_HEAL_DAYS", "retention.heal_steps_days"),
}
DEFAULTS: dict[str, float | int | None] = {
    "events_days": 30,
    "events_max_rows": 1_000_000,
    "trials_days": None,
    "heal_steps_days": None,
}
KEEP_WORDS = ("forever", "off", "none", "keep")
PRUNE_TASK = "prune"
PRUNE_EVERY_S = 86_400.0
CHUNK_ROWS = 20_000
_DAY_S = 86_400.0
_UNSET = object()
_FINAL_JOBS = "('done', 'failed', 'cancelled', 'abandoned')"


def parse_setting(name: str, value: Any, source: str) -> float | int | None:
    """A retention value from the environment or the config: a positive number, or None (keep)."""
    if name not in SETTINGS:
        raise ConfigError(f"unknown retention setting {name!r}", hint=f"one of {', '.join(SETTINGS)}",
                          setting=name)
    if value is None or (isinstance(value, str) and value.strip().lower() in KEEP_WORDS):
        return None
    number: Any = value
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    rows = name == "events_max_rows"
    valid = (not isinstance(number, bool) and isinstance(number, (int, float)) and math.isfinite(number)
             and number > 0 and (not rows or float(number).is_integer()))
    if not valid:
        unit = "a positive whole number of rows" if rows else "a positive number of days"
        example = "100000" if rows else "30"
        hint = (f"e.g. {SETTINGS[name][0]}={example} or forever" if source.startswith("$") else
                f"e.g. {name}={example}, or 'forever' to keep everything")
        raise ConfigError(f"retention setting {name} from {source} is {value!r}: expected {unit} or "
                          f"'forever'", hint=hint, setting=name, source=source, value=repr(value)[:100])
    return int(number) if rows else float(number)


def resolve_settings(config: dict[str, Any], **overrides: Any) -> dict[str, float | int | None]:
    """The effective settings: ``overrides`` (None = keep) > environment > ``config`` (the store's
    ``retention.*`` keys, decoded) > default."""
    unknown = sorted(set(overrides) - set(SETTINGS))
    if unknown:
        raise ConfigError(f"unknown retention setting(s): {', '.join(unknown)}",
                          hint=f"use {', '.join(SETTINGS)}", settings=unknown)
    out: dict[str, float | int | None] = {}
    for name, (env, key) in SETTINGS.items():
        if name in overrides:
            out[name] = parse_setting(name, overrides[name], "the arguments")
        elif os.environ.get(env, "").strip():
            out[name] = parse_setting(name, os.environ[env], f"${env}")
        elif key in config:
            out[name] = parse_setting(name, config[key], f"config {key}")
        else:
            out[name] = DEFAULTS[name]
    return out


class RetentionMixin(StoreBase):
    """`retention_settings`, `prune`, `prune_if_due`."""

    def retention_settings(self, **overrides: Any) -> dict[str, float | int | None]:
        """The effective settings: ``overrides`` (None = keep) > environment > store config > default."""
        config = self._read("read retention", lambda c: {key: codec.loads(value) for key, value in c.execute(
            "SELECT key, value FROM config WHERE key LIKE 'retention.%'").fetchall()})
        return resolve_settings(config, **overrides)

    def prune(self, *, now: float | None = None, dry_run: bool = False,
              **overrides: Any) -> dict[str, Any]:
        """Delete what the retention settings no longer keep (``dry_run``: only count it).

        Returns ``{"events": n, "trials": n, "heal_steps": n, "settings": {...}, "dry_run": bool}``.
        """
        settings = self.retention_settings(**overrides)
        moment = time.time() if now is None else float(now)
        counts = {"events": self._prune_events(settings, moment, dry_run),
                  "trials": self._prune_children(
                      "trials", "job_id", f"SELECT id FROM jobs WHERE status IN {_FINAL_JOBS} "
                      "AND finished_at < ?", settings["trials_days"], moment, dry_run),
                  "heal_steps": self._prune_children(
                      "heal_steps", "session_id", "SELECT id FROM heal_sessions WHERE status != 'running' "
                      "AND COALESCE(finished_at, updated_at) < ?", settings["heal_steps_days"], moment,
                      dry_run)}
        if not dry_run:
            self._write("record prune", lambda c: c.execute(
                "INSERT INTO maintenance (task, last_run) VALUES (?, ?) ON CONFLICT (task) DO UPDATE "
                "SET last_run = excluded.last_run", (PRUNE_TASK, moment)))
        return {**counts, "settings": settings, "dry_run": dry_run}

    def prune_if_due(self, now: float | None = None) -> dict[str, Any] | None:
        """`prune()` when the last one ran over a day ago (or never); None when not due."""
        moment = time.time() if now is None else float(now)
        last = self._read("last prune", lambda c: c.execute(
            "SELECT last_run FROM maintenance WHERE task = ?", (PRUNE_TASK,)).fetchone())
        if last is not None and 0 <= moment - last[0] < PRUNE_EVERY_S:
            return None
        return self.prune(now=moment)

    # -- internals ------------------------------------------------------------------------------------

    def _prune_events(self, settings: dict[str, Any], now: float, dry_run: bool) -> int:
        """Delete events older than the cutoff (indexed by time) or below the newest rows kept."""
        parts: list[str] = []
        args: list[Any] = []
        if settings["events_days"] is not None:
            parts.append("created_at < ?")
            args.append(codec.to_iso(now - settings["events_days"] * _DAY_S))
        if settings["events_max_rows"] is not None:
            row = self._read("find old events", lambda c: c.execute(
                "SELECT id FROM events ORDER BY id DESC LIMIT 1 OFFSET ?",
                (settings["events_max_rows"] - 1,)).fetchone())
            if row is not None:
                parts.append("id < ?")
                args.append(row[0])
        if not parts:
            return 0
        where = " OR ".join(parts)
        if dry_run:
            return self._read("count old events", lambda c: c.execute(
                f"SELECT COUNT(*) FROM events WHERE {where}", args).fetchone()[0])
        deleted = 0
        while True:
            gone = self._write("prune events", lambda c: c.execute(
                f"DELETE FROM events WHERE id IN (SELECT id FROM events WHERE {where} LIMIT ?)",
                (*args, CHUNK_ROWS)).rowcount)
            deleted += gone
            if gone < CHUNK_ROWS:
                return deleted

    def _prune_children(self, table: str, parent_column: str, parents_sql: str, days: float | None,
                        now: float, dry_run: bool) -> int:
        """Delete the rows of ``table`` whose parent (found by ``parents_sql`` before a cutoff) is old."""
        if days is None:
            return 0
        cutoff = codec.to_iso(now - days * _DAY_S)
        parents = [r[0] for r in self._read(f"find old {table}", lambda c: c.execute(
            f"SELECT p.id FROM ({parents_sql}) AS p WHERE EXISTS (SELECT 1 FROM {table} t "
            f"WHERE t.{parent_column} = p.id)", (cutoff,)).fetchall())]
        count = f"SELECT COUNT(*) FROM {table} WHERE {parent_column} = ?"
        if dry_run:
            return sum(self._read(f"count old {table}", lambda c, p=p: c.execute(count, (p,)).fetchone()[0])
                       for p in parents)
        deleted = 0
        for parent in parents:
            deleted += self._write(f"prune {table}", lambda c, p=parent: c.execute(
                f"DELETE FROM {table} WHERE {parent_column} = ?", (p,)).rowcount)
        return deleted
