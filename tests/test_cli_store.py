"""``qlm runs|jobs|events|strategies history``: a real store filled in-process, read by CLI subprocesses.

The store is written through the `Store` API in a temp QLM_HOME; each command runs as
``python -m qlm_kernel.cli`` (no backtests, so every call takes a fraction of a second).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qlm_kernel.cli import jobs as cli_jobs
from qlm_kernel.cli import runs as cli_runs
from qlm_kernel.cli import storeio
from qlm_kernel.store import JOB_STATUSES, MIGRATIONS, Store

TIMEOUT = 60
CODE_V1 = "from qlm_kernel import Strategy\n\n\nclass Sma(Strategy):\n    pass\n"
CODE_V2 = CODE_V1 + "\n# tuned\n"
STATS = {
    "total_return": 0.1234,
    "sharpe": 1.5,
    "max_drawdown": -0.2,
    "n_trades": 42,
    "win_rate": float("nan"),
}


def qlm(*args: Any, home: Path) -> subprocess.CompletedProcess[str]:
    """Run ``python -m qlm_kernel.cli ARGS`` with QLM_HOME=home (cwd: home's parent)."""
    return subprocess.run(
        [sys.executable, "-m", "qlm_kernel.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, "QLM_HOME": str(home)},
        cwd=home.parent,
        timeout=TIMEOUT,
    )


def ok_json(*args: Any, home: Path) -> Any:
    """Run with --json, check exit 0 and a clean stderr, return the one JSON document on stdout."""
    proc = qlm(*args, "--json", home=home)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    return json.loads(proc.stdout)


def ok_text(*args: Any, home: Path) -> str:
    """Run in human mode, check exit 0, return stdout."""
    proc = qlm(*args, home=home)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def fill(store: Store) -> dict[str, Any]:
    """Two strategy versions, an ok run linked to v2, a failed run, two jobs with trials, three events."""
    store.save_strategy_version("sma.py", CODE_V1, message="first draft")
    ok = store.record_run(
        strategy="sma.py",
        code=CODE_V2,
        dataset="eurusd",
        data_fingerprint="abcdef1234567890",
        params={"fast": 10, "slow": 50},
        settings={"fees": 0.001},
        stats=STATS,
        duration_s=0.0123,
        source="cli",
    )
    bad = store.record_run(
        strategy="rsi.py", params={"n": 14}, error=ValueError("boom in signals"), duration_s=1.5
    )
    job = store.create_job("optimize", config={"strategy": "sma.py"}, total=10, job_id="opt1")
    store.update_job(job, status="running", done=3, best={"params": {"fast": 7}, "value": 0.7})
    store.add_trials(
        job, [{"params": {"fast": i}, "metrics": {"sharpe": i / 10}, "objective": i / 10} for i in range(8)]
    )
    store.create_job("check", config={"maximize": False}, job_id="chk1")
    store.add_trials("chk1", [{"params": {"k": i}, "objective": float(i)} for i in (3, 1, 2)])
    store.finish_job("chk1", "done")
    last = store.append_events(
        [
            {"topic": "run.done", "payload": {"run_id": ok, "sharpe": float("nan")}, "source": "kernel"},
            {"topic": "job.progress", "payload": {"job_id": job, "done": 3}, "source": "optimizer"},
            {"topic": "run.done", "payload": {"run_id": bad}, "source": "kernel"},
        ]
    )
    return {"ok": ok, "bad": bad, "job": job, "last_event": last}


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A workspace whose store holds `fill`'s records (read-only tests share it)."""
    home = tmp_path_factory.mktemp("cli_store") / "home"
    with Store(home / "qlm.db") as store:
        ids = fill(store)
    return home, ids


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[tuple[Path, Store]]:
    """A workspace of its own with an open, filled store (for tests that change or append)."""
    home = tmp_path / "home"
    store = Store(home / "qlm.db")
    fill(store)
    yield home, store
    store.close()


# --- empty workspace --------------------------------------------------------------------------------

EMPTY_LISTINGS = [
    (("runs", "list"), {"runs": []}),
    (("jobs", "list"), {"jobs": []}),
    (("events", "tail"), []),
    (("strategies", "history", "sma.py"), {"strategy": "sma.py", "versions": []}),
]


@pytest.mark.parametrize("exists", [False, True], ids=["no-home", "empty-home"])
def test_listing_an_empty_workspace_is_empty_and_creates_nothing(tmp_path: Path, exists: bool) -> None:
    home = tmp_path / "home"
    if exists:
        home.mkdir()
    for args, empty in EMPTY_LISTINGS:
        assert ok_json(*args, home=home) == empty
        proc = qlm(*args, home=home)
        assert proc.returncode == 0 and proc.stdout == "", proc.stderr
    proc = qlm("runs", "show", "1", "--json", home=home)
    assert proc.returncode == 5 and json.loads(proc.stderr)["code"] == "NOT_FOUND"
    assert not (home / "qlm.db").exists()
    assert home.exists() == exists


def test_an_old_schema_is_not_migrated_by_a_listing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    Store(home / "qlm.db", migrations=MIGRATIONS[:1]).close()
    proc = qlm("runs", "list", "--json", home=home)
    assert proc.returncode == 6 and proc.stdout == ""
    err = json.loads(proc.stderr)
    assert err["type"] == "QLMSystemError" and err["code"] == "DB_READONLY"
    with sqlite3.connect(home / "qlm.db") as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1


# --- runs -------------------------------------------------------------------------------------------


def test_runs_list_table(filled) -> None:
    home, _ = filled
    lines = ok_text("runs", "list", home=home).splitlines()
    assert lines[0].split()[:4] == ["ID", "TIME", "(UTC)", "STRATEGY"]
    bad, ok = lines[1].split(), lines[2].split()
    assert ok[0] == "1" and ok[3:13] == [
        "sma.py",
        "v2",
        "eurusd",
        "abcdef12",
        "12.34%",
        "1.500",
        "-20.00%",
        "42",
        "ok",
        "0.012s",
    ]
    assert bad[0] == "2" and "rsi.py" in bad and "error" in bad and "1.500s" in bad


def test_runs_list_json_and_filters(filled) -> None:
    home, ids = filled
    runs = ok_json("runs", "list", home=home)["runs"]
    assert [r["id"] for r in runs] == [ids["bad"], ids["ok"]]
    ok = runs[1]
    assert ok["stats"]["win_rate"] is None and ok["stats"]["n_trades"] == 42  # NaN -> null: strict JSON
    version = ok["strategy_version"]
    assert version["version"] == 2 and version["id"] == ok["strategy_version_id"]
    failed_only = ok_json("runs", "list", "--status", "error", home=home)["runs"]
    assert [r["id"] for r in failed_only] == [ids["bad"]]
    sma_only = ok_json("runs", "list", "--strategy", "sma.py", home=home)["runs"]
    assert [r["id"] for r in sma_only] == [ids["ok"]]
    assert len(ok_json("runs", "list", "--limit", "1", home=home)["runs"]) == 1
    proc = qlm("runs", "list", "--status", "weird", home=home)
    assert proc.returncode == 2 and "invalid choice" in proc.stderr


def test_runs_show(filled) -> None:
    home, ids = filled
    run = ok_json("runs", "show", ids["ok"], home=home)
    assert run["params"] == {"fast": 10, "slow": 50} and run["settings"] == {"fees": 0.001}
    assert run["stats"]["total_return"] == 0.1234 and run["error"] is None
    assert run["strategy_version"]["version"] == 2 and "code" not in run["strategy_version"]
    text = ok_text("runs", "show", ids["ok"], home=home)
    for part in (
        "run 1 (ok)",
        "strategy: sma.py v2 (version id 2",
        "fingerprint abcdef1234567890",
        "params: fast=10, slow=50",
        "settings: fees=0.001",
        "Total return",
        "12.34%",
        "Sharpe",
    ):
        assert part in text
    failed = ok_json("runs", "show", ids["bad"], home=home)
    assert failed["status"] == "error" and failed["error"]["message"] == "boom in signals"
    text = ok_text("runs", "show", ids["bad"], home=home)
    assert "error (ValueError): boom in signals" in text and "code not versioned" in text


def test_runs_show_unknown_id_is_a_clear_error(filled) -> None:
    home, _ = filled
    proc = qlm("runs", "show", "999", "--json", home=home)
    assert proc.returncode == 5 and proc.stdout == ""
    err = json.loads(proc.stderr)
    assert err["code"] == "NOT_FOUND" and err["message"] == "no run with id 999"
    assert "qlm runs list" in err["hint"]
    proc = qlm("runs", "show", "999", home=home)
    assert proc.returncode == 5 and "no run with id 999" in proc.stderr
    assert qlm("runs", "show", "0", home=home).returncode == 2


# --- jobs -------------------------------------------------------------------------------------------


def test_jobs_list(filled) -> None:
    home, _ = filled
    jobs = {j["id"]: j for j in ok_json("jobs", "list", home=home)["jobs"]}
    opt = jobs["opt1"]
    assert opt["status"] == "running" and (opt["done"], opt["total"], opt["progress"]) == (3, 10, 0.3)
    assert opt["best"] == {"params": {"fast": 7}, "value": 0.7} and opt["strategy"] == "sma.py"
    check = jobs["chk1"]
    assert check["status"] == "done" and check["progress"] == 1.0 and check["total"] is None
    assert [j["id"] for j in ok_json("jobs", "list", "--status", "done", home=home)["jobs"]] == ["chk1"]
    text = ok_text("jobs", "list", home=home)
    assert "opt1" in text and "3/10 (30%)" in text and "0.7" in text and "chk1" in text


def test_jobs_show_first_and_best_trials(filled) -> None:
    home, _ = filled
    view = ok_json("jobs", "show", "opt1", "--trials", "3", home=home)
    assert view["best"] == {"params": {"fast": 7}, "value": 0.7}
    assert view["done"] == 3 and view["trials"]["count"] == 8
    assert [t["params"]["fast"] for t in view["trials"]["first"]] == [0, 1, 2]
    assert [t["params"]["fast"] for t in view["trials"]["best"]] == [7, 6, 5]
    minimized = ok_json("jobs", "show", "chk1", home=home)["trials"]
    assert minimized["order"] == "minimize" and [t["objective"] for t in minimized["best"]] == [1.0, 2.0, 3.0]
    text = ok_text("jobs", "show", "opt1", "--trials", "2", home=home)
    assert "job opt1 (optimize): running" in text and "progress: 3/10 (30%)" in text
    assert "trials: 8" in text and "best 2 (highest objective):" in text and '{"fast":7}' in text
    proc = qlm("jobs", "show", "nope", "--json", home=home)
    assert proc.returncode == 5 and json.loads(proc.stderr)["code"] == "NOT_FOUND"


def test_jobs_cancel(fresh) -> None:
    home, store = fresh
    assert store.get_job("opt1")["cancel_requested"] is False
    proc = qlm("jobs", "cancel", "opt1", home=home)
    assert proc.returncode == 0, proc.stderr
    assert "cancel requested for job opt1" in proc.stdout
    assert store.get_job("opt1")["cancel_requested"] is True
    assert ok_json("jobs", "cancel", "opt1", home=home) == {
        "job_id": "opt1",
        "status": "running",
        "cancel_requested": True,
    }
    finished = qlm("jobs", "cancel", "chk1", "--json", home=home)
    assert finished.returncode == 5 and json.loads(finished.stderr)["code"] == "JOB_FINISHED"
    assert store.get_job("chk1")["cancel_requested"] is False
    unknown = qlm("jobs", "cancel", "nope", home=home)
    assert unknown.returncode == 5 and "no job with id 'nope'" in unknown.stderr


# --- strategies history -----------------------------------------------------------------------------


def test_strategies_history(filled) -> None:
    home, _ = filled
    doc = ok_json("strategies", "history", "sma.py", home=home)
    versions = doc["versions"]
    assert [v["version"] for v in versions] == [1, 2] and "code" not in versions[0]
    assert versions[0]["message"] == "first draft" and versions[1]["author"] == "user"
    text = ok_text("strategies", "history", "sma.py", home=home)
    assert "v1" in text and "v2" in text and "first draft" in text and versions[0]["sha256"][:12] in text
    assert versions[0]["sha256"] not in text  # short sha only


def test_strategies_history_show_code(filled) -> None:
    home, _ = filled
    proc = qlm("strategies", "history", "sma.py", "--show-code", "1", home=home)
    assert proc.returncode == 0 and proc.stdout == CODE_V1 and "sma.py v1" in proc.stderr
    assert ok_text("strategies", "history", "sma.py", "--show-code", "latest", home=home) == CODE_V2
    doc = ok_json("strategies", "history", "sma.py", "--show-code", "2", home=home)
    assert doc["version"]["code"] == CODE_V2 and doc["version"]["version"] == 2 and len(doc["versions"]) == 2
    proc = qlm("strategies", "history", "sma.py", "--show-code", "9", "--json", home=home)
    assert proc.returncode == 5 and "recorded versions: 1, 2" in json.loads(proc.stderr)["hint"]
    proc = qlm("strategies", "history", "smaa.py", home=home)
    assert proc.returncode == 0 and proc.stdout == "" and "recorded strategies: sma.py" in proc.stderr


# --- events -----------------------------------------------------------------------------------------


def test_events_tail(filled) -> None:
    home, ids = filled
    events = ok_json("events", "tail", home=home)
    assert [e["id"] for e in events] == [1, 2, 3] == list(range(1, ids["last_event"] + 1))
    assert events[0]["payload"] == {"run_id": ids["ok"], "sharpe": None} and events[0]["source"] == "kernel"
    assert [e["id"] for e in ok_json("events", "tail", "--limit", "2", home=home)] == [2, 3]
    assert [e["id"] for e in ok_json("events", "tail", "--after", "1", "--limit", "1", home=home)] == [2]
    assert [e["id"] for e in ok_json("events", "tail", "--topic", "job.*", home=home)] == [2]
    both = ok_json("events", "tail", "--topic", "job.*", "--topic", "run.*", "--limit", "2", home=home)
    assert [e["id"] for e in both] == [2, 3]
    lines = ok_text("events", "tail", home=home).splitlines()
    assert lines[0].split() == ["ID", "TIME", "(UTC)", "TOPIC", "SOURCE", "PAYLOAD"]
    assert "job.progress" in lines[2] and "optimizer" in lines[2] and '{"job_id":"opt1","done":3}' in lines[2]
    proc = qlm("events", "tail", "--max-seconds", "1", home=home)
    assert proc.returncode == 2 and "only apply with --follow" in proc.stderr


def test_events_follow_streams_new_events_as_json_lines(fresh) -> None:
    home, store = fresh
    start = store.last_event_id()
    cmd = [
        sys.executable,
        "-m",
        "qlm_kernel.cli",
        "events",
        "tail",
        "--follow",
        "--json",
        "--after",
        str(start),
        "--topic",
        "job.*",
        "--interval",
        "0.1",
        "--max-seconds",
        "3",
    ]
    began = time.monotonic()
    with subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "QLM_HOME": str(home)},
    ) as proc:
        store.append_events([{"topic": "job.progress", "payload": {"done": i}} for i in range(2)])
        first = [json.loads(proc.stdout.readline()) for _ in range(2)]  # arrive while it runs
        store.append_events([{"topic": "run.done"}, {"topic": "job.done", "payload": {"ok": 1}}])
        rest = [json.loads(line) for line in proc.stdout]  # until --max-seconds ends it
        assert proc.wait(timeout=TIMEOUT) == 0, proc.stderr.read()
    assert time.monotonic() - began < 15
    assert [e["payload"] for e in first] == [{"done": 0}, {"done": 1}]
    assert [e["id"] for e in first] == [start + 1, start + 2]
    assert [(e["id"], e["topic"]) for e in rest] == [(start + 4, "job.done")]


