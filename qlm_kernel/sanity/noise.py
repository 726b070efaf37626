"""White-noise test (the brief's "sanity check"): does optimizing on structureless data do as well?

The same search is re-run on ``n`` randomized versions of the data that keep each bar's size of
move (volatility, fat tails, the intrabar shape) but destroy any order in time: the bars' close-to-
close log returns are permuted, each bar keeping its own open/high/low relative to its close. If
the best objective found on real data is rarely reached on such noise, the edge is unlikely to be
an artefact of searching; the p-value is (1 + #noise >= real) / (n + 1).

On a universe (portfolio mode) each randomized copy keeps what happens together together: one random
ordering of the universe's union bars is drawn per copy, and every symbol's moves are reordered by it
within the symbol's own bars (`permuted_universe`). Symbols trading on the same timestamps get the same
permutation, so their co-movement (correlation, common shocks) survives and only the order in time is
destroyed; each symbol keeps its own calendar (first bar, gaps, number of bars) and candle shapes. The
search on every copy is the portfolio optimization (one parameter set, shared cash).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from qlm_kernel.errors import ConfigError
from qlm_kernel.sanity.check_report import SanityReport


def permuted_ohlcv(df: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """A randomized copy of ``df``: bars' close-to-close moves shuffled, each with its own candle shape.

    The first close is kept; highs stay >= max(open, close) and lows <= min(open, close) because
    each bar's open/high/low move with its close.
    """
    return _reordered(df, rng.permutation(len(df) - 1))


def permuted_universe(universe: Any, rng: np.random.Generator) -> Any:
    """A randomized copy of a `Universe`: one random key per union bar; each symbol's close-to-close
    moves (with their candle shapes) are reordered by the keys of the bars they end on, so symbols on
    the same timestamps get the same permutation (module docstring)."""
    from qlm_kernel.data.universe import Universe

    keys = rng.random(len(universe))
    frames = {}
    for j, sym in enumerate(universe.symbols):
        rows = np.flatnonzero(universe.has_bar[:, j])
        frame = universe.frame(sym)
        order = np.argsort(keys[rows[1:]], kind="stable")
        frames[sym] = _reordered(frame, order) if len(frame) > 1 else frame
    return Universe(universe.name, frames, source="permuted (white-noise test)")


def _reordered(df: pd.DataFrame, order: np.ndarray) -> pd.DataFrame:
    """``df`` with its bars' moves 1..n-1 taken in ``order`` (see `permuted_ohlcv`)."""
    close = df["close"].to_numpy()
    log_ret = np.diff(np.log(close))
    rel = {col: np.log(df[col].to_numpy()[1:] / close[1:]) for col in ("open", "high", "low")}
    new_close = np.empty_like(close)
    new_close[0] = close[0]
    new_close[1:] = close[0] * np.exp(np.cumsum(log_ret[order]))
    out = df.copy()
    out["close"] = new_close
    for col, values in rel.items():
        shaped = out[col].to_numpy().copy()
        shaped[1:] = new_close[1:] * np.exp(values[order])
        out[col] = shaped
    out["volume"] = np.concatenate(([df["volume"].iloc[0]], df["volume"].to_numpy()[1:][order]))
    out.attrs = {**df.attrs, "synthetic": True, "source": "permuted (white-noise test)"}
    return out


def white_noise(
    strategy: Any,
    data: Any = None,
    space: dict[str, Any] | None = None,
    *,
    dataset: str | None = None,
    sample: dict[str, Any] | None = None,
    n: int = 100,
    method: str = "grid",
    objective: str = "sharpe",
    maximize: bool = True,
    seed: int = 0,
    alpha: float = 0.05,
    optimize_kwargs: dict[str, Any] | None = None,
    **settings: Any,
) -> SanityReport:
    """Optimize on the data and on ``n`` permuted copies; pass when noise rarely matches the real best.

    ``passed`` when the p-value is below ``alpha`` (default 5%). Extra optimizer arguments go in
    ``optimize_kwargs`` (e.g. ``{"n_trials": 50}`` for a random search); settings (fees, ...) are
    passed to every backtest. Cost: ``n + 1`` optimizations. ``data`` may be a universe (a `Universe`,
    a dict symbol -> frame, a stored universe's name): portfolio optimizations on `permuted_universe`
    copies (module docstring).
    """
    from qlm_kernel.optimization import optimize
    from qlm_kernel.sanity.universes import universe_of
    from qlm_kernel.workspace import resolve_data

    if not isinstance(n, int) or n < 1:
        raise ConfigError("white_noise: n must be a positive integer", hint="e.g. n=100", value=n)
    universe = universe_of(data, dataset) if sample is None and not isinstance(data, pd.DataFrame) else None
    frame: Any = universe
    permute: Any = permuted_universe
    if universe is None:
        frame, _ = resolve_data(data, dataset=dataset, sample=sample)  # as qlm.backtest names data
        permute = permuted_ohlcv
    extra = dict(optimize_kwargs or {})

    def best(df: Any) -> float:
        res = optimize(
            strategy,
            df,
            space=space,
            method=method,
            objective=objective,
            maximize=maximize,
            record=False,
            seed=seed,
            **extra,
            **settings,
        )
        value = res.best_value
        return float("nan") if value is None else float(value)

    real = best(frame)
    rng = np.random.default_rng(seed)
    noise = np.array([best(permute(frame, rng)) for _ in range(n)])
    valid = noise[np.isfinite(noise)]
    as_good = int(np.sum(valid >= real)) if maximize else int(np.sum(valid <= real))
    p_value = (1 + as_good) / (len(valid) + 1) if np.isfinite(real) else 1.0
    passed = bool(np.isfinite(real) and p_value < alpha)
    if not np.isfinite(real):
        verdict = "The search found no feasible result on the real data, so there is nothing to test."
    elif passed:
        verdict = (
            f"Real data beats the noise: only {as_good} of {len(valid)} randomized series reached the "
            f"best {objective} found on the real data (p = {p_value:.3f} < {alpha})."
        )
    elif as_good == 0:
        verdict = (
            f"No randomized series reached the real best {objective}, but {len(valid)} runs cannot show "
            f"p < {alpha}: use n >= {math.ceil(1 / alpha)}."
        )
    else:
        verdict = (
            f"Noise does as well: {as_good} of {len(valid)} randomized series reached the best "
            f"{objective} of the real data (p = {p_value:.3f} >= {alpha}); the optimum is likely an "
            "artefact of searching."
        )
    return SanityReport(
        name="white_noise",
        passed=passed,
        verdict=verdict,
        numbers={
            "p_value": p_value,
            "real_best": real,
            "noise_median": float(np.median(valid)) if len(valid) else float("nan"),
            "noise_p95": float(np.quantile(valid, 0.95)) if len(valid) else float("nan"),
            "n": n,
            "as_good": as_good,
            "alpha": alpha,
        },
        details={"noise_best": noise.tolist(), "objective": objective, "method": method, "seed": seed,
                 **({"universe": universe.name, "symbols": list(universe.symbols), "portfolio": True}
                    if universe is not None else {})},
    )
