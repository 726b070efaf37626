"""validate_ohlcv on in-memory frames, repair semantics, and fingerprint_frame."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from qlm_kernel.data import OHLCV_COLUMNS, fingerprint_frame, load_ohlcv, sample_data, validate_ohlcv
from qlm_kernel.errors import DataError


def frame(n: int = 5) -> pd.DataFrame:
    return sample_data(n=n, seed=4, freq="1D")


def test_backtesting_style_frame_is_normalised():
    src = frame()
    bt = src.copy()
    bt.columns = ["Open", "High", "Low", "Close", "Volume"]
    bt.index = bt.index.tz_localize(None).rename(None)
    bt["Volume"] = bt["Volume"].astype("int64")
    out = validate_ohlcv(bt)
    pd.testing.assert_frame_equal(out, src, check_freq=False, check_like=False)
    assert out.attrs["close_column"] == "Close"


def test_time_as_text_column_and_nullable_dtypes():
    src = frame()
    df = src.reset_index()
    df["time"] = df["time"].dt.strftime("%Y-%m-%d %H:%M:%S+00:00")
    df = df.astype({c: "Float64" for c in OHLCV_COLUMNS})
    pd.testing.assert_frame_equal(validate_ohlcv(df), src, check_freq=False)


def test_frame_errors_report_one_based_rows():
    bad = frame()
    bad.iloc[3, 2] = np.nan
    with pytest.raises(DataError) as info:
        validate_ohlcv(bad, source="my frame")
    ctx = info.value.context
    assert (ctx["file"], ctx["row"], ctx["column"]) == ("my frame", 4, "low")
    assert "row 4" in info.value.message


def test_frame_text_price_is_located():
    bad = frame().astype(object)
    bad.iloc[2, 0] = "1.2.3"
    with pytest.raises(DataError) as info:
        validate_ohlcv(bad)
    assert info.value.context["row"] == 3 and info.value.context["value"] == "1.2.3"


def test_frame_without_time_and_non_frame_input():
    with pytest.raises(DataError) as info:
        validate_ohlcv(frame().reset_index(drop=True))
    assert info.value.context["column"] == "time"
    with pytest.raises(DataError):
        validate_ohlcv(np.zeros((3, 5)))


def test_nat_in_index_is_rejected():
    bad = frame()
    idx = bad.index.tz_localize(None).to_numpy().copy()
    idx[1] = np.datetime64("NaT")
    bad.index = pd.DatetimeIndex(idx)
    with pytest.raises(DataError) as info:
        validate_ohlcv(bad)
    assert info.value.context["row"] == 2 and info.value.context["column"] == "index"  # unnamed index


def test_repair_sorts_and_keeps_last_duplicate_with_original_line_numbers(tmp_path, caplog):
    text = ("time,open,high,low,close,volume\n"
            "2020-01-03,1,2,0.5,1.5,3\n"
            "2020-01-01,1,2,0.5,1.5,1\n"
            "2020-01-02,1,2,0.5,1.5,2\n"
            "2020-01-01,1,2,0.5,1.5,11\n")
    path = tmp_path / "m.csv"
    path.write_text(text)
    with pytest.raises(DataError):
        load_ohlcv(path)
    with caplog.at_level(logging.WARNING, logger="qlm_kernel.data"):
        df = load_ohlcv(path, repair=True)
    assert list(df["volume"]) == [11.0, 2.0, 3.0]  # the LAST 2020-01-01 row (line 5) wins
    assert df.index.is_monotonic_increasing and df.index.is_unique
    sort, dedupe = df.attrs["repairs"]
    assert sort["action"] == "sorted" and sort["first_unsorted"] == {"row": 3, "line": 3}
    assert dedupe == {"action": "dropped_duplicates", "rows_dropped": 1, "keep": "last",
                      "first_duplicate_time": "2020-01-01T00:00:00+00:00"}
    assert "repaired" in caplog.text  # never silent


def test_errors_after_repair_still_name_the_original_line(tmp_path):
    text = ("time,open,high,low,close,volume\n"
            "2020-01-03,1,2,0.5,1.5,3\n"
            "2020-01-01,1,2,0.5,1.5,1\n"
            "2020-01-02,1,2,0.5,-1.5,2\n")
    path = tmp_path / "m.csv"
    path.write_text(text)
    with pytest.raises(DataError) as info:
        load_ohlcv(path, repair=True)
    assert info.value.context["line"] == 4 and info.value.context["column"] == "close"


def test_clean_data_with_repair_records_nothing(tmp_path):
    path = tmp_path / "ok.parquet"
    frame().to_parquet(path)
    assert load_ohlcv(path, repair=True).attrs["repairs"] == []


def test_fingerprint_is_content_only():
    a = frame(50)
    b = a.copy()
    b.attrs = {"anything": 1}
    assert fingerprint_frame(a) == fingerprint_frame(b)
    assert len(fingerprint_frame(a)) == 64
    c = a.copy()
    c.iloc[10, 3] = np.nextafter(c.iloc[10, 3], np.inf)
    assert fingerprint_frame(c) != fingerprint_frame(a)
    d = a.copy()
    d.index = d.index + pd.Timedelta(1, "ns")
    assert fingerprint_frame(d) != fingerprint_frame(a)
    e = a[["close", "open", "volume", "low", "high"]]  # column order does not matter
    assert fingerprint_frame(e) == fingerprint_frame(a)
    naive = a.copy()
    naive.index = naive.index.tz_localize(None)  # naive = UTC, same instants
    assert fingerprint_frame(naive) == fingerprint_frame(a)


def test_fingerprint_folds_negative_zero_and_needs_ohlcv():
    a = frame(3)
    a["volume"] = 0.0
    b = a.copy()
    b["volume"] = -0.0
    assert fingerprint_frame(a) == fingerprint_frame(b)
    with pytest.raises(DataError):
        fingerprint_frame(a.drop(columns="volume"))
    with pytest.raises(DataError):
        fingerprint_frame(a.reset_index(drop=True))
