"""Every corrupt input is a DataError naming file, line/row, column and value, with a fix hint."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from qlm_kernel.data import load_ohlcv
from qlm_kernel.errors import DataError, QLMError

HEADER = "time,open,high,low,close,volume"
GOOD = ["2020-01-01,1,2,0.5,1.5,100", "2020-01-02,1.5,2.5,1,2,200", "2020-01-03,2,3,1,2.5,300"]


def write(tmp_path, text: str | bytes, name: str = "prices.csv"):
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def body(*lines: str) -> str:
    return "\n".join([HEADER, *lines]) + "\n"


def reject(path, **kwargs) -> DataError:
    with pytest.raises(DataError) as info:
        load_ohlcv(path, **kwargs)
    err = info.value
    assert err.context["file"] == str(path)
    assert err.hint and len(err.hint) > 10
    return err


def assert_at(err: DataError, *, line: int, column: str | None, value=None) -> None:
    assert err.context["line"] == line
    assert err.context["row"] == line  # CSV: row and line are both the physical line (header = line 1)
    assert f"line {line}" in err.message
    assert err.context["column"] == column
    if value is not None:
        assert err.context["value"] == value


def test_unparsable_number(tmp_path):
    err = reject(write(tmp_path, body(GOOD[0], "2020-01-02,1.5,2.5,abc,2,200", GOOD[2])))
    assert err.code == "DATA_BAD_NUMBER"
    assert_at(err, line=3, column="low", value="abc")
    assert "unparsable number" in err.message


def test_unparsable_number_line_counts_blank_lines_and_uses_source_header(tmp_path):
    text = "Date,Open,High,Low,Close,Volume\n" + GOOD[0] + "\n\n\n" + "2020-01-02,1.5,\"1,234.5\",1,2,200\n"
    err = reject(write(tmp_path, text))
    assert_at(err, line=5, column="High", value="1,234.5")


def test_unparsable_number_far_into_a_large_file(tmp_path):
    times = pd.date_range("2020-01-01", periods=50_000, freq="1min").strftime("%Y-%m-%d %H:%M")
    lines = [f"{t},1,2,0.5,1.5,10" for t in times]
    lines[43_210] = lines[43_210].replace(",1.5,", ",1.5x,")
    err = reject(write(tmp_path, body(*lines)))
    assert_at(err, line=43_212, column="close", value="1.5x")


def test_missing_required_column(tmp_path):
    err = reject(write(tmp_path, "time,open,high,low,volume\n2020-01-01,1,2,0.5,100\n"))
    assert err.code == "DATA_MISSING_COLUMN"
    assert err.context["column"] == "close"
    assert err.context["line"] == 1
    assert "close" in err.hint


def test_missing_time_column(tmp_path):
    err = reject(write(tmp_path, "symbol,open,high,low,close\nX,1,2,0.5,1.5\n"))
    assert err.context["column"] == "time"


def test_ambiguous_duplicate_columns(tmp_path):
    err = reject(write(tmp_path, "time,Open,open,high,low,close\n2020-01-01,1,1,2,0.5,1.5\n"))
    assert err.code == "DATA_AMBIGUOUS_COLUMN"
    assert err.context["column"] == "open"


@pytest.mark.parametrize("content", [b"", b"   \n\n  \r\n"])
def test_empty_file(tmp_path, content):
    err = reject(write(tmp_path, content))
    assert err.code == "DATA_EMPTY"
    assert err.context["line"] == 1


def test_header_without_data(tmp_path):
    err = reject(write(tmp_path, HEADER + "\n\n"))
    assert err.code == "DATA_EMPTY"
    assert err.context["line"] == 2


def test_duplicate_timestamps(tmp_path):
    err = reject(write(tmp_path, body(GOOD[0], GOOD[1], "2020-01-02,1.5,2.5,1,2.2,250", GOOD[2])))
    assert err.code == "DATA_DUPLICATE_TIME"
    assert_at(err, line=4, column="time", value="2020-01-02")
    assert "repair=True" in err.hint


def test_non_monotonic_timestamps(tmp_path):
    err = reject(write(tmp_path, body(GOOD[0], GOOD[2], GOOD[1])))
    assert err.code == "DATA_UNSORTED"
    assert_at(err, line=4, column="time", value="2020-01-02")
    assert "sort" in err.hint


@pytest.mark.parametrize(
    ("line", "column", "value", "what"),
    [
        ("2020-01-02,1.5,2.5,1,,200", "close", "", "missing"),
        ("2020-01-02,NaN,2.5,1,2,200", "open", "NaN", "missing"),
        ("2020-01-02,1.5,inf,1,2,200", "high", "inf", "infinite"),
        ("2020-01-02,1.5,2.5,-1,2,200", "low", "-1", "negative"),
        ("2020-01-02,0,2.5,0,2,200", "open", "0", "zero"),
    ],
)
def test_bad_prices(tmp_path, line, column, value, what):
    err = reject(write(tmp_path, body(GOOD[0], line, GOOD[2])))
    assert err.code == "DATA_BAD_PRICE"
    assert_at(err, line=3, column=column, value=value)
    assert what in err.message


@pytest.mark.parametrize(("value", "what"), [("-5", "negative"), ("nan", "missing"), ("1e999", "infinite")])
def test_bad_volume(tmp_path, value, what):
    err = reject(write(tmp_path, body(GOOD[0], f"2020-01-02,1.5,2.5,1,2,{value}")))
    assert err.code == "DATA_BAD_VOLUME"
    assert_at(err, line=3, column="volume", value=value)
    assert what in err.message


def test_high_below_close(tmp_path):
    err = reject(write(tmp_path, body(GOOD[0], "2020-01-02,1.5,1.9,1,2,200")))
    assert err.code == "DATA_OHLC_INCONSISTENT"
    assert_at(err, line=3, column="high", value="1.9")
    assert "below close" in err.message


def test_high_below_open(tmp_path):
    err = reject(write(tmp_path, body(GOOD[0], "2020-01-02,2.6,2.5,1,2,200")))
    assert_at(err, line=3, column="high", value="2.5")
    assert "below open" in err.message


def test_low_above_open(tmp_path):
    err = reject(write(tmp_path, body(GOOD[0], GOOD[1], "2020-01-03,2,3,2.1,2.5,300")))
    assert err.code == "DATA_OHLC_INCONSISTENT"
    assert_at(err, line=4, column="low", value="2.1")
    assert "above open" in err.message


def test_earliest_bad_row_is_reported(tmp_path):
    err = reject(write(tmp_path, body(GOOD[0], "2020-01-02,1.5,1.9,1,2,200", "2020-01-03,-2,3,1,2.5,300")))
    assert err.context["line"] == 3


def test_binary_garbage(tmp_path):
    garbage = np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    err = reject(write(tmp_path, garbage))
    assert err.code == "DATA_ENCODING"
    assert err.context["line"] >= 1
    assert "UTF-8" in err.hint


def test_binary_garbage_inside_data_names_line_and_column(tmp_path):
    text = body(*GOOD).encode().replace(b"2020-01-02,1.5,2.5,1,2", b"2020-01-02,1.5,2.5,\x00\x01,2")
    err = reject(write(tmp_path, text))
    assert err.code == "DATA_ENCODING"
    assert_at(err, line=3, column="low")
    assert "NUL" in err.message


def test_non_utf8_bytes(tmp_path):
    text = (HEADER + ",note\n" + GOOD[0] + ",ok\n" + GOOD[1] + ",caf\xe9\n").encode("latin-1")
    err = reject(write(tmp_path, text))
    assert err.code == "DATA_ENCODING"
    assert_at(err, line=3, column="note")
    assert "xe9" in err.context["value"]


def test_excel_workbook_gets_a_specific_hint(tmp_path):
    err = reject(write(tmp_path, b"PK\x03\x04\x14\x00\x06\x00" + bytes(range(256)), name="book.csv"))
    assert "Excel" in err.hint


def test_truncated_last_line(tmp_path):
    err = reject(write(tmp_path, "\n".join([HEADER, *GOOD, "2020-01-04,2,3,1"])))
    assert err.code == "DATA_MALFORMED_ROW"
    assert_at(err, line=5, column="close", value="2020-01-04,2,3,1")
    assert "truncated last line" in err.message
    assert err.context["expected_fields"] == 6 and err.context["actual_fields"] == 4


def test_truncated_line_after_blank_lines(tmp_path):
    err = reject(write(tmp_path, "\n".join([HEADER, GOOD[0], "", "", "2020-01-02,1.5", GOOD[2]]) + "\n"))
    assert_at(err, line=5, column="high")
    assert "truncated line" in err.message


def test_too_many_fields(tmp_path):
    err = reject(write(tmp_path, body(GOOD[0], "2020-01-02,1,5,2.5,1,2,200")))
    assert err.code == "DATA_MALFORMED_ROW"
    assert err.context["line"] == 3
    assert "quoted" in err.hint


@pytest.mark.parametrize(
    ("times", "line", "value", "what"),
    [
        (["2020-01-01", "01/02/2020", "2020-01-03"], 3, "01/02/2020", "unrecognised"),
        (["2020-01-01", "2020-02-30", "2020-03-01"], 3, "2020-02-30", "unrecognised"),
        (["2020-01-01T00:00Z", "2020-01-02T00:00Z", "2020-01-03T00:00"], 4, "2020-01-03T00:00", "no zone"),
        (["2020-01-01", "2020-01-02", "2020-01-03T00:00+01:00"], 4, "2020-01-03T00:00+01:00", "zone offset"),
        (["1577836800", "1577923200", "2020-01-03"], 4, "2020-01-03", "epoch integer"),
        (["2020-01-01", "", "2020-01-03"], 3, "", "missing timestamp"),
    ],
)
def test_bad_timestamps(tmp_path, times, line, value, what):
    rows = [f"{t},1,2,0.5,1.5,1" for t in times]
    err = reject(write(tmp_path, body(*rows)))
    assert err.code == "DATA_BAD_TIME"
    assert_at(err, line=line, column="time", value=value)
    assert what in err.message


def test_epoch_seconds_beyond_2262_are_rejected(tmp_path):
    err = reject(write(tmp_path, body("50000000000,1,2,0.5,1.5,1", "60000000000,1,2,0.5,1.5,1")))
    assert err.code == "DATA_BAD_TIME"
    assert err.context["line"] == 2 and err.context["unit"] == "s"


def test_missing_file_and_directory(tmp_path):
    err = reject(tmp_path / "nope.csv")
    assert err.code == "NOT_FOUND"
    with pytest.raises(DataError):
        load_ohlcv(tmp_path)


def test_corrupt_parquet(tmp_path):
    err = reject(write(tmp_path, b"PAR1 this is not really parquet", name="x.parquet"))
    assert err.code == "DATA_FORMAT"
    assert "Parquet" in err.hint


def test_truncated_parquet(tmp_path):
    path = tmp_path / "full.parquet"
    pd.DataFrame({"time": pd.date_range("2020", periods=100, tz="UTC"), "open": 1.0, "high": 2.0,
                  "low": 0.5, "close": 1.5}).to_parquet(path)
    cut = write(tmp_path, path.read_bytes()[:-40], name="cut.parquet")
    assert reject(cut).code == "DATA_FORMAT"


def test_parquet_rows_are_one_based_data_rows(tmp_path):
    frame = pd.DataFrame({"open": [1.0, 1.0, 1.0], "high": [2.0, 2.0, 0.9], "low": [0.5, 0.5, 0.5],
                          "close": [1.5, 1.5, 1.5]},
                         index=pd.date_range("2020", periods=3, tz="UTC", name="time"))
    err = reject(_parquet(tmp_path, frame))
    assert err.context["row"] == 3
    assert "line" not in err.context
    assert "row 3" in err.message
    assert err.context["column"] == "high" and err.context["value"] == 0.9


def _parquet(tmp_path, frame: pd.DataFrame):
    path = tmp_path / "p.parquet"
    frame.to_parquet(path)
    return path


def test_parquet_empty_and_unparsable_text_price(tmp_path):
    empty = pd.DataFrame({"time": pd.DatetimeIndex([], tz="UTC"), "open": [], "high": [], "low": [],
                          "close": []})
    path = tmp_path / "empty.parquet"
    empty.to_parquet(path)
    assert reject(path).code == "DATA_EMPTY"
    text = pd.DataFrame({"time": pd.date_range("2020", periods=3, tz="UTC"), "open": ["1", "1", "x1"],
                         "high": 2.0, "low": 0.5, "close": 1.5})
    path = tmp_path / "text.parquet"
    text.to_parquet(path)
    err = reject(path)
    assert err.code == "DATA_BAD_NUMBER"
    assert err.context["row"] == 3 and err.context["column"] == "open" and err.context["value"] == "x1"


def test_error_serializes_to_json_with_location(tmp_path):
    err = reject(write(tmp_path, body(GOOD[0], "2020-01-02,1.5,2.5,abc,2,200")))
    record = json.loads(err.to_json())
    assert record["type"] == "DataError"
    assert record["code"] == "DATA_BAD_NUMBER"
    assert record["hint"] == err.hint
    assert record["context"]["file"] == err.context["file"]
    assert record["context"]["row"] == 3 and record["context"]["line"] == 3
    assert record["context"]["column"] == "low" and record["context"]["value"] == "abc"
    assert "Traceback" in record["traceback"]
    again = QLMError.from_dict(err.to_dict())
    assert isinstance(again, DataError) and again.context["column"] == "low"


def test_nan_value_in_error_context_stays_json(tmp_path):
    frame = pd.DataFrame({"open": [1.0, np.nan], "high": 2.0, "low": 0.5, "close": 1.5},
                         index=pd.date_range("2020", periods=2, tz="UTC", name="time"))
    err = reject(_parquet(tmp_path, frame))
    assert json.loads(err.to_json())["context"]["value"] == "nan"


def test_utf16_file_gets_a_specific_hint(tmp_path):
    err = reject(write(tmp_path, body(*GOOD).encode("utf-16")))
    assert err.code == "DATA_ENCODING" and "UTF-16" in err.hint


def test_day_first_dates_are_not_guessed(tmp_path):
    err = reject(write(tmp_path, body("02.01.2020,1,2,0.5,1.5,1")))
    assert err.code == "DATA_BAD_TIME" and "day/month" in err.hint
