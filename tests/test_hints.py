"""Did-you-mean hints that name the front end's own command: the same mistake made in Python, on the
command line and over MCP gets the closest name and that front end's fix (`QLMError.fixes`)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import qlm_kernel as qlm
from qlm_kernel.errors import ConfigError, DataError, QLMError, record_for, spelled
from tests.mcp_helpers import error_record, http_client, serving

SAMPLE = {"kind": "synthetic", "n": 500, "seed": 0}
TIMEOUT = 300


# --- the mechanism ------------------------------------------------------------------------------------


def test_each_front_end_sees_the_hint_and_its_own_fix() -> None:
    err = DataError("no dataset named 'btc'", hint="known datasets: none",
                    fixes={"python": "qlm.DataManager().import_file('x.csv')",
                           "cli": "qlm data import x.csv"})
    assert err.hint_for("python") == "known datasets: none; qlm.DataManager().import_file('x.csv')"
    assert err.hint_for("cli") == "known datasets: none; qlm data import x.csv"
    assert err.hint_for("mcp") == "known datasets: none"  # no fix for MCP: the common hint alone
    assert "hint: known datasets: none; qlm.DataManager()" in str(err)  # Python is the default
    assert err.hint == "known datasets: none"
    with pytest.raises(ValueError, match="unknown front end"):
        QLMError("x", fixes={"ruby": "..."})


@pytest.mark.parametrize("front_end", ["python", "cli", "mcp"])
@pytest.mark.parametrize("hint", [None, "did you mean 'fees'?", "known: a, b"])
def test_fixes_survive_the_json_round_trip(front_end: str, hint: str | None) -> None:
    err = ConfigError("unknown setting 'fee'", hint=hint, code="UNKNOWN_SETTING",
                      fixes=spelled("fees", 0.001, mcp_in="settings"), key="fee")
    record = json.loads(json.dumps(err.to_dict(front_end)))
    assert record["hint"] == err.hint_for(front_end) and record["front_end"] == front_end
    expected = {"python": "fees=0.001", "cli": "--fees 0.001", "mcp": 'settings={"fees": 0.001}'}
    assert record["fixes"] == expected
    back = QLMError.from_dict(record)
    assert type(back) is ConfigError and back.hint == hint and back.fixes == err.fixes
    assert all(back.hint_for(fe) == err.hint_for(fe) for fe in ("python", "cli", "mcp"))
    assert record_for(record, "cli")["hint"] == err.hint_for("cli")  # a stored record, shown by the CLI


def test_a_record_without_fixes_reads_as_before() -> None:
    back = QLMError.from_dict({"type": "DataError", "message": "m", "hint": "h"})
    assert back.hint == "h" and back.fixes == {} and back.hint_for("cli") == "h"


# --- Python ---------------------------------------------------------------------------------------------


def python_error(call, *args, **kwargs) -> QLMError:
    with pytest.raises(QLMError) as info:
        call(*args, **kwargs)
    return info.value


def test_python_hints_name_the_python_call(home: Path) -> None:
    dataset = python_error(qlm.backtest, "sma_cross", dataset="btcc", record=False)
    assert dataset.code == "NOT_FOUND" and "qlm.DataManager().import_file(" in str(dataset)
    assert "qlm data import" not in str(dataset)

    strategy = python_error(qlm.backtest, "sma_crss", sample=SAMPLE, record=False)
    assert "did you mean 'sma_cross'?" in str(strategy)
    assert "qlm.session.strategies.list_strategies()" in str(strategy)
    assert "qlm strategies" not in str(strategy)

    fee = python_error(qlm.backtest, "sma_cross", sample=SAMPLE, record=False, fee=0.001)
    assert fee.code == "UNKNOWN_PARAM" and fee.context["closest"] == "fees"
    assert "did you mean the backtest setting 'fees'?" in str(fee) and "fees=0.001" in str(fee)

    objective = python_error(qlm.optimize, "sma_cross", sample=SAMPLE, space={"fast": [5, 10]},
                             objective="sharp", record=False)
    assert "did you mean 'sharpe'?" in str(objective) and "objective='sharpe'" in str(objective)

    kind = python_error(qlm.backtest, "sma_cross", sample={"kind": "synthetc"}, record=False)
    assert "did you mean 'synthetic'?" in str(kind) and "qlm.sample_data('synthetic')" in str(kind)

    job = python_error(qlm.session.get_job, "nosuchjob")
    assert "qlm.optimize.list()" in str(job) and "qlm jobs" not in str(job)


def test_python_keywords_are_checked_against_the_call_settings_and_params_together(home: Path) -> None:
    datset = python_error(qlm.backtest, "sma_cross", datset="prices", record=False)
    assert datset.code == "UNKNOWN_KEYWORD" and "did you mean 'dataset'?" in str(datset)
    assert "dataset='prices'" in str(datset)
    method = python_error(qlm.optimize, "sma_cross", sample=SAMPLE, space={"fast": [5, 10]}, methd="grid")
    assert method.code == "UNKNOWN_KEYWORD" and "did you mean 'method'?" in str(method)
    fastt = python_error(qlm.backtest, "sma_cross", sample=SAMPLE, record=False, fastt=3)
    assert fastt.context["closest"] == "fast" and "did you mean 'fast'?" in str(fastt)


# --- the command line -------------------------------------------------------------------------------------


def qlm_cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    """``python -m qlm_kernel.cli ARGS`` with HOME and QLM_HOME in the test's temp folder."""
    env = {**os.environ, "QLM_HOME": str(home), "HOME": str(home.parent)}
    return subprocess.run([sys.executable, "-m", "qlm_kernel.cli", *args], capture_output=True, text=True,
                          env=env, cwd=home.parent, timeout=TIMEOUT)


