"""What the CLI writes and how it exits: JSON documents, human tables, error records, exit codes.

Rules every command follows: stdout carries only the command's result (one JSON document with
``--json``); everything else — progress, warnings, prints from strategy code, errors — goes to
stderr. Errors are the `QLMError` record (``to_dict("cli")``: the hint names ``qlm ...`` commands) as
JSON with ``--json``, otherwise a short human message with location and hint.

Exit codes: 0 success, 1 other QLMError, 2 usage (argparse), 3 DataError, 4 StrategyError,
5 ConfigError, 6 QLMSystemError, 70 internal error (a bug), 130 interrupted.
"""

from __future__ import annotations

import contextlib
import json
import sys
import traceback
from collections.abc import Iterator, Sequence
from typing import Any, TextIO

from qlm_kernel.errors import ConfigError, DataError, QLMError, QLMSystemError, StrategyError, record_for
from qlm_kernel.formatting import fmt_number  # noqa: F401 - part of this module's API (jobs, runs)

FRONT_END = "cli"  # which of a QLMError's fixes the CLI shows (`QLMError.hint_for`)

EXIT_OK = 0
EXIT_QLM_ERROR = 1
EXIT_USAGE = 2
EXIT_DATA = 3
EXIT_STRATEGY = 4
EXIT_CONFIG = 5
EXIT_SYSTEM = 6
EXIT_INTERNAL = 70  # EX_SOFTWARE from sysexits.h
EXIT_INTERRUPTED = 130

_EXIT_BY_TYPE: tuple[tuple[type[QLMError], int], ...] = (
    (DataError, EXIT_DATA),
    (StrategyError, EXIT_STRATEGY),
    (ConfigError, EXIT_CONFIG),
    (QLMSystemError, EXIT_SYSTEM),
)
_LOCATION_KEYS = ("row", "column", "setting", "param", "value")  # shown after file:line


class UsageError(Exception):
    """A command line that parses but makes no sense (e.g. ``--n`` without ``--sample``): exit 2."""


def exit_code_for(err: QLMError) -> int:
    """The process exit code of a QLM error (most specific class wins; 1 for the others)."""
    for cls, code in _EXIT_BY_TYPE:
        if isinstance(err, cls):
            return code
    return EXIT_QLM_ERROR


# --- writing results --------------------------------------------------------------------------------


def dumps(doc: Any) -> str:
    """Strict JSON (no NaN/Infinity, which JSON parsers reject); odd objects become strings."""
    return json.dumps(doc, allow_nan=False, default=str)


def emit_json(doc: Any, stream: TextIO | None = None) -> None:
    """Write one JSON document and a newline (stdout by default)."""
    out = stream or sys.stdout
    out.write(dumps(doc) + "\n")
    out.flush()


def emit_text(text: str) -> None:
    """Write human output to stdout."""
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def note(text: str) -> None:
    """A side message for humans (stderr, so it never pollutes piped stdout)."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


@contextlib.contextmanager
def user_code_stdout() -> Iterator[None]:
    """Send prints from user code (strategy files) to stderr: stdout belongs to the result."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str] | None = None) -> str:
    """Plain left-aligned columns (two spaces apart), optionally under upper-case headers."""
    lines = [list(map(str, r)) for r in rows]
    if headers is not None:
        lines.insert(0, [h.upper() for h in headers])
    if not lines:
        return ""
    widths = [max(len(r[i]) for r in lines if i < len(r)) for i in range(max(map(len, lines)))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)).rstrip() for r in lines)


# --- errors -----------------------------------------------------------------------------------------


def usage_record(message: str, prog: str) -> dict[str, Any]:
    """The JSON record of a usage error, shaped like `QLMError.to_dict()`."""
    return {
        "type": "UsageError",
        "code": "USAGE_ERROR",
        "message": message,
        "hint": f"see '{prog} --help'",
        "context": {"prog": prog},
        "traceback": "",
    }


def internal_record(exc: BaseException) -> dict[str, Any]:
    """The JSON record of an unexpected exception (a bug): its type, message and traceback."""
    return {
        "type": "InternalError",
        "code": "INTERNAL_ERROR",
        "message": f"{type(exc).__name__}: {exc}",
        "hint": "this is a bug in QLM or an unexpected environment; please report it with this traceback",
        "context": {"exception_type": type(exc).__name__, "exception_message": str(exc)},
        "traceback": "".join(traceback.format_exception(exc)),
    }


def report_qlm_error(err: QLMError, *, as_json: bool) -> int:
    """Write a QLM error to stderr (JSON record or human text, the hint with the CLI's fix); return its
    exit code."""
    record = err.to_dict(FRONT_END)
    if as_json:
        emit_json(record, sys.stderr)
    else:
        note(human_error(record))
    return exit_code_for(err)


def report_usage_error(message: str, prog: str, *, as_json: bool) -> int:
    """Write a usage error to stderr; return 2."""
    if as_json:
        emit_json(usage_record(message, prog), sys.stderr)
    else:
        note(f"{prog}: error: {message}\n  hint: see '{prog} --help'")
    return EXIT_USAGE


def report_internal_error(exc: BaseException, *, as_json: bool) -> int:
    """Write an unexpected exception to stderr (with its traceback, since it is a bug); return 70."""
    record = internal_record(exc)
    if as_json:
        emit_json(record, sys.stderr)
    else:
        note(f"{record['traceback']}\ninternal error: {record['message']}\n  hint: {record['hint']}")
    return EXIT_INTERNAL


def human_error(record: dict[str, Any]) -> str:
    """``error (Type): message``, then where (file:line, row, column, value), the excerpt and the hint
    (with the CLI's fix, also for a record stored by another front end)."""
    record = record_for(record, FRONT_END)
    ctx = record.get("context") or {}
    lines = [f"error ({record.get('type', 'Error')}): {record.get('message', '')}"]
    where = _where(ctx)
    if where:
        lines.append(f"  at {where}")
    excerpt = ctx.get("excerpt")
    if excerpt:
        lines.extend("    " + line for line in str(excerpt).splitlines())
    if record.get("hint"):
        lines.append(f"  hint: {record['hint']}")
    return "\n".join(lines)


def _where(ctx: dict[str, Any]) -> str:
    """``file:line`` plus the other location keys present (row, column, value, setting, param)."""
    parts: list[str] = []
    file, line = ctx.get("file"), ctx.get("line")
    if file:
        parts.append(f"{file}:{line}" if line is not None else str(file))
    elif line is not None:
        parts.append(f"line {line}")
    for key in _LOCATION_KEYS:
        if ctx.get(key) is not None and not (key == "row" and ctx.get("row") == line):
            parts.append(f"{key} {ctx[key]!r}" if isinstance(ctx[key], str) else f"{key} {ctx[key]}")
    return ", ".join(parts)
