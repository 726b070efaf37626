"""A heal never crashes its caller: every exception class is a recorded step, files are compare-and-swap,
and one heal per strategy runs at a time (real files, real store, real threads; no mocks)."""

from __future__ import annotations

import os
import sqlite3
import threading
import time

import pytest
from heal_cases import HEADER, NAME_ERROR, SMA_BODY, Script

import qlm_kernel as qlm
from qlm_kernel.errors import StrategyError
from qlm_kernel.healing.guard import as_error, from_user_code_thread, propagates
from qlm_kernel.store import default_store
from qlm_kernel.strategy.timelimit import TimeLimitExceeded, run_limited
from qlm_kernel.workspace.strategies import strategy_history, write_strategy


@pytest.fixture(scope="module")
def df():
    return qlm.sample_data("synthetic", n=2000, seed=0)


def fenced(code: str) -> str:
    return f"```python\n{code}```"


GOOD = NAME_ERROR.fixed
HALF_FIX = NAME_ERROR.broken.replace('data["close"]', 'data["Close"]').replace("clsoe", "close")
SIGNALS_LINE = '        close = data["close"]\n'


def raising(statement: str, prelude: str = "") -> str:
    """The SMA strategy whose signals() first executes ``statement`` (line 10 of the file)."""
    code = HEADER + prelude + SMA_BODY.format(arg="close")
    return code.replace(SIGNALS_LINE, f"        {statement}\n" + SIGNALS_LINE)


def line_of(code: str, fragment: str) -> int:
    return next(i for i, text in enumerate(code.splitlines(), 1) if fragment in text)


def path_of(home, name="broken"):
    return home / "strategies" / f"{name}.py"


# --- 1. every exception class raised by strategy code is a recorded, located failure -----------------

CUSTOM = "class Halt(BaseException):\n    pass\n\n\n"
STRATEGY_RAISES = [
    ("keyboard_interrupt", raising('raise KeyboardInterrupt("stop from strategy code")'), "STRATEGY_ERROR",
     "KeyboardInterrupt", "raise KeyboardInterrupt"),
    ("system_exit", raising("raise SystemExit(3)"), "STRATEGY_RUNTIME", "SystemExit", "raise SystemExit"),
    ("custom_base_exception", raising('raise Halt("custom")', CUSTOM), "STRATEGY_ERROR", "Halt",
     "raise Halt"),
    ("keyboard_interrupt_at_import", NAME_ERROR.fixed + "\nraise KeyboardInterrupt\n", "STRATEGY_ERROR",
     "KeyboardInterrupt", "raise KeyboardInterrupt"),
    ("system_exit_at_import", NAME_ERROR.fixed + "\nimport sys\nsys.exit(2)\n", "STRATEGY_IMPORT",
     "SystemExit", "sys.exit(2)"),
]


@pytest.mark.parametrize(("label", "code", "err_code", "exc_type", "fragment"), STRATEGY_RAISES,
                         ids=[c[0] for c in STRATEGY_RAISES])
def test_any_exception_class_from_strategy_code_is_a_failed_run_and_the_heal_goes_on(
        home, df, label, code, err_code, exc_type, fragment):
    write_strategy("broken", code)
    model = Script(fenced(GOOD))
    rep = qlm.heal("broken", df, model=model, max_attempts=2, time_limit=5.0)

    assert rep.healed and rep.status == "healed" and rep.attempts == 1, rep.to_dict()
    run = rep.steps_of("run")[0]
    error = run.data["error"]
    assert run.ok is False and error["code"] == err_code and error["context"]["exception_type"] == exc_type
    assert error["context"]["line"] == line_of(code, fragment) and error["context"]["excerpt"]
    assert error["code"] in model.prompts[0] and fragment in model.prompts[0]
    assert path_of(home).read_text() == GOOD
    assert default_store().get_heal_session(rep.session_id)["status"] == "healed"


HANGS_ON_RERUN = HEADER + """import os

import numpy as np

MARK = {mark!r}


class SmaCross(Strategy):
    fast = Param(10, min=2, max=200)

    def signals(self, data):
        if os.path.exists(MARK):
            while True:
                pass
        open(MARK, "w").close()
        never = np.zeros(len(data), dtype=bool)
        return Signals(entry_long=never, exit_long=never)
"""


def test_a_no_trade_rerun_that_overruns_is_a_timeout_step_not_an_escape(home, tmp_path, df):
    code = HANGS_ON_RERUN.format(mark=str(tmp_path / "called-once"))
    write_strategy("broken", code)
    started = time.perf_counter()
    rep = qlm.heal("broken", df, time_limit=0.5)  # diagnose only: the re-run of signals() hangs
    assert time.perf_counter() - started < 10
    assert rep.status == "diagnosed" and rep.diagnosis["code"] == "TIMEOUT"
    assert rep.diagnosis["context"]["line"] in (line_of(code, "while True"), line_of(code, "pass"))
    assert rep.diagnosis["context"]["interrupted"] is True
    run = rep.steps_of("run")[0]
    assert run.ok is False and run.data["stats"]["n_trades"] == 0  # the backtest itself completed

    (tmp_path / "called-once").unlink()
    rep = qlm.heal("broken", df, model=Script(fenced(GOOD)), time_limit=0.5)
    assert rep.healed and rep.steps_of("run")[0].data["error"]["code"] == "TIMEOUT"
    assert path_of(home).read_text() == GOOD


