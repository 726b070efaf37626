"""`report(subject)`: one overfitting report — every check that applies, one verdict with its reasons, a
figure per check, the same record as JSON, HTML and the notebook's rich display.

What runs (each needs only what the subject gives; ``strategy=``/``data=``/``space=`` fill the gaps):

- a (periods x trials) return matrix: PBO, the deflated Sharpe, the reality check (SPA, White, StepM);
- an optimization result: the same three (the deflated Sharpe counting the trial ledger's variants), plus
  a walk-forward re-optimization (when its strategy, data and space are known), a bootstrap of the best
  parameters' backtest, and the white-noise test when ``white_noise=True`` (it re-optimizes ``n_noise``
  times);
- a backtest result: the bootstrap and the probabilistic Sharpe ratio against zero, deflated by the trial
  ledger's count of variants of its strategy on its data when the run was recorded.

The verdict's rule (stated so nobody has to guess): **the edge holds** only when every significance
check that ran passes — the reality check (SPA's consistent p-value below ``alpha``: the best beats the
benchmark after accounting for all N tries), the deflated Sharpe (DSR > 0.95), and when they ran, PBO
below 0.5, the walk-forward (out-of-sample Sharpe > 0 keeping at least half the in-sample Sharpe) and
the bootstrap (the lower end of the Sharpe's interval above 0). Otherwise: **no evidence of an edge**,
with the checks that failed. A pass is not proof: PBO below 0.5 says the in-sample winner tends to stay
in the top half out of sample (a statement about ranks, not profits); SPA and DSR say the best result
is unlikely to be luck among the tries counted, on these periods; costs, capacity and regime change are
not tested.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from qlm_kernel.errors import ConfigError
from qlm_kernel.jsonsafe import json_safe
from qlm_kernel.sanity.check_report import SanityReport

HOLDS = "the edge holds"
NO_EVIDENCE = "no evidence of an edge"
CAVEAT = ("A pass is not proof: PBO below 0.5 says the in-sample winner tends to stay in the top half out "
          "of sample (ranks, not profits); SPA and the deflated Sharpe say the best is unlikely to be luck "
          "among the tries counted, on these periods; costs, capacity and regime change are not tested.")


@dataclass(repr=False)
class OverfitReport(SanityReport):
    """`SanityReport` of the whole question (name "report") with every check's own report in ``checks``
    and one plotly figure per check from `figures()`."""

    checks: list[SanityReport] = field(default_factory=list)
    bootstrap_result: Any = None

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["checks"] = [c.to_dict() for c in self.checks]
        return out

    def check(self, name: str) -> SanityReport | None:
        """The report of check ``name`` (pbo, deflated_sharpe, reality_check, walk_forward, ...)."""
        return next((c for c in self.checks if c.name == name), None)

    def figures(self) -> dict[str, Any]:
        """{check name: plotly Figure} for the checks that ran."""
        out = {}
        for c in self.checks:
            if c.name == "bootstrap" and self.bootstrap_result is not None:
                out[c.name] = self.bootstrap_result.plot()  # the fan chart is the bootstrap's own
            elif c.name in _FIGURES:
                out[c.name] = _FIGURES[c.name](c)
        return out

    def to_html(self, *, plotlyjs: str = "cdn") -> str:
        """One HTML page: the verdict, the checks' table and a figure per check."""
        color = "#1a7f37" if self.passed else "#cf222e"
        rows = "".join(
            f"<tr><td>{html.escape(c.name)}</td><td style='color:{'#1a7f37' if c.passed else '#cf222e'}'>"
            f"{'passed' if c.passed else 'failed'}</td><td>{html.escape(c.verdict)}</td></tr>"
            for c in self.checks
        )
        figs = []
        for k, (name, fig) in enumerate(self.figures().items()):
            body = fig.to_html(full_html=False, include_plotlyjs=plotlyjs if k == 0 else False)
            figs.append(f"<h3>{html.escape(name)}</h3>{body}")
        return (
            "<!DOCTYPE html><html><head><meta charset='utf-8'><title>QLM overfitting report</title></head>"
            f"<body style='font-family:sans-serif;max-width:1100px;margin:auto'><h2>Overfitting report</h2>"
            f"<p style='color:{color};font-weight:bold'>{html.escape(self.verdict)}</p>"
            f"<table border='1' cellpadding='4' style='border-collapse:collapse'><tr><th>check</th>"
            f"<th>result</th><th>verdict</th></tr>{rows}</table>{''.join(figs)}</body></html>"
        )

    def save_html(self, path: Any) -> str:
        """Write `to_html()` to ``path``; returns the path."""
        from pathlib import Path

        target = Path(path)
        target.write_text(self.to_html(), encoding="utf-8")
        return str(target)

    def _repr_html_(self) -> str:
        color = "#1a7f37" if self.passed else "#cf222e"
        rows = "".join(
            f"<tr><td>{html.escape(c.name)}</td><td>{'passed' if c.passed else 'failed'}</td>"
            f"<td>{html.escape(c.verdict)}</td></tr>" for c in self.checks
        )
        return (f"<div><b>Overfitting report</b> <span style='color:{color};font-weight:bold'>"
                f"{html.escape(self.verdict)}</span><table>{rows}</table></div>")

    def __repr__(self) -> str:
        lines = [f"<OverfitReport {'PASSED' if self.passed else 'FAILED'}: {self.verdict}>"]
        lines += [f"  {c.name}: {'passed' if c.passed else 'failed'} - {c.verdict}" for c in self.checks]
        return "\n".join(lines)


