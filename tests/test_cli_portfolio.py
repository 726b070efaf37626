"""``qlm portfolio``, run as a real subprocess (``python -m qlm_kernel.cli``) in a temp QLM_HOME/HOME, on
a universe imported from CSV files with ``qlm data import-universe``; results are compared with the same
run done in this process through ``qlm.backtest_portfolio`` on the same stored universe."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import qlm_kernel as qlm

TIMEOUT = 180
SYMBOLS = ("ACME", "BOLT", "CRUX")
UNIVERSE = "trio"


def qlm_cli(*args: str | os.PathLike[str], root: Path,
            record: bool = False) -> subprocess.CompletedProcess[str]:
    """Run ``python -m qlm_kernel.cli ARGS`` with QLM_HOME=root/qlm, HOME=root/home, cwd=root."""
    env = {**os.environ, "QLM_HOME": str(root / "qlm"), "HOME": str(root / "home"),
           "QLM_RECORD_RUNS": "1" if record else "0"}
    return subprocess.run([sys.executable, "-m", "qlm_kernel.cli", *map(str, args)], capture_output=True,
                          text=True, env=env, cwd=root, timeout=TIMEOUT)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace holding universe ``trio`` imported from three CSV files (BOLT starts later: the union
    of their timestamps has bars where it has none)."""
    root = tmp_path_factory.mktemp("cli_portfolio")
    (root / "home").mkdir()
    files = []
    for k, sym in enumerate(SYMBOLS):
        frame = qlm.sample_data("synthetic", n=2000, seed=40 + k)
        if sym == "BOLT":
            frame = frame.iloc[150:]
        path = root / f"{sym}.csv"
        frame.to_csv(path)
        files.append(path)
    proc = qlm_cli("data", "import-universe", *files, "--name", UNIVERSE, "--json", root=root)
    assert proc.returncode == 0, proc.stderr
    meta = json.loads(proc.stdout)
    assert meta["name"] == UNIVERSE and meta["symbols"] == list(SYMBOLS)
    return root


@pytest.fixture
def in_process(root: Path, monkeypatch: pytest.MonkeyPatch):
    """``qlm.backtest_portfolio`` in this process on the subprocess's workspace (nothing recorded)."""
    monkeypatch.setenv("QLM_HOME", str(root / "qlm"))

    def run(strategy, **kwargs):
        return qlm.backtest_portfolio(strategy, UNIVERSE, record=False, **kwargs)

    return run


def test_json_run_equals_the_in_process_run(root: Path, in_process) -> None:
    proc = qlm_cli("portfolio", "sma_cross", "--universe", UNIVERSE, "--size", "0.3", "--size-type",
                   "percent", "--json", root=root)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)  # exactly one JSON document
    assert "trades" not in doc  # to_dict(include_trades=False)
    res = in_process("sma_cross", size=0.3, size_type="percent")
    assert doc["stats"]["final_value"] == pytest.approx(res.stats["final_value"], rel=1e-12)
    assert doc["stats"]["n_trades"] == res.stats["n_trades"] > 0
    assert doc["universe"] == UNIVERSE and doc["symbols"] == list(SYMBOLS)
    assert set(doc["symbol_stats"]) == set(SYMBOLS)
    for sym in SYMBOLS:
        assert doc["symbol_stats"][sym]["pnl"] == pytest.approx(res.symbol_stats.loc[sym, "pnl"], rel=1e-12)
    assert doc["settings"]["size_type"] == "percent" and doc["params"] == {"fast": 10, "slow": 50}
    assert doc["report"] is None


def test_human_output_has_stats_symbols_and_run_id(root: Path, in_process) -> None:
    proc = qlm_cli("portfolio", "sma_cross", "-u", UNIVERSE, "--param", "fast=5", "--param", "slow=30",
                   "--fees", "0.001", root=root, record=True)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert f"SmaCross(fast=5, slow=30) on universe {UNIVERSE}: 3 symbols" in out
    assert "settings: fees=0.001" in out
    for label in ("Total return", "Final value", "Sharpe", "Max drawdown", "Win rate"):
        assert label in out
    res = in_process("sma_cross", fast=5, slow=30, fees=0.001)
    assert f"{res.stats['final_value']:,.2f}" in out  # the same human formatting as `qlm backtest`
    table = out.split("by symbol:")[1]
    assert "CONTRIBUTION" in table and "WIN RATE" in table
    for sym in SYMBOLS:
        row = next(line.split() for line in table.splitlines() if line.strip().startswith(sym))
        assert row[1] == str(int(res.symbol_stats.loc[sym, "n_trades"]))
        assert row[3] == f"{res.symbol_stats.loc[sym, 'pnl']:,.2f}"
    run_line = next(line for line in out.splitlines() if line.startswith("run id: "))
    assert int(run_line.split(": ")[1]) >= 1


