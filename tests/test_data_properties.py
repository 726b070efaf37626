"""Property tests: any valid frame round-trips exactly through CSV and Parquet; any corruption is caught."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qlm_kernel.data import OHLCV_COLUMNS, fingerprint_frame, load_ohlcv, validate_ohlcv
from qlm_kernel.data.schema import build_frame
from qlm_kernel.errors import DataError

NS_1980 = 315_532_800 * 10**9
NS_2200 = 7_258_118_400 * 10**9
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

prices = st.floats(min_value=1e-6, max_value=1e9, allow_nan=False, allow_infinity=False)
volumes = st.floats(min_value=0.0, max_value=1e12, allow_nan=False, allow_infinity=False)


@st.composite
def ohlcv_frames(draw, tick: int = 1) -> pd.DataFrame:
    """Valid canonical frames; timestamps are multiples of ``tick`` ns."""
    n = draw(st.integers(min_value=1, max_value=40))
    start = draw(st.integers(min_value=NS_1980 // tick, max_value=NS_2200 // 2 // tick)) * tick
    steps = draw(st.lists(st.integers(min_value=1, max_value=10**15 // tick), min_size=n - 1, max_size=n - 1))
    times = start + np.cumsum(np.array([0, *steps], dtype=np.int64)) * np.int64(tick)
    rows = []
    for _ in range(n):
        four = sorted(draw(st.lists(prices, min_size=4, max_size=4)))
        low, a, b, high = four
        o, c = (a, b) if draw(st.booleans()) else (b, a)
        rows.append((o, high, low, c, draw(volumes)))
    block = np.ascontiguousarray(np.array(rows, dtype=np.float64).T)
    return build_frame(times, block)


def _csv_text(df: pd.DataFrame, *, header: list[str], sep: str, time_format: str) -> str:
    stamps = df.index
    if time_format == "iso_z":
        times = [t.isoformat().replace("+00:00", "Z") for t in stamps]
    elif time_format == "iso_naive":
        times = [t.tz_localize(None).isoformat() for t in stamps]
    else:
        times = [str(v) for v in stamps.asi8]
    values = df.to_numpy()
    lines = [sep.join(header)]
    lines += [sep.join([t, *(repr(float(v)) for v in row)]) for t, row in zip(times, values, strict=True)]
    return "\n".join(lines) + "\n"


HEADERS = [
    ["time", "open", "high", "low", "close", "volume"],
    ["Date", "Open", "High", "Low", "Close", "Volume"],
    ["Timestamp", "OPEN", "HIGH", "LOW", "CLOSE", "VOL"],
]


@SETTINGS
@given(df=ohlcv_frames(), header=st.sampled_from(HEADERS), sep=st.sampled_from([",", ";", "\t"]),
       time_format=st.sampled_from(["iso_z", "iso_naive", "epoch_ns"]))
def test_csv_round_trip_is_exact(df, header, sep, time_format):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "f.csv"
        path.write_text(_csv_text(df, header=header, sep=sep, time_format=time_format))
        out = load_ohlcv(path)
    np.testing.assert_array_equal(out.index.asi8, df.index.asi8)
    np.testing.assert_array_equal(out.to_numpy(), df.to_numpy())
    assert fingerprint_frame(out) == fingerprint_frame(df)


@SETTINGS
@given(data=st.data(), as_index=st.booleans(), unit=st.sampled_from(["ns", "us", "ms"]))
def test_parquet_round_trip_is_exact(data, as_index, unit):
    df = data.draw(ohlcv_frames(tick={"ns": 1, "us": 1000, "ms": 10**6}[unit]))
    frame = df.copy()
    frame.index = frame.index.as_unit(unit)
    if not as_index:
        frame = frame.reset_index()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "f.parquet"
        frame.to_parquet(path, index=as_index)
        out = load_ohlcv(path)
    np.testing.assert_array_equal(out.index.asi8, df.index.asi8)
    np.testing.assert_array_equal(out.to_numpy(), df.to_numpy())
    assert fingerprint_frame(out) == fingerprint_frame(df)


@SETTINGS
@given(df=ohlcv_frames(), data=st.data())
def test_any_single_corruption_is_reported_at_its_row(df, data):
    row = data.draw(st.integers(min_value=0, max_value=len(df) - 1))
    column = data.draw(st.sampled_from(list(OHLCV_COLUMNS)))
    bad = data.draw(st.sampled_from([np.nan, np.inf, -1.0]))
    broken = df.copy()
    broken.iloc[row, OHLCV_COLUMNS.index(column)] = bad
    if column == "volume" and np.isnan(bad) and len(df) == 1:
        # the one volume value missing is an all-missing volume column: documented as "no volume" (0.0)
        out = validate_ohlcv(broken)
        assert out.attrs["volume_missing"] is True and out["volume"].iloc[0] == 0.0
        return
    try:
        validate_ohlcv(broken)
    except DataError as err:
        assert err.context["row"] == row + 1
        assert err.context["column"] in OHLCV_COLUMNS
    else:
        raise AssertionError("corruption was not detected")
