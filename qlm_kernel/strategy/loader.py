"""Load strategy classes from .py files — afresh on every call — and resolve anything strategy-like.

``load_strategy`` executes the file in a brand-new module object with a unique name that is put in
``sys.modules`` only while the file runs (dataclasses and typing need that) and removed afterwards,
so an edited file is never served stale. Syntax errors and import-time exceptions become a
`StrategyError` with file, line, excerpt and the user's frames (see `trace`).

Bare names (``"sma_cross"``) are looked up in ``$QLM_HOME/strategies/`` (default ``./.qlm``) and then
in the bundled examples, ``examples_dir()`` = ``<repo>/strategies`` located as
``Path(__file__).parents[2] / "strategies"`` (valid for a source checkout or an editable install).
A file in the workspace's strategies folder that is a symlink is never run, by name or by path
(`SecurityError` SYMLINK, the rule strategy reads and writes follow): it could point anywhere.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import types
from pathlib import Path
from typing import Any

from qlm_kernel.errors import ConfigError, QLMError, SecurityError, StrategyError, closest
from qlm_kernel.home import bundled_path
from qlm_kernel.strategy.base import SignalsStrategy, Strategy
from qlm_kernel.strategy.signals import Signals
from qlm_kernel.strategy.timelimit import TimeLimitExceeded, current_limit, run_limited
from qlm_kernel.strategy.trace import user_error


def examples_dir() -> Path:
    """The example strategies shipped with QLM: ``<repo>/strategies`` in a checkout,
    ``<prefix>/share/qlm/strategies`` in a wheel install (`qlm_kernel.home.bundled_path`)."""
    return bundled_path("strategies")


def user_strategies_dir() -> Path:
    """``$QLM_HOME/strategies`` (``./.qlm/strategies`` by default); not created here."""
    return Path(os.environ.get("QLM_HOME", ".qlm")).expanduser() / "strategies"


def strategy_dirs() -> list[Path]:
    """Where bare strategy names are searched, in order: the user's workspace, then the examples."""
    return [user_strategies_dir(), examples_dir()]


def available_strategies() -> dict[str, Path]:
    """Strategy names -> files over `strategy_dirs()`; a workspace file hides an example of the same
    name. Files starting with ``_`` are skipped. A symlink is listed as the link itself, not its
    target, so loading it meets `refuse_workspace_link`."""
    found: dict[str, Path] = {}
    for folder in strategy_dirs():
        if folder.is_dir():
            for path in sorted(folder.glob("*.py")):
                if not path.name.startswith("_"):
                    entry = folder.resolve() / path.name if path.is_symlink() else path.resolve()
                    found.setdefault(path.stem, entry)
    return found


def refuse_workspace_link(path: Path, name: str | None = None) -> None:
    """Raise `SecurityError` SYMLINK if ``path`` is a symlink in the workspace's strategies folder.

    The running path's copy of the rule `qlm_kernel.workspace.strategies.strategy_file_path` applies to
    reads and writes: a link there could make a strategy name run any file on the machine.
    """
    root = user_strategies_dir()
    if not path.is_symlink() or not root.is_dir() or path.parent.resolve() != root.resolve():
        return
    raise SecurityError(
        "strategy files cannot be symlinks (it could point outside the workspace)",
        hint="replace the link with a regular file",
        code="SYMLINK",
        name=name if name is not None else path.name,
        file=str(path),
    )


def find_strategy_file(name: str) -> Path:
    """The file for a bare strategy name (``"sma_cross"`` or ``"sma_cross.py"``), or StrategyError."""
    stem = name[:-3] if name.endswith(".py") else name
    searched = [folder / f"{stem}.py" for folder in strategy_dirs()]
    for path in searched:
        refuse_workspace_link(path, name)  # even a dangling link: it must not fall through to an example
        if path.is_file():
            return path.resolve()
    raise unknown_strategy(stem, StrategyError, searched=[str(p) for p in searched])


