"""The QLM MCP server: tools, resources and a prompt over `qlm_kernel.mcp.tools`, built per start.

Every tool call is published on the kernel's bus (``mcp.tool.called|finished|failed``). A `QLMError`
comes back as an MCP tool error whose text is the error's JSON (and ``structured_content =
{"error": ...}``), never a crashed server; an unexpected exception is wrapped the same way as a
``QLMSystemError`` (code INTERNAL). Synchronous tools run on worker threads (the SDK does that), so a
long backtest or optimization never blocks `get_system_status`.

No ``from __future__ import annotations`` here: the SDK reads these signatures' real annotations.
"""

import asyncio
import functools
import inspect
import itertools
import json
import re
import time
from collections.abc import Callable
from typing import Annotated, Any

import anyio.to_thread
from mcp.server.mcpserver import Context, MCPServer, Resolve, Sample
from mcp_types import CallToolResult, CreateMessageResult, SamplingMessage, TextContent, ToolAnnotations
from pydantic import Field

from qlm_kernel.errors import ConfigError, QLMError, QLMSystemError, SecurityError
from qlm_kernel.events import publish
from qlm_kernel.events.topics import MCP_TOOL_CALLED, MCP_TOOL_FAILED, MCP_TOOL_FINISHED
from qlm_kernel.jsonsafe import json_safe
from qlm_kernel.mcp import tools
from qlm_kernel.mcp.clients import ClientTracker

SERVER_NAME = "qlm"
INSTRUCTIONS = (
    "QLM (QuantLogic): a Jupyter-native backtesting kernel. Strategies are Python files in the "
    "workspace (list_strategies, read_strategy, write_strategy — every write is a new version). "
    "run_backtest runs one (stats, trades summary; a failure returns the StrategyError with file, "
    "line and excerpt: fix the file with write_strategy and run again). optimize_parameters searches "
    "a parameter space (progress notifications; returns job id and best); sanity_check judges "
    "overfitting and lookahead; analyze_market_structure describes a dataset. Data is a workspace "
    'dataset (list_datasets) or a generated sample such as {"kind": "synthetic", "n": 10000}.'
)
_ARG_PREVIEW = 200
_call_ids = itertools.count(1)

StrategyName = Annotated[str, Field(description="strategy file name in the workspace, e.g. 'sma_cross.py'")]
DatasetName = Annotated[
    str | None, Field(description="a dataset imported into the workspace (list_datasets)")
]
SampleSpec = Annotated[
    dict[str, Any] | None,
    Field(
        description='generated data instead of a dataset, e.g. {"kind": "synthetic", "n": 10000, "seed": 0}; '
        "kinds: synthetic, goog, eurusd, btcusd. Default: synthetic, 10,000 bars"
    ),
]
Params = Annotated[dict[str, Any] | None, Field(description='strategy parameters, e.g. {"fast": 10}')]
Settings = Annotated[
    dict[str, Any] | None,
    Field(
        description="backtest settings: fill, fees, fixed_fees, slippage, init_cash, size, size_type, "
        "integer, direction, sl_stop, tp_stop, tsl_stop, close_at_end"
    ),
]
Space = Annotated[
    dict[str, list[Any]], Field(description='parameter -> list of values, e.g. {"fast": [5, 10]}')
]


def error_result(err: QLMError) -> CallToolResult:
    """An MCP tool error carrying the error's JSON (text and structured)."""
    record = err.to_dict()
    return CallToolResult(
        is_error=True,
        content=[TextContent(type="text", text=json.dumps(record))],
        structured_content={"error": record},
    )


def _as_qlm_error(exc: BaseException, tool: str) -> QLMError:
    if isinstance(exc, QLMError):
        return exc
    err = QLMSystemError(
        f"{tool} failed unexpectedly: {type(exc).__name__}: {exc}",
        code="INTERNAL",
        hint="this is a bug in QLM; the server keeps running",
        tool=tool,
    )
    err.__cause__ = exc
    err.traceback = "".join(__import__("traceback").format_exception(exc))
    return err