def test_cli_hints_name_qlm_commands(tmp_path: Path) -> None:
    home = tmp_path / "home"
    dataset = qlm_cli("backtest", "sma_cross", "--dataset", "btcc", home=home)
    assert dataset.returncode == 3 and "qlm data import FILE" in dataset.stderr
    assert "DataManager" not in dataset.stderr

    strategy = qlm_cli("backtest", "sma_crss", "--sample", "synthetic", "--n", "500", home=home)
    assert strategy.returncode == 4 and "did you mean 'sma_cross'?" in strategy.stderr
    assert "qlm strategies list" in strategy.stderr and "list_strategies" not in strategy.stderr

    param = qlm_cli("backtest", "sma_cross", "--sample", "synthetic", "--n", "500", "--param", "fee=0.001",
                    home=home)
    assert param.returncode == 5 and "--fees 0.001" in param.stderr

    objective = qlm_cli("optimize", "sma_cross", "--sample", "synthetic", "--n", "500", "--space",
                        "fast=5,10", "--objective", "sharp", "--json", home=home)
    record = json.loads(objective.stderr)
    assert record["code"] == "BAD_OBJECTIVE" and record["front_end"] == "cli"
    assert "did you mean 'sharpe'?" in record["hint"] and "--objective sharpe" in record["hint"]
    assert "objective='sharpe'" in record["fixes"]["python"]  # every front end's fix stays in the record

    jobs = qlm_cli("jobs", "show", "nosuchjob", home=home)
    assert jobs.returncode == 5 and "qlm jobs list" in jobs.stderr and "list_jobs" not in jobs.stderr


def test_cli_usage_errors_suggest_the_closest_flag_and_choice(tmp_path: Path) -> None:
    home = tmp_path / "home"
    fee = qlm_cli("backtest", "sma_cross", "--sample", "synthetic", "--fee", "0.001", home=home)
    assert fee.returncode == 2 and "did you mean --fees?" in fee.stderr
    assert "usage: qlm backtest" in fee.stderr and "see 'qlm backtest --help'" in fee.stderr

    nested = qlm_cli("--json", "data", "import", "x.csv", "--nam", "btc", home=home)
    record = json.loads(nested.stderr)
    assert "did you mean --name?" in record["message"] and record["context"]["prog"] == "qlm data import"

    kind = qlm_cli("backtest", "sma_cross", "--sample", "synthetc", home=home)
    assert kind.returncode == 2 and "did you mean 'synthetic'?" in kind.stderr
    command = qlm_cli("backtst", "sma_cross", home=home)
    assert command.returncode == 2 and "did you mean 'backtest'?" in command.stderr


# --- MCP ----------------------------------------------------------------------------------------------------