STRATEGY_FIXES = {  # how each front end finds or makes a strategy (`QLMError.fixes`)
    "python": "qlm.session.strategies.list_strategies() lists them; or pass a file path or a Strategy "
              "class, e.g. qlm.backtest('my_strategy.py', df)",
    "cli": "`qlm strategies list` shows them; or pass a file path, e.g. `qlm backtest ./my_strategy.py ...`",
    "mcp": "list_strategies shows them; write_strategy creates a new one",
}


def unknown_strategy(name: str, error: type[QLMError], **context: Any) -> QLMError:
    """NOT_FOUND for a strategy name: the closest known name, the known ones, each front end's fix."""
    names = sorted(available_strategies())
    near = closest(name, names)
    return error(
        f"no strategy named {name!r}",
        hint=(f"did you mean {near!r}? " if near else "")
        + (f"available: {', '.join(names)}" if names else "none yet: write one in $QLM_HOME/strategies/"),
        code="NOT_FOUND",
        fixes=STRATEGY_FIXES,
        name=name,
        available=names,
        closest=near,
        **context,
    )


def load_strategy(path: str | os.PathLike[str], class_name: str | None = None) -> type[Strategy]:
    """Execute a strategy file afresh and return the `Strategy` subclass defined in it.

    ``path``: a .py file, or a bare name looked up with `find_strategy_file`. ``class_name``
    selects a class when the file defines several. The class gets ``source_file``,
    ``source_text`` (the code that ran) and ``source_hash`` (sha256 of it).
    """
    file = _locate(path)
    try:
        source = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise StrategyError(
            f"strategy file {file.name} is not UTF-8 text",
            hint="save the file as UTF-8",
            code="STRATEGY_SYNTAX",
            file=str(file),
            byte=exc.start,
        ) from exc
    module = _execute(file, source)
    digest = hashlib.sha256(source.encode("utf-8")).hexdigest()
    classes = [
        value
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, Strategy) and value.__module__ == module.__name__
    ]
    for cls in classes:
        cls.source_file = str(file)
        cls.source_text = source
        cls.source_hash = digest
    return _pick_class(file, classes, class_name)


def resolve_strategy(obj: Any, **params: Any) -> Strategy:
    """Any strategy-like thing -> a `Strategy` instance with ``params`` applied.

    Accepts a Strategy subclass (instantiated with ``params``), an instance (``params`` override
    its values in a new instance), a path or bare name (``"sma_cross"``, ``"my.py"``,
    ``"my.py:ClassName"``) loaded afresh, or ready-made `Signals` (wrapped in a parameterless
    `SignalsStrategy`, so the engine always deals with one kind of object).
    """
    if isinstance(obj, Signals):
        if params:
            raise ConfigError(
                f"ready-made Signals take no parameters, got {sorted(params)}",
                hint="pass a Strategy (class, instance or file) to vary parameters",
                code="UNKNOWN_PARAM",
                params=sorted(params),
            )
        return SignalsStrategy(obj)
    if isinstance(obj, Strategy):
        return obj.with_params(**params) if params else obj
    if isinstance(obj, type) and issubclass(obj, Strategy):
        return obj(**params)
    if isinstance(obj, (str, os.PathLike)):
        target, class_name = _split_class(os.fspath(obj))
        return load_strategy(target, class_name)(**params)
    raise ConfigError(
        f"cannot use a {type(obj).__name__} as a strategy",
        hint="pass a Strategy subclass or instance, a path to a .py file, a strategy name, or Signals",
        code="BAD_STRATEGY",
        got_type=type(obj).__name__,
    )


def _split_class(text: str) -> tuple[str, str | None]:
    head, sep, tail = text.rpartition(":")
    if sep and head and tail.isidentifier():
        return head, tail
    return text, None


def _locate(path: str | os.PathLike[str]) -> Path:
    raw = os.fspath(path)
    candidate = Path(raw).expanduser()
    refuse_workspace_link(candidate)
    if candidate.is_file():
        file = candidate.resolve()
    elif os.sep not in raw and "/" not in raw:
        file = find_strategy_file(raw)
    else:
        raise StrategyError(
            f"strategy file not found: {raw}",
            hint="check the path (relative paths start from the current directory)",
            code="NOT_FOUND",
            file=raw,
            cwd=os.getcwd(),
        )
    if file.suffix != ".py":
        raise StrategyError(
            f"a strategy file must be a .py file, got {file.name}",
            hint="save the strategy as a Python file, e.g. strategies/my_strategy.py",
            code="NOT_FOUND",
            file=str(file),
        )
    return file


