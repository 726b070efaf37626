"""The tearsheet's words and tables: title, data line, settings, grouped stats with buy & hold beside
them, warnings and the compact trades table (plain data here; `html` renders it)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from qlm_kernel.engine import layout as L
from qlm_kernel.engine.report.encode import tick_unit
from qlm_kernel.engine.report.series import PERF_KEYS, benchmark_stats
from qlm_kernel.engine.settings import BacktestSettings
from qlm_kernel.engine.stats import span_years
from qlm_kernel.formatting import call_text, format_stat, stat_groups, stat_label, stat_text, warning_rows

if TYPE_CHECKING:
    from qlm_kernel.engine.result import BacktestResult

SETTING_LABELS: dict[str, tuple[str, str]] = {  # setting -> (label, format kind)
    "fill": ("Fill", "text"),
    "fees": ("Fees (of traded value)", "pct"),
    "fixed_fees": ("Fixed fee per order", "money"),
    "slippage": ("Slippage", "pct"),
    "init_cash": ("Initial cash", "money"),
    "size": ("Size", "num"),
    "size_type": ("Size counted in", "text"),
    "integer": ("Whole units only", "bool"),
    "direction": ("Direction", "text"),
    "sl_stop": ("Stop-loss", "pct"),
    "tp_stop": ("Take-profit", "pct"),
    "tsl_stop": ("Trailing stop", "pct"),
    "close_at_end": ("Close at end", "bool"),
    "leverage": ("Leverage", "ratio"),
    "maintenance_margin": ("Maintenance margin", "pct"),
}
FILL_TEXT = {"close": "signal bar's close", "next_open": "next bar's open"}


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def title(result: BacktestResult) -> str:
    """``SmaCross(fast=10, slow=50)``: the strategy's name called with its parameters (the widget's
    title too: `formatting.call_text`)."""
    return call_text(result.strategy_name, result.params)


def bar_size(index: pd.DatetimeIndex) -> str:
    """The typical bar size in words (median spacing: ``1 hour``, ``1 day``, ``5 minutes``)."""
    if len(index) < 2:
        return "n/a"
    step = pd.Timedelta(np.median(np.diff(index.asi8[:10_001])))
    for unit, seconds in (("week", 604_800), ("day", 86_400), ("hour", 3_600), ("minute", 60), ("second", 1)):
        count = step.total_seconds() / seconds
        if count >= 1 and float(count).is_integer():
            if unit == "day" and 27 <= count <= 31:
                return "1 month"
            return f"{int(count)} {unit}{'s' if count != 1 else ''}"
    return str(step)


def when(ts: Any) -> str:
    """A timestamp as ``2020-01-01 13:00`` (the date alone at midnight), UTC."""
    ts = pd.Timestamp(ts)
    if ts is pd.NaT or pd.isna(ts):
        return ""
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC")
    return ts.strftime("%Y-%m-%d") if ts == ts.normalize() else ts.strftime("%Y-%m-%d %H:%M")


def data_facts(result: BacktestResult) -> list[tuple[str, str]]:
    """``[(label, text), ...]`` about the data: source, bars, span, bar size, synthetic or not."""
    data, attrs, meta = result.data, result.data.attrs, result.meta
    index = data.index
    facts: list[tuple[str, str]] = []
    dataset = meta.get("dataset") or attrs.get("dataset")
    if dataset:
        facts.append(("Dataset", str(dataset)))
    source = attrs.get("source")
    if source:
        facts.append(("Source", str(source)))
    facts.append(("Bars", f"{len(data):,}"))
    if len(index):
        years = span_years(index)
        span = f"{when(index[0])} to {when(index[-1])}"
        facts.append(
            ("Span", span + (f" ({years:.1f} years)" if years >= 1 else f" ({years * 365.25:.0f} days)"))
        )
    facts.append(("Bar size", str(attrs.get("bar") or bar_size(index))))
    synthetic = bool(attrs.get("synthetic") or meta.get("synthetic"))
    facts.append(("Data", "synthetic (generated, not a market)" if synthetic else "market data"))
    return facts


def setting_text(name: str, value: Any) -> str:
    """One setting for humans (``None`` reads as what it means)."""
    value = _plain(value)
    if value is None:
        return "all available cash" if name == "size" else "off"
    if name == "fill":
        return FILL_TEXT.get(value, str(value))
    if name == "leverage":
        return f"{value:g}x" + (" (cash account)" if value == 1 else "")
    kind = SETTING_LABELS.get(name, (name, "text"))[1]
    if kind == "text" or isinstance(value, str):
        return str(value)
    return format_stat(kind, value)


def settings_rows(settings: BacktestSettings) -> list[dict[str, Any]]:
    """Every setting as ``{key, label, text, changed}`` (``changed``: differs from the default)."""
    given = settings.to_dict()
    default = BacktestSettings().to_dict()
    return [
        {
            "key": k,
            "label": SETTING_LABELS.get(k, (k.replace("_", " ").capitalize(), ""))[0],
            "text": setting_text(k, v),
            "changed": k not in default or _plain(v) != default[k],
        }
        for k, v in given.items()
    ]


def stats_groups(result: BacktestResult) -> list[dict[str, Any]]:
    """Grouped stats rows ``{group, rows: [{key, label, text, benchmark}]}``; ``benchmark`` is buy &
    hold's text for `PERF_KEYS` (None elsewhere). Every stat shows, unknown ones under "Other"."""
    stats = result.stats
    bench = benchmark_stats(result)
    out = []
    for name, keys in stat_groups(stats):
        rows = []
        for key in keys:
            value = _plain(stats[key])
            text = when(value) if isinstance(value, pd.Timestamp) else stat_text(key, value)
            rows.append(
                {
                    "key": key,
                    "label": stat_label(key),
                    "text": text,
                    "benchmark": stat_text(key, bench[key]) if key in PERF_KEYS else None,
                }
            )
        out.append({"group": name, "rows": rows})
    return out


