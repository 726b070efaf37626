"""QLM's error hierarchy: every user-facing failure is a `QLMError` that serializes to JSON.

Each error carries a stable machine-readable ``code``, a human ``message``, a ``hint`` telling the
user how to fix it, a ``context`` dict (file, row, column, line, ...) and the formatted traceback,
so the CLI, the MCP server and the widgets can all show the same structured record.

A fix that is a command differs by front end (``qlm.DataManager().import_file(...)`` in Python,
``qlm data import FILE`` on the command line, a tool over MCP), so an error may also carry ``fixes``,
one per front end in `FRONT_ENDS`; the layer raising it gives all of them and each front end shows
its own (`QLMError.hint_for`): the hint, then that front end's fix.
"""

from __future__ import annotations

import json
import traceback as _traceback
from collections.abc import Iterable
from typing import Any

from qlm_kernel.jsonsafe import json_safe

FRONT_ENDS = ("python", "cli", "mcp")
"""The front ends a fix can be written for; ``python`` (notebooks, scripts) is the default."""
DEFAULT_FRONT_END = "python"
_FIX_SEPARATOR = "; "
_COMMON_HINT = "common_hint"  # a record's hint without its front end's fix (only when it has one)


class QLMError(Exception):
    """Base class of every error QLM raises on purpose."""

    code: str = "QLM_ERROR"

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        code: str | None = None,
        context: dict[str, Any] | None = None,
        fixes: dict[str, str] | None = None,
        **context_kwargs: Any,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.fixes: dict[str, str] = check_fixes(fixes)
        if code is not None:
            self.code = code
        self.context: dict[str, Any] = {**(context or {}), **context_kwargs}
        self._traceback_text: str | None = None

    def __str__(self) -> str:
        where = _format_location(self.context)
        text = f"{self.message}{where}"
        hint = self.hint_for(DEFAULT_FRONT_END)
        if hint:
            text += f"\n  hint: {hint}"
        return text

    def hint_for(self, front_end: str = DEFAULT_FRONT_END) -> str | None:
        """The hint as ``front_end`` shows it: the common hint, then that front end's fix (if any)."""
        return join_hint(self.hint, self.fixes.get(front_end))

    @property
    def traceback(self) -> str:
        """The formatted traceback (of this error and its cause), or '' if never raised."""
        if self._traceback_text is not None:
            return self._traceback_text
        if self.__traceback__ is None and self.__cause__ is None:
            return ""
        return "".join(_traceback.format_exception(type(self), self, self.__traceback__))

    @traceback.setter
    def traceback(self, text: str) -> None:
        self._traceback_text = text

    def to_dict(self, front_end: str = DEFAULT_FRONT_END) -> dict[str, Any]:
        """A JSON-safe dict: type, code, message, hint (as ``front_end`` shows it), fixes (every front
        end's), front_end, context and traceback; `from_dict` rebuilds the error from it. When the hint
        shown includes ``front_end``'s fix, the record also keeps the common hint (``common_hint``), so
        the record re-renders for another front end (`record_for`) without taking its text apart."""
        record = {
            "type": type(self).__name__,
            "code": self.code,
            "message": self.message,
            "hint": self.hint_for(front_end),
            "fixes": dict(self.fixes),
            "front_end": front_end,
            "context": json_safe(self.context, nonfinite="text"),
            "traceback": self.traceback,
        }
        if self.fixes.get(front_end):
            record[_COMMON_HINT] = self.hint
        return record

    def to_json(self, **dumps_kwargs: Any) -> str:
        """`to_dict()` as a JSON string."""
        return json.dumps(self.to_dict(), **dumps_kwargs)

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> QLMError:
        """Rebuild an error from `to_dict()` output (the right subclass when the type is known)."""
        kind = _REGISTRY.get(record.get("type", ""), QLMError)
        fixes = {k: v for k, v in (record.get("fixes") or {}).items() if k in FRONT_ENDS}
        err = kind(
            record.get("message", ""),
            hint=_record_common_hint(record),
            code=record.get("code"),
            context=record.get("context") or {},
            fixes=fixes,
        )
        err.traceback = record.get("traceback") or ""
        return err


class StrategyError(QLMError):
    """User strategy code failed: load, syntax, runtime, or malformed signals."""

    code = "STRATEGY_ERROR"


class DataError(QLMError):
    """Market data is missing, malformed or inconsistent (names file, row, column, value)."""

    code = "DATA_ERROR"


class QLMSystemError(QLMError):
    """The environment failed us: database, disk, memory. (Never shadows builtin SystemError.)"""

    code = "SYSTEM_ERROR"


class OptimizationError(QLMError):
    """A parameter search could not be set up or run."""

    code = "OPTIMIZATION_ERROR"


