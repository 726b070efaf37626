"""Roll back heals that a crash interrupted: sessions left ``running`` whose process is gone.

A heal holds its strategy's lock (`qlm_kernel.healing.lock`) from before its session is stored until
after it is finished, and the operating system drops that lock when the process dies (SIGKILL, an
out-of-memory kill, a worker killed at its deadline, a power cut). So a ``running`` session whose
strategy lock can be taken was interrupted. For each, under that lock:

- the file is restored to the session's original version **only if it still holds code this heal
  wrote** (one of the versions whose message starts with ``heal <session id>``): compare-and-swap on
  its sha256, so a file the user saved since is left as it is (outcome ``file_changed``); a file that
  already holds the original is not rewritten (``already_original``);
- a ``rollback`` and a ``finished`` step are appended (``data.recovered = true``, ``data.status =
  "interrupted"``) and the session is finished with status ``error`` and the error ``HEAL_INTERRUPTED``
  (the store's statuses have no "interrupted");
- ``heal.recovered`` and ``heal.finished`` (``interrupted: true``) are published.

The session's recorded owner (``config.owner``: pid, host, process start) is a second check: a session
whose owner still runs on this host (another process) is left alone even if the lock is free.
"""

from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path
from typing import Any

from qlm_kernel.errors import QLMError, StrategyError
from qlm_kernel.events import publish
from qlm_kernel.events.topics import HEAL_FINISHED, HEAL_STEP, STRATEGY_VERSION_SAVED, SYSTEM_ERROR
from qlm_kernel.healing.lock import HealLock, owner_alive
from qlm_kernel.home import PathLike
from qlm_kernel.store import Store
from qlm_kernel.store.strategies import code_sha256
from qlm_kernel.workspace import strategies as ws

HEAL_RECOVERED = "heal.recovered"
"""Topic of a recovered session: session_id, strategy, path, outcome, restored, version, owner."""

OUTCOMES = ("restored", "already_original", "file_changed", "file_missing", "no_original", "owner_alive",
            "error")
"""What recovery did with one session (``owner_alive``: left running; ``error``: see the record)."""

_MAX_SESSIONS = 10_000
log = logging.getLogger("qlm_kernel.healing")


def recover_interrupted_heals(home: PathLike | None = None, *,
                              strategy: str | None = None) -> list[dict[str, Any]]:
    """Roll back every heal session of the workspace (``home``: default QLM_HOME) that a dead process
    left ``running`` (only ``strategy``'s if given); one record per session handled: session_id,
    strategy, path, outcome (see `OUTCOMES`), restored, version, version_id, owner. Heals in progress
    are skipped. Reads nothing and creates nothing when the workspace has no database."""
    from qlm_kernel.workspace.stores import writing

    done: list[dict[str, Any]] = []
    with writing(home) as store:
        if store is None:
            return done
        running = store.list_heal_sessions(_MAX_SESSIONS, status="running", strategy=strategy)
        for name in sorted({s["strategy"] for s in running}):
            lock = HealLock(name, home=home)
            try:
                if not lock.acquire():
                    continue  # a heal of it is running now
            except QLMError as err:
                done.append({"strategy": name, "outcome": "error", "restored": False, "error": err.to_dict()})
                continue
            try:
                done += _recover_strategy(store, name, home)
            finally:
                lock.release()
    return done


def recover_locked(strategy: str) -> list[dict[str, Any]]:
    """Inside `heal`, holding ``strategy``'s lock: recover its interrupted sessions in the current
    workspace (best effort: a failure is published as ``system.error``, the heal goes on)."""
    from qlm_kernel.workspace.stores import writing

    try:
        with writing() as store:
            return [] if store is None else _recover_strategy(store, strategy, None)
    except QLMError as err:
        log.warning("recovering interrupted heals of %s failed: %s", strategy, err)
        publish(SYSTEM_ERROR, {"where": "heal.recover", "strategy": strategy, "error": err.to_dict()},
                source="heal")
        return []


def _recover_strategy(store: Store, name: str, home: PathLike | None) -> list[dict[str, Any]]:
    done = []
    for session in store.list_heal_sessions(_MAX_SESSIONS, status="running", strategy=name):
        try:
            done.append(_recover_one(store, session, home))
        except QLMError as err:
            done.append({"session_id": session["id"], "strategy": name, "path": session.get("path"),
                         "outcome": "error", "restored": False, "error": err.to_dict()})
    return done


def _ours(message: str | None, session_id: str) -> bool:
    return bool(message) and re.match(rf"heal {re.escape(session_id)}\b", message or "") is not None


def _file_state(path: Path) -> tuple[str | None, str | None]:
    """(sha256 of the bytes, sha256 of the text as the heal reads it); (None, None) when missing."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None, None
    except OSError:
        return ws.file_sha256(path), None
    try:
        text = data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
    except UnicodeDecodeError:
        return ws.file_sha256(path), None
    return ws.file_sha256(path), code_sha256(text)


def _target_path(raw: str, home: PathLike | None) -> Path:
    """The session's file, confined again when it lies in the workspace (symlinks refused)."""
    path = Path(raw)
    if path.parent == ws.strategies_root(home):
        return ws.strategy_file_path(path.name, home=home)
    if path.is_symlink():
        raise StrategyError(f"{path} is now a symlink; an interrupted heal does not follow it",
                            code="SYMLINK", path=str(path),
                            hint="restore the file by hand from strategy_history")
    return path


