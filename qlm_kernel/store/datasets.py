"""Dataset records: the metadata `DataManager` writes beside each imported dataset, one row per name."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Any

from qlm_kernel.errors import ConfigError
from qlm_kernel.store import codec
from qlm_kernel.store.base import StoreBase

_JSON = ("schema", "meta")
_COLUMNS = 'id, name, path, fingerprint, schema, "rows", "start", "end", meta, created_at, updated_at'


class DatasetsMixin(StoreBase):
    """`record_dataset`, `get_dataset`, `list_datasets`, `delete_dataset`."""

    def record_dataset(self, meta: Mapping[str, Any]) -> dict[str, Any]:
        """Insert or update (by name) a dataset's metadata; returns the stored record.

        Accepts DataManager's dict (name, file/path, fingerprint, rows, start, end, columns, ...): the
        known keys fill columns, ``schema`` defaults to ``{"columns": [...]}`` and the whole dict is
        kept in ``meta``.
        """
        if not isinstance(meta, Mapping):
            raise ConfigError("dataset metadata must be a dict", hint="pass DataManager's metadata dict",
                              value=repr(meta)[:200])
        name = codec.require_text(meta.get("name"), "dataset name")
        rows = codec.require_int(meta.get("rows"), "rows", allow_none=True)
        path = meta.get("path", meta.get("file"))
        schema = meta.get("schema")
        if schema is None and meta.get("columns") is not None:
            schema = {"columns": list(meta["columns"])}
        values = (name, None if path is None else str(path), meta.get("fingerprint"), codec.dumps(schema),
                  rows, _text(meta.get("start")), _text(meta.get("end")), codec.dumps(dict(meta)))

        def upsert(conn: sqlite3.Connection) -> dict[str, Any]:
            now = codec.now_iso()
            conn.execute(
                'INSERT INTO datasets (name, path, fingerprint, schema, "rows", "start", "end", meta, '
                "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET path = excluded.path, fingerprint = excluded.fingerprint, "
                'schema = excluded.schema, "rows" = excluded."rows", "start" = excluded."start", '
                '"end" = excluded."end", meta = excluded.meta, updated_at = excluded.updated_at',
                (*values, now, now))
            return _get(conn, name)  # type: ignore[return-value]

        return self._write("record dataset", upsert)

    def get_dataset(self, name: str) -> dict[str, Any] | None:
        """The dataset record named `name`, or None."""
        codec.require_text(name, "dataset name")
        return self._read("get dataset", lambda c: _get(c, name))

    def list_datasets(self) -> list[dict[str, Any]]:
        """Every dataset record, by name."""
        return self._read("list datasets", lambda c: codec.rows_dicts(
            c.execute(f"SELECT {_COLUMNS} FROM datasets ORDER BY name"), _JSON))

    def delete_dataset(self, name: str) -> bool:
        """Forget a dataset record (the files are DataManager's business); True if it existed."""
        codec.require_text(name, "dataset name")
        return self._write("delete dataset",
                           lambda c: c.execute("DELETE FROM datasets WHERE name = ?", (name,)).rowcount > 0)


def _get(conn: sqlite3.Connection, name: str) -> dict[str, Any] | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM datasets WHERE name = ?", (name,)).fetchone()
    return codec.row_dict(row, _JSON)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if hasattr(value, "isoformat") else str(value)
