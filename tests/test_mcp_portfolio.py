"""``run_portfolio`` through real MCP clients (streamable HTTP to the in-kernel server, stdio to ``qlm mcp
--stdio``) on a stored universe: the stats equal the same run done in this process, every symbol has its
stats, a bad universe name is the structured error, and strategy code runs under the tool's time limit."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

import qlm_kernel as qlm
from tests.heal_cases import ENDLESS_LOOP
from tests.mcp_helpers import error_record, http_client, serving, stdio_params, structured

SYMBOLS = ("ACME", "BOLT", "CRUX")
UNIVERSE = "trio"
SETTINGS = {"size": 0.3, "size_type": "percent", "fees": 0.001}


def import_trio(home: Path) -> None:
    """Store universe ``trio`` (three synthetic symbols; BOLT starts later) in workspace ``home``."""
    frames = {sym: qlm.sample_data("synthetic", n=1500, seed=70 + k) for k, sym in enumerate(SYMBOLS)}
    frames["BOLT"] = frames["BOLT"].iloc[100:]
    qlm.DataManager(home).import_universe(frames, UNIVERSE)


def in_process(home: Path, monkeypatch: pytest.MonkeyPatch, **kwargs: Any) -> Any:
    """The same portfolio run in this process on workspace ``home`` (not recorded)."""
    monkeypatch.setenv("QLM_HOME", str(home))
    return qlm.backtest_portfolio("sma_cross", UNIVERSE, record=False, **kwargs)


def check_same_run(out: dict[str, Any], res: Any) -> None:
    assert out["universe"] == UNIVERSE and out["symbols"] == list(SYMBOLS)
    assert out["strategy"] == "SmaCross" and out["params"] == res.params
    assert out["bars"] == len(res.data.index) and out["start"] == str(res.data.index[0])
    assert set(out["stats"]) == set(res.stats.index)
    for key, value in res.stats.items():
        if isinstance(value, float):
            assert out["stats"][key] == pytest.approx(value, rel=1e-12, nan_ok=True), key
    assert out["stats"]["final_value"] == pytest.approx(res.stats["final_value"], rel=1e-12)
    assert set(out["symbol_stats"]) == set(SYMBOLS)
    for sym in SYMBOLS:
        assert out["symbol_stats"][sym]["n_trades"] == res.symbol_stats.loc[sym, "n_trades"]
        assert out["symbol_stats"][sym]["pnl"] == pytest.approx(res.symbol_stats.loc[sym, "pnl"], rel=1e-12)
    assert out["trades"]["count"] == res.stats["n_trades"] == len(res.trades) > 0
    assert {t["symbol"] for t in out["trades"]["last"]} <= set(SYMBOLS)
    assert out["settings"]["size_type"] == "percent" and out["settings"]["fees"] == 0.001
    assert [w["code"] for w in out["warnings"]] == [w["code"] for w in res.warnings]
    assert out["run_id"] is not None and out["seconds"] > 0


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mcp_portfolio_home")
    import_trio(root)
    return root


@pytest.fixture(scope="module")
def server(home: Path):
    with serving(home) as handle:
        yield handle


def test_run_portfolio_over_http_equals_the_in_process_run(server, home: Path, monkeypatch) -> None:
    async def go():
        async with http_client(server) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            out = structured(await client.call_tool("run_portfolio", {
                "strategy": "sma_cross", "universe": UNIVERSE, "settings": SETTINGS, "params": {"fast": 8},
                "report": True}))
            runs = structured(await client.call_tool("list_runs", {"limit": 5}))
            datasets = structured(await client.call_tool("list_datasets", {}))
            report = (await client.read_resource(out["report"]["uri"])).contents[0].text
            return tools, out, runs, datasets, report

    tools, out, runs, datasets, report = asyncio.run(go())
    schema = tools["run_portfolio"]
    assert schema.input_schema["required"] == ["strategy", "universe"]
    assert {"params", "settings", "report", "time_limit"} <= set(schema.input_schema["properties"])
    assert "symbol_stats" in schema.output_schema["properties"]
    assert schema.annotations.read_only_hint is False
    res = in_process(home, monkeypatch, fast=8, **SETTINGS)
    check_same_run(out, res)
    recorded = next(r for r in runs["runs"] if r["id"] == out["run_id"])
    assert recorded["dataset"] == UNIVERSE and recorded["source"] == "mcp"
    assert recorded["settings"]["portfolio"]["symbols"] == list(SYMBOLS)
    listed = {d["name"]: d for d in datasets["datasets"]}
    assert listed[UNIVERSE]["kind"] == "universe" and listed[UNIVERSE]["symbols"] == list(SYMBOLS)
    assert "<html" in report.lower()  # the page, or (inline plotly is large) where to open it
    page = Path(out["report"]["path"]).read_text(encoding="utf-8")
    assert UNIVERSE in page and all(sym in page for sym in SYMBOLS)


def test_a_bad_universe_name_is_a_structured_error(server) -> None:
    async def go():
        async with http_client(server) as client:
            return [await client.call_tool("run_portfolio", {"strategy": "sma_cross", **arguments})
                    for arguments in ({"universe": "tiro"}, {"universe": "../../etc"},
                                      {"universe": "/etc/hosts"}, {"univers": UNIVERSE})]

    unknown, escape, a_file, typo = (error_record(r) for r in asyncio.run(go()))
    assert unknown["type"] == "DataError" and unknown["code"] == "NOT_FOUND"
    assert "did you mean 'trio'?" in unknown["hint"] and unknown["context"]["known"] == [UNIVERSE]
    assert escape["type"] == "SecurityError" and escape["code"] == "PATH_TRAVERSAL"
    assert a_file["type"] == "SecurityError"  # a path is never read: names of stored universes only
    assert "universe" in typo["hint"]


def test_strategy_code_runs_under_the_time_limit(server) -> None:
    async def go():
        async with http_client(server) as client:
            structured(await client.call_tool("write_strategy", {"name": f"{ENDLESS_LOOP.name}.py",
                                                                 "code": ENDLESS_LOOP.broken}))
            started = time.perf_counter()
            result = await client.call_tool("run_portfolio", {"strategy": ENDLESS_LOOP.name,
                                                              "universe": UNIVERSE, "time_limit": 0.5})
            seconds = time.perf_counter() - started
            too_long = await client.call_tool("run_portfolio", {"strategy": "sma_cross", "universe": UNIVERSE,
                                                                "time_limit": 1e9})
            return result, seconds, too_long

    result, seconds, too_long = asyncio.run(go())
    err = error_record(result)
    assert err["code"] == "TIMEOUT" and seconds < 10
    assert error_record(too_long)["code"] == "LIMIT_EXCEEDED"


def test_run_portfolio_over_stdio_equals_the_in_process_run(tmp_path: Path, monkeypatch) -> None:
    home = tmp_path / "home"
    import_trio(home)

    async def go():
        async with Client(stdio_params(str(home))) as client:
            ok = structured(await client.call_tool("run_portfolio", {
                "strategy": "sma_cross", "universe": UNIVERSE, "settings": SETTINGS}))
            bad = error_record(await client.call_tool("run_portfolio", {"strategy": "sma_cross",
                                                                        "universe": "trios"}))
            return ok, bad

    out, bad = asyncio.run(go())
    check_same_run(out, in_process(home, monkeypatch, **SETTINGS))
    assert bad["code"] == "NOT_FOUND" and "did you mean 'trio'?" in bad["hint"]