def _execute(file: Path, source: str) -> types.ModuleType:
    """Compile and run ``source`` as a fresh module; errors -> StrategyError with location."""
    where = {str(file): source}
    try:
        code = compile(source, str(file), "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as exc:
        raise user_error(
            exc,
            message=f"cannot load strategy file {file.name}",
            code="STRATEGY_SYNTAX",
            user_files=[str(file)],
            sources=where,
        ) from exc
    name = module_name(file)
    module = types.ModuleType(name)
    module.__file__ = str(file)
    previous = sys.modules.get(name)
    sys.modules[name] = module
    loaded = False
    try:
        run_limited(lambda: exec(code, module.__dict__), current_limit())
    except TimeLimitExceeded as exc:
        raise user_error(
            TimeoutError(str(exc)),
            message=f"strategy file {file.name} was stopped while loading",
            code="TIMEOUT",
            user_files=[str(file)],
            sources=where,
            frames=exc.frames,
            hint=f"the module-level code ran longer than {exc.seconds:g} s: look for a loop that never ends",
            time_limit_s=exc.seconds,
        ) from None
    except (Exception, SystemExit) as exc:
        raise user_error(
            exc,
            message=f"strategy file {file.name} failed while loading",
            code="STRATEGY_IMPORT",
            user_files=[str(file)],
            sources=where,
        ) from exc
    else:
        loaded = True
    finally:
        if not loaded:  # a failed load leaves the last good one registered
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous
    return module


def module_name(file: Path) -> str:
    """The module name a strategy file loads under: the same in every process for the same path, and it
    stays registered in ``sys.modules`` (latest load wins), so Numba's on-disk cache of a function
    compiled with ``cache=True`` in one process (a worker) loads in another instead of failing."""
    stem = re.sub(r"\W", "_", file.stem)
    digest = hashlib.sha1(str(file.resolve()).encode(), usedforsecurity=False).hexdigest()[:10]
    return f"qlm_strategy_{stem}_{digest}"


def _pick_class(file: Path, classes: list[type[Strategy]], class_name: str | None) -> type[Strategy]:
    names = [c.__name__ for c in classes]
    if class_name is not None:
        for cls in classes:
            if class_name in (cls.__name__, cls.name):
                return cls
        near = closest(class_name, names)
        raise StrategyError(
            f"{file.name} defines no Strategy class named {class_name!r}",
            hint=(f"did you mean {near!r}? " if near else "")
            + (f"classes found: {', '.join(names)}" if names else "define class X(Strategy) in the file"),
            code="NO_STRATEGY_CLASS",
            file=str(file),
            class_name=class_name,
            classes=names,
        )
    # Leaves only: a helper base class subclassed in the same file is not itself the strategy.
    leaves = [
        c
        for c in classes
        if c.signals is not Strategy.signals and not any(o is not c and issubclass(o, c) for o in classes)
    ]
    if len(leaves) == 1:
        return leaves[0]
    if not leaves:
        raise StrategyError(
            f"{file.name} defines no Strategy subclass with a signals() method",
            hint="define `class MyStrategy(Strategy):` with `def signals(self, data): return Signals(...)`"
            " (classes imported from elsewhere do not count)",
            code="NO_STRATEGY_CLASS",
            file=str(file),
            classes=names,
        )
    leaf_names = [c.__name__ for c in leaves]
    raise StrategyError(
        f"{file.name} defines {len(leaves)} strategies: {', '.join(leaf_names)}",
        hint=f"choose one: load_strategy(path, class_name={leaf_names[0]!r})"
        f" or resolve_strategy('{file.name}:{leaf_names[0]}')",
        code="AMBIGUOUS_STRATEGY",
        file=str(file),
        classes=leaf_names,
    )
