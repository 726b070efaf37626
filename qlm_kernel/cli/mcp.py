"""``qlm mcp --stdio | --http``: serve QLM's MCP tools outside a notebook.

``--stdio`` is what an MCP client launches as a subprocess (nothing but protocol on stdout).
``--http`` serves streamable HTTP (``/mcp``) and legacy SSE (``/sse``) on 127.0.0.1 until Ctrl-C or
SIGTERM, after printing the client configuration (URL and bearer token; ``--json`` prints it as one
JSON document; the text form masks the token and names the 0600 file holding the full configuration).
The token is read from ``--token-file`` (mode 600), else ``$QLM_MCP_TOKEN``, else random: never from the
command line, where every user of the machine sees it in ``ps``.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from qlm_kernel.cli import output


def add_parser(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Register ``qlm mcp``."""
    p = subparsers.add_parser("mcp", parents=[common], help="serve the MCP tools (stdio or HTTP)",
                              description="Serve QLM's MCP server for AI assistants: strategies, backtests, "
                              "optimizations and checks in $QLM_HOME.")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--stdio", action="store_true", help="talk MCP over stdin/stdout")
    mode.add_argument("--http", action="store_true", help="serve streamable HTTP (/mcp) and SSE (/sse)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind with --http (127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="port with --http (8765; 0 picks a free one)")
    p.add_argument("--token-file", default=None, metavar="FILE",
                   help="read the bearer token from FILE (mode 600); default $QLM_MCP_TOKEN, else random "
                   "(never on the command line: other users see it in ps)")
    p.add_argument("--allow-host", action="append", default=None, metavar="HOST:PORT",
                   help="extra Host header to accept (required when binding beyond loopback)")
    p.set_defaults(run=run_mcp)


def run_mcp(args: argparse.Namespace) -> int:
    """Serve until the client leaves (stdio) or the process is told to stop (HTTP)."""
    if args.stdio:
        from qlm_kernel.mcp.stdio import serve_stdio

        serve_stdio()
        return output.EXIT_OK
    from qlm_kernel.mcp.http import start

    handle = start(port=args.port, host=args.host, token_file=args.token_file,
                   allowed_hosts=args.allow_host)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    if args.json:
        output.emit_json({"url": handle.url, "sse_url": handle.sse_url, "token": handle.token,
                          "config": handle.client_config()})
    else:
        output.emit_text(repr(handle))
        output.note("serving; Ctrl-C to stop")
    sys.stdout.flush()
    try:
        while not stop.wait(0.5) and handle.running:
            pass
    finally:
        handle.stop()
    return output.EXIT_OK
