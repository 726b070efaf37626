"""`paper_replay`: run a strategy through the paper handler over a DataFrame at full speed.

With ``latency=0, slippage=0`` the replay's trades equal ``qlm.backtest(..., fill="next_open")``
(same settings) exactly: the runner applies the engine's signal rules and the handler its fill,
sizing, fee and stop rules, one bar at a time. With the defaults (100 ms, 5 bps) it shows what
execution costs; ``result.divergence(backtest)`` lists the per-trade differences.

Signals: ``signals="full"`` (default) computes the strategy's signals once on the whole frame and
first proves by truncation (`qlm_kernel.strategy.lookahead`, as `qlm.sanity.lookahead`) that no
signal changes when later bars are removed (a strategy that peeks is refused with a StrategyError);
``signals="incremental"`` recomputes them at every bar on the bars seen so far (no lookahead by
construction, O(n^2)).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from qlm_kernel.engine.settings import BacktestSettings, split_settings
from qlm_kernel.errors import ConfigError, StrategyError
from qlm_kernel.execution.base import ExecutionHandler
from qlm_kernel.execution.clock import Clock
from qlm_kernel.execution.feeds import DataFrameFeed
from qlm_kernel.execution.paper import DEFAULT_LATENCY, DEFAULT_SLIPPAGE, PaperExecutionHandler
from qlm_kernel.execution.result import PaperResult
from qlm_kernel.execution.risk import RiskLimits
from qlm_kernel.execution.runner import PaperRunner
from qlm_kernel.execution.signals import FullSignals, IncrementalSignals


def paper_settings(
    kwargs: dict[str, Any], *, fees: float, fixed_fees: float, slippage: float
) -> tuple[BacktestSettings, dict[str, Any]]:
    """Backtest-style settings for a paper run (fill is always next open) and the strategy params."""
    fill = kwargs.pop("fill", "next_open")
    if fill != "next_open":
        raise ConfigError(
            f"paper trading fills at the next price after a decision, not fill={fill!r}",
            hint="drop fill= (paper runs compare with backtest(..., fill='next_open'))",
            setting="fill",
            value=fill,
        )
    for name, cash_account in (("leverage", 1.0), ("maintenance_margin", 0.0)):
        if kwargs.get(name, cash_account) != cash_account:
            raise ConfigError(
                f"paper trading runs a cash account; {name}={kwargs[name]!r} is a backtest-only setting",
                hint=f"drop {name}= (paper sessions have leverage 1 and no liquidation; a short is bounded "
                     "by cash)",
                setting=name,
                value=kwargs[name],
            )
    for name in ("fees", "fixed_fees", "slippage"):
        if name in kwargs:  # pragma: no cover - they are explicit keyword arguments of the callers
            raise ConfigError(f"{name} given twice", hint=f"pass {name}= once", setting=name)
    settings, params = split_settings(
        {**kwargs, "fill": "next_open", "fees": fees, "fixed_fees": fixed_fees, "slippage": slippage}
    )
    return settings, params


def refuse_handler_options(handler: ExecutionHandler | None, **options: Any) -> None:
    """Refuse options of the default paper handler (those not None) when a handler was given."""
    explicit = [k for k, v in options.items() if v is not None]
    if handler is not None and explicit:
        raise ConfigError(
            f"{', '.join(explicit)} configure the default paper handler, but a handler was given",
            hint="set them on the handler itself, or drop handler=",
            fields=sorted(explicit),
        )


def default_paper_handler(
    settings: BacktestSettings,
    latency: float | None,
    max_participation: float | None,
    clock: Clock | None = None,
) -> PaperExecutionHandler:
    """The paper broker a run uses when given no handler: ``settings``' cash and costs."""
    return PaperExecutionHandler(
        cash=settings.init_cash,
        latency=DEFAULT_LATENCY if latency is None else latency,
        slippage=settings.slippage,
        fees=settings.fees,
        fixed_fees=settings.fixed_fees,
        max_participation=max_participation,
        clock=clock,
    )


def risk_limits(risk: RiskLimits | dict[str, Any] | None) -> RiskLimits | None:
    """``risk`` as `RiskLimits` (a dict gives its fields)."""
    return risk if isinstance(risk, RiskLimits) or risk is None else RiskLimits.from_dict(risk)


def bus_publisher(publish: bool) -> Callable[[str, dict[str, Any]], Any] | None:
    """The event bus's ``publish`` when ``publish``, else None."""
    if not publish:
        return None
    from qlm_kernel.events import publish as bus_publish

    return bus_publish


def signal_source(strat: Any, frame: Any, settings: BacktestSettings, signals: str) -> tuple[Any, str]:
    """The signal source for ``signals`` ("full": computed once after a lookahead proof, "incremental":
    per bar; a frame under 60 bars is too short for the lookahead cuts and cheap to recompute, so it is
    incremental) and the mode used."""
    if signals not in ("full", "incremental"):
        raise ConfigError(
            f"signals={signals!r} is not 'full' or 'incremental'",
            hint="'full' (fast, lookahead-checked) or 'incremental' (recomputed per bar)",
            setting="signals",
            value=signals,
        )
    if signals == "incremental" or len(frame) < 60:
        return IncrementalSignals(strat, settings), "incremental"
    _require_no_lookahead(strat, frame)
    return FullSignals(strat, frame, settings), "full"


