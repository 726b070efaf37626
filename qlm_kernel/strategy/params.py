"""`Param`: a typed, bounded strategy parameter declared as a class attribute.

The kind (``int``, ``float``, ``bool``, ``categorical``) is inferred from the default (or from
``choices``), so ``fast = Param(10, min=2, max=200)`` is an int in [2, 200]. Values assigned by
``Strategy(**params)`` are checked against it; strings are parsed (the CLI passes ``k=v`` text),
integral floats are accepted for ints (optimizers and JSON produce ``10.0``); anything else wrong
raises ConfigError naming the strategy, the parameter, the value and what is allowed.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from qlm_kernel.errors import ConfigError

KINDS = ("int", "float", "bool", "categorical")
_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off"}
_FLOAT_GRID_POINTS = 11  # float params with bounds but no step: this many evenly spaced values


class Param:
    """A strategy parameter: ``Param(default, min=None, max=None, step=None, choices=None, doc="")``.

    ``min``/``max`` are inclusive; ``step`` is the grid spacing used by ``values()`` (ints default
    to 1); ``choices`` makes it categorical. Read on an instance it gives the instance's value.
    """

    def __init__(
        self,
        default: Any,
        min: Any = None,
        max: Any = None,
        step: Any = None,
        choices: Any = None,
        doc: str = "",
    ) -> None:
        self.name: str = "?"
        self.owner: str = "?"
        self.doc = doc
        self.kind = _infer_kind(default, choices)
        self.choices: tuple[Any, ...] | None = None
        if self.kind == "categorical":
            self._init_categorical(default, min, max, step, choices)
        elif self.kind == "bool":
            _refuse_bounds("a bool", min, max, step, default)
            self.min = self.max = self.step = None
            self.default = bool(default)
        else:
            self._init_numeric(default, min, max, step)

    def _init_categorical(self, default: Any, min: Any, max: Any, step: Any, choices: Any) -> None:
        _refuse_bounds("a categorical", min, max, step, default)
        if isinstance(choices, (str, bytes)) or not hasattr(choices, "__iter__"):
            raise _decl_error(
                f"choices must be a list of values, got {choices!r}",
                "write e.g. Param('sma', choices=['sma', 'ema'])",
                default,
            )
        self.choices = tuple(_py(c) for c in choices)
        if not self.choices:
            raise _decl_error("choices is empty", "list at least one allowed value", default)
        if _py(default) not in self.choices:
            raise _decl_error(
                f"default {default!r} is not one of the choices {list(self.choices)}",
                "make the default one of the choices",
                default,
            )
        self.default = _py(default)
        self.min = self.max = self.step = None

    def _init_numeric(self, default: Any, min: Any, max: Any, step: Any) -> None:
        cast = int if self.kind == "int" else float
        for label, bound in (("min", min), ("max", max), ("step", step)):
            if bound is None:
                continue
            ok = _is_int(bound) if self.kind == "int" else _is_real(bound) and math.isfinite(bound)
            if not ok:
                raise _decl_error(
                    f"{label}={bound!r} does not suit a {self.kind} parameter",
                    f"give {label} as {'an int' if self.kind == 'int' else 'a number'}"
                    + (" (or make the default a float, e.g. 1.0)" if self.kind == "int" else ""),
                    default,
                )
        self.default = cast(default)
        if self.kind == "float" and not math.isfinite(self.default):
            raise _decl_error("default must be finite", "give a finite default", default)
        self.min = None if min is None else cast(min)
        self.max = None if max is None else cast(max)
        self.step = None if step is None else cast(step)
        if self.min is not None and self.max is not None and self.min > self.max:
            raise _decl_error(f"min={min!r} is above max={max!r}", "swap min and max", default)
        if self.min is not None and self.default < self.min:
            raise _decl_error(f"default {default!r} is below min={min!r}", "lower min", default)
        if self.max is not None and self.default > self.max:
            raise _decl_error(f"default {default!r} is above max={max!r}", "raise max", default)
        if self.step is not None and self.step <= 0:
            raise _decl_error(f"step={step!r} must be > 0", "use a positive step", default)

    # -- descriptor protocol ---------------------------------------------------------------------

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        self.owner = owner.__dict__.get("name") or owner.__name__

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        return obj._values[self.name]

    def __set__(self, obj: Any, value: Any) -> None:
        obj._values[self.name] = self.validate(value, strategy=type(obj).name)

    # -- checking and grids ----------------------------------------------------------------------

    def validate(self, value: Any, strategy: str | None = None) -> Any:
        """``value`` converted to this parameter's kind, or ConfigError saying what is allowed."""
        strategy = strategy or self.owner
        if self.kind == "categorical":
            return self._validate_choice(value, strategy)
        if isinstance(value, str):
            value = self._parse(value, strategy)
        if self.kind == "bool":
            if isinstance(value, (bool, np.bool_)):
                return bool(value)
            raise self._error(value, strategy, "must be True or False")
        if isinstance(value, (bool, np.bool_)) or not _is_real(value):
            raise self._error(value, strategy, f"must be {'an int' if self.kind == 'int' else 'a number'}")
        if self.kind == "int":
            if not _is_int(value):
                if isinstance(value, (float, np.floating)) and float(value).is_integer():
                    value = int(value)
                else:
                    raise self._error(value, strategy, "must be a whole number")
            value = int(value)
        else:
            value = float(value)
            if not math.isfinite(value):
                raise self._error(value, strategy, "must be finite")
        if (self.min is not None and value < self.min) or (self.max is not None and value > self.max):
            raise self._error(value, strategy, f"is out of range {self.range_text()}")
        return value

    def _validate_choice(self, value: Any, strategy: str) -> Any:
        assert self.choices is not None
        value = _py(value)
        for choice in self.choices:
            if type(choice) is type(value) and choice == value:
                return choice
        if isinstance(value, str):  # CLI text for a non-str choice, e.g. "20" for choices=[10, 20]
            for choice in self.choices:
                if str(choice) == value:
                    return choice
        for choice in self.choices:  # 1 == 1.0 and numpy scalars
            if not isinstance(choice, bool) and not isinstance(value, bool) and choice == value:
                return choice
        raise self._error(value, strategy, f"is not one of {list(self.choices)}")

    def _parse(self, text: str, strategy: str) -> Any:
        raw = text.strip()
        try:
            if self.kind == "bool":
                low = raw.lower()
                if low in _TRUE:
                    return True
                if low in _FALSE:
                    return False
                raise ValueError(raw)
            number = float(raw)
            return int(number) if self.kind == "int" and number.is_integer() else number
        except ValueError:
            raise self._error(text, strategy, f"cannot be read as {self.kind}") from None

    def _error(self, value: Any, strategy: str, problem: str) -> ConfigError:
        return ConfigError(
            f"{strategy}.{self.name} = {value!r} {problem}",
            hint=f"use {self.allowed_text()}",
            strategy=strategy,
            param=self.name,
            value=repr(value),
            kind=self.kind,
            min=self.min,
            max=self.max,
            choices=list(self.choices) if self.choices is not None else None,
        )

    def range_text(self) -> str:
        """Allowed range in words: ``[2, 200]``, ``>= 2``, ``any``."""
        if self.min is not None and self.max is not None:
            return f"[{self.min}, {self.max}]"
        if self.min is not None:
            return f">= {self.min}"
        if self.max is not None:
            return f"<= {self.max}"
        return "any"

    def allowed_text(self) -> str:
        """What values are allowed, for hints."""
        if self.kind == "categorical":
            return f"one of {list(self.choices or ())}"
        if self.kind == "bool":
            return "True or False"
        what = "an int" if self.kind == "int" else "a number"
        rng = self.range_text()
        return what if rng == "any" else f"{what} in {rng}" if rng.startswith("[") else f"{what} {rng}"

    def values(self, min: Any = None, max: Any = None, step: Any = None) -> list[Any]:
        """The default search grid: ``min..max`` by ``step`` (inclusive), the choices, or both bools.

        Arguments override the declared bounds. Ints step by 1 unless told; floats without a step
        get 11 evenly spaced values. A numeric param without both bounds yields ``[default]``.
        """
        if self.kind == "categorical":
            return list(self.choices or ())
        if self.kind == "bool":
            return [False, True]
        lo = self.min if min is None else min
        hi = self.max if max is None else max
        st = self.step if step is None else step
        if lo is None or hi is None:
            return [self.default]
        if self.kind == "int":
            grid = range(int(lo), int(hi) + 1, int(st or 1))
            return list(grid[: _grid_count(len(grid))])
        if st is None:
            return [round(float(v), 12) for v in np.linspace(float(lo), float(hi), _FLOAT_GRID_POINTS)]
        count = math.floor((hi - lo) / st + 1e-9) + 1
        return [float(round(lo + i * st, 12)) for i in range(_grid_count(count))]

    def spec(self) -> dict[str, Any]:
        """JSON-safe description: name, kind, default, min, max, step, choices, doc."""
        return {
            "name": self.name,
            "kind": self.kind,
            "default": self.default,
            "min": self.min,
            "max": self.max,
            "step": self.step,
            "choices": list(self.choices) if self.choices is not None else None,
            "doc": self.doc,
        }

    def __repr__(self) -> str:
        extras = [f"{k}={getattr(self, k)!r}" for k in ("min", "max", "step") if getattr(self, k) is not None]
        if self.choices is not None:
            extras.append(f"choices={list(self.choices)!r}")
        return f"Param({', '.join([repr(self.default), *extras])})"


