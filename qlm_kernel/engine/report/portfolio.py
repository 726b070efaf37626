"""The portfolio report (``PortfolioResult.plot`` / ``report_html``): equity against an equal-weight buy &
hold, drawdown, stacked weights by symbol, cumulative P&L by symbol and the correlation of the symbols'
returns; the page adds the title, warnings, the portfolio stats (the tearsheet's tables), a per-symbol
table and the settings.

Built from the single-asset tearsheet's parts: M4 decimation (`decimate`), the line and layout helpers
and colors (`panels`), buy & hold and performance numbers (`series`), stats, settings and warnings
(`tables`, `html`), compact packing and plotly.js inline/CDN loading (`encode`) and the page's CSS and
script (``static/``), which draw any panels in the data document.

Point budget (what keeps 100 symbols x 100,000 bars a few MB): equity, buy & hold and drawdown are
one line each of at most ``4 x buckets`` points (`DEFAULT_BUCKETS` = 2,000 in the page, ``max_points``
in ``plot()``); the symbol panels (weights, P&L) share `SYMBOL_POINTS` points per panel across their
traces (each between `MIN_TRACE_POINTS` and the lines' own limit); the heat map is symbols x symbols.
"""

from __future__ import annotations

import html
import types
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from qlm_kernel.engine.report import encode, tables
from qlm_kernel.engine.report import html as page
from qlm_kernel.engine.report import series as S
from qlm_kernel.engine.report.decimate import DEFAULT_BUCKETS, m4_indices
from qlm_kernel.engine.report.panels import COLORS, _base_layout, _time_axis, figure, line, times
from qlm_kernel.engine.stats import drawdown
from qlm_kernel.formatting import SYMBOL_COLUMNS, format_stat

if TYPE_CHECKING:
    from qlm_kernel.engine.portfolio_result import PortfolioResult

Spec = dict[str, Any]
e = html.escape

SYMBOL_POINTS = 80_000
"""Points shared by the traces of one symbol panel (weights, P&L): 100 symbols get 800 points each."""
MIN_TRACE_POINTS = 200
"""A symbol's trace keeps at least this many points however many symbols there are."""
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
"""Symbol colors (plotly's default cycle), repeated past ten symbols."""
PANEL_TITLES = {
    "equity": "Equity vs equal-weight buy & hold",
    "drawdown": "Underwater (drawdown from the running peak)",
    "weights": "Weights by symbol (position value / equity; shorts below zero)",
    "pnl": "Cumulative P&L by symbol (realized + open, net of fees)",
    "correlation": "Correlation of the symbols' returns",
}
"""Panel id -> heading; the ids are the page's stable ``data-panel`` names."""


# --- derived series -------------------------------------------------------------------------------------
def symbol_pnl(result: PortfolioResult) -> pd.DataFrame:
    """Each symbol's cumulative P&L at each close (bars x symbols): its position's value plus the
    cumulative cash flow of its orders (sale proceeds less purchases, less fees). Realized and open
    P&L together, so the last row is ``symbol_stats['pnl']`` and each row sums to equity - initial cash."""
    orders = result.orders
    n, m = len(result.data), len(result.symbols)
    cols = orders["symbol"].cat.codes.to_numpy().astype(np.int64)
    units = np.where(orders["side"] == "buy", 1.0, -1.0) * orders["size"].to_numpy()
    flow = -units * orders["price"].to_numpy() - orders["fees"].to_numpy()
    cash = np.bincount(orders["bar"].to_numpy() * m + cols, weights=flow, minlength=n * m)[: n * m]
    pnl = result.values.to_numpy() + np.cumsum(cash.reshape(n, m), axis=0)
    return pd.DataFrame(pnl, index=result.data.index, columns=list(result.symbols))


def benchmark_equity(result: PortfolioResult) -> np.ndarray:
    """The equal-weight buy & hold (``result._close``, an index from 1) scaled to the initial cash."""
    return S.benchmark_equity(result._close, result.settings.init_cash)


def as_single_asset(result: PortfolioResult) -> Any:
    """The portfolio as the tearsheet's tables see one asset: its stats and settings, and its benchmark
    index as the close, so `tables.stats_groups` puts the equal-weight buy & hold beside each stat."""
    close = pd.DataFrame({"close": result._close}, index=result.data.index)
    return types.SimpleNamespace(stats=result.stats, settings=result.settings, data=close)


