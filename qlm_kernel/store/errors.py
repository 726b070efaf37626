"""Turn sqlite3 exceptions into `QLMSystemError`s with a specific code, so no bare sqlite3 error escapes.

Codes: ``DB_BUSY`` (locked beyond the busy timeout and retries), ``DB_READONLY``, ``DB_FULL``,
``DB_CORRUPT`` (not a database / malformed), ``DB_CANTOPEN``, ``DB_IO``, ``DB_CONSTRAINT`` and
``DB_ERROR`` for anything else. The store also raises ``DB_CLOSED``, ``DB_TOO_NEW`` and ``DB_FOREIGN``.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from qlm_kernel.errors import QLMSystemError

# SQLite primary result codes (the low byte of an extended code).
_BUSY_CODES = {5, 6}  # SQLITE_BUSY, SQLITE_LOCKED
_PRIMARY_TO_CODE = {
    3: "DB_READONLY",  # SQLITE_PERM
    5: "DB_BUSY",
    6: "DB_BUSY",
    8: "DB_READONLY",  # SQLITE_READONLY
    10: "DB_IO",  # SQLITE_IOERR
    11: "DB_CORRUPT",  # SQLITE_CORRUPT
    13: "DB_FULL",  # SQLITE_FULL
    14: "DB_CANTOPEN",  # SQLITE_CANTOPEN
    19: "DB_CONSTRAINT",  # SQLITE_CONSTRAINT
    26: "DB_CORRUPT",  # SQLITE_NOTADB
}
# Fallback when an exception carries no result code (e.g. raised by the sqlite3 module itself).
_MESSAGE_TO_CODE = (
    ("locked", "DB_BUSY"),
    ("busy", "DB_BUSY"),
    ("readonly", "DB_READONLY"),
    ("read-only", "DB_READONLY"),
    ("disk is full", "DB_FULL"),
    ("database or disk is full", "DB_FULL"),
    ("not a database", "DB_CORRUPT"),
    ("malformed", "DB_CORRUPT"),
    ("unable to open", "DB_CANTOPEN"),
    ("disk i/o error", "DB_IO"),
    ("closed database", "DB_CLOSED"),
    ("constraint failed", "DB_CONSTRAINT"),
)

HINTS = {
    "DB_BUSY": "another process or thread held the database lock too long; retry later, or find the "
    "long-running writer (a stuck job or an open sqlite3 shell on the file)",
    "DB_READONLY": "the database (or its directory) is read-only or was opened with readonly=True; "
    "check the file and directory permissions or point QLM_HOME at a writable folder (a WAL database "
    "also needs a writable directory for <db>-wal and <db>-shm, even to read)",
    "DB_FULL": "the disk (or the database's page limit) is full; free disk space, then retry",
    "DB_CORRUPT": "the file is not a QLM/SQLite database or is damaged; move it aside (it was not "
    "modified) and let QLM create a fresh one, or restore a backup",
    "DB_CANTOPEN": "the database file could not be opened; check that the path exists, is a file and "
    "that its directory is readable and writable (WAL needs <db>-wal and <db>-shm beside it)",
    "DB_IO": "the operating system reported an I/O error; check the disk and the filesystem",
    "DB_CONSTRAINT": "a database constraint was violated; this is a bug in the caller or in QLM",
    "DB_CLOSED": "the Store was closed; open a new Store (or call default_store() again)",
    "DB_ERROR": "an unexpected database error; see the sqlite message in the context",
}


def primary_code(exc: BaseException) -> int | None:
    """SQLite's primary result code of `exc` (None when it carries none)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else int(code) & 0xFF


def is_busy(exc: BaseException) -> bool:
    """True for SQLITE_BUSY / SQLITE_LOCKED ("database is locked"): worth retrying."""
    code = primary_code(exc)
    if code is not None:
        return code in _BUSY_CODES
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def error_code(exc: BaseException) -> str:
    """The QLM code (``DB_*``) for a sqlite3 exception."""
    code = primary_code(exc)
    if code is not None and code in _PRIMARY_TO_CODE:
        return _PRIMARY_TO_CODE[code]
    text = str(exc).lower()
    for needle, mapped in _MESSAGE_TO_CODE:
        if needle in text:
            return mapped
    return "DB_ERROR"


def map_error(exc: BaseException, *, op: str, path: Any, **context: Any) -> QLMSystemError:
    """A `QLMSystemError` describing `exc` (raise it ``from exc``); context names path and operation."""
    code = error_code(exc)
    message = f"database {op} failed: {exc}" if code != "DB_BUSY" else (
        f"database {op} failed: the database stayed locked ({exc})")
    return QLMSystemError(
        message,
        code=code,
        hint=HINTS.get(code, HINTS["DB_ERROR"]),
        path=str(path),
        operation=op,
        sqlite_error=getattr(exc, "sqlite_errorname", None) or type(exc).__name__,
        sqlite_message=str(exc),
        **context,
    )


def store_error(message: str, *, code: str, op: str, path: Any, hint: str | None = None,
                **context: Any) -> QLMSystemError:
    """A `QLMSystemError` raised by the store itself (not from a sqlite3 exception)."""
    return QLMSystemError(message, code=code, hint=hint or HINTS.get(code, HINTS["DB_ERROR"]),
                          path=str(path), operation=op, **context)


def is_sqlite_error(exc: BaseException) -> bool:
    """True for any exception raised by the sqlite3 module."""
    return isinstance(exc, sqlite3.Error)
