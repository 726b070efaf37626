"""`qlm.backtest_portfolio`: one recorded portfolio backtest, as every front end starts it.

The pure run is `qlm_kernel.strategy.portfolio_run.backtest_portfolio`; this adds what a research
session expects of any run: events on the bus (``engine.portfolio.started|finished|failed``) and a
run in the store (dataset = the universe's name, data fingerprint = the universe's, settings with a
``portfolio`` entry naming the universe, its symbols and the order source).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from qlm_kernel.errors import QLMError
from qlm_kernel.events import publish
from qlm_kernel.formatting import HEADLINE_STATS
from qlm_kernel.session.limits import USER, Limits
from qlm_kernel.workspace.recording import ensure_event_recorder, record_run, recording_enabled

PLAIN = (int, float, str, bool)  # settings values a failed run's record keeps

MAX_PORTFOLIO_CELLS_MCP = 20_000_000
"""bars x symbols one MCP request may run (the universe's arrays: ~50 bytes a cell)."""


def backtest_portfolio(strategy: Any, data: Any, *, record: bool | None = None, source: str = "python",
                       limits: Limits = USER, **kwargs: Any) -> Any:
    """Backtest ``strategy`` over the universe ``data`` with shared cash, published and recorded.

    ``strategy``: a Strategy (class, instance, file or name) applied to every symbol, a dict symbol ->
    `Signals`, `Signals` of wide boolean frames, or `TargetWeights`. ``data``: a `Universe`, a stored
    universe's name or a dict symbol -> frame / file. Keywords: backtest settings and strategy
    parameters (docs/concepts.md "Portfolio mode"). Unless ``record=False`` (or ``QLM_RECORD_RUNS=0``) the run
    is stored; ``res.meta["run_id"]`` is its id. Returns a `PortfolioResult`.
    """
    from qlm_kernel.strategy.portfolio_run import as_universe
    from qlm_kernel.strategy.portfolio_run import backtest_portfolio as pure_run

    recording = recording_enabled(record)
    if recording:
        ensure_event_recorder()
    started = time.perf_counter()
    given = strategy
    label = _label(given)
    universe = None
    code = None
    try:
        strategy, kwargs = _resolved(strategy, kwargs)
        code = getattr(type(strategy), "source_text", None)
        label = _label(given, strategy)
        universe = as_universe(data)
        if limits is not USER:
            cells = universe.close.size
            if cells > MAX_PORTFOLIO_CELLS_MCP:
                from qlm_kernel.errors import ConfigError

                raise ConfigError(
                    f"universe {universe.name!r} has {cells:,} bars x symbols, over the {limits.name} limit "
                    f"of {MAX_PORTFOLIO_CELLS_MCP:,}",
                    hint="run it from a notebook or the CLI, or import a shorter universe",
                    code="LIMIT_EXCEEDED", limit=MAX_PORTFOLIO_CELLS_MCP, value=cells,
                )
        publish("engine.portfolio.started", {"strategy": label, "universe": universe.name,
                                             "symbols": len(universe.symbols), "bars": len(universe),
                                             "source": source})
        result = pure_run(strategy, universe, **kwargs)
    except QLMError as err:
        _record_failure(label, kwargs, err, started, recording, universe, source)
        raise
    duration = time.perf_counter() - started
    run_id = None
    if recording:
        run_id, problem = record_run({
            "strategy": label,
            "code": code,
            "dataset": universe.name,
            "data_fingerprint": universe.fingerprint,
            "params": result.params,
            "settings": {**result.settings.to_dict(), "portfolio": _portfolio_entry(universe, strategy)},
            "stats": result.to_dict(include_trades=False)["stats"],
            "duration_s": duration,
            "source": source,
        })
        if problem is not None:
            result.meta["record_error"] = problem
    result.meta.update({"run_id": run_id, "dataset": universe.name, "strategy_label": label})
    stats = result.stats
    publish("engine.portfolio.finished", {
        "strategy": label, "universe": universe.name, "run_id": run_id, "duration_s": duration,
        "source": source, "stats": {k: stats[k] for k in HEADLINE_STATS},
    })
    return result


def _resolved(strategy: Any, kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """A strategy-like input resolved once (its parameters applied) so its code can be versioned;
    ready-made signals and target weights pass through. Returns (strategy, settings keywords)."""
    from collections.abc import Mapping

    from qlm_kernel.engine.settings import split_settings
    from qlm_kernel.strategy import Signals, resolve_strategy
    from qlm_kernel.strategy.weights import TargetWeights

    if isinstance(strategy, (Mapping, Signals, TargetWeights, list, tuple)):  # ready-made, or sleeves
        return strategy, kwargs
    _, params = split_settings({k: v for k, v in kwargs.items() if k != "cash"})  # cash: sleeves only
    return resolve_strategy(strategy, **params), {k: v for k, v in kwargs.items() if k not in params}


def _label(given: Any, resolved: Any = None) -> str:
    """What the run is filed under: as single-asset runs (the strategy file's stem, else the class
    name), or the kind of ready-made input (signals by symbol, Signals, TargetWeights)."""
    from qlm_kernel.strategy import Signals
    from qlm_kernel.strategy.weights import TargetWeights
    from qlm_kernel.workspace.runs import strategy_label

    if isinstance(given, Mapping):
        return "Signals by symbol"
    if isinstance(given, (Signals, TargetWeights)):
        return type(given).__name__
    if isinstance(given, (list, tuple)):
        return "Sleeves: " + ", ".join(getattr(s, "name", "?") for s in given)
    return strategy_label(given, type(resolved) if resolved is not None else None)


def _portfolio_entry(universe: Any, strategy: Any) -> dict[str, Any]:
    from qlm_kernel.strategy.weights import TargetWeights

    kind = "target_weights" if isinstance(strategy, TargetWeights) else "signals"
    entry = {"universe": universe.name, "symbols": list(universe.symbols), "orders": kind}
    if isinstance(strategy, (list, tuple)):
        entry["sleeves"] = [{"name": s.name, "strategy": str(s.strategy), "symbols": s.symbols,
                             "weight": s.weight, "params": s.params} for s in strategy]
    return entry


def _record_failure(label: str, kwargs: dict[str, Any], err: QLMError, started: float, recording: bool,
                    universe: Any, source: str) -> None:
    """Publish and (best effort) record a failed portfolio run; the caller re-raises."""
    run_id = None
    if recording:
        run_id, _ = record_run({
            "strategy": label,
            "code": None,
            "dataset": getattr(universe, "name", None),
            "data_fingerprint": getattr(universe, "fingerprint", None),
            "params": {},
            "settings": {k: v for k, v in kwargs.items() if v is None or isinstance(v, PLAIN)},
            "error": err,
            "duration_s": time.perf_counter() - started,
            "source": source,
        })
    err.context.setdefault("run_id", run_id)
    publish("engine.portfolio.failed", {"strategy": label, "run_id": run_id, "error": err.to_dict(),
                                        "source": source})
