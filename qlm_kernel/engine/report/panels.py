"""The tearsheet's charts as plain plotly specs (``{"data": [...], "layout": {...}}`` with numpy arrays),
one per panel; `figure` wraps a spec in a plotly Figure, `backtest_figure` is ``res.plot()``.

Specs stay plain dicts so the HTML page serializes them compactly itself (no plotly import, no
validation of long arrays); time axes are naive-UTC ``datetime64`` arrays of the kept bars.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from qlm_kernel.engine.report import series as S
from qlm_kernel.engine.report.decimate import DEFAULT_BUCKETS, m4_indices
from qlm_kernel.engine.stats import drawdown

if TYPE_CHECKING:
    from qlm_kernel.engine.result import BacktestResult

Spec = dict[str, Any]
MARKER_LIMIT = 300
"""Up to this many trades each gets its own markers; beyond it markers are aggregated per bucket."""
MARKER_BUCKETS = 400
COLORS = {
    "strategy": "#2c6fbb",
    "benchmark": "#9a9a9a",
    "long": "#1a9850",
    "short": "#d73027",
    "exit": "#444",
    "loss": "#d73027",
    "gain": "#1a9850",
    "price": "#555",
}
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
PANEL_TITLES = {
    "equity": "Equity vs buy & hold",
    "drawdown": "Underwater (drawdown from the running peak)",
    "monthly": "Monthly and yearly returns",
    "rolling": "Rolling Sharpe and volatility",
    "distribution": "Return distributions",
    "exposure": "Exposure (position value / equity)",
    "price": "Price and trades",
}
"""Panel id -> heading; the ids are the page's stable ``data-panel`` names."""


def times(index: pd.DatetimeIndex) -> np.ndarray:
    """The index as naive-UTC datetime64[ns] (what the specs carry as x)."""
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    return index.to_numpy(dtype="datetime64[ns]")


def line(name: str, t: np.ndarray, y: np.ndarray, buckets: int, **style: Any) -> dict[str, Any]:
    """A scatter line of ``y`` over times ``t``, M4-decimated to ``buckets``; float32 values."""
    keep = m4_indices(y, buckets)
    trace = {
        "type": "scatter",
        "mode": "lines",
        "name": name,
        "x": t[keep],
        "y": np.asarray(y, dtype=float)[keep].astype(np.float32),
    }
    trace.update(style)
    return trace


def _time_axis(**extra: Any) -> dict[str, Any]:
    return {"type": "date", **extra}


def _base_layout(height: int, **extra: Any) -> dict[str, Any]:
    layout = {
        "height": height,
        "margin": {"l": 60, "r": 20, "t": 30, "b": 30},
        "hovermode": "x unified",
        "legend": {"orientation": "h", "y": 1.08, "x": 0},
        "template": "plotly_white",
    }
    layout.update(extra)
    return layout


class Context:
    """What every panel reads, computed once: times, equity, buy & hold, bars per year."""

    def __init__(self, result: BacktestResult, buckets: int = DEFAULT_BUCKETS) -> None:
        self.result = result
        self.buckets = buckets
        self.index = result.data.index
        self.t = times(self.index)
        self.init = result.settings.init_cash
        self.close = result.data["close"].to_numpy(dtype=float)
        self.equity = result.equity.to_numpy(dtype=float)
        self.bench = S.benchmark_equity(self.close, self.init)
        bpy = result.stats.get("bars_per_year", np.nan)
        self.bpy = float(bpy) if bpy is not None else np.nan


def equity_panel(c: Context) -> Spec:
    """Equity against buy & hold, with buttons for a linear or log y axis."""
    data = [
        line("strategy", c.t, c.equity, c.buckets, line={"color": COLORS["strategy"], "width": 1.5}),
        line(
            "buy & hold",
            c.t,
            c.bench,
            c.buckets,
            line={"color": COLORS["benchmark"], "width": 1, "dash": "dot"},
        ),
    ]
    buttons = [
        {"label": "linear", "method": "relayout", "args": [{"yaxis.type": "linear"}]},
        {"label": "log", "method": "relayout", "args": [{"yaxis.type": "log"}]},
    ]
    menu = {
        "type": "buttons",
        "direction": "right",
        "buttons": buttons,
        "x": 1,
        "xanchor": "right",
        "y": 1.12,
        "yanchor": "bottom",
        "showactive": True,
        "pad": {"r": 0, "t": 0},
    }
    return {
        "data": data,
        "layout": _base_layout(380, xaxis=_time_axis(), yaxis={"title": "value"}, updatemenus=[menu]),
    }


