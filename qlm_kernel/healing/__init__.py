"""AI self-healing: ``heal(strategy, data, model=...)`` repairs a failing strategy file, step by step.

Run -> diagnose (the structured `StrategyError` trace) -> prompt a model -> validate its patch
(`policy`) -> save it as a new strategy version -> re-run; roll back to the original when not
healed. Every step is a `HealStep` on the returned `HealReport`, a ``heal.*`` bus event and a row in
the store (``store.get_heal_session(report.session_id)``).

For front ends (the MCP ``heal_strategy`` tool): pass any ``model(prompt: str) -> str | dict``
callable; it is called on the thread that called `heal` (run `heal` in a worker thread and block in
the callable to bridge to async sampling). `HEAL_SYSTEM_PROMPT` is the role statement to send as
the system prompt; the prompt itself is self-contained.

Robustness: one heal per strategy at a time (`heal_lock`, ``HEAL_IN_PROGRESS``), compare-and-swap
writes (``FILE_CHANGED``), every exception recorded as a step (`qlm_kernel.healing.guard`), and
`recover_interrupted_heals` to roll back heals whose process was killed (call it when a server starts).
"""

from __future__ import annotations

from qlm_kernel.healing.guard import HealControl
from qlm_kernel.healing.lock import heal_lock
from qlm_kernel.healing.loop import Model, heal
from qlm_kernel.healing.policy import ALLOWED_IMPORTS, check_candidate
from qlm_kernel.healing.prompt import API_SUMMARY, HEAL_SYSTEM_PROMPT, build_prompt, format_trace
from qlm_kernel.healing.recovery import HEAL_RECOVERED, recover_interrupted_heals
from qlm_kernel.healing.reply import Proposal, Reply, extract_proposal, normalize_reply
from qlm_kernel.healing.report import STEP_KINDS, HealReport, HealStep

__all__ = [
    "ALLOWED_IMPORTS",
    "API_SUMMARY",
    "HEAL_RECOVERED",
    "HEAL_SYSTEM_PROMPT",
    "STEP_KINDS",
    "HealControl",
    "HealReport",
    "HealStep",
    "Model",
    "Proposal",
    "Reply",
    "build_prompt",
    "check_candidate",
    "extract_proposal",
    "format_trace",
    "heal",
    "heal_lock",
    "normalize_reply",
    "recover_interrupted_heals",
]
