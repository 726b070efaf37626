"""Bootstrap bands for one backtest: how much of its Sharpe, drawdown, CAGR and final value is luck of
the order the market dealt.

Two resampling schemes (``method``):

- ``"block"``: a stationary block bootstrap (Politis & Romano 1994, `arch.bootstrap.StationaryBootstrap`)
  of the per-bar equity returns. Blocks of geometric random length (mean ``block_size``) are drawn
  with replacement and glued, wrapping around the end, into series as long as the original; each is
  compounded from the initial cash into an equity path. It keeps the return distribution and
  the short-range dependence (volatility clusters, autocorrelation within a block); it destroys
  dependence longer than a block and the link to the calendar. Default ``block_size``:
  `arch.bootstrap.optimal_block_length` (Politis & White 2004 with Patton, Politis & White 2009) of
  the returns, its ``stationary`` column rounded up, clipped to [1, bars / 2]; ``bars ** (1/3)`` when
  that estimate is not finite (e.g. a flat series).
- ``"trades"``: trade-order resampling. The bar returns are cut after every closed trade's exit bar
  into segments (each closed trade's bars with the flat bars before it); the segments are shuffled
  (a permutation, no replacement) and the bars after the last exit stay at the end. It keeps every
  trade's own bar-by-bar path, the set of trades and the time in the market; it destroys the order of
  the trades (winning and losing streaks, clustering in regimes). The same bar returns are compounded
  in another order, so the final value, total return, CAGR and Sharpe are *identical* in every path
  (a product and a mean do not depend on order) and only the path-dependent statistics (maximum
  drawdown, the path itself) vary: the bands answer "how deep could the drawdown have been with the
  same trades in another order?".

Statistics use the definitions of `qlm_kernel.engine.stats` (and its `drawdown` and `ratios`
functions): the result's own per-bar returns (``result.returns``, the series the engine's statistics
use), compounded from the initial cash into equity paths; ``sharpe`` = mean / std (ddof=1) *
sqrt(bars_per_year of the result);
``max_drawdown`` = min of equity / running peak - 1 with the peak starting at the initial cash;
``cagr`` = (final / initial cash) ** (1 / span in years) - 1 over the data's calendar span;
``final_value`` = the path's last equity. The observed column is computed by the same code on the
unshuffled returns and equals ``result.stats``.
"""

from __future__ import annotations

import html
import math
from typing import Any

import numpy as np
import pandas as pd

from qlm_kernel.engine.stats import drawdown, ratios, span_years
from qlm_kernel.errors import ConfigError, DataError
from qlm_kernel.jsonsafe import json_safe

METHODS = ("block", "trades")
STATS = ("sharpe", "max_drawdown", "cagr", "final_value")
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
MAX_PLOT_POINTS = 2_000  # bars kept per path for the bands and `paths`
N_PATHS = 200  # paths kept in `BootstrapResult.paths`
_CHUNK_ELEMENTS = 4_000_000  # resamples x bars per vectorized step (~32 MB per float array)


