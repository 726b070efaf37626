"""One trial: params -> signals -> engine kernel -> stats (+ equity sampled for PBO).

`Evaluator` holds what every trial shares (class, frame, settings, sample positions) so a trial costs
only the strategy's signals and one kernel run; it is what threads share and what Dask workers build.

Indicator memo: the evaluator owns one `qlm_kernel.indicators.memo.Memo` per job and installs it around
every trial, in whichever thread runs it, so trials reuse each other's indicators (``sma(close, 50)`` is
computed once per job, not once per trial). The strategies see a read-only copy of the frame
(`frozen_frame`), the memo's rule for keying inputs by address. ``QLM_INDICATOR_MEMO=0`` turns the
memo off (then the frame is not copied either); ``QLM_INDICATOR_MEMO_MB`` sets its bound.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from qlm_kernel.engine.api import price_arrays, simulate
from qlm_kernel.engine.settings import BacktestSettings
from qlm_kernel.engine.stats import STAT_KEYS, summarize
from qlm_kernel.errors import OptimizationError, QLMError, closest, spelled
from qlm_kernel.indicators.memo import frozen_frame, memo_from_env, use_memo
from qlm_kernel.store import trial_key
from qlm_kernel.strategy.run import ohlcv_frame, signal_arrays

EQUITY_POINTS = 1024  # period returns kept per trial for PBO (1025 equity samples)
OBJECTIVE_KEYS = tuple(k for k in STAT_KEYS if k not in ("start", "end"))
LOWER_IS_BETTER = frozenset({"volatility", "max_drawdown_bars", "fees_paid", "rejected_orders"})
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
    "!=": operator.ne,
}


def check_objective(objective: str, maximize: bool | None) -> bool:
    """Validate ``objective`` and return the direction: explicit ``maximize`` wins, else higher is better
    except for `LOWER_IS_BETTER` keys (max_drawdown is negative, so higher = better there too)."""
    if objective not in OBJECTIVE_KEYS:
        near = closest(objective, OBJECTIVE_KEYS)
        raise OptimizationError(
            f"unknown objective {objective!r}",
            hint=(f"did you mean {near!r}? " if near else "")
            + f"use a stats key: {', '.join(OBJECTIVE_KEYS)}",
            code="BAD_OBJECTIVE",
            fixes=spelled("objective", near or "sharpe", lead="e.g. "),
            objective=objective,
            closest=near,
        )
    return bool(maximize) if maximize is not None else objective not in LOWER_IS_BETTER


def check_constraints(constraints: Any) -> None:
    """Reject malformed constraints before any work is done."""
    if constraints is None or callable(constraints):
        return
    if not isinstance(constraints, Mapping):
        raise OptimizationError(
            "constraints must be a dict or a callable(stats) -> bool",
            hint="e.g. constraints={'n_trades': ('>=', 10)}",
            code="BAD_CONSTRAINTS",
        )
    for key, rule in constraints.items():
        ok = key in OBJECTIVE_KEYS and isinstance(rule, (tuple, list)) and len(rule) == 2 and rule[0] in _OPS
        if not ok:
            raise OptimizationError(
                f"bad constraint {key!r}: {rule!r}",
                hint=f"use {{stat: (op, value)}} with op in {list(_OPS)} and stat in STAT_KEYS",
                code="BAD_CONSTRAINTS",
            )


def is_feasible(stats: Mapping[str, Any] | None, objective_value: float | None, constraints: Any) -> bool:
    """A trial counts for 'best' only with a finite objective and every constraint met."""
    if stats is None or objective_value is None or not math.isfinite(objective_value):
        return False
    if constraints is None:
        return True
    if callable(constraints):
        return bool(constraints(dict(stats)))
    for key, (op, bound) in constraints.items():
        value = stats.get(key)
        if value is None or (isinstance(value, float) and math.isnan(value)) or not _OPS[op](value, bound):
            return False
    return True


def _json_value(value: Any) -> Any:
    if isinstance(value, (pd.Timestamp, np.datetime64)):
        return pd.Timestamp(value).isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def sample_positions(n: int, points: int = EQUITY_POINTS) -> np.ndarray:
    """``points + 1`` evenly spaced bar positions (all bars when fewer)."""
    return np.unique(np.linspace(0, n - 1, num=min(n, points + 1)).round().astype(np.int64))


class Evaluator:
    """Runs trials of one strategy class on one frame with fixed settings (thread-safe)."""

    def __init__(
        self,
        cls: type,
        frame: pd.DataFrame,
        settings: Mapping[str, Any],
        fixed: Mapping[str, Any] | None = None,
    ) -> None:
        self.cls = cls
        self.fixed = dict(fixed or {})
        self.memo = memo_from_env()
        self.frame = ohlcv_frame(frame) if self.memo is None else frozen_frame(ohlcv_frame(frame))
        self.settings = BacktestSettings(**dict(settings))
        self.positions = sample_positions(len(self.frame))
        self.close = price_arrays(self.frame)[3]

    def evaluate(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """A trial row: params, trial_key, status ('ok'|'error'), stats (JSON-safe), equity samples, error."""
        with use_memo(self.memo):
            return self._evaluate(params)

    def close_memo(self) -> None:
        """Free the job's cached indicators (the runner calls this when the job ends)."""
        if self.memo is not None:
            self.memo.clear()

    def _evaluate(self, params: Mapping[str, Any]) -> dict[str, Any]:
        params = dict(params)
        row: dict[str, Any] = {"params": params, "trial_key": trial_key(params)}
        try:
            strat = self.cls(**{**self.fixed, **params})
            frame, s = self.frame, self.settings
            equity, _trades, acc = simulate(frame, *signal_arrays(strat, frame, s), s)
        except QLMError as err:
            row.update(status="error", stats=None, equity=None, error=err.to_dict())
            return row
        table = summarize(acc, s.init_cash, frame.index, self.close)
        row["stats"] = {key: _json_value(table[key][0]) for key in STAT_KEYS}
        row["equity"] = equity[self.positions].tolist()  # Python floats, ~0.1 ms less than a loop
        row.update(status="ok", error=None)
        return row

    def evaluate_many(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Several trials in order (a Dask task or one thread's chunk)."""
        return [self.evaluate(p) for p in batch]


class PortfolioEvaluator(Evaluator):
    """Trials of one strategy applied to every symbol of a universe, shared cash (`backtest_portfolio`
    without recording): the portfolio's stats and equity samples, as `Evaluator` gives for one asset."""

    def __init__(
        self, cls: type, universe: Any, settings: Mapping[str, Any], fixed: Mapping[str, Any] | None = None
    ) -> None:
        from qlm_kernel.engine.portfolio_result import benchmark_growth

        self.cls = cls
        self.fixed = dict(fixed or {})
        self.memo = None  # the memo keys inputs by address: per-symbol frames would not share entries
        self.universe = universe
        self.frames = {sym: universe.frame(sym) for sym in universe.symbols}  # read once for every trial
        self.settings = BacktestSettings(**dict(settings))
        self.positions = sample_positions(len(universe))
        self.close = np.array([1.0, benchmark_growth(universe)])  # stats read the first and last only

    def _evaluate(self, params: Mapping[str, Any]) -> dict[str, Any]:
        from qlm_kernel.engine.group_api import simulate_universe
        from qlm_kernel.strategy.portfolio_run import portfolio_signals

        params = dict(params)
        row: dict[str, Any] = {"params": params, "trial_key": trial_key(params)}
        try:
            strat = self.cls(**{**self.fixed, **params})
            s = self.settings
            arrays, _, _ = portfolio_signals(strat, self.universe, s, {}, frames=self.frames)
            equity, _trades, _cols, acc = simulate_universe(self.universe, *arrays, s)
        except QLMError as err:
            row.update(status="error", stats=None, equity=None, error=err.to_dict())
            return row
        table = summarize(acc, s.init_cash, self.universe.index, self.close)
        row["stats"] = {key: _json_value(table[key][0]) for key in STAT_KEYS}
        row["equity"] = equity[self.positions].tolist()
        row.update(status="ok", error=None)
        return row
