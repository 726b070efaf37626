"""The QLM MCP server: registers `qlm_kernel.mcp.tools` (each tool declared once there), resources and
a prompt; built per start.

Every tool call is published on the kernel's bus (``mcp.tool.called|finished|failed``). A `QLMError`
comes back as an MCP tool error whose text is the error's JSON (and ``structured_content =
{"error": ...}``), never a crashed server; an unexpected exception is wrapped the same way as a
``QLMSystemError`` (code INTERNAL).

Tools that run strategy code (`tools.WORKER_TOOLS`) run in worker processes
(`qlm_kernel.session.workers`): their caps are checked here first (a refusal comes at once), the
worker is killed at the tool's time limit (TIMEOUT) or when the request is cancelled, and a call that
finds every worker busy is refused at once (BUSY). The kernel itself only answers: the other tools
read the store and run on the SDK's threads, so `get_system_status` answers while every worker works.

No ``from __future__ import annotations`` here: the SDK reads these signatures' real annotations.
"""

import asyncio
import contextlib
import functools
import inspect
import itertools
import json
import re
import threading
import time
from collections.abc import Callable
from typing import Annotated, Any

import anyio.to_thread
from mcp.server.mcpserver import Context, MCPServer, Resolve, Sample
from mcp_types import CallToolResult, CreateMessageResult, SamplingMessage, TextContent, ToolAnnotations
from mcp_types import Tool as MCPTool

from qlm_kernel.errors import QLMError, QLMSystemError, SecurityError
from qlm_kernel.events import publish
from qlm_kernel.events.topics import MCP_TOOL_CALLED, MCP_TOOL_FAILED, MCP_TOOL_FINISHED
from qlm_kernel.jsonsafe import json_safe
from qlm_kernel.mcp import schemas, tools
from qlm_kernel.mcp.arguments import check_call
from qlm_kernel.mcp.clients import ClientTracker
from qlm_kernel.session import recover_interrupted_heals
from qlm_kernel.session.jobs import not_found
from qlm_kernel.session.limits import MCP
from qlm_kernel.session.workers import run_isolated, warm_workers

SERVER_NAME = "qlm"
FRONT_END = "mcp"  # which of a QLMError's fixes the server shows (`QLMError.hint_for`)
INSTRUCTIONS = (
    "QLM (QuantLogic): a Jupyter-native backtesting kernel. Strategies are Python files in the "
    "workspace (list_strategies, read_strategy, write_strategy — every write is a new version). "
    "run_backtest runs one (stats, trades summary; a failure returns the StrategyError with file, "
    "line and excerpt: fix the file with write_strategy and run again); run_portfolio runs one over "
    "every symbol of a stored universe with shared cash (portfolio and per-symbol stats). "
    "optimize_parameters searches "
    "a parameter space (progress notifications; returns job id and best); sanity_check judges "
    "overfitting and lookahead; analyze_market_structure describes a dataset. Data is a workspace "
    'dataset (list_datasets) or a generated sample such as {"kind": "synthetic", "n": 10000}; a '
    'universe is a workspace dataset of kind "universe" (list_datasets).'
)
_ARG_PREVIEW = 200
_call_ids = itertools.count(1)

def error_result(err: QLMError) -> CallToolResult:
    """An MCP tool error carrying the error's JSON (text and structured), its hint naming MCP tools."""
    record = err.to_dict(FRONT_END)
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
            {"tool": tool, "call_id": call_id, "seconds": seconds, "error": err.to_dict(FRONT_END)},
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


class QLMServer(MCPServer):
    """MCPServer whose tool calls are checked first (`qlm_kernel.mcp.arguments`): an unknown tool or
    argument comes back as a QLMError tool error naming the closest one.

    The tool list and the input schemas are built once (the tools are registered when the server is
    built) and built again only after a tool is added or removed."""

    _tool_list: list[MCPTool] | None = None
    _tool_schemas: dict[str, dict[str, Any]] | None = None

    def add_tool(self, *args: Any, **kwargs: Any) -> None:
        super().add_tool(*args, **kwargs)
        self._forget_tools()

    def remove_tool(self, name: str) -> None:
        super().remove_tool(name)
        self._forget_tools()

    def _forget_tools(self) -> None:
        self._tool_list = None
        self._tool_schemas = None

    async def list_tools(self) -> list[MCPTool]:
        """Every tool (built on the first call after a change, then reused)."""
        if self._tool_list is None:
            self._tool_list = await super().list_tools()
        return list(self._tool_list)

    async def input_schemas(self) -> dict[str, dict[str, Any]]:
        """Tool name -> input schema (built with the tool list, then reused)."""
        if self._tool_schemas is None:
            self._tool_schemas = {t.name: t.input_schema for t in await self.list_tools()}
        return self._tool_schemas

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        """Refuse an unknown tool or argument (published as ``mcp.tool.failed``), else call the tool."""
        err = check_call(name, arguments, await self.input_schemas())
        if err is None:
            return await super().call_tool(name, arguments, context)
        publish(MCP_TOOL_FAILED, {"tool": name, "call_id": next(_call_ids), "seconds": 0.0,
                                  "error": err.to_dict(FRONT_END)}, source="mcp")
        return error_result(err)


READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)
WRITES = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False
)
FETCHES = ToolAnnotations(  # download_data: asks the exchange, stores; a repeat resumes (same data)
    read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=True
)


def build_server(
    tracker: ClientTracker | None = None,
    info: Callable[[], dict[str, Any]] | None = None,
    **server_kwargs: Any,
) -> MCPServer:
    """A new MCPServer with QLM's tools, resources and prompt (one per start: SDK apps run once)."""
    tracker = tracker or ClientTracker()
    server = QLMServer(
        SERVER_NAME,
        instructions=INSTRUCTIONS,
        log_level="WARNING",
        middleware=[tracker.middleware],
        **server_kwargs,
    )

    def add(fn: Callable[..., Any], annotations: ToolAnnotations) -> None:
        server.add_tool(_observed(_for_mcp(fn)), annotations=annotations)

    for fn in tools.READ_ONLY_TOOLS:
        add(fn, READ_ONLY)
    for fn in tools.WRITING_TOOLS:
        add(fn, FETCHES if fn in tools.OPEN_WORLD_TOOLS else WRITES)

    def get_system_status() -> schemas.SystemStatus:
        """Memory, CPU, running jobs, Numba cache state, database path and size, MCP clients, bus stats."""
        from qlm_kernel.session import system_status

        return system_status({**(info() if info else {}), **tracker.snapshot()})

    add(get_system_status, READ_ONLY)
    _add_resources(server)
    _add_prompts(server)
    warm_workers(MCP.max_paper_sessions)  # in the background: the first tool call finds a worker ready
    with contextlib.suppress(QLMError):  # a heal cut short by a crash is rolled back before serving
        recover_interrupted_heals()
    return server