def test_keyboard_interrupt_in_a_patched_file_is_a_strategy_error_under_a_time_limit(home, df):
    write_strategy("broken", NAME_ERROR.broken)
    interrupting = raising('raise KeyboardInterrupt("patched code")')
    model = Script(fenced(interrupting), fenced(GOOD))
    rep = qlm.heal("broken", df, model=model, max_attempts=2)

    assert rep.healed and rep.attempts == 2
    verify = rep.steps_of("verify")[0]
    assert verify.ok is False and verify.data["error"]["code"] == "STRATEGY_ERROR"
    assert verify.data["error"]["context"]["exception_type"] == "KeyboardInterrupt"
    assert "KeyboardInterrupt" in model.prompts[1]
    assert [v["author"] for v in strategy_history("broken")] == ["user", "healer", "healer"]


def test_without_a_time_limit_a_keyboard_interrupt_is_the_users_rolls_back_and_propagates(home, df):
    """Inline strategy code shares the caller's thread: its KeyboardInterrupt cannot be told from Ctrl-C."""
    write_strategy("broken", NAME_ERROR.broken)
    model = Script(fenced(raising("raise KeyboardInterrupt")), fenced(GOOD))
    with pytest.raises(KeyboardInterrupt):
        qlm.heal("broken", df, model=model, max_attempts=2, time_limit=None)
    assert path_of(home).read_text() == NAME_ERROR.broken
    session = default_store().list_heal_sessions(strategy="broken")[0]
    assert session["status"] == "error" and session["error"]["type"] == "KeyboardInterrupt"
    finished = default_store().get_heal_session(session["id"])["steps"][-1]
    assert finished["kind"] == "finished" and finished["data"]["interrupted"] is True
    # the lock was released: the next heal runs
    assert qlm.heal("broken", df, model=Script(fenced(GOOD)), time_limit=None).healed


def test_a_model_raising_system_exit_or_any_base_exception_uses_an_attempt(home, df):
    class Halt(BaseException):
        pass

    write_strategy("broken", NAME_ERROR.broken)
    model = Script(SystemExit(1), Halt("model stopped"), TimeLimitExceeded(1.0), fenced(GOOD))
    rep = qlm.heal("broken", df, model=model, max_attempts=4)
    assert rep.healed and rep.attempts == 4
    failed = [s.data["error"] for s in rep.steps_of("reply") if s.ok is False]
    assert [(e["code"], e["type"]) for e in failed] == [
        ("MODEL_ERROR", "SystemExit"), ("MODEL_ERROR", "Halt"), ("MODEL_ERROR", "TimeLimitExceeded")]


def test_a_reply_too_deeply_nested_to_parse_is_refused_not_raised(home, df):
    write_strategy("broken", NAME_ERROR.broken)
    rep = qlm.heal("broken", df, model=Script("x = " + "-" * 200_000 + "1\n", fenced(GOOD)), max_attempts=2)
    assert rep.healed and rep.steps_of("refused")[0].data["error"]["code"] == "NOT_PARSEABLE"


def test_a_store_failure_mid_heal_ends_with_an_error_report_and_the_file_restored(home, df):
    """A real SQLite failure (a trigger aborts the second attempt's version insert): heal returns."""
    write_strategy("broken", NAME_ERROR.broken)

    def break_the_store(prompt):
        with sqlite3.connect(home / "qlm.db") as conn:
            conn.execute("CREATE TRIGGER refuse BEFORE INSERT ON strategy_versions WHEN NEW.message LIKE "
                         "'%attempt 2' BEGIN SELECT RAISE(ABORT, 'disk quota exceeded'); END")
        return fenced(GOOD)

    rep = qlm.heal("broken", df, model=Script(fenced(HALF_FIX), break_the_store), max_attempts=3)
    assert rep.status == "error" and not rep.healed and rep.attempts == 2
    assert rep.error["type"] == "QLMSystemError"
    assert "disk quota exceeded" in rep.to_dict()["error"]["message"]
    assert path_of(home).read_text() == NAME_ERROR.broken  # attempt 1 was rolled back
    assert [s.kind for s in rep.steps][-3:] == ["patch", "rollback", "finished"]
    assert rep.steps_of("patch")[-1].ok is False and rep.steps_of("rollback")[0].ok is True
    stored = default_store().get_heal_session(rep.session_id)
    assert stored["status"] == "error" and stored["error"]["type"] == "QLMSystemError"
    assert "disk quota exceeded" in rep._repr_html_()


