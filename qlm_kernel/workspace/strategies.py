"""Strategy files in the workspace: confined paths, versioned writes, reads, listing and restores.

The one code path the MCP file tools, the healer and notebooks use to touch strategy code. Every
name is checked by `strategy_file_path` before any file system call: a plain ASCII identifier
ending in ``.py`` inside ``<QLM_HOME>/strategies`` — traversal (``../``), absolute paths, separators,
URL-encoded or Unicode look-alike characters, control characters, symlinks and non-``.py`` names
are refused with a `SecurityError` naming the rule. Every write is recorded as a new version in
the store *before* the file is replaced (atomically), so no code is ever lost.

Compare-and-swap: a writer that read or wrote the file earlier (the healer) passes the sha256 it
expects the file to hold now (``expected_sha256``); if someone else saved the file in between (the
user in JupyterLab), the new code is still stored as a version but the file is left as it is and
`StrategyError` ``FILE_CHANGED`` says so. The check runs immediately before the atomic rename; an
editor saving within that instant cannot be detected without its cooperation.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import os
import re
import tempfile
import unicodedata
from pathlib import Path
from typing import Any

from qlm_kernel.errors import ConfigError, QLMError, QLMSystemError, SecurityError, StrategyError

MAX_STRATEGY_BYTES = 256 * 1024
"""Largest strategy file accepted for writing (256 KiB): strategy code, not data."""

_STEM = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_AUTHORS = ("user", "assistant", "healer")


def strategies_root(home: str | os.PathLike[str] | None = None) -> Path:
    """``<QLM_HOME>/strategies`` resolved (created if missing): the only folder strategy tools write."""
    from qlm_kernel.home import workspace_dir

    return workspace_dir("strategies", home).resolve()


def _refuse(code: str, message: str, name: Any, hint: str) -> SecurityError:
    shown = name if isinstance(name, str) else repr(name)
    return SecurityError(message, code=code, hint=hint, name=shown)


def check_strategy_name(name: Any) -> str:
    """The file name (``stem.py``) for a requested strategy name, or a `SecurityError` saying why not.

    Accepts ``"sma_cross"`` or ``"sma_cross.py"``. Pure string rules, no file system access.
    """
    hint = "use a bare file name such as 'my_strategy.py' (letters, digits, underscores)"
    if not isinstance(name, str) or not name:
        raise _refuse("BAD_NAME", "a strategy name must be a non-empty string", name, hint)
    if any(unicodedata.category(ch).startswith("C") for ch in name):
        raise _refuse("BAD_NAME", "control or invisible characters in a strategy name", name, hint)
    if "%" in name:
        raise _refuse(
            "ENCODED_PATH", "URL-encoded characters in a strategy name are not accepted", name, hint
        )
    if not name.isascii() or unicodedata.normalize("NFKC", name) != name:
        raise _refuse(
            "UNICODE_NAME",
            "non-ASCII characters in a strategy name are not accepted "
            "(look-alike dots and slashes can hide a path)",
            name,
            hint,
        )
    if name.startswith(("/", "\\", "~")) or re.match(r"^[A-Za-z]:", name):
        raise _refuse("ABSOLUTE_PATH", "absolute paths are outside the strategies workspace", name, hint)
    if ".." in name or "/" in name or "\\" in name:
        raise _refuse("PATH_TRAVERSAL", "a strategy name cannot contain '..' or path separators", name, hint)
    stem, dot, suffix = name.partition(".")
    if dot and suffix != "py":
        raise _refuse("NOT_PY", f"strategy files must end in .py, not .{suffix}", name, hint)
    if not _STEM.fullmatch(stem):
        raise _refuse(
            "BAD_NAME", "a strategy name must be a Python identifier of at most 64 characters", name, hint
        )
    return f"{stem}.py"


def strategy_file_path(name: Any, *, home: str | os.PathLike[str] | None = None) -> Path:
    """The confined path of strategy `name` in the workspace; `SecurityError` for anything unsafe.

    Beyond `check_strategy_name`: an existing entry that is a symlink (wherever it points) or not a
    regular file is refused, as is a path that resolves outside ``<QLM_HOME>/strategies``.
    """
    root = strategies_root(home)
    path = root / check_strategy_name(name)
    if path.is_symlink():
        raise _refuse(
            "SYMLINK",
            "strategy files cannot be symlinks (it could point outside the workspace)",
            name,
            "replace the link with a regular file",
        )
    if path.exists() and not path.is_file():
        raise _refuse(
            "NOT_A_FILE", "the strategy path exists and is not a regular file", name, "remove or rename it"
        )
    if path.resolve().parent != root:
        raise _refuse(
            "OUTSIDE_WORKSPACE",
            "the strategy path resolves outside the workspace",
            name,
            "use a bare file name",
        )
    return path


def syntax_check(code: str, filename: str = "<strategy>") -> dict[str, Any]:
    """``{"ok": True}`` or ``{"ok": False, "error": {...}}`` with the syntax error's line and text."""
    try:
        ast.parse(code, filename=filename)
    except SyntaxError as err:
        return {
            "ok": False,
            "error": {
                "type": "SyntaxError",
                "message": err.msg,
                "line": err.lineno,
                "offset": err.offset,
                "text": (err.text or "").rstrip("\n"),
            },
        }
    return {"ok": True}


