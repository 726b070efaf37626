"""The one file a heal session may change, and how its versions are saved and restored.

Rule: ``heal("broken")`` / ``heal("broken.py")`` (a bare name) means ``<QLM_HOME>/strategies/broken.py``,
checked and written only through `qlm_kernel.workspace.strategies` (confined names, versioned atomic
writes); a bare name that exists only among the bundled examples is first copied into the workspace,
so examples are never modified. A path (``"strategies/broken.py"``, ``Path(...)``) names that file
explicitly: the Python user chose it, so it may lie outside the workspace; it is versioned in the
same store under its stem, and replaced atomically. Nothing else is ever written.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qlm_kernel.errors import ConfigError, QLMSystemError, SecurityError, StrategyError
from qlm_kernel.workspace import strategies as ws


@dataclass(frozen=True)
class HealTarget:
    """The strategy file being healed: ``name`` (the store key: the file's stem), ``path``, and
    whether it lives in the strategies workspace."""

    name: str
    path: Path
    in_workspace: bool

    @property
    def file_name(self) -> str:
        """``stem.py``: the only file name a patch may mention."""
        return self.path.name


def resolve_target(strategy: Any, *, workspace_only: bool = False) -> HealTarget:
    """The `HealTarget` for a workspace name or an explicit path (see the module rule).

    ``workspace_only`` (front ends for assistants): a path is refused unless it is a file directly in
    ``<QLM_HOME>/strategies`` (`SecurityError` ``OUTSIDE_WORKSPACE``).
    """
    if isinstance(strategy, str) and not any(sep in strategy for sep in ("/", "\\")):
        return _workspace_target(strategy)
    if not isinstance(strategy, (str, os.PathLike)):
        raise ConfigError(f"heal needs a strategy name or a .py path, got {type(strategy).__name__}",
                          code="BAD_STRATEGY",
                          hint="e.g. qlm.heal('broken', df) or qlm.heal('path/to/x.py', df)")
    path = Path(strategy).expanduser().resolve()
    if not path.is_file() or path.suffix != ".py":
        raise ConfigError(f"no strategy file at {path}", code="NOT_FOUND", path=str(path),
                          hint="pass an existing .py file, or a bare name for <QLM_HOME>/strategies/NAME.py")
    if path.parent == ws.strategies_root():
        return _workspace_target(path.name)
    if workspace_only:
        raise SecurityError(f"{path} is outside the strategies workspace", code="OUTSIDE_WORKSPACE",
                            path=str(path), hint="name a strategy in <QLM_HOME>/strategies by its file name")
    return HealTarget(name=path.stem, path=path, in_workspace=False)


def _workspace_target(name: str) -> HealTarget:
    path = ws.strategy_file_path(name)
    if not path.is_file():
        code = ws.read_strategy(name)["code"]  # the bundled example of that name, or NOT_FOUND
        ws.write_strategy(path.name, code, author="user", message="copied from the examples to heal it")
    return HealTarget(name=path.stem, path=path, in_workspace=True)


def read_code(target: HealTarget) -> str:
    """The file's current text (newlines normalized, as Python reads source)."""
    return read_state(target)[0]


def read_state(target: HealTarget) -> tuple[str, str]:
    """The file's current text and the sha256 of its bytes (what a later write compares against)."""
    try:
        data = target.path.read_bytes()
    except OSError as exc:
        raise QLMSystemError(f"cannot read {target.path}: {exc}", code="FILE_UNREADABLE",
                             path=str(target.path), hint="check the file exists and can be read") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StrategyError(f"{target.file_name} is not UTF-8 text", code="BAD_ENCODING",
                            path=str(target.path), hint="save the strategy file as UTF-8") from exc
    return text.replace("\r\n", "\n").replace("\r", "\n"), hashlib.sha256(data).hexdigest()


def record_original(target: HealTarget, code: str) -> dict[str, Any]:
    """The stored version holding ``code`` (the latest if identical, else a new one by "user")."""
    from qlm_kernel.store import default_store

    return default_store().ensure_strategy_version(target.name, code, "user", "before heal")


def save_version(target: HealTarget, code: str, message: str, *,
                 expected_sha256: str | None = None) -> dict[str, Any]:
    """Write ``code`` as a new "healer" version, then to the file; returns {id, version, sha256}.

    ``expected_sha256``: what the file must still hold (the heal's last read or write); otherwise the
    version stays stored but the file is left as it is (`StrategyError` ``FILE_CHANGED``).
    """
    if target.in_workspace:
        record = ws.write_strategy(target.file_name, code, author="healer", message=message,
                                   expected_sha256=expected_sha256)
        return {"id": record["version_id"], "version": record["version"], "sha256": record["sha256"]}
    from qlm_kernel.store import default_store

    version = default_store().save_strategy_version(target.name, code, "healer", message)
    ws.replace_file(target.path, code.encode("utf-8"), expected_sha256=expected_sha256,
                    version=version["version"], version_id=version["id"])
    return {"id": version["id"], "version": version["version"], "sha256": version["sha256"]}


def restore(target: HealTarget, original: dict[str, Any], message: str, *,
            expected_sha256: str | None = None) -> dict[str, Any]:
    """Put the original version's code back (as a new "healer" version: history only grows), only if
    the file still holds ``expected_sha256`` (checked before anything is stored, and again at the write)."""
    ws.check_unchanged(target.path, expected_sha256)
    if target.in_workspace:
        record = ws.restore_strategy_version(target.file_name, original["version"], author="healer",
                                             message=message, expected_sha256=expected_sha256)
        return {"id": record["version_id"], "version": record["version"], "sha256": record["sha256"]}
    return save_version(target, original["code"], message, expected_sha256=expected_sha256)
