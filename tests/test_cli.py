"""The ``qlm`` command line, run as a real subprocess (``python -m qlm_kernel.cli``) in a temp QLM_HOME.

Numba kernels load from their on-disk cache (a cold compile can take ~20 s), so subprocess backtests
are kept few and small, with a generous timeout.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qlm_kernel.cli import backtest as cli_backtest
from qlm_kernel.cli import main, output
from qlm_kernel.cli import strategies as cli_strategies
from qlm_kernel.cli.progress import Stages
from qlm_kernel.errors import ConfigError, DataError, QLMError, QLMSystemError, SecurityError, StrategyError

TIMEOUT = 120
SAMPLE = ("--sample", "synthetic", "--n", "5000")

BROKEN = '''from qlm_kernel import Param, Signals, Strategy


class Broken(Strategy):
    fast = Param(10, min=2, max=200)

    def signals(self, data):
        close = data["close"]
        return Signals(entry_long=close > undefined_level)
'''

CHATTY = '''from qlm_kernel import Signals, Strategy

print("chatty: loading")


class Chatty(Strategy):
    """Prints from user code: must never reach stdout."""

    def signals(self, data):
        print("chatty: computing")
        return Signals(entry_long=data["close"] > data["open"], exit_long=data["close"] < data["open"])
'''

BAD_CSV = "time,open,high,low,close,volume\n2020-01-01,1,2,0.5,1.5,10\n2020-01-02,1,2,0.5,abc,10\n"


def qlm(*args: str | os.PathLike[str], home: Path) -> subprocess.CompletedProcess[str]:
    """Run ``python -m qlm_kernel.cli ARGS`` with QLM_HOME=home and cwd=home's parent."""
    env = {**os.environ, "QLM_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "qlm_kernel.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=home.parent,
        timeout=TIMEOUT,
    )


def one_json(text: str) -> dict:
    """Parse ``text`` as exactly one JSON document (json.loads refuses trailing data)."""
    return json.loads(text)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture(scope="module")
def default_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    """One default-parameter JSON backtest with a report in a not-yet-existing nested folder."""
    root = tmp_path_factory.mktemp("cli_default")
    report = root / "reports" / "deep" / "run.html"
    proc = qlm("backtest", "sma_cross", *SAMPLE, "--json", "--report", report, home=root / "home")
    return proc, report


# --- backtest: results ------------------------------------------------------------------------------


def test_human_output_shows_stats_table(home: Path) -> None:
    proc = qlm("backtest", "sma_cross", *SAMPLE, "--fees", "0.001", home=home)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for label in ("Total return", "Final value", "Sharpe", "Max drawdown", "Win rate", "Exposure"):
        assert label in out
    assert "SmaCross(fast=10, slow=50) on sample synthetic" in out
    assert "settings: fees=0.001" in out
    assert "%" in out and "trades: " in out and "report: none" in out
    assert "stages" not in proc.stderr  # no progress bar when stderr is not a terminal


def test_json_is_one_document_with_stats_and_trades(default_run) -> None:
    proc, report = default_run
    assert proc.returncode == 0, proc.stderr
    doc = one_json(proc.stdout)
    assert proc.stderr == ""
    assert doc["strategy"] == "SmaCross" and doc["params"] == {"fast": 10, "slow": 50}
    assert doc["stats"]["bars"] == 5000
    assert doc["stats"]["n_trades"] == len(doc["trades"]) > 0
    assert {"entry_time", "exit_time", "pnl", "exit_reason"} <= set(doc["trades"][0])
    assert doc["data"]["kind"] == "sample" and doc["data"]["rows"] == 5000
    assert doc["settings"]["fill"] == "close"
    assert doc["report"] == str(report)


def test_report_is_written_into_created_folders(default_run) -> None:
    proc, report = default_run
    assert proc.returncode == 0, proc.stderr
    assert report.is_file()
    assert "plotly" in report.read_text(encoding="utf-8").lower()


