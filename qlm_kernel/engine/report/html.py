"""The tearsheet page: header, warnings, grouped stats and settings, chart panels and all trades, in one
self-contained HTML file (plotly.js inlined once, packed; or loaded from its CDN)."""

from __future__ import annotations

import functools
import html
from importlib import resources
from typing import TYPE_CHECKING, Any, Literal

from qlm_kernel.engine.report import encode, tables
from qlm_kernel.engine.report.decimate import DEFAULT_BUCKETS
from qlm_kernel.engine.report.panels import PANEL_TITLES, panel_specs

if TYPE_CHECKING:
    from qlm_kernel.engine.result import BacktestResult

PlotlyJS = Literal["inline", "cdn"]
e = html.escape


@functools.lru_cache(maxsize=4)
def static_text(name: str) -> str:
    """A file of the package's ``report/static`` folder (the page's CSS and JS)."""
    return resources.files("qlm_kernel.engine.report").joinpath("static", name).read_text(encoding="utf-8")


def header_html(result: BacktestResult) -> str:
    """Title and the data facts line."""
    facts = "".join(
        f'<span class="fact" data-fact="{e(label)}"><b>{e(label)}</b> {e(text)}</span>'
        for label, text in tables.data_facts(result)
    )
    return (
        f'<header><h1 id="qlm-title">{e(tables.title(result))}</h1><div class="facts">{facts}</div></header>'
    )


def warnings_html(result: BacktestResult) -> str:
    """The warnings banner (empty when there is nothing to be wary of)."""
    rows = tables.warnings(result)
    if not rows:
        return ""
    items = "".join(
        f'<li data-code="{e(w["code"])}"><span class="code">{e(w["code"])}</span> '
        f'<span class="message">{e(w["message"])}</span>'
        f'<div class="hint">Why it matters: {e(w["hint"])}</div></li>'
        for w in rows
    )
    return f'<section id="qlm-warnings" class="warnings" role="alert"><ul>{items}</ul></section>'


def stats_html(result: BacktestResult) -> str:
    """One small table per stats group; buy & hold beside the strategy where it means something."""
    out = []
    for group in tables.stats_groups(result):
        bench = any(row["benchmark"] is not None for row in group["rows"])
        head = "<thead><tr><th></th><td>Strategy</td><td>Buy &amp; hold</td></tr></thead>" if bench else ""
        body = "".join(
            f'<tr data-stat="{e(row["key"])}"><th>{e(row["label"])}</th><td>{e(row["text"])}</td>'
            + (f'<td class="bench">{e(row["benchmark"] or "")}</td>' if bench else "")
            + "</tr>"
            for row in group["rows"]
        )
        out.append(
            f'<table class="stats" data-group="{e(group["group"])}"><caption>{e(group["group"])}</caption>'
            f"{head}<tbody>{body}</tbody></table>"
        )
    return f'<div id="qlm-stats" class="stats-grid">{"".join(out)}</div>'


def settings_html(result: BacktestResult) -> str:
    """All settings, the ones changed from their defaults highlighted."""
    body = "".join(
        f'<tr data-setting="{e(row["key"])}" class="{"changed" if row["changed"] else "default"}">'
        f"<th>{e(row['label'])}</th><td>{e(row['text'])}</td></tr>"
        for row in tables.settings_rows(result.settings)
    )
    return (
        f'<table id="qlm-settings" class="stats settings"><caption>Settings '
        f"<small>(changed from default in bold)</small></caption><tbody>{body}</tbody></table>"
    )


def panels_html(names: list[str], specs: dict[str, Any]) -> str:
    """An empty, titled container per chart panel (the page's script draws into ``.chart``)."""
    out = []
    for name in names:
        note = ""
        if name == "rolling":
            note = f" <small>(window {e(specs[name]['meta']['label'])})</small>"
        out.append(
            f'<section class="panel" id="panel-{name}" data-panel="{name}"><h2>{e(PANEL_TITLES[name])}{note}'
            f'</h2><div class="chart" id="chart-{name}" data-panel="{name}"></div></section>'
        )
    return "".join(out)


def trades_html(n: int) -> str:
    """The trades table's frame; the page's script fills it page by page from the data document."""
    return (
        '<section class="panel" id="panel-trades" data-panel="trades">'
        f"<h2>Trades <small>({n:,}, all of them; "
        'times UTC)</small></h2><div class="trades-controls"></div><div class="trades-scroll">'
        '<table id="qlm-trades" class="trades"><thead></thead><tbody></tbody></table></div></section>'
    )


def report_html(
    result: BacktestResult, *, plotlyjs: PlotlyJS = "inline", buckets: int = DEFAULT_BUCKETS
) -> str:
    """The tearsheet as one HTML page; ``plotlyjs="cdn"`` loads plotly.js from cdn.plot.ly instead of
    inlining it (a much smaller file that needs the network to draw its charts)."""
    if plotlyjs not in ("inline", "cdn"):
        from qlm_kernel.errors import ConfigError

        raise ConfigError(
            f"plotlyjs={plotlyjs!r} is not 'inline' or 'cdn'",
            hint="use plotlyjs='inline' "
            "(self-contained, works offline) or plotlyjs='cdn' (small file, needs the network)",
        )
    specs = panel_specs(result, buckets)
    names = list(specs)
    charts = {name: {"data": spec["data"], "layout": spec["layout"]} for name, spec in specs.items()}
    trades = tables.trades_payload(result)
    data = encode.pack(encode.payload(charts, {"trades": trades}))
    if plotlyjs == "inline":
        loader = (
            f'<script type="application/octet-stream" id="qlm-plotlyjs" data-encoding="gzip+base64">'
            f"{encode.packed_plotlyjs()}</script>"
        )
    else:
        loader = f'<script src="{e(encode.plotlyjs_cdn_url())}" charset="utf-8"></script>'
    title = tables.title(result)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="QLM tearsheet"><title>{e(title)} · QLM tearsheet</title>
<style>{static_text("tearsheet.css")}</style></head>
<body data-plotlyjs="{plotlyjs}">
{header_html(result)}
{warnings_html(result)}
<section class="summary">{stats_html(result)}{settings_html(result)}</section>
{panels_html(names, specs)}
{trades_html(trades["n"])}
<footer>QLM tearsheet. Buy &amp; hold: the initial cash in the asset at the first close, no costs.
Charts draw at most four points per pixel-wide bucket (first, last, lowest, highest), so spikes stay.</footer>
<script type="application/octet-stream" id="qlm-data" data-encoding="gzip+base64">{data}</script>
{loader}
<script>{static_text("tearsheet.js")}</script>
</body></html>
"""