def trace_points(n_traces: int, limit: int) -> int:
    """Points each of ``n_traces`` symbol traces may keep: a share of `SYMBOL_POINTS`, at least
    `MIN_TRACE_POINTS`, at most ``limit`` (the portfolio lines' own)."""
    share = SYMBOL_POINTS // max(n_traces, 1)
    return int(min(limit, max(MIN_TRACE_POINTS, share)))


def color(j: int) -> str:
    """Symbol ``j``'s color."""
    return PALETTE[j % len(PALETTE)]


# --- traces ---------------------------------------------------------------------------------------------
class Context:
    """What every panel reads, computed once: times, equity, benchmark, weights, P&L by symbol."""

    def __init__(self, result: PortfolioResult, buckets: int = DEFAULT_BUCKETS) -> None:
        self.result = result
        self.buckets = max(1, int(buckets))
        self.t = times(result.data.index)
        self.init = result.settings.init_cash
        self.symbols = list(result.symbols)
        self.equity = result.equity.to_numpy(dtype=float)
        self.bench = benchmark_equity(result)
        self.weights = result.weights.to_numpy(dtype=float)
        self.pnl = symbol_pnl(result).to_numpy()


def equity_traces(c: Context) -> list[dict[str, Any]]:
    """Portfolio equity and the equal-weight buy & hold (each at most ``4 x buckets`` points)."""
    return [
        line("portfolio", c.t, c.equity, c.buckets, line={"color": COLORS["strategy"], "width": 1.5}),
        line(
            "equal-weight buy & hold",
            c.t,
            c.bench,
            c.buckets,
            line={"color": COLORS["benchmark"], "width": 1, "dash": "dot"},
        ),
    ]


def drawdown_traces(c: Context, buckets: int) -> list[dict[str, Any]]:
    """Drawdown of the portfolio (``result.drawdown``) and of the buy & hold."""
    return [
        line(
            "portfolio",
            c.t,
            c.result.drawdown.to_numpy(),
            buckets,
            fill="tozeroy",
            line={"color": COLORS["loss"], "width": 1},
        ),
        line(
            "equal-weight buy & hold",
            c.t,
            drawdown(c.bench, c.init),
            buckets,
            line={"color": COLORS["benchmark"], "width": 1, "dash": "dot"},
        ),
    ]


def _at(name: str, t: np.ndarray, y: np.ndarray, keep: np.ndarray, **style: Any) -> dict[str, Any]:
    """A line trace of ``y`` at the kept bars (float32 values, as `panels.line` ships them)."""
    trace = {"type": "scatter", "mode": "lines", "name": name, "x": t[keep], "y": y[keep].astype(np.float32)}
    trace.update(style)
    return trace