def _summarize(arguments: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in arguments.items():
        if isinstance(value, Context):
            continue
        text = json.dumps(json_safe(value), default=str)
        out[key] = value if len(text) <= _ARG_PREVIEW else text[:_ARG_PREVIEW] + f"... ({len(text)} chars)"
    return json_safe(out)


def _observed(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Publish the call on the bus and turn any failure into an MCP tool error with the QLMError JSON."""
    tool = fn.__name__

    def begin(kwargs: dict[str, Any]) -> tuple[int, float]:
        call_id = next(_call_ids)
        publish(
            MCP_TOOL_CALLED, {"tool": tool, "call_id": call_id, "arguments": _summarize(kwargs)}, source="mcp"
        )
        return call_id, time.perf_counter()

    def end(call_id: int, started: float, result: Any = None, exc: BaseException | None = None) -> Any:
        seconds = time.perf_counter() - started
        if exc is None:
            publish(MCP_TOOL_FINISHED, {"tool": tool, "call_id": call_id, "seconds": seconds}, source="mcp")
            return result
        err = _as_qlm_error(exc, tool)
        publish(
            MCP_TOOL_FAILED,
            {"tool": tool, "call_id": call_id, "seconds": seconds, "error": err.to_dict()},
            source="mcp",
        )
        return error_result(err)

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_wrapper(**kwargs: Any) -> Any:
            call_id, started = begin(kwargs)
            try:
                result = await fn(**kwargs)
            except Exception as exc:  # every failure becomes a tool error, never a crashed server
                return end(call_id, started, exc=exc)
            return end(call_id, started, result)

        return async_wrapper

    @functools.wraps(fn)
    def wrapper(**kwargs: Any) -> Any:
        call_id, started = begin(kwargs)
        try:
            result = fn(**kwargs)
        except Exception as exc:  # every failure becomes a tool error, never a crashed server
            return end(call_id, started, exc=exc)
        return end(call_id, started, result)

    return wrapper


READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)
WRITES = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False
)


def build_server(
    tracker: ClientTracker | None = None,
    info: Callable[[], dict[str, Any]] | None = None,
    **server_kwargs: Any,
) -> MCPServer:
    """A new MCPServer with QLM's tools, resources and prompt (one per start: SDK apps run once)."""
    tracker = tracker or ClientTracker()
    server = MCPServer(
        SERVER_NAME,
        instructions=INSTRUCTIONS,
        log_level="WARNING",
        middleware=[tracker.middleware],
        **server_kwargs,
    )

    def add(fn: Callable[..., Any], annotations: ToolAnnotations = READ_ONLY) -> None:
        server.add_tool(_observed(fn), annotations=annotations)

    for fn in (
        list_strategies,
        read_strategy,
        strategy_history,
        list_datasets,
        list_runs,
        list_jobs,
        get_job,
        analyze_market_structure,
        sanity_check,
    ):
        add(fn)
    for fn in (list_paper_sessions, paper_session_status):
        add(fn)
    for fn in (
        write_strategy,
        run_backtest,
        optimize_parameters,
        cancel_job,
        heal_strategy,
        start_paper_session,
        stop_paper_session,
    ):
        add(fn, WRITES)

    def get_system_status() -> dict[str, Any]:
        """Memory, CPU, running jobs, Numba cache state, database path and size, MCP clients, bus stats."""
        from qlm_kernel.session import system_status

        return system_status({**(info() if info else {}), **tracker.snapshot()})

    add(get_system_status)
    _add_resources(server)
    _add_prompts(server)
    return server


# --- tools ----------------------------------------------------------------------------------------


def list_strategies() -> dict[str, Any]:
    """Strategies in the workspace and the bundled examples: class, parameters (defaults, ranges),
    load errors, and how many versions the store holds."""
    return tools.list_strategies()


def read_strategy(name: StrategyName) -> dict[str, Any]:
    """The full code of a strategy file (workspace first, then examples) and its latest version."""
    return tools.read_strategy(name)


def write_strategy(
    name: StrategyName,
    code: Annotated[str, Field(description="the whole file: a Strategy subclass with Params and signals()")],
    message: Annotated[str | None, Field(description="what changed, kept with the version")] = None,
) -> dict[str, Any]:
    """Create or replace a strategy file in the workspace. Every write is stored as a new version
    (author "assistant"); returns the version id and a syntax check. Names only: no paths."""
    return tools.write_strategy(name, code, message=message)


def strategy_history(name: StrategyName) -> dict[str, Any]:
    """Every stored version of a strategy's code (author, time, sha256), oldest first."""
    return tools.strategy_history(name)


def run_backtest(
    strategy: StrategyName,
    dataset: DatasetName = None,
    sample: SampleSpec = None,
    params: Params = None,
    settings: Settings = None,
    report: Annotated[
        bool, Field(description="also save an HTML report (resource qlm://reports/...)")
    ] = False,
    time_limit: Annotated[float, Field(gt=0, le=600, description="seconds the strategy may run")] = 60.0,
) -> dict[str, Any]:
    """Backtest a strategy: stats (total_return, sharpe, max_drawdown, ...), a trades summary and the
    stored run id. A broken strategy returns a StrategyError with file, line, excerpt and traceback."""
    return tools.run_backtest(
        strategy,
        dataset=dataset,
        sample=sample,
        params=params,
        settings=settings,
        report=report,
        time_limit=time_limit,
    )


async def optimize_parameters(
    strategy: StrategyName,
    space: Space,
    ctx: Context,
    method: Annotated[str, Field(description="grid | random | genetic | auto")] = "grid",
    objective: Annotated[str, Field(description="a stats key, e.g. sharpe, total_return, calmar")] = "sharpe",
    dataset: DatasetName = None,
    sample: SampleSpec = None,
    settings: Settings = None,
    n_trials: Annotated[int | None, Field(description="trials for random search")] = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Search a parameter space as a recorded job, with MCP progress notifications; returns the job id,
    the best params, value and stats and the top trials. Cancelling the request cancels the job."""
    loop = asyncio.get_running_loop()
    updates: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    job_ids: list[str] = []

    def progress(payload: dict[str, Any]) -> None:
        loop.call_soon_threadsafe(updates.put_nowait, dict(payload))

    work = asyncio.ensure_future(
        anyio.to_thread.run_sync(
            functools.partial(
                tools.optimize_parameters,
                strategy,
                space,
                method=method,
                objective=objective,
                dataset=dataset,
                sample=sample,
                settings=settings,
                n_trials=n_trials,
                seed=seed,
                progress=progress,
            )
        )
    )

    async def report(payload: dict[str, Any]) -> None:
        if payload.get("job_id") and not job_ids:
            job_ids.append(payload["job_id"])
        done, total = payload.get("done") or 0, payload.get("total")
        best = payload.get("best_value")
        text = f"{done}/{total} trials" + (
            f", best {objective} {best:.4g}" if isinstance(best, float) else ""
        )
        await ctx.report_progress(float(done), float(total) if total else None, text)

    try:
        while not work.done():
            getter = asyncio.ensure_future(updates.get())
            finished, _ = await asyncio.wait({work, getter}, return_when=asyncio.FIRST_COMPLETED)
            if getter in finished:
                await report(getter.result())
            else:
                getter.cancel()
        while not updates.empty():
            await report(updates.get_nowait())
    except asyncio.CancelledError:
        if job_ids:
            tools.cancel_job(job_ids[0])
        raise
    return work.result()


def get_job(
    job_id: Annotated[str, Field(description="a job id from optimize_parameters or list_jobs")],
    trials: Annotated[int, Field(description="how many first/best trials to include (0-100)")] = 5,
) -> dict[str, Any]:
    """One job: status, progress, heartbeat age, best result and its first/best trials."""
    return tools.get_job(job_id, trials)


def cancel_job(job_id: Annotated[str, Field(description="the job to stop")]) -> dict[str, Any]:
    """Ask a running job to stop between batches (from any process)."""
    return tools.cancel_job(job_id)


def list_jobs(
    status: Annotated[str | None, Field(description="pending | running | done | failed | cancelled")] = None,
    limit: int = 20,
) -> dict[str, Any]:
    """The newest jobs with status and progress."""
    return tools.list_jobs(status, limit)


def list_runs(
    limit: int = 20, strategy: Annotated[str | None, Field(description="only this strategy")] = None
) -> dict[str, Any]:
    """The newest recorded backtest runs (params, settings, stats or error)."""
    return tools.list_runs(limit, strategy)


def sanity_check(
    strategy: StrategyName,
    check: Annotated[
        str, Field(description="lookahead | white_noise | walk_forward | pbo | deflated_sharpe")
    ] = "lookahead",
    dataset: DatasetName = None,
    sample: SampleSpec = None,
    params: Params = None,
    space: Annotated[dict[str, list[Any]] | None, Field(description="for every check but lookahead")] = None,
    n: Annotated[int, Field(description="white_noise: number of permuted series")] = 20,
    n_splits: Annotated[int, Field(description="walk_forward: number of folds")] = 4,
    objective: str = "sharpe",
    settings: Settings = None,
) -> dict[str, Any]:
    """Is this overfit or peeking ahead? Runs one check and returns its report: passed, verdict, numbers."""
    return tools.sanity_check(
        strategy,
        check,
        dataset=dataset,
        sample=sample,
        params=params,
        space=space,
        n=n,
        n_splits=n_splits,
        objective=objective,
        settings=settings,
    )


def list_datasets() -> dict[str, Any]:
    """Datasets imported into the workspace (name, rows, span, fingerprint) and the built-in samples."""
    return tools.list_datasets()


def analyze_market_structure(
    dataset: DatasetName = None,
    sample: SampleSpec = None,
    window: Annotated[int, Field(description="bars for the recent-trend figures")] = 250,
) -> dict[str, Any]:
    """Trend strength, volatility regime, Hurst exponent, autocorrelation and return distribution of a
    dataset or sample: which strategy family fits it."""
    return tools.analyze_market_structure(dataset, sample, window)


# --- self-healing over MCP sampling ----------------------------------------------------------------
#
# Each heal attempt needs one reply from the client's own model (MCP sampling, no API key here).
# The SDK fills `Resolve(...)` parameters before the tool body runs: resolver k plans (dry run) the
# prompt of attempt k from the replies to attempts 1..k-1 and asks for it with `Sample`, or returns
# None when no further reply is needed. On the 2026 protocol this is the request/retry exchange (the
# plans re-run each round and render identically); on older protocols each is a mid-call request.
# The body then runs the real, recorded heal once with the collected replies.

MAX_MCP_HEAL_ATTEMPTS = 3
HEAL_MAX_TOKENS = 8192
Attempts = Annotated[int, Field(ge=1, le=MAX_MCP_HEAL_ATTEMPTS, description="model replies to try (1-3)")]
TimeLimit = Annotated[float, Field(gt=0, le=120, description="seconds the strategy may run per attempt")]


def _can_sample(ctx: Context) -> bool:
    caps = ctx.client_capabilities
    return caps is not None and caps.sampling is not None


def _plan(
    strategy: str,
    dataset: Any,
    sample: Any,
    params: Any,
    settings: Any,
    max_attempts: int,
    time_limit: float,
    replies: list[Any],
) -> Sample | None:
    from qlm_kernel.healing import HEAL_SYSTEM_PROMPT

    if len(replies) >= max_attempts:
        return None
    prompt = tools.heal_next_prompt(
        strategy, replies, dataset, sample, params, settings, max_attempts, time_limit
    )
    if prompt is None:
        return None
    message = SamplingMessage(role="user", content=TextContent(type="text", text=prompt))
    return Sample([message], max_tokens=HEAL_MAX_TOKENS, system_prompt=HEAL_SYSTEM_PROMPT, temperature=0.0)


def _reply_1(
    strategy: str,
    dataset: Any,
    sample: Any,
    params: Any,
    settings: Any,
    max_attempts: int,
    time_limit: float,
    ctx: Context,
) -> Sample | None:
    """The first repair prompt (None if the strategy passes, or the client cannot sample)."""
    if not _can_sample(ctx):
        return None
    return _plan(strategy, dataset, sample, params, settings, max_attempts, time_limit, [])


Reply1 = Annotated[CreateMessageResult | None, Resolve(_reply_1)]


def _reply_2(
    strategy: str,
    dataset: Any,
    sample: Any,
    params: Any,
    settings: Any,
    max_attempts: int,
    time_limit: float,
    r1: Reply1,
) -> Sample | None:
    """The second prompt, if the first reply did not heal the strategy."""
    if r1 is None:
        return None
    return _plan(strategy, dataset, sample, params, settings, max_attempts, time_limit, [r1])


def _reply_3(
    strategy: str,
    dataset: Any,
    sample: Any,
    params: Any,
    settings: Any,
    max_attempts: int,
    time_limit: float,
    r1: Annotated[CreateMessageResult | None, Resolve(_reply_1)],
    r2: Annotated[CreateMessageResult | None, Resolve(_reply_2)],
) -> Sample | None:
    """The third prompt, if the second reply did not heal it either."""
    if r1 is None or r2 is None:
        return None
    return _plan(strategy, dataset, sample, params, settings, max_attempts, time_limit, [r1, r2])


def heal_strategy(
    strategy: StrategyName,
    reply_1: Annotated[CreateMessageResult | None, Resolve(_reply_1)],
    reply_2: Annotated[CreateMessageResult | None, Resolve(_reply_2)],
    reply_3: Annotated[CreateMessageResult | None, Resolve(_reply_3)],
    ctx: Context,
    dataset: DatasetName = None,
    sample: SampleSpec = None,
    params: Params = None,
    settings: Settings = None,
    max_attempts: Attempts = MAX_MCP_HEAL_ATTEMPTS,
    time_limit: TimeLimit = 10.0,
) -> dict[str, Any]:
    """Repair a failing strategy with YOUR model (MCP sampling: you are asked for each fix): run it,
    send the error trace and source, validate the patched file, save it as a new version (author
    "healer"), re-run; roll back if not healed. Without sampling support: a diagnosis only. Returns
    the heal report (steps, diffs, outcome); every step is also on the bus and in the store."""
    replies = [r for r in (reply_1, reply_2, reply_3) if r is not None]
    model_replies = replies if _can_sample(ctx) else None
    return tools.heal_strategy(
        strategy, model_replies, dataset, sample, params, settings, max_attempts, time_limit
    )


# --- paper trading ----------------------------------------------------------------------------------


def start_paper_session(
    strategy: StrategyName,
    dataset: DatasetName = None,
    sample: SampleSpec = None,
    params: Params = None,
    settings: Annotated[
        dict[str, Any] | None,
        Field(
            description="backtest settings plus latency (s), slippage, fees, fixed_fees, max_participation"
        ),
    ] = None,
    speed: Annotated[float, Field(ge=0, description="bars per second (0 = as fast as possible)")] = 20.0,
    risk: Annotated[
        dict[str, Any] | None,
        Field(description="risk limits: max_position, max_daily_loss, max_orders_per_minute"),
    ] = None,
) -> dict[str, Any]:
    """Paper-trade a strategy on replayed bars (simulated broker with latency and slippage) in the
    background; returns the session id. Orders, fills and P&L go to the store and the bus."""
    return tools.start_paper_session(strategy, dataset, sample, params, settings, speed, risk)


def paper_session_status(
    session_id: Annotated[str, Field(description="from start_paper_session")],
) -> dict[str, Any]:
    """A paper session's status, bars processed, position, cash, equity, P&L, orders and fills."""
    return tools.paper_session_status(session_id)


def stop_paper_session(
    session_id: Annotated[str, Field(description="from start_paper_session")],
) -> dict[str, Any]:
    """Stop a paper session after its current bar; returns its final status."""
    return tools.stop_paper_session(session_id)


def list_paper_sessions(limit: int = 20) -> dict[str, Any]:
    """Paper sessions, newest first."""
    return tools.list_paper_sessions(limit)


# --- resources and prompt -------------------------------------------------------------------------

_REPORT_NAME = re.compile(r"run-[A-Za-z0-9_-]{1,64}\.html")


def _add_resources(server: MCPServer) -> None:
    @server.resource(
        "qlm://strategies/{name}",
        mime_type="text/x-python",
        description="the code of a strategy file (workspace first, then examples)",
    )
    def strategy_file(name: str) -> str:
        return tools.read_strategy(name)["code"]

    @server.resource(
        "qlm://runs/{run_id}",
        mime_type="application/json",
        description="a recorded backtest run: params, settings, stats or error",
    )
    def run_record(run_id: str) -> str:
        from qlm_kernel.store import default_store

        if not run_id.isdigit():
            raise ConfigError(f"run id must be a number, got {run_id!r}", code="BAD_ARGUMENT")
        run = default_store().get_run(int(run_id))
        if run is None:
            raise ConfigError(f"no run with id {run_id}", code="NOT_FOUND", hint="list_runs shows the runs")
        return json.dumps(json_safe(run))

    @server.resource(
        "qlm://reports/{name}",
        mime_type="text/html",
        description="an HTML backtest report saved by run_backtest(report=true)",
    )
    def report_file(name: str) -> str:
        from qlm_kernel.home import workspace_dir

        if not _REPORT_NAME.fullmatch(name):
            raise SecurityError(f"not a report name: {name!r}", code="BAD_NAME", hint="e.g. run-12.html")
        path = workspace_dir("reports") / name
        if path.is_symlink() or not path.is_file():
            raise ConfigError(f"no report named {name}", code="NOT_FOUND")
        return report_for_clients(path.read_text(encoding="utf-8"), path)


_PLOTLY_BUNDLE = re.compile(r"<script[^>]*>\s*/\*\*\s*\n\*\s*plotly\.js v([\d.]+).*?</script>", re.S)
MAX_RESOURCE_CHARS = 900_000


def report_for_clients(text: str, path: Any) -> str:
    """A saved report as an MCP resource: the inlined plotly.js bundle (~4.7 MB) is swapped for a
    script tag loading the same version from plotly's CDN; a report still over MAX_RESOURCE_CHARS
    (a very long chart) is replaced by a note naming the file (the SSE transport caps events at 1 MiB)."""
    lite = _PLOTLY_BUNDLE.sub(
        lambda m: f'<script src="https://cdn.plot.ly/plotly-{m.group(1)}.min.js"></script>', text, count=1
    )
    if len(lite) <= MAX_RESOURCE_CHARS:
        return lite
    return (
        f"<!doctype html><html><body><p>The report is {len(lite):,} characters, too large to send "
        f"over MCP; open {path} in a browser.</p></body></html>"
    )


def _add_prompts(server: MCPServer) -> None:
    @server.prompt(title="Fix a strategy from its last error")
    def fix_strategy(strategy: str) -> str:
        """The strategy's code and the last recorded error, with instructions to repair it."""
        from qlm_kernel.store import default_store

        source = tools.read_strategy(strategy)
        runs = default_store().list_runs(limit=20, strategy=source["strategy"], status="error")
        error = runs[0]["error"] if runs else None
        if error is None:
            error_text = "No failed run is recorded yet: call run_backtest first to see the error."
        else:
            error_text = json.dumps(error, indent=2)[:6000]
        return (
            f"The QLM strategy {source['name']} fails. Fix it.\n\n"
            f"Last error (QLMError JSON, with file, line and excerpt):\n{error_text}\n\n"
            f"Current code:\n```python\n{source['code']}\n```\n\n"
            "Rules: keep the same Strategy class and Params; import only numpy, pandas, math and "
            "qlm_kernel; signals(self, data) gets the OHLCV frame (lowercase columns open, high, low, "
            "close, volume) and returns qlm_kernel.Signals of boolean arrays as long as the data. "
            f"Save the whole fixed file with write_strategy(name={source['name']!r}, code=...), then "
            f"call run_backtest(strategy={source['name']!r}) to confirm."
        )