def _check_code(code: Any, name: str) -> bytes:
    if not isinstance(code, str):
        raise ConfigError(
            f"strategy code must be a string, got {type(code).__name__}",
            name=name,
            hint="pass the whole file's text",
        )
    data = code.encode("utf-8")
    if len(data) > MAX_STRATEGY_BYTES:
        raise SecurityError(
            f"strategy code is {len(data):,} bytes; the limit is {MAX_STRATEGY_BYTES:,}",
            code="FILE_TOO_LARGE",
            name=name,
            hint="strategy files hold code, not data: load data with qlm.load_ohlcv",
        )
    if "\x00" in code:
        raise SecurityError(
            "strategy code contains NUL bytes",
            code="BINARY_CONTENT",
            name=name,
            hint="write Python source text",
        )
    return data


def file_sha256(path: str | os.PathLike[str]) -> str | None:
    """The sha256 hex digest of the file's bytes, or None when there is no such file."""
    try:
        with open(path, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise QLMSystemError(f"cannot read {path}: {exc}", code="FILE_UNREADABLE", path=str(path),
                             hint="check the file's permissions") from exc


def check_unchanged(path: str | os.PathLike[str], expected_sha256: str | None, **context: Any) -> None:
    """`StrategyError` ``FILE_CHANGED`` unless the file holds exactly the bytes of ``expected_sha256``
    (None: no check)."""
    if expected_sha256 is None:
        return
    actual = file_sha256(path)
    if actual != expected_sha256:
        name = Path(path).name
        state = "was deleted" if actual is None else "was changed by someone else"
        raise StrategyError(
            f"{name} {state} while it was being rewritten; it was left as it is",
            code="FILE_CHANGED",
            path=str(path),
            expected_sha256=expected_sha256,
            actual_sha256=actual,
            hint="your saved file is kept; the code that was to be written is stored as a version "
            "(strategy_history) if you want to compare or restore it",
            **context,
        )


def replace_file(
    path: str | os.PathLike[str], data: bytes, *, expected_sha256: str | None = None, **context: Any
) -> None:
    """Atomically replace ``path`` with ``data`` (temp file + ``os.replace``, the file's permissions
    kept), after checking it still holds ``expected_sha256`` (`check_unchanged`); an OS failure is
    `QLMSystemError` ``WRITE_FAILED`` and leaves the file as it was."""
    path = Path(path)
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileNotFoundError):  # a new file keeps mkstemp's 0600
            os.chmod(tmp, path.stat().st_mode & 0o777)
        check_unchanged(path, expected_sha256, **context)
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise QLMSystemError(f"cannot write {path.name}: {exc}", code="WRITE_FAILED", path=str(path),
                             hint="check the disk space and the folder's permissions") from exc
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def write_strategy(
    name: Any,
    code: Any,
    *,
    author: str = "user",
    message: str | None = None,
    home: str | os.PathLike[str] | None = None,
    expected_sha256: str | None = None,
) -> dict[str, Any]:
    """Save `code` as strategy `name` in the workspace and record it as a new version.

    The version is stored first, then the file is replaced atomically: a store failure leaves the
    old file untouched. Returns name, path, version_id, version, sha256, size, author, created_at
    and ``syntax`` (`syntax_check`; broken code is still saved — it may be mid-repair).
    ``expected_sha256``: the file must still hold these bytes, else `StrategyError` ``FILE_CHANGED``
    (the version stays stored, the file is not touched).
    """
    from qlm_kernel.events import publish
    from qlm_kernel.events.topics import STRATEGY_VERSION_SAVED
    from qlm_kernel.store import default_store

    if author not in _AUTHORS:
        raise ConfigError(f"unknown author {author!r}", hint=f"one of {', '.join(_AUTHORS)}")
    path = strategy_file_path(name, home=home)
    data = _check_code(code, path.name)
    version = default_store().save_strategy_version(path.stem, code, author, message)
    replace_file(path, data, expected_sha256=expected_sha256, version=version["version"],
                 version_id=version["id"])
    record = {
        "name": path.name,
        "strategy": path.stem,
        "path": str(path),
        "version_id": version["id"],
        "version": version["version"],
        "sha256": version["sha256"],
        "size": len(data),
        "author": author,
        "message": message,
        "created_at": version["created_at"],
        "syntax": syntax_check(code, path.name),
    }
    publish(
        STRATEGY_VERSION_SAVED,
        {k: record[k] for k in ("name", "strategy", "version", "version_id", "sha256", "author")},
        source="session",
    )
    return record


