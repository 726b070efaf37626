"""Compact JSON for the tearsheet's data: short numbers, times as one shared delta-coded table,
the whole payload gzip-compressed and base64-encoded (the page inflates it with DecompressionStream)."""

from __future__ import annotations

import base64
import functools
import gzip
import json
import math
from typing import Any

import numpy as np

DIGITS = 5
"""Significant digits of chart values (a chart is read to a pixel; hovers still show five digits)."""


def _float_text(v: float, digits: int) -> str:
    if not math.isfinite(v):
        return "null"
    text = f"{v:.{digits}g}"
    return text


QUANTIZE_MIN = 64
"""float32 arrays longer than this (the charts' lines) ship quantized; shorter ones as text."""
LEVELS = 2**15
"""Quantization levels across an array's range: finer than any chart's pixels (hover error < 1/32768)."""


def quantized(values: np.ndarray) -> str:
    """``{"$q": [delta-coded levels], "lo", "step"}``: value = lo + level * step; NaN ships as null.

    Consecutive points of a line differ by few levels, so the deltas are short and compress well.
    """
    v = np.asarray(values, dtype=float)
    finite = np.isfinite(v)
    if not finite.any():
        return "[" + ",".join("null" for _ in range(len(v))) + "]"
    lo, hi = float(v[finite].min()), float(v[finite].max())
    step = (hi - lo) / (LEVELS - 1) if hi > lo else 1.0
    levels = np.round((np.where(finite, v, lo) - lo) / step).astype(np.int64)
    kept = levels[finite]
    deltas = np.diff(kept, prepend=0).tolist()
    it = iter(deltas)
    items = [str(next(it)) if ok else "null" for ok in finite.tolist()]
    return '{"$q":[' + ",".join(items) + f'],"lo":{lo!r},"step":{step!r}' + "}"


def tick_unit(stamps: np.ndarray) -> int:
    """The largest unit every stamp (sorted integers: seconds, milliseconds) is a whole number of:
    the gcd of the positive gaps and the first stamp, at least 1. Times in these ticks stay small
    (regular hourly data in seconds: a unit of 3,600)."""
    stamps = np.asarray(stamps, dtype=np.int64)
    if not len(stamps):
        return 1
    gaps = np.diff(stamps)
    return max(int(np.gcd.reduce(np.append(gaps[gaps > 0], stamps[:1]))), 1)


class TimeTable:
    """Every distinct timestamp the charts use, so each trace ships small positions instead of dates."""

    def __init__(self, arrays: list[np.ndarray]) -> None:
        ns = [a.astype("datetime64[ns]").astype(np.int64) for a in arrays]
        self.values = np.unique(np.concatenate(ns)) if ns else np.zeros(0, np.int64)
        ms = self.values // 1_000_000
        self.unit_ms = tick_unit(ms)  # the data's step (e.g. 3,600,000 for hourly bars): ticks stay small
        self.ticks = ms // self.unit_ms

    def positions(self, array: np.ndarray) -> np.ndarray:
        """Positions of ``array``'s times in the table."""
        return np.searchsorted(self.values, array.astype("datetime64[ns]").astype(np.int64))

    def to_json(self) -> dict[str, Any]:
        """``{"unit_ms", "t0", "d"}``: the first tick and the differences (regular data: one step)."""
        d = np.diff(self.ticks)
        return {"unit_ms": self.unit_ms, "t0": int(self.ticks[0]) if len(self.ticks) else 0, "d": d}


def _collect_times(obj: Any, out: list[np.ndarray]) -> None:
    if isinstance(obj, np.ndarray) and obj.dtype.kind == "M":
        out.append(obj)
    elif isinstance(obj, dict):
        for v in obj.values():
            _collect_times(v, out)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _collect_times(v, out)


def dumps(obj: Any, table: TimeTable | None = None, digits: int = DIGITS) -> str:
    """JSON text of ``obj``: numpy floats to ``digits`` significant digits, datetime arrays as
    ``{"$t": [delta-coded positions in table]}``, NaN/inf as null."""
    parts: list[str] = []
    _write(obj, parts, table, digits)
    return "".join(parts)


def _write(obj: Any, out: list[str], table: TimeTable | None, digits: int) -> None:
    if isinstance(obj, dict):
        out.append("{")
        for i, (k, v) in enumerate(obj.items()):
            if i:
                out.append(",")
            out.append(json.dumps(str(k)))
            out.append(":")
            _write(v, out, table, digits)
        out.append("}")
    elif isinstance(obj, np.ndarray):
        kind = obj.dtype.kind
        if obj.ndim > 1 and kind != "M":
            _write(list(obj), out, table, digits)
        elif kind == "M":
            if table is None:
                raise ValueError("datetime arrays need a TimeTable")
            pos = table.positions(obj)
            out.append('{"$t":[' + ",".join(map(str, np.diff(pos, prepend=0).tolist())) + "]}")
        elif kind == "f" and len(obj) > QUANTIZE_MIN and obj.dtype == np.float32:
            out.append(quantized(obj))
        elif kind == "f":
            d = min(digits, 7) if obj.dtype == np.float32 else digits
            out.append("[" + ",".join(_float_text(v, d) for v in obj.tolist()) + "]")
        elif kind in "iub":
            out.append("[" + ",".join(map(str, obj.astype(np.int64).tolist())) + "]")
        else:
            _write(obj.tolist(), out, table, digits)
    elif isinstance(obj, (list, tuple)):
        out.append("[")
        for i, v in enumerate(obj):
            if i:
                out.append(",")
            _write(v, out, table, digits)
        out.append("]")
    elif isinstance(obj, (bool, np.bool_)):
        out.append("true" if obj else "false")
    elif isinstance(obj, (int, np.integer)):
        out.append(str(int(obj)))
    elif isinstance(obj, (float, np.floating)):
        out.append(_float_text(float(obj), 10))
    elif obj is None:
        out.append("null")
    else:
        out.append(json.dumps(str(obj), ensure_ascii=False))


def payload(panels: dict[str, Any], extra: dict[str, Any]) -> str:
    """The page's data document as JSON text: the shared time table, the panels and ``extra``."""
    arrays: list[np.ndarray] = []
    _collect_times(panels, arrays)
    table = TimeTable(arrays)
    doc = {"times": table.to_json(), "panels": panels, **extra}
    return dumps(doc, table)


def pack(text: str | bytes, level: int = 9) -> str:
    """gzip + base64 of ``text`` (ASCII, safe inside a ``<script>`` element)."""
    raw = text.encode("utf-8") if isinstance(text, str) else text
    return base64.b64encode(gzip.compress(raw, compresslevel=level, mtime=0)).decode("ascii")


def unpack(blob: str) -> str:
    """Inverse of `pack` (tests and tools read a saved page's data with it)."""
    return gzip.decompress(base64.b64decode(blob)).decode("utf-8")


@functools.lru_cache(maxsize=1)
def packed_plotlyjs() -> str:
    """plotly.js from the installed plotly package, packed once per process (~1.9 MB instead of 4.8 MB)."""
    from plotly.offline import get_plotlyjs

    return pack(get_plotlyjs(), level=6)


def plotlyjs_cdn_url() -> str:
    """The CDN address of the plotly.js version the installed plotly package bundles."""
    from plotly.offline import get_plotlyjs_version

    return f"https://cdn.plot.ly/plotly-{get_plotlyjs_version()}.min.js"