def _for_mcp(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The tool as MCP calls it: a ``progress`` parameter becomes MCP progress notifications, ``replies``
    the client's model through sampling, a tool in `tools.WORKER_TOOLS` runs in a worker process; every
    other tool is registered as declared."""
    parameters = inspect.signature(fn).parameters
    if "progress" in parameters:
        return _with_progress(fn)
    if "replies" in parameters:
        return _with_sampling(fn)
    if fn.__name__ in tools.WORKER_TOOLS:
        return _isolated(fn)
    return fn


def _arguments(fn: Callable[..., Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` with ``fn``'s defaults filled in (the deadlines and caps read them), without progress."""
    sig = inspect.signature(fn)
    bound = sig.bind_partial(**{k: v for k, v in kwargs.items() if k in sig.parameters})
    bound.apply_defaults()
    arguments = dict(bound.arguments)
    arguments.pop("progress", None)
    return arguments


def worker_call(fn: Callable[..., Any], kwargs: dict[str, Any], *,
                progress: Callable[[dict[str, Any]], Any] | None = None,
                cancel: threading.Event | None = None) -> Any:
    """``fn(**kwargs)`` in a worker process: caps checked here first, then its deadline enforced."""
    spec = tools.WORKER_TOOLS[fn.__name__]
    arguments = _arguments(fn, kwargs)
    if spec.precheck is not None:
        spec.precheck(arguments)
    deadline = spec.deadline(arguments)
    own = arguments.get("time_limit")
    reported = own if isinstance(own, (int, float)) and deadline - own <= tools.KILL_MARGIN_S else None
    return run_isolated(f"{fn.__module__}:{fn.__name__}", arguments, time_limit=deadline, progress=progress,
                        cancel=cancel, reported_limit=reported)


async def _cancellable(call: Callable[[threading.Event], Any]) -> Any:
    """``call(cancel)`` on a thread; cancelling the MCP request sets ``cancel``, which kills the worker."""
    cancel = threading.Event()
    try:
        return await anyio.to_thread.run_sync(call, cancel, abandon_on_cancel=True)
    except anyio.get_cancelled_exc_class():
        cancel.set()
        raise


def _isolated(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The tool run in a worker process (no progress, no sampling)."""

    async def tool(**kwargs: Any) -> Any:
        return await _cancellable(lambda cancel: worker_call(fn, kwargs, cancel=cancel))

    return _named(tool, fn, inspect.signature(fn, eval_str=True))


def _signature(fn: Callable[..., Any], drop: str, add: list[inspect.Parameter]) -> inspect.Signature:
    """``fn``'s signature without ``drop``, with ``add`` placed before the parameters that have defaults."""
    sig = inspect.signature(fn, eval_str=True)
    kept = [p for p in sig.parameters.values() if p.name != drop]
    required = [p for p in kept if p.default is inspect.Parameter.empty]
    optional = [p for p in kept if p.default is not inspect.Parameter.empty]
    return sig.replace(parameters=[*required, *add, *optional])


def _ctx_param() -> inspect.Parameter:
    return inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Context)


def _with_progress(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run the tool in a worker process, forwarding its ``progress`` payloads (done/total/best) as MCP
    progress notifications; cancelling the request kills the worker at once (its job: cancelled)."""

    async def tool(ctx: Context, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        updates: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        cancel = threading.Event()

        def progress(payload: dict[str, Any]) -> None:
            loop.call_soon_threadsafe(updates.put_nowait, dict(payload))

        call = functools.partial(worker_call, fn, kwargs, progress=progress, cancel=cancel)
        work = asyncio.ensure_future(anyio.to_thread.run_sync(call, abandon_on_cancel=True))

        async def report(payload: dict[str, Any]) -> None:
            done, total = payload.get("done") or 0, payload.get("total")
            best = payload.get("best_value")
            text = f"{done}/{total} trials" + (f", best {best:.4g}" if isinstance(best, float) else "")
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
            cancel.set()
            work.cancel()
            raise
        return work.result()

    return _named(tool, fn, _signature(fn, "progress", [_ctx_param()]))


def _named(wrapper: Callable[..., Any], fn: Callable[..., Any], sig: inspect.Signature) -> Callable[..., Any]:
    """``wrapper`` presented to the SDK as the tool ``fn`` (name, description, the given signature)."""
    wrapper.__name__ = wrapper.__qualname__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    wrapper.__signature__ = sig  # type: ignore[attr-defined]
    wrapper.__annotations__ = {  # the SDK reads both (type hints find Context and Resolve parameters)
        **{p.name: p.annotation for p in sig.parameters.values() if p.annotation is not p.empty},
        "return": sig.return_annotation,
    }
    return wrapper


# --- self-healing over MCP sampling ----------------------------------------------------------------
#
# Each heal attempt needs one reply from the client's own model (MCP sampling, no API key here).
# The SDK fills `Resolve(...)` parameters before the tool body runs: resolver k plans (dry run) the
# prompt of attempt k from the replies to attempts 1..k-1 and asks for it with `Sample`, or returns
# None when no further reply is needed. On the 2026 protocol this is the request/retry exchange (the
# plans re-run each round and render identically); on older protocols each is a mid-call request.
# The body then runs the real, recorded heal once with the collected replies. The resolvers take the
# tool's own argument names (the SDK fills them by name); the arguments are declared in `tools`.

HEAL_MAX_TOKENS = 8192


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
    from qlm_kernel.session import HEAL_SYSTEM_PROMPT

    if len(replies) >= max_attempts:
        return None
    prompt = tools.heal_next_prompt(
        strategy, replies, dataset, sample, params, settings, max_attempts, time_limit,
        compute=lambda arguments: worker_call(tools.plan_heal_prompt, arguments),
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


Reply2 = Annotated[CreateMessageResult | None, Resolve(_reply_2)]


def _reply_3(
    strategy: str,
    dataset: Any,
    sample: Any,
    params: Any,
    settings: Any,
    max_attempts: int,
    time_limit: float,
    r1: Reply1,
    r2: Reply2,
) -> Sample | None:
    """The third prompt, if the second reply did not heal it either."""
    if r1 is None or r2 is None:
        return None
    return _plan(strategy, dataset, sample, params, settings, max_attempts, time_limit, [r1, r2])


Reply3 = Annotated[CreateMessageResult | None, Resolve(_reply_3)]


def _with_sampling(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The heal tool with the client's model: up to three sampled replies, resolved before the body."""

    async def tool(ctx: Context, reply_1: Any = None, reply_2: Any = None, reply_3: Any = None,
                   **kwargs: Any) -> Any:
        texts = [tools.reply_text(r) for r in (reply_1, reply_2, reply_3) if r is not None]
        arguments = {**kwargs, "replies": texts if _can_sample(ctx) else None}
        return await _cancellable(lambda cancel: worker_call(fn, arguments, cancel=cancel))

    positional = inspect.Parameter.POSITIONAL_OR_KEYWORD
    resolved = [inspect.Parameter(f"reply_{k}", positional, annotation=ann)
                for k, ann in ((1, Reply1), (2, Reply2), (3, Reply3))]
    return _named(tool, fn, _signature(fn, "replies", [*resolved, _ctx_param()]))


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
        from qlm_kernel.session import get_run

        return json.dumps(get_run(run_id))

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
            raise not_found("report named", name, "run_backtest with report=true saves one")
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
        from qlm_kernel.session import list_runs

        source = tools.read_strategy(strategy)
        runs = list_runs(limit=20, strategy=source["strategy"], status="error")
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
