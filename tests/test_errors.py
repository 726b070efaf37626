"""The QLMError family: hierarchy, structured JSON, tracebacks, round trips."""

from __future__ import annotations

import builtins
import json

import numpy as np
import pytest

import qlm_kernel as qlm
from qlm_kernel.errors import (
    ConfigError,
    DataError,
    ExecutionError,
    OptimizationError,
    QLMError,
    QLMSystemError,
    SecurityError,
    StrategyError,
)

FAMILY = [
    StrategyError,
    DataError,
    QLMSystemError,
    OptimizationError,
    ExecutionError,
    SecurityError,
    ConfigError,
]


@pytest.mark.parametrize("cls", FAMILY)
def test_every_error_is_a_qlm_error_with_its_own_code(cls):
    err = cls("boom", hint="do this")
    assert isinstance(err, QLMError) and isinstance(err, Exception)
    assert err.code != QLMError.code and err.code.endswith("_ERROR")
    assert cls.__name__ in {c.__name__ for c in FAMILY}


def test_system_error_does_not_shadow_the_builtin():
    assert QLMSystemError is not builtins.SystemError
    assert not issubclass(QLMSystemError, builtins.SystemError)
    assert not hasattr(qlm, "SystemError")


def test_to_dict_is_json_with_context_hint_and_traceback():
    try:
        try:
            int("x")
        except ValueError as cause:
            raise DataError(
                "bad number in close",
                hint="fix line 3",
                row=3,
                column="close",
                value=np.float64("nan"),
                extra={"arr": (np.int64(2), 1.5, float("inf"))},
            ) from cause
    except DataError as err:
        doc = json.loads(err.to_json())
    assert doc["type"] == "DataError" and doc["code"] == "DATA_ERROR"
    assert doc["message"] == "bad number in close" and doc["hint"] == "fix line 3"
    assert doc["context"]["row"] == 3 and doc["context"]["column"] == "close"
    assert doc["context"]["value"] == "nan" and doc["context"]["extra"]["arr"] == [2, 1.5, "inf"]
    assert "ValueError" in doc["traceback"] and "DataError" in doc["traceback"]


def test_round_trip_from_dict_keeps_the_subclass():
    err = StrategyError("NameError in signals", hint="define x", code="STRATEGY_RUNTIME", file="s.py", line=7)
    back = QLMError.from_dict(json.loads(err.to_json()))
    assert type(back) is StrategyError and back.code == "STRATEGY_RUNTIME"
    assert back.context == {"file": "s.py", "line": 7} and back.hint == "define x"
    assert "line=7" in str(back) and "hint: define x" in str(back)


def test_unraised_error_has_empty_traceback_and_str_shows_location():
    err = ConfigError("fees must be >= 0", setting="fees")
    assert err.traceback == ""
    assert str(err) == "fees must be >= 0"
    located = DataError("bad", file="p.csv", row=2, column="high")
    assert "file='p.csv'" in str(located) and "row=2" in str(located)


def test_closest_is_the_one_did_you_mean_helper():
    from qlm_kernel import errors
    from qlm_kernel.engine import settings

    assert errors.closest("fee", ("fees", "slippage")) == "fees"
    assert errors.closest("zzzz", ["fees", "slippage"]) is None and errors.closest("x", []) is None
    assert errors.closest(12, ["12a", "b"]) == "12a"  # a non-text name is compared as text
    assert settings.closest is errors.closest  # still importable where callers found it


def test_errors_module_imports_only_the_standard_library():
    import ast
    import sys
    from pathlib import Path

    import qlm_kernel.errors as module

    tree = ast.parse(Path(module.__file__).read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    outside = {m for m in imported if m.split(".")[0] not in sys.stdlib_module_names and m != "__future__"}
    assert outside <= {"qlm_kernel.jsonsafe"}, outside
