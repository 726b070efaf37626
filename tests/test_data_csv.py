"""load_ohlcv on CSV: every accepted real-world variant lands in the same canonical frame."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from qlm_kernel.data import OHLCV_COLUMNS, load_ohlcv

ROWS = [  # open, high, low, close, volume
    (1.0, 2.0, 0.5, 1.5, 100.0),
    (1.5, 2.5, 1.0, 2.0, 200.0),
    (2.0, 3.0, 1.0, 2.5, 300.0),
]
DAYS = ["2020-01-01", "2020-01-02", "2020-01-03"]
EXPECTED_INDEX = pd.DatetimeIndex(DAYS, tz="UTC", name="time").as_unit("ns")


def write(tmp_path, text: str | bytes, name: str = "prices.csv"):
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def csv_text(header: str, times: list[str], sep: str = ",", rows=ROWS, volume: bool = True) -> str:
    lines = [header]
    for t, row in zip(times, rows, strict=True):
        values = row if volume else row[:4]
        lines.append(sep.join([t, *(repr(v) for v in values)]))
    return "\n".join(lines) + "\n"


def assert_canonical(df: pd.DataFrame) -> None:
    assert list(df.columns) == list(OHLCV_COLUMNS)
    assert isinstance(df.index, pd.DatetimeIndex)
    assert str(df.index.dtype) == "datetime64[ns, UTC]"
    assert df.index.name == "time"
    assert all(df[c].dtype == np.float64 for c in OHLCV_COLUMNS)


def test_canonical_file_loads_with_exact_schema(tmp_path):
    df = load_ohlcv(write(tmp_path, csv_text("time,open,high,low,close,volume", DAYS)))
    assert_canonical(df)
    pd.testing.assert_index_equal(df.index, EXPECTED_INDEX)
    np.testing.assert_array_equal(df.to_numpy(), np.array(ROWS))
    assert df.attrs["volume_missing"] is False
    assert df.attrs["repairs"] == []
    assert df.attrs["format"] == "csv"


def test_columns_are_zero_copy_views_of_one_contiguous_block(tmp_path):
    df = load_ohlcv(write(tmp_path, csv_text("time,open,high,low,close,volume", DAYS)))
    close = df["close"].to_numpy()
    assert close.flags.c_contiguous
    assert np.shares_memory(close, df["close"].to_numpy())  # no copy on access
    block = df["open"].to_numpy().base
    assert block is not None and np.shares_memory(block, close)  # one block holds every column


@pytest.mark.parametrize(
    "times",
    [
        ["2020-01-01T00:00:00Z", "2020-01-02T00:00:00Z", "2020-01-03T00:00:00Z"],
        ["2020-01-01 00:00:00+00:00", "2020-01-02 00:00:00+00:00", "2020-01-03 00:00:00+00:00"],
        ["2020-01-01 05:30:00+05:30", "2020-01-02 05:30:00+05:30", "2020-01-03 05:30:00+05:30"],
        ["2019-12-31T19:00:00-0500", "2020-01-01T19:00:00-0500", "2020-01-02T19:00:00-0500"],
        ["2020-01-01 00:00:00", "2020-01-02 00:00:00", "2020-01-03 00:00:00"],  # naive = UTC
        ["2020-01-01T00:00", "2020-01-02T00:00", "2020-01-03T00:00"],
        ["2020-01-01", "2020-01-02", "2020-01-03"],  # date only
        ["2020-01-01 00:00:00.000000000", "2020-01-02 00:00:00.000000000", "2020-01-03 00:00:00.0"],
        ["1577836800", "1577923200", "1578009600"],  # epoch seconds
        ["1577836800000", "1577923200000", "1578009600000"],  # ms
        ["1577836800000000", "1577923200000000", "1578009600000000"],  # us
        ["1577836800000000000", "1577923200000000000", "1578009600000000000"],  # ns
        ["20200101", "20200102", "20200103"],  # YYYYMMDD
        ["  2020-01-01 ", "2020-01-02", " 2020-01-03"],  # stray spaces
    ],
)
def test_time_formats_all_mean_the_same_instants(tmp_path, times):
    df = load_ohlcv(write(tmp_path, csv_text("time,open,high,low,close,volume", times)))
    pd.testing.assert_index_equal(df.index, EXPECTED_INDEX)


def test_sub_second_precision_is_kept_to_the_nanosecond(tmp_path):
    times = ["2020-01-01 00:00:00.000000001", "2020-01-01 00:00:00.000000002",
             "2020-01-01 00:00:00.123456789"]
    df = load_ohlcv(write(tmp_path, csv_text("time,open,high,low,close,volume", times)))
    assert list(df.index.asi8 - df.index.asi8[0]) == [0, 1, 123456788]


def test_epoch_unit_is_recorded(tmp_path):
    df = load_ohlcv(write(tmp_path, csv_text("time,open,high,low,close,volume",
                                             ["1577836800000", "1577923200000", "1578009600000"])))
    assert df.attrs["time_format"] == "epoch_ms"


@pytest.mark.parametrize(
    "header",
    [
        "Date,Open,High,Low,Close,Volume",
        "Datetime,OPEN, High ,low ,CLOSE,Vol",
        "Timestamp,open,high,low,close,volume",
        " TIME ,Open,HIGH,Low,Close,VOLUME",
        "<DATE>,<OPEN>,<HIGH>,<LOW>,<CLOSE>,<VOL>",
        "t,o,h,l,c,v",
        "date_time,open_price,high_price,low_price,close_price,tick_volume",
        "Gmt time,Open,High,Low,Close,Volume",
        ",Open,High,Low,Close,Volume",  # pandas df.to_csv() of an unnamed index
    ],
)
def test_header_variants(tmp_path, header):
    df = load_ohlcv(write(tmp_path, csv_text(header, DAYS)))
    assert_canonical(df)
    np.testing.assert_array_equal(df.to_numpy(), np.array(ROWS))


def test_columns_in_any_order_and_extra_columns_ignored(tmp_path):
    text = "Volume,Close,Symbol,Low,High,Open,Date\n" + "".join(
        f"{r[4]},{r[3]},XYZ,{r[2]},{r[1]},{r[0]},{d}\n" for d, r in zip(DAYS, ROWS, strict=True))
    df = load_ohlcv(write(tmp_path, text))
    np.testing.assert_array_equal(df.to_numpy(), np.array(ROWS))
    assert df.attrs["ignored_columns"] == ["Symbol"]


def test_close_wins_over_adj_close(tmp_path):
    text = "Date,Open,High,Low,Close,Adj Close,Volume\n" + "".join(
        f"{d},{r[0]},{r[1]},{r[2]},{r[3]},{r[3] * 0.9},{r[4]}\n" for d, r in zip(DAYS, ROWS, strict=True))
    df = load_ohlcv(write(tmp_path, text))
    np.testing.assert_array_equal(df["close"].to_numpy(), [1.5, 2.0, 2.5])
    assert df.attrs["close_column"] == "Close"
    assert df.attrs["ignored_columns"] == ["Adj Close"]


def test_adj_close_used_only_when_there_is_no_close(tmp_path):
    df = load_ohlcv(write(tmp_path, csv_text("Date,Open,High,Low,Adj Close,Volume", DAYS)))
    np.testing.assert_array_equal(df["close"].to_numpy(), [1.5, 2.0, 2.5])
    assert df.attrs["close_column"] == "Adj Close"


def test_missing_volume_is_zero_and_flagged(tmp_path):
    df = load_ohlcv(write(tmp_path, csv_text("time,open,high,low,close", DAYS, volume=False)))
    assert (df["volume"].to_numpy() == 0.0).all()
    assert df.attrs["volume_missing"] is True


def test_all_empty_volume_column_counts_as_missing(tmp_path):
    text = "time,open,high,low,close,volume\n" + "".join(
        f"{d},{r[0]},{r[1]},{r[2]},{r[3]},\n" for d, r in zip(DAYS, ROWS, strict=True))
    df = load_ohlcv(write(tmp_path, text))
    assert df.attrs["volume_missing"] is True
    assert (df["volume"].to_numpy() == 0.0).all()


@pytest.mark.parametrize("sep", [";", "\t", "|"])
def test_other_delimiters_are_sniffed(tmp_path, sep):
    header = sep.join(["time", "open", "high", "low", "close", "volume"])
    df = load_ohlcv(write(tmp_path, csv_text(header, DAYS, sep=sep)))
    np.testing.assert_array_equal(df.to_numpy(), np.array(ROWS))
    assert df.attrs["delimiter"] == sep


def test_crlf_bom_quotes_blank_lines_and_scientific_notation(tmp_path):
    text = (
        '\ufeff"time","open","high","low","close","volume"\r\n'
        '"2020-01-01",1e0,2.0E0,5e-1,1.5,1e2\r\n'
        "\r\n"
        '"2020-01-02",+1.5,2.5,1,2,200\r\n'
        "2020-01-03,2,3,1,2.5,300"  # no final newline
    )
    df = load_ohlcv(write(tmp_path, text))
    pd.testing.assert_index_equal(df.index, EXPECTED_INDEX)
    np.testing.assert_array_equal(df.to_numpy(), np.array(ROWS))


def test_gzip_compressed_csv(tmp_path):
    path = write(tmp_path, gzip.compress(csv_text("time,open,high,low,close,volume", DAYS).encode()),
                 name="prices.csv.gz")
    df = load_ohlcv(path)
    np.testing.assert_array_equal(df.to_numpy(), np.array(ROWS))


def test_unknown_extension_is_read_as_csv_and_time_column_override(tmp_path):
    path = write(tmp_path, csv_text("when,open,high,low,close,volume", DAYS), name="prices.txt")
    df = load_ohlcv(path, time_column="when")
    pd.testing.assert_index_equal(df.index, EXPECTED_INDEX)


def test_pandas_to_csv_round_trip(tmp_path):
    """A frame written by pandas (tz-aware index, default float format) loads back exactly."""
    idx = pd.date_range("2021-03-01", periods=50, freq="15min", tz="UTC", name="time")
    rng = np.random.default_rng(1)
    close = 100 + rng.standard_normal(50).cumsum()
    frame = pd.DataFrame({"open": close + 0.1, "high": close + 1, "low": close - 1, "close": close,
                          "volume": rng.integers(0, 1000, 50).astype(float)}, index=idx)
    path = tmp_path / "pandas.csv"
    frame.to_csv(path)
    df = load_ohlcv(path)
    pd.testing.assert_frame_equal(df, frame.set_axis(idx.as_unit("ns")), check_freq=False)


def test_metatrader_split_date_and_time_columns(tmp_path):
    text = ("<DATE>,<TIME>,<OPEN>,<HIGH>,<LOW>,<CLOSE>,<TICKVOL>\n"
            "2020.01.02,00:00,1,2,0.5,1.5,10\n"
            "2020.01.02,01:30:00,1,2,0.5,1.5,10\n"
            "2020.1.3,9:05,1,2,0.5,1.5,10\n")
    df = load_ohlcv(write(tmp_path, text))
    assert list(df.index.strftime("%Y-%m-%d %H:%M")) == ["2020-01-02 00:00", "2020-01-02 01:30",
                                                         "2020-01-03 09:05"]
    assert df.attrs["ignored_columns"] == []


def test_full_timestamp_in_time_column_ignores_date_column(tmp_path):
    df = load_ohlcv(write(tmp_path, csv_text("time,date,open,high,low,close",
                                             [f"{d}T00:00:00Z,{d}" for d in DAYS], volume=False)))
    pd.testing.assert_index_equal(df.index, EXPECTED_INDEX)
    assert df.attrs["ignored_columns"] == ["date"]


@pytest.mark.parametrize("times", [["2020/01/01", "2020/1/2", "2020/01/3"], ["2020.01.01", "2020.01.02",
                                                                             "2020.01.03"]])
def test_year_first_dates_with_dots_or_slashes(tmp_path, times):
    df = load_ohlcv(write(tmp_path, csv_text("Date,Open,High,Low,Close,Volume", times)))
    pd.testing.assert_index_equal(df.index, EXPECTED_INDEX)
