"""`qlm.heal` repairs each realistic broken strategy with a scripted model (real store, real bus).

The scripted model checks that its prompt carries the error type, the file, the line and the source
excerpt, then answers the fix in a different reply shape per case (fenced file, diff, bare code,
dict or object with reasoning), so every reply path is exercised on a real repair.
"""

from __future__ import annotations

import json
import re
import threading
from types import SimpleNamespace

import pytest
from heal_cases import CASES, Case

import qlm_kernel as qlm
from qlm_kernel.healing.diffs import make_diff
from qlm_kernel.store import default_store
from qlm_kernel.workspace.strategies import strategy_history, write_strategy


@pytest.fixture(scope="module")
def df():
    return qlm.sample_data("synthetic", n=2000, seed=0)


def fenced(code: str) -> str:
    return f"```python\n{code}```"


def reply_for(case: Case, file_name: str):
    """A different, realistic reply shape per case."""
    if case.name == "name_typo":
        return {"text": "Fixed the misspelled name.\n" + fenced(case.fixed), "thinking": "clsoe is close"}
    if case.name == "column_case":
        return "Columns are lower-case:\n```diff\n" + make_diff(case.broken, case.fixed, file_name) + "```\n"
    if case.name == "nan_signal":
        return make_diff(case.broken, case.fixed, file_name)  # a bare diff, no fence
    if case.name == "syntax_error":
        return case.fixed  # bare code, no fence
    if case.name == "nan_division":
        return "<thinking>hi == lo over one bar, so k is 0/0</thinking>\nUse a real lookback.\n" + fenced(
            case.fixed
        )
    if case.name == "endless_loop":  # shaped like an MCP sampling result: .content.text
        return SimpleNamespace(
            content=SimpleNamespace(text="The loop never advances i.\n" + fenced(case.fixed))
        )
    return "Here is the corrected file:\n" + fenced(case.fixed)


class ScriptedModel:
    """Checks the prompt names the error type, file, line and excerpt, then returns the fix."""

    def __init__(self, case: Case, file_name: str) -> None:
        self.case, self.file_name, self.prompts = case, file_name, []

    def __call__(self, prompt: str):
        self.prompts.append(prompt)
        case = self.case
        assert f"code: {case.code}" in prompt
        if case.error_type:
            assert f"error type: {case.error_type}" in prompt
        lines = "|".join(map(str, case.lines))
        assert re.search(rf"file: \S*{re.escape(self.file_name)}, line ({lines})\b", prompt), prompt
        assert re.search(rf"^>\s+({lines}) \| ", prompt, re.MULTILINE), prompt
        assert re.search(rf"^[ >]\s+{case.line} \| .*{re.escape(case.fragment)}", prompt, re.MULTILINE), (
            prompt
        )
        assert case.broken.strip() in prompt  # the full source
        assert "strategy version: id " in prompt and "Signals(" in prompt  # version + API summary
        return reply_for(case, self.file_name)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_scripted_model_heals_each_broken_strategy(home, df, case):
    name = f"{case.name}.py"
    write_strategy(name, case.broken)
    model = ScriptedModel(case, name)
    events = []
    sub = qlm.subscribe("heal.*", events.append)
    try:
        rep = qlm.heal(case.name, df, model=model, max_attempts=2, time_limit=1.0)
        sub.wait_idle(5)
    finally:
        sub.unsubscribe()

    assert rep.healed and rep.status == "healed" and rep.attempts == 1, rep.to_dict()
    assert len(model.prompts) == 1
    path = home / "strategies" / name
    assert path.read_text() == case.fixed
    kinds = [s.kind for s in rep.steps]
    assert kinds[:4] == ["run", "diagnose", "prompt", "reply"] and kinds[-3:] == [
        "patch",
        "verify",
        "finished",
    ]
    run, patch, verify = rep.steps[0], rep.steps_of("patch")[0], rep.steps_of("verify")[0]
    assert run.ok is False and run.data["error"]["code"] == case.code
    assert verify.ok is True and verify.data["stats"]["n_trades"] > 0
    assert patch.data["diff"].startswith(f"--- a/{name}")
    if case.name in ("name_typo", "nan_division"):
        assert rep.steps_of("thinking") and rep.steps_of("thinking")[0].data["text"]

    history = strategy_history(name)
    assert [(v["version"], v["author"]) for v in history] == [(1, "user"), (2, "healer")]
    assert (rep.original_version, rep.final_version) == (1, 2)
    assert rep.diagnosis["context"]["strategy_version_id"] == history[0]["id"]

    # the trace is on the bus ...
    assert {e.payload["session_id"] for e in events} == {rep.session_id}
    topics = [e.topic for e in events]
    assert topics[0] == "heal.started" and topics[-1] == "heal.finished" and "heal.patch" in topics
    traced = [e.payload["trace"] for e in events if e.topic == "heal.step" and "trace" in e.payload]
    assert traced[0]["code"] == case.code and traced[0]["context"]["line"] in case.lines
    # ... and in the store
    stored = default_store().get_heal_session(rep.session_id)
    assert (
        stored["status"] == "healed" and stored["healed"] and stored["final_version_id"] == history[1]["id"]
    )
    assert [s["kind"] for s in stored["steps"]] == kinds
    assert stored["steps"][0]["data"]["error"]["context"]["excerpt"]
    assert not [t for t in threading.enumerate() if t.name == "qlm-user-code" and t.is_alive()]
    assert json.loads(json.dumps(rep.to_dict()))["steps"][0]["data"]["error"]["code"] == case.code