def report(
    subject: Any,
    *,
    strategy: Any = None,
    data: Any = None,
    space: dict[str, Any] | None = None,
    benchmark: Any = "zero",
    alpha: float = 0.05,
    reps: int = 1000,
    seed: int = 0,
    walk_forward: bool = True,
    n_splits: int = 4,
    bootstrap: bool = True,
    n_boot: int = 500,
    white_noise: bool = False,
    n_noise: int = 20,
) -> OverfitReport:
    """Run every check that applies to ``subject`` (a return matrix, an optimization result, a stored
    optimization job's id, or a backtest result) and give one verdict (module docstring).
    ``strategy``/``data``/``space``: for an optimization whose strategy, data or space its record does not
    name (a class defined in a notebook, a frame); ``benchmark`` for the reality check ("zero",
    "buy_and_hold" or per-period returns)."""
    from qlm_kernel.engine.result import BacktestResult
    from qlm_kernel.optimization.result import OptimizationResult

    if isinstance(subject, str):  # a stored optimization job, read back (nothing re-run)
        from qlm_kernel.optimization.stored import stored_result

        subject = stored_result(subject, data=data)
    if isinstance(subject, BacktestResult):
        checks, boot = _backtest_checks(subject, n_boot, seed, bootstrap)
    elif isinstance(subject, OptimizationResult):
        checks, boot = _optimization_checks(subject, strategy, data, space, benchmark, alpha, reps, seed,
                                            walk_forward, n_splits, bootstrap, n_boot, white_noise, n_noise)
    elif isinstance(subject, (pd.DataFrame, np.ndarray)):
        checks, boot = _matrix_checks(subject, benchmark, alpha, reps, seed), None
    else:
        raise ConfigError(f"report() takes a return matrix, an optimization or a backtest result, got "
                          f"{type(subject).__name__}",
                          hint="qlm.sanity.report(qlm.optimize(...)) or qlm.sanity.report(res)",
                          code="BAD_ARGUMENT")
    return _verdict(checks, boot)


def _matrix_checks(matrix: Any, benchmark: Any, alpha: float, reps: int, seed: int) -> list[SanityReport]:
    from qlm_kernel.sanity.deflated import deflated_sharpe
    from qlm_kernel.sanity.pbo import pbo
    from qlm_kernel.sanity.reality import reality_check

    frame = matrix if isinstance(matrix, pd.DataFrame) else pd.DataFrame(np.asarray(matrix, dtype=float))
    return [pbo(frame), deflated_sharpe(frame),
            reality_check(frame, benchmark, reps=reps, seed=seed, alpha=alpha)]


def _optimization_checks(opt: Any, strategy: Any, data: Any, space: Any, benchmark: Any, alpha: float,
                         reps: int, seed: int, walk: bool, n_splits: int, boot: bool, n_boot: int,
                         noise: bool, n_noise: int) -> tuple[list[SanityReport], Any]:
    from qlm_kernel.sanity.deflated import deflated_sharpe
    from qlm_kernel.sanity.noise import white_noise
    from qlm_kernel.sanity.pbo import pbo
    from qlm_kernel.sanity.reality import reality_check
    from qlm_kernel.sanity.walkforward import walk_forward

    checks = [pbo(opt), deflated_sharpe(opt),
              reality_check(opt, benchmark, reps=reps, seed=seed, alpha=alpha)]
    strategy, frame, space = _sources(opt, strategy, data, space)
    settings = dict(opt.config.get("settings") or {})
    if walk and strategy is not None and frame is not None and space:
        checks.append(walk_forward(strategy, frame, space, n_splits=n_splits, objective=opt.objective,
                                   **settings))
    if noise and strategy is not None and frame is not None and space:
        checks.append(white_noise(strategy, frame, space, n=n_noise, objective=opt.objective, seed=seed,
                                  **settings))
    result = None
    if boot and strategy is not None and frame is not None and opt.best_params is not None:
        if isinstance(frame, pd.DataFrame):
            from qlm_kernel.workspace import recorded_backtest

            best = recorded_backtest(strategy, frame, params=dict(opt.best_params), settings=settings,
                                     record=False)
        else:  # a universe: the best parameters as a portfolio
            from qlm_kernel.strategy.portfolio_run import backtest_portfolio

            best = backtest_portfolio(strategy, frame, **dict(opt.best_params), **settings)
        report_, result = _bootstrap_check(best, n_boot, seed)
        checks.append(report_)
    return checks, result


