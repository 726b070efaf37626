"""Key/value settings stored as JSON (e.g. defaults for backtests, MCP options, UI preferences)."""

from __future__ import annotations

import sqlite3
from typing import Any

from qlm_kernel.store import codec
from qlm_kernel.store.base import StoreBase


class ConfigMixin(StoreBase):
    """`get_config`, `set_config`, `delete_config`, `list_config`."""

    def get_config(self, key: str, default: Any = None) -> Any:
        """The value stored under `key`, or `default`."""
        codec.require_text(key, "config key", max_len=256)
        row = self._read("get config", lambda c: c.execute(
            "SELECT value FROM config WHERE key = ?", (key,)).fetchone())
        return default if row is None else codec.loads(row[0])

    def set_config(self, key: str, value: Any) -> None:
        """Store `value` (anything JSON-able; None is stored as JSON null) under `key`."""
        codec.require_text(key, "config key", max_len=256)
        text = "null" if value is None else codec.dumps(value)

        def upsert(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO config (key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT (key) "
                         "DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                         (key, text, codec.now_iso()))

        self._write("set config", upsert)

    def delete_config(self, key: str) -> bool:
        """Remove `key`; True if it was set."""
        codec.require_text(key, "config key", max_len=256)
        return self._write("delete config", lambda c: c.execute(
            "DELETE FROM config WHERE key = ?", (key,)).rowcount > 0)

    def list_config(self) -> dict[str, Any]:
        """Every setting as a dict."""
        rows = self._read("list config", lambda c: c.execute("SELECT key, value FROM config ORDER BY key")
                          .fetchall())
        return {r[0]: codec.loads(r[1]) for r in rows}
