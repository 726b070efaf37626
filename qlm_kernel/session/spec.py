"""`RunSpec`: one validated description of a run — strategy, params, settings, data source, record flag.

Every front end builds one (the Python API from flat keywords, the CLI from flags, MCP from JSON) and
the session runs it, so a setting is checked, defaulted and named the same way everywhere. Settings
and strategy parameters live in separate mappings; the flat Python form splits them by name, which is
safe because a `Param` named like a setting is refused when the strategy class is defined.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from qlm_kernel.engine.settings import SETTING_NAMES, BacktestSettings, partition_settings
from qlm_kernel.errors import ConfigError
from qlm_kernel.session.limits import USER, Limits
from qlm_kernel.workspace.data import check_sample, resolve_data


def closest(name: str, known: list[str] | tuple[str, ...]) -> str | None:
    """The known name closest to ``name`` (difflib), or None when nothing is close."""
    found = difflib.get_close_matches(str(name), list(known), n=1)
    return found[0] if found else None


def unknown_key_error(
    what: str, key: str, known: list[str] | tuple[str, ...], *, code: str, extra_hint: str = ""
) -> ConfigError:
    """ConfigError for an unknown key: lists the known ones and the closest match."""
    near = closest(key, known)
    hint = (f"did you mean {near!r}? " if near else "") + f"{what}: {', '.join(known)}"
    return ConfigError(
        f"unknown {what[:-1] if what.endswith('s') else what} {key!r}",
        hint=hint + extra_hint,
        code=code,
        key=key,
        known=list(known),
        closest=near,
    )


def check_mapping(value: Any, what: str) -> dict[str, Any]:
    """A JSON object argument as a dict (None is empty); anything else is BAD_ARGUMENT."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"{what} must be an object mapping names to values, got {type(value).__name__}",
            hint=f"e.g. {what}={{}}",
            code="BAD_ARGUMENT",
        )
    return dict(value)


def check_settings(settings: Any) -> dict[str, Any]:
    """Backtest settings, checked: only known names (UNKNOWN_SETTING with the closest), valid values."""
    given = check_mapping(settings, "settings")
    for key in given:
        if key not in SETTING_NAMES:
            raise unknown_key_error(
                "settings",
                key,
                SETTING_NAMES,
                code="UNKNOWN_SETTING",
                extra_hint="; strategy parameters go in params",
            )
    BacktestSettings(**given)  # value checks (ConfigError naming the setting)
    return given


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

    def backtest_settings(self) -> BacktestSettings:
        """The full settings (defaults filled in)."""
        return BacktestSettings(**self.settings)
