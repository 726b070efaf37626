"""`Dashboard`: dataset and strategy pickers, parameter sliders and a live `BacktestReport` (for Voilà)."""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable, Mapping
from typing import Any

import ipywidgets as w

from qlm_kernel.errors import QLMError
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
    """``"dataset NAME (ROWS bars)"`` -> loader for every dataset in ``$QLM_HOME/data`` (none on error)."""
    from qlm_kernel.session import list_datasets

    try:
        listed = list_datasets()["datasets"]
    except QLMError:
        return {}
    return {f"dataset {meta['name']} ({int(meta.get('rows') or 0):,} bars)":
            functools.partial(_load, dataset=str(meta["name"])) for meta in listed}


def _load(**source: Any) -> Any:
    """The frame of a data source, through the session's one data resolution."""
    from qlm_kernel.session import DataSource

    return DataSource.of(**source).resolve()[0]


def default_strategies() -> dict[str, Any]:
    """Bundled and workspace strategy files by name (``qlm_kernel.strategy.available_strategies``)."""
    from qlm_kernel.strategy.loader import available_strategies

    return dict(sorted(available_strategies().items()))


class Dashboard(w.VBox):
    """Pick a dataset and a strategy, move its parameter sliders: the backtest re-runs on release and
    the report (stats, chart, or the error panel) updates in place."""

    def __init__(
        self,
        datasets: Mapping[str, Loader] | None = None,
        strategies: Mapping[str, Any] | None = None,
        *,
        record: bool = False,
        **kwargs: Any,
    ) -> None:
        self.datasets = dict(datasets or default_datasets())
        self.strategies = dict(strategies or default_strategies())
        self.record = record
        self._frames: dict[str, Any] = {}
        self.runs = 0
        style = {"description_width": "110px"}
        layout = w.Layout(width="460px")
        self.dataset = w.Dropdown(
            options=list(self.datasets), description="dataset", style=style, layout=layout
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
        self.sliders = w.VBox()
        self.status = w.HTML()
        self.report = BacktestReport()
        controls = w.VBox([self.dataset, self.strategy, self.fill, self.fees, self.sliders, self.status])
        controls.add_class("qlmw-dashboard-controls")
        super().__init__(children=[controls, self.report], **kwargs)
        self.add_class("qlmw-dashboard")
        self._build_sliders()
        self.dataset.observe(self._on_change, "value")
        self.strategy.observe(self._on_strategy, "value")
        self.fill.observe(self._on_change, "value")
        self.fees.observe(self._on_change, "value")
        self.run()

    def params(self) -> dict[str, Any]:
        """The parameter values the sliders show."""
        return {s.description: s.value for s in self.sliders.children}

    def run(self) -> Any:
        """Backtest the current selection and show it; returns the result (or the error)."""
        from qlm_kernel.session import backtest

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
        self.runs += 1
        label = "failed" if isinstance(outcome, QLMError) else f"{outcome.stats['n_trades']} trades"
        self.status.value = f"<span class='qlmw-dashboard-status'>run {self.runs}: {label}</span>"
        return outcome

    # -- internals --------------------------------------------------------------------------------
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
