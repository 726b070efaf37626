"""`TargetWeights`: a portfolio held at target weights -- rebalanced on given bars, on a calendar, or
when a symbol drifts too far from its target."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from qlm_kernel.errors import ConfigError, StrategyError


class TargetWeights:
    """Target weight of each symbol (fraction of the group's value, negative = short) per bar.

    ``weights``: a DataFrame indexed by time (timestamps of the universe) with symbol columns; NaN
    means "no target on this bar". ``rebalance``: ``None`` trades on the rows given; a pandas
    period alias ("D", "W", "M", "Q", "Y") holds the latest row's weights and trades them on the
    first bar of every period. ``drift``: also trade a symbol back to its target on any bar where
    its weight has moved more than this (absolute, e.g. 0.05 = five points) from it.
    """

    __slots__ = ("drift", "rebalance", "weights")

    def __init__(
        self, weights: pd.DataFrame, *, rebalance: str | None = None, drift: float | None = None
    ) -> None:
        if not isinstance(weights, pd.DataFrame):
            raise StrategyError(
                f"TargetWeights needs a DataFrame of weights (bars x symbols), got {type(weights).__name__}",
                hint="pd.DataFrame({'AAPL': [0.5], 'MSFT': [0.5]}, index=[universe.index[0]])",
                code="BAD_WEIGHTS",
            )
        if drift is not None and not (isinstance(drift, (int, float)) and 0.0 < float(drift) < 10.0):
            raise ConfigError(
                f"drift must be a positive weight difference such as 0.05, got {drift!r}",
                hint="TargetWeights(w, drift=0.05) trades a symbol back once it is 5 points off target",
                code="BAD_SETTING", field="drift", value=str(drift),
            )
        self.weights = weights
        self.rebalance = rebalance
        self.drift = None if drift is None else float(drift)

    def __repr__(self) -> str:
        return (f"TargetWeights({self.weights.shape[1]} symbols, {len(self.weights)} rows, "
                f"rebalance={self.rebalance!r}, drift={self.drift!r})")

    def to_array(self, index: pd.DatetimeIndex, symbols: tuple[str, ...]) -> np.ndarray:
        """(bars x symbols) float64 targets on ``index`` (NaN = none), after the calendar rule."""
        frame = self.weights
        unknown = [c for c in frame.columns if c not in symbols]
        if unknown:
            from qlm_kernel.engine.settings import closest

            near = closest(str(unknown[0]), symbols)
            raise StrategyError(
                f"TargetWeights has column {unknown[0]!r}, which is not in the universe",
                hint=(f"did you mean {near!r}? " if near else "") + f"symbols: {', '.join(symbols)}",
                code="UNKNOWN_SYMBOL", symbol=str(unknown[0]),
            )
        bad = [c for c, dtype in frame.dtypes.items() if not np.issubdtype(dtype, np.number)]
        if bad:
            raise StrategyError(
                f"TargetWeights column {bad[0]!r} is not numeric ({frame.dtypes[bad[0]]})",
                hint="weights are fractions of the portfolio's value: floats, NaN for 'no target'",
                code="BAD_WEIGHTS", symbol=str(bad[0]),
            )
        frame = frame.astype(np.float64)
        if np.isinf(frame.to_numpy()).any():
            raise StrategyError("TargetWeights has an infinite weight",
                                hint="use finite fractions, NaN for none", code="BAD_WEIGHTS")
        times = _utc(frame.index)
        missing = ~times.isin(index)
        if self.rebalance is None and missing.any():
            at = times[np.argmax(missing)]
            raise StrategyError(
                f"TargetWeights has a row at {at}, which is not a bar of the universe",
                hint="index the weights by the universe's timestamps (universe.index), or give "
                     "rebalance='M' (or 'W', 'D', ...) to trade them on each period's first bar",
                code="BAD_WEIGHTS", value=str(at),
            )
        frame = frame.set_axis(times).reindex(columns=list(symbols))
        if self.rebalance is None:
            return np.ascontiguousarray(frame.reindex(index).to_numpy())
        held = frame.sort_index().reindex(index.union(times)).ffill().reindex(index)
        period = _periods(index, self.rebalance)
        first = np.r_[True, period[1:] != period[:-1]]
        out = held.to_numpy().copy()
        out[~first] = np.nan
        return np.ascontiguousarray(out)


def _utc(index: Any) -> pd.DatetimeIndex:
    times = pd.DatetimeIndex(index)
    return times.tz_localize("UTC") if times.tz is None else times.tz_convert("UTC")


def _periods(index: pd.DatetimeIndex, alias: str) -> np.ndarray:
    """The calendar period number of each bar for ``alias`` ("D", "W", "M", "Q", "Y")."""
    codes = {"D": "D", "W": "W", "M": "M", "Q": "Q", "Y": "Y", "A": "Y"}
    key = str(alias).upper()
    if key not in codes:
        raise ConfigError(
            f"rebalance={alias!r} is not a calendar period",
            hint="use one of 'D', 'W', 'M', 'Q', 'Y' (or rebalance=None to trade the rows as given)",
            code="BAD_SETTING", field="rebalance", value=str(alias),
        )
    return index.tz_convert("UTC").tz_localize(None).to_period(codes[key]).asi8