def test_mcp_hints_name_the_tools_and_unknown_arguments_are_refused(tmp_path: Path) -> None:
    calls = {
        "dataset": ("run_backtest", {"strategy": "sma_cross", "dataset": "btcc"}),
        "strategy": ("run_backtest", {"strategy": "sma_crss", "sample": SAMPLE}),
        "setting": ("run_backtest", {"strategy": "sma_cross", "sample": SAMPLE, "settings": {"fee": 0.001}}),
        "param": ("run_backtest", {"strategy": "sma_cross", "sample": SAMPLE, "params": {"fee": 0.001}}),
        "objective": ("optimize_parameters", {"strategy": "sma_cross", "sample": SAMPLE,
                                              "space": {"fast": [5, 10]}, "objective": "sharp"}),
        "kind": ("run_backtest", {"strategy": "sma_cross", "sample": {"kind": "synthetc"}}),
        "job": ("get_job", {"job_id": "nosuchjob"}),
        "argument": ("run_backtest", {"strategy": "sma_cross", "sample": SAMPLE, "fees": 0.001}),
        "typo": ("run_backtest", {"strategy": "sma_cross", "datset": "btcc"}),
        "tool": ("run_backtst", {"strategy": "sma_cross"}),
    }

    async def go(handle) -> dict[str, dict]:
        async with http_client(handle) as client:
            return {k: error_record(await client.call_tool(name, args)) for k, (name, args) in calls.items()}

    with serving(tmp_path / "home") as handle:
        got = asyncio.run(go(handle))
    hints = {k: r["hint"] for k, r in got.items()}
    assert all(r["front_end"] == "mcp" for r in got.values())
    assert "list_datasets" in hints["dataset"] and "DataManager" not in hints["dataset"]
    assert "did you mean 'sma_cross'?" in hints["strategy"] and "list_strategies" in hints["strategy"]
    assert "qlm strategies" not in hints["strategy"]
    assert got["setting"]["code"] == "UNKNOWN_SETTING" and 'settings={"fees": VALUE}' in hints["setting"]
    assert 'settings={"fees": 0.001}' in hints["param"]
    assert 'objective="sharpe"' in hints["objective"]
    assert 'sample={"kind": "synthetic"' in hints["kind"]
    assert "list_jobs" in hints["job"] and "qlm jobs" not in hints["job"]
    assert got["argument"]["code"] == "UNKNOWN_ARGUMENT" and 'settings={"fees": 0.001}' in hints["argument"]
    assert got["typo"]["context"]["closest"] == "dataset" and "did you mean 'dataset'?" in hints["typo"]
    assert got["tool"]["code"] == "UNKNOWN_TOOL" and "did you mean 'run_backtest'?" in hints["tool"]


def test_a_record_keeps_its_common_hint_instead_of_taking_the_text_apart() -> None:
    err = ConfigError("unknown setting 'fee'", hint="did you mean 'fees'?", code="UNKNOWN_SETTING",
                      fixes={"python": "fees=0.001", "cli": "--fees 0.001"}, key="fee")
    python = err.to_dict("python")
    assert python["hint"] == "did you mean 'fees'? fees=0.001"
    assert python["common_hint"] == "did you mean 'fees'?"  # kept, since the hint shown has the fix
    mcp = err.to_dict("mcp")  # no MCP fix: the hint shown is the common hint; the record is as before
    assert mcp["hint"] == "did you mean 'fees'?" and "common_hint" not in mcp
    assert list(mcp) == ["type", "code", "message", "hint", "fixes", "front_end", "context", "traceback"]
    rendered = record_for(python, "cli")
    assert rendered["hint"] == err.hint_for("cli") and rendered["common_hint"] == err.hint
    assert "common_hint" not in record_for(python, "mcp") and record_for(python, "mcp")["hint"] == err.hint
    # the kept hint is what is rebuilt, whatever the text shown says
    assert QLMError.from_dict({**python, "common_hint": "kept"}).hint == "kept"
    # a record stored before it kept the common hint still reads
    legacy = {k: v for k, v in python.items() if k != "common_hint"}
    assert QLMError.from_dict(legacy).hint == err.hint
    assert record_for(legacy, "cli")["hint"] == err.hint_for("cli")