def resolve_paper_strategy(strategy: Any, params: dict[str, Any]) -> Any:
    """The strategy instance; ready-made Signals are refused (they cannot be re-run bar by bar)."""
    from qlm_kernel.strategy import SignalsStrategy, resolve_strategy

    strat = resolve_strategy(strategy, **params)
    if isinstance(strat, SignalsStrategy):
        raise ConfigError(
            "paper trading needs a strategy it can run on the bars seen so far, not ready-made Signals",
            hint="pass a Strategy class/instance, a strategy file or its name",
            code="BAD_STRATEGY",
        )
    return strat


def strategy_label(strat: Any) -> str:
    """The strategy's file stem, else its class name."""
    from pathlib import Path

    src = getattr(type(strat), "source_file", None)
    return Path(src).stem if src else getattr(type(strat), "name", type(strat).__name__)


def paper_replay(
    strategy: Any,
    data: Any = None,
    *,
    dataset: str | None = None,
    sample: dict[str, Any] | None = None,
    latency: float = DEFAULT_LATENCY,
    slippage: float = DEFAULT_SLIPPAGE,
    fees: float = 0.0,
    fixed_fees: float = 0.0,
    max_participation: float | None = None,
    risk: RiskLimits | dict[str, Any] | None = None,
    signals: str = "full",
    symbol: str = "ASSET",
    publish: bool = False,
    **kwargs: Any,
) -> PaperResult:
    """Replay ``data`` (a frame or file, or ``dataset=`` / ``sample=`` as in `qlm.backtest`) bar by bar
    through a `PaperExecutionHandler`; returns a `PaperResult`.

    ``latency`` is seconds (default 0.1), ``slippage`` a fraction (default 0.0005 = 5 bps), ``fees``
    and ``fixed_fees`` as in `qlm.backtest`; other keywords are backtest settings (init_cash, size,
    size_type, integer, direction, sl_stop, tp_stop, tsl_stop, close_at_end) or strategy
    parameters. ``max_participation`` caps each bar's fills at that fraction of its volume.
    ``risk`` is a `RiskLimits` or a dict of its fields. ``publish=True`` sends paper.* events.
    ``data`` a `Universe` or a dict symbol -> frame: one account trades every symbol
    (`paper_replay_portfolio`, returns a `PaperPortfolioResult`).
    """
    from qlm_kernel.strategy.run import ohlcv_frame
    from qlm_kernel.workspace.data import resolve_data

    if _is_universe(data):  # several symbols, one account: the multi-symbol replay
        from qlm_kernel.execution.portfolio_replay import paper_replay_portfolio

        return paper_replay_portfolio(  # type: ignore[return-value]
            strategy, data, latency=latency, slippage=slippage, fees=fees, fixed_fees=fixed_fees,
            max_participation=max_participation, risk=risk, signals=signals, publish=publish, **kwargs,
        )
    started = time.perf_counter()
    settings, params = paper_settings(dict(kwargs), fees=fees, fixed_fees=fixed_fees, slippage=slippage)
    frame = ohlcv_frame(resolve_data(data, dataset=dataset, sample=sample)[0])
    strat = resolve_paper_strategy(strategy, params)
    source, signals = signal_source(strat, frame, settings, signals)
    handler = PaperExecutionHandler(
        cash=settings.init_cash,
        latency=latency,
        slippage=slippage,
        fees=fees,
        fixed_fees=fixed_fees,
        max_participation=max_participation,
    )
    limits = risk_limits(risk)
    publisher = bus_publisher(publish)
    runner = PaperRunner(handler, source, settings, symbol=symbol, risk=limits, publish=publisher)
    for bar in DataFrameFeed(frame):
        runner.step(bar)
    runner.finish()
    return PaperResult(
        index=frame.index,
        last_close=float(frame["close"].iloc[-1]),
        fills=runner.fills,
        orders=list(runner._all_orders.values()),
        equity=runner.equity_array(),
        refusals=runner.refusals,
        settings={
            **settings.to_dict(),
            "latency": latency,
            "max_participation": max_participation,
            "risk": limits.to_dict() if limits else None,
        },
        params=strat.params,
        strategy_name=strategy_label(strat),
        meta={
            "duration_s": time.perf_counter() - started,
            "signals": signals,
            "symbol": symbol,
            "open_orders": [o.client_order_id for o in handler.open_orders()],
        },
    )


def _is_universe(data: Any) -> bool:
    from collections.abc import Mapping

    from qlm_kernel.data.universe import Universe

    return isinstance(data, (Universe, Mapping))


def _require_no_lookahead(strat: Any, frame: Any) -> None:
    """Refuse to replay precomputed signals of a strategy whose early signals depend on later bars."""
    from qlm_kernel.strategy.lookahead import find_lookahead

    found = find_lookahead(strat, frame, n_cuts=3)
    if found.first is not None:
        raise StrategyError(
            f"cannot replay {strategy_label(strat)} on precomputed signals: {found.verdict()}",
            hint="fix the strategy so bar t only uses bars up to t, or replay with signals='incremental' "
            "(recomputes on the bars seen so far)",
            code="LOOKAHEAD",
            n_cuts=len(found.cuts),
            n_bars=found.n_bars,
            n_differences=found.n_differences,
            n_findings=len(found.findings),
            first_bar=found.first["bar"],
            first_field=found.first["field"],
            first_cut=found.first["cut"],
        )
