"""Display decimation that keeps spikes: M4 (first, last, min and max of each pixel-wide bucket).

An evenly strided subset of a long series hides its extremes (a one-bar crash between two kept bars
vanishes); keeping each bucket's first, last, lowest and highest point draws the same line a full
plot would at that width, with at most four points per bucket.
"""

from __future__ import annotations

import numpy as np

DEFAULT_BUCKETS = 2_000
"""Buckets across a chart: about one per horizontal pixel of a wide report."""


def bucket_edges(n: int, n_buckets: int) -> np.ndarray:
    """``n_buckets + 1`` increasing integer edges splitting ``range(n)`` into near-equal buckets."""
    n_buckets = max(1, min(int(n_buckets), n))
    return np.unique(np.linspace(0, n, n_buckets + 1).round().astype(np.int64))


def m4_indices(values: np.ndarray, n_buckets: int = DEFAULT_BUCKETS) -> np.ndarray:
    """Sorted indices of each bucket's first, last, min and max point (all indices when short).

    NaNs are ignored for min/max (a bucket of only NaNs keeps its first and last index).
    """
    y = np.asarray(values, dtype=float)
    n = len(y)
    if n <= 4 * n_buckets:
        return np.arange(n)
    edges = bucket_edges(n, n_buckets)
    starts, stops = edges[:-1], edges[1:]
    bucket = np.repeat(np.arange(len(starts)), stops - starts)
    finite = np.isfinite(y)
    low = np.where(finite, y, np.inf)
    high = np.where(finite, y, -np.inf)
    bmin = np.minimum.reduceat(low, starts)
    bmax = np.maximum.reduceat(high, starts)
    # first position in each bucket holding the bucket's min (max): unique keeps first occurrences
    at_min = np.flatnonzero((low == bmin[bucket]) & finite)
    at_max = np.flatnonzero((high == bmax[bucket]) & finite)
    first_min = at_min[np.unique(bucket[at_min], return_index=True)[1]]
    first_max = at_max[np.unique(bucket[at_max], return_index=True)[1]]
    keep = np.concatenate((starts, stops - 1, first_min, first_max))
    return np.unique(keep)
