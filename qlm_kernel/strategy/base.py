"""`Strategy`: the base class users subclass — declared `Param`s plus a ``signals(data)`` method.

``SmaCross(fast=5)`` validates its parameters up front (unknown names, kinds, bounds) so an
optimizer or an assistant learns about a bad value before any data is touched. Instances are
cheap, compare equal by class and parameters, and can be re-created with ``with_params``.
"""

from __future__ import annotations

import inspect
import sys
from typing import Any, ClassVar

from qlm_kernel.engine.settings import SETTING_NAMES
from qlm_kernel.errors import ConfigError, StrategyError, closest, spelled
from qlm_kernel.strategy.params import Param
from qlm_kernel.strategy.signals import Signals

RUN_KEYWORDS = (*SETTING_NAMES, "data", "dataset", "sample", "record", "source", "strategy")
"""Names a `Param` may not take: ``qlm.backtest(strategy, data, **kwargs)`` reads these keywords itself
(backtest settings and the run's own arguments), so a parameter with such a name could never be set."""


class Strategy:
    """Base class of every strategy.

    Subclasses declare parameters as class attributes (``fast = Param(10, min=2, max=200)``) and
    implement ``signals(self, data) -> Signals`` where ``data`` is the OHLCV DataFrame (lower-case
    columns ``open, high, low, close, volume``). ``name`` defaults to the class name;
    ``source_file`` (and, for files loaded by `load_strategy`, ``source_text``/``source_hash``)
    record where the class came from.
    """

    name: ClassVar[str] = "Strategy"
    source_file: ClassVar[str | None] = None
    source_text: ClassVar[str | None] = None
    source_hash: ClassVar[str | None] = None
    _params_: ClassVar[dict[str, Param]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        params: dict[str, Param] = {}
        for klass in reversed(cls.__mro__):
            for key, value in vars(klass).items():
                if isinstance(value, Param):
                    params[key] = value
                elif key in params:  # a subclass replaced the Param with a plain attribute
                    del params[key]
        reserved = sorted(set(params) & _RESERVED)
        if reserved:
            raise ConfigError(
                f"{cls.__name__}: parameter name {reserved[0]!r} is reserved by Strategy",
                hint=f"rename it (e.g. {reserved[0]}_) — reserved: {sorted(_RESERVED)}",
                code="BAD_PARAM",
                strategy=cls.__name__,
                param=reserved[0],
            )
        taken = [key for key in params if key in RUN_KEYWORDS]
        if taken:
            kind = "a backtest setting" if taken[0] in SETTING_NAMES else "an argument of qlm.backtest"
            raise ConfigError(
                f"{cls.__name__}: parameter name {taken[0]!r} is {kind}, so "
                f"qlm.backtest(..., {taken[0]}=...) could not tell them apart",
                hint=f"rename the Param (e.g. {taken[0]}_ or my_{taken[0]}); names a strategy may not use: "
                f"{', '.join(RUN_KEYWORDS)}",
                code="PARAM_NAME_TAKEN",
                strategy=cls.__name__,
                param=taken[0],
            )
        cls._params_ = params
        if not isinstance(cls.__dict__.get("name"), str):
            cls.name = cls.__name__
        if "source_file" not in cls.__dict__:
            cls.source_file = _guess_source_file(cls)

    def __init__(self, **params: Any) -> None:
        cls = type(self)
        if cls.signals is Strategy.signals:
            raise StrategyError(
                f"{cls.__name__} does not define signals(self, data)",
                hint="add `def signals(self, data): ... return Signals(entry_long=..., exit_long=...)`",
                code="NO_SIGNALS_METHOD",
                strategy=cls.name,
                file=cls.source_file,
            )
        known = cls._params_
        for key in params:
            if key not in known:
                raise _unknown_param(cls, key, params[key])
        self._values: dict[str, Any] = {
            key: (p.validate(params[key], strategy=cls.name) if key in params else p.default)
            for key, p in known.items()
        }

    def signals(self, data: Any) -> Signals:
        """Return the strategy's `Signals` for ``data`` (the OHLCV DataFrame). Override this."""
        raise NotImplementedError

    # -- parameters ------------------------------------------------------------------------------

    @property
    def params(self) -> dict[str, Any]:
        """This instance's parameter values (a copy), in declaration order."""
        return dict(self._values)

    def with_params(self, **overrides: Any) -> Strategy:
        """A new instance with some parameters changed (validated like the constructor)."""
        return type(self)(**{**self._values, **overrides})

    @classmethod
    def param_defs(cls) -> dict[str, Param]:
        """The declared `Param` objects by name (inherited ones included)."""
        return dict(cls._params_)

    @classmethod
    def params_spec(cls) -> dict[str, dict[str, Any]]:
        """JSON-safe description of each parameter: name, kind, default, min, max, step, choices, doc."""
        return {key: p.spec() for key, p in cls._params_.items()}

    @classmethod
    def param_space(cls) -> dict[str, list[Any]]:
        """The default search space ``{name: [values...]}`` (each `Param.values()` grid), the shape
        ``optimize(space=...)`` takes."""
        return {key: p.values() for key, p in cls._params_.items()}

    @classmethod
    def info(cls) -> dict[str, Any]:
        """JSON-safe summary for listings: name, class, file, doc, params."""
        return {
            "name": cls.name,
            "class": cls.__name__,
            "file": cls.source_file,
            "source_hash": cls.source_hash,
            "doc": inspect.cleandoc(cls.__doc__ or "").split("\n\n")[0],
            "params": cls.params_spec(),
        }

    # -- dunder ----------------------------------------------------------------------------------

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._values.items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._values == other._values  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), tuple(self._values.items())))

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle by reference when the class is importable, else by file path + class name (so
        strategies loaded from files also travel to worker processes)."""
        cls = type(self)
        module = sys.modules.get(cls.__module__)
        if module is not None and getattr(module, cls.__qualname__, None) is cls:
            return (_rebuild, (cls, self._values))
        return (_rebuild_from_file, (cls.source_file, cls.__name__, self._values))


def _unknown_param(cls: type[Strategy], key: str, value: Any = None) -> ConfigError:
    """UNKNOWN_PARAM naming the closest of the strategy's parameters and the backtest settings together;
    when that is a setting, each front end's fix says how that front end takes settings."""
    known = list(cls._params_)
    calls = [k for k in RUN_KEYWORDS if k not in SETTING_NAMES]
    near = closest(key, [*known, *SETTING_NAMES, *calls])
    fixes = None
    if near in known:
        hint = f"did you mean {near!r}? {cls.name} takes: {', '.join(known)}"
    elif near in calls:
        hint = (f"did you mean the keyword {near!r} of the call? {cls.name} takes: "
                f"{', '.join(known) or 'no parameters'}")
    elif near:
        hint = (f"did you mean the backtest setting {near!r}? {cls.name} takes: "
                f"{', '.join(known) or 'no parameters'}; settings: {', '.join(SETTING_NAMES)}")
        fixes = spelled(near, value, mcp_in="settings", lead="settings are given as ")
    elif known:
        hint = f"{cls.name} takes: {', '.join(known)}"
    else:
        hint = f"{cls.name} takes no parameters"
    return ConfigError(
        f"{cls.name} has no parameter {key!r}",
        hint=hint,
        code="UNKNOWN_PARAM",
        fixes=fixes,
        strategy=cls.name,
        param=key,
        known=known,
        closest=near,
    )


