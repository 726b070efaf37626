"""The session API: the one façade every front end calls (notebooks, CLI, MCP, widgets, the JupyterLab
server extension). Each user operation is written once here; the skins parse input, call it, format.

- runs: `backtest` (flat Python keywords) / `run_backtest` (a `RunSpec`), `list_runs`, `get_run`,
  `reproduce` (re-run a recorded run: bit for bit, or what changed);
  portfolios (a universe, shared cash): `backtest_portfolio`
- optimization jobs: `optimize` (also ``optimize.cancel|status|list|resume``), `get_job`, `list_jobs`,
  `cancel_job`, `resume_job`
- checks: `sanity_check` (lookahead, white_noise, walk_forward, pbo, deflated_sharpe, reality_check,
  report); `overfitting_report` (`qlm.sanity.report` on a result, a job id or a return matrix); "is this
  edge real?" in one call: `research_loop` (train/test split, PBO, DSR, a one-sentence verdict)
- healing: `heal`, `recover_interrupted_heals` (at start: heals whose process died are rolled back);
  jobs whose owner died: `reap_jobs`; store retention: `prune_store`
- paper trading: `start_paper_session` (in a thread) / `start_isolated_paper_session` (in a worker),
  `paper_session_status`, `stop_paper_session`, `list_paper_sessions`
- data: `list_datasets`, `import_dataset`, `download` (`configured_exchange_options`: the server option),
  `update_dataset`, `resolve_data`; strategy files: `qlm_kernel.session.strategies`
- `system_status`; front-end caps: `qlm_kernel.session.limits`; worker processes for code the user did
  not write: `qlm_kernel.session.workers` (`run_isolated`, `warm_workers`, `workers_status`)

Names load on first use (PEP 562), so a listing command imports only what it calls, not the engine,
optimizer, healing and paper trading behind every other operation. (No submodule may be named like an
exported function: `qlm_kernel.lazy`.)
"""

from __future__ import annotations

from qlm_kernel.lazy import Exports, lazy_getattr

_EXPORTS: Exports = {
    "CHECKS": ("qlm_kernel.session.checks", "CHECKS"),
    "DataSource": ("qlm_kernel.session.spec", "DataSource"),
    "HEAL_SYSTEM_PROMPT": ("qlm_kernel.healing", "HEAL_SYSTEM_PROMPT"),
    "Limits": ("qlm_kernel.session.limits", "Limits"),
    "MCP": ("qlm_kernel.session.limits", "MCP"),
    "RunSpec": ("qlm_kernel.session.spec", "RunSpec"),
    "USER": ("qlm_kernel.session.limits", "USER"),
    "analyze_market": ("qlm_kernel.session.datasets", "analyze_market"),
    "backtest": ("qlm_kernel.session.backtesting", "backtest"),
    "backtest_portfolio": ("qlm_kernel.session.portfolios", "backtest_portfolio"),
    "cancel_job": ("qlm_kernel.session.jobs", "cancel_job"),
    "check_settings": ("qlm_kernel.session.spec", "check_settings"),
    "data_manager": ("qlm_kernel.workspace", "data_manager"),
    "ensure_event_recorder": ("qlm_kernel.workspace", "ensure_event_recorder"),
    "frame_fingerprint": ("qlm_kernel.workspace", "frame_fingerprint"),
    "get_job": ("qlm_kernel.session.jobs", "get_job"),
    "get_run": ("qlm_kernel.session.runs", "get_run"),
    "heal": ("qlm_kernel.healing", "heal"),
    "heal_next_prompt": ("qlm_kernel.healing.preview", "next_prompt"),
    "history": ("qlm_kernel.session.history", None),
    "configured_exchange_options": ("qlm_kernel.session.datasets", "configured_exchange_options"),
    "download": ("qlm_kernel.session.datasets", "download"),
    "import_dataset": ("qlm_kernel.session.datasets", "import_dataset"),
    "import_universe": ("qlm_kernel.session.datasets", "import_universe"),
    "job_view": ("qlm_kernel.session.jobs", "job_view"),
    "update_dataset": ("qlm_kernel.session.datasets", "update_dataset"),
    "list_datasets": ("qlm_kernel.session.datasets", "list_datasets"),
    "list_jobs": ("qlm_kernel.session.jobs", "list_jobs"),
    "list_paper_sessions": ("qlm_kernel.session.paper", "list_paper_sessions"),
    "list_runs": ("qlm_kernel.session.runs", "list_runs"),
    "not_found": ("qlm_kernel.session.jobs", "not_found"),
    "overfitting_report": ("qlm_kernel.sanity.overall", "report"),
    "optimize": ("qlm_kernel.session.optimizing", "optimize"),
    "PerSymbolOptimization": ("qlm_kernel.session.symbol_optimizing", "PerSymbolOptimization"),
    "paper_replay_portfolio": ("qlm_kernel.session.paper", "paper_replay_portfolio"),
    "paper_session_status": ("qlm_kernel.session.paper", "paper_session_status"),
    "prune_store": ("qlm_kernel.session.retention", "prune_store"),
    "reap_jobs": ("qlm_kernel.session.jobs", "reap_jobs"),
    "recording_enabled": ("qlm_kernel.workspace", "recording_enabled"),
    "recover_interrupted_heals": ("qlm_kernel.healing", "recover_interrupted_heals"),
    "reproduce": ("qlm_kernel.session.reproducing", "reproduce"),
    "research_loop": ("qlm_kernel.session.research", "research_loop"),
    "resolve_data": ("qlm_kernel.workspace", "resolve_data"),
    "resume_job": ("qlm_kernel.session.optimizing", "resume_job"),
    "run_backtest": ("qlm_kernel.session.backtesting", "run_backtest"),
    "running_paper_sessions": ("qlm_kernel.session.paper", "running_paper_sessions"),
    "sanity_check": ("qlm_kernel.session.checks", "sanity_check"),
    "start_isolated_paper_session": ("qlm_kernel.session.paper", "start_isolated_paper_session"),
    "start_paper_session": ("qlm_kernel.session.paper", "start_paper_session"),
    "stop_event_recorder": ("qlm_kernel.workspace", "stop_event_recorder"),
    "stop_paper_session": ("qlm_kernel.session.paper", "stop_paper_session"),
    "strategies": ("qlm_kernel.session.strategies", None),
    "system_status": ("qlm_kernel.session.system", "system_status"),
    "workers": ("qlm_kernel.session.workers", None),
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())