def test_events_follow_stops_at_max_seconds_when_there_is_no_database(tmp_path: Path) -> None:
    home = tmp_path / "home"
    proc = qlm("events", "tail", "--follow", "--max-seconds", "0.5", "--interval", "0.1", home=home)
    assert proc.returncode == 0 and proc.stdout == "" and "waiting for" in proc.stderr
    assert not (home / "qlm.db").exists()


# --- in-process units -------------------------------------------------------------------------------


def test_cli_choices_match_the_store() -> None:
    from qlm_kernel.store.runs import RUN_STATUSES

    assert cli_jobs.JOB_STATUSES == JOB_STATUSES and cli_runs.RUN_STATUSES == RUN_STATUSES


def test_last_events_widens_the_window_for_rare_topics(tmp_path: Path) -> None:
    from qlm_kernel.session.history import tail_events

    home = tmp_path / "ws"
    with Store(home / "qlm.db") as store:
        store.append_events([{"topic": "rare" if i in (3, 50) else "noise"} for i in range(200)])
    found = tail_events(None, 2, ["rare"], home=home)
    assert [e["id"] for e in found["events"]] == [4, 51] and found["last_id"] == 200
    assert [e["id"] for e in tail_events(None, 5, home=home)["events"]] == [196, 197, 198, 199, 200]
    page = tail_events(190, 100, ["noise"], home=home)
    assert [e["id"] for e in page["events"]] == list(range(191, 201)) and page["last_id"] == 200
    page = tail_events(4, 100, ["rare"], home=home)  # continues after the head, skipping the noise
    assert [e["id"] for e in page["events"]] == [51] and page["last_id"] == 200
    assert tail_events(-1, 10, home=home) == {"events": [], "last_id": 200}


