"""load_ohlcv on Parquet written by pandas/pyarrow: index or column, any zone, any unit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from qlm_kernel.data import OHLCV_COLUMNS, load_ohlcv, sample_data
from qlm_kernel.errors import DataError


@pytest.fixture(scope="module")
def base() -> pd.DataFrame:
    return sample_data(n=200, seed=3, freq="1h")


def check_same(df: pd.DataFrame, base: pd.DataFrame) -> None:
    assert list(df.columns) == list(OHLCV_COLUMNS)
    assert str(df.index.dtype) == "datetime64[ns, UTC]" and df.index.name == "time"
    np.testing.assert_array_equal(df.index.asi8, base.index.asi8)
    np.testing.assert_array_equal(df.to_numpy(), base.to_numpy())


def test_round_trip_with_utc_index(tmp_path, base):
    path = tmp_path / "a.parquet"
    base.to_parquet(path)
    df = load_ohlcv(path)
    pd.testing.assert_frame_equal(df, base, check_freq=False)
    assert df.attrs["format"] == "parquet"


def test_naive_unnamed_index_is_utc(tmp_path, base):
    frame = base.copy()
    frame.index = frame.index.tz_localize(None).rename(None)
    path = tmp_path / "naive.parquet"
    frame.to_parquet(path)
    assert "__index_level_0__" in pq.read_schema(path).names
    check_same(load_ohlcv(path), base)


def test_zoned_named_index_and_title_case_columns(tmp_path, base):
    frame = base.copy()
    frame.index = frame.index.tz_convert("America/New_York").rename("Date")
    frame.columns = [c.title() for c in frame.columns]
    path = tmp_path / "ny.parquet"
    frame.to_parquet(path)
    check_same(load_ohlcv(path), base)


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_timestamp_column_any_unit(tmp_path, base, unit):
    frame = base.reset_index()
    frame["time"] = frame["time"].dt.tz_convert("Asia/Tokyo").astype(f"datetime64[{unit}, Asia/Tokyo]")
    path = tmp_path / f"{unit}.parquet"
    frame.to_parquet(path, index=False)
    check_same(load_ohlcv(path), base)


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_epoch_integer_column(tmp_path, base, unit):
    frame = base.reset_index()
    frame["timestamp"] = base.index.asi8 // {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}[unit]
    frame = frame.drop(columns="time")
    path = tmp_path / "epoch.parquet"
    frame.to_parquet(path, index=False)
    df = load_ohlcv(path)
    check_same(df, base)
    assert df.attrs["time_format"] == f"epoch_{unit}"


def test_string_time_column_and_integer_volume(tmp_path, base):
    frame = base.reset_index()
    frame["time"] = frame["time"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    frame["volume"] = frame["volume"].astype("int64")
    path = tmp_path / "text.parquet"
    frame.to_parquet(path, index=False)
    check_same(load_ohlcv(path), base)


def test_date32_column_and_float32_prices(tmp_path):
    table = pa.table({
        "Date": pa.array(pd.date_range("2021-01-01", periods=3).date, type=pa.date32()),
        "Open": pa.array([1.0, 1.5, 2.0], type=pa.float32()),
        "High": pa.array([2.0, 2.5, 3.0], type=pa.float32()),
        "Low": pa.array([0.5, 1.0, 1.0], type=pa.float32()),
        "Close": pa.array([1.5, 2.0, 2.5], type=pa.float32()),
    })
    path = tmp_path / "dates.parquet"
    pq.write_table(table, path)
    df = load_ohlcv(path)
    assert list(df.index.strftime("%Y-%m-%d")) == ["2021-01-01", "2021-01-02", "2021-01-03"]
    np.testing.assert_array_equal(df["close"].to_numpy(), [1.5, 2.0, 2.5])
    assert df.attrs["volume_missing"] is True


def test_parquet_magic_detected_without_extension(tmp_path, base):
    path = tmp_path / "data.bin"
    base.to_parquet(path)
    check_same(load_ohlcv(path), base)


def test_parquet_unsorted_rejected_then_repaired(tmp_path, base):
    frame = base.iloc[[0, 2, 1, 3, 3]]
    path = tmp_path / "messy.parquet"
    frame.to_parquet(path)
    with pytest.raises(DataError) as info:
        load_ohlcv(path)
    assert info.value.context["row"] == 3
    df = load_ohlcv(path, repair=True)
    check_same(df, base.iloc[:4])
    actions = [r["action"] for r in df.attrs["repairs"]]
    assert actions == ["sorted", "dropped_duplicates"]
