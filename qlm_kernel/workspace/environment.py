"""What a run depended on, recorded with it so `reproduce` can re-run it and say exactly what differs:
library versions, where the data came from, the strategy's file and code hash, and hashes of the
result (equity curve and trade records, bit for bit)."""

from __future__ import annotations

import functools
import hashlib
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

LIBRARIES = ("numpy", "numba", "pandas", "pyarrow", "qlm-kernel")
"""The packages whose versions a run records (with Python's): the ones that compute its numbers."""


@functools.lru_cache(maxsize=1)
def _versions() -> tuple[tuple[str, str], ...]:
    """Read once per process (an upgrade takes effect in the next kernel, as the code itself does)."""
    return tuple(_read_versions().items())


def library_versions() -> dict[str, str]:
    """``{"python": "3.11.7", "numpy": "2.1.3", ...}`` for `LIBRARIES` (``"missing"`` if not installed)."""
    return dict(_versions())


def _read_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "missing"
    return versions


def array_sha256(values: Any) -> str:
    """sha256 of an array's float64 bytes (C order): equal hashes mean bit-for-bit equal values."""
    array = np.ascontiguousarray(np.asarray(values, dtype=np.float64))
    return hashlib.sha256(array.tobytes()).hexdigest()


def code_sha256(code: str | None) -> str | None:
    """sha256 of the code's UTF-8 text (the store's strategy-version hash), None without code."""
    return None if code is None else hashlib.sha256(code.encode("utf-8")).hexdigest()


def run_environment(result: Any, *, data_source: dict[str, Any] | None, strategy_cls: Any) -> dict[str, Any]:
    """The environment record of a finished run (`record_run`'s ``environment``)."""
    source_file = getattr(strategy_cls, "source_file", None)
    return {
        "versions": library_versions(),
        "data_source": data_source,
        "strategy_file": str(Path(source_file).resolve()) if source_file else None,
        "code_sha256": code_sha256(getattr(strategy_cls, "source_text", None)),
        "equity_sha256": array_sha256(result.equity.to_numpy()),
        "trades_sha256": array_sha256(result._trades),
        "seed": None,  # a backtest draws no random numbers; jobs record their own seed in their config
    }
