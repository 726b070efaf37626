"""Portfolio data for the checks: which inputs mean "a universe", and how a check cuts one in time.

The rules the checks follow on a universe (docs/optimization.md "The checks"):

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

from typing import TYPE_CHECKING

from qlm_kernel.workspace.data import universe_of

if TYPE_CHECKING:
    from qlm_kernel.data.universe import Universe

__all__ = ["span", "universe_of"]


def span(universe: Universe, lo: int, hi: int) -> Universe:
    """The universe over union bars ``lo`` .. ``hi - 1`` (by time, see the module's rules)."""
    index = universe.index
    return universe.between(index[lo] if lo > 0 else None, index[hi - 1] if hi < len(index) else None)
