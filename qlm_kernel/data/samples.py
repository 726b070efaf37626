"""``sample_data``: ready-made OHLCV for notebooks, tests and the MCP ``sample`` argument.

- ``"synthetic"``: the deterministic multi-regime generator (``synthetic.py``), labelled
  ``df.attrs["synthetic"] = True``; any length, any fixed or calendar frequency.
- ``"goog"`` (daily, 2004-2013), ``"eurusd"`` (hourly, 2017-2018), ``"btcusd"`` (monthly, 2012-2024): real
  data shipped by the optional ``backtesting`` package (``backtesting.test``, AGPL-3.0), converted to the
  canonical schema and validated; ``n`` keeps the first n rows. Without that package: a DataError saying
  how to install it.

`SAMPLES` says, for each kind, its source, bar size, span, rows and licence (`qlm data list`, the MCP
``list_datasets`` tool and docs/data.md show it); a real sample's frame carries the same in ``attrs``.
"""

from __future__ import annotations

import importlib
import operator

import numpy as np
import pandas as pd

from qlm_kernel.data.loader import validate_ohlcv
from qlm_kernel.data.memory import check_memory
from qlm_kernel.data.schema import build_frame
from qlm_kernel.data.synthetic import DRIFT_STATES, VOL_SIGMAS, synthetic_ohlcv
from qlm_kernel.errors import DataError

REAL_SAMPLES = {  # kind -> (attribute of backtesting.test, description)
    "goog": ("GOOG", "GOOG daily 2004-2013 (backtesting.py test data)"),
    "eurusd": ("EURUSD", "EURUSD hourly 2017-2018 (backtesting.py test data)"),
    "btcusd": ("BTCUSD", "BTCUSD monthly (backtesting.py test data)"),
}
SAMPLE_KINDS: tuple[str, ...] = ("synthetic", *REAL_SAMPLES)
_BACKTESTING_LICENCE = "AGPL-3.0, with backtesting.py"
SAMPLES: dict[str, dict[str, object]] = {
    "synthetic": {
        "source": "QLM generator (regime-switching; same seed, same bars)",
        "bar": "freq= (1 hour)", "span": "from start= (2020-01-01)",
        "rows": "n= (100,000)", "licence": "Apache-2.0, part of QLM",
    },
    "goog": {
        "source": "Alphabet (GOOG), backtesting.test.GOOG", "bar": "1 day",
        "span": "2004-08-19 to 2013-03-01", "rows": 2148, "licence": _BACKTESTING_LICENCE,
    },
    "eurusd": {
        "source": "EUR/USD, backtesting.test.EURUSD", "bar": "1 hour",
        "span": "2017-04-19 to 2018-02-07", "rows": 5000, "licence": _BACKTESTING_LICENCE,
    },
    "btcusd": {
        "source": "BTC/USD, backtesting.test.BTCUSD", "bar": "1 month (month-end)",
        "span": "2012-01-31 to 2024-12-31", "rows": 156, "licence": _BACKTESTING_LICENCE,
    },
}
"""Each sample kind's source, bar size, span, rows and licence (the real ones as backtesting.py 0.6 ships
them; a test checks these figures against the package)."""


def sample_catalogue() -> list[dict[str, object]]:
    """`SAMPLES` as rows with their ``kind``, in `SAMPLE_KINDS` order."""
    return [{"kind": kind, **SAMPLES[kind]} for kind in SAMPLE_KINDS]
_MAX_NS = np.iinfo(np.int64).max


