"""Bad replies are refused, failures roll back to the original, and no attempted version is lost."""

from __future__ import annotations

import pytest
from heal_cases import NAME_ERROR, WRONG_COLUMN, Script

import qlm_kernel as qlm
from qlm_kernel.errors import ConfigError, SecurityError
from qlm_kernel.healing.diffs import make_diff
from qlm_kernel.store import default_store
from qlm_kernel.workspace.strategies import strategy_history, write_strategy


@pytest.fixture(scope="module")
def df():
    return qlm.sample_data("synthetic", n=2000, seed=0)


def fenced(code: str) -> str:
    return f"```python\n{code}```"


SUBPROCESS = NAME_ERROR.fixed.replace("from qlm_kernel", "import subprocess\nfrom qlm_kernel", 1)
WRITES_OUTSIDE = NAME_ERROR.fixed.replace(
    '        close = data["close"]\n', '        close = data["close"]\n        data.to_csv("/tmp/x.csv")\n'
)


def files_outside(tmp_path):
    return sorted(
        p.relative_to(tmp_path).as_posix()
        for p in tmp_path.rglob("*")
        if p.is_file() and "qlm.db" not in p.name and p.parent.name != "locks"  # the heal lock files
    )


def test_garbage_forbidden_import_and_outside_write_are_refused_nothing_written(home, tmp_path, df):
    write_strategy("broken", NAME_ERROR.broken)
    before = files_outside(tmp_path)
    model = Script("I'm sorry, I can't see the problem.", fenced(SUBPROCESS), fenced(WRITES_OUTSIDE))
    rep = qlm.heal("broken", df, model=model, max_attempts=3)

    assert not rep.healed and rep.status == "not_healed" and rep.attempts == 3
    refused = rep.steps_of("refused")
    assert [s.data["error"]["code"] for s in refused] == [
        "NOT_PARSEABLE",
        "FORBIDDEN_IMPORT",
        "OUTSIDE_WORKSPACE",
    ]
    forbidden = refused[1].data["error"]
    assert forbidden["context"]["module"] == "subprocess" and forbidden["context"]["line"] == 1
    assert "subprocess" in forbidden["message"] and forbidden["hint"]
    assert refused[1].data["candidate"] == SUBPROCESS  # the refused attempt itself is kept
    # each refusal reason reaches the next prompt
    assert "previous reply was refused" in model.prompts[1] and "NOT_PARSEABLE" in model.prompts[1]
    assert "FORBIDDEN_IMPORT" in model.prompts[2]
    # nothing was written: no patch, no rollback needed, the file and history are as they were
    assert not rep.steps_of("patch") and not rep.steps_of("rollback")
    assert (home / "strategies" / "broken.py").read_text() == NAME_ERROR.broken
    assert [v["author"] for v in strategy_history("broken")] == ["user"]
    assert rep.final_version == rep.original_version == 1
    assert files_outside(tmp_path) == before and not (tmp_path / "x.csv").exists()
    stored = default_store().get_heal_session(rep.session_id)
    assert stored["status"] == "not_healed" and [s["kind"] for s in stored["steps"]].count("refused") == 3


def test_a_failed_heal_restores_the_original_and_keeps_every_attempt(home, tmp_path, df):
    write_strategy("broken", NAME_ERROR.broken)
    half_fix = NAME_ERROR.broken.replace('data["close"]', 'data["Close"]').replace("clsoe", "close")
    evil_diff = (
        make_diff(NAME_ERROR.broken, NAME_ERROR.fixed, "broken.py")
        .replace("a/broken.py", "a/../../evil.py")
        .replace("b/broken.py", "b/../../evil.py")
    )
    model = Script(fenced(half_fix), "```diff\n" + evil_diff + "```", RuntimeError("model service is down"))
    rep = qlm.heal("broken", df, model=model, max_attempts=3)

    assert not rep.healed and rep.status == "not_healed"
    codes = [s.data["error"]["code"] for s in rep.steps if s.kind in ("refused", "reply") and s.ok is False]
    assert codes == ["OUTSIDE_WORKSPACE", "MODEL_ERROR"]
    verify = rep.steps_of("verify")[0]
    assert verify.ok is False and verify.data["error"]["context"]["exception_type"] == "KeyError"
    assert "KeyError" in model.prompts[1]  # the next prompt carries the new error of the patched file
    # rolled back: the file is the original again, as a new version; every version is still there
    assert (home / "strategies" / "broken.py").read_text() == NAME_ERROR.broken
    history = strategy_history("broken")
    assert [(v["version"], v["author"]) for v in history] == [(1, "user"), (2, "healer"), (3, "healer")]
    assert default_store().get_strategy_version(("broken", 2))["code"] == half_fix
    assert default_store().get_strategy_version(("broken", 3))["code"] == NAME_ERROR.broken
    rollback = rep.steps_of("rollback")[0]
    assert rollback.data["restored_from"] == 1 and rep.final_version == 3
    assert not (tmp_path / "evil.py").exists() and not (home / "evil.py").exists()