class BootstrapResult:
    """Bootstrap distribution of a backtest's headline statistics.

    ``table``: DataFrame, one row per statistic (sharpe, max_drawdown, cagr, final_value), columns
    observed, low, median, high (low/high: the central ``confidence`` interval of the resamples);
    ``paths``: up to 200 resampled equity paths (rows: up to 2,000 evenly spaced bars, columns: path
    number); ``bands``: the 5/25/50/75/95% quantiles of all resampled equity paths at those bars;
    ``equity``: the real equity at those bars; ``samples``: every resample's statistics (n rows).
    """

    def __init__(
        self,
        *,
        table: pd.DataFrame,
        samples: pd.DataFrame,
        paths: pd.DataFrame,
        bands: pd.DataFrame,
        equity: pd.Series,
        method: str,
        n: int,
        seed: int | None,
        block_size: float | None,
        confidence: float,
        n_segments: int | None,
    ) -> None:
        self.table = table
        self.samples = samples
        self.paths = paths
        self.bands = bands
        self.equity = equity
        self.method = method
        self.n = n
        self.seed = seed
        self.block_size = block_size
        self.confidence = confidence
        self.n_segments = n_segments

    def to_dict(self, *, include_bands: bool = False) -> dict[str, Any]:
        """JSON-safe summary: settings and ``table`` as {stat: {observed, low, median, high}} (and the
        quantile bands over time with ``include_bands``)."""
        out: dict[str, Any] = {
            "method": self.method,
            "n": self.n,
            "seed": self.seed,
            "block_size": self.block_size,
            "n_segments": self.n_segments,
            "confidence": self.confidence,
            "table": {stat: dict(row) for stat, row in self.table.iterrows()},
        }
        if include_bands:
            out["bands"] = {
                "time": [str(t) for t in self.bands.index],
                **{col: self.bands[col].tolist() for col in self.bands.columns},
                "equity": self.equity.tolist(),
            }
        return json_safe(out)

    def plot(self) -> Any:
        """Plotly fan chart: the 5-95% and 25-75% bands of the resampled equity shaded, their median
        and the real equity drawn (traces: p95, 5-95%, p75, 25-75%, median, equity)."""
        import plotly.graph_objects as go

        x = self.bands.index
        b = self.bands
        line = {"width": 0}
        fig = go.Figure(
            [
                go.Scatter(x=x, y=b["p95"], name="p95", line=line, showlegend=False, hoverinfo="skip"),
                go.Scatter(
                    x=x, y=b["p05"], name="5-95%", line=line, fill="tonexty",
                    fillcolor="rgba(31,119,180,0.15)",
                ),
                go.Scatter(x=x, y=b["p75"], name="p75", line=line, showlegend=False, hoverinfo="skip"),
                go.Scatter(
                    x=x, y=b["p25"], name="25-75%", line=line, fill="tonexty",
                    fillcolor="rgba(31,119,180,0.35)",
                ),
                go.Scatter(x=x, y=b["p50"], name="median", line={"color": "rgb(31,119,180)", "dash": "dash"}),
                go.Scatter(x=x, y=self.equity, name="equity", line={"color": "black", "width": 1.5}),
            ]
        )
        what = "block bootstrap of returns" if self.method == "block" else "trade order shuffled"
        fig.update_layout(
            title=f"Equity: {self.n:,} resamples ({what})", xaxis_title="time", yaxis_title="equity",
            hovermode="x unified",
        )
        return fig

    def _repr_html_(self) -> str:
        head = (
            f"<b>Bootstrap</b> {html.escape(self.method)} · {self.n:,} resamples · "
            f"{self.confidence:.0%} intervals"
            + (f" · mean block {self.block_size:g} bars" if self.block_size else "")
        )
        return f"<div>{head}{self.table.to_html(float_format=lambda v: f'{v:.6g}')}</div>"

    def __repr__(self) -> str:
        return f"<BootstrapResult {self.method} n={self.n} confidence={self.confidence:g}>\n{self.table}"


