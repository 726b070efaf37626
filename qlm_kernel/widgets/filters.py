"""The EventLog's topic filter: the same rule in Python and in ``static/eventlog.js``.

The filter text holds terms separated by commas or spaces; an event is shown when any term matches
its topic. A term with ``*`` or ``?`` is a glob over the whole topic (``job.*``); a plain term
matches anywhere in the topic (``heal`` shows every ``heal.*`` event). An empty filter shows all.
"""

from __future__ import annotations

import re
from collections.abc import Callable


def _term_regex(term: str) -> re.Pattern[str]:
    if "*" in term or "?" in term:
        body = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in term)
        return re.compile(f"^{body}$")
    return re.compile(re.escape(term))


def topic_filter(text: str) -> Callable[[str], bool]:
    """A predicate ``topic -> bool`` for the filter ``text``."""
    terms = [term for term in re.split(r"[,\s]+", text or "") if term]
    if not terms:
        return lambda _topic: True
    regexes = [_term_regex(term) for term in terms]
    return lambda topic: any(rx.search(topic) for rx in regexes)