def test_an_interrupted_heal_still_rolls_back(home, df):
    write_strategy("broken", NAME_ERROR.broken)
    half_fix = NAME_ERROR.broken.replace('data["close"]', 'data["Close"]').replace("clsoe", "close")
    events = []
    sub = qlm.subscribe("heal.finished", events.append)
    with pytest.raises(KeyboardInterrupt):
        qlm.heal("broken", df, model=Script(fenced(half_fix), KeyboardInterrupt()), max_attempts=3)
    sub.wait_idle(5)
    sub.unsubscribe()
    assert (home / "strategies" / "broken.py").read_text() == NAME_ERROR.broken
    assert [v["author"] for v in strategy_history("broken")] == ["user", "healer", "healer"]
    session = default_store().list_heal_sessions(strategy="broken")[0]
    assert session["status"] == "error" and session["error"]["type"] == "KeyboardInterrupt"
    assert events[0].payload["status"] == "error"


def test_without_a_model_heal_only_diagnoses(home, df):
    write_strategy("broken", WRONG_COLUMN.broken)
    rep = qlm.heal("broken.py", df)
    assert rep.status == "diagnosed" and not rep.healed and rep.attempts == 0
    assert rep.diagnosis["code"] == "STRATEGY_RUNTIME"
    assert "use data['close']" in rep.diagnosis["hint"]
    assert [s.kind for s in rep.steps] == ["run", "diagnose", "finished"]
    assert "excerpt (> marks the line)" in rep.steps_of("diagnose")[0].data["text"]
    assert (home / "strategies" / "broken.py").read_text() == WRONG_COLUMN.broken
    assert rep.to_dict()["diagnosis"]["context"]["data"]["columns"][:4] == ["open", "high", "low", "close"]
    assert "diagnosed" in rep._repr_html_()


def test_a_passing_strategy_needs_no_model(home, df):
    write_strategy("fine", NAME_ERROR.fixed)
    rep = qlm.heal("fine", df, model=Script())
    assert rep.healed and rep.status == "passed" and rep.attempts == 0
    assert rep.final_stats["n_trades"] > 0


def test_an_explicit_path_outside_the_workspace_is_healed_in_place(home, tmp_path, df):
    outside = tmp_path / "project" / "column.py"
    outside.parent.mkdir()
    outside.write_text(WRONG_COLUMN.broken)
    rep = qlm.heal(outside, df, model=Script(fenced(WRONG_COLUMN.fixed)), max_attempts=1)
    assert rep.healed and outside.read_text() == WRONG_COLUMN.fixed
    assert rep.path == str(outside.resolve())
    assert [v["author"] for v in default_store().strategy_history("column")] == ["user", "healer"]
    assert not (home / "strategies" / "column.py").exists()


def test_workspace_only_refuses_an_outside_path(home, tmp_path, df):
    outside = tmp_path / "elsewhere.py"
    outside.write_text(WRONG_COLUMN.broken)
    with pytest.raises(SecurityError) as info:
        qlm.heal(outside, df, model=Script(), workspace_only=True)
    assert info.value.code == "OUTSIDE_WORKSPACE" and outside.read_text() == WRONG_COLUMN.broken
    write_strategy("inside", WRONG_COLUMN.broken)
    rep = qlm.heal(home / "strategies" / "inside.py", df, workspace_only=True)
    assert rep.status == "diagnosed"


def test_an_example_name_is_copied_into_the_workspace_never_modified(home, df):
    example = qlm.strategy.examples_dir() / "sma_cross.py"
    before = example.read_text()
    rep = qlm.heal("sma_cross", df)
    assert rep.status == "passed" and rep.path == str(home.resolve() / "strategies" / "sma_cross.py")
    assert example.read_text() == before


@pytest.mark.parametrize(
    ("target", "error"), [("..%2Fescape.py", SecurityError), ("no_such_strategy", ConfigError)]
)
def test_bad_targets_are_refused_before_anything_runs(home, df, target, error):
    with pytest.raises(error):
        qlm.heal(target, df, model=Script())


def test_bad_arguments_are_config_errors(home, df):
    write_strategy("fine", NAME_ERROR.fixed)
    with pytest.raises(ConfigError) as info:
        qlm.heal("fine", df, max_attempts=0)
    assert info.value.code == "BAD_ATTEMPTS" and info.value.hint
    with pytest.raises(ConfigError) as info:
        qlm.heal("fine", df, model="gpt")
    assert info.value.code == "BAD_MODEL"
    with pytest.raises(ConfigError) as info:
        qlm.heal("fine", df, time_limit=-1)
    assert info.value.code == "BAD_TIME_LIMIT"