def weight_traces(c: Context) -> list[dict[str, Any]]:
    """Stacked areas of each symbol's weight: longs stack up from zero (stack group ``long``), shorts
    down (``short``, negative), so the top edge is the long exposure, the bottom the short one and
    their sum at a bar is the net weight; a ``net`` line is drawn over them. Every trace keeps the same
    bars (M4 of the gross and of the net weight), so the stacks line up."""
    w = c.weights
    finite = np.where(np.isfinite(w), w, 0.0)
    longs = [j for j in range(w.shape[1]) if np.any(finite[:, j] > 0)]
    shorts = [j for j in range(w.shape[1]) if np.any(finite[:, j] < 0)]
    points = trace_points(len(longs) + len(shorts), 4 * c.buckets)
    b = max(1, points // 8)  # two M4 selections: at most 8 points per bucket
    gross = np.abs(finite).sum(axis=1)
    net = np.where(np.isfinite(w).any(axis=1), finite.sum(axis=1), np.nan)
    keep = np.union1d(m4_indices(gross, b), m4_indices(net, b))
    out = []
    for group, members, part in (("long", longs, np.maximum), ("short", shorts, np.minimum)):
        for j in members:
            sym = c.symbols[j]
            y = np.where(np.isfinite(w[:, j]), part(w[:, j], 0.0), np.nan)
            out.append(
                _at(
                    sym if group == "long" else f"{sym} (short)",
                    c.t,
                    y,
                    keep,
                    stackgroup=group,
                    legendgroup=sym,
                    showlegend=group == "long" or j not in longs,
                    line={"color": color(j), "width": 0.5},
                    meta=sym,
                    hovertemplate="%{meta}: %{y:.1%}<extra>" + group + "</extra>",
                )
            )
    out.append(
        _at(
            "net",
            c.t,
            net,
            keep,
            line={"color": "#222", "width": 1},
            hovertemplate="net %{y:.1%}<extra></extra>",
        )
    )
    return out


def pnl_traces(c: Context) -> list[dict[str, Any]]:
    """One line per symbol of `symbol_pnl` (each M4-decimated on its own, within the symbol budget)."""
    m = len(c.symbols)
    points = trace_points(m, 4 * c.buckets)
    return [
        line(
            sym,
            c.t,
            c.pnl[:, j],
            max(1, points // 4),
            line={"color": color(j), "width": 1},
            legendgroup=sym,
            meta=sym,
            hovertemplate="%{meta}: %{y:,.2f}<extra></extra>",
        )
        for j, sym in enumerate(c.symbols)
    ]


def correlation_trace(result: PortfolioResult) -> dict[str, Any]:
    """Heat map of ``result.correlation`` (symbols x symbols, -1 red to +1 blue); values written in
    the cells up to 12 symbols."""
    corr = result.correlation
    names = [str(s) for s in corr.columns]
    return {
        "type": "heatmap",
        "name": "correlation",
        "x": names,
        "y": names,
        "z": corr.to_numpy(dtype=float),
        "zmin": -1.0,
        "zmax": 1.0,
        "zmid": 0.0,
        "colorscale": [[0, "#d73027"], [0.5, "#f7f7f7"], [1, "#2c6fbb"]],
        "texttemplate": "%{z:.2f}" if len(names) <= 12 else "",
        "hovertemplate": "%{y} / %{x}: %{z:.3f}<extra></extra>",
        "xgap": 1 if len(names) <= 40 else 0,
        "ygap": 1 if len(names) <= 40 else 0,
        "colorbar": {"thickness": 12, "len": 0.9},
    }


# --- the page's panels and plot()'s figure ----------------------------------------------------------------
def panel_specs(result: PortfolioResult, buckets: int = DEFAULT_BUCKETS) -> dict[str, Spec]:
    """Each panel's spec (``{"data", "layout"}``), keyed by panel id in page order."""
    c = Context(result, buckets)
    many = len(c.symbols) > 12
    pct = {"tickformat": ".0%"}
    m = len(c.symbols)
    side = int(min(900, max(320, 80 + 24 * m)))
    corr_layout = _base_layout(
        side,
        hovermode="closest",
        xaxis={"type": "category", "tickangle": -45 if m > 8 else 0, "showticklabels": m <= 60},
        yaxis={"type": "category", "autorange": "reversed", "scaleanchor": "x", "showticklabels": m <= 60},
        width=side + 120,
    )
    return {
        "equity": {
            "data": equity_traces(c),
            "layout": _base_layout(380, xaxis=_time_axis(), yaxis={"title": "value"}),
        },
        "drawdown": {
            "data": drawdown_traces(c, max(1, c.buckets // 2)),
            "layout": _base_layout(240, xaxis=_time_axis(), yaxis={**pct, "title": "drawdown"}),
        },
        "weights": {
            "data": weight_traces(c),
            "layout": _base_layout(
                340,
                xaxis=_time_axis(),
                yaxis={**pct, "title": "weight"},
                hovermode="closest" if many else "x",
            ),
        },
        "pnl": {
            "data": pnl_traces(c),
            "layout": _base_layout(
                380, xaxis=_time_axis(), yaxis={"title": "P&L"}, hovermode="closest" if many else "x"
            ),
        },
        "correlation": {"data": [correlation_trace(result)], "layout": corr_layout},
    }


def combined_spec(result: PortfolioResult, buckets: int) -> Spec:
    """``res.plot()``'s one figure: equity vs buy & hold, drawdown, weights and P&L by symbol on one
    time axis, the correlation heat map (square cells) below them."""
    c = Context(result, buckets)
    rows = (
        ("y", equity_traces(c), [0.74, 1.0], "equity", {}),
        ("y2", drawdown_traces(c, c.buckets), [0.64, 0.72], "drawdown", {"tickformat": ".0%"}),
        ("y3", weight_traces(c), [0.46, 0.62], "weight", {"tickformat": ".0%"}),
        ("y4", pnl_traces(c), [0.28, 0.44], "P&L", {}),
    )
    data: list[dict[str, Any]] = []
    layout = _base_layout(1300, hovermode="closest", title={"text": "", "x": 0.01})
    layout["xaxis"] = _time_axis(anchor="y4", domain=[0, 1])
    for trace, label in zip(rows[1][1], ("drawdown", "buy & hold drawdown"), strict=True):
        trace["name"] = label
    for trace in rows[2][1]:  # the symbols' legend entries are the P&L lines (same legend groups)
        trace["showlegend"] = trace["name"] == "net"
    for axis, traces, domain, name, extra in rows:
        for trace in traces:
            trace.update(xaxis="x", yaxis=axis)
        data += traces
        key = "yaxis" + axis[1:]
        layout[key] = {"domain": domain, "title": {"text": name, "font": {"size": 11}}, **extra}
    heat = correlation_trace(result)
    heat.update(
        xaxis="x2",
        yaxis="y5",
        colorbar={"thickness": 12, "len": 0.22, "y": 0.11, "x": 0.72, "xanchor": "left"},
    )
    data.append(heat)
    layout["xaxis2"] = {"domain": [0.3, 0.7], "anchor": "y5", "type": "category", "tickangle": -45}
    layout["yaxis5"] = {
        "domain": [0.0, 0.22],
        "anchor": "x2",
        "type": "category",
        "autorange": "reversed",
        "scaleanchor": "x2",
        "constrain": "domain",
        "title": {"text": "correlation", "font": {"size": 11}},
    }
    return {"data": data, "layout": layout}


def title(result: PortfolioResult) -> str:
    """``SmaCross(fast=10, slow=50) on demo (4 symbols)``."""
    m = len(result.symbols)
    return f"{tables.title(result)} on {result.data.name} ({m} symbol{'s' if m != 1 else ''})"


def portfolio_figure(result: PortfolioResult, *, max_points: int = 8_000) -> Any:
    """``res.plot()``: one plotly figure; each portfolio line keeps at most ``max_points`` points and the
    symbol panels share `SYMBOL_POINTS` each (see the module's point budget)."""
    spec = combined_spec(result, max(1, max_points // 4))
    spec["layout"]["title"]["text"] = title(result)
    return figure(spec)


# --- the HTML page ---------------------------------------------------------------------------------------
def facts(result: PortfolioResult) -> list[tuple[str, str]]:
    """``[(label, text), ...]``: universe, symbols, then the tearsheet's data facts (bars, span, bar
    size); synthetic when every member's source is the synthetic generator."""
    symbols = list(result.symbols)
    shown = ", ".join(symbols[:12]) + (f", … ({len(symbols) - 12} more)" if len(symbols) > 12 else "")
    out = [("Universe", str(result.data.name)), ("Symbols", f"{len(symbols)}: {shown}")]
    sources = [str(s or "") for s in result.data.attrs.get("sources", {}).values()]
    synthetic = bool(sources) and all("synthetic" in s for s in sources)
    for label, text in tables.data_facts(result):
        if label == "Data":
            text = "synthetic (generated, not a market)" if synthetic else text
        out.append((label, text))
    return out


def header_html(result: PortfolioResult) -> str:
    """Title and the facts line."""
    line_ = "".join(
        f'<span class="fact" data-fact="{e(label)}"><b>{e(label)}</b> {e(text)}</span>'
        for label, text in facts(result)
    )
    return f'<header><h1 id="qlm-title">{e(title(result))}</h1><div class="facts">{line_}</div></header>'


def symbol_rows(result: PortfolioResult) -> list[dict[str, Any]]:
    """The per-symbol table as ``{symbol, cells: [(key, text)]}`` rows, `SYMBOL_COLUMNS` formatted
    as the stats are (`formatting.format_stat`)."""
    frame = result.symbol_stats
    rows = []
    for sym, row in frame.iterrows():
        cells = [(key, format_stat(kind, tables._plain(row[key]))) for key, _, kind in SYMBOL_COLUMNS]
        rows.append({"symbol": str(sym), "cells": cells})
    return rows


def symbols_html(result: PortfolioResult) -> str:
    """The per-symbol table, with an "All" row (sums; the portfolio's turnover)."""
    head = "".join(f"<th>{e(label)}</th>" for _, label, _ in SYMBOL_COLUMNS)
    body = "".join(
        f'<tr data-symbol="{e(row["symbol"])}"><th>{e(row["symbol"])}</th>'
        + "".join(f'<td data-col="{key}">{e(text)}</td>' for key, text in row["cells"])
        + "</tr>"
        for row in symbol_rows(result)
    )
    frame = result.symbol_stats
    total = {
        "n_trades": format_stat("int", int(frame["n_trades"].sum())),
        "n_closed": format_stat("int", int(frame["n_closed"].sum())),
        "pnl": format_stat("money", float(frame["pnl"].sum())),
        "fees": format_stat("money", float(frame["fees"].sum())),
        "contribution": format_stat("pct", float(frame["contribution"].sum())),
        "turnover": format_stat("ratio", float(result.turnover)),
    }
    foot = "".join(f'<td data-col="{key}">{e(total.get(key, ""))}</td>' for key, _, _ in SYMBOL_COLUMNS)
    return (
        '<section class="panel" id="panel-symbols" data-panel="symbols"><h2>By symbol '
        "<small>(P&amp;L of closed and open trades, net of fees; contribution = P&amp;L / initial cash; "
        "turnover = traded value / average equity)</small></h2>"
        '<div class="trades-scroll"><table id="qlm-symbols" class="trades">'
        f"<thead><tr><th>Symbol</th>{head}</tr></thead><tbody>{body}</tbody>"
        f'<tfoot><tr data-symbol=""><th>All</th>{foot}</tr></tfoot></table></div></section>'
    )


def panels_html(names: list[str]) -> str:
    """An empty, titled container per chart panel (the page's script draws into ``.chart``)."""
    return "".join(
        f'<section class="panel" id="panel-{name}" data-panel="{name}"><h2>{e(PANEL_TITLES[name])}</h2>'
        f'<div class="chart" id="chart-{name}" data-panel="{name}"></div></section>'
        for name in names
    )


def portfolio_html(
    result: PortfolioResult, *, plotlyjs: page.PlotlyJS = "inline", buckets: int = DEFAULT_BUCKETS
) -> str:
    """The portfolio report as one HTML page; ``plotlyjs="cdn"`` loads plotly.js from cdn.plot.ly
    instead of inlining it (a much smaller file that needs the network to draw its charts)."""
    if plotlyjs not in ("inline", "cdn"):
        from qlm_kernel.errors import ConfigError

        raise ConfigError(
            f"plotlyjs={plotlyjs!r} is not 'inline' or 'cdn'",
            hint="use plotlyjs='inline' "
            "(self-contained, works offline) or plotlyjs='cdn' (small file, needs the network)",
        )
    specs = panel_specs(result, buckets)
    data = encode.pack(encode.payload(specs, {}))
    if plotlyjs == "inline":
        loader = (
            f'<script type="application/octet-stream" id="qlm-plotlyjs" data-encoding="gzip+base64">'
            f"{encode.packed_plotlyjs()}</script>"
        )
    else:
        loader = f'<script src="{e(encode.plotlyjs_cdn_url())}" charset="utf-8"></script>'
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="QLM portfolio report"><title>{e(title(result))} · QLM portfolio</title>
<style>{page.static_text("tearsheet.css")}</style></head>
<body data-plotlyjs="{plotlyjs}">
{header_html(result)}
{page.warnings_html(result)}
<section class="summary">{page.stats_html(as_single_asset(result))}{page.settings_html(result)}</section>
{symbols_html(result)}
{panels_html(list(specs))}
<footer>QLM portfolio report. Buy &amp; hold: the initial cash split equally across the symbols, each
share invested at its symbol's first close, no costs. Charts draw at most four points per pixel-wide
bucket (first, last, lowest, highest), so spikes stay; the symbol panels share {SYMBOL_POINTS:,} points
each.</footer>
<script type="application/octet-stream" id="qlm-data" data-encoding="gzip+base64">{data}</script>
{loader}
<script>{page.static_text("tearsheet.js")}</script>
</body></html>
"""