def _backtest_checks(res: Any, n_boot: int, seed: int, boot: bool) -> tuple[list[SanityReport], Any]:
    from qlm_kernel.sanity.deflated import deflated_sharpe

    returns = res.returns.to_numpy()
    returns = returns[np.isfinite(returns)]
    checks: list[SanityReport] = []
    if returns.size >= 3 and returns.std(ddof=1) > 0:
        n_trials = _ledger_trials(res)
        x = returns - returns.mean()
        m2 = float(np.mean(x**2))
        checks.append(deflated_sharpe(float(returns.mean() / returns.std(ddof=1)), n_trials=n_trials,
                                      n_obs=int(returns.size), skew=float(np.mean(x**3) / m2**1.5),
                                      kurtosis=float(np.mean(x**4) / m2**2)))
    result = None
    if boot:
        report_, result = _bootstrap_check(res, n_boot, seed)
        checks.append(report_)
    return checks, result


def _ledger_trials(res: Any) -> int:
    """Variants of the run's strategy family tried on its data (trial ledger), 1 when unknown."""
    from qlm_kernel.errors import QLMError
    from qlm_kernel.store import default_store
    from qlm_kernel.workspace.fingerprints import frame_fingerprint

    label = res.meta.get("strategy_label")
    if not res.meta.get("run_id") or not label:
        return 1
    try:
        count = default_store().trial_count(frame_fingerprint(res.data), strategy=label)
    except QLMError:
        return 1
    return max(1, int(count["variants"]))


def _bootstrap_check(res: Any, n: int, seed: int) -> tuple[SanityReport, Any]:
    from qlm_kernel.engine.bootstrap import bootstrap

    boot = bootstrap(res, n=n, seed=seed)
    row = boot.table.loc["sharpe"]
    low, high = float(row["low"]), float(row["high"])
    passed = bool(math.isfinite(low) and low > 0.0)
    verdict = (f"the Sharpe ratio's {boot.confidence:.0%} bootstrap interval is [{low:.2f}, {high:.2f}]"
               + (": above zero." if passed else ": it includes zero or less."))
    numbers = {f"{stat}_{col}": float(boot.table.loc[stat, col]) for stat in boot.table.index
               for col in ("observed", "low", "high")}
    return SanityReport("bootstrap", passed, verdict, numbers, {"bootstrap": boot.to_dict()}), boot


def _sources(opt: Any, strategy: Any, data: Any, space: Any) -> tuple[Any, Any, Any]:
    """(strategy, frame, space) for the re-running checks: given, else from the job's record."""
    from qlm_kernel.optimization.stored import job_data
    from qlm_kernel.workspace import resolve_data

    config = opt.config or {}
    strategy = strategy if strategy is not None else config.get("strategy_path")
    space = space if space is not None else opt.space
    if data is not None:
        from qlm_kernel.data.universe import Universe

        frame = data if isinstance(data, (pd.DataFrame, Universe)) else resolve_data(data)[0]
    else:
        frame = job_data(config)
    return strategy, frame, space


def _verdict(checks: list[SanityReport], boot: Any) -> OverfitReport:
    failed = [c for c in checks if not c.passed]
    names = ", ".join(c.name for c in checks)
    if failed:
        reasons = "; ".join(f"{c.name}: {c.verdict}" for c in failed)
        verdict = f"{NO_EVIDENCE} — {len(failed)} of {len(checks)} checks failed ({reasons}) {CAVEAT}"
    else:
        verdict = f"{HOLDS}: every check passed ({names}). {CAVEAT}"
    numbers: dict[str, Any] = {"n_checks": len(checks), "n_failed": len(failed)}
    for c in checks:
        for key in _HEADLINE.get(c.name, ()):
            if key in c.numbers:
                numbers[f"{c.name}.{key}"] = c.numbers[key]
    details = {"rule": "the edge holds only when every check that ran passes (module qlm_kernel.sanity."
                       "overall)", "failed": [c.name for c in failed]}
    return OverfitReport("report", not failed, verdict, json_safe(numbers), details, checks=checks,
                         bootstrap_result=boot)


