"""`OptimizationResult`: the trials table, the best parameter set, PBO input and plots."""

from __future__ import annotations

import html
import math
from typing import Any

import numpy as np
import pandas as pd

from qlm_kernel.engine.caveats import MIN_TRADES, few_trades_warning, ruined_warning
from qlm_kernel.formatting import HEADLINE_STATS as KEY_STATS


class OptimizationResult:
    """Every trial of one optimization (stored + new on resume) and the best feasible one.

    ``best_*`` consider only trials with status 'ok', a finite objective and every constraint met.
    """

    def __init__(
        self,
        rows: list[dict[str, Any]],
        *,
        space: dict[str, list[Any]],
        method: str,
        objective: str,
        maximize: bool,
        status: str,
        job_id: str | None,
        config: dict[str, Any],
        sample_index: pd.Index,
        n_computed: int | None = None,
        min_trades: int | None = None,
    ) -> None:
        self.rows = rows
        self.space = space
        self.method = method
        self.objective = objective
        self.maximize = maximize
        self.status = status
        self.job_id = job_id
        self.config = config
        self.sample_index = sample_index
        self.n_computed = len(rows) if n_computed is None else n_computed  # the rest came from the store
        self.best_row = best_row(rows, maximize)
        self.min_trades = min_trades

    # -- table ---------------------------------------------------------------------------------

    @property
    def trials(self) -> pd.DataFrame:
        """One row per trial: params, the objective, key stats, feasible, status (index = trial order)."""
        stats_cols = [self.objective, *[k for k in KEY_STATS if k != self.objective]]
        records = []
        for r in self.rows:
            rec = dict(r["params"])
            stats = r.get("stats") or {}
            for k in stats_cols:
                v = stats.get(k)
                rec[k] = np.nan if v is None else v
            rec["feasible"] = bool(r.get("feasible"))
            rec["status"] = r["status"]
            records.append(rec)
        cols = [*self.space, *stats_cols, "feasible", "status"]
        frame = pd.DataFrame.from_records(records, columns=cols)
        frame.index = pd.RangeIndex(len(frame), name="trial")
        return frame

    @property
    def best_params(self) -> dict[str, Any] | None:
        return dict(self.best_row["params"]) if self.best_row else None

    @property
    def best_value(self) -> float | None:
        return self.best_row["objective"] if self.best_row else None

    @property
    def warnings(self) -> list[dict[str, Any]]:
        """What to be wary of in the selection (LIQUIDATED: the best was ruined; FEW_TRADES: it rests on
        fewer than 30 trades — whatever ``min_trades`` the search required)."""
        stats = self.best_stats or {}
        ruined = ruined_warning() if stats.get("liquidated") else None
        found = [ruined, few_trades_warning(stats.get("n_trades"), MIN_TRADES)]
        return [w for w in found if w]

    @property
    def best_trades(self) -> int | None:
        """The best trial's number of trades (what its statistics rest on)."""
        n = (self.best_stats or {}).get("n_trades")
        return None if n is None else int(n)

    @property
    def best_stats(self) -> dict[str, Any] | None:
        return dict(self.best_row["stats"]) if self.best_row else None

    # -- PBO -----------------------------------------------------------------------------------

    def returns_matrix(self) -> pd.DataFrame:
        """(periods x trials) period returns from each ok trial's sampled equity (~1024 periods);
        columns are trial numbers, rows the sample end timestamps. Feeds `qlm_kernel.sanity.pbo`."""
        cols: dict[int, np.ndarray] = {}
        for i, r in enumerate(self.rows):
            eq = r.get("equity")
            if r["status"] != "ok" or not eq:
                continue
            e = np.asarray(eq, dtype=float)
            with np.errstate(divide="ignore", invalid="ignore"):
                ret = e[1:] / e[:-1] - 1.0
            cols[i] = np.where(np.isfinite(ret), ret, 0.0)
        index = self.sample_index[1:] if len(self.sample_index) > 1 else pd.Index([])
        return pd.DataFrame(cols, index=index[: len(next(iter(cols.values())))] if cols else None)

    # -- plots ---------------------------------------------------------------------------------

    def plot_heatmap(self, x: str | None = None, y: str | None = None, metric: str | None = None) -> Any:
        """Plotly heatmap of ``metric`` (default: the objective) over two parameters.

        With more than two parameters each cell shows the best value (max when maximizing, else min)
        over the other parameters — an envelope, not a slice; infeasible trials are left out.
        """
        import plotly.graph_objects as go

        names = list(self.space)
        if len(names) < 2 and (x is None or y is None):
            raise ValueError("a heatmap needs two parameters; use plot_parallel() or trials.plot()")
        x = x or names[0]
        y = y or next(n for n in names if n != x)
        metric = metric or self.objective
        df = self.trials
        df = df[df["feasible"]] if metric == self.objective else df[df["status"] == "ok"]
        agg = "max" if self.maximize else "min"
        table = df.groupby([y, x])[metric].agg(agg).unstack(x)
        fig = go.Figure(
            go.Heatmap(
                z=table.to_numpy(),
                x=[str(v) for v in table.columns],
                y=[str(v) for v in table.index],
                colorscale="Viridis",
                colorbar={"title": metric},
            )
        )
        extra = f" ({agg} over other params)" if len(names) > 2 else ""
        fig.update_layout(title=f"{metric} by {x} and {y}{extra}", xaxis_title=x, yaxis_title=y)
        return fig

    def plot_parallel(self, metric: str | None = None) -> Any:
        """Plotly parallel coordinates: one axis per parameter plus the metric (ok trials)."""
        import plotly.graph_objects as go

        metric = metric or self.objective
        df = self.trials[lambda d: d["status"] == "ok"]
        dims = []
        for name in [*self.space, metric]:
            col = df[name]
            if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
                dims.append({"label": name, "values": col.to_numpy(dtype=float)})
            else:
                cats = sorted({str(v) for v in col})
                codes = [cats.index(str(v)) for v in col]
                dims.append(
                    {"label": name, "values": codes, "tickvals": list(range(len(cats))), "ticktext": cats}
                )
        color = df[metric].to_numpy(dtype=float)
        fig = go.Figure(
            go.Parcoords(line={"color": color, "colorscale": "Viridis", "showscale": True}, dimensions=dims)
        )
        fig.update_layout(title=f"{metric} across parameters")
        return fig

    # -- export --------------------------------------------------------------------------------

    def to_dict(self, *, include_trials: bool = False) -> dict[str, Any]:
        """JSON-safe summary (and optionally every trial's params, objective, stats, status)."""
        out: dict[str, Any] = {
            "job_id": self.job_id,
            "status": self.status,
            "method": self.method,
            "objective": self.objective,
            "maximize": self.maximize,
            "n_trials": len(self.rows),
            "n_computed": self.n_computed,
            "n_feasible": sum(1 for r in self.rows if r.get("feasible")),
            "n_errors": sum(1 for r in self.rows if r["status"] == "error"),
            "best_params": self.best_params,
            "best_value": _safe(self.best_value),
            "best_stats": self.best_stats,
            "best_trades": self.best_trades,
            "min_trades": self.min_trades,
            "warnings": self.warnings,
            "space": self.space,
        }
        if include_trials:
            out["trials"] = [
                {
                    "params": r["params"],
                    "objective": _safe(r.get("objective")),
                    "status": r["status"],
                    "feasible": bool(r.get("feasible")),
                    "stats": r.get("stats"),
                    "error": r.get("error"),
                }
                for r in self.rows
            ]
        return out

    def _repr_html_(self) -> str:
        d = self.to_dict()
        head = (
            f"<b>Optimization</b> {html.escape(str(self.method))} · {html.escape(self.objective)} "
            f"({'max' if self.maximize else 'min'}) · {d['n_trials']} trials · {html.escape(self.status)}"
            f" · job {html.escape(str(self.job_id))}"
        )
        best = (
            html.escape(str(self.best_params)) + f" → {self.best_value!r}"
            if self.best_row
            else "no feasible trial"
        )
        top = self.trials.sort_values(self.objective, ascending=not self.maximize).head(10)
        warn = "".join(f"<br><b>warning</b>: {html.escape(w['message'])} — {html.escape(w['hint'])}"
                       for w in self.warnings)
        return f"<div>{head}<br>best: {best}{warn}{top.to_html(max_rows=10)}</div>"

    def __repr__(self) -> str:
        return (
            f"OptimizationResult(method={self.method!r}, objective={self.objective!r}, "
            f"trials={len(self.rows)}, "
            f"status={self.status!r}, best_params={self.best_params}, best_value={self.best_value!r})"
        )


def score(row: dict[str, Any], maximize: bool) -> float:
    """Comparable fitness (higher is better); -inf for infeasible or failed trials."""
    if not row.get("feasible"):
        return -math.inf
    value = float(row["objective"])
    return value if maximize else -value


def best_row(rows: list[dict[str, Any]], maximize: bool) -> dict[str, Any] | None:
    """The first feasible row with the best objective (ties: earliest trial)."""
    best, best_score = None, -math.inf
    for r in rows:
        s = score(r, maximize)
        if s > best_score:
            best, best_score = r, s
    return best


def _safe(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value
