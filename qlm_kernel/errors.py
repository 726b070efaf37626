"""QLM's error hierarchy: every user-facing failure is a `QLMError` that serializes to JSON.

Each error carries a stable machine-readable ``code``, a human ``message``, a ``hint`` telling the
user how to fix it, a ``context`` dict (file, row, column, line, ...) and the formatted traceback,
so the CLI, the MCP server and the widgets can all show the same structured record.
"""

from __future__ import annotations

import json
import traceback as _traceback
from typing import Any

from qlm_kernel.jsonsafe import json_safe


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
        **context_kwargs: Any,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if code is not None:
            self.code = code
        self.context: dict[str, Any] = {**(context or {}), **context_kwargs}
        self._traceback_text: str | None = None

    def __str__(self) -> str:
        where = _format_location(self.context)
        text = f"{self.message}{where}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text

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

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict: type, code, message, hint, context and traceback."""
        return {
            "type": type(self).__name__,
            "code": self.code,
            "message": self.message,
            "hint": self.hint,
            "context": json_safe(self.context, nonfinite="text"),
            "traceback": self.traceback,
        }

    def to_json(self, **dumps_kwargs: Any) -> str:
        """`to_dict()` as a JSON string."""
        return json.dumps(self.to_dict(), **dumps_kwargs)

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> QLMError:
        """Rebuild an error from `to_dict()` output (the right subclass when the type is known)."""
        kind = _REGISTRY.get(record.get("type", ""), QLMError)
        err = kind(
            record.get("message", ""),
            hint=record.get("hint"),
            code=record.get("code"),
            context=record.get("context") or {},
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


def _format_location(context: dict[str, Any]) -> str:
    parts = [f"{key}={context[key]!r}" for key in ("file", "row", "column", "line") if key in context]
    return f" [{', '.join(parts)}]" if parts else ""
