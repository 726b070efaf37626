"""Turn an exception raised by user strategy code into a precise, JSON-safe `StrategyError`.

This is what the self-healing loop reads: the user's file and line (the innermost frame that is in
the strategy's own file, not in pandas or QLM), a numbered source excerpt with a ``>`` marker, the
exception type and message (with Python's "Did you mean" suggestion), the user-file frames only,
and a hint written for the most common mistakes (wrong column name, undefined name, bad period).
"""

from __future__ import annotations

import builtins
import linecache
import os
import sysconfig
import traceback
from collections.abc import Iterable
from typing import Any

from qlm_kernel.errors import QLMError, StrategyError, closest

_EXCERPT_RADIUS = 3
_MAX_MESSAGE = 2000
_MAX_FRAMES = 20
_PACKAGE_DIR = os.path.normcase(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))) + os.sep
_LIBRARY_DIRS = tuple(
    os.path.normcase(os.path.abspath(p)) + os.sep
    for p in {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
)


def same_file(a: str | None, b: str | None) -> bool:
    """True when two paths name the same file (normalized, symlinks not resolved)."""
    if not a or not b:
        return False
    return os.path.normcase(os.path.abspath(a)) == os.path.normcase(os.path.abspath(b))


def is_library_file(filename: str) -> bool:
    """Frames in QLM itself, the standard library or site-packages are not the user's code."""
    if filename.startswith("<frozen") or filename.startswith("<__array_function__"):
        return True
    path = os.path.normcase(os.path.abspath(filename))
    return path.startswith(_PACKAGE_DIR) or path.startswith(_LIBRARY_DIRS)


def source_lines(filename: str, source: str | None = None) -> list[str]:
    """The lines of ``filename``: from ``source`` when given (the text that was actually run),
    else from linecache (which also knows IPython cells)."""
    if source is not None:
        return source.splitlines()
    linecache.checkcache(filename)
    return [line.rstrip("\n") for line in linecache.getlines(filename)]


def excerpt(lines: list[str], line: int | None, radius: int = _EXCERPT_RADIUS) -> str:
    """Numbered lines around ``line`` with a ``>`` marker on it, e.g. ``>  12 | x = data["Close"]``."""
    if not line or not lines or line > len(lines):
        return ""
    lo, hi = max(1, line - radius), min(len(lines), line + radius)
    width = len(str(hi))
    return "\n".join(
        f"{'>' if i == line else ' '} {i:>{width}} | {lines[i - 1].rstrip()}" for i in range(lo, hi + 1)
    )


def describe_exception(exc: BaseException) -> str:
    """``Type: message`` on one line, plus a "Did you mean" suggestion for a misspelled name."""
    if isinstance(exc, SyntaxError):
        return f"{type(exc).__name__}: {exc.msg}"
    try:
        text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    except Exception:  # never let error reporting fail
        text = f"{type(exc).__name__}: {exc}"
    guess = did_you_mean(exc)
    if guess and "Did you mean" not in text:
        text += f". Did you mean: {guess!r}?"
    return _truncate(text)


def did_you_mean(exc: BaseException) -> str | None:
    """The closest existing name for a NameError/AttributeError (Python 3.11's traceback module
    does not compute these; only the interpreter's own printer does)."""
    name = getattr(exc, "name", None)
    if not isinstance(name, str) or not isinstance(exc, (NameError, AttributeError)):
        return None
    try:
        if isinstance(exc, AttributeError):
            candidates = dir(exc.obj)
        else:
            tb = exc.__traceback__
            while tb is not None and tb.tb_next is not None:
                tb = tb.tb_next
            if tb is None:
                return None
            frame = tb.tb_frame
            candidates = [*frame.f_locals, *frame.f_globals, *dir(builtins)]
    except Exception:
        return None
    return closest(name, [c for c in candidates if not c.startswith("__")])


def _truncate(text: str) -> str:
    return text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE] + " …[truncated]"


def pick_frame(
    frames: list[traceback.FrameSummary], user_files: Iterable[str | None]
) -> traceback.FrameSummary | None:
    """The innermost frame in one of ``user_files``; else the innermost non-library frame."""
    files = [f for f in user_files if f]
    for frame in reversed(frames):
        if any(same_file(frame.filename, f) for f in files):
            return frame
    for frame in reversed(frames):
        if not is_library_file(frame.filename):
            return frame
    return None


