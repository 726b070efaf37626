"""Backtest settings: validation of the user's keyword arguments and packing for the kernels."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from qlm_kernel.engine import layout as L
from qlm_kernel.errors import ConfigError, closest, spelled  # closest: re-exported (callers import it here)

SETTING_NAMES = (
    "fill",
    "fees",
    "fixed_fees",
    "slippage",
    "init_cash",
    "size",
    "size_type",
    "integer",
    "direction",
    "sl_stop",
    "tp_stop",
    "tsl_stop",
    "close_at_end",
    "leverage",
    "maintenance_margin",
)


@dataclass(frozen=True)
class BacktestSettings:
    """Execution settings of a backtest (everything that is not a strategy parameter).

    Costs are fractions (``fees=0.001`` is 10 bps of traded value; ``slippage=0.0005`` moves each
    fill price 5 bps against the trader); ``fixed_fees`` is cash per order. ``size=None`` invests
    all available cash; otherwise ``size_type`` says whether it counts units, cash value, or a
    fraction of equity. Stops are fractions of the entry price (``None`` = no stop).

    ``leverage`` sets buying power to leverage x cash at entry (1 = a cash account; a short's value is
    capped the same way). ``maintenance_margin`` is the fraction of the position's value that the
    account's net liquidation value (equity after the exit's slippage and fees) must stay above; when
    a bar's price reaches that level every position is liquidated there (at the open on a gap) with
    costs, and nothing trades afterwards. 0 liquidates when the account is worth nothing.
    """

    fill: str = "close"
    fees: float = 0.0
    fixed_fees: float = 0.0
    slippage: float = 0.0
    init_cash: float = 10_000.0
    size: float | None = None
    size_type: str = "units"
    integer: bool = False
    direction: str = "both"
    sl_stop: float | None = None
    tp_stop: float | None = None
    tsl_stop: float | None = None
    close_at_end: bool = False
    leverage: float = 1.0
    maintenance_margin: float = 0.0

    def __post_init__(self) -> None:
        _choice("fill", self.fill, L.FILL_CODES)
        _choice("size_type", self.size_type, L.SIZE_TYPE_CODES)
        _choice("direction", self.direction, L.DIRECTION_CODES)
        _number("fees", self.fees, low=0.0, high=1.0, high_open=True)
        _number("fixed_fees", self.fixed_fees, low=0.0)
        _number("slippage", self.slippage, low=0.0, high=1.0, high_open=True)
        _number("init_cash", self.init_cash, low=0.0, low_open=True)
        if self.size is not None:
            _number("size", self.size, low=0.0, low_open=True)
            if self.size_type == "percent" and self.size > 1.0:
                raise ConfigError(
                    f"size={self.size} is over 100% of equity for size_type='percent'",
                    hint="give a fraction in (0, 1], e.g. size=0.5 for half of equity",
                    setting="size",
                    value=self.size,
                )
        for name in ("sl_stop", "tsl_stop"):
            value = getattr(self, name)
            if value is not None:
                _number(name, value, low=0.0, high=1.0, low_open=True, high_open=True)
        if self.tp_stop is not None:
            _number("tp_stop", self.tp_stop, low=0.0, low_open=True)
        _number("leverage", self.leverage, low=1.0, high=1000.0)
        _number("maintenance_margin", self.maintenance_margin, low=0.0, high=1.0, high_open=True)
        if self.maintenance_margin >= 1.0 / self.leverage:
            raise ConfigError(
                f"maintenance_margin={self.maintenance_margin} is not below the initial margin "
                f"1/leverage={1.0 / self.leverage:.4g}: every entry would be liquidated at once",
                hint="lower maintenance_margin or leverage, e.g. leverage=5 with maintenance_margin=0.1",
                setting="maintenance_margin",
                value=self.maintenance_margin,
            )
        for name in ("integer", "close_at_end"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ConfigError(
                    f"{name} must be True or False, got {getattr(self, name)!r}",
                    hint=f"pass {name}=True or {name}=False",
                    setting=name,
                )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict of every setting."""
        return asdict(self)

    def pack(self) -> np.ndarray:
        """The kernels' per-column settings vector."""
        cfg = np.zeros(L.N_CFG)
        cfg[L.CFG_FILL] = L.FILL_CODES[self.fill]
        cfg[L.CFG_FEES] = self.fees
        cfg[L.CFG_FIXED_FEES] = self.fixed_fees
        cfg[L.CFG_SLIPPAGE] = self.slippage
        cfg[L.CFG_INIT_CASH] = self.init_cash
        cfg[L.CFG_SIZE] = np.nan if self.size is None else self.size
        cfg[L.CFG_SIZE_TYPE] = L.SIZE_TYPE_CODES[self.size_type]
        cfg[L.CFG_INTEGER] = float(self.integer)
        cfg[L.CFG_DIRECTION] = L.DIRECTION_CODES[self.direction]
        cfg[L.CFG_CLOSE_AT_END] = float(self.close_at_end)
        cfg[L.CFG_LEVERAGE] = self.leverage
        cfg[L.CFG_MAINTENANCE] = self.maintenance_margin
        return cfg


