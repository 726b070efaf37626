"""`PaperPnL`: live P&L of a paper-trading session — equity curve, position, cash, orders and fills."""

from __future__ import annotations

from typing import Any

import traitlets as t

from qlm_kernel.events import Event
from qlm_kernel.widgets.compact import finite
from qlm_kernel.widgets.live import STATIC, LiveWidget, stylesheet

MAX_POINTS = 600  # equity points kept for the chart (thinned evenly beyond that)
MAX_FILLS = 8


class PaperPnL(LiveWidget):
    """Equity and P&L per bar, position, cash, order/fill/refusal counts and the latest fills of a
    paper session. ``session_id=None`` follows the next session started in the kernel (a cell, an
    MCP assistant's ``start_paper_session``)."""

    _esm = STATIC / "paper.js"
    _css = stylesheet("paper.css")

    session_id = t.Unicode("").tag(sync=True)
    strategy = t.Unicode("").tag(sync=True)
    status = t.Unicode("waiting").tag(sync=True)  # waiting | running | finished | stopped | failed
    bars = t.Int(0).tag(sync=True)
    equity = t.Float(None, allow_none=True).tag(sync=True)
    pnl = t.Float(None, allow_none=True).tag(sync=True)
    position = t.Float(0.0).tag(sync=True)
    cash = t.Float(None, allow_none=True).tag(sync=True)
    n_orders = t.Int(0).tag(sync=True)
    n_fills = t.Int(0).tag(sync=True)
    n_refused = t.Int(0).tag(sync=True)
    curve = t.List().tag(sync=True)  # [[bar, equity], ...]
    fills = t.List().tag(sync=True)  # newest last: {side, size, price, fees, reason}
    error = t.Unicode("").tag(sync=True)

    def __init__(self, session_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._state: dict[str, Any] = _blank(session_id or "")
        self._listen("paper.*", self._on_event)
        self.flush()

    def _snapshot(self) -> dict[str, Any]:
        s = self._state
        return {**s, "curve": [list(p) for p in s["curve"]], "fills": [dict(f) for f in s["fills"]]}

    def _on_event(self, event: Event) -> bool | str:
        payload = event.payload
        sid = str(payload.get("session_id") or "")
        s = self._state
        if event.topic == "paper.session.started" and not s["session_id"]:
            self._state = s = _blank(sid)
        if not sid or sid != s["session_id"]:
            return False
        if event.topic == "paper.session.started":
            s.update(status="running", strategy=str(payload.get("strategy") or ""))
            return "now"
        if event.topic == "paper.pnl":
            s["status"] = "running" if s["status"] == "waiting" else s["status"]
            self._apply_summary(payload)
            return True
        if event.topic == "paper.fill":
            s["fills"] = [
                *s["fills"],
                {k: payload.get(k) for k in ("side", "size", "price", "fees", "reason")},
            ]
            s["fills"] = s["fills"][-MAX_FILLS:]
            return True
        if event.topic == "paper.session.stopped":
            s["status"] = str(payload.get("status") or "stopped")
            s["error"] = str(payload.get("error") or "")
            self._apply_summary(payload)
            return "now"
        return False

    def _apply_summary(self, payload: dict[str, Any]) -> None:
        s = self._state
        if "bars_processed" in payload:
            s["bars"] = int(payload["bars_processed"] or 0)
        for key in ("equity", "pnl", "cash"):
            if key in payload:
                s[key] = finite(payload.get(key))
        s["position"] = finite(payload.get("position")) or 0.0
        for key in ("n_orders", "n_fills", "n_refused"):
            if key in payload:
                s[key] = int(payload.get(key) or 0)
        if s["equity"] is not None and (not s["curve"] or s["curve"][-1][0] != s["bars"]):
            s["curve"].append((s["bars"], s["equity"]))
            if len(s["curve"]) > MAX_POINTS:
                last = s["curve"][-1]
                s["curve"] = s["curve"][::2]
                if s["curve"][-1] != last:
                    s["curve"].append(last)


def _blank(session_id: str) -> dict[str, Any]:
    return {
        "session_id": session_id,
        "strategy": "",
        "status": "waiting",
        "bars": 0,
        "equity": None,
        "pnl": None,
        "position": 0.0,
        "cash": None,
        "n_orders": 0,
        "n_fills": 0,
        "n_refused": 0,
        "curve": [],
        "fills": [],
        "error": "",
    }
