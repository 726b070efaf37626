"""Input/output plumbing for the indicator wrappers: Series or array in, the same kind out.

Kept separate from the kernels so the numba code stays pure arrays and the wrappers stay one-liners.
"""

from __future__ import annotations

import numbers
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from qlm_kernel.arrays import read_only
from qlm_kernel.errors import ConfigError

ArrayOrSeries = TypeVar("ArrayOrSeries", np.ndarray, pd.Series)


def as_float_array(x: Any, indicator: str, arg: str = "x") -> np.ndarray:
    """A read-only, C-contiguous float64 1-D view of ``x`` (no copy when it already is one)."""
    if isinstance(x, pd.Series):
        if x.dtype == np.float64:
            arr = x.to_numpy()
        else:
            try:
                arr = x.to_numpy(dtype=np.float64, na_value=np.nan)
            except (TypeError, ValueError) as exc:
                raise _not_numeric(x.dtype, indicator, arg) from exc
    elif isinstance(x, pd.DataFrame):
        raise ConfigError(
            f"{indicator}() needs one column, got a DataFrame for {arg!r}",
            hint=f"pass a single column, e.g. {indicator}(data['close'], ...)",
            indicator=indicator,
            argument=arg,
            columns=[str(c) for c in x.columns],
        )
    else:
        arr = np.asarray(x)
        if arr.dtype != np.float64:
            if arr.dtype.kind not in "biuf":
                raise _not_numeric(arr.dtype, indicator, arg)
            arr = arr.astype(np.float64)
    if arr.ndim != 1:
        raise ConfigError(
            f"{indicator}() needs a 1-D series for {arg!r}, got shape {arr.shape}",
            hint="pass one column (a Series or a 1-D array); call the indicator per column",
            indicator=indicator,
            argument=arg,
            shape=list(arr.shape),
        )
    if not arr.flags.c_contiguous:
        arr = np.ascontiguousarray(arr)
    return read_only(arr)  # one compiled kernel per indicator, whatever the input's flags


def _not_numeric(dtype: Any, indicator: str, arg: str) -> ConfigError:
    return ConfigError(
        f"{indicator}() needs numbers for {arg!r}, got dtype {dtype}",
        hint="convert first, e.g. pd.to_numeric(series) or series.astype(float)",
        indicator=indicator,
        argument=arg,
        dtype=str(dtype),
    )


def check_period(value: Any, indicator: str, arg: str = "period") -> int:
    """``value`` as an int >= 1, else ConfigError (bools and floats are refused, not truncated)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)) and value >= 1:
        return int(value)
    raise ConfigError(
        f"{indicator}() {arg} must be an integer >= 1, got {value!r}",
        hint=f"pass a whole number of bars, e.g. {arg}=14"
        + (f" (int({value!r}) = {int(value)})" if _is_integral_float(value) else ""),
        indicator=indicator,
        argument=arg,
        value=repr(value),
    )


def check_number(value: Any, indicator: str, arg: str, *, positive: bool = False) -> float:
    """``value`` as a finite float (``> 0`` when ``positive``), else ConfigError."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
    if ok:
        value_f = float(value)
        if np.isfinite(value_f) and (value_f > 0 or not positive):
            return value_f
    need = "a finite number > 0" if positive else "a finite number"
    raise ConfigError(
        f"{indicator}() {arg} must be {need}, got {value!r}",
        hint=f"pass e.g. {arg}=2.0",
        indicator=indicator,
        argument=arg,
        value=repr(value),
    )


def _is_integral_float(value: Any) -> bool:
    return isinstance(value, float) and value.is_integer() and value >= 1


def wrap_like(template: Any, values: np.ndarray) -> Any:
    """``values`` as a Series with the template's index and name when the template is a Series."""
    if isinstance(template, pd.Series):
        return pd.Series(values, index=template.index, name=template.name, copy=False)
    return values


def check_same_length(indicator: str, **arrays: np.ndarray) -> None:
    """ConfigError unless every array has the same length (names each argument's length)."""
    lengths = {k: int(v.shape[0]) for k, v in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ConfigError(
            f"{indicator}() inputs differ in length: {lengths}",
            hint="pass columns of the same DataFrame (or align them first)",
            indicator=indicator,
            lengths=lengths,
        )


def check_same_index(indicator: str, *series: Any) -> None:
    """ConfigError when two Series inputs have different indexes (pandas would silently align)."""
    indexes = [s.index for s in series if isinstance(s, pd.Series)]
    first = indexes[0] if indexes else None
    for other in indexes[1:]:
        if other is not first and not other.equals(first):
            raise ConfigError(
                f"{indicator}() inputs have different indexes",
                hint="align them first, e.g. b = b.reindex(a.index)",
                indicator=indicator,
            )
