"""Array plumbing shared by every Numba entry point (engine kernels, indicators).

Numba compiles a function once per argument *type*, and a read-only array is a different type from a
writable one. Inputs reach the kernels read-only or writable depending on where they came from
(a stored dataset's buffers, an indicator's memo, a user's own array), so without a rule each mix of
flags compiled the whole kernel again (seconds each, and past what ``qlm warmup`` had compiled: a fresh
clone's test run compiled 21 variants of one engine mode). The rule: kernels get their inputs as
read-only views, one type per input, zero-copy.
"""

from __future__ import annotations

import numpy as np


def read_only(a: np.ndarray) -> np.ndarray:
    """``a`` as a read-only view (``a`` itself when it already is read-only; never a copy)."""
    if not a.flags.writeable:
        return a
    view = a.view()
    view.flags.writeable = False
    return view
