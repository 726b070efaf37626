"""Read a model's reply: its text, any reasoning ("thinking"), and the patched file it proposes.

Accepted replies: a string; a dict with ``text`` (or ``content``/``reply``/``code``) and optional
``thinking`` (or ``reasoning``); an object with such attributes (e.g. an MCP ``CreateMessageResult``
whose ``content`` has ``.text``). ``<thinking>...</thinking>`` blocks inside the text are moved to the
thinking. The proposal is a fenced ```python block (the longest one), a unified diff (fenced as
```diff or bare), or, without fences, the bare text as code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from qlm_kernel.errors import StrategyError
from qlm_kernel.healing.diffs import looks_like_diff

_TEXT_KEYS = ("text", "content", "reply", "code", "message")
_THINKING_KEYS = ("thinking", "reasoning", "reasoning_content")
_THINK_TAG = re.compile(r"<(thinking|think|reasoning)>(.*?)</\1>", re.DOTALL | re.IGNORECASE)
_FENCE = re.compile(r"^```[ \t]*([^\n`]*)\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)
_MAX_REPLY_CHARS = 400_000


@dataclass(frozen=True)
class Reply:
    """A model reply taken apart: ``text`` (without thinking), ``thinking`` ('' if none)."""

    text: str
    thinking: str


@dataclass(frozen=True)
class Proposal:
    """What the reply proposes: ``kind`` is "file" or "diff"; ``body`` the code or the diff;
    ``label`` the fence's info string (e.g. ``python`` or ``python broken.py``)."""

    kind: str
    body: str
    label: str = ""


def normalize_reply(raw: Any) -> Reply:
    """`Reply` from whatever a model callable returned; `StrategyError` (BAD_REPLY) if unusable."""
    text, thinking = _text_of(raw), _thinking_of(raw)
    if text is None:
        raise StrategyError(f"the model returned a {type(raw).__name__}, not text", code="BAD_REPLY",
                            hint="a model callable returns a str, or a dict/object with 'text' (and "
                                 "optionally 'thinking')")
    text = text[:_MAX_REPLY_CHARS]
    inner = [m.group(2).strip() for m in _THINK_TAG.finditer(text)]
    if inner:
        text = _THINK_TAG.sub("", text).strip()
        thinking = "\n\n".join(p for p in (thinking, *inner) if p)
    return Reply(text=text, thinking=thinking or "")


def extract_proposal(text: str) -> Proposal:
    """The patched file or diff in ``text`` (see the module doc for the order of preference)."""
    fences = [(m.group(1).strip(), m.group(2)) for m in _FENCE.finditer(text)]
    diffs = [(label, body) for label, body in fences if _is_diff_label(label) or looks_like_diff(body)]
    code = [(label, body) for label, body in fences if (label, body) not in diffs
            and (not label or label.split()[0].lower() in ("python", "py", "python3"))]
    if code:
        label, body = max(code, key=lambda pair: len(pair[1]))
        return Proposal("file", body, label)
    if diffs:
        label, body = diffs[0]
        return Proposal("diff", body, label)
    if fences:  # some other language tag: still the model's best attempt at the file
        label, body = max(fences, key=lambda pair: len(pair[1]))
        return Proposal("file", body, label)
    if looks_like_diff(text):
        return Proposal("diff", text)
    return Proposal("file", text.strip("\n") + "\n" if text.strip() else "")


def _is_diff_label(label: str) -> bool:
    return bool(label) and label.split()[0].lower() in ("diff", "patch", "udiff")


def _text_of(raw: Any) -> str | None:
    if isinstance(raw, str):
        return raw
    if isinstance(raw, bytes):
        return raw.decode("utf-8", errors="replace")
    if isinstance(raw, dict):
        for key in _TEXT_KEYS:
            if key in raw:
                return _text_of(raw[key])
        return None
    if isinstance(raw, (list, tuple)):  # a list of content blocks
        parts = [t for t in (_text_of(item) for item in raw) if t]
        return "\n".join(parts) if parts else None
    for key in _TEXT_KEYS:
        value = getattr(raw, key, None)
        if value is not None and value is not raw:
            return _text_of(value)
    return None


def _thinking_of(raw: Any) -> str:
    for key in _THINKING_KEYS:
        value = raw.get(key) if isinstance(raw, dict) else getattr(raw, key, None)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""