def _grid_count(count: int) -> int:
    """Grid length guard: a float grid of more than a million points is a typo, not a search."""
    if count > 1_000_000:
        raise ConfigError(
            f"parameter grid would have {count} values",
            hint="use a larger step or narrower bounds",
            count=count,
        )
    return max(count, 0)


def _infer_kind(default: Any, choices: Any) -> str:
    if choices is not None:
        return "categorical"
    if isinstance(default, (bool, np.bool_)):
        return "bool"
    if _is_int(default):
        return "int"
    if _is_real(default):
        return "float"
    raise _decl_error(
        f"cannot infer the kind of a parameter with default {default!r}",
        "use an int, float or bool default, or give choices=[...] for a categorical parameter",
        default,
    )


def _refuse_bounds(kind: str, min: Any, max: Any, step: Any, default: Any) -> None:
    given = [k for k, v in (("min", min), ("max", max), ("step", step)) if v is not None]
    if given:
        raise _decl_error(
            f"{', '.join(given)} make no sense for {kind} parameter",
            "drop min/max/step (use choices=[...] to restrict values)",
            default,
        )


def _decl_error(problem: str, hint: str, default: Any) -> ConfigError:
    return ConfigError(f"Param({default!r}): {problem}", hint=hint, code="BAD_PARAM", default=repr(default))


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_real(value: Any) -> bool:
    numeric = isinstance(value, (int, float, np.integer, np.floating))
    return numeric and not isinstance(value, (bool, np.bool_))


def _py(value: Any) -> Any:
    """numpy scalars -> Python scalars (JSON-safe, hashable, stable reprs)."""
    return value.item() if isinstance(value, np.generic) else value
