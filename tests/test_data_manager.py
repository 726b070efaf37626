"""DataManager: validated, atomic, fingerprinted datasets under <home>/data."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from qlm_kernel.data import DataManager, fingerprint_frame, load_ohlcv, sample_data
from qlm_kernel.errors import DataError, SecurityError

CSV = "time,open,high,low,close,volume\n2020-01-01,1,2,0.5,1.5,100\n2020-01-02,1.5,2.5,1,2,200\n"


@pytest.fixture
def dm(tmp_path) -> DataManager:
    return DataManager(tmp_path / "home")


@pytest.fixture
def csv_file(tmp_path):
    path = tmp_path / "EUR USD 1h.csv"
    path.write_text(CSV)
    return path


def test_import_list_info_load_fingerprint_remove(dm, csv_file):
    meta = dm.import_file(csv_file, "eurusd")
    assert (dm.root / "eurusd.parquet").is_file() and (dm.root / "eurusd.json").is_file()
    assert dm.root == (dm.root.parent / "data")
    for key in ("name", "source", "fingerprint", "rows", "start", "end", "columns", "imported_at"):
        assert key in meta
    assert meta["rows"] == 2 and meta["source"] == str(csv_file.resolve())
    assert meta["start"] == "2020-01-01T00:00:00+00:00" and meta["end"] == "2020-01-02T00:00:00+00:00"
    assert json.loads((dm.root / "eurusd.json").read_text()) == meta

    assert dm.list() == [meta]
    assert dm.info("eurusd") == meta
    assert "eurusd" in dm and "../eurusd" not in dm and "nope" not in dm

    df = dm.load("eurusd")
    pd.testing.assert_frame_equal(df, load_ohlcv(csv_file))
    assert df.attrs["dataset"] == "eurusd" and df.attrs["fingerprint"] == meta["fingerprint"]
    assert dm.fingerprint("eurusd") == fingerprint_frame(df) == meta["fingerprint"]
    assert dm.fingerprint("eurusd", verify=True) == meta["fingerprint"]
    assert dm.verify("eurusd")

    assert dm.remove("eurusd")["name"] == "eurusd"
    assert dm.list() == [] and "eurusd" not in dm
    assert not any(dm.root.iterdir())
    with pytest.raises(DataError) as info:
        dm.load("eurusd")
    assert info.value.code == "NOT_FOUND"


def test_default_name_from_file_stem(dm, csv_file):
    assert dm.import_file(csv_file)["name"] == "EUR_USD_1h"


def test_fingerprint_stable_across_reimport_and_formats(dm, csv_file, tmp_path):
    first = dm.import_file(csv_file, "a")
    again = dm.import_file(csv_file, "a")  # identical content: a no-op returning the same record
    assert again == first
    parquet = tmp_path / "same.parquet"
    load_ohlcv(csv_file).to_parquet(parquet)
    assert dm.import_file(parquet, "b")["fingerprint"] == first["fingerprint"]


def test_different_data_needs_overwrite(dm, csv_file, tmp_path):
    dm.import_file(csv_file, "x")
    other = tmp_path / "other.csv"
    other.write_text(CSV.replace("1.5,100", "1.5,101"))
    with pytest.raises(DataError) as info:
        dm.import_file(other, "x")
    assert info.value.code == "DATA_EXISTS" and "overwrite=True" in info.value.hint
    meta = dm.import_file(other, "x", overwrite=True)
    assert dm.load("x")["volume"].iloc[0] == 101.0
    assert meta["fingerprint"] != fingerprint_frame(load_ohlcv(csv_file))


@pytest.mark.parametrize("name", ["../evil", "a/b", "..", "a\\b", "/etc/passwd", "x/../../y", "a\x00b"])
def test_traversal_names_are_refused(dm, csv_file, name):
    with pytest.raises(SecurityError):
        dm.import_file(csv_file, name)
    with pytest.raises(SecurityError):
        dm.load(name)
    assert not any(dm.root.iterdir())
    assert not (dm.root.parent / "evil.parquet").exists()


@pytest.mark.parametrize("name", ["", "bad name", ".hidden", "x" * 129, "émoji", "a;b"])
def test_invalid_names_are_data_errors(dm, csv_file, name):
    with pytest.raises(DataError) as info:
        dm.import_file(csv_file, name)
    assert info.value.code == "DATA_NAME" and info.value.hint


def test_failed_import_writes_nothing(dm, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text(CSV + "2020-01-03,1,0.5,0.4,1,1\n")
    with pytest.raises(DataError) as info:
        dm.import_file(bad, "bad")
    assert info.value.context["line"] == 4
    assert list(dm.root.iterdir()) == []


def test_repair_on_import_is_recorded(dm, tmp_path):
    messy = tmp_path / "messy.csv"
    messy.write_text(CSV + "2020-01-02,1.5,2.5,1,2,250\n2020-01-01T12:00,1,2,0.5,1.5,1\n")
    meta = dm.import_file(messy, "m", repair=True)
    assert [r["action"] for r in meta["repairs"]] == ["sorted", "dropped_duplicates"]
    df = dm.load("m")
    assert len(df) == 3 and df["volume"].iloc[-1] == 250.0
    assert df.attrs["repairs"] == meta["repairs"]


def test_register_frame_keeps_synthetic_label_and_calls_back(tmp_path):
    events = []
    dm = DataManager(tmp_path, on_change=lambda event, meta: events.append((event, meta["name"])))
    frame = sample_data(n=500, seed=1)
    meta = dm.register_frame(frame, "synth")
    assert meta["synthetic"] is True and meta["source"] == "qlm synthetic (seed=1)"
    assert meta["fingerprint"] == fingerprint_frame(frame)
    loaded = dm.load("synth")
    pd.testing.assert_frame_equal(loaded, frame, check_freq=False)
    assert loaded.attrs["synthetic"] is True
    dm.remove("synth")
    assert events == [("imported", "synth"), ("removed", "synth")]


def test_register_frame_validates(dm):
    frame = sample_data(n=10)
    broken = frame.copy()
    broken.iloc[4, 1] = -1.0
    with pytest.raises(DataError) as info:
        dm.register_frame(broken, "broken")
    assert info.value.context["row"] == 5 and info.value.context["column"] == "high"
    assert list(dm.root.iterdir()) == []


def test_home_defaults_to_qlm_home(monkeypatch, tmp_path):
    monkeypatch.setenv("QLM_HOME", str(tmp_path / "ws"))
    assert DataManager().root == (tmp_path / "ws" / "data").resolve()


def test_tampered_dataset_is_detected(dm, csv_file):
    dm.import_file(csv_file, "t")
    pd.DataFrame({"a": [1]}).to_parquet(dm.path("t"))
    with pytest.raises(DataError) as info:
        dm.load("t")
    assert info.value.code == "DATA_FORMAT"


def test_list_skips_orphans_and_damaged_sidecars(dm, csv_file):
    dm.import_file(csv_file, "good")
    (dm.root / "orphan.json").write_text("{}")
    (dm.root / "broken.json").write_text("{not json")
    (dm.root / "broken.parquet").write_bytes(b"")
    assert [m["name"] for m in dm.list()] == ["good"]


def test_symlinked_dataset_files_are_refused(dm, csv_file, tmp_path):
    outside = tmp_path / "outside.parquet"
    load_ohlcv(csv_file).to_parquet(outside)
    (dm.root / "link.parquet").symlink_to(outside)
    (dm.root / "link.json").write_text(json.dumps({"name": "link"}))
    with pytest.raises(SecurityError):
        dm.load("link")
    assert "link" not in dm
    assert dm.list() == []