_HEADLINE = {
    "pbo": ("pbo",),
    "deflated_sharpe": ("dsr", "n_trials"),
    "reality_check": ("spa_pvalue_consistent", "rc_pvalue", "n_superior"),
    "walk_forward": ("oos_sharpe", "efficiency"),
    "white_noise": ("p_value",),
    "bootstrap": ("sharpe_low", "sharpe_high"),
}


# -- figures ---------------------------------------------------------------------------------------------

def _pbo_figure(c: SanityReport) -> Any:
    import plotly.graph_objects as go

    hist = c.details["logit_histogram"]
    edges = np.asarray(hist["edges"])
    fig = go.Figure(go.Bar(x=(edges[:-1] + edges[1:]) / 2, y=hist["counts"], width=np.diff(edges),
                           name="splits"))
    fig.add_vline(x=0.0, line_dash="dash", annotation_text="OOS median")
    fig.update_layout(title=f"PBO = {c.numbers['pbo']:.2f}: logit of the in-sample best's out-of-sample rank",
                      xaxis_title="logit (below 0: worse than the median)", yaxis_title="splits")
    return fig


def _dsr_figure(c: SanityReport) -> Any:
    import plotly.graph_objects as go

    from qlm_kernel.sanity.deflated import expected_max_sharpe

    n = int(c.numbers["n_trials"])
    grid = np.unique(np.geomspace(1, max(10 * n, 100), 60).round().astype(int))
    sr0 = [expected_max_sharpe(int(k), float(c.numbers["sharpe_variance"])) for k in grid]
    fig = go.Figure([go.Scatter(x=grid, y=sr0, name="best Sharpe expected by luck"),
                     go.Scatter(x=[grid[0], grid[-1]], y=[c.numbers["sharpe"]] * 2, name="observed Sharpe",
                                line={"dash": "dash"})])
    fig.add_vline(x=n, line_dash="dot", annotation_text=f"{n} trials")
    fig.update_xaxes(type="log")
    fig.update_layout(title=f"Deflated Sharpe {c.numbers['dsr']:.3f}: per-period Sharpe vs number of trials",
                      xaxis_title="trials", yaxis_title="per-period Sharpe")
    return fig


def _reality_figure(c: SanityReport) -> Any:
    import plotly.graph_objects as go

    keys = [k for k in ("spa_pvalue_lower", "spa_pvalue_consistent", "spa_pvalue_upper", "rc_pvalue")
            if k in c.numbers]
    fig = go.Figure(go.Bar(x=keys, y=[c.numbers[k] for k in keys]))
    alpha = c.numbers.get("alpha", 0.05)
    fig.add_hline(y=alpha, line_dash="dash", annotation_text=f"alpha {alpha:g}")
    fig.update_layout(title="Reality check p-values (below alpha: beats the benchmark after N tries)",
                      yaxis_title="p-value", yaxis_range=[0, 1])
    return fig


def _walk_figure(c: SanityReport) -> Any:
    import plotly.graph_objects as go

    curve = c.details.get("oos_equity") or {"times": [], "growth": []}
    fig = go.Figure(go.Scatter(x=curve["times"], y=curve["growth"], name="out of sample"))
    for split in c.details.get("splits", []):
        fig.add_vrect(x0=str(split["train_start"]), x1=str(split["train_end"]), fillcolor="grey",
                      opacity=0.08, line_width=0)
        fig.add_vrect(x0=str(split["test_start"]), x1=str(split["test_end"]), fillcolor="green",
                      opacity=0.08, line_width=0)
    fig.update_layout(title=f"Walk-forward: out-of-sample growth (efficiency {c.numbers['efficiency']:.2f})",
                      yaxis_title="growth of 1")
    return fig


def _noise_figure(c: SanityReport) -> Any:
    import plotly.graph_objects as go

    fig = go.Figure(go.Histogram(x=c.details.get("noise_best", []), name="best on noise"))
    real = c.numbers.get("real_best")
    if real is not None:
        fig.add_vline(x=real, line_dash="dash", annotation_text="real best")
    fig.update_layout(title="White noise: the best objective reached on permuted data", yaxis_title="series")
    return fig


_FIGURES = {"pbo": _pbo_figure, "deflated_sharpe": _dsr_figure, "reality_check": _reality_figure,
            "walk_forward": _walk_figure, "white_noise": _noise_figure}