def user_error(
    exc: BaseException,
    *,
    message: str,
    code: str,
    user_files: Iterable[str | None],
    sources: dict[str, str] | None = None,
    hint: str | None = None,
    hint_data: Any = None,
    frames: list[traceback.FrameSummary] | None = None,
    **context: Any,
) -> StrategyError:
    """A StrategyError describing ``exc`` at its innermost user-code frame.

    ``user_files``: the strategy's file(s), most specific first; ``sources``: file -> source text
    actually executed (excerpts come from it, not from a file that may have been edited since).
    ``hint_data``: the data the code saw (for "no such column" hints). ``frames``: the stack to
    report instead of the exception's own traceback (a snapshot of code interrupted elsewhere).
    Extra ``context`` (strategy, params, data summary, ...) is merged in.
    """
    user_files = [f for f in user_files if f]
    sources = sources or {}
    if frames is None:
        frames = traceback.extract_tb(exc.__traceback__)
    keep = [f for f in frames if any(same_file(f.filename, u) for u in user_files)]
    if not keep:
        keep = [f for f in frames if not is_library_file(f.filename)]
    frame = pick_frame(frames, user_files)
    file = frame.filename if frame else (user_files[0] if user_files else None)
    line = frame.lineno if frame else None
    function = frame.name if frame else None
    column = None
    if isinstance(exc, SyntaxError) and (
        not exc.filename or not user_files or any(same_file(exc.filename, u) for u in user_files)
    ):
        file = exc.filename or file
        line = exc.lineno
        column = exc.offset
        function = None
    lines = _lines_for(file, sources) if file else []
    detail = describe_exception(exc)
    ctx: dict[str, Any] = {
        "file": file,
        "line": line,
        "function": function,
        "excerpt": excerpt(lines, line),
        "source_line": lines[line - 1].strip() if line and 0 < line <= len(lines) else None,
        "exception_type": type(exc).__name__,
        "exception_message": _truncate(str(exc) if not isinstance(exc, SyntaxError) else (exc.msg or "")),
        "exception": detail,
        "frames": [_frame_dict(f, sources) for f in keep[-_MAX_FRAMES:]],
        "library_frames": summarize_library_frames(frames, keep),
    }
    if column is not None:
        ctx["column"] = column
    guess = did_you_mean(exc)
    if guess:
        ctx["suggestion"] = guess
    if isinstance(exc, QLMError):
        ctx["cause"] = {"code": exc.code, "hint": exc.hint, "context": exc.context}
    ctx.update(context)
    if hint is None:
        hint = suggest_hint(exc, line=line, file=file, data=hint_data)
    err = StrategyError(f"{message}: {detail}", hint=hint, code=code, context=ctx)
    err.traceback = _format_frames(keep, detail, sources, ctx["library_frames"])
    return err


def summarize_library_frames(
    frames: list[traceback.FrameSummary], keep: list[traceback.FrameSummary]
) -> dict[str, Any]:
    """How many frames were left out of the user's traceback and which packages they were in
    (``qlm_kernel``, ``pandas``, ...), so the engine side is summarized rather than dropped silently."""
    kept = {id(f) for f in keep}
    omitted = [f for f in frames if id(f) not in kept]
    packages = sorted({_package_of(f.filename) for f in omitted})
    return {"omitted": len(omitted), "packages": packages}


def _package_of(filename: str) -> str:
    path = os.path.normcase(os.path.abspath(filename))
    if path.startswith(_PACKAGE_DIR):
        return "qlm_kernel"
    roots = [root for root in _LIBRARY_DIRS if path.startswith(root)]
    if roots:  # the most specific root: site-packages may sit inside the stdlib folder
        head = path[len(max(roots, key=len)):].split(os.sep, 1)[0]
        return head.removesuffix(".py") or "stdlib"
    return "<frozen>" if filename.startswith("<") else os.path.basename(filename)


def _lines_for(file: str, sources: dict[str, str]) -> list[str]:
    for name, text in sources.items():
        if same_file(name, file):
            return source_lines(file, text)
    return source_lines(file)


def _frame_dict(frame: traceback.FrameSummary, sources: dict[str, str]) -> dict[str, Any]:
    lines = _lines_for(frame.filename, sources)
    code = lines[frame.lineno - 1].strip() if frame.lineno and 0 < frame.lineno <= len(lines) else frame.line
    return {"file": frame.filename, "line": frame.lineno, "function": frame.name, "code": code}


def _format_frames(frames: list[traceback.FrameSummary], detail: str, sources: dict[str, str],
                   library: dict[str, Any] | None = None) -> str:
    out = ["Traceback (most recent call last):\n"]
    for f in frames:
        d = _frame_dict(f, sources)
        out.append(f'  File "{d["file"]}", line {d["line"]}, in {d["function"]}\n')
        if d["code"]:
            out.append(f"    {d['code']}\n")
    if library and library["omitted"]:
        out.append(f"  [{library['omitted']} library frame(s) omitted: {', '.join(library['packages'])}]\n")
    out.append(detail + "\n")
    return "".join(out)


def suggest_hint(exc: BaseException, *, line: int | None, file: str | None, data: Any = None) -> str:
    """A fix-it sentence for the usual strategy mistakes, else "fix line N of FILE"."""
    where = f"line {line} of {os.path.basename(file)}" if line and file else "your strategy"
    if isinstance(exc, QLMError) and exc.hint:
        return f"{exc.hint} (called from {where})"
    if isinstance(exc, SyntaxError):
        col = f", column {exc.offset}" if exc.offset else ""
        return f"fix the syntax at {where}{col}: {exc.msg}"
    if isinstance(exc, KeyError) and exc.args and isinstance(exc.args[0], str):
        columns = [str(c) for c in getattr(data, "columns", [])]
        if columns:
            key = exc.args[0]
            match = next((c for c in columns if c.lower() == key.lower()), None) or closest(key, columns)
            guess = f"use data[{match!r}]; " if match else ""
            return f"{guess}the data has no column {key!r} — columns are {columns} ({where})"
    if isinstance(exc, ModuleNotFoundError):
        return f"module {exc.name!r} is not installed; use numpy, pandas and qlm_kernel ({where})"
    if isinstance(exc, (NameError, AttributeError)):
        guess = did_you_mean(exc)
        if guess:
            return f"did you mean {guess!r}? ({where})"
        name = getattr(exc, "name", None)
        thing = repr(name) if name else "it"
        if isinstance(exc, NameError):
            return f"define or import {thing} before using it ({where})"
        return f"check the attribute name {thing} ({where})"
    return f"fix {where}: {type(exc).__name__}: {_truncate(str(exc))[:200]}"
