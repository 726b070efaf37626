"""`qlm.reproduce(run_id)` / `qlm runs reproduce ID`: an unchanged run reproduces bit for bit; after the data
file or the strategy file is edited the answer names the change and the results that moved; a library
change is named even when the numbers stay the same. Real store file, real files, the real CLI."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import qlm_kernel as qlm
from qlm_kernel.strategy.loader import examples_dir
from qlm_kernel.workspace.environment import LIBRARIES


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "ws"
    monkeypatch.setenv("QLM_HOME", str(root))
    monkeypatch.setenv("QLM_RECORD_RUNS", "1")
    yield root
    from qlm_kernel.session import stop_event_recorder
    from qlm_kernel.store import close_default_store

    stop_event_recorder()
    close_default_store()


def cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "QLM_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "qlm_kernel.cli", *args], env=env, capture_output=True,
                          text=True, timeout=300)


def test_an_unchanged_run_reproduces_bit_for_bit(home: Path) -> None:
    res = qlm.backtest("sma_cross", sample={"kind": "synthetic", "n": 2000, "seed": 4}, fast=8, fees=0.001)
    run = qlm.session.get_run(res.meta["run_id"])
    env = run["environment"]
    assert set(env["versions"]) == {"python", *LIBRARIES}
    assert env["data_source"] == {"kind": "sample", "sample": {"kind": "synthetic", "n": 2000, "seed": 4}}
    assert len(env["equity_sha256"]) == 64 and len(env["trades_sha256"]) == 64
    answer = qlm.reproduce(res.meta["run_id"])
    assert answer["equal"] is True and answer["bit_for_bit"] is True
    assert answer["changed"] == [] and answer["differences"] == []
    assert answer["results"] == {"hashes": {}, "stats": {}}
    assert "reproduces bit for bit" in answer["verdict"]
    assert "same data, code and libraries" in answer["verdict"]
    done = cli(home, "runs", "reproduce", str(res.meta["run_id"]), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["equal"] is True


def test_an_edited_data_file_is_named(home: Path, tmp_path: Path) -> None:
    frame = qlm.sample_data("synthetic", n=1500, seed=9)
    path = tmp_path / "bars.csv"
    frame.to_csv(path)
    res = qlm.backtest("sma_cross", str(path), fast=6)
    assert qlm.reproduce(res.meta["run_id"])["equal"] is True
    edited = frame.copy()
    edited.iloc[700:, edited.columns.get_loc("close")] *= 1.01  # a revised print
    edited["high"] = edited[["open", "high", "close"]].max(axis=1)
    edited["low"] = edited[["open", "low", "close"]].min(axis=1)
    edited.to_csv(path)
    answer = qlm.reproduce(res.meta["run_id"])
    assert answer["equal"] is False and answer["changed"] == ["data"]
    (diff,) = answer["differences"]
    assert diff["item"] == "data fingerprint"
    assert diff["stored"] == qlm.session.get_run(res.meta["run_id"])["data_fingerprint"] != diff["now"]
    assert "final_value" in answer["results"]["stats"] and "equity_sha256" in answer["results"]["hashes"]
    assert "does not reproduce; inputs changed: data" in answer["verdict"]
    done = cli(home, "runs", "reproduce", str(res.meta["run_id"]))
    assert done.returncode == 8, done.stderr
    assert "data: data fingerprint" in done.stdout and "stat final_value" in done.stdout


def test_an_edited_strategy_file_is_named(home: Path) -> None:
    folder = home / "strategies"
    folder.mkdir(parents=True)
    code = (examples_dir() / "sma_cross.py").read_text(encoding="utf-8")
    (folder / "my_cross.py").write_text(code, encoding="utf-8")
    res = qlm.backtest("my_cross", sample={"kind": "synthetic", "n": 2000, "seed": 5}, fast=7)
    assert qlm.reproduce(res.meta["run_id"])["equal"] is True
    edited = code.replace("close = data[\"close\"]", "close = data[\"open\"]")  # averages of the opens
    assert edited != code
    (folder / "my_cross.py").write_text(edited, encoding="utf-8")
    answer = qlm.reproduce(res.meta["run_id"])
    assert answer["changed"] == ["code"] and answer["equal"] is False
    assert "version 1" in answer["differences"][0]["item"]
    assert answer["results"]["stats"], "a one-bar delay of every entry moves the results"


def test_a_library_change_is_named_even_when_the_numbers_agree(home: Path) -> None:
    res = qlm.backtest("sma_cross", sample={"kind": "synthetic", "n": 1000, "seed": 6})
    run_id = res.meta["run_id"]
    from qlm_kernel.store import close_default_store

    close_default_store()
    with sqlite3.connect(home / "qlm.db") as conn:  # as if recorded under another numpy
        env = json.loads(conn.execute("SELECT environment FROM runs WHERE id = ?", (run_id,)).fetchone()[0])
        env["versions"]["numpy"] = "1.26.4"
        conn.execute("UPDATE runs SET environment = ? WHERE id = ?", (json.dumps(env), run_id))
    answer = qlm.reproduce(run_id)
    assert answer["equal"] is True and answer["changed"] == ["libraries"]
    assert answer["differences"][0]["item"] == "numpy" and answer["differences"][0]["stored"] == "1.26.4"


def test_a_run_on_an_in_memory_frame_needs_its_data(home: Path) -> None:
    frame = qlm.sample_data("synthetic", n=800, seed=2)
    res = qlm.backtest("sma_cross", frame)
    with pytest.raises(qlm.DataError) as err:
        qlm.reproduce(res.meta["run_id"])
    assert err.value.code == "DATA_AMBIGUOUS" and "data=" in err.value.hint
    assert qlm.reproduce(res.meta["run_id"], data=frame)["equal"] is True
    with pytest.raises(qlm.QLMError) as err:
        qlm.reproduce(999_999)
    assert err.value.code == "NOT_FOUND"