def warnings(result: BacktestResult) -> list[dict[str, str]]:
    """The result's warnings as ``{code, message, hint}`` texts (the banner's rows)."""
    return warning_rows(result.warnings)


def _sig(values: np.ndarray, digits: int = 6) -> list[float]:
    """Values rounded to ``digits`` significant digits (JSON stays short, display keeps precision)."""
    out = []
    for v in np.asarray(values, dtype=float).tolist():
        if not math.isfinite(v):
            out.append(None)
        else:
            out.append(float(f"{v:.{digits}g}"))
    return out


def trades_payload(result: BacktestResult) -> dict[str, Any]:
    """All trades as compact columns for the page's table (the page formats and derives the rest).

    Times are in ticks of ``unit_s`` seconds (the data's step when it has one): ``entry`` is delta-coded
    from the previous trade's entry, ``held`` is exit - entry (-1 while open). ``return`` is not
    shipped: the page computes it as the engine does, pnl / (size x entry price). ``directions`` and
    ``reasons`` name the codes; open trades have a null exit price. Integer columns stay numpy arrays
    (`encode.dumps` writes those fastest).
    """
    tr = result.trades
    closed = (tr["status"] == "closed").to_numpy()
    seconds = result.data.index.asi8 // 1_000_000_000
    entry_s = seconds[tr["entry_bar"].to_numpy()]
    exit_s = np.where(closed, seconds[np.maximum(tr["exit_bar"].to_numpy(), 0)], entry_s)
    unit = tick_unit(seconds)
    ticks = entry_s // unit
    return {
        "n": len(tr),
        "unit_s": unit,
        "directions": list(tr["direction"].cat.categories),
        "reasons": list(L.EXIT_REASONS),
        "entry": np.diff(ticks, prepend=0),
        "held": np.where(closed, (exit_s - entry_s) // unit, -1),
        "direction": tr["direction"].cat.codes.to_numpy(),
        "size": _sig(tr["size"].to_numpy()),
        "entry_price": _sig(tr["entry_price"].to_numpy()),
        "exit_price": _sig(np.where(closed, tr["exit_price"].to_numpy(), np.nan)),
        "pnl": [round(v, 2) if math.isfinite(v) else None for v in tr["pnl"].to_numpy(dtype=float).tolist()],
        "fees": [round(v, 2) for v in tr["fees"].to_numpy(dtype=float).tolist()],
        "reason": tr["exit_reason"].cat.codes.to_numpy(),
        "open": (~closed).astype(np.int8),
    }
