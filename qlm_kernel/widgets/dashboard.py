"""`Dashboard`: dataset (or universe) and strategy pickers, parameter sliders and a live `BacktestReport`,
or a `PortfolioReport` when a universe is picked (for Voilà)."""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable, Mapping
from typing import Any

import ipywidgets as w

from qlm_kernel.errors import QLMError
from qlm_kernel.widgets.portfolio import PortfolioReport
from qlm_kernel.widgets.report import BacktestReport

Loader = Callable[[], Any]


def default_datasets(n: int = 5_000) -> dict[str, Loader]:
    """The workspace's imported datasets (``qlm data import``) first, then small built-in samples: two
    synthetic paths, and real GOOG / EURUSD data when backtesting.py is installed."""
    sets = workspace_datasets()
    samples = [(f"synthetic hourly, {n:,} bars (seed 0)", {"kind": "synthetic", "n": n, "seed": 0}),
               (f"synthetic hourly, {n:,} bars (seed 1)", {"kind": "synthetic", "n": n, "seed": 1})]
    if importlib.util.find_spec("backtesting") is not None:  # the optional package that ships real samples
        samples += [("GOOG daily 2004-2013", {"kind": "goog", "n": n}),
                    (f"EURUSD hourly, {n:,} bars", {"kind": "eurusd", "n": n})]
    for label, spec in samples:
        sets[label] = functools.partial(_load, sample=spec)
    return sets


def workspace_datasets() -> dict[str, Loader]:
    """``"dataset NAME (ROWS bars)"`` -> loader for every single dataset in ``$QLM_HOME/data`` (none on
    error; universes are `workspace_universes`)."""
    return {f"dataset {meta['name']} ({int(meta.get('rows') or 0):,} bars)":
            functools.partial(_load, dataset=str(meta["name"]))
            for meta in _listed() if meta.get("kind", "dataset") != "universe"}


def workspace_universes() -> dict[str, str]:
    """``"universe NAME (M symbols, ROWS bars)"`` -> NAME for every stored universe (``qlm data
    import-universe``); picking one runs ``qlm.backtest_portfolio`` over it."""
    out = {}
    for meta in _listed():
        if meta.get("kind") == "universe":
            m, rows = len(meta.get("symbols") or []), int(meta.get("rows") or 0)
            label = f"universe {meta['name']} ({m} symbol{'s' if m != 1 else ''}, {rows:,} bars)"
            out[label] = str(meta["name"])
    return out


def _listed() -> list[dict[str, Any]]:
    from qlm_kernel.session import list_datasets

    try:
        return list(list_datasets()["datasets"])
    except QLMError:
        return []


def _load(**source: Any) -> Any:
    """The frame of a data source, through the session's one data resolution."""
    from qlm_kernel.session import DataSource

    return DataSource.of(**source).resolve()[0]


def default_strategies() -> dict[str, Any]:
    """Bundled and workspace strategy files by name (``qlm_kernel.strategy.available_strategies``)."""
    from qlm_kernel.strategy.loader import available_strategies

    return dict(sorted(available_strategies().items()))