def test_params_change_the_result(default_run, home: Path) -> None:
    base = one_json(default_run[0].stdout)
    params = ("--param", "fast=5", "--param", "slow=20")
    proc = qlm("backtest", "sma_cross", *SAMPLE, *params, "--json", home=home)
    assert proc.returncode == 0, proc.stderr
    doc = one_json(proc.stdout)
    assert doc["params"] == {"fast": 5, "slow": 20}  # text parsed by Param into ints
    assert doc["stats"]["n_trades"] != base["stats"]["n_trades"]
    assert doc["stats"]["final_value"] != base["stats"]["final_value"]


def test_user_prints_go_to_stderr_with_json(tmp_path: Path, home: Path) -> None:
    strategy = tmp_path / "chatty.py"
    strategy.write_text(CHATTY)
    proc = qlm("backtest", strategy, "--sample", "synthetic", "--n", "500", "--json", home=home)
    assert proc.returncode == 0, proc.stderr
    assert one_json(proc.stdout)["strategy"] == "Chatty"
    assert "chatty: loading" in proc.stderr and "chatty: computing" in proc.stderr


# --- backtest: errors -------------------------------------------------------------------------------


def test_broken_strategy_exits_4_with_located_json_error(tmp_path: Path, home: Path) -> None:
    strategy = tmp_path / "broken.py"
    strategy.write_text(BROKEN)
    bug_line = BROKEN.splitlines().index('        return Signals(entry_long=close > undefined_level)') + 1
    proc = qlm("backtest", strategy, "--sample", "synthetic", "--n", "500", "--json", home=home)
    assert proc.returncode == 4
    assert proc.stdout == ""
    err = one_json(proc.stderr)
    assert err["type"] == "StrategyError"
    assert err["context"]["file"] == str(strategy.resolve())
    assert err["context"]["line"] == bug_line
    assert "undefined_level" in err["message"] and err["traceback"]


def test_broken_strategy_human_message(tmp_path: Path, home: Path) -> None:
    strategy = tmp_path / "broken.py"
    strategy.write_text(BROKEN)
    proc = qlm("backtest", strategy, "--sample", "synthetic", "--n", "500", home=home)
    assert proc.returncode == 4
    assert proc.stderr.startswith("error (StrategyError): ")
    assert f"{strategy.resolve()}:9" in proc.stderr and "hint: " in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""


@pytest.mark.parametrize("command", ["backtest", "import"])
def test_bad_csv_exits_3_naming_line_and_column(tmp_path: Path, home: Path, command: str) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(BAD_CSV)
    if command == "backtest":
        proc = qlm("backtest", "sma_cross", "--data", bad, "--json", home=home)
    else:
        proc = qlm("data", "import", bad, "--json", home=home)
    assert proc.returncode == 3, proc.stderr
    err = one_json(proc.stderr)
    assert err["type"] == "DataError"
    assert err["context"]["line"] == 3 and err["context"]["column"] == "close"
    assert err["context"]["file"].endswith("bad.csv")


@pytest.mark.parametrize(
    ("args", "code", "kind"),
    [
        (("--fill", "bogus"), 2, "UsageError"),
        (("--param", "fast"), 2, "UsageError"),
        (("--seed", "3", "--dataset", "x"), 2, "UsageError"),
        (("--fees", "-1"), 5, "ConfigError"),
        (("--sl-stop", "nan"), 5, "ConfigError"),
        (("--param", "fsat=3"), 5, "ConfigError"),
        (("--param", "fast=ten"), 5, "ConfigError"),
    ],
)
def test_usage_and_config_errors(home: Path, args: tuple[str, ...], code: int, kind: str) -> None:
    source = () if "--dataset" in args else ("--sample", "synthetic", "--n", "100")
    proc = qlm("backtest", "sma_cross", *source, *args, "--json", home=home)
    assert proc.returncode == code, proc.stderr
    assert proc.stdout == ""
    err = one_json(proc.stderr)
    assert err["type"] == kind and err["message"]


def test_usage_error_without_json_is_argparse_style(home: Path) -> None:
    proc = qlm("backtest", "sma_cross", "--sample", "synthetic", "--fill", "bogus", home=home)
    assert proc.returncode == 2
    assert "invalid choice: 'bogus'" in proc.stderr and "usage: qlm backtest" in proc.stderr


