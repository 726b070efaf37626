"""A heal killed mid-way (SIGKILL of a real process) is rolled back on the next start, and a heal in
another process holds the strategy's lock (HEAL_IN_PROGRESS) until it ends, however it ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from heal_cases import NAME_ERROR

import qlm_kernel as qlm
from qlm_kernel.errors import StrategyError
from qlm_kernel.healing import HEAL_RECOVERED, recover_interrupted_heals
from qlm_kernel.store import default_store
from qlm_kernel.workspace.strategies import write_strategy

HALF_FIX = NAME_ERROR.broken.replace('data["close"]', 'data["Close"]').replace("clsoe", "close")
USER_EDIT = NAME_ERROR.broken.replace("class SmaCross", "# saved by the user\nclass SmaCross")

HEALER = textwrap.dedent("""
    import pathlib, sys, time
    import qlm_kernel as qlm

    ready = pathlib.Path(sys.argv[1])
    replies = ["```python\\n" + pathlib.Path(sys.argv[2]).read_text() + "```"]

    def model(prompt):
        if replies:
            return replies.pop(0)
        ready.write_text("asked twice")  # attempt 1 is written and failed: hang in the second call
        time.sleep(600)

    qlm.heal("broken", sample={"kind": "synthetic", "n": 2000, "seed": 0}, model=model, max_attempts=3)
""")


@pytest.fixture
def df():
    return qlm.sample_data("synthetic", n=2000, seed=0)


@pytest.fixture
def healer(home, tmp_path):
    """A real process healing "broken", stopped inside its second model call (attempt 1 in the file)."""
    write_strategy("broken", NAME_ERROR.broken)
    script, reply, ready = tmp_path / "healer.py", tmp_path / "reply.py", tmp_path / "ready"
    script.write_text(HEALER)
    reply.write_text(HALF_FIX)
    proc = subprocess.Popen([sys.executable, str(script), str(ready), str(reply)], env=dict(os.environ))
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert proc.poll() is None, "the healer process ended early"
            assert time.monotonic() < deadline, "the healer never reached its second model call"
            time.sleep(0.05)
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)


def path_of(home):
    return home / "strategies" / "broken.py"


def kill(proc):
    """SIGKILL, and wait until every thread of the process is gone (its files closed, so its locks
    dropped), without reaping it: the zombie left behind counts as dead."""
    os.kill(proc.pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while True:
        try:
            with open(f"/proc/{proc.pid}/stat") as handle:
                zombie = handle.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
            if zombie and len(os.listdir(f"/proc/{proc.pid}/task")) <= 1:
                return
        except FileNotFoundError:
            return
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_a_killed_heal_is_rolled_back_on_recovery_and_locks_out_others_while_alive(home, df, healer):
    path = path_of(home)
    assert path.read_text() == HALF_FIX  # the healer's write is in the file
    session = default_store().list_heal_sessions(strategy="broken")[0]
    assert session["status"] == "running" and session["config"]["owner"]["pid"] == healer.pid

    # alive: its lock keeps every other heal of the strategy out, and recovery leaves it alone
    with pytest.raises(StrategyError) as info:
        qlm.heal("broken", df)
    assert info.value.code == "HEAL_IN_PROGRESS" and info.value.context["holder_pid"] == healer.pid
    assert str(healer.pid) in info.value.message
    assert recover_interrupted_heals() == []
    assert path.read_text() == HALF_FIX

    kill(healer)
    events = []
    sub = qlm.subscribe("heal.*", events.append)
    done = recover_interrupted_heals()
    sub.wait_idle(5)
    sub.unsubscribe()

    assert [(d["session_id"], d["outcome"], d["restored"]) for d in done] == [
        (session["id"], "restored", True)]
    assert path.read_text() == NAME_ERROR.broken
    history = default_store().strategy_history("broken", include_code=True)
    assert [(v["author"], v["code"]) for v in history] == [
        ("user", NAME_ERROR.broken), ("healer", HALF_FIX), ("healer", NAME_ERROR.broken)]
    assert done[0]["version"] == 3 and done[0]["owner"]["pid"] == healer.pid
    stored = default_store().get_heal_session(session["id"])
    assert stored["status"] == "error" and stored["error"]["code"] == "HEAL_INTERRUPTED"
    assert str(healer.pid) in stored["error"]["message"] and stored["final_version_id"] == history[2]["id"]
    rollback, finished = stored["steps"][-2:]
    assert rollback["kind"] == "rollback" and rollback["ok"] and rollback["data"]["recovered"] is True
    assert rollback["strategy_version_id"] == history[2]["id"]
    assert finished["kind"] == "finished" and finished["data"]["status"] == "interrupted"
    topics = [e.topic for e in events]
    assert HEAL_RECOVERED in topics and "heal.finished" in topics
    recovered = next(e for e in events if e.topic == HEAL_RECOVERED).payload
    assert recovered["session_id"] == session["id"] and recovered["outcome"] == "restored"
    assert recover_interrupted_heals() == []  # idempotent
    assert qlm.heal("broken", df).status == "diagnosed"  # and the lock is free


def test_recovery_leaves_a_file_the_user_saved_after_the_crash(home, healer):
    kill(healer)
    path_of(home).write_text(USER_EDIT)
    done = recover_interrupted_heals(home)
    assert [(d["outcome"], d["restored"]) for d in done] == [("file_changed", False)]
    assert path_of(home).read_text() == USER_EDIT
    assert len(default_store().strategy_history("broken")) == 2  # nothing written
    stored = default_store().get_heal_session(done[0]["session_id"])
    assert stored["status"] == "error" and stored["steps"][-2]["data"]["left_as_is"] is True


def test_the_next_heal_of_the_strategy_recovers_the_killed_one_first(home, df, healer):
    kill(healer)
    old = default_store().list_heal_sessions(strategy="broken")[0]["id"]
    rep = qlm.heal("broken", df)  # no model: diagnoses the original code, not the killed heal's patch
    assert rep.status == "diagnosed" and rep.diagnosis["context"]["exception_type"] == "NameError"
    assert path_of(home).read_text() == NAME_ERROR.broken
    assert default_store().get_heal_session(old)["error"]["code"] == "HEAL_INTERRUPTED"


CTRL_C = textwrap.dedent("""
    import json, pathlib, sys, time
    import qlm_kernel as qlm
    from qlm_kernel.store import default_store

    ready, reply, out = (pathlib.Path(a) for a in sys.argv[1:4])

    def model(prompt):
        ready.write_text("patched")
        return "```python\\n" + reply.read_text() + "```"

    started = time.monotonic()
    try:
        qlm.heal("broken", sample={"kind": "synthetic", "n": 2000, "seed": 0}, model=model, time_limit=120)
    except KeyboardInterrupt:
        session = default_store().list_heal_sessions(strategy="broken")[0]
        steps = default_store().get_heal_session(session["id"])["steps"]
        out.write_text(json.dumps({"status": session["status"], "error": session["error"],
                                   "kinds": [s["kind"] for s in steps], "last": steps[-1]["data"],
                                   "seconds": time.monotonic() - started}))