def _guess_source_file(cls: type) -> str | None:
    module = sys.modules.get(cls.__module__)
    path = getattr(module, "__file__", None)
    if path:
        return str(path)
    for value in vars(cls).values():  # e.g. defined in a notebook cell: use the code's file name
        code = getattr(value, "__code__", None)
        if code is not None:
            return str(code.co_filename)
    return None


def _rebuild(cls: type[Strategy], values: dict[str, Any]) -> Strategy:
    return cls(**values)


def _rebuild_from_file(path: str | None, class_name: str, values: dict[str, Any]) -> Strategy:
    from qlm_kernel.strategy.loader import load_strategy

    if not path:
        raise StrategyError(
            f"cannot re-create strategy {class_name}: its source file is unknown",
            hint="define the strategy in a .py file and load it with load_strategy()",
            code="NOT_FOUND",
        )
    return load_strategy(path, class_name)(**values)


_RESERVED = {key for key in vars(Strategy) if not key.startswith("_")}


class SignalsStrategy(Strategy):
    """Wraps ready-made `Signals` so the engine can treat ``backtest(Signals(...), df)`` like any
    strategy: ``signals(data)`` returns them unchanged. It has no parameters."""

    name = "signals"

    def __init__(self, signals: Signals) -> None:
        super().__init__()
        self._signals = signals

    def signals(self, data: Any) -> Signals:
        """The wrapped signals, whatever the data."""
        return self._signals

    def with_params(self, **overrides: Any) -> Strategy:
        """Only valid without overrides: fixed signals have no parameters."""
        if overrides:
            key = next(iter(overrides))
            raise _unknown_param(type(self), key, overrides[key])
        return self

    def __repr__(self) -> str:
        return f"SignalsStrategy({self._signals!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SignalsStrategy) and other._signals is self._signals

    def __hash__(self) -> int:
        return id(self._signals)

    def __reduce__(self) -> tuple[Any, ...]:
        return (SignalsStrategy, (self._signals,))