def test_unknown_strategy_and_missing_dataset(home: Path) -> None:
    proc = qlm("backtest", "sma_crss", "--sample", "synthetic", "--json", home=home)
    assert proc.returncode == 4
    assert "sma_cross" in one_json(proc.stderr)["hint"]
    proc = qlm("backtest", "sma_cross", "--dataset", "nope", "--json", home=home)
    assert proc.returncode == 3
    assert one_json(proc.stderr)["code"] == "NOT_FOUND"


# --- data and strategies ----------------------------------------------------------------------------


def test_data_import_list_then_backtest_dataset(tmp_path: Path, home: Path) -> None:
    from qlm_kernel.data import sample_data

    csv = tmp_path / "prices.csv"
    sample_data("synthetic", n=400, seed=7).to_csv(csv)
    proc = qlm("data", "import", csv, "--name", "demo", "--json", home=home)
    assert proc.returncode == 0, proc.stderr
    meta = one_json(proc.stdout)
    assert meta["name"] == "demo" and meta["rows"] == 400
    listing = one_json(qlm("data", "list", "--json", home=home).stdout)
    assert [m["name"] for m in listing["datasets"]] == ["demo"]
    human = qlm("data", "list", home=home)
    assert "demo" in human.stdout and "400" in human.stdout

    proc = qlm("backtest", "sma_cross", "--dataset", "demo", "-p", "slow=20", "--json", home=home)
    assert proc.returncode == 0, proc.stderr
    doc = one_json(proc.stdout)
    assert doc["data"]["kind"] == "dataset" and doc["data"]["dataset"] == "demo"
    assert doc["stats"]["bars"] == 400


def test_strategies_list(home: Path) -> None:
    folder = home / "strategies"
    folder.mkdir(parents=True)
    (folder / "chatty.py").write_text(CHATTY)
    (folder / "syntax_bug.py").write_text("x = (\n")
    proc = qlm("strategies", "list", "--json", home=home)
    assert proc.returncode == 0, proc.stderr
    entries = {e["name"]: e for e in one_json(proc.stdout)["strategies"]}
    sma = entries["sma_cross"]
    assert sma["origin"] == "examples" and sma["class"] == "SmaCross"
    assert sma["params"]["fast"]["default"] == 10 and sma["params"]["slow"]["max"] == 500
    assert entries["chatty"]["origin"] == "workspace" and entries["chatty"]["params"] == {}
    assert entries["syntax_bug"]["error"]["type"] == "StrategyError"
    assert entries["syntax_bug"]["error"]["context"]["line"] == 1
    assert "chatty: loading" in proc.stderr

    human = qlm("strategies", "list", home=home)
    assert "sma_cross" in human.stdout and "fast=10 [2..200]" in human.stdout
    assert "ERROR StrategyError" in human.stdout


def test_version_and_missing_command(home: Path) -> None:
    proc = qlm("--version", home=home)
    assert proc.returncode == 0 and proc.stdout.startswith("qlm 0.1.0")
    proc = qlm(home=home)
    assert proc.returncode == 2 and "choose a command" in proc.stderr
    proc = qlm("--json", "data", home=home)
    assert proc.returncode == 2 and one_json(proc.stderr)["type"] == "UsageError"


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
def test_progress_bar_on_a_terminal_only_on_stderr(tmp_path: Path, home: Path) -> None:
    import pty

    master, slave = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "qlm_kernel.cli", "backtest", "sma_cross", "--sample", "synthetic",
             "--n", "500", "--report", tmp_path / "r.html"],
            stdout=subprocess.PIPE, stderr=slave, text=True, timeout=TIMEOUT,
            env={**os.environ, "QLM_HOME": str(home)}, cwd=tmp_path,
        )
    finally:
        os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO once the terminal's other end is closed and drained
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    shown = b"".join(chunks).decode("utf-8", "replace")
    assert proc.returncode == 0
    for stage in ("loading data", "loading kernels", "computing signals", "writing report"):
        assert stage in shown
    assert "stages" not in proc.stdout and "Total return" in proc.stdout


# --- in-process units (no subprocess) ---------------------------------------------------------------