class Dashboard(w.VBox):
    """Pick a dataset (or a universe) and a strategy, move its parameter sliders: the backtest re-runs on
    release and the report (stats, chart, or the error panel) updates in place.

    ``universes`` maps a label to what ``qlm.backtest_portfolio`` takes as data (a stored universe's name,
    a `Universe`, a dict symbol -> frame); by default the workspace's stored universes, listed after the
    datasets. Picking one runs the strategy on every symbol with shared cash, each entry sized at the
    ``size`` slider's percent of the buying power left, and shows a `PortfolioReport`."""

    def __init__(
        self,
        datasets: Mapping[str, Loader] | None = None,
        strategies: Mapping[str, Any] | None = None,
        *,
        universes: Mapping[str, Any] | None = None,
        record: bool = False,
        **kwargs: Any,
    ) -> None:
        self.datasets = dict(datasets or default_datasets())
        self.universes = dict(workspace_universes() if universes is None else universes)
        self.universes = {k: v for k, v in self.universes.items() if k not in self.datasets}
        self.strategies = dict(strategies or default_strategies())
        self.record = record
        self._frames: dict[str, Any] = {}
        self.runs = 0
        style = {"description_width": "110px"}
        layout = w.Layout(width="460px")
        self.dataset = w.Dropdown(
            options=list(self.datasets) + list(self.universes), description="dataset", style=style,
            layout=layout,
        )
        first = "sma_cross" if "sma_cross" in self.strategies else next(iter(self.strategies), None)
        self.strategy = w.Dropdown(
            options=list(self.strategies), value=first, description="strategy", style=style, layout=layout
        )
        self.fill = w.ToggleButtons(options=["close", "next_open"], description="fill", style=style)
        self.fees = w.FloatSlider(
            value=0.0,
            min=0.0,
            max=50.0,
            step=1.0,
            description="fees (bps)",
            continuous_update=False,
            style=style,
            layout=layout,
        )
        self.size = w.FloatSlider(  # portfolios only: percent of the buying power left, per entry
            value=20.0,
            min=1.0,
            max=100.0,
            step=1.0,
            description="size (%)",
            tooltip="each entry buys this percent of the buying power left (portfolios)",
            continuous_update=False,
            style=style,
            layout=w.Layout(width="460px", display="none"),
        )
        self.size.add_class("qlmw-dashboard-size")
        self.sliders = w.VBox()
        self.status = w.HTML()
        self.report = BacktestReport()
        self.portfolio = PortfolioReport()
        self.controls = w.VBox(
            [self.dataset, self.strategy, self.fill, self.fees, self.size, self.sliders, self.status]
        )
        self.controls.add_class("qlmw-dashboard-controls")
        super().__init__(children=[self.controls, self.report], **kwargs)
        self.add_class("qlmw-dashboard")
        self._build_sliders()
        self.dataset.observe(self._on_change, "value")
        self.strategy.observe(self._on_strategy, "value")
        self.fill.observe(self._on_change, "value")
        self.fees.observe(self._on_change, "value")
        self.size.observe(self._on_change, "value")
        self.run()

    def params(self) -> dict[str, Any]:
        """The parameter values the sliders show."""
        return {s.description: s.value for s in self.sliders.children}

    def is_portfolio(self) -> bool:
        """True when the picked data is a universe (the run is a portfolio backtest)."""
        return self.dataset.value in self.universes

    def settings(self) -> dict[str, Any]:
        """The backtest settings the controls show (the size only for a universe)."""
        out: dict[str, Any] = {"fill": self.fill.value, "fees": self.fees.value / 10_000}
        if self.is_portfolio():
            out.update(size=self.size.value / 100, size_type="percent")
        return out

    def run(self) -> Any:
        """Backtest the current selection and show it; returns the result (or the error)."""
        if self.is_portfolio():
            return self._run_portfolio()
        from qlm_kernel.session import backtest

        self.size.layout.display = "none"
        try:
            frame = self._frame(self.dataset.value)
            outcome: Any = backtest(
                self.strategies[self.strategy.value],
                frame,
                record=self.record,
                fill=self.fill.value,
                fees=self.fees.value / 10_000,
                **self.params(),
            )
        except QLMError as err:
            outcome = err
        self.report.update(outcome)
        self.children = [self.controls, self.report]
        label = "failed" if isinstance(outcome, QLMError) else f"{outcome.stats['n_trades']} trades"
        return self._ran(label, outcome)

    # -- internals --------------------------------------------------------------------------------
    def _run_portfolio(self) -> Any:
        from qlm_kernel.session import backtest_portfolio

        self.size.layout.display = None
        try:
            outcome: Any = backtest_portfolio(
                self.strategies[self.strategy.value],
                self.universes[self.dataset.value],
                record=self.record,
                **self.settings(),
                **self.params(),
            )
        except QLMError as err:
            outcome = err
        self.portfolio.update(outcome)
        self.children = [self.controls, self.portfolio]
        if isinstance(outcome, QLMError):
            label = "failed"
        else:
            m = len(outcome.symbols)
            label = f"{outcome.stats['n_trades']} trades on {m} symbol{'s' if m != 1 else ''}"
        return self._ran(label, outcome)

    def _ran(self, label: str, outcome: Any) -> Any:
        self.runs += 1
        self.status.value = f"<span class='qlmw-dashboard-status'>run {self.runs}: {label}</span>"
        return outcome


    def _frame(self, name: str) -> Any:
        if name not in self._frames:
            self._frames[name] = self.datasets[name]()
        return self._frames[name]

    def _build_sliders(self) -> None:
        from qlm_kernel.strategy.loader import resolve_strategy

        sliders: list[Any] = []
        try:
            cls = type(resolve_strategy(self.strategies[self.strategy.value]))
        except QLMError:  # a broken strategy file: no sliders; run() shows the error panel
            self.sliders.children = sliders
            return
        for name, spec in cls.params_spec().items():
            slider = _slider(name, spec)
            if slider is not None:
                slider.observe(self._on_change, "value")
                sliders.append(slider)
        self.sliders.children = sliders

    def _on_strategy(self, _change: Any) -> None:
        self._build_sliders()
        self.run()

    def _on_change(self, _change: Any) -> None:
        self.run()


def _slider(name: str, spec: dict[str, Any]) -> Any:
    """A slider (or dropdown / checkbox) for one parameter spec; None when it cannot be shown."""
    common = {
        "description": name,
        "continuous_update": False,
        "style": {"description_width": "110px"},
        "layout": w.Layout(width="460px"),
    }
    kind, default = spec.get("kind"), spec.get("default")
    if kind == "categorical":
        return w.Dropdown(options=list(spec.get("choices") or []), value=default, description=name)
    if kind == "bool":
        return w.Checkbox(value=bool(default), description=name)
    lo = spec.get("min") if spec.get("min") is not None else (0 if default is None else default / 4)
    hi = spec.get("max") if spec.get("max") is not None else (default * 4 if default else 100)
    if kind == "int":
        return w.IntSlider(
            value=int(default), min=int(lo), max=int(hi), step=int(spec.get("step") or 1), **common
        )
    if kind == "float":
        step = spec.get("step") or (float(hi) - float(lo)) / 100
        return w.FloatSlider(value=float(default), min=float(lo), max=float(hi), step=float(step), **common)
    return None
