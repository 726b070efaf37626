"""The session API: the one façade every front end calls (notebooks, CLI, MCP, widgets, the JupyterLab
server extension). Each user operation is written once here; the skins parse input, call it, format.

- runs: `backtest` (flat Python keywords) / `run_backtest` (a `RunSpec`), `list_runs`, `get_run`
- optimization jobs: `optimize` (also ``optimize.cancel|status|list|resume``), `get_job`, `list_jobs`,
  `cancel_job`, `resume_job`
- checks: `sanity_check` (lookahead, white_noise, walk_forward, pbo, deflated_sharpe); "is this edge
  real?" in one call: `research_loop` (train/test split, PBO, DSR, a one-sentence verdict)
- healing: `heal`, `recover_interrupted_heals` (at start: heals whose process died are rolled back);
  jobs whose owner died: `reap_jobs`; store retention: `prune_store`
- paper trading: `start_paper_session` (in a thread) / `start_isolated_paper_session` (in a worker),
  `paper_session_status`, `stop_paper_session`, `list_paper_sessions`
- data: `list_datasets`, `import_dataset`, `resolve_data`; strategy files: `qlm_kernel.session.strategies`
- `system_status`; front-end caps: `qlm_kernel.session.limits`; worker processes for code the user did
  not write: `qlm_kernel.session.workers` (`run_isolated`, `warm_workers`, `workers_status`)
"""

from __future__ import annotations

from qlm_kernel.healing import HEAL_SYSTEM_PROMPT, heal, recover_interrupted_heals
from qlm_kernel.healing.preview import next_prompt as heal_next_prompt
from qlm_kernel.session import history, strategies, workers
from qlm_kernel.session.backtest import backtest, run_backtest
from qlm_kernel.session.checks import CHECKS, sanity_check
from qlm_kernel.session.datasets import analyze_market, import_dataset, list_datasets
from qlm_kernel.session.jobs import cancel_job, get_job, job_view, list_jobs, not_found, reap_jobs
from qlm_kernel.session.limits import MCP, USER, Limits
from qlm_kernel.session.optimize import optimize, resume_job
from qlm_kernel.session.paper import (
    list_paper_sessions,
    paper_session_status,
    running_paper_sessions,
    start_isolated_paper_session,
    start_paper_session,
    stop_paper_session,
)
from qlm_kernel.session.research import research_loop
from qlm_kernel.session.retention import prune_store
from qlm_kernel.session.runs import get_run, list_runs
from qlm_kernel.session.spec import DataSource, RunSpec, check_settings
from qlm_kernel.session.system import system_status
from qlm_kernel.workspace import (
    data_manager,
    ensure_event_recorder,
    frame_fingerprint,
    recording_enabled,
    resolve_data,
    stop_event_recorder,
)

__all__ = [
    "CHECKS",
    "HEAL_SYSTEM_PROMPT",
    "MCP",
    "USER",
    "DataSource",
    "Limits",
    "RunSpec",
    "analyze_market",
    "backtest",
    "cancel_job",
    "check_settings",
    "data_manager",
    "ensure_event_recorder",
    "frame_fingerprint",
    "get_job",
    "get_run",
    "heal",
    "heal_next_prompt",
    "history",
    "import_dataset",
    "job_view",
    "list_datasets",
    "list_jobs",
    "list_paper_sessions",
    "list_runs",
    "not_found",
    "optimize",
    "paper_session_status",
    "prune_store",
    "reap_jobs",
    "recording_enabled",
    "recover_interrupted_heals",
    "research_loop",
    "resolve_data",
    "resume_job",
    "run_backtest",
    "running_paper_sessions",
    "sanity_check",
    "start_isolated_paper_session",
    "start_paper_session",
    "stop_event_recorder",
    "stop_paper_session",
    "strategies",
    "system_status",
    "workers",
]
