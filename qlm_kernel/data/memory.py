"""Refuse a load or job that would not fit in RAM, before allocating anything.

The budget is ``available - margin``, where ``available`` is psutil's available memory (or the
``available=`` argument) and the margin keeps ``max(10% of total RAM, 512 MiB)`` free for the kernel, the
browser and the OS. ``QLM_MEMORY_LIMIT_BYTES`` (environment) caps the budget further; tests and shared
machines use it to simulate a small box without allocating anything.
"""

from __future__ import annotations

import os

import psutil

from qlm_kernel.errors import ConfigError, QLMSystemError

ENV_LIMIT = "QLM_MEMORY_LIMIT_BYTES"
SAFETY_FRACTION = 0.10
SAFETY_MIN_BYTES = 512 * 1024**2
BYTES_PER_ROW = 48  # int64 time + 5 float64 columns, the canonical frame


def _fmt(nbytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(nbytes) < 1024 or unit == "TiB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    return f"{nbytes:.1f} TiB"  # pragma: no cover


def _env_limit() -> int | None:
    text = os.environ.get(ENV_LIMIT, "").strip()
    if not text:
        return None
    try:
        value = int(float(text))
    except ValueError:
        raise ConfigError(
            f"{ENV_LIMIT}={text!r} is not a number of bytes",
            hint=f"set {ENV_LIMIT} to an integer such as 4000000000 (4 GB), or unset it",
            variable=ENV_LIMIT, value=text,
        ) from None
    return max(value, 0)


def memory_budget(available: int | None = None) -> dict[str, int | None]:
    """The figures the guard uses: available, margin, env limit and the resulting budget (bytes)."""
    vm = psutil.virtual_memory()
    avail = int(vm.available if available is None else available)
    margin = int(max(SAFETY_FRACTION * vm.total, SAFETY_MIN_BYTES))
    limit = _env_limit()
    budget = avail - margin
    if limit is not None:
        budget = min(budget, limit)
    return {"available": avail, "margin": margin, "limit": limit, "budget": max(budget, 0)}


def check_memory(nbytes: int, what: str = "this operation", *, available: int | None = None) -> int:
    """Raise ``QLMSystemError(code="MEMORY_LIMIT")`` if ``nbytes`` would not fit; return the budget.

    ``available`` replaces psutil's figure (the safety margin still applies); ``QLM_MEMORY_LIMIT_BYTES``
    caps the budget. Nothing is allocated here.
    """
    figures = memory_budget(available)
    budget = int(figures["budget"] or 0)
    needed = int(nbytes)
    if needed <= budget:
        return budget
    capped = figures["limit"] is not None and figures["limit"] == budget
    avail, margin = _fmt(figures["available"] or 0), _fmt(figures["margin"] or 0)
    why = f"capped by {ENV_LIMIT}={figures['limit']}" if capped else f"{avail} available - {margin} margin"
    raise QLMSystemError(
        f"not enough memory for {what}: needs about {_fmt(needed)}, only {_fmt(budget)} usable ({why})",
        hint=("free memory (close other notebooks or kernels), use a smaller file or fewer rows/bars, "
              f"convert large CSV to Parquet, or raise/unset {ENV_LIMIT} if it is set too low"),
        code="MEMORY_LIMIT",
        what=what, needed_bytes=needed, budget_bytes=budget, available_bytes=figures["available"],
        margin_bytes=figures["margin"], limit_bytes=figures["limit"],
    )


def estimate_csv_bytes(file_size: int, sample: bytes) -> int:
    """Peak bytes to load a CSV: the text plus ~3 copies of 48 bytes/row (rows estimated from a sample)."""
    lines = max(sample.count(b"\n"), 1)
    bytes_per_line = max(len(sample) / lines, 8.0)
    rows = file_size / bytes_per_line
    return int(file_size + rows * BYTES_PER_ROW * 3)


def estimate_rows_bytes(rows: int, copies: int = 3) -> int:
    """Peak bytes to materialise ``rows`` canonical rows with ``copies`` transient copies."""
    return int(rows * BYTES_PER_ROW * copies)


def text_cap(sample: bytes, budget: int) -> int:
    """The most CSV text bytes whose load fits ``budget`` (the inverse of `estimate_csv_bytes`, 2x at least).

    A decompressed file is capped by this while it streams, so its size never has to be trusted
    (a gzip trailer's ISIZE is mod 2**32 and anyone can write it). The 2x keeps room for joining
    the decompressed pieces into one buffer.
    """
    per_byte = estimate_csv_bytes(1 << 20, sample) / (1 << 20)
    return max(int(budget / max(per_byte, 2.0)), 0)
