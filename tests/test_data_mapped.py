"""Workspace datasets are memory-mapped: one copy of the bars in the page cache for the kernel and its
workers, nothing parsed per load, private pages for a process that writes, the Parquet file of record."""

from __future__ import annotations

import mmap
import os

import numpy as np
import pandas as pd

import qlm_kernel as qlm
from qlm_kernel.data.manager import DataManager


def bases(array: np.ndarray) -> list[object]:
    chain = [array]
    while getattr(chain[-1], "base", None) is not None:
        chain.append(chain[-1].base)
    return chain


def test_a_dataset_loads_as_a_copy_on_write_map_of_its_file(tmp_path) -> None:
    manager = DataManager(tmp_path)
    df = qlm.sample_data("synthetic", n=5000, seed=1)
    manager.register_frame(df, "prices")
    frame = manager.load("prices")
    pd.testing.assert_frame_equal(frame, df, check_freq=False)
    chain = bases(frame["close"].to_numpy())
    assert isinstance(chain[-1], mmap.mmap)  # backed by the file, not a copy
    [mapped] = [a for a in chain if isinstance(a, np.memmap)]
    assert mapped.flags.writeable and mapped.mode == "c"  # copy-on-write mapping
    mapped[3, 0] = -1.0  # close of bar 0: a write lands in this process's private page only
    assert frame["close"].iloc[0] == -1.0  # (the write did go through, in this mapping)
    again = DataManager(tmp_path).load("prices")
    assert again["close"].iloc[0] == df["close"].iloc[0]
    assert manager.verify("prices")


def test_missing_stale_or_damaged_maps_fall_back_to_the_parquet_and_are_rebuilt(tmp_path) -> None:
    manager = DataManager(tmp_path)
    df = qlm.sample_data("synthetic", n=3000, seed=2)
    manager.register_frame(df, "prices")
    time_path, block_path = tmp_path / "data" / "prices.time.npy", tmp_path / "data" / "prices.ohlcv.npy"
    assert time_path.exists() and block_path.exists()
    block_path.unlink()
    pd.testing.assert_frame_equal(manager.load("prices"), df, check_freq=False)
    assert block_path.exists()  # rebuilt from the Parquet
    np.save(block_path, np.zeros((5, 10)))  # wrong shape
    pd.testing.assert_frame_equal(manager.load("prices"), df, check_freq=False)
    stale = os.stat(manager.path("prices")).st_mtime_ns - 10**9
    os.utime(block_path, ns=(stale, stale))  # older than the Parquet
    pd.testing.assert_frame_equal(manager.load("prices"), df, check_freq=False)
    manager.remove("prices")
    assert not time_path.exists() and not block_path.exists()
