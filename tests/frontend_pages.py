"""The notebook the widget browser test renders with Voilà: a foreground optimization, a heal, and
buttons that start an MCP assistant's job and a long background job (live updates from threads)."""

from __future__ import annotations

import inspect
from pathlib import Path

import nbformat

from tests.widget_helpers import BROKEN, scripted_model

SETUP = """
import asyncio
import re
import threading
from typing import Any

import httpx2
import ipywidgets as w
from IPython.display import display
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

import qlm_kernel as qlm
import qlm_kernel.mcp
from qlm_kernel.workspace.strategies import write_strategy
from qlm_kernel.widgets import EventLog, HealingTrace, OptimizationProgress

df = qlm.sample_data("synthetic", n=3_000, seed=0)
"""

FOREGROUND = """
fg = OptimizationProgress()
fg.add_class("qlmw-test-foreground")
display(fg)
qlm.optimize("sma_cross", df, {"fast": [5, 10, 15, 20, 25], "slow": [40, 60, 80, 100]}, method="grid")
fg.wait_idle();
"""

HEAL = (
    f"BROKEN = {BROKEN!r}\n\n\n"
    + inspect.getsource(scripted_model)  # the widget tests' scripted model, shipped into the notebook
    + """

trace = HealingTrace()
trace.add_class("qlmw-test-heal")
display(trace)
write_strategy("broken_sma", BROKEN)
qlm.heal("broken_sma", df, model=scripted_model)
trace.wait_idle();
"""
)

LIVE = """
server = qlm_kernel.mcp.start()
live = OptimizationProgress()          # opened before the assistant starts its job
live.add_class("qlmw-test-mcp")
log = EventLog("*", filter="mcp.tool job.created")
log.add_class("qlmw-test-log")


async def assistant():
    async with (
        httpx2.AsyncClient(headers=server.headers(), timeout=httpx2.Timeout(120.0)) as http,
        Client(streamable_http_client(server.url, http_client=http)) as client,
    ):
        await client.call_tool("optimize_parameters", {
            "strategy": "sma_cross", "sample": {"kind": "synthetic", "n": 3000, "seed": 0}, "method": "grid",
            "space": {"fast": list(range(2, 60, 2)), "slow": list(range(60, 200, 5))}})


start_mcp = w.Button(description="start assistant")
start_mcp.add_class("qlmw-test-start-mcp")
start_mcp.on_click(lambda _b: threading.Thread(target=lambda: asyncio.run(assistant()), daemon=True).start())

jobs = w.VBox()


def start_long(_button):
    space = {"fast": list(range(2, 200)), "slow": list(range(20, 500))}
    widget = OptimizationProgress.start("sma_cross", df, space, method="grid")
    widget.add_class("qlmw-test-long")
    jobs.children = (*jobs.children, widget)


start_job = w.Button(description="start long job")
start_job.add_class("qlmw-test-start-long")
start_job.on_click(start_long)
display(w.VBox([start_mcp, live, log, start_job, jobs]))
"""


def write_widgets_page(folder: Path) -> Path:
    """Write the page notebook into ``folder``; returns its path."""
    book = nbformat.v4.new_notebook()
    book.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}}
    book.cells = [nbformat.v4.new_code_cell(src.strip()) for src in (SETUP, FOREGROUND, HEAL, LIVE)]
    path = folder / "widgets_page.ipynb"
    nbformat.write(book, path)
    return path
