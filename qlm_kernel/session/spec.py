"""`RunSpec`: one validated description of a run — strategy, params, settings, data source, record flag.

Every front end builds one (the Python API from flat keywords, the CLI from flags, MCP from JSON) and
the session runs it, so a setting is checked, defaulted and named the same way everywhere. Settings
and strategy parameters live in separate mappings; the flat Python form splits them by name, which is
safe because a `Param` named like a setting is refused when the strategy class is defined.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from qlm_kernel.engine.settings import (
    SETTING_NAMES,
    check_mapping,
    check_settings,
    closest,
    partition_settings,
)
from qlm_kernel.errors import ConfigError, spelled
from qlm_kernel.session.limits import USER, Limits
from qlm_kernel.workspace.data import check_sample, resolve_data

DATA_KEYWORDS = ("data", "dataset", "sample")

# the setting checks live with the settings
__all__ = ["SETTING_NAMES", "DataSource", "RunSpec", "check_mapping", "check_settings"]


def check_sample_size(sample: Any, limits: Limits) -> None:
    """Refuse a sample above the front end's ``max_sample_bars`` cap (LIMIT_EXCEEDED, naming the option)."""
    n = sample.get("n") if isinstance(sample, dict) else None
    if isinstance(n, int) and not isinstance(n, bool):
        limits.check("sample n (bars)", n, "max_sample_bars", "ask for fewer bars")


def check_data_keywords(params: dict[str, Any]) -> None:
    """With no data named, a keyword close to ``data``/``dataset``/``sample`` (``datset=``) is that
    keyword mistyped (UNKNOWN_KEYWORD naming it), not a strategy parameter."""
    for key in params:
        near = closest(key, DATA_KEYWORDS)
        if near is not None:
            raise ConfigError(f"unknown keyword {key!r}", hint=f"did you mean {near!r}?",
                              code="UNKNOWN_KEYWORD", fixes=spelled(near, params[key], lead="write it as "),
                              key=key, closest=near)


@dataclass(frozen=True)
class DataSource:
    """Where a run's bars come from: a frame or file (``data``), a workspace ``dataset``, or a ``sample``."""

    data: Any = None
    dataset: str | None = None
    sample: dict[str, Any] | None = None
    repair: bool = False

    def describe(self) -> dict[str, Any]:
        """JSON-safe: ``{"kind": "frame" | "file" | "dataset" | "sample", ...}``."""
        if self.sample is not None:
            return {"kind": "sample", "sample": dict(self.sample)}
        if self.dataset is not None:
            return {"kind": "dataset", "dataset": self.dataset}
        if isinstance(self.data, pd.DataFrame):
            return {"kind": "frame", "rows": len(self.data)}
        from pathlib import Path

        return {"kind": "file", "path": str(Path(self.data).expanduser().resolve())}

    @classmethod
    def of(
        cls,
        data: Any = None,
        *,
        dataset: str | None = None,
        sample: dict[str, Any] | None = None,
        limits: Limits = USER,
        repair: bool = False,
    ) -> DataSource:
        """A source from the usual three arguments; none at all means the front end's default sample."""
        if data is None and dataset is None and sample is None and limits.default_sample is not None:
            sample = dict(limits.default_sample)
        check_sample_size(sample, limits)
        return cls(
            data, dataset, None if sample is None else check_sample(sample, limits.max_sample_bars), repair
        )

    def resolve(self, limits: Limits = USER) -> tuple[pd.DataFrame, str | None]:
        """(frame, dataset name or None), through the one data resolution, with the sample cap."""
        return resolve_data(
            self.data,
            dataset=self.dataset,
            sample=self.sample,
            max_bars=limits.max_sample_bars,
            repair=self.repair,
        )


@dataclass(frozen=True)
class RunSpec:
    """One backtest to run: strategy (class, instance, file path, name or Signals), its parameters, the
    backtest settings given (others keep their defaults), the data source, and whether to record."""

    strategy: Any
    params: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    data: DataSource = field(default_factory=DataSource)
    record: bool | None = None
    source: str = "python"

    @classmethod
    def build(
        cls,
        strategy: Any,
        *,
        params: Any = None,
        settings: Any = None,
        data: Any = None,
        dataset: str | None = None,
        sample: dict[str, Any] | None = None,
        record: bool | None = None,
        source: str = "python",
        limits: Limits = USER,
    ) -> RunSpec:
        """A spec from separate ``params`` and ``settings`` mappings (CLI, MCP, widgets).

        With no data source at all, the front end's ``limits.default_sample`` is used (MCP: synthetic,
        10,000 bars); without one that is DATA_AMBIGUOUS when the data is resolved.
        """
        return cls(
            strategy=strategy,
            params=check_mapping(params, "params"),
            settings=check_settings(settings),
            data=DataSource.of(data, dataset=dataset, sample=sample, limits=limits),
            record=record,
            source=source,
        )

    @classmethod
    def from_kwargs(
        cls,
        strategy: Any,
        data: Any = None,
        *,
        dataset: str | None = None,
        sample: dict[str, Any] | None = None,
        record: bool | None = None,
        source: str = "python",
        **kwargs: Any,
    ) -> RunSpec:
        """A spec from the Python API's flat keywords: setting names are settings, the rest params."""
        settings, params = partition_settings(kwargs)
        if data is None and dataset is None and sample is None:
            check_data_keywords(params)
        return cls.build(
            strategy,
            params=params,
            settings=settings,
            data=data,
            dataset=dataset,
            sample=sample,
            record=record,
            source=source,
        )
