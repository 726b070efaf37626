"""Portfolio data for the checks: which inputs mean "a universe", and how a check cuts one in time.

The rules the checks follow on a universe (README "Optimization and 'is it real?'"):

- **What is a universe.** A `Universe`, a dict symbol -> frame / file, or the name of a stored universe
  (as ``data`` or ``dataset=``); anything else is single-asset data as before.
- **Time, not rows.** A universe is cut on its own time axis, the union of its members' timestamps
  (``u.index``): windows and train/test spans hold equal numbers of those bars, whatever each symbol's
  own bar count. A span is `Universe.between` its first and last timestamps: each member keeps only its
  bars inside the span, and a symbol with no bar there (not listed yet, or delisted) is left out of that
  span's universe, so a symbol that starts late joins the windows from its first bar on.
- **One parameter set.** Optimizing a span is `qlm.optimize` on that span's universe: one parameter set
  for every symbol present, shared cash.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qlm_kernel.data.universe import Universe


def universe_of(data: Any, dataset: str | None = None) -> Universe | None:
    """The `Universe` that ``data`` / ``dataset`` name, or None for single-asset data.

    A `Universe` as it is; a non-empty dict of frames or files (symbol -> frame | path) aligned into one;
    a string that is a stored universe's name (``dataset=`` or ``data``) loaded from the workspace."""
    from qlm_kernel.data.universe import Universe

    if isinstance(data, Universe):
        return data
    if isinstance(data, Mapping) and data and dataset is None:
        from qlm_kernel.data.universe import load_universe

        return load_universe(data)
    name = dataset if dataset is not None else data if isinstance(data, str) else None
    if name is None:
        return None
    from qlm_kernel.data.universe import is_universe
    from qlm_kernel.workspace import data_manager

    dm = data_manager()
    return dm.load_universe(name) if is_universe(dm, name) else None


def span(universe: Universe, lo: int, hi: int) -> Universe:
    """The universe over union bars ``lo`` .. ``hi - 1`` (by time, see the module's rules)."""
    index = universe.index
    return universe.between(index[lo] if lo > 0 else None, index[hi - 1] if hi < len(index) else None)
