"""`Signals`: what a strategy hands to the engine — four boolean arrays plus optional stop arrays.

Validation is strict but cheap: arrays that already are C-contiguous ``np.bool_`` pass through
without a copy (a 1M-bar check costs microseconds), everything else is either converted once
(pandas ``boolean`` without NA, bool lists) or refused with a hint that says how to fix it. Nothing
is coerced silently: a float or int "signal" usually hides a bug (NaN warm-up, 0/1 arithmetic).
"""

from __future__ import annotations

import functools
import os
import sys
from typing import Any

import numpy as np
import pandas as pd

from qlm_kernel.errors import StrategyError

SIGNAL_FIELDS: tuple[str, ...] = ("entry_long", "exit_long", "entry_short", "exit_short")
STOP_FIELDS: tuple[str, ...] = ("sl_stop", "tp_stop", "tsl_stop")

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


class Signals:
    """Entry/exit signals for one backtest plus optional per-bar stops.

    ``entry_long``, ``exit_long``, ``entry_short``, ``exit_short``: bool arrays or Series of the
    data's length (``None`` = never). ``sl_stop``, ``tp_stop``, ``tsl_stop``: stop distances as
    fractions of the entry price (``0.02`` = 2 %), a number or a per-bar float array/Series
    (``NaN`` = no stop on that bar); the engine samples the value at the bar an entry fills, so an
    ATR stop is ``sl_stop = k * atr / close``.

    The file and line where the object was built are kept in ``origin`` so validation errors can
    point at the strategy code that produced them.
    """

    __slots__ = (*SIGNAL_FIELDS, *STOP_FIELDS, "origin")

    def __init__(
        self,
        entry_long: Any = None,
        exit_long: Any = None,
        entry_short: Any = None,
        exit_short: Any = None,
        sl_stop: Any = None,
        tp_stop: Any = None,
        tsl_stop: Any = None,
    ) -> None:
        self.entry_long = entry_long
        self.exit_long = exit_long
        self.entry_short = entry_short
        self.exit_short = exit_short
        self.sl_stop = sl_stop
        self.tp_stop = tp_stop
        self.tsl_stop = tsl_stop
        frame = sys._getframe(1)
        self.origin: tuple[str, int] | None = (frame.f_code.co_filename, frame.f_lineno)

    # -- engine-facing ---------------------------------------------------------------------------

    def to_arrays(
        self, n: int, index: pd.Index | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(entry_long, exit_long, entry_short, exit_short)`` as C-contiguous ``np.bool_`` arrays
        of length ``n``; zero-copy for bool numpy input. Treat them as read-only: they may be views
        of the caller's data, and a missing signal is a shared read-only all-False array.

        ``index``: when given, every Series must carry exactly this index. Raises StrategyError
        (``code="BAD_SIGNALS"``) naming the field, what was expected and what was got.
        """
        el, xl, es, xs = (self._bool(field, n, index) for field in SIGNAL_FIELDS)
        return el, xl, es, xs

    def stop_arrays(self, n: int, index: pd.Index | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(sl_stop, tp_stop, tsl_stop)`` as float64 arrays of length 1 (a number; ``None`` ->
        ``[nan]``) or ``n`` (per bar). Values must be > 0 or NaN (no stop)."""
        sl, tp, tsl = (self._stop(field, n, index) for field in STOP_FIELDS)
        return sl, tp, tsl

    @property
    def has_short(self) -> bool:
        """True when any short-side signal was given."""
        return self.entry_short is not None or self.exit_short is not None

    @property
    def has_stops(self) -> bool:
        """True when any stop was given."""
        return any(getattr(self, f) is not None for f in STOP_FIELDS)

    def replace(self, **changes: Any) -> Signals:
        """A copy with some fields replaced, e.g. ``sig.replace(sl_stop=0.05)``."""
        unknown = set(changes) - set(SIGNAL_FIELDS + STOP_FIELDS)
        if unknown:
            raise StrategyError(
                f"Signals has no field {sorted(unknown)[0]!r}",
                hint=f"fields are {', '.join(SIGNAL_FIELDS + STOP_FIELDS)}",
                code="BAD_SIGNALS",
                field=sorted(unknown)[0],
            )
        values = {f: getattr(self, f) for f in SIGNAL_FIELDS + STOP_FIELDS}
        values.update(changes)
        new = Signals(**values)
        new.origin = self.origin
        return new

    def __repr__(self) -> str:
        parts = [f"{f}={_summary(getattr(self, f))}" for f in SIGNAL_FIELDS + STOP_FIELDS]
        return f"Signals({', '.join(p for p in parts if not p.endswith('=None'))})"

    # -- validation ------------------------------------------------------------------------------

    def _error(self, message: str, hint: str, **context: Any) -> StrategyError:
        if self.origin is not None and not self.origin[0].startswith(_PACKAGE_DIR):
            context.setdefault("file", self.origin[0])
            context.setdefault("line", self.origin[1])
        return StrategyError(message, hint=hint, code="BAD_SIGNALS", **context)

    def _check_length(self, field: str, got: int, n: int) -> None:
        if got != n:
            raise self._error(
                f"Signals.{field} has length {got}, expected {n} (one value per bar)",
                hint="build every signal from the data passed to signals() (same rows, no dropna/slicing)",
                field=field,
                expected=n,
                got=got,
            )

    def _check_index(self, field: str, value: Any, index: pd.Index | None) -> None:
        if index is None or not isinstance(value, pd.Series):
            return
        got = value.index
        if got is index or got.is_(index) or got.equals(index):
            return
        raise self._error(
            f"Signals.{field} is a Series whose index differs from the data's index",
            hint=f"align it first: {field} = {field}.reindex(data.index, fill_value=False)",
            field=field,
            expected_index=_index_summary(index),
            got_index=_index_summary(got),
        )

    def _bool(self, field: str, n: int, index: pd.Index | None) -> np.ndarray:
        value = getattr(self, field)
        if value is None:
            return _all_false(n)
        if isinstance(value, (bool, np.bool_)):
            return np.full(n, bool(value), dtype=np.bool_) if value else _all_false(n)
        if isinstance(value, pd.Series):
            self._check_length(field, len(value), n)
            self._check_index(field, value, index)
            arr = self._series_to_bool(field, value)
        elif isinstance(value, np.ndarray):
            arr = value
        elif isinstance(value, (list, tuple)):
            arr = np.asarray(value)
        else:
            raise self._error(
                f"Signals.{field} must be a bool array or Series, got {type(value).__name__}",
                hint="pass one column: a bool Series (e.g. close > sma) or a 1-D np.bool_ array",
                field=field,
                got_type=type(value).__name__,
            )
        if arr.ndim != 1:
            raise self._error(
                f"Signals.{field} must be 1-D, got shape {arr.shape}",
                hint="pass one column per signal (a 1-D bool array or a Series)",
                field=field,
                got_shape=list(arr.shape),
            )
        self._check_length(field, arr.shape[0], n)
        if arr.dtype != np.bool_:
            raise self._dtype_error(field, arr)
        if not arr.flags.c_contiguous:
            arr = np.ascontiguousarray(arr)
        return arr

    def _series_to_bool(self, field: str, value: pd.Series) -> np.ndarray:
        dtype = value.dtype
        if dtype == np.bool_:
            return value.to_numpy()
        if isinstance(dtype, pd.BooleanDtype):
            if value.hasnans:
                raise self._nan_error(field, str(dtype))
            return value.to_numpy(dtype=np.bool_)
        return value.to_numpy()  # refused by the dtype check with a precise hint

    def _nan_error(self, field: str, dtype: str) -> StrategyError:
        return self._error(
            f"Signals.{field} contains NaN/NA (dtype {dtype}); a signal must be True or False on every bar",
            hint=f"replace missing values: {field}.fillna(False).astype(bool)",
            field=field,
            dtype=dtype,
        )

    def _dtype_error(self, field: str, arr: np.ndarray) -> StrategyError:
        dtype = str(arr.dtype)
        if arr.dtype.kind in "fcO" and _has_nan(arr):
            return self._nan_error(field, dtype)
        if arr.dtype.kind in "iu":
            what = "integers (0/1?)"
        elif arr.dtype.kind == "f":
            what = "floats"
        else:
            what = f"dtype {dtype}"
        return self._error(
            f"Signals.{field} must be boolean, got {what} (dtype {dtype})",
            hint=f"make it a condition (e.g. close > level) or convert: {field}.astype(bool)",
            field=field,
            dtype=dtype,
        )

    def _stop(self, field: str, n: int, index: pd.Index | None) -> np.ndarray:
        value = getattr(self, field)
        if value is None:
            return np.full(1, np.nan)
        if isinstance(value, (bool, np.bool_)):
            raise self._stop_type_error(field, "bool")
        if isinstance(value, (int, float, np.integer, np.floating)):
            arr = np.full(1, float(value))
        else:
            if isinstance(value, pd.Series):
                self._check_length(field, len(value), n)
                self._check_index(field, value, index)
                value = value.to_numpy()
            arr = np.asarray(value)
            if arr.dtype.kind not in "iuf":
                raise self._stop_type_error(field, str(arr.dtype))
            if arr.ndim != 1:
                raise self._error(
                    f"Signals.{field} must be a number or a 1-D array, got shape {arr.shape}",
                    hint="pass one stop value per bar (or a single number)",
                    field=field,
                    got_shape=list(arr.shape),
                )
            self._check_length(field, arr.shape[0], n)
            arr = np.ascontiguousarray(arr, dtype=np.float64)
        bad = arr <= 0.0
        if bad.any():
            at = int(np.argmax(bad))
            raise self._error(
                f"Signals.{field} must be > 0 (a fraction of the entry price) or NaN, got {arr[at]!r}"
                + (f" at bar {at}" if arr.shape[0] > 1 else ""),
                hint=f"use e.g. {field}=0.02 for 2 %; NaN means no stop on that bar",
                field=field,
                bar=at,
                value=float(arr[at]),
            )
        return arr

    def _stop_type_error(self, field: str, dtype: str) -> StrategyError:
        return self._error(
            f"Signals.{field} must be a number or a float array of fractions, got {dtype}",
            hint=f"e.g. {field}=0.02 or {field}=2 * atr / close",
            field=field,
            dtype=dtype,
        )


@functools.lru_cache(maxsize=8)
def _all_false(n: int) -> np.ndarray:
    """A shared read-only all-False array (allocating 1M zeros costs ~30 µs per missing field)."""
    arr = np.zeros(n, dtype=np.bool_)
    arr.setflags(write=False)
    return arr


def _has_nan(arr: np.ndarray) -> bool:
    if arr.dtype.kind in "fc":
        return bool(np.isnan(arr).any())
    return bool(pd.isna(arr).any())


def _summary(value: Any) -> str:
    if value is None:
        return "None"
    if isinstance(value, (bool, int, float, np.generic)):
        return repr(value)
    try:
        arr = np.asarray(value)
        if arr.dtype == np.bool_:
            return f"<{int(arr.sum())}/{arr.size} True>"
        return f"<{arr.dtype} x{arr.size}>"
    except Exception:  # a repr must never fail
        return f"<{type(value).__name__}>"


def _index_summary(index: pd.Index) -> dict[str, Any]:
    return {
        "type": type(index).__name__,
        "length": len(index),
        "first": str(index[0]) if len(index) else None,
        "last": str(index[-1]) if len(index) else None,
    }