def test_target_weights_from_a_csv(root: Path, in_process) -> None:
    weights = pd.DataFrame(
        {"time": ["2020-01-01 00:00:00+00:00", "2020-02-01 00:00:00+00:00"], "ACME": [0.5, 0.2],
         "BOLT": [0.2, 0.4], "CRUX": [0.3, 0.3]}
    )
    path = root / "weights.csv"
    weights.to_csv(path, index=False)
    proc = qlm_cli("portfolio", "weights", "--universe", UNIVERSE, "--weights", path, "--rebalance", "W",
                   "--drift", "0.05", "--fees", "0.001", "--json", root=root)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    frame = weights.set_index(pd.to_datetime(weights.pop("time"), utc=True))
    res = in_process(qlm.TargetWeights(frame, rebalance="W", drift=0.05), fees=0.001)
    assert doc["strategy"] == "TargetWeights" and doc["params"] == {"rebalance": "W", "drift": 0.05}
    assert doc["stats"]["final_value"] == pytest.approx(res.stats["final_value"], rel=1e-12)
    assert doc["stats"]["n_orders"] == res.stats["n_orders"] > 3


def test_weights_options_go_together(root: Path) -> None:
    proc = qlm_cli("portfolio", "sma_cross", "--universe", UNIVERSE, "--weights", "w.csv", "--json",
                   root=root)
    assert proc.returncode == 2
    assert "STRATEGY is 'weights'" in json.loads(proc.stderr)["message"]
    proc = qlm_cli("portfolio", "weights", "--universe", UNIVERSE, root=root)
    assert proc.returncode == 2 and "--weights FILE.csv" in proc.stderr
    proc = qlm_cli("portfolio", "weights", "--universe", UNIVERSE, "--weights", "missing.csv", "--json",
                   root=root)
    assert proc.returncode == 3
    assert json.loads(proc.stderr)["code"] == "NOT_FOUND"


def test_unknown_universe_is_a_did_you_mean_data_error(root: Path) -> None:
    proc = qlm_cli("portfolio", "sma_cross", "--universe", "tiro", "--json", root=root)
    assert proc.returncode == 3  # DataError's exit code, as in the other commands
    assert proc.stdout == ""
    err = json.loads(proc.stderr)
    assert err["type"] == "DataError" and err["code"] == "NOT_FOUND"
    assert "did you mean 'trio'?" in err["hint"]
    human = qlm_cli("portfolio", "sma_cross", "--universe", "tiro", root=root)
    assert human.returncode == 3
    assert "error (DataError): no universe named 'tiro'" in human.stderr
    assert "did you mean 'trio'?" in human.stderr


def test_bad_settings_and_flags_fail_like_the_other_commands(root: Path) -> None:
    proc = qlm_cli("portfolio", "sma_cross", "--universe", UNIVERSE, "--fees", "-0.1", "--json", root=root)
    assert proc.returncode == 5 and proc.stdout == ""  # ConfigError, before anything loads
    err = json.loads(proc.stderr)
    assert err["type"] == "ConfigError" and "fees" in err["message"]
    bad = qlm_cli("portfolio", "sma_cross", "--universe", UNIVERSE, "--fee", "0.001", root=root)
    assert bad.returncode == 2 and "did you mean --fees?" in bad.stderr


def test_report_is_written_with_every_symbol(root: Path) -> None:
    report = root / "reports" / "deep" / "portfolio.html"
    proc = qlm_cli("portfolio", "sma_cross", "--universe", UNIVERSE, "--report", report, "--json", root=root)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["report"] == str(report.resolve())
    text = report.read_text(encoding="utf-8")
    assert "<html" in text.lower() and UNIVERSE in text
    for sym in SYMBOLS:
        assert sym in text