def _find_readable(name: Any, home: str | os.PathLike[str] | None) -> tuple[Path, str]:
    """The workspace file for `name`, else the bundled example of that name (read-only)."""
    from qlm_kernel.strategy.loader import examples_dir

    path = strategy_file_path(name, home=home)
    if path.is_file():
        return path, "workspace"
    example = examples_dir().resolve() / path.name
    if example.is_file() and not example.is_symlink():
        return example, "examples"
    from qlm_kernel.strategy.loader import unknown_strategy

    raise unknown_strategy(path.stem, ConfigError, file=path.name)


def read_strategy(name: Any, *, home: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The code of strategy `name` (workspace first, then bundled examples) with its latest version."""
    path, origin = _find_readable(name, home)
    data = path.read_bytes()
    if len(data) > MAX_STRATEGY_BYTES:
        raise SecurityError(
            f"{path.name} is {len(data):,} bytes; the limit is {MAX_STRATEGY_BYTES:,}",
            code="FILE_TOO_LARGE",
            name=path.name,
            hint="strategy files hold code, not data",
        )
    code = data.decode("utf-8", errors="replace")
    return {
        "name": path.name,
        "strategy": path.stem,
        "path": str(path),
        "origin": origin,
        "code": code,
        "size": len(data),
        "latest_version": _latest_version(path.stem),
    }


def _latest_version(stem: str) -> dict[str, Any] | None:
    from qlm_kernel.store import default_store

    try:
        latest = default_store().latest_strategy_version(stem)
    except QLMError:
        return None
    if latest is None:
        return None
    return {k: latest[k] for k in ("id", "version", "sha256", "author", "created_at")}


def strategy_history(name: Any) -> list[dict[str, Any]]:
    """Every stored version of strategy `name` (without code), oldest first."""
    from qlm_kernel.store import default_store

    return default_store().strategy_history(Path(check_strategy_name(name)).stem)


def restore_strategy_version(
    name: Any,
    version: int,
    *,
    author: str = "user",
    message: str | None = None,
    home: str | os.PathLike[str] | None = None,
    expected_sha256: str | None = None,
) -> dict[str, Any]:
    """Write the code of stored version number `version` back to the file, as a new version
    (``expected_sha256`` as in `write_strategy`, checked before anything is stored too)."""
    from qlm_kernel.store import default_store

    stem = Path(check_strategy_name(name)).stem
    record = default_store().get_strategy_version((stem, int(version)))
    if record is None:
        raise ConfigError(
            f"strategy {stem!r} has no version {version}",
            code="NOT_FOUND",
            name=stem,
            hint="strategy_history lists the versions",
        )
    check_unchanged(strategy_file_path(name, home=home), expected_sha256)
    return write_strategy(
        name,
        record["code"],
        author=author,
        home=home,
        message=message or f"restore version {version}",
        expected_sha256=expected_sha256,
    )


def describe_strategy_files() -> list[dict[str, Any]]:
    """Every strategy a bare name resolves to (workspace first, then examples): name, class, origin,
    path, doc, params — or, for a file that fails to load, its error record (the file the user needs
    to see). Reads no store."""
    from qlm_kernel.strategy import available_strategies, examples_dir, load_strategy

    examples = examples_dir().resolve()
    entries = []
    for name, path in available_strategies().items():
        origin = "examples" if Path(path).parent.resolve() == examples else "workspace"
        entry: dict[str, Any] = {"name": name, "path": str(path), "origin": origin}
        try:
            info = load_strategy(path).info()
        except QLMError as err:
            record = err.to_dict()
            record.pop("traceback", None)
            entry["error"] = record
        else:
            entry.update({"class": info["class"], "doc": info["doc"], "params": info["params"]})
        entries.append(entry)
    return entries


def list_strategies() -> list[dict[str, Any]]:
    """`describe_strategy_files` plus, per strategy, the number of stored versions and the latest."""
    from qlm_kernel.store import default_store

    try:
        stored = {row["name"]: row for row in default_store().list_strategies()}
    except QLMError:
        stored = {}
    entries = describe_strategy_files()
    for entry in entries:
        row = stored.get(entry["name"])
        entry["versions"] = row["versions"] if row else 0
        entry["latest_version"] = row["latest_version"] if row else None
    return entries
