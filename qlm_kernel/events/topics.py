"""The catalog of bus topics, how topic names are checked, and how subscription patterns match them.

Topics are dotted lowercase names (``job.progress``). Patterns are fnmatch-style and case-sensitive;
``*`` also matches dots, so ``"engine.*"`` covers ``engine.backtest.finished`` and ``"*"`` matches all.
The meanings below name the payload keys producers are expected to send; extra keys are welcome.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from functools import lru_cache

from qlm_kernel.errors import ConfigError

# engine: one backtest call
ENGINE_BACKTEST_STARTED = "engine.backtest.started"
ENGINE_BACKTEST_FINISHED = "engine.backtest.finished"
ENGINE_BACKTEST_FAILED = "engine.backtest.failed"

# jobs: optimizations and other long runs
JOB_CREATED = "job.created"
JOB_PROGRESS = "job.progress"
JOB_FINISHED = "job.finished"
JOB_FAILED = "job.failed"
JOB_CANCELLED = "job.cancelled"

# self-healing loop
HEAL_STARTED = "heal.started"
HEAL_STEP = "heal.step"
HEAL_THINKING = "heal.thinking"
HEAL_PATCH = "heal.patch"
HEAL_FINISHED = "heal.finished"

# MCP server and its clients
MCP_SERVER_STARTED = "mcp.server.started"
MCP_SERVER_STOPPED = "mcp.server.stopped"
MCP_CLIENT_CONNECTED = "mcp.client.connected"
MCP_CLIENT_DISCONNECTED = "mcp.client.disconnected"
MCP_TOOL_CALLED = "mcp.tool.called"
MCP_TOOL_FINISHED = "mcp.tool.finished"
MCP_TOOL_FAILED = "mcp.tool.failed"

# persistence
STORE_RUN_RECORDED = "store.run.recorded"
STRATEGY_VERSION_SAVED = "strategy.version.saved"

# paper trading
PAPER_ORDER = "paper.order"
PAPER_FILL = "paper.fill"
PAPER_POSITION = "paper.position"
PAPER_ORDER_REJECTED = "paper.order.rejected"
PAPER_PNL = "paper.pnl"
PAPER_SESSION_STARTED = "paper.session.started"
PAPER_SESSION_STOPPED = "paper.session.stopped"

# anything that went wrong outside a more specific topic
SYSTEM_ERROR = "system.error"

TOPICS: dict[str, str] = {
    ENGINE_BACKTEST_STARTED: "a backtest began: strategy, bars, columns",
    ENGINE_BACKTEST_FINISHED: "a backtest ended: strategy, seconds, headline stats (final_value, sharpe)",
    ENGINE_BACKTEST_FAILED: "a backtest raised: strategy and the error's to_dict()",
    JOB_CREATED: "a job was queued: job_id, kind (grid|genetic|random|sanity), total",
    JOB_PROGRESS: "a job advanced: job_id, done, total, best_value, best_params",
    JOB_FINISHED: "a job completed: job_id, seconds, best_value, best_params",
    JOB_FAILED: "a job stopped on an error: job_id and the error's to_dict()",
    JOB_CANCELLED: "a job was cancelled by the user or an assistant: job_id, done, total",
    HEAL_STARTED: "a self-healing session began: session_id, strategy, path, version, max_attempts, model",
    HEAL_STEP: "one heal step ran (run, diagnose, prompt, thinking, reply, refused, patch, verify, rollback, "
    "finished): session_id, index, attempt, step (= kind), ok, duration_s, data, trace (failed runs)",
    HEAL_THINKING: "the model's reasoning text while healing: session_id, attempt, text",
    HEAL_PATCH: "a patch was applied to the strategy file: session_id, attempt, diff, version, version_id",
    HEAL_FINISHED: "a self-healing session ended: session_id, status, healed (bool), attempts, final_version",
    MCP_SERVER_STARTED: "the MCP server is listening: transport, url",
    MCP_SERVER_STOPPED: "the MCP server stopped: transport, reason",
    MCP_CLIENT_CONNECTED: "an MCP client opened a session: client name, session_id",
    MCP_CLIENT_DISCONNECTED: "an MCP client session closed: session_id",
    MCP_TOOL_CALLED: "an MCP tool call began: tool, arguments (summarized), call_id",
    MCP_TOOL_FINISHED: "an MCP tool call returned: tool, call_id, seconds",
    MCP_TOOL_FAILED: "an MCP tool call raised: tool, call_id and the error's to_dict()",
    STORE_RUN_RECORDED: "a backtest run was written to the store: run_id, strategy",
    STRATEGY_VERSION_SAVED: "a strategy file was saved as a new version: name, version, sha256",
    PAPER_ORDER: "the paper handler accepted an order: order_id, symbol, side, size, type",
    PAPER_FILL: "a paper order filled: order_id, price, size, fees, slippage",
    PAPER_POSITION: "a paper position changed: symbol, size, avg_price, unrealized_pnl",
    PAPER_ORDER_REJECTED: "an order was refused (risk or handler): session_id, client_order_id, code",
    PAPER_PNL: "a paper session processed a bar: session_id, bars_processed, position, cash, equity, pnl",
    PAPER_SESSION_STARTED: "a paper session began or resumed: session_id, strategy, symbol, resumed_at_bar",
    PAPER_SESSION_STOPPED: "a paper session ended: session_id, status (finished|stopped|failed), equity, pnl",
    SYSTEM_ERROR: "an unexpected failure anywhere in the kernel: the error's to_dict()",
}

_TOPIC_RE = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)*\Z")
_PATTERN_RE = re.compile(r"[a-z0-9_.*?\[\]!\-]+\Z")


def validate_topic(topic: str) -> str:
    """Return ``topic`` if it is a dotted lowercase name (``job.progress``); raise `ConfigError` if not."""
    if not isinstance(topic, str) or not _TOPIC_RE.match(topic):
        raise ConfigError(
            f"invalid event topic {topic!r}",
            hint="topics are dotted lowercase names such as 'job.progress' (letters, digits, '_')",
            topic=repr(topic),
        )
    return topic


def validate_pattern(pattern: str) -> str:
    """Return ``pattern`` if it can match topics (fnmatch syntax, lowercase); raise `ConfigError` if not."""
    if not isinstance(pattern, str) or not _PATTERN_RE.match(pattern):
        raise ConfigError(
            f"invalid subscription pattern {pattern!r}",
            hint="use a topic ('job.progress') or an fnmatch pattern ('job.*', 'heal.*', '*'), lowercase",
            pattern=repr(pattern),
        )
    return pattern


@lru_cache(maxsize=1024)
def compile_pattern(pattern: str) -> Callable[[str], bool]:
    """A fast predicate ``topic -> bool`` for ``pattern`` (exact topics compare by equality)."""
    validate_pattern(pattern)
    if not any(ch in pattern for ch in "*?["):
        return pattern.__eq__
    regex = re.compile(fnmatch.translate(pattern))
    return lambda topic: regex.match(topic) is not None


def matches(pattern: str, topic: str) -> bool:
    """True when ``topic`` is covered by ``pattern`` (the rule `Bus.subscribe` uses)."""
    return compile_pattern(pattern)(topic)