""")
SPINS = NAME_ERROR.fixed.replace('        close = data["close"]\n', '        while True:\n            pass\n')


def test_a_real_ctrl_c_while_strategy_code_runs_rolls_back_then_propagates(home, tmp_path):
    """SIGINT to the process (Jupyter's "interrupt kernel") lands on the heal's thread, which waits for
    the time-limited strategy thread: that is the user's interrupt, not a strategy error."""
    write_strategy("broken", NAME_ERROR.broken)
    script, reply, ready, out = (tmp_path / n for n in ("ctrl_c.py", "reply.py", "ready", "out.json"))
    script.write_text(CTRL_C)
    reply.write_text(SPINS)
    proc = subprocess.Popen([sys.executable, str(script), str(ready), str(reply), str(out)],
                            env=dict(os.environ))
    try:
        deadline = time.monotonic() + 120
        while not (ready.exists() and path_of(home).read_text() == SPINS):  # patched, now spinning
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    result = json.loads(out.read_text())
    assert result["seconds"] < 100  # interrupted at once, not at the 120 s limit
    assert result["status"] == "error" and result["error"]["type"] == "KeyboardInterrupt"
    assert result["kinds"][-2:] == ["rollback", "finished"] and result["last"]["interrupted"] is True
    assert path_of(home).read_text() == NAME_ERROR.broken
    assert recover_interrupted_heals() == []  # nothing left running


def test_recovery_of_a_workspace_without_a_database_creates_nothing(tmp_path):
    empty = tmp_path / "nothing-here"
    assert recover_interrupted_heals(empty) == []
    assert not empty.exists()