def test_value_helpers() -> None:
    assert storeio.json_safe({"a": [float("nan"), 1.5, float("inf")], 2: "x"}) == {
        "a": [None, 1.5, None],
        "2": "x",
    }
    assert storeio.compact({"a": 1, "b": "long text"}, 10) == '{"a":1,"b…'
    assert [storeio.fmt_duration(v) for v in (0.0123, 12.34, 245, None)] == ["0.012s", "12.3s", "4m05s", "-"]
    assert storeio.fmt_time("2024-05-01T12:34:56.789012+00:00", millis=True) == "2024-05-01 12:34:56.789"
    assert storeio.short("abcdef1234") == "abcdef12" and storeio.short(None) == "-"


def test_cli_backtests_are_recorded_and_listed(tmp_path: Path) -> None:
    """End to end: `qlm backtest` records its run and events; `qlm runs/events/strategies` show them."""
    home = tmp_path / "qlm"
    env = {**os.environ, "QLM_HOME": str(home), "QLM_RECORD_RUNS": "1"}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "qlm_kernel.cli",
            "backtest",
            "sma_cross",
            "--sample",
            "synthetic",
            "--n",
            "2000",
            "--param",
            "fast=7",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=180,
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    runs = ok_json("runs", "list", home=home)["runs"]
    assert len(runs) == 1 and runs[0]["source"] == "cli" and runs[0]["strategy"] == "sma_cross"
    assert runs[0]["params"] == {"fast": 7, "slow": 50}
    assert runs[0]["stats"]["n_trades"] == result["stats"]["n_trades"]
    topics = [e["topic"] for e in ok_json("events", "tail", "--topic", "engine.*", home=home)]
    assert topics == ["engine.backtest.started", "engine.backtest.finished"]
    history = ok_json("strategies", "history", "sma_cross", home=home)["versions"]
    assert len(history) == 1 and history[0]["author"] == "user"
