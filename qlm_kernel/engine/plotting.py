"""Plotly charts and the HTML report of a backtest (plotly is imported only when asked for)."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import numpy as np

from qlm_kernel.formatting import stat_rows

if TYPE_CHECKING:
    from qlm_kernel.engine.result import BacktestResult


def decimate(n: int, max_points: int) -> np.ndarray:
    """Indices of an evenly strided subset of ``n`` points (all of them when n <= max_points)."""
    if n <= max_points:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_points).astype(np.int64))


def backtest_figure(result: BacktestResult, *, max_points: int = 5_000) -> Any:
    """Three stacked panels: close with entry/exit markers, equity vs buy-and-hold, drawdown.

    Long series are drawn on an evenly strided subset of bars (trade markers stay exact).
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    data = result.data
    keep = decimate(len(data), max_points)
    x = data.index[keep]
    close = data["close"].to_numpy()
    fig = make_subplots(
        rows=3,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.03,
        row_heights=[0.5, 0.3, 0.2],
        subplot_titles=("Price and trades", "Equity", "Drawdown"),
    )
    fig.add_trace(
        go.Scatter(x=x, y=close[keep], name="close", line={"width": 1, "color": "#555"}), row=1, col=1
    )
    trades = result.trades
    markers = (("long", "triangle-up", "#1a9850"), ("short", "triangle-down", "#d73027"))
    for direction, symbol, color in markers:
        sel = trades[trades["direction"] == direction]
        if len(sel):
            fig.add_trace(
                go.Scatter(
                    x=sel["entry_time"],
                    y=sel["entry_price"],
                    mode="markers",
                    name=f"{direction} entry",
                    marker={"symbol": symbol, "size": 9 if len(trades) <= 300 else 5, "color": color},
                ),
                row=1,
                col=1,
            )
    closed = trades[trades["status"] == "closed"]
    if len(closed):
        fig.add_trace(
            go.Scatter(
                x=closed["exit_time"],
                y=closed["exit_price"],
                mode="markers",
                name="exit",
                marker={"symbol": "x", "size": 8 if len(closed) <= 300 else 4, "color": "#2c7bb6"},
                text=closed["exit_reason"],
                hovertemplate="%{text}: %{y}<extra></extra>",
            ),
            row=1,
            col=1,
        )
    equity = result.equity.to_numpy()
    init = result.settings.init_cash
    fig.add_trace(go.Scatter(x=x, y=equity[keep], name="equity", line={"color": "#2c7bb6"}), row=2, col=1)
    fig.add_trace(
        go.Scatter(
            x=x, y=init * close[keep] / close[0], name="buy & hold", line={"color": "#aaa", "dash": "dot"}
        ),
        row=2,
        col=1,
    )
    dd = result.drawdown.to_numpy()
    fig.add_trace(
        go.Scatter(x=x, y=dd[keep], name="drawdown", fill="tozeroy", line={"color": "#d73027", "width": 1}),
        row=3,
        col=1,
    )
    fig.update_yaxes(tickformat=".0%", row=3, col=1)
    fig.update_layout(
        height=750,
        margin={"l": 50, "r": 20, "t": 40, "b": 30},
        hovermode="x unified",
        title=f"{result.strategy_name} {result.params}",
    )
    return fig


def report_html(result: BacktestResult) -> str:
    """Self-contained HTML: stats table, last trades, and the interactive chart (plotly.js inlined)."""
    fig = backtest_figure(result)
    chart = fig.to_html(full_html=False, include_plotlyjs=True)
    stats_rows = "".join(
        f"<tr><th>{html.escape(label)}</th><td>{html.escape(text)}</td></tr>"
        for label, text in stat_rows(result.stats)
    )
    trades = result.trades.tail(50)
    trade_table = trades.to_html(index=False, float_format=lambda v: f"{v:.6g}", border=0)
    settings = ", ".join(f"{k}={v!r}" for k, v in result.settings.to_dict().items())
    synthetic = " (synthetic data)" if result.data.attrs.get("synthetic") else ""
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>QLM backtest: {html.escape(result.strategy_name)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:24px;color:#222}} table{{border-collapse:collapse}}
th,td{{padding:2px 10px;text-align:left;border-bottom:1px solid #eee;font-size:13px}}</style></head>
<body><h1>{html.escape(result.strategy_name)} {html.escape(str(result.params))}</h1>
<p>{len(result.data)} bars{html.escape(synthetic)}; settings: {html.escape(settings)}</p>
<div style="display:flex;gap:32px;align-items:flex-start"><table>{stats_rows}</table>
<div style="flex:1">{chart}</div></div>
<h2>Last {len(trades)} trades</h2>{trade_table}
</body></html>"""
