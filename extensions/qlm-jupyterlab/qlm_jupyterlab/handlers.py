"""Authenticated JSON handlers under ``<base_url>/qlm/api/``: jobs, runs, strategies, heal sessions,
events and MCP status of the server's workspace, each one call to `qlm_kernel.session` (the same views
and errors as the CLI and the MCP tools); job cancel is the one write.

Every method is ``@authenticated`` and ``@authorized`` on the resource `AUTH_RESOURCE` (``"qlm"``):
GETs ask the server's authorizer for ``read``, the cancel POST for ``write``, so a deployment with a
real authorizer (JupyterHub roles, a custom `Authorizer`) decides who may look and who may cancel.

Nothing blocks the server's event loop: every store read (SQLite, which may wait up to its busy
timeout for a lock) and file read runs on a small thread pool (`off_loop`, `MAX_WORKERS` threads), so a
slow read delays only its own request.

Every failure answers JSON ``{"error": QLMError.to_dict()}`` with a matching HTTP status. Path
segments are matched by strict patterns (integers, short ids) and only ever used as SQL parameters or,
for run reports, turned into ``run-<integer>.html``: nothing from a request names a file.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import tornado.web
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado.ioloop import IOLoop

from qlm_jupyterlab import mcpstatus, views
from qlm_jupyterlab.workspace import Workspace
from qlm_kernel import session
from qlm_kernel.errors import ConfigError, QLMError, QLMSystemError, SecurityError
from qlm_kernel.events.topics import validate_pattern
from qlm_kernel.jsonsafe import json_safe
from qlm_kernel.session import history

ID = r"([A-Za-z0-9_-]{1,64})"
INT = r"([0-9]{1,12})"
NAME = r"([A-Za-z0-9_.-]{1,128})"
MAX_LIMIT = 1000
AUTH_RESOURCE = "qlm"
"""The resource name the server's authorizer is asked about (actions: read for GET, write for POST)."""
MAX_WORKERS = 4
"""Threads for blocking reads; more concurrent requests queue for one (SQLite reads take milliseconds)."""
T = TypeVar("T")
_pool = ThreadPoolExecutor(MAX_WORKERS, thread_name_prefix="qlm-jupyterlab")


