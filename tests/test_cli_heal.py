"""``qlm heal``: diagnosis without a model, repair through a model command (a real subprocess each)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from heal_cases import NAME_ERROR

from qlm_kernel.store import Store
from tests.test_cli import SAMPLE, qlm

# A stand-in model CLI: reads the prompt on stdin, checks it names the error, prints the fixed file.
MODEL = f'''import os, sys
prompt = sys.stdin.read()
assert "NameError" in prompt and "name_typo.py" in prompt and "clsoe" in prompt, prompt[:500]
assert "repair" in os.environ["QLM_HEAL_SYSTEM_PROMPT"].lower()
print("The name is misspelled.")
print("```python")
print({NAME_ERROR.fixed!r}, end="")
print("```")
'''


def write_broken(home: Path) -> Path:
    path = home / "strategies" / "name_typo.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(NAME_ERROR.broken)
    return path


def test_without_a_model_it_diagnoses_and_changes_nothing(tmp_path):
    home = tmp_path / "home"
    path = write_broken(home)
    done = qlm("heal", "name_typo", *SAMPLE, home=home)
    assert done.returncode == 4, done.stderr
    assert "diagnosed" in done.stdout and "line 10" in done.stdout and "clsoe" in done.stdout
    assert path.read_text() == NAME_ERROR.broken


def test_a_model_command_repairs_the_strategy(tmp_path):
    home = tmp_path / "home"
    path = write_broken(home)
    model = tmp_path / "model.py"
    model.write_text(MODEL)
    done = qlm("heal", "name_typo", *SAMPLE, "--model-cmd", f"{sys.executable} {model}", "--json", home=home)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["status"] == "healed" and report["attempts"] == 1 and report["data"]["kind"] == "sample"
    assert path.read_text() == NAME_ERROR.fixed
    with Store(home / "qlm.db", readonly=True) as store:
        assert [v["author"] for v in store.strategy_history("name_typo")] == ["user", "healer"]
        assert store.get_heal_session(report["session_id"])["status"] == "healed"


def test_a_failing_model_command_rolls_back(tmp_path):
    home = tmp_path / "home"
    path = write_broken(home)
    args = ("--model-cmd", "exit 3", "--max-attempts", "2", "--json")
    done = qlm("heal", "name_typo", *SAMPLE, *args, home=home)
    assert done.returncode == 4
    report = json.loads(done.stdout)
    assert report["status"] == "not_healed"
    replies = [s for s in report["steps"] if s["kind"] == "reply"]
    assert len(replies) == 2 and replies[0]["data"]["error"]["code"] == "MODEL_ERROR"
    assert path.read_text() == NAME_ERROR.broken
