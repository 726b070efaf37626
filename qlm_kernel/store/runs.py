"""Backtest runs: what ran (strategy version, data fingerprint, params, settings), its stats or error."""

from __future__ import annotations

import math
import sqlite3
from typing import Any

from qlm_kernel.errors import ConfigError
from qlm_kernel.store import codec
from qlm_kernel.store.base import StoreBase
from qlm_kernel.store.ledger import note_in, variant_rows
from qlm_kernel.store.strategies import AUTHORS, ensure_version

RUN_STATUSES = ("ok", "error")
RUN_FIELDS = ("strategy", "strategy_version_id", "dataset", "data_fingerprint", "params", "settings",
              "stats", "status", "error", "duration_s", "source", "environment")
_JSON = ("params", "settings", "stats", "error", "environment")
_COLUMNS = ("id, strategy, strategy_version_id, dataset, data_fingerprint, params, settings, stats, status, "
            "error, duration_s, source, environment, created_at")


def _prepare(fields: dict[str, Any]) -> tuple[dict[str, Any], str | None, str]:
    """Validate `record_run` keywords: (column values, code to version or None, author)."""
    code = fields.pop("code", None)
    author = fields.pop("author", "user")
    unknown = sorted(set(fields) - set(RUN_FIELDS))
    if unknown:
        raise ConfigError(f"unknown run field(s): {', '.join(unknown)}", hint="record_run accepts "
                          f"{', '.join((*RUN_FIELDS, 'code', 'author'))}", fields=unknown)
    strategy = codec.require_text(fields.get("strategy"), "strategy")
    if code is not None and not isinstance(code, str):
        raise ConfigError("code must be the strategy's source text", hint="pass a str or omit it",
                          strategy=strategy)
    if author not in AUTHORS:
        raise ConfigError(f"unknown author {author!r}", hint=f"author is one of {', '.join(AUTHORS)}",
                          strategy=strategy)
    error = codec.error_record(fields.get("error"))
    status = fields.get("status") or ("error" if error is not None else "ok")
    if status not in RUN_STATUSES:
        raise ConfigError(f"unknown run status {status!r}", hint="status is 'ok' or 'error'",
                          strategy=strategy, value=repr(status))
    duration = fields.get("duration_s")
    if duration is not None:
        if hasattr(duration, "item"):
            duration = duration.item()
        number = isinstance(duration, (int, float)) and not isinstance(duration, bool)
        if not number or not math.isfinite(duration):
            raise ConfigError("duration_s must be a finite number of seconds", hint="e.g. duration_s=0.012",
                              strategy=strategy, value=repr(duration))
    values = {
        "strategy": strategy,
        "strategy_version_id": codec.require_int(fields.get("strategy_version_id"), "strategy_version_id",
                                                 minimum=1, allow_none=True),
        "dataset": _opt_text(fields.get("dataset"), "dataset"),
        "data_fingerprint": _opt_text(fields.get("data_fingerprint"), "data_fingerprint"),
        "params": codec.dumps(fields.get("params") or {}),
        "settings": codec.dumps(fields.get("settings") or {}),
        "stats": codec.dumps(fields.get("stats")),
        "status": status,
        "error": codec.dumps(error),
        "duration_s": None if duration is None else float(duration),
        "source": _opt_text(fields.get("source"), "source") or "python",
        "environment": codec.dumps(fields.get("environment")),
    }
    return values, code, author


def _opt_text(value: Any, field: str) -> str | None:
    return None if value is None else codec.require_text(value, field, max_len=4096)


class RunsMixin(StoreBase):
    """`record_run`, `get_run`, `list_runs`."""

    def record_run(self, **fields: Any) -> int:
        """Record one backtest run; returns its id.

        Keywords: strategy (required), strategy_version_id, dataset, data_fingerprint, params, settings,
        stats (dict or pandas Series), status ('ok'/'error'; 'error' when `error` is given), error (a
        QLMError, any exception or a dict), duration_s, source ('python', 'cli', 'mcp', 'optimizer',
        ...), environment (library versions, data source, result hashes: what `reproduce` compares).
        ``code=`` (with optional ``author=``) versions the strategy in the same transaction via
        `ensure_strategy_version` and links the run to that version. ``count_trial=True`` also counts
        the run's variant (params, settings) in the trial ledger, in the same transaction, when the run
        succeeded on known data (a ``data_fingerprint``).
        """
        fields = dict(fields)
        count_trial = bool(fields.pop("count_trial", False))
        values, code, author = _prepare(fields)
        trial = None
        if count_trial and values["status"] == "ok" and values["data_fingerprint"]:
            variant = {"params": fields.get("params") or {}, "settings": fields.get("settings") or {}}
            trial = variant_rows([variant])

        def insert(conn: sqlite3.Connection) -> int:
            row = dict(values)  # a fresh copy: a busy retry re-runs this function
            if code is not None and row["strategy_version_id"] is None:
                row["strategy_version_id"] = ensure_version(conn, row["strategy"], code, author, None)["id"]
            elif row["strategy_version_id"] is not None:
                found = conn.execute("SELECT 1 FROM strategy_versions WHERE id = ?",
                                     (row["strategy_version_id"],)).fetchone()
                if found is None:
                    raise ConfigError(f"no strategy version with id {row['strategy_version_id']}",
                                      hint="pass the id returned by save/ensure_strategy_version",
                                      code="NOT_FOUND", strategy_version_id=row["strategy_version_id"])
            cols = ", ".join(row)
            marks = ", ".join("?" * len(row))
            cur = conn.execute(f"INSERT INTO runs ({cols}, created_at) VALUES ({marks}, ?)",
                               (*row.values(), codec.now_iso()))
            if trial is not None:
                note_in(conn, row["strategy"], row["data_fingerprint"], trial, row["source"], code)
            return int(cur.lastrowid)  # type: ignore[arg-type]

        return self._write("record run", insert)

    def get_run(self, run_id: int) -> dict[str, Any] | None:
        """One run (JSON columns decoded), or None."""
        rid = codec.require_int(run_id, "run id", minimum=1)
        return self._read("get run", lambda c: codec.row_dict(
            c.execute(f"SELECT {_COLUMNS} FROM runs WHERE id = ?", (rid,)).fetchone(), _JSON))

    def list_runs(self, limit: int = 50, strategy: str | None = None, status: str | None = None, *,
                  dataset: str | None = None, offset: int = 0) -> list[dict[str, Any]]:
        """The newest runs first, optionally filtered by strategy, status and dataset."""
        limit = codec.require_int(limit, "limit")  # type: ignore[assignment]
        offset = codec.require_int(offset, "offset")  # type: ignore[assignment]
        if status is not None and status not in RUN_STATUSES:
            raise ConfigError(f"unknown run status {status!r}", hint="status is 'ok' or 'error'",
                              value=repr(status))
        where, args = [], []
        for column, value in (("strategy", strategy), ("status", status), ("dataset", dataset)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        sql = f"SELECT {_COLUMNS} FROM runs {clause} ORDER BY id DESC LIMIT ? OFFSET ?"
        return self._read("list runs",
                          lambda c: codec.rows_dicts(c.execute(sql, (*args, limit, offset)), _JSON))
