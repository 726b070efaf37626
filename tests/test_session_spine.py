"""One spine: every front end (Python, CLI, MCP tools, widget) goes through `qlm_kernel.session`.

Each drift bug of the issue has a test here that failed before the session façade existed, run through
every front end that offers the operation; the identity tests call one operation through each front end
on the same inputs and compare the results (job view, cancel reply, stats, errors).
The JupyterLab sidebar's side of the same checks is in tests/test_jupyterlab_handlers.py.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import qlm_kernel as qlm
from qlm_kernel import session
from qlm_kernel.cli import main as cli_main
from qlm_kernel.errors import ConfigError, DataError, QLMError
from qlm_kernel.mcp import tools
from qlm_kernel.store import default_store

SAMPLE = {"kind": "synthetic", "n": 3000, "seed": 0}
SPACE = {"fast": [5, 10], "slow": [30, 60]}


def cli(*args: str) -> tuple[int, Any, Any]:
    """Run ``qlm ARGS --json`` in this process: (exit code, stdout JSON or None, stderr JSON or None)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli_main([*args, "--json"])
    parse = lambda text: json.loads(text) if text.strip() else None  # noqa: E731
    return code, parse(out.getvalue()), parse(err.getvalue())


def error_of(fn: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """The QLMError record ``fn`` raises (the test fails if it returns or raises anything else)."""
    with pytest.raises(QLMError) as info:
        fn(*args, **kwargs)
    return info.value.to_dict()


def same_error(a: dict[str, Any], b: dict[str, Any]) -> None:
    """Two error records say the same thing (type, code, message, the common hint, every front end's
    fixes); tracebacks differ, and each front end's hint ends with its own fix."""
    keys = ("type", "code", "message", "fixes")
    assert {k: a.get(k) for k in keys} == {k: b.get(k) for k in keys}
    assert QLMError.from_dict(a).hint == QLMError.from_dict(b).hint


def recorded_job(home: Path) -> str:
    """A small finished grid optimization, recorded in the workspace."""
    res = qlm.optimize("sma_cross", sample=SAMPLE, space=SPACE, method="grid")
    assert res.job_id and res.status == "done"
    return res.job_id


# --- the drift bugs, each through every front end ---------------------------------------------------


@pytest.mark.parametrize("first", ["qlm_kernel.optimization", "qlm_kernel.healing.preview", "qlm_kernel.mcp"])
def test_optimize_and_heal_are_callables_whatever_was_imported_first(first: str) -> None:
    code = (
        f"import {first}\nimport qlm_kernel as qlm\n"
        "assert callable(qlm.optimize) and callable(qlm.optimize.cancel) and callable(qlm.heal)\n"
        "assert qlm.optimize.cancel is qlm.session.cancel_job\n"
        "assert qlm.optimize.status is qlm.session.get_job\n"
        "import qlm_kernel.optimization, qlm_kernel.healing\n"
        "assert callable(qlm.optimize.cancel) and callable(qlm.heal)\n"
        "print('ok')"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_cancel_of_an_unknown_job_is_not_found_everywhere_and_creates_no_database(home: Path) -> None:
    python = error_of(qlm.optimize.cancel, "nosuchjob")
    assert python["code"] == "NOT_FOUND" and "nosuchjob" in python["message"]
    code, out, err = cli("jobs", "cancel", "nosuchjob")
    assert code != 0 and out is None
    mcp = error_of(tools.cancel_job, "nosuchjob")
    for record in (err, mcp):
        same_error(python, record)
    assert not (home / "qlm.db").exists()


def test_lookahead_check_takes_settings_apart_from_params(home: Path) -> None:
    report = tools.sanity_check("sma_cross", "lookahead", sample=SAMPLE, params={"fast": 7},
                                settings={"fees": 0.001})
    assert report["passed"] is True and report["details"]["params"]["fast"] == 7
    python = session.sanity_check("lookahead", "sma_cross", sample=SAMPLE, params={"fast": 7},
                                  settings={"fees": 0.001})
    assert python.to_dict() == report
    bad = error_of(tools.sanity_check, "sma_cross", "lookahead", sample=SAMPLE, settings={"fee": 0.001})
    assert bad["code"] == "UNKNOWN_SETTING" and "did you mean 'fees'" in bad["hint"]


KNOBS = ["method", "executor", "n_jobs", "batch_size", "resume", "record", "progress"]


@pytest.mark.parametrize("knob", KNOBS)
def test_mcp_optimize_settings_cannot_reach_internal_knobs(home: Path, knob: str) -> None:
    record = error_of(tools.optimize_parameters, "sma_cross", SPACE, sample=SAMPLE, settings={knob: "x"})
    assert record["type"] == "ConfigError" and record["code"] == "UNKNOWN_SETTING"
    assert "fees" in record["hint"]  # lists the settings there are
    assert default_store().list_jobs() == []  # refused before any job existed


def test_jobs_list_shows_the_best_value(home: Path) -> None:
    job_id = recorded_job(home)
    value = session.get_job(job_id)["best"]["value"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli_main(["jobs", "list"]) == 0
    row = next(line for line in out.getvalue().splitlines() if line.startswith(job_id))
    assert f"{value:.4g}" in row and "{" not in row


def test_cli_optimize_on_a_sample_records_which_sample(home: Path) -> None:
    code, out, err = cli("optimize", "sma_cross", "--sample", "synthetic", "--n", "3000", "--seed", "3",
                         "--space", "fast=5:15:5", "--space", "slow=30:60:30", "--method", "grid")
    assert code == 0, err
    job = session.get_job(out["job_id"])
    assert job["sample"] == {"kind": "synthetic", "n": 3000, "seed": 3} and job["dataset"] is None
    assert job["data_fingerprint"] == session.frame_fingerprint(qlm.sample_data("synthetic", n=3000, seed=3))
    resumed = session.resume_job(out["job_id"])  # the job alone says what it ran on
    assert resumed.status == "done" and resumed.n_computed == 0


def test_an_unrecorded_job_is_cancelled_in_process(home: Path) -> None:
    seen: dict[str, Any] = {}

    def stop_first(payload: dict[str, Any]) -> None:
        if "reply" not in seen:
            seen["job_id"] = payload["job_id"]
            seen["view"] = qlm.optimize.status(payload["job_id"])
            seen["reply"] = qlm.optimize.cancel(payload["job_id"])

    res = qlm.optimize("sma_cross", sample=SAMPLE, space={"fast": list(range(2, 40)), "slow": [60]},
                       method="grid", record=False, progress=stop_first, batch_size=2, n_jobs=1)
    assert res.status == "cancelled" and len(res.rows) < 38
    assert seen["reply"] == {"job_id": seen["job_id"], "status": "running", "cancel_requested": True}
    assert seen["view"]["recorded"] is False and seen["view"]["status"] == "running"
    assert not (home / "qlm.db").exists()
    assert error_of(qlm.optimize.cancel, seen["job_id"])["code"] == "NOT_FOUND"  # gone once finished


# --- the same operation through each front end gives the same answer ---------------------------------


def test_job_view_is_the_same_from_python_cli_mcp_and_widget(home: Path) -> None:
    from qlm_kernel.widgets import OptimizationProgress

    job_id = recorded_job(home)
    python = session.get_job(job_id, 3)
    code, cli_view, _ = cli("jobs", "show", job_id, "--trials", "3")
    assert code == 0
    mcp = tools.get_job(job_id, 3)
    for view in (python, cli_view, mcp):
        view.pop("heartbeat_age_s")
    assert python == cli_view == mcp
    assert python["trials"]["count"] == 4 and len(python["trials"]["best"]) == 3
    assert python["best"]["params"] == python["trials"]["best"][0]["params"]
    listed = [session.list_jobs(), cli("jobs", "list")[1]["jobs"], tools.list_jobs()["jobs"]]
    for views in listed:
        for view in views:
            view.pop("heartbeat_age_s")
    assert listed[0] == listed[1] == listed[2] and listed[0][0]["id"] == job_id
    widget = OptimizationProgress(job_id)
    assert widget.total == python["total"] and widget.done == python["done"]
    assert widget.best_value == pytest.approx(python["best"]["value"])


def test_cancel_reply_is_the_same_from_python_cli_and_mcp(home: Path) -> None:
    store = default_store()
    jobs = [store.create_job("optimize", {"strategy": "SmaCross"}, total=10) for _ in range(3)]
    python = qlm.optimize.cancel(jobs[0])
    code, cli_reply, _ = cli("jobs", "cancel", jobs[1])
    assert code == 0
    mcp = tools.cancel_job(jobs[2])
    for reply, job_id in zip((python, cli_reply, mcp), jobs, strict=True):
        assert reply == {"job_id": job_id, "status": "pending", "cancel_requested": True}
        assert store.cancel_requested(job_id)
    store.finish_job(jobs[0], "cancelled")
    finished = [error_of(qlm.optimize.cancel, jobs[0]), cli("jobs", "cancel", jobs[0])[2],
                error_of(tools.cancel_job, jobs[0])]
    assert finished[0]["code"] == "JOB_FINISHED"
    same_error(finished[0], finished[1])
    same_error(finished[0], finished[2])


def test_backtest_stats_are_the_same_from_python_cli_and_mcp(home: Path) -> None:
    python = qlm.backtest("sma_cross", sample=SAMPLE, fast=7, fees=0.001, record=False)
    code, doc, err = cli("backtest", "sma_cross", "--sample", "synthetic", "--n", "3000", "--seed", "0",
                         "--param", "fast=7", "--fees", "0.001")
    assert code == 0, err
    mcp = tools.run_backtest("sma_cross", sample=SAMPLE, params={"fast": 7}, settings={"fees": 0.001})
    expected = json.loads(json.dumps(python.to_dict(include_trades=False)["stats"]))
    assert doc["stats"] == expected == mcp["stats"]
    assert doc["settings"] == mcp["settings"] == python.settings.to_dict()


@pytest.mark.parametrize(
    ("python_kwargs", "cli_args", "mcp_kwargs"),
    [
        ({"fees": -1.0}, ["--fees", "-1"], {"settings": {"fees": -1.0}}),
        ({"dataset": "nosuch"}, ["--dataset", "nosuch"], {"dataset": "nosuch"}),
        ({"fast": 1}, ["--param", "fast=1"], {"params": {"fast": 1}}),
    ],
    ids=["bad setting value", "unknown dataset", "param out of range"],
)
def test_bad_input_gives_the_same_error_everywhere(home: Path, python_kwargs, cli_args, mcp_kwargs) -> None:
    source = {} if "dataset" in python_kwargs else {"sample": SAMPLE}
    python = error_of(qlm.backtest, "sma_cross", **source, **python_kwargs)
    sample_args = [] if "dataset" in python_kwargs else ["--sample", "synthetic", "--n", "3000"]
    code, _, err = cli("backtest", "sma_cross", *sample_args, *cli_args)
    assert code != 0
    mcp = error_of(tools.run_backtest, "sma_cross", **source, **mcp_kwargs)
    same_error(python, err)
    same_error(python, mcp)


def test_sample_cap_is_one_rule_for_every_mcp_tool(home: Path) -> None:
    huge = {"kind": "synthetic", "n": 10**9}
    errors = [
        error_of(tools.run_backtest, "sma_cross", sample=huge),
        error_of(tools.optimize_parameters, "sma_cross", SPACE, sample=huge),
        error_of(tools.sanity_check, "sma_cross", "lookahead", sample=huge),
        error_of(tools.analyze_market_structure, sample=huge),
        error_of(tools.start_paper_session, "sma_cross", sample=huge),
    ]
    for record in errors:
        same_error(errors[0], record)
    assert "5,000,000" in errors[0]["message"]


def test_mcp_defaults_are_the_python_defaults() -> None:
    import inspect

    import qlm_kernel.optimization
    from qlm_kernel.sanity import walk_forward, white_noise

    opt = inspect.signature(tools.optimize_parameters).parameters
    python_optimize = inspect.signature(qlm_kernel.optimization.optimize).parameters
    assert opt["method"].default == python_optimize["method"].default == "auto"
    check = inspect.signature(tools.sanity_check).parameters
    assert check["n"].default == inspect.signature(white_noise).parameters["n"].default == 100
    assert check["n_splits"].default == inspect.signature(walk_forward).parameters["n_splits"].default == 5


# --- RunSpec and names ------------------------------------------------------------------------------


def test_runspec_refuses_unknown_settings_with_the_closest_match() -> None:
    with pytest.raises(ConfigError) as info:
        session.RunSpec.build("sma_cross", settings={"slipage": 0.001}, sample=SAMPLE)
    err = info.value
    assert err.code == "UNKNOWN_SETTING" and err.context["closest"] == "slippage"
    assert "slippage" in err.context["known"] and "did you mean 'slippage'" in err.hint
    spec = session.RunSpec.from_kwargs("sma_cross", sample=SAMPLE, fast=5, fees=0.002)
    assert spec.params == {"fast": 5} and spec.settings == {"fees": 0.002}
    assert spec.data.describe() == {"kind": "sample", "sample": SAMPLE}


def test_a_param_named_like_a_setting_is_refused_when_the_class_is_defined() -> None:
    for name in ("fees", "size", "direction", "dataset", "record"):
        with pytest.raises(ConfigError) as info:
            type("Clash", (qlm.Strategy,), {name: qlm.Param(1), "signals": lambda self, data: None})
        assert info.value.code == "PARAM_NAME_TAKEN" and info.value.context["param"] == name


def test_a_mistyped_setting_in_python_suggests_the_setting(home: Path) -> None:
    record = error_of(qlm.backtest, "sma_cross", sample=SAMPLE, fee=0.001)
    assert record["code"] == "UNKNOWN_PARAM" and "did you mean the backtest setting 'fees'" in record["hint"]


def test_sanity_checks_take_dataset_and_sample_like_backtest(home: Path) -> None:
    report = qlm.sanity.lookahead("sma_cross", sample=SAMPLE)
    assert report.passed and report.numbers["n_bars"] == 3000
    with pytest.raises(DataError):
        qlm.sanity.white_noise("sma_cross", dataset="nosuch", space=SPACE, n=2)


def test_mcp_grid_size_is_capped_before_any_work(home: Path) -> None:
    space = {"fast": list(range(2, 200)), "slow": list(range(10, 410, 2))}  # 39,600 combinations
    record = error_of(tools.optimize_parameters, "sma_cross", space, sample=SAMPLE, method="grid")
    assert record["code"] == "LIMIT_EXCEEDED" and record["type"] == ConfigError.__name__
    assert record["context"]["option"] == "QLM_MCP_MAX_TRIALS" and "QLM_MCP_MAX_TRIALS" in record["hint"]
    record = error_of(tools.optimize_parameters, "sma_cross", space, sample=SAMPLE, method="genetic",
                      n_trials=10**6)
    assert record["code"] == "LIMIT_EXCEEDED" and record["context"]["cap"] == "max_trials"
    assert default_store().list_jobs() == []


def test_mistyped_names_get_a_suggestion_in_every_front_end(home: Path) -> None:
    objective = error_of(qlm.optimize, "sma_cross", sample=SAMPLE, space=SPACE, objective="sharp")
    assert "did you mean 'sharpe'" in objective["hint"]
    mcp = error_of(tools.optimize_parameters, "sma_cross", SPACE, sample=SAMPLE, objective="sharp")
    same_error(objective, mcp)
    code, _, err = cli("backtest", "sma_cross", "--sample", "synthetic", "--fee", "0.001")
    assert code == 2 and "did you mean --fees?" in err["message"]  # no silent prefix match
    kind = error_of(qlm.backtest, "sma_cross", sample={"kind": "synthetc"})
    assert "did you mean 'synthetic'" in kind["hint"]


def test_paper_replay_takes_dataset_and_sample_and_sizes_like_the_engine(home: Path) -> None:
    sample = {"kind": "synthetic", "n": 1500, "seed": 2}
    for settings in ({}, {"size": 0.5, "size_type": "percent", "integer": True},
                     {"size": 3000.0, "size_type": "value", "fees": 0.001}):
        paper = qlm.paper_replay("sma_cross", sample=sample, latency=0.0, slippage=0.0, **settings)
        engine = qlm.backtest("sma_cross", sample=sample, fill="next_open", record=False, **settings)
        assert len(paper.trades) == len(engine.trades) > 0
        assert paper.final_value == pytest.approx(engine.stats["final_value"], rel=1e-12)


def test_moved_top_level_names_still_work_with_a_deprecation_warning() -> None:
    from qlm_kernel.store import default_store as store_default
    from qlm_kernel.workspace import resolve_data

    with pytest.warns(DeprecationWarning, match="from qlm_kernel.store import default_store"):
        assert qlm.default_store is store_default
    with pytest.warns(DeprecationWarning, match="qlm_kernel.workspace"):
        assert qlm.resolve_data is resolve_data
    public = {"backtest", "optimize", "heal", "sanity", "Strategy", "Param", "Signals", "load_ohlcv",
              "sample_data", "RunSpec", "paper_replay", "subscribe", "QLMError"}
    assert public <= set(qlm.__all__) and "default_store" not in qlm.__all__


def test_runs_and_datasets_read_the_same_from_python_cli_and_mcp(home: Path, monkeypatch) -> None:
    monkeypatch.setenv("QLM_RECORD_RUNS", "1")
    session.import_dataset(_csv(home), "prices")
    run = qlm.backtest("sma_cross", dataset="prices", fast=6)
    python = session.list_runs(5)
    code, cli_runs, _ = cli("runs", "list", "--limit", "5")
    assert code == 0 and python == cli_runs["runs"] == tools.list_runs(5)["runs"]
    assert python[0]["id"] == run.meta["run_id"] and python[0]["dataset"] == "prices"
    assert cli("runs", "show", str(run.meta["run_id"]))[1] == session.get_run(run.meta["run_id"])
    listing = session.list_datasets()
    code, cli_data, _ = cli("data", "list")
    assert code == 0 and cli_data["datasets"] == listing["datasets"] == tools.list_datasets()["datasets"]
    assert [d["name"] for d in listing["datasets"]] == ["prices"]


def _csv(home: Path) -> Path:
    """A small OHLCV CSV file outside the workspace."""
    path = home.parent / "prices.csv"
    frame = qlm.sample_data("synthetic", n=800, seed=5)
    frame.index.name = "time"
    frame.to_csv(path)
    return path


def test_every_process_finds_the_workspace_by_one_rule(tmp_path: Path, monkeypatch) -> None:
    from qlm_kernel.home import home_path

    monkeypatch.delenv("QLM_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    assert home_path() == tmp_path / ".qlm"
    assert home_path(base=tmp_path / "root") == tmp_path / "root" / ".qlm"  # the Jupyter server's base
    assert home_path(configured=tmp_path / "cfg", base=tmp_path / "root") == tmp_path / "cfg"
    monkeypatch.setenv("QLM_HOME", str(tmp_path / "env"))
    assert home_path(configured=tmp_path / "cfg") == tmp_path / "env"  # the environment wins
    assert home_path(tmp_path / "arg") == tmp_path / "arg"  # an explicit argument wins over all
    assert not (tmp_path / "env").exists()  # finding the workspace creates nothing