async def off_loop(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking call (a session read or write, a file read) on the extension's threads."""
    return await IOLoop.current().run_in_executor(_pool, functools.partial(fn, *args, **kwargs))


def http_status(err: QLMError) -> int:
    """The HTTP status for an error: 404 unknown id, 400 bad argument, 403 refused, 503/500 system."""
    if err.code == "NOT_FOUND":
        return 404
    if isinstance(err, SecurityError):
        return 403
    if isinstance(err, ConfigError):
        return 400
    if isinstance(err, QLMSystemError) and err.code in ("DB_BUSY", "DB_READONLY", "DB_TOO_NEW"):
        return 503
    return 500


def api(method: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """Turn every exception of a handler method into a JSON error answer (QLMError.to_dict())."""

    @functools.wraps(method)
    async def wrapper(self: QLMHandler, *args: Any, **kwargs: Any) -> None:
        try:
            await method(self, *args, **kwargs)
        except tornado.web.HTTPError:
            raise
        except QLMError as err:
            self.fail(err)
        except Exception as exc:
            self.log.exception("qlm handler failed")
            err = QLMSystemError(f"the QLM extension failed: {type(exc).__name__}: {exc}", code="INTERNAL",
                                 hint="see the Jupyter server log")
            err.__cause__ = exc
            self.fail(err)

    return wrapper


class QLMHandler(APIHandler):
    """Base: the workspace, argument parsing and JSON answers; authorization on `AUTH_RESOURCE`."""

    auth_resource = AUTH_RESOURCE

    @property
    def workspace(self) -> Workspace:
        """The server's QLM workspace (set up when the extension loads)."""
        return self.settings["qlm_workspace"]

    def reply(self, body: Any, status: int = 200) -> None:
        """Answer JSON (non-finite numbers become null)."""
        self.set_status(status)
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(json_safe(body)))

    def fail(self, err: QLMError) -> None:
        """Answer a QLMError as ``{"error": ...}``."""
        if self._finished:
            return
        self.clear()
        self.reply({"error": err.to_dict()}, http_status(err))

    def int_arg(self, name: str, default: int, *, minimum: int = 0, maximum: int = MAX_LIMIT) -> int:
        """An integer query argument within bounds, else a ConfigError naming it."""
        text = self.get_argument(name, None)
        if text is None:
            return default
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not minimum <= value <= maximum:
            raise ConfigError(f"query argument {name}={text!r} is not an integer in [{minimum}, {maximum}]",
                              hint=f"e.g. ?{name}={default}", argument=name)
        return value

    def topics_arg(self) -> list[str] | None:
        """``?topic=job.*&topic=heal.*``: validated fnmatch patterns, None for all topics."""
        patterns = [p.strip() for arg in self.get_arguments("topic") for p in arg.split(",") if p.strip()]
        return [validate_pattern(p) for p in patterns] or None


class StatusHandler(QLMHandler):
    """GET: the workspace, whether it has a database, the stream's polling interval."""

    @tornado.web.authenticated
    @authorized
    @api
    async def get(self) -> None:
        from qlm_jupyterlab import __version__
        from qlm_jupyterlab.stream import POLL_SECONDS

        self.reply({**self.workspace.info(), "version": __version__, "poll_seconds": POLL_SECONDS})


class JobsHandler(QLMHandler):
    """GET: the newest jobs with progress (``?status=running&limit=50``)."""

    @tornado.web.authenticated
    @authorized
    @api
    async def get(self) -> None:
        limit = self.int_arg("limit", 50, minimum=1)
        status = self.get_argument("status", None)
        self.reply({"jobs": await off_loop(session.list_jobs, status, limit, home=self.workspace.home)})


class JobHandler(QLMHandler):
    """GET: one job."""

    @tornado.web.authenticated
    @authorized
    @api
    async def get(self, job_id: str) -> None:
        trials = self.int_arg("trials", 0, maximum=100)
        self.reply({"job": await off_loop(session.get_job, job_id, trials, home=self.workspace.home)})


class CancelHandler(QLMHandler):
    """POST: ask a job (in any process) to stop; its worker sees the flag between batches."""

    @tornado.web.authenticated
    @authorized
    @api
    async def post(self, job_id: str) -> None:
        self.reply(await off_loop(session.cancel_job, job_id, home=self.workspace.home))


class RunsHandler(QLMHandler):
    """GET: the newest runs with key stats (``?limit=30``)."""

    @tornado.web.authenticated
    @authorized
    @api
    async def get(self) -> None:
        limit = self.int_arg("limit", 30, minimum=1)
        runs = await off_loop(session.list_runs, limit, home=self.workspace.home)
        self.reply({"runs": await off_loop(lambda: [views.run_view(run, self.workspace) for run in runs])})


class RunHandler(QLMHandler):
    """GET: one run's full record (stats, params, settings, error)."""

    @tornado.web.authenticated
    @authorized
    @api
    async def get(self, run_id: str) -> None:
        run = await off_loop(session.get_run, int(run_id), home=self.workspace.home)
        self.reply({"run": await off_loop(views.run_view, run, self.workspace, full=True)})


class ReportHandler(QLMHandler):
    """GET: the HTML report ``<QLM_HOME>/reports/run-<id>.html`` of a run, when one was saved."""

    @tornado.web.authenticated
    @authorized
    @api
    async def get(self, run_id: str) -> None:
        path: Path = self.workspace.report_path(int(run_id))
        body = await off_loop(_read_if_file, path)
        if body is None:
            raise ConfigError(f"run {run_id} has no HTML report", code="NOT_FOUND", run_id=int(run_id),
                              hint="reports are saved by the MCP run_backtest tool with report=true")
        self.set_header("Cache-Control", "no-store")
        self.finish(body, set_content_type="text/html; charset=utf-8")


class StrategiesHandler(QLMHandler):
    """GET: every versioned strategy."""

    @tornado.web.authenticated
    @authorized
    @api
    async def get(self) -> None:
        self.reply({"strategies": await off_loop(history.versioned_strategies, home=self.workspace.home)})


class VersionsHandler(QLMHandler):
    """GET: the versions of one strategy (oldest first, no code)."""

    @tornado.web.authenticated
    @authorized
    @api
    async def get(self, name: str) -> None:
        versions = await off_loop(history.strategy_versions, name, home=self.workspace.home)
        self.reply({"strategy": name, "versions": versions})


class HealListHandler(QLMHandler):
    """GET: the newest heal sessions."""

    @tornado.web.authenticated
    @authorized
    @api
    async def get(self) -> None:
        limit = self.int_arg("limit", 30, minimum=1)
        self.reply({"sessions": await off_loop(history.list_heal_sessions, limit, home=self.workspace.home)})


class HealHandler(QLMHandler):
    """GET: one heal session with its steps (timeline, diffs in patch steps)."""

    @tornado.web.authenticated
    @authorized
    @api
    async def get(self, session_id: str) -> None:
        heal = await off_loop(history.get_heal_session, session_id, home=self.workspace.home)
        self.reply({"session": heal})


class EventsHandler(QLMHandler):
    """GET: one batch of events after an id (``?after=0&limit=200&topic=job.*``); ``last_id`` included."""

    @tornado.web.authenticated
    @authorized
    @api
    async def get(self) -> None:
        after = self.int_arg("after", 0, maximum=2**62)
        limit = self.int_arg("limit", 200, minimum=1)
        topics = self.topics_arg()
        self.reply(await off_loop(history.tail_events, after, limit, topics, home=self.workspace.home))


class MCPHandler(QLMHandler):
    """GET: MCP servers and clients as recorded in the event log, plus client configurations."""

    @tornado.web.authenticated
    @authorized
    @api
    async def get(self) -> None:
        status: mcpstatus.MCPStatus = self.settings["qlm_mcp_status"]
        await off_loop(status.update, self.workspace.home)
        snapshot = status.snapshot(time.time())
        for server in snapshot["servers"]:
            server["reachable"] = (await mcpstatus.reachable(server.get("url"))
                                   if server.get("status") == "running" else None)
            server["config"] = mcpstatus.client_configs(server.get("url"), str(self.workspace.home))
        snapshot["stdio_config"] = mcpstatus.client_configs(None, str(self.workspace.home))["stdio"]
        self.reply(snapshot)


class QuickstartHandler(QLMHandler):
    """GET: the bundled quickstart notebook's JSON (the front end saves a copy through the contents API)."""

    @tornado.web.authenticated
    @authorized
    @api
    async def get(self) -> None:
        from qlm_kernel.home import bundled_path

        path = bundled_path("notebooks", "quickstart.ipynb")
        body = await off_loop(_read_if_file, path)
        if body is None:
            raise ConfigError("no bundled quickstart notebook", code="NOT_FOUND",
                              hint="open notebooks/quickstart.ipynb from a QLM checkout")
        self.reply({"name": path.name, "content": json.loads(body.decode("utf-8"))})


def _read_if_file(path: Path) -> bytes | None:
    """The bytes of a regular file, or None when there is none."""
    return path.read_bytes() if path.is_file() else None


def routes(base_url: str) -> list[tuple[str, type[QLMHandler]]]:
    """The URL patterns of the extension under the server's base URL."""
    from jupyter_server.utils import url_path_join

    from qlm_jupyterlab.stream import EventStreamHandler

    def at(path: str) -> str:
        return url_path_join(base_url, "qlm", "api", path)

    return [
        (at("status"), StatusHandler),
        (at("jobs"), JobsHandler),
        (at(f"jobs/{ID}"), JobHandler),
        (at(f"jobs/{ID}/cancel"), CancelHandler),
        (at("runs"), RunsHandler),
        (at(f"runs/{INT}"), RunHandler),
        (at(f"runs/{INT}/report"), ReportHandler),
        (at("strategies"), StrategiesHandler),
        (at(f"strategies/{NAME}/versions"), VersionsHandler),
        (at("heal"), HealListHandler),
        (at(f"heal/{ID}"), HealHandler),
        (at("events"), EventsHandler),
        (at("events/stream"), EventStreamHandler),
        (at("mcp"), MCPHandler),
        (at("quickstart"), QuickstartHandler),
    ]


def setup(web_app: Any, workspace: Workspace) -> None:
    """Register the handlers on the server's tornado application."""
    web_app.settings["qlm_workspace"] = workspace
    web_app.settings["qlm_mcp_status"] = mcpstatus.MCPStatus()
    web_app.add_handlers(".*$", routes(web_app.settings["base_url"]))
