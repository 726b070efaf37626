"""Paper-trading sessions: config, progress, state snapshots, orders, fills and equity marks.

`paper_bar_done` writes one bar's orders, fills, equity mark and the handler's state snapshot in
a single transaction: after a crash the session row and its orders always agree, and the UNIQUE
client_order_id makes placing an order twice impossible even if a resumed runner tried.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable, Mapping
from typing import Any

from qlm_kernel.errors import ConfigError
from qlm_kernel.store import codec
from qlm_kernel.store.base import StoreBase

PAPER_STATUSES = ("running", "stopped", "finished", "failed")
_SESSION_JSON = ("config", "state", "summary", "error")
_SESSION_COLUMNS = (
    "id, strategy, symbol, config, status, bars_processed, last_bar_time, state, summary, error, "
    "pid, heartbeat, created_at, updated_at, finished_at"
)
_LIST_COLUMNS = _SESSION_COLUMNS.replace(" state,", "")


PAPER_LIST_FIXES = {  # where each front end lists paper sessions (`QLMError.fixes`)
    "python": "list them with qlm.session.list_paper_sessions()",
    "mcp": "list them with the list_paper_sessions tool",
}


def _not_found(session_id: str) -> ConfigError:
    return ConfigError(
        f"no paper session with id {session_id!r}",
        code="NOT_FOUND",
        fixes=PAPER_LIST_FIXES,
        session_id=session_id,
    )


def _order_row(session_id: str, order: Mapping[str, Any], now: str) -> tuple[Any, ...]:
    return (
        session_id,
        codec.require_text(order["client_order_id"], "client_order_id", max_len=64),
        order["symbol"],
        order["side"],
        order["status"],
        float(order.get("filled") or 0.0),
        order.get("avg_price"),
        float(order.get("fees") or 0.0),
        order.get("reason"),
        order.get("signal_bar"),
        codec.dumps(dict(order)),
        codec.dumps(order.get("error")),
        now,
        now,
    )


def _fill_row(session_id: str, fill: Mapping[str, Any], now: str) -> tuple[Any, ...]:
    return (
        session_id,
        fill["fill_id"],
        fill["client_order_id"],
        fill["symbol"],
        fill["side"],
        float(fill["size"]),
        float(fill["price"]),
        float(fill["fee"]),
        fill.get("ref_price"),
        fill.get("bar"),
        fill.get("time"),
        fill.get("reason"),
        fill.get("signal_bar"),
        now,
    )


class PaperMixin(StoreBase):
    """Paper sessions: create, record a bar, finish, get, list; their orders, fills and marks."""

    def create_paper_session(self, session_id: str, strategy: str, symbol: str, config: Any = None) -> str:
        """A new 'running' session row; ConfigError SESSION_EXISTS if the id is taken."""
        codec.require_text(session_id, "session id", max_len=64)
        codec.require_text(strategy, "strategy")
        codec.require_text(symbol, "symbol", max_len=64)
        config_text = codec.dumps(config)

        def insert(conn: sqlite3.Connection) -> str:
            if (
                conn.execute("SELECT 1 FROM paper_sessions WHERE id = ?", (session_id,)).fetchone()
                is not None
            ):
                raise ConfigError(
                    f"a paper session with id {session_id!r} already exists",
                    hint="resume it with resume=<id>, or omit session_id for a new one",
                    code="SESSION_EXISTS",
                    session_id=session_id,
                )
            now = codec.now_iso()
            conn.execute(
                "INSERT INTO paper_sessions (id, strategy, symbol, config, status, pid, heartbeat, "
                "created_at, updated_at) VALUES (?, ?, ?, ?, 'running', ?, ?, ?, ?)",
                (session_id, strategy, symbol, config_text, os.getpid(), time.time(), now, now),
            )
            return session_id

        return self._write("create paper session", insert)

    def paper_bar_done(
        self,
        session_id: str,
        bar: int,
        bar_time: Any,
        orders: Iterable[Mapping[str, Any]],
        fills: Iterable[Mapping[str, Any]],
        state: Any,
        summary: Mapping[str, Any],
    ) -> None:
        """Record one processed bar atomically: orders (upserted by client id), fills, mark, state."""
        now = codec.now_iso()
        order_rows = [_order_row(session_id, o, now) for o in orders]
        fill_rows = [_fill_row(session_id, f, now) for f in fills]
        time_text = (
            None
            if bar_time is None
            else codec.to_iso(bar_time.to_pydatetime() if hasattr(bar_time, "to_pydatetime") else bar_time)
        )
        state_text = codec.dumps(state)
        summary_text = codec.dumps(dict(summary))
        mark = (
            session_id,
            int(bar),
            time_text,
            summary.get("equity"),
            summary.get("cash"),
            summary.get("position"),
            summary.get("price"),
        )

        def write(conn: sqlite3.Connection) -> None:
            for row in order_rows:
                owner = conn.execute(
                    "SELECT session_id FROM paper_orders WHERE client_order_id = ?", (row[1],)
                ).fetchone()
                if owner is not None and owner[0] != session_id:
                    raise ConfigError(
                        f"client order id {row[1]!r} belongs to another paper session",
                        hint="client order ids are unique across sessions",
                        code="DUPLICATE_ORDER",
                        client_order_id=row[1],
                        session_id=session_id,
                    )
                conn.execute(
                    "INSERT INTO paper_orders (session_id, client_order_id, symbol, side, status, filled, "
                    'avg_price, fees, reason, signal_bar, "order", error, created_at, updated_at) '
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (client_order_id) DO UPDATE SET "
                    "status = excluded.status, filled = excluded.filled, avg_price = excluded.avg_price, "
                    'fees = excluded.fees, "order" = excluded."order", error = excluded.error, '
                    "updated_at = excluded.updated_at",
                    row,
                )
            conn.executemany(
                "INSERT OR IGNORE INTO paper_fills (session_id, fill_id, client_order_id, symbol, side, "
                "size, price, fee, ref_price, bar, time, reason, signal_bar, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                fill_rows,
            )
            conn.execute(
                "INSERT OR REPLACE INTO paper_marks (session_id, bar, bar_time, equity, cash, position, "
                "price) VALUES (?, ?, ?, ?, ?, ?, ?)",
                mark,
            )
            changed = conn.execute(
                "UPDATE paper_sessions SET bars_processed = ?, last_bar_time = COALESCE(?, last_bar_time), "
                "state = ?, summary = ?, heartbeat = ?, pid = ?, updated_at = ? WHERE id = ?",
                (
                    int(bar) + 1,
                    time_text,
                    state_text,
                    summary_text,
                    time.time(),
                    os.getpid(),
                    now,
                    session_id,
                ),
            )
            if changed.rowcount == 0:
                raise _not_found(session_id)

        self._write("record paper bar", write)

    def set_paper_session_status(self, session_id: str, status: str, *, error: Any = None) -> None:
        """Mark a session running / stopped / finished / failed (with its error)."""
        if status not in PAPER_STATUSES:
            raise ConfigError(
                f"invalid paper session status {status!r}",
                hint=f"use one of {PAPER_STATUSES}",
                session_id=session_id,
                value=repr(status),
            )
        now = codec.now_iso()
        finished = None if status == "running" else now
        error_text = codec.dumps(codec.error_record(error))

        def update(conn: sqlite3.Connection) -> None:
            cur = conn.execute(
                "UPDATE paper_sessions SET status = ?, error = COALESCE(?, error), finished_at = ?, "
                "pid = ?, heartbeat = ?, updated_at = ? WHERE id = ?",
                (status, error_text, finished, os.getpid(), time.time(), now, session_id),
            )
            if cur.rowcount == 0:
                raise _not_found(session_id)

        self._write("set paper session status", update)

    def get_paper_session(self, session_id: str) -> dict[str, Any] | None:
        """One session with its config, state snapshot and summary decoded, or None."""
        codec.require_text(session_id, "session id", max_len=64)
        return self._read(
            "get paper session",
            lambda c: codec.row_dict(
                c.execute(
                    f"SELECT {_SESSION_COLUMNS} FROM paper_sessions WHERE id = ?", (session_id,)
                ).fetchone(),
                _SESSION_JSON,
            ),
        )

    def list_paper_sessions(self, limit: int = 50, status: str | None = None) -> list[dict[str, Any]]:
        """The newest sessions first (without their state snapshots)."""
        limit = codec.require_int(limit, "limit")  # type: ignore[assignment]
        where, args = ("WHERE status = ?", (status,)) if status is not None else ("", ())
        sql = (
            f"SELECT {_LIST_COLUMNS} FROM paper_sessions {where} ORDER BY created_at DESC, rowid DESC LIMIT ?"
        )
        return self._read(
            "list paper sessions", lambda c: codec.rows_dicts(c.execute(sql, (*args, limit)), _SESSION_JSON)
        )

    def paper_orders(self, session_id: str) -> list[dict[str, Any]]:
        """A session's orders in submission order (the full order record under 'order')."""
        sql = (
            "SELECT id, session_id, client_order_id, symbol, side, status, filled, avg_price, fees, reason, "
            'signal_bar, "order", error, created_at, updated_at FROM paper_orders WHERE session_id = ? '
            "ORDER BY id"
        )
        return self._read(
            "paper orders", lambda c: codec.rows_dicts(c.execute(sql, (session_id,)), ("order", "error"))
        )

    def paper_fills(self, session_id: str) -> list[dict[str, Any]]:
        """A session's fills in execution order."""
        sql = (
            "SELECT fill_id, client_order_id, symbol, side, size, price, fee, time, ref_price, bar, reason, "
            "signal_bar FROM paper_fills WHERE session_id = ? ORDER BY id"
        )
        return self._read("paper fills", lambda c: codec.rows_dicts(c.execute(sql, (session_id,))))

    def paper_marks(self, session_id: str) -> list[dict[str, Any]]:
        """A session's per-bar equity marks, by bar."""
        sql = (
            "SELECT bar, bar_time, equity, cash, position, price FROM paper_marks WHERE session_id = ? "
            "ORDER BY bar"
        )
        return self._read("paper marks", lambda c: codec.rows_dicts(c.execute(sql, (session_id,))))
