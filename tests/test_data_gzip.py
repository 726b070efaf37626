"""Gzip CSV input is decompressed as a stream under a byte cap; the trailer's ISIZE is never trusted."""

from __future__ import annotations

import gzip
import tracemalloc
import zlib

import numpy as np
import pytest

from qlm_kernel.data import DataManager, load_ohlcv
from qlm_kernel.data.memory import ENV_LIMIT, memory_budget, text_cap
from qlm_kernel.errors import ConfigError, DataError, QLMSystemError

MIB = 1024**2
HEADER = b"time,open,high,low,close,volume\n"


def csv_rows(n: int) -> bytes:
    times = np.datetime64("2020-01-01T00:00") + np.arange(n)
    return HEADER + b"".join(f"{t},1.0,2.0,0.5,1.5,100.0\n".encode() for t in times)


def forge_isize(path, isize: int) -> None:
    """Overwrite the last member's ISIZE (uncompressed length mod 2**32) with a lie."""
    data = bytearray(path.read_bytes())
    data[-4:] = (isize % 2**32).to_bytes(4, "little")
    path.write_bytes(bytes(data))


def write_bomb(path, body: bytes, repeat: int, *, head: bytes = b"") -> int:
    """One gzip member of ``head`` + ``body`` * ``repeat``, compressed as a stream; returns its true size."""
    comp = zlib.compressobj(1, zlib.DEFLATED, 31)
    with open(path, "wb") as fh:
        fh.write(comp.compress(head))
        for _ in range(repeat):
            fh.write(comp.compress(body))
        fh.write(comp.flush())
    return len(head) + len(body) * repeat


def test_a_gzip_bomb_with_a_forged_trailer_stops_at_the_cap_without_inflating_it(tmp_path, monkeypatch):
    path = tmp_path / "bomb.csv.gz"
    true_size = write_bomb(path, bytes(16 * MIB), 32, head=HEADER)  # 512 MiB of zeros in ~2.3 MiB
    forge_isize(path, 200)  # the trailer claims 200 bytes
    assert path.stat().st_size < 4 * MIB and true_size == len(HEADER) + 512 * MIB
    monkeypatch.setenv(ENV_LIMIT, str(64 * MIB))
    cap = text_cap(HEADER + bytes(MIB - len(HEADER)), memory_budget()["budget"])
    assert 16 * MIB < cap <= 32 * MIB
    tracemalloc.start()
    try:
        with pytest.raises(QLMSystemError) as info:
            load_ohlcv(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    err = info.value
    assert err.code == "DECOMPRESSED_TOO_LARGE"
    assert err.context["cap_bytes"] == cap and f"more than {cap} bytes" in err.message
    assert str(path) in err.message and ENV_LIMIT in err.hint and "Parquet" in err.hint
    assert err.context["compressed_bytes"] < path.stat().st_size  # stopped before the end
    assert peak < cap + 8 * MIB  # only what fits under the cap was ever held, not the 512 MiB


def test_a_bomb_of_valid_repeated_lines_is_refused_and_loads_once_the_budget_allows(tmp_path, monkeypatch):
    path = tmp_path / "lines.csv.gz"
    lines = csv_rows(3)[len(HEADER) :]  # three valid lines repeated: valid CSV until the times repeat
    size = write_bomb(path, lines * 1000, 400, head=HEADER)  # ~40 MB of text
    forge_isize(path, 4096)
    monkeypatch.setenv(ENV_LIMIT, str(8 * MIB))
    with pytest.raises(QLMSystemError) as info:
        load_ohlcv(path)
    assert info.value.code == "DECOMPRESSED_TOO_LARGE" and info.value.context["cap_bytes"] < size
    monkeypatch.setenv(ENV_LIMIT, str(4096 * MIB))
    with pytest.raises(DataError) as bad:  # past the cap now: read to the end, where the lie shows
        load_ohlcv(path)
    assert bad.value.code == "DATA_ENCODING" and "incorrect length check" in bad.value.message


def test_max_decompressed_bytes_caps_an_honest_file_and_names_itself(tmp_path):
    text = csv_rows(200)
    path = tmp_path / "prices.csv.gz"
    path.write_bytes(gzip.compress(text))
    with pytest.raises(QLMSystemError) as info:
        load_ohlcv(path, max_decompressed_bytes=len(text) - 1)
    err = info.value
    assert err.code == "DECOMPRESSED_TOO_LARGE" and err.context["cap_bytes"] == len(text) - 1
    assert f"max_decompressed_bytes={len(text) - 1}" in err.message and "max_decompressed_bytes" in err.hint
    assert len(load_ohlcv(path, max_decompressed_bytes=len(text))) == 200  # exactly at the cap is fine
    assert len(load_ohlcv(path)) == 200
    with pytest.raises(ConfigError) as cfg:
        load_ohlcv(path, max_decompressed_bytes=0)
    assert cfg.value.code == "BAD_OPTION"


def test_concatenated_members_with_padding_load_and_damaged_streams_are_data_errors(tmp_path):
    big = csv_rows(300_000)  # ~13 MB: many chunks in and many capped zlib calls out
    path = tmp_path / "multi.csv.gz"
    cut = big.index(b"\n", len(big) // 2) + 1
    path.write_bytes(gzip.compress(big[:cut], 1) + b"\x00" * 10 + gzip.compress(big[cut:], 1) + b"\x00" * 4)
    df = load_ohlcv(path)  # what gzip.decompress and `gunzip` accept
    assert len(df) == 300_000 and df.index[-1] == df.index[0] + np.timedelta64(299_999, "m")
    text = csv_rows(50)
    truncated = tmp_path / "cut.csv.gz"
    truncated.write_bytes(gzip.compress(text)[:-20])
    with pytest.raises(DataError) as info:
        load_ohlcv(truncated)
    assert info.value.code == "DATA_ENCODING" and "ends before" in info.value.message
    forged = tmp_path / "forged.csv.gz"
    forged.write_bytes(gzip.compress(text))
    forge_isize(forged, len(text) + 1)
    with pytest.raises(DataError) as info:
        load_ohlcv(forged)
    assert info.value.code == "DATA_ENCODING" and info.value.hint


def test_the_data_manager_import_goes_through_the_same_cap(tmp_path, monkeypatch):
    path = tmp_path / "bomb.csv.gz"
    write_bomb(path, bytes(16 * MIB), 8, head=HEADER)
    forge_isize(path, 100)
    monkeypatch.setenv(ENV_LIMIT, str(16 * MIB))
    with pytest.raises(QLMSystemError) as info:
        DataManager(tmp_path / "store").import_file(path, "bomb")
    assert info.value.code == "DECOMPRESSED_TOO_LARGE"