def unknown_key_error(
    what: str,
    key: str,
    known: list[str] | tuple[str, ...],
    *,
    code: str,
    extra_hint: str = "",
    error: type[ConfigError] = ConfigError,
) -> ConfigError:
    """``error`` for an unknown ``what`` (a singular noun) named ``key``: lists the ``known`` names and
    the closest match (context ``known``/``closest`` for programs)."""
    near = closest(key, known)
    hint = (f"did you mean {near!r}? " if near else "") + f"known: {', '.join(known)}"
    fixes = None
    if near is not None and code == "UNKNOWN_SETTING":  # each front end spells settings its own way
        fixes = spelled(near, mcp_in="settings", lead="settings are given as ")
    return error(
        f"unknown {what} {key!r}",
        hint=hint + extra_hint,
        code=code,
        fixes=fixes,
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


def check_settings(
    settings: Any, *, what: str = "setting", params_hint: str = "strategy parameters go in params",
    error: type[ConfigError] = ConfigError,
) -> dict[str, Any]:
    """Backtest settings given by name, checked: only `SETTING_NAMES` (``UNKNOWN_SETTING`` naming the
    closest one) with valid values; returns them as a dict (None is empty). The one check of every
    front end's settings and of the optimizer's keywords."""
    given = check_mapping(settings, "settings")
    for key in given:
        if key not in SETTING_NAMES:
            raise unknown_key_error(what, key, SETTING_NAMES, code="UNKNOWN_SETTING",
                                    extra_hint=f"; {params_hint}", error=error)
    BacktestSettings(**given)  # value checks (ConfigError naming the setting)
    return given


def partition_settings(kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(settings given, strategy parameters) of one flat keyword dict, split by `SETTING_NAMES` (a
    strategy cannot declare a `Param` with such a name, so the split is unambiguous)."""
    settings = {k: kwargs[k] for k in SETTING_NAMES if k in kwargs}
    params = {k: v for k, v in kwargs.items() if k not in SETTING_NAMES}
    return settings, params


def split_settings(kwargs: dict[str, Any]) -> tuple[BacktestSettings, dict[str, Any]]:
    """Separate backtest settings (validated, defaults filled) from strategy parameters."""
    settings, params = partition_settings(kwargs)
    return BacktestSettings(**settings), params


def _choice(name: str, value: Any, allowed: dict[str, int]) -> None:
    if value not in allowed:
        raise ConfigError(
            f"{name}={value!r} is not one of {sorted(allowed)}",
            hint=f"use {name}=" + " or ".join(repr(a) for a in allowed),
            setting=name,
            value=value,
        )


def _number(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigError(
            f"{name} must be a number, got {type(value).__name__} {value!r}",
            hint=f"pass {name} as a float, e.g. {name}=0.001",
            setting=name,
            value=value,
        )
    v = float(value)
    bad = not math.isfinite(v)
    if low is not None:
        bad = bad or v < low or (low_open and v == low)
    if high is not None:
        bad = bad or v > high or (high_open and v == high)
    if bad:
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        interval = f"{lo}{low if low is not None else '-inf'}, {high if high is not None else 'inf'}{hi}"
        raise ConfigError(
            f"{name}={value!r} is outside {interval}",
            hint=f"{name} is a fraction/amount in {interval}; e.g. 0.001 means 0.1%",
            setting=name,
            value=value,
        )