def drawdown_panel(c: Context) -> Spec:
    """Drawdown from the running peak for the strategy and for buy & hold."""
    dd = drawdown(c.equity, c.init)
    bdd = drawdown(c.bench, c.init)
    b = c.buckets // 2  # a secondary panel: half the resolution of the equity and price charts
    data = [
        line("strategy", c.t, dd, b, fill="tozeroy", line={"color": COLORS["loss"], "width": 1}),
        line("buy & hold", c.t, bdd, b, line={"color": COLORS["benchmark"], "width": 1, "dash": "dot"}),
    ]
    return {
        "data": data,
        "layout": _base_layout(260, xaxis=_time_axis(), yaxis={"tickformat": ".0%", "title": "drawdown"}),
    }


def monthly_panel(c: Context) -> Spec:
    """Heat map of monthly returns (years x months) with each year's return beside it."""
    eq = c.result.equity
    monthly = S.period_returns(eq, c.init, "ME")
    yearly = S.period_returns(eq, c.init, "YE")
    byearly = S.period_returns(pd.Series(c.bench, index=c.index), c.init, "YE")
    table = S.monthly_table(monthly)
    years = [str(y) for y in table.index]
    z = table.to_numpy(dtype=float)
    text = [["" if not np.isfinite(v) else f"{v * 100:.1f}" for v in row] for row in z]
    finite = z[np.isfinite(z)]
    lim = float(np.quantile(np.abs(finite), 0.98)) if len(finite) else 0.01
    data = [
        {
            "type": "heatmap",
            "name": "monthly",
            "x": list(MONTHS),
            "y": years,
            "z": z.astype(np.float32),
            "text": text,
            "texttemplate": "%{text}" if len(years) <= 30 else "",
            "zmid": 0,
            "zmin": -lim,
            "zmax": lim,
            "colorscale": [[0, "#d73027"], [0.5, "#f7f7f7"], [1, "#1a9850"]],
            "showscale": False,
            "xaxis": "x",
            "yaxis": "y",
            "hovertemplate": "%{y} %{x}: %{z:.2%}<extra></extra>",
            "xgap": 1,
            "ygap": 1,
        },
        _year_bars(
            "year", yearly, np.where(yearly >= 0, COLORS["gain"], COLORS["loss"]).tolist(), "strategy"
        ),
        _year_bars("year, buy & hold", byearly, COLORS["benchmark"], "buy & hold"),
    ]
    row_px = 22 if len(years) <= 25 else max(6, 600 // len(years))  # decades of data stay on a screen
    height = max(220, 60 + row_px * len(years))
    layout = _base_layout(
        height,
        hovermode="closest",
        showlegend=False,
        barmode="group",
        xaxis={"domain": [0, 0.72], "side": "top", "fixedrange": True},
        xaxis2={
            "domain": [0.76, 1],
            "tickformat": ".0%",
            "side": "top",
            "fixedrange": True,
            "title": {"text": "year (grey: buy & hold)", "font": {"size": 11}},
        },
        yaxis={"autorange": "reversed", "type": "category", "fixedrange": True},
    )
    layout["margin"] = {"l": 50, "r": 20, "t": 50, "b": 10}
    return {"data": data, "layout": layout}


def _year_bars(name: str, yearly: pd.Series, color: str | list[str], label: str) -> dict[str, Any]:
    """Horizontal bars of yearly returns beside the monthly heat map (same rows: the years)."""
    return {
        "type": "bar",
        "orientation": "h",
        "name": name,
        "y": [str(d.year) for d in yearly.index],
        "x": yearly.to_numpy(dtype=np.float32),
        "xaxis": "x2",
        "yaxis": "y",
        "marker": {"color": color},
        "hovertemplate": "%{y}: %{x:.2%}<extra>" + label + "</extra>",
    }


def rolling_panel(c: Context) -> Spec:
    """Rolling Sharpe (top) and annualized volatility (bottom) over about six months of bars."""
    n = len(c.equity)
    window, label = S.rolling_window(c.bpy, n)
    returns = S.strategy_returns(c.result)  # ends at a liquidation, as the engine's statistics do
    bench_r = pd.Series(c.bench, index=c.index).pct_change()
    sharpe, vol = S.rolling_risk(returns, window, c.bpy)
    bsharpe, bvol = S.rolling_risk(bench_r, window, c.bpy)
    style = {
        "strategy": {"color": COLORS["strategy"], "width": 1},
        "benchmark": {"color": COLORS["benchmark"], "width": 1, "dash": "dot"},
    }
    data = []
    for name, values, key, axis in (
        ("Sharpe", sharpe, "strategy", "y"),
        ("Sharpe, buy & hold", bsharpe, "benchmark", "y"),
        ("volatility", vol, "strategy", "y2"),
        ("volatility, buy & hold", bvol, "benchmark", "y2"),
    ):
        tr = line(name, c.t, values.to_numpy(), c.buckets // 4, line=style[key])
        tr.update(xaxis="x", yaxis=axis)
        data.append(tr)
    layout = _base_layout(
        380,
        xaxis=_time_axis(anchor="y2"),
        yaxis={"domain": [0.55, 1], "title": "Sharpe"},
        yaxis2={"domain": [0, 0.45], "title": "volatility", "tickformat": ".0%"},
        title={"text": f"window {label}", "font": {"size": 12}, "x": 0.01, "y": 0.99},
    )
    if n < 3 * window:
        layout["annotations"] = [
            {
                "text": "short data: few full windows",
                "xref": "paper",
                "yref": "paper",
                "x": 1,
                "y": 1,
                "showarrow": False,
                "font": {"size": 11, "color": "#888"},
            }
        ]
    return {"data": data, "layout": layout, "meta": {"window": window, "label": label}}


def distribution_panel(c: Context) -> Spec:
    """Histograms of per-bar returns (left) and of closed trades' returns (right), shipped as bins."""
    r = S.strategy_returns(c.result).to_numpy()[1:]
    r = r[np.isfinite(r)]
    r = r[r != 0] if np.any(r != 0) else r  # flat bars (out of the market) would drown the shape
    centers, counts = S.histogram(r)
    trades = c.result.trades
    tret = trades.loc[trades["status"] == "closed", "return"].to_numpy(dtype=float)
    tc, tn = S.histogram(tret, bins=40)
    data = [
        {
            "type": "bar",
            "name": "bars",
            "x": centers.astype(np.float32),
            "y": counts.astype(np.int32),
            "marker": {"color": COLORS["strategy"]},
            "xaxis": "x",
            "yaxis": "y",
            "hovertemplate": "%{x:.3%}: %{y} bars<extra></extra>",
        },
        {
            "type": "bar",
            "name": "trades",
            "x": tc.astype(np.float32),
            "y": tn.astype(np.int32),
            "xaxis": "x2",
            "yaxis": "y2",
            "marker": {"color": np.where(tc >= 0, COLORS["gain"], COLORS["loss"]).tolist()},
            "hovertemplate": "%{x:.2%}: %{y} trades<extra></extra>",
        },
    ]
    layout = _base_layout(
        300,
        hovermode="closest",
        showlegend=False,
        bargap=0.05,
        xaxis={
            "domain": [0, 0.47],
            "tickformat": ".1%",
            "title": {"text": "per-bar return (bars in the market)", "font": {"size": 11}},
        },
        xaxis2={
            "domain": [0.53, 1],
            "tickformat": ".0%",
            "title": {"text": f"trade return ({len(tret):,} closed trades)", "font": {"size": 11}},
        },
        yaxis={"title": "bars"},
        yaxis2={"anchor": "x2", "title": "trades"},
    )
    layout["margin"] = {"l": 60, "r": 20, "t": 20, "b": 45}
    return {"data": data, "layout": layout}


def exposure_panel(c: Context) -> Spec:
    """Position value as a fraction of equity over time (negative when short)."""
    ex = S.exposure(c.result).to_numpy()
    data = [
        line(
            "exposure",
            c.t,
            ex,
            c.buckets // 2,
            fill="tozeroy",
            line={"color": COLORS["strategy"], "width": 1},
        )
    ]
    return {
        "data": data,
        "layout": _base_layout(220, xaxis=_time_axis(), yaxis={"tickformat": ".0%"}, showlegend=False),
    }


def trade_marker_traces(c: Context, xaxis: str = "x", yaxis: str = "y") -> list[dict[str, Any]]:
    """Entry and exit markers: one per trade up to `MARKER_LIMIT`, else one per bucket with its count.

    Always three traces (long entries, short entries, exits), empty when there are none, so a chart
    that updates in place keeps its trace layout.
    """
    tr = c.result.trades
    n = len(tr)
    number = np.arange(1, n + 1)
    out = []
    specs = (("long entry", "triangle-up", COLORS["long"]), ("short entry", "triangle-down", COLORS["short"]))
    for (name, symbol, color), direction in zip(specs, ("long", "short"), strict=True):
        sel = (tr["direction"] == direction).to_numpy()
        out.append(
            _markers(
                c,
                name,
                tr["entry_bar"].to_numpy()[sel],
                tr["entry_price"].to_numpy()[sel],
                number[sel],
                tr["pnl"].to_numpy()[sel],
                symbol,
                color,
                n > MARKER_LIMIT,
            )
        )
    closed = (tr["status"] == "closed").to_numpy()
    out.append(
        _markers(
            c,
            "exit",
            tr["exit_bar"].to_numpy()[closed],
            tr["exit_price"].to_numpy()[closed],
            number[closed],
            tr["pnl"].to_numpy()[closed],
            "x-thin",
            COLORS["exit"],
            n > MARKER_LIMIT,
        )
    )
    for trace in out:
        trace.update(xaxis=xaxis, yaxis=yaxis)
    return out


def _markers(
    c: Context,
    name: str,
    bars: np.ndarray,
    prices: np.ndarray,
    number: np.ndarray,
    pnl: np.ndarray,
    symbol: str,
    color: str,
    aggregate: bool,
) -> dict[str, Any]:
    """One marker trace; aggregated: one marker per bucket at its first trade, hover says how many."""
    base = {
        "type": "scatter",
        "mode": "markers",
        "name": name,
        "marker": {"symbol": symbol, "color": color, "size": 9, "line": {"width": 1, "color": color}},
    }
    if not aggregate:
        text = [f"#{k} P&L {p:,.2f}" for k, p in zip(number.tolist(), pnl.tolist(), strict=True)]
        return {
            **base,
            "x": c.t[bars],
            "y": prices.astype(np.float32),
            "text": text,
            "hovertemplate": "%{text} @ %{y}<extra>" + name + "</extra>",
        }
    if not len(bars):
        return {**base, "x": c.t[:0], "y": np.zeros(0, np.float32)}
    bucket = np.minimum((bars * MARKER_BUCKETS) // max(len(c.t), 1), MARKER_BUCKETS - 1)
    first = np.flatnonzero(np.diff(bucket, prepend=-1) != 0)
    counts = np.diff(np.append(first, len(bars)))
    pnl_sum = np.add.reduceat(pnl, first)
    last = np.append(first[1:], len(bars)) - 1
    text = [
        f"{k} trade{'s' if k != 1 else ''} #{a}-#{b}, P&L {p:,.2f}" if k > 1 else f"#{a} P&L {p:,.2f}"
        for k, a, b, p in zip(
            counts.tolist(), number[first].tolist(), number[last].tolist(), pnl_sum.tolist(), strict=True
        )
    ]
    size = np.clip(5 + 2.5 * np.log2(counts), 5, 18).round(1)
    return {
        **base,
        "x": c.t[bars[first]],
        "y": prices[first].astype(np.float32),
        "text": text,
        "marker": {**base["marker"], "size": size.astype(np.float32)},
        "hovertemplate": "%{text}<extra>" + name + "</extra>",
    }


def price_panel(c: Context) -> Spec:
    """Close (M4-decimated) with the trades' entry and exit markers."""
    data = [line("close", c.t, c.close, c.buckets, line={"color": COLORS["price"], "width": 1})]
    data += trade_marker_traces(c)
    note = "" if len(c.result.trades) <= MARKER_LIMIT else " (markers grouped; hover for trade numbers)"
    return {
        "data": data,
        "layout": _base_layout(
            420,
            xaxis=_time_axis(),
            yaxis={"title": "price"},
            hovermode="closest",
            title={"text": note, "font": {"size": 11}, "x": 0.99, "xanchor": "right"},
        ),
    }


PANELS = {
    "equity": equity_panel,
    "drawdown": drawdown_panel,
    "monthly": monthly_panel,
    "rolling": rolling_panel,
    "distribution": distribution_panel,
    "exposure": exposure_panel,
    "price": price_panel,
}
"""Panel id -> builder, in page order."""


def panel_specs(result: BacktestResult, buckets: int = DEFAULT_BUCKETS) -> dict[str, Spec]:
    """Every panel's spec for ``result``, keyed by panel id (page order)."""
    ctx = Context(result, buckets)
    return {name: build(ctx) for name, build in PANELS.items()}


def combined_spec(result: BacktestResult, buckets: int) -> Spec:
    """``res.plot()``'s one chart: price with trades, equity vs buy & hold, drawdown, exposure."""
    c = Context(result, buckets)
    data = [line("close", c.t, c.close, buckets, line={"color": COLORS["price"], "width": 1})]
    data += trade_marker_traces(c)
    data += [
        line("equity", c.t, c.equity, buckets, line={"color": COLORS["strategy"], "width": 1.5}, yaxis="y2"),
        line(
            "buy & hold",
            c.t,
            c.bench,
            buckets,
            yaxis="y2",
            line={"color": COLORS["benchmark"], "width": 1, "dash": "dot"},
        ),
        line(
            "drawdown",
            c.t,
            drawdown(c.equity, c.init),
            buckets,
            yaxis="y3",
            fill="tozeroy",
            line={"color": COLORS["loss"], "width": 1},
        ),
        line(
            "exposure",
            c.t,
            S.exposure(result).to_numpy(),
            buckets,
            yaxis="y4",
            fill="tozeroy",
            line={"color": COLORS["strategy"], "width": 1},
        ),
    ]
    for trace in data:
        trace.setdefault("xaxis", "x")
    domains = {
        "yaxis": ([0.55, 1.0], "price"),
        "yaxis2": ([0.28, 0.53], "equity"),
        "yaxis3": ([0.13, 0.26], "drawdown"),
        "yaxis4": ([0.0, 0.11], "exposure"),
    }
    layout = _base_layout(780, xaxis=_time_axis(anchor="y4"), title={"text": "", "x": 0.01})
    for key, (domain, title) in domains.items():
        layout[key] = {"domain": domain, "title": {"text": title, "font": {"size": 11}}}
    layout["yaxis3"]["tickformat"] = layout["yaxis4"]["tickformat"] = ".0%"
    return {"data": data, "layout": layout}


def figure(spec: Spec) -> Any:
    """A plotly ``go.Figure`` of a spec (plotly imported here, only when a figure is asked for)."""
    import plotly.graph_objects as go

    return go.Figure({"data": spec["data"], "layout": spec["layout"]})


def backtest_figure(result: BacktestResult, *, max_points: int = 8_000) -> Any:
    """``res.plot()``: price and trades, equity vs buy & hold, drawdown and exposure on one time axis."""
    from qlm_kernel.engine.report.tables import title

    spec = combined_spec(result, max(1, max_points // 4))
    spec["layout"]["title"]["text"] = title(result)
    return figure(spec)
