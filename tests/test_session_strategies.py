"""Strategy files in the workspace: confinement rules, versioned writes, reads and restores (real store)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from qlm_kernel.errors import QLMError, SecurityError
from qlm_kernel.store import close_default_store, default_store
from qlm_kernel.workspace import strategies as ws

GOOD = (Path(__file__).resolve().parents[1] / "strategies" / "sma_cross.py").read_text()



def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()
            and "qlm.db" not in p.name}


BAD_NAMES = {
    "../escape.py": "PATH_TRAVERSAL",
    "../../etc/passwd": "PATH_TRAVERSAL",
    "sub/inner.py": "PATH_TRAVERSAL",
    "..\\escape.py": "PATH_TRAVERSAL",
    "/etc/evil.py": "ABSOLUTE_PATH",
    "~/evil.py": "ABSOLUTE_PATH",
    "C:\\evil.py": "ABSOLUTE_PATH",
    "..%2Fescape.py": "ENCODED_PATH",
    "%2e%2e%2fescape.py": "ENCODED_PATH",
    "\uff0e\uff0e\uff0fescape.py": "UNICODE_NAME",   # fullwidth ../
    "esc\u2024py": "UNICODE_NAME",                     # one-dot leader
    "evil\u202epy.txt": "BAD_NAME",                     # right-to-left override
    "evil.py\x00.txt": "BAD_NAME",
    "notes.txt": "NOT_PY",
    "evil.py.txt": "NOT_PY",
    "evil.pyc": "NOT_PY",
    "": "BAD_NAME",
    "1st.py": "BAD_NAME",
    "white space.py": "BAD_NAME",
}


@pytest.mark.parametrize(("name", "code"), sorted(BAD_NAMES.items()))
def test_unsafe_names_are_refused_and_nothing_is_written(home, tmp_path, name, code):
    before = snapshot(tmp_path)
    with pytest.raises(SecurityError) as info:
        ws.write_strategy(name, GOOD, author="assistant")
    assert info.value.code == code
    assert info.value.hint
    record = json.loads(info.value.to_json())
    assert record["type"] == "SecurityError" and record["code"] == code
    assert snapshot(tmp_path) == before


def test_non_string_name_is_refused(home):
    with pytest.raises(SecurityError) as info:
        ws.check_strategy_name(["a.py"])
    assert info.value.code == "BAD_NAME"


def test_symlink_pointing_out_is_refused_for_write_and_read(home, tmp_path):
    outside = tmp_path / "outside.py"
    outside.write_text("SECRET = 1\n")
    root = ws.strategies_root()
    (root / "link.py").symlink_to(outside)
    with pytest.raises(SecurityError) as info:
        ws.write_strategy("link.py", GOOD)
    assert info.value.code == "SYMLINK"
    with pytest.raises(SecurityError):
        ws.read_strategy("link")
    assert outside.read_text() == "SECRET = 1\n"


def test_oversized_and_binary_code_are_refused(home):
    with pytest.raises(SecurityError) as info:
        ws.write_strategy("big.py", "#" * (ws.MAX_STRATEGY_BYTES + 1))
    assert info.value.code == "FILE_TOO_LARGE"
    with pytest.raises(SecurityError) as info:
        ws.write_strategy("nul.py", "x = 1\x00")
    assert info.value.code == "BINARY_CONTENT"
    assert not (ws.strategies_root() / "big.py").exists()


def test_every_write_is_a_new_version_with_author(home):
    first = ws.write_strategy("mine", GOOD, author="assistant", message="first")
    second = ws.write_strategy("mine.py", GOOD, author="user")
    third = ws.write_strategy("mine.py", GOOD.replace("Param(10", "Param(12"), author="healer")
    assert [first["version"], second["version"], third["version"]] == [1, 2, 3]
    assert Path(third["path"]).read_text() == GOOD.replace("Param(10", "Param(12")
    history = ws.strategy_history("mine")
    assert [h["author"] for h in history] == ["assistant", "user", "healer"]
    assert first["syntax"] == {"ok": True}
    assert not list(ws.strategies_root().glob(".*.tmp"))


def test_broken_code_is_saved_with_its_syntax_error(home):
    record = ws.write_strategy("broken", "def signals(self, data)\n    return 1\n", author="assistant")
    assert record["syntax"]["ok"] is False
    assert record["syntax"]["error"]["line"] == 1
    assert Path(record["path"]).exists()


def test_read_falls_back_to_examples_and_prefers_the_workspace(home):
    example = ws.read_strategy("sma_cross")
    assert example["origin"] == "examples" and "class SmaCross" in example["code"]
    ws.write_strategy("sma_cross", GOOD + "\n# mine\n")
    mine = ws.read_strategy("sma_cross.py")
    assert mine["origin"] == "workspace" and mine["code"].endswith("# mine\n")
    assert mine["latest_version"]["version"] == 1
    with pytest.raises(QLMError) as info:
        ws.read_strategy("nope")
    assert info.value.code == "NOT_FOUND"


def test_restore_writes_an_old_version_back_as_a_new_one(home):
    ws.write_strategy("s", GOOD)
    ws.write_strategy("s", "broken(\n", author="assistant")
    restored = ws.restore_strategy_version("s", 1, author="healer")
    assert restored["version"] == 3
    assert Path(restored["path"]).read_text() == GOOD
    assert [h["author"] for h in ws.strategy_history("s")] == ["user", "assistant", "healer"]


def test_store_failure_leaves_the_file_untouched(home, monkeypatch):
    import qlm_kernel.store as store_module

    ws.write_strategy("keep", GOOD)
    path = ws.strategies_root() / "keep.py"
    db = default_store().path
    close_default_store()
    pages = sqlite3.connect(db).execute("PRAGMA page_count").fetchone()[0]
    full = store_module.Store(db, pragmas={"max_page_count": pages})  # a full disk, for SQLite
    monkeypatch.setattr(store_module, "default_store", lambda: full)
    with pytest.raises(QLMError) as info:
        ws.write_strategy("keep", "changed = True\n" + "#" * 20_000)
    full.close()
    assert info.value.code == "DB_FULL"
    assert path.read_text() == GOOD
    assert not list(ws.strategies_root().glob(".*.tmp"))


def test_listing_reports_versions_and_load_errors(home):
    ws.write_strategy("good_one", GOOD)
    ws.write_strategy("bad_one", "import nonexistent_module_xyz\n")
    entries = {e["name"]: e for e in ws.list_strategies()}
    assert entries["good_one"]["versions"] == 1 and entries["good_one"]["origin"] == "workspace"
    assert "fast" in entries["good_one"]["params"]
    assert entries["bad_one"]["error"]["type"] == "StrategyError"
    assert entries["sma_cross"]["origin"] == "examples"


def test_a_write_that_expects_other_content_stores_the_version_and_keeps_the_file(home):
    """Compare-and-swap: the writer names the sha256 it last saw; a file saved since is never replaced."""
    first = ws.write_strategy("cas.py", GOOD)
    path = Path(first["path"])
    assert ws.file_sha256(path) == first["sha256"] and ws.file_sha256(path.with_name("none.py")) is None
    path.write_text(GOOD + "# saved by the user\n")
    with pytest.raises(QLMError) as info:
        ws.write_strategy("cas.py", GOOD + "# the healer's\n", author="healer",
                          expected_sha256=first["sha256"])
    err = info.value
    assert err.code == "FILE_CHANGED" and err.hint and err.context["expected_sha256"] == first["sha256"]
    assert err.context["actual_sha256"] == ws.file_sha256(path) and err.context["version"] == 2
    assert path.read_text() == GOOD + "# saved by the user\n"
    history = default_store().strategy_history("cas", include_code=True)
    assert history[-1]["code"] == GOOD + "# the healer's\n"  # kept for reference
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]

    with pytest.raises(QLMError) as info:  # a restore checks before storing anything
        ws.restore_strategy_version("cas.py", 1, expected_sha256=first["sha256"])
    assert info.value.code == "FILE_CHANGED" and len(ws.strategy_history("cas.py")) == 2

    now = ws.file_sha256(path)
    record = ws.restore_strategy_version("cas.py", 1, expected_sha256=now)
    assert path.read_text() == GOOD and record["version"] == 3
    path.unlink()
    with pytest.raises(QLMError) as info:
        ws.write_strategy("cas.py", GOOD, expected_sha256=record["sha256"])
    assert info.value.code == "FILE_CHANGED" and "deleted" in info.value.message and not path.exists()