def bootstrap(
    result: Any,
    n: int = 1000,
    seed: int | None = None,
    method: str = "block",
    block_size: float | None = None,
    confidence: float = 0.9,
) -> BootstrapResult:
    """Resample a backtest ``n`` times and give confidence intervals for its headline statistics.

    ``result``: a `BacktestResult` or `PortfolioResult`. ``method``: ``"block"`` (stationary block
    bootstrap of the bar returns) or ``"trades"`` (the closed trades shuffled in order); see the module
    docstring for what each keeps and destroys. ``block_size``: mean block length in bars for
    ``"block"`` (default: arch's optimal block length, see above). ``confidence``: the central
    interval reported as low/high (0.9 -> the 5% and 95% quantiles). Same ``seed``, same numbers.
    """
    if method not in METHODS:
        raise ConfigError(
            f"unknown bootstrap method {method!r}",
            hint="use method='block' (stationary block bootstrap of returns) or 'trades' (trade order)",
            code="BAD_METHOD",
            value=method,
        )
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ConfigError(
            f"bootstrap needs n >= 2 resamples, got {n!r}",
            hint="n=1000 is the usual choice",
            code="BAD_N",
            value=repr(n),
        )
    if not (isinstance(confidence, (int, float)) and 0.0 < confidence < 1.0):
        raise ConfigError(
            f"confidence must be between 0 and 1, got {confidence!r}",
            hint="e.g. confidence=0.9 for the 5%-95% interval",
            code="BAD_CONFIDENCE",
            value=repr(confidence),
        )
    equity = result.equity
    eq = equity.to_numpy(dtype=float)
    init = float(result.settings.init_cash)
    stats = result.stats
    if len(eq) < 3:
        raise DataError(
            f"bootstrap needs at least 3 bars, the backtest has {len(eq)}",
            hint="run the backtest on more data",
            code="TOO_FEW_BARS",
            bars=len(eq),
        )
    if int(stats["n_trades"]) == 0:
        raise DataError(
            "bootstrap: the backtest never traded, so there is nothing to resample",
            hint="check the strategy's signals on this data (res.trades is empty)",
            code="NO_TRADES",
        )
    if bool(stats["liquidated"]) or not (eq > 0).all():
        raise DataError(
            "bootstrap: the account was ruined (liquidated), so its returns after ruin are undefined",
            hint="bootstrap a run that survives (smaller size or leverage)",
            code="LIQUIDATED",
        )
    rets = result.returns.to_numpy(dtype=float)  # the one series the engine's statistics use
    if not np.isfinite(rets).all():
        raise DataError(
            "bootstrap: the backtest has undefined returns (the equity was not positive)",
            hint="bootstrap a run that survives (smaller size or leverage)",
            code="LIQUIDATED",
        )
    bpy = float(stats["bars_per_year"])
    years = span_years(equity.index)
    rng = np.random.default_rng(seed)
    positions = _plot_positions(len(eq))

    n_segments: int | None = None
    used_block: float | None = None
    if method == "block":
        used_block = _block_size(rets, block_size)
        indices = _block_indices(rets.size, used_block, int(n), rng)
    else:
        segments, tail = _segments(result, len(eq))
        n_segments = len(segments)
        indices = _trade_indices(segments, tail, int(n), rng)

    observed = _stats(rets[:, None], init, years, bpy, positions)[0][0]
    parts = []
    sampled = []
    for chunk in indices:
        st, at = _stats(rets[chunk.T], init, years, bpy, positions)
        parts.append(st)
        sampled.append(at)
    samples = pd.DataFrame(np.concatenate(parts, axis=0), columns=list(STATS))
    samples.index.name = "sample"
    at_points = np.concatenate(sampled, axis=1)  # plot points x n

    lo_q, hi_q = (1.0 - confidence) / 2.0, 1.0 - (1.0 - confidence) / 2.0
    with np.errstate(invalid="ignore"):
        q = np.nanquantile(samples.to_numpy(), [lo_q, 0.5, hi_q], axis=0)
    table = pd.DataFrame(
        {"observed": observed, "low": q[0], "median": q[1], "high": q[2]}, index=pd.Index(STATS, name="stat")
    )
    times = equity.index[positions]
    bands = pd.DataFrame(
        np.quantile(at_points, QUANTILES, axis=1).T,
        index=times,
        columns=[f"p{round(100 * x):02d}" for x in QUANTILES],
    )
    paths = pd.DataFrame(at_points[:, :N_PATHS], index=times)
    paths.columns.name = "path"
    return BootstrapResult(
        table=table,
        samples=samples,
        paths=paths,
        bands=bands,
        equity=pd.Series(eq[positions], index=times, name="equity"),
        method=method,
        n=int(n),
        seed=seed,
        block_size=used_block,
        confidence=float(confidence),
        n_segments=n_segments,
    )