class ExecutionError(QLMError):
    """An order or a broker/exchange interaction was refused or failed."""

    code = "EXECUTION_ERROR"


class SecurityError(QLMError):
    """A request was refused for safety: path outside the workspace, bad token, bad origin."""

    code = "SECURITY_ERROR"


class ConfigError(QLMError):
    """An argument or setting is invalid (unknown option, out-of-range value)."""

    code = "CONFIG_ERROR"


_REGISTRY: dict[str, type[QLMError]] = {
    cls.__name__: cls
    for cls in (
        QLMError,
        StrategyError,
        DataError,
        QLMSystemError,
        OptimizationError,
        ExecutionError,
        SecurityError,
        ConfigError,
    )
}


def closest(name: Any, known: Iterable[str]) -> str | None:
    """The known name closest to ``name`` (difflib), or None when nothing is close: the did-you-mean of
    every unknown-name error."""
    import difflib  # when needed: the CLI imports this module at start

    found = difflib.get_close_matches(str(name), list(known), n=1)
    return found[0] if found else None


def spelled(name: str, value: Any = None, *, mcp_in: str | None = None, lead: str = "") -> dict[str, str]:
    """Fixes writing keyword ``name`` (with ``value``, else a VALUE placeholder) as each front end takes
    it: ``name=value`` in Python, ``--name-with-dashes value`` on the command line, ``name=value`` (or
    ``mcp_in={"name": value}`` when it lives in that argument object) in an MCP tool call."""
    known = value is not None and len(repr(value)) <= 40
    py = repr(value) if known else "VALUE"
    js = json.dumps(json_safe(value), default=str) if known else "VALUE"
    cli = str(value) if known else "VALUE"
    mcp = f"{mcp_in}={{{json.dumps(name)}: {js}}}" if mcp_in else f"{name}={js}"
    return {
        "python": f"{lead}{name}={py}",
        "cli": f"{lead}--{name.replace('_', '-')} {cli}",
        "mcp": f"{lead}{mcp}",
    }


def check_fixes(fixes: dict[str, str] | None) -> dict[str, str]:
    """``fixes`` as a plain dict of text, refusing a front end not in `FRONT_ENDS` (a typo would hide it)."""
    out = {str(k): str(v) for k, v in (fixes or {}).items() if v}
    unknown = sorted(set(out) - set(FRONT_ENDS))
    if unknown:
        raise ValueError(f"fixes for unknown front end(s) {unknown}; known: {', '.join(FRONT_ENDS)}")
    return out


def join_hint(hint: str | None, fix: str | None) -> str | None:
    """``hint; fix`` (either alone when the other is missing; None when both are)."""
    if hint and fix:
        return f"{hint}{_separator(hint)}{fix}"
    return hint or fix or None


def _separator(hint: str) -> str:
    """" " after a finished sentence (``did you mean 'x'?``), else "; "."""
    return " " if hint.endswith(("?", ".", "!")) else _FIX_SEPARATOR


def common_hint(shown: str | None, fix: str | None) -> str | None:
    """The common hint inside a hint `join_hint` rendered with ``fix`` (its inverse; ``shown`` otherwise).
    Only for records written before they kept ``common_hint`` (`QLMError.to_dict`)."""
    if not shown or not fix:
        return shown
    if shown == fix:
        return None
    for sep in (_FIX_SEPARATOR, " "):
        if shown.endswith(sep + fix) and _separator(shown[: -len(sep + fix)]) == sep:
            return shown[: -len(sep + fix)]
    return shown


def _record_common_hint(record: dict[str, Any]) -> str | None:
    """The common hint of a `QLMError.to_dict` record: kept as ``common_hint`` when the hint shown has
    a fix; a record without a fix for its front end shows the common hint itself; an older record's
    hint is taken apart (`common_hint`)."""
    if _COMMON_HINT in record:
        return record[_COMMON_HINT]
    fix = (record.get("fixes") or {}).get(record.get("front_end", DEFAULT_FRONT_END))
    return common_hint(record.get("hint"), fix)


def record_for(record: dict[str, Any], front_end: str) -> dict[str, Any]:
    """A `QLMError.to_dict` record (e.g. a stored run's error) with its hint re-rendered for ``front_end``."""
    fixes = record.get("fixes") or {}
    if not fixes or record.get("front_end", DEFAULT_FRONT_END) == front_end:
        return record
    common = _record_common_hint(record)
    out = {k: v for k, v in record.items() if k != _COMMON_HINT}
    out.update(hint=join_hint(common, fixes.get(front_end)), front_end=front_end)
    if fixes.get(front_end):
        out[_COMMON_HINT] = common
    return out


def _format_location(context: dict[str, Any]) -> str:
    parts = [f"{key}={context[key]!r}" for key in ("file", "row", "column", "line") if key in context]
    return f" [{', '.join(parts)}]" if parts else ""
