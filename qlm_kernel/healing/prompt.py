"""The diagnosis prompt a model reads: the trace, the full source, the strategy API and the rules.

The prompt is self-contained (a plain ``prompt -> reply`` callable needs nothing else);
`HEAL_SYSTEM_PROMPT` is the short role statement a front end may also send as a system prompt
(the MCP ``heal_strategy`` tool passes it to sampling).
"""

from __future__ import annotations

import json
from typing import Any

from qlm_kernel.healing.policy import ALLOWED_IMPORTS

HEAL_SYSTEM_PROMPT = (
    "You repair Python trading-strategy files for QLM. You receive the error trace of a failing "
    "backtest and the strategy's full source. Reply with the complete corrected file in a single "
    "```python fenced block (or a unified diff against the file). Keep the same Strategy class, change "
    "only what the error requires, import only from the allowed modules, and never read or write files, "
    "start processes or use the network. You may explain your reasoning briefly before the code."
)

API_SUMMARY = """\
from qlm_kernel import Strategy, Param, Signals, indicators as ta

class MyStrategy(Strategy):                   # one Strategy subclass per file
    fast = Param(10, min=2, max=200)          # parameters: Param(default, min, max, step, choices, doc)
    def signals(self, data):                  # data: OHLCV DataFrame, DatetimeIndex (UTC), float64
        close = data["close"]                 # columns are lower-case: open, high, low, close, volume
        ...
        return Signals(entry_long=..., exit_long=..., entry_short=..., exit_short=...,
                       sl_stop=None, tp_stop=None, tsl_stop=None)

- Each signal is a boolean Series/array with exactly len(data) values and data's index (None = never);
  NaN is not allowed in a signal: comparisons with NaN are False, so use .fillna(False) on bool-like
  results. Stops are fractions of the entry price (a number or a float array per bar; NaN = none).
- Indicators (Series in, Series out, NaN during warm-up): ta.sma, ema, wma, rolling_std, highest,
  lowest, rsi, true_range, atr(high, low, close, n), bollinger, macd, donchian, zscore, roc,
  crossed_above(a, b), crossed_below(a, b).
- signals() must finish quickly: no endless loops; prefer vectorized pandas/numpy over Python loops."""


def build_prompt(*, trace: dict[str, Any], source: str, file_name: str, attempt: int, max_attempts: int,
                 refusal: dict[str, Any] | None = None) -> str:
    """The full prompt for one attempt: the error, the file, the API, the rules, a prior refusal."""
    parts = [
        f"A QLM strategy file fails. Repair it (attempt {attempt} of {max_attempts}).",
        "## Error\n" + format_trace(trace),
        f"## Current file: {file_name} (full source)\n```python\n{source.rstrip()}\n```",
        "## Strategy API\n" + API_SUMMARY,
        "## Rules\n" + _rules(file_name),
    ]
    if refusal:
        parts.append("## Your previous reply was refused\n"
                     f"{refusal.get('code')}: {refusal.get('message')}\nhint: {refusal.get('hint')}")
    return "\n\n".join(parts) + "\n"


def format_trace(trace: dict[str, Any]) -> str:
    """The readable text of a `StrategyError.to_dict()` trace (what the model needs, in order)."""
    ctx = trace.get("context") or {}
    severity = ctx.get("severity", "error")
    lines = [
        f"severity: {severity}",
        f"code: {trace.get('code')}",
        f"error type: {ctx.get('exception_type') or trace.get('type')}",
        f"message: {ctx.get('exception') or trace.get('message')}",
        f"summary: {trace.get('message')}",
    ]
    if ctx.get("file"):
        where = f"file: {ctx['file']}, line {ctx.get('line')}"
        if ctx.get("function"):
            where += f", in {ctx['function']}"
        lines.append(where)
    if ctx.get("excerpt"):
        lines.append("excerpt (> marks the line):\n" + ctx["excerpt"])
    if trace.get("hint"):
        lines.append(f"hint: {trace['hint']}")
    if trace.get("traceback"):
        lines.append("traceback (your code's frames; library frames summarized):\n"
                     + trace["traceback"].rstrip())
    for key in ("field", "expected", "got", "dtype", "got_shape", "signal_counts", "nan_locals",
                "time_limit_s", "suggestion"):
        if ctx.get(key) is not None:
            lines.append(f"{key}: {_compact(ctx[key])}")
    if ctx.get("strategy_version_id") is not None:
        lines.append(f"strategy version: id {ctx['strategy_version_id']}"
                     + (f" (v{ctx['strategy_version']})" if ctx.get("strategy_version") else ""))
    if ctx.get("params") is not None:
        lines.append(f"params: {_compact(ctx['params'])}")
    if ctx.get("data"):
        data = ctx["data"]
        lines.append(f"data: {data.get('rows')} rows, columns {data.get('columns')}, dtypes "
                     f"{_compact(data.get('dtypes'))}, {data.get('start')} .. {data.get('end')}")
    return "\n".join(lines)


def _rules(file_name: str) -> str:
    return "\n".join([
        f"- Reply with the complete corrected {file_name} in ONE ```python fenced block, or with a unified "
        f"diff (--- a/{file_name} / +++ b/{file_name}).",
        "- Keep the same Strategy class name and its parameters; fix the cause, do not hide the error "
        "with try/except.",
        f"- Import only from: {', '.join(ALLOWED_IMPORTS)}.",
        "- No file access (open, to_csv, read_csv, np.save, ...), no exec/eval/compile/__import__, no "
        "os/sys/subprocess/socket.",
        f"- Patch only {file_name}; do not name any other path.",
    ])


def _compact(value: Any) -> str:
    try:
        return json.dumps(value, default=str)[:2000]
    except (TypeError, ValueError):
        return str(value)[:2000]
