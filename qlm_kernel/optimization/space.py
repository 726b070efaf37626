"""Search spaces: ``{param: [values...]}`` resolved against a strategy's declared `Param`s.

A grid is never materialized: combinations are addressed by a mixed-radix index (`combo_at`), so a
random sample or a genetic individual of a 10^12-point space costs no memory.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from qlm_kernel.errors import OptimizationError

Space = dict[str, list[Any]]


def _plain(value: Any) -> Any:
    """numpy scalars -> Python scalars (JSON-safe, hashable, equal to the store's decoded values)."""
    if isinstance(value, np.generic):
        return value.item()
    return value


def resolve_space(cls: type, space: Mapping[str, Any] | None) -> Space:
    """The concrete space for ``cls``: given values as lists; None (whole or per name) = `Param.values()`.

    Unknown names raise an `OptimizationError` whose hint lists the strategy's parameters.
    """
    defs = cls.param_defs()  # type: ignore[attr-defined]
    if space is None:
        space = {name: None for name in defs}
    if not isinstance(space, Mapping):
        raise OptimizationError(
            f"space must be a dict {{param: values}}, got {type(space).__name__}",
            hint="e.g. space={'fast': range(5, 50, 5), 'slow': [50, 100, 200]}",
            code="BAD_SPACE",
        )
    unknown = [name for name in space if name not in defs]
    if unknown:
        raise OptimizationError(
            f"{getattr(cls, 'name', cls.__name__)} has no parameter(s) {unknown}",
            hint=f"its parameters: {', '.join(defs) or 'none'}",
            code="UNKNOWN_PARAM",
            unknown=unknown,
            known=list(defs),
        )
    out: Space = {}
    for name, values in space.items():
        if values is None:
            grid = list(defs[name].values())
        elif isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
            grid = [values]
        else:
            grid = list(values)
        label = getattr(cls, "name", cls.__name__)
        grid = [defs[name].validate(_plain(v), strategy=label) for v in grid]  # ConfigError if out of range
        if not grid:
            raise OptimizationError(
                f"space[{name!r}] has no values", hint="give at least one value", code="BAD_SPACE", param=name
            )
        out[name] = unique_values(grid)
    if not out:
        raise OptimizationError(
            "nothing to optimize: the space is empty",
            hint="the strategy declares no Params; give space={'name': [values...]}",
            code="BAD_SPACE",
        )
    return out


def unique_values(values: list[Any]) -> list[Any]:
    """``values`` without repeats, first occurrence kept, in linear time (a set of the hashable ones;
    unhashable values, rare in a space, are compared one by one). 1 and 1.0 and True count as one, as
    ``==`` says."""
    seen: set[Any] = set()
    others: list[Any] = []
    out: list[Any] = []
    for value in values:
        try:
            if value in seen:
                continue
            seen.add(value)
        except TypeError:
            if value in others:
                continue
            others.append(value)
        out.append(value)
    return out


def grid_size(space: Space) -> int:
    """Number of combinations (a Python int: no overflow for huge spaces)."""
    return math.prod(len(v) for v in space.values())


def combo_at(space: Space, index: int) -> dict[str, Any]:
    """The ``index``-th combination in `iter_grid` order (last parameter varies fastest)."""
    out: dict[str, Any] = {}
    for name in reversed(list(space)):
        values = space[name]
        index, pos = divmod(int(index), len(values))
        out[name] = values[pos]
    return {name: out[name] for name in space}


def genes_to_params(space: Space, genes: list[int]) -> dict[str, Any]:
    """Index genes (one per parameter) -> a params dict."""
    return {name: values[g] for (name, values), g in zip(space.items(), genes, strict=True)}


def iter_grid(space: Space) -> Iterator[dict[str, Any]]:
    """Every combination, lazily, last parameter fastest."""
    for i in range(grid_size(space)):
        yield combo_at(space, i)