def _recover_one(store: Store, session: dict[str, Any], home: PathLike | None) -> dict[str, Any]:
    sid, name = session["id"], session["strategy"]
    owner = (session.get("config") or {}).get("owner") if isinstance(session.get("config"), dict) else None
    record: dict[str, Any] = {"session_id": sid, "strategy": name, "path": session.get("path"),
                              "restored": False, "version": None, "version_id": None, "owner": owner}
    if owner_alive(owner) and owner.get("pid") != os.getpid():  # type: ignore[union-attr]
        return {**record, "outcome": "owner_alive"}
    original = (store.get_strategy_version(session["original_version_id"])
                if session.get("original_version_id") else None)
    outcome, restored = _restore_file(store, session, original, home)
    record.update(outcome=outcome, restored=restored is not None)
    if restored is not None:
        record.update(version=restored["version"], version_id=restored["id"])
    _close_session(store, session, record, original)
    return record


def _restore_file(store: Store, session: dict[str, Any], original: dict[str, Any] | None,
                  home: PathLike | None) -> tuple[str, dict[str, Any] | None]:
    """(outcome, the restored version or None)."""
    if original is None or not session.get("path"):
        return "no_original", None
    path = _target_path(session["path"], home)
    raw_sha, text_sha = _file_state(path)
    if raw_sha is None:
        return "file_missing", None
    if text_sha == original["sha256"]:
        return "already_original", None
    written = {v["sha256"] for v in store.strategy_history(session["strategy"])
               if v["author"] == "healer" and _ours(v.get("message"), session["id"])}
    if text_sha not in written or raw_sha != text_sha:
        return "file_changed", None
    message = f"heal {session['id']}: interrupted, restore version {original['version']}"
    version = store.save_strategy_version(session["strategy"], original["code"], "healer", message)
    try:
        ws.replace_file(path, original["code"].encode("utf-8"), expected_sha256=raw_sha,
                        version=version["version"], version_id=version["id"])
    except StrategyError as err:
        if err.code == "FILE_CHANGED":  # saved by the user this very moment: theirs wins
            return "file_changed", None
        raise
    publish(STRATEGY_VERSION_SAVED, {"name": path.name, "strategy": session["strategy"],
                                     "version": version["version"], "version_id": version["id"],
                                     "sha256": version["sha256"], "author": "healer"}, source="heal")
    return "restored", version


def _close_session(store: Store, session: dict[str, Any], record: dict[str, Any],
                   original: dict[str, Any] | None) -> None:
    sid, outcome = session["id"], record["outcome"]
    full = store.get_heal_session(sid) or {}
    index = max((s["index"] for s in full.get("steps") or []), default=-1) + 1
    attempt = int(session.get("attempts") or 0)
    now = time.time()
    back = original["version"] if original else None
    rollback = {"recovered": True, "outcome": outcome, "restored": record["restored"], "restored_from": back,
                "version": record["version"], "version_id": record["version_id"], "owner": record["owner"],
                "left_as_is": outcome == "file_changed"}
    store.add_heal_step(sid, index=index, attempt=attempt, kind="rollback",
                        ok=outcome in ("restored", "already_original"), started_at=now, ended_at=now,
                        data=rollback, strategy_version_id=record["version_id"])
    pid = (record["owner"] or {}).get("pid")
    err = StrategyError(
        f"heal {sid} of {session['strategy']!r} was interrupted (its process"
        + (f" {pid}" if pid else "") + f" ended mid-heal); recovery: {outcome.replace('_', ' ')}",
        code="HEAL_INTERRUPTED", session_id=sid, strategy=session["strategy"], outcome=outcome,
        owner=record["owner"],
        hint="the file holds your version: the original, or your own later edit; run the heal again if needed"
        if outcome != "no_original" else "the original version is unknown: check strategy_history",
    )
    finished = {"status": "interrupted", "healed": False, "recovered": True, "outcome": outcome,
                "error": err.to_dict()}
    store.add_heal_step(sid, index=index + 1, attempt=attempt, kind="finished", ok=False, started_at=now,
                        ended_at=now, data=finished)
    final_id = record["version_id"] or (
        original["id"] if outcome == "already_original" and original else None)
    store.finish_heal_session(sid, "error", healed=False, attempts=attempt, final_version_id=final_id,
                              diagnosis=session.get("diagnosis"), error=err)
    base = {"session_id": sid, "strategy": session["strategy"], "attempt": attempt}
    publish(HEAL_STEP, {**base, "index": index, "step": "rollback", "kind": "rollback",
                        "ok": outcome in ("restored", "already_original"), "data": rollback}, source="heal")
    keys = ("session_id", "strategy", "path", "outcome", "restored", "version", "version_id", "owner")
    publish(HEAL_RECOVERED, {k: record[k] for k in keys}, source="heal")
    publish(HEAL_FINISHED, {"session_id": sid, "strategy": session["strategy"], "status": "error",
                            "interrupted": True, "healed": False, "attempts": attempt, "outcome": outcome,
                            "original_version": back, "final_version": record["version"],
                            "final_version_id": final_id}, source="heal")