def _time_axis(n: int, start: str | pd.Timestamp, freq: str) -> np.ndarray:
    """n UTC nanosecond stamps from ``start`` every ``freq`` (naive start = UTC)."""
    try:
        t0 = pd.Timestamp(start)
    except (ValueError, TypeError) as exc:
        raise DataError(f"sample_data: start={start!r} is not a timestamp: {exc}", hint="use e.g. "
                        "start='2020-01-01' or '2020-01-01 09:30'", code="DATA_SAMPLE", column="time",
                        value=str(start)) from None
    t0 = t0.tz_localize("UTC") if t0.tzinfo is None else t0.tz_convert("UTC")
    try:
        step = pd.Timedelta(freq).value
    except ValueError:
        step = None
    if step is not None:
        if step <= 0:
            raise DataError(f"sample_data: freq={freq!r} must be positive", hint="use e.g. freq='1h' or '1D'",
                            code="DATA_SAMPLE", column="time", value=freq)
        if t0.value + (n - 1) * step > _MAX_NS:
            raise DataError(f"sample_data: {n} bars of {freq} from {t0} run past 2262-04-11",
                            hint="use fewer bars, a shorter freq or an earlier start", code="DATA_SAMPLE",
                            column="time", value=freq)
        return t0.value + np.arange(n, dtype=np.int64) * step
    try:
        return pd.date_range(t0, periods=n, freq=freq).as_unit("ns").asi8.copy()
    except (ValueError, TypeError, OverflowError) as exc:
        raise DataError(f"sample_data: freq={freq!r} is not usable: {exc}",
                        hint="use a pandas frequency such as '1min', '1h', '1D' or 'B'", code="DATA_SAMPLE",
                        column="time", value=freq) from None


def _real_sample(kind: str, n: int) -> pd.DataFrame:
    attr, description = REAL_SAMPLES[kind]
    try:
        module = importlib.import_module("backtesting.test")
    except ImportError:
        raise DataError(f"sample_data({kind!r}) needs the 'backtesting' package, which ships this data",
                        hint="pip install backtesting  (or use sample_data('synthetic'))",
                        code="DATA_SAMPLE", value=kind) from None
    raw = getattr(module, attr)
    df = validate_ohlcv(raw.iloc[:n], source=description)
    df.attrs.update({"synthetic": False, "source": description, "kind": kind, "bar": SAMPLES[kind]["bar"],
                     "licence": SAMPLES[kind]["licence"]})
    return df


def sample_data(
    kind: str = "synthetic",
    n: int = 100_000,
    seed: int = 0,
    start: str | pd.Timestamp = "2020-01-01",
    freq: str = "1h",
) -> pd.DataFrame:
    """A canonical OHLCV frame: deterministic synthetic bars (same seed -> identical frame) or real data.

    ``kind`` is one of ``SAMPLE_KINDS``; for real data ``seed``, ``start`` and ``freq`` are ignored.
    """
    if kind not in SAMPLE_KINDS:
        raise DataError(f"unknown sample kind {kind!r}", hint=f"valid kinds: {', '.join(SAMPLE_KINDS)}",
                        code="DATA_SAMPLE", value=kind, valid=list(SAMPLE_KINDS))
    try:
        n = operator.index(n)
    except TypeError:
        raise DataError(f"sample_data: n must be an integer, got {n!r}", hint="pass e.g. n=10_000",
                        code="DATA_SAMPLE", value=repr(n)) from None
    if n < 1:
        raise DataError(f"sample_data: n must be >= 1, got {n}", hint="pass e.g. n=10_000",
                        code="DATA_SAMPLE", value=n)
    if kind != "synthetic":
        return _real_sample(kind, n)
    try:
        seed = operator.index(seed)
    except TypeError:
        raise DataError(f"sample_data: seed must be an integer, got {seed!r}", hint="pass e.g. seed=0",
                        code="DATA_SAMPLE", value=repr(seed)) from None
    check_memory(n * 48 * 8, what=f"generating {n} synthetic bars")
    time_ns = _time_axis(n, start, freq)
    bars = synthetic_ohlcv(n, seed)
    attrs = {
        "synthetic": True,
        "source": f"qlm synthetic (seed={seed})",
        "kind": "synthetic",
        "seed": seed,
        "freq": str(freq),
        "volume_missing": False,
        "repairs": [],
        "model": {"vol_sigmas": list(VOL_SIGMAS), "drift_states": list(DRIFT_STATES)},
    }
    return build_frame(time_ns, bars.block, attrs)