def _stats(
    returns: np.ndarray, init: float, years: float, bpy: float, positions: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(paths x 4 statistics, plot points x paths equity) of bars x paths returns compounded from the
    initial cash, with `stats.drawdown` and `stats.ratios`."""
    paths = returns.shape[1]
    equity = np.cumprod(1.0 + returns, axis=0)
    equity *= init
    max_dd = drawdown(equity, init).min(axis=0)
    mean = returns.mean(axis=0)
    std = returns.std(axis=0, ddof=1)
    final = equity[-1]
    rat = ratios(mean, std, np.full(paths, np.nan), final / init, years, max_dd, bpy)
    table = np.column_stack([rat["sharpe"], max_dd, rat["cagr"], final])
    return table, equity[positions]


def _plot_positions(n_bars: int) -> np.ndarray:
    """Up to `MAX_PLOT_POINTS` evenly spaced bar positions, first and last included."""
    if n_bars <= MAX_PLOT_POINTS:
        return np.arange(n_bars)
    return np.unique(np.linspace(0, n_bars - 1, MAX_PLOT_POINTS).round().astype(np.int64))


def _block_size(returns: np.ndarray, block_size: float | None) -> float:
    m = returns.size
    if block_size is not None:
        if isinstance(block_size, bool) or not isinstance(block_size, (int, float)) or not (
            1 <= block_size <= m
        ):
            raise ConfigError(
                f"block_size must be a number of bars between 1 and {m}, got {block_size!r}",
                hint="leave block_size=None for arch's optimal block length",
                code="BAD_BLOCK_SIZE",
                value=repr(block_size),
            )
        return float(block_size)
    return float(default_block_length(returns))


def default_block_length(series: np.ndarray) -> int:
    """The mean block length a stationary bootstrap of ``series`` uses when none is given: arch's
    optimal length (Politis & White 2004, with Patton et al.'s correction) rounded up, ``m ** (1/3)``
    when that is undefined (a constant series), kept within ``[1, m // 2]``. Shared by `bootstrap` and
    the reality checks so both resample a series the same way."""
    m = series.size
    value = math.nan
    if np.ptp(series) > 0:
        from arch.bootstrap import optimal_block_length

        value = float(optimal_block_length(series)["stationary"].iloc[0])
    if not math.isfinite(value) or value <= 0:
        value = m ** (1.0 / 3.0)
    return int(min(max(1, math.ceil(value)), max(1, m // 2)))


def _chunk_size(m: int, n: int) -> int:
    return max(1, min(n, _CHUNK_ELEMENTS // max(1, m)))


def _block_indices(m: int, block_size: float, n: int, rng: np.random.Generator) -> Any:
    """Chunks of (paths x m) resampled positions from `arch.bootstrap.StationaryBootstrap`."""
    from arch.bootstrap import StationaryBootstrap

    bs = StationaryBootstrap(block_size, np.arange(m), seed=rng)
    step = _chunk_size(m, n)
    buf: list[np.ndarray] = []
    for (pos, _kw) in bs.bootstrap(n):
        buf.append(np.asarray(pos[0], dtype=np.int64))
        if len(buf) == step:
            yield np.stack(buf)
            buf = []
    if buf:
        yield np.stack(buf)


def _segments(result: Any, n_bars: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Bar positions of each closed trade's segment (the bars after the previous exit up to its own
    exit bar) and of the tail after the last exit."""
    trades = result.trades
    exits = trades["exit_bar"].to_numpy(dtype=np.int64)
    cuts = np.unique(exits[(exits >= 0) & (exits <= n_bars - 1)])
    if cuts.size < 2:
        raise DataError(
            f"trade-order resampling needs at least 2 closed trades, the backtest has {cuts.size}",
            hint="use method='block' (a block bootstrap of the returns) or run on more data",
            code="TOO_FEW_TRADES",
            n_closed=int(cuts.size),
        )
    bounds = np.concatenate(([-1], cuts)) + 1  # segment k = bars (cut_{k-1}, cut_k]
    segments = [np.arange(bounds[k], bounds[k + 1]) for k in range(cuts.size)]
    tail = np.arange(cuts[-1] + 1, n_bars)
    return segments, tail


def _trade_indices(segments: list[np.ndarray], tail: np.ndarray, n: int, rng: np.random.Generator) -> Any:
    m = sum(s.size for s in segments) + tail.size
    step = _chunk_size(m, n)
    for lo in range(0, n, step):
        rows = [
            np.concatenate([*(segments[k] for k in rng.permutation(len(segments))), tail])
            for _ in range(min(step, n - lo))
        ]
        yield np.stack(rows)