def test_cli_choices_match_the_engine() -> None:
    from qlm_kernel.data import SAMPLE_KINDS
    from qlm_kernel.engine import SETTING_NAMES
    from qlm_kernel.engine import layout as L

    assert tuple(cli_backtest.SETTING_FLAGS) == tuple(SETTING_NAMES)
    assert tuple(L.FILL_CODES) == cli_backtest.FILL_CHOICES
    assert tuple(L.SIZE_TYPE_CODES) == cli_backtest.SIZE_TYPE_CHOICES
    assert tuple(L.DIRECTION_CODES) == cli_backtest.DIRECTION_CHOICES
    assert tuple(SAMPLE_KINDS) == cli_backtest.SAMPLE_CHOICES


def test_parse_param() -> None:
    import argparse

    assert cli_backtest.parse_param("fast=10") == ("fast", "10")
    assert cli_backtest.parse_param(" kind = ema ") == ("kind", "ema")
    for bad in ("fast", "=3", "1x=2"):
        with pytest.raises(argparse.ArgumentTypeError):
            cli_backtest.parse_param(bad)


def test_exit_codes() -> None:
    assert output.exit_code_for(DataError("x")) == 3
    assert output.exit_code_for(StrategyError("x")) == 4
    assert output.exit_code_for(ConfigError("x")) == 5
    assert output.exit_code_for(QLMSystemError("x")) == 6
    assert output.exit_code_for(SecurityError("x")) == 1
    assert output.exit_code_for(QLMError("x")) == 1


def test_unexpected_exception_is_exit_70_with_json_record(monkeypatch, capsys) -> None:
    def boom() -> list:
        raise RuntimeError("kaput")

    monkeypatch.setattr(cli_strategies, "strategy_entries", boom)
    assert main(["strategies", "list", "--json"]) == 70
    captured = capsys.readouterr()
    assert captured.out == ""
    record = one_json(captured.err)
    assert record["type"] == "InternalError" and record["context"]["exception_type"] == "RuntimeError"
    assert "kaput" in record["message"] and "RuntimeError: kaput" in record["traceback"]

    assert main(["strategies", "list"]) == 70
    err = capsys.readouterr().err
    assert "Traceback" in err and "internal error: RuntimeError: kaput" in err


def test_stats_table_formats() -> None:
    import pandas as pd

    stats = pd.Series({"total_return": 0.1234, "final_value": 11234.5, "sharpe": 1.23456,
                       "n_trades": 12, "win_rate": float("nan"), "new_stat": 2.5})
    text = cli_backtest.stats_table(stats)
    assert "Total return" in text and "12.34%" in text
    assert "11,234.50" in text and "1.235" in text
    assert "n/a" in text and "New stat" in text


def test_stages_bar_writes_only_when_enabled() -> None:
    shown = io.StringIO()
    with Stages(["first", "second"], enabled=True, stream=shown) as stages:
        with stages.stage("first"):
            pass
        with stages.stage("second"):
            pass
    assert "first" in shown.getvalue() and "second" in shown.getvalue()
    hidden = io.StringIO()
    with Stages(["first"], enabled=False, stream=hidden) as stages, stages.stage("first"):
        pass
    assert hidden.getvalue() == ""


def test_ruin_is_stated_in_the_human_output_and_the_json(home: Path) -> None:
    """The issue's example: a breakout on the monthly BTC sample used to end at -125 % without a word."""
    proc = qlm("backtest", "donchian_breakout", "--sample", "btcusd", "--fill", "next_open", home=home)
    assert proc.returncode == 0, proc.stderr
    assert "Liquidated" in proc.stdout and "warning: the account was liquidated at 2023-10-31" in proc.stdout
    assert "this is ruin, not a bug" in proc.stdout
    data = one_json(qlm("backtest", "donchian_breakout", "--sample", "btcusd", "--fill", "next_open",
                        "--leverage", "1", "--maintenance-margin", "0.05", "--json", home=home).stdout)
    assert data["stats"]["liquidated"] is True and data["stats"]["final_value"] > 0
    assert data["warnings"][0]["code"] == "LIQUIDATED"
    assert data["settings"]["maintenance_margin"] == 0.05
