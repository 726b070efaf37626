"""Market data: load, validate, synthesise and store OHLCV (see DESIGN.md, "data integrity").

The canonical frame everywhere in QLM: a ``DatetimeIndex`` named ``time`` (``datetime64[ns, UTC]``) and
float64 columns ``open, high, low, close, volume`` (``OHLCV_COLUMNS``) in one C-contiguous block.
"""

from __future__ import annotations

from qlm_kernel.data.fingerprint import fingerprint_frame
from qlm_kernel.data.loader import load_ohlcv, validate_ohlcv
from qlm_kernel.data.manager import DataManager
from qlm_kernel.data.memory import check_memory
from qlm_kernel.data.samples import SAMPLE_KINDS, sample_data
from qlm_kernel.data.schema import OHLCV_COLUMNS
from qlm_kernel.data.universe import Universe, load_universe

__all__ = [
    "OHLCV_COLUMNS",
    "SAMPLE_KINDS",
    "DataManager",
    "Universe",
    "check_memory",
    "fingerprint_frame",
    "load_ohlcv",
    "load_universe",
    "sample_data",
    "validate_ohlcv",
]