def test_errors_are_classified_by_where_they_were_raised(tmp_path):
    def boom():
        raise KeyboardInterrupt("in the worker")

    with pytest.raises(KeyboardInterrupt) as worker:
        run_limited(boom, 5.0)
    assert from_user_code_thread(worker.value) and not propagates(worker.value)
    with pytest.raises(KeyboardInterrupt) as inline:
        run_limited(boom, None)
    assert not from_user_code_thread(inline.value) and propagates(inline.value)
    try:
        {}["missing"]
    except KeyError as exc:
        err = as_error(exc, tmp_path / "x.py")
    assert err.code == "INTERNAL" and "KeyError" in err.traceback and err.hint
    assert as_error(MemoryError()).code == "MEMORY"


# --- 3. compare-and-swap: a file saved by someone else during the heal is never overwritten ------------

USER_EDIT = NAME_ERROR.broken.replace("class SmaCross", "# edited in JupyterLab\nclass SmaCross")


def test_a_file_saved_between_the_heals_read_and_its_first_write_is_left_alone(home, df):
    write_strategy("broken", NAME_ERROR.broken)
    path = path_of(home)

    def user_saves(prompt):
        path.write_text(USER_EDIT)
        return fenced(GOOD)

    rep = qlm.heal("broken", df, model=Script(user_saves), max_attempts=2)
    assert rep.status == "error" and rep.error["code"] == "FILE_CHANGED" and rep.error["hint"]
    assert path.read_text() == USER_EDIT
    history = default_store().strategy_history("broken", include_code=True)
    assert history[-1]["code"] == GOOD and history[-1]["author"] == "healer"  # stored for reference
    patch = rep.steps_of("patch")[0]
    assert patch.ok is False and patch.data["written"] is False
    assert patch.data["version"] == history[-1]["version"]
    assert not rep.steps_of("rollback")  # nothing of the heal's was ever in the file


@pytest.mark.parametrize("where", ["workspace", "outside"])
def test_a_file_saved_after_a_patch_is_neither_overwritten_nor_rolled_back(home, tmp_path, df, where):
    if where == "workspace":
        write_strategy("broken", NAME_ERROR.broken)
        target, path = "broken", path_of(home)
    else:
        path = tmp_path / "project" / "broken.py"
        path.parent.mkdir()
        path.write_text(NAME_ERROR.broken)
        target = path

    def user_saves(prompt):
        assert path.read_text() == HALF_FIX  # the heal's first patch is in the file
        path.write_text(USER_EDIT)
        return fenced(GOOD)

    rep = qlm.heal(target, df, model=Script(fenced(HALF_FIX), user_saves), max_attempts=3)
    assert rep.status == "error" and rep.error["code"] == "FILE_CHANGED" and rep.attempts == 2
    assert path.read_text() == USER_EDIT
    rollback = rep.steps_of("rollback")[0]
    assert rollback.ok is False and rollback.data["left_as_is"] is True
    assert rollback.data["error"]["code"] == "FILE_CHANGED"
    codes = [v["code"] for v in default_store().strategy_history("broken", include_code=True)]
    assert codes == [NAME_ERROR.broken, HALF_FIX, GOOD]  # attempt 2 kept as a version, no restore written


def test_a_file_saved_before_the_rollback_is_kept(home, df):
    write_strategy("broken", NAME_ERROR.broken)
    path = path_of(home)

    def user_saves_then_garbage(prompt):
        path.write_text(USER_EDIT)
        return "no idea"

    rep = qlm.heal("broken", df, model=Script(fenced(HALF_FIX), user_saves_then_garbage), max_attempts=2)
    assert rep.status == "error" and rep.error["code"] == "FILE_CHANGED"
    assert path.read_text() == USER_EDIT
    assert [v["author"] for v in strategy_history("broken")] == ["user", "healer"]  # no restore stored
    session = default_store().get_heal_session(rep.session_id)
    assert session["status"] == "error" and session["error"]["code"] == "FILE_CHANGED"


# --- 2. one heal per strategy: threads of one process -----------------------------------------------


def test_two_heals_of_one_strategy_never_run_at_once_in_one_process(home, df):
    write_strategy("broken", NAME_ERROR.broken)
    write_strategy("other", NAME_ERROR.broken)
    asked, release, results = threading.Event(), threading.Event(), {}

    def slow_model(prompt):
        asked.set()
        assert release.wait(30)
        return fenced(GOOD)

    def first():
        results["first"] = qlm.heal("broken", df, model=slow_model)

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert asked.wait(30)
        with pytest.raises(StrategyError) as info:
            qlm.heal("broken", df, model=Script(fenced(GOOD)))
        err = info.value
        assert err.code == "HEAL_IN_PROGRESS" and err.context["holder_pid"] == os.getpid()
        assert str(os.getpid()) in err.message and err.hint
        running = default_store().list_heal_sessions(strategy="broken")[0]
        assert err.context["holder_session_id"] == running["id"] and running["status"] == "running"
        assert qlm.heal("other", df).status == "diagnosed"  # another strategy is not blocked
    finally:
        release.set()
        thread.join(60)
    assert results["first"].healed and path_of(home).read_text() == GOOD
    assert len(default_store().list_heal_sessions(strategy="broken")) == 1  # the refused heal stored nothing
    assert qlm.heal("broken", df).status == "passed"  # the lock is free again
