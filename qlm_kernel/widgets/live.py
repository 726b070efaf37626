"""`LiveWidget`: an anywidget fed by the event bus, safe to update from any thread, throttled.

Bus events arrive on the bus's dispatcher threads (and on the MCP server's or the optimizer's
threads). A handler folds each event into plain Python state under a lock; a throttled push then
copies that state into the synced traitlets at most ``max_updates_per_second`` times a second, in
one batched comm message (``hold_sync``). The throttle's trailing call, and `flush` on terminal
events, make sure the final state always reaches the browser.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anywidget

from qlm_kernel.events import Event, Subscription, subscribe, throttle

STATIC = Path(__file__).parent / "static"
UPDATES_PER_SECOND = 4.0


def stylesheet(name: str) -> str:
    """The shared ``base.css`` followed by the widget's own stylesheet ``static/<name>``."""
    return (STATIC / "base.css").read_text(encoding="utf-8") + (STATIC / name).read_text(encoding="utf-8")


class LiveWidget(anywidget.AnyWidget):
    """Base class: bus subscriptions, a state lock and a throttled, ordered push to the front end."""

    def __init__(self, *, max_updates_per_second: float = UPDATES_PER_SECOND, **kwargs: Any) -> None:
        self._state_lock = threading.RLock()  # guards the Python-side state the handlers fold into
        self._push_lock = threading.Lock()  # serializes pushes so an older snapshot never wins
        self._subs: list[Subscription] = []
        self._closed = False
        self.pushes = 0
        super().__init__(**kwargs)
        self._throttled = throttle(lambda _event: self.flush(), max_updates_per_second)

    # -- subclass API -----------------------------------------------------------------------------
    def _snapshot(self) -> dict[str, Any]:
        """Trait name -> value of the current state (called with the state lock held)."""
        raise NotImplementedError

    def _listen(self, pattern: str, handler: Callable[[Event], bool | str]) -> None:
        """Subscribe ``handler(event)``; it returns True to push (throttled), "now" to push at once."""

        def on_event(event: Event) -> None:
            if self._closed:
                return
            with self._state_lock:
                verdict = handler(event)
            if verdict == "now":
                self.flush()
            elif verdict:
                self._throttled(event)

        name = f"widget:{type(self).__name__}:{pattern}"
        self._subs.append(subscribe(pattern, on_event, maxsize=10_000, name=name))

    # -- public -----------------------------------------------------------------------------------
    def flush(self) -> None:
        """Push the current state to the front end now (thread-safe; the throttle calls this)."""
        if self._closed:
            return
        with self._push_lock:
            with self._state_lock:
                values = self._snapshot()
            with self.hold_sync():
                for name, value in values.items():
                    if getattr(self, name) != value:
                        setattr(self, name, value)
            self.pushes += 1

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until every bus event received so far is handled and pushed (for tests and scripts)."""
        ok = all(sub.wait_idle(timeout) for sub in list(self._subs))
        self._throttled.flush()
        self.flush()
        return ok

    def close(self) -> None:
        """Unsubscribe from the bus and close the widget."""
        self._closed = True
        subs, self._subs = getattr(self, "_subs", []), []  # also safe when __init__ raised early
        for sub in subs:
            sub.unsubscribe(timeout=1.0)
        throttled = getattr(self, "_throttled", None)
        if throttled is not None:
            throttled.close()
        super().close()
