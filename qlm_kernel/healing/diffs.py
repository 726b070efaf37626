"""Unified diffs: apply one strictly (every context and removed line must match), or make one for display.

`apply_unified_diff` accepts the usual ``--- a/x.py`` / ``+++ b/x.py`` / ``@@ -l,n +l,n @@`` format.
A hunk is applied where its header says when the old lines match there, else at the one place after
the previous hunk where they match exactly (models often get line numbers wrong, never the text);
no match, or several, refuses the whole diff (``DIFF_DOES_NOT_APPLY``). The file names in the
headers must name the file being patched (``OUTSIDE_WORKSPACE`` otherwise).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

from qlm_kernel.errors import SecurityError, StrategyError

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


@dataclass
class _Hunk:
    old_start: int
    old_count: int
    new_count: int
    old: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    seen_old: int = 0
    seen_new: int = 0

    def open(self) -> bool:
        """True while the header's line counts say more body lines belong to this hunk."""
        return self.seen_old < self.old_count or self.seen_new < self.new_count


def looks_like_diff(text: str) -> bool:
    """True when ``text`` has a hunk header and at least one ---/+++ header pair or a hunk body."""
    lines = text.splitlines()
    return any(_HUNK.match(line) for line in lines) and (
        any(line.startswith("--- ") for line in lines) or any(line.startswith(("+", "-")) for line in lines))


def make_diff(old: str, new: str, name: str) -> str:
    """A unified diff of ``old`` -> ``new`` labelled ``a/name`` / ``b/name`` ('' when equal)."""
    return "".join(difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                        fromfile=f"a/{name}", tofile=f"b/{name}"))


def apply_unified_diff(source: str, diff: str, file_name: str) -> str:
    """``source`` with ``diff`` applied; `StrategyError` (DIFF_DOES_NOT_APPLY) or `SecurityError`."""
    hunks = _parse(diff, file_name)
    lines = source.splitlines()
    out: list[str] = []
    pos = 0
    for number, hunk in enumerate(hunks, 1):
        at = _locate(lines, hunk, pos)
        if at is None:
            raise StrategyError(
                f"hunk {number} of the diff does not apply: its context/removed lines are not in the file",
                code="DIFF_DOES_NOT_APPLY", hunk=number, expected="\n".join(hunk.old[:10]),
                hint="send the complete corrected file in one ```python block instead of a diff")
        out.extend(lines[pos:at])
        out.extend(hunk.new)
        pos = at + len(hunk.old)
    out.extend(lines[pos:])
    return "\n".join(out) + ("\n" if source.endswith("\n") or not source else "")


def _parse(diff: str, file_name: str) -> list[_Hunk]:
    hunks: list[_Hunk] = []
    current: _Hunk | None = None
    for raw in diff.splitlines():
        if raw.startswith(("--- ", "+++ ")) and (current is None or not current.open()):
            _check_header(raw[4:], file_name)
            current = None
            continue
        match = _HUNK.match(raw)
        if match:
            current = _Hunk(int(match.group(1)), int(match.group(2) or 1), int(match.group(4) or 1))
            hunks.append(current)
            continue
        if current is None or raw.startswith("\\"):  # preamble, "\ No newline at end of file"
            continue
        tag, text = (raw[0], raw[1:]) if raw else (" ", "")
        if tag == " ":
            current.old.append(text)
            current.new.append(text)
            current.seen_old += 1
            current.seen_new += 1
        elif tag == "-":
            current.old.append(text)
            current.seen_old += 1
        elif tag == "+":
            current.new.append(text)
            current.seen_new += 1
        else:
            raise StrategyError(f"malformed diff line: {raw[:80]!r}", code="DIFF_DOES_NOT_APPLY",
                                hint="send the complete corrected file in one ```python block instead")
    if not hunks:
        raise StrategyError("the diff has no hunks (@@ ... @@)", code="DIFF_DOES_NOT_APPLY",
                            hint="send the complete corrected file in one ```python block instead")
    return hunks


def _check_header(name: str, file_name: str) -> None:
    path = name.split("\t")[0].strip()
    if path == "/dev/null":
        raise SecurityError("the diff creates or deletes a file; only the strategy file may be patched",
                            code="OUTSIDE_WORKSPACE", path=path, hint=f"patch {file_name} in place")
    for prefix in ("a/", "b/"):
        if path.startswith(prefix):
            path = path[2:]
            break
    if path != file_name or ".." in path:
        raise SecurityError(f"the diff names {path!r}; only {file_name} may be patched",
                            code="OUTSIDE_WORKSPACE", path=path,
                            hint=f"patch {file_name} only (--- a/{file_name} / +++ b/{file_name})")


def _locate(lines: list[str], hunk: _Hunk, pos: int) -> int | None:
    size = len(hunk.old)
    stated = max(hunk.old_start - 1, 0) if size else hunk.old_start
    if stated >= pos and lines[stated:stated + size] == hunk.old:
        return stated
    if not size:
        return None
    matches = [i for i in range(pos, len(lines) - size + 1) if lines[i:i + size] == hunk.old]
    return matches[0] if len(matches) == 1 else None
