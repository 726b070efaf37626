"""The MCP tools' plain functions and the market-structure analysis, without a transport."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import qlm_kernel as qlm
from qlm_kernel.analysis import analyze_market_structure
from qlm_kernel.analysis.market import chi2_survival_even, hurst_exponent, ljung_box
from qlm_kernel.data import fingerprint_frame
from qlm_kernel.errors import ConfigError, DataError, SecurityError
from qlm_kernel.mcp import tools
from qlm_kernel.session import data_manager, frame_fingerprint, resolve_data


def frame_from_returns(returns: np.ndarray) -> pd.DataFrame:
    close = 100.0 * np.exp(np.cumsum(returns))
    index = pd.date_range("2020-01-01", periods=len(close), freq="h", tz="UTC", name="time")
    columns = {"open": close, "high": close, "low": close, "close": close, "volume": 1.0}
    return pd.DataFrame(columns, index=index)


def ar1(phi: float, n: int = 6000, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0, 0.01, n)
    out = np.zeros(n)
    for i in range(1, n):
        out[i] = phi * out[i - 1] + noise[i]
    return out


# --- analysis ---------------------------------------------------------------------------------------


def test_chi_square_survival_matches_known_values():
    assert chi2_survival_even(0.0, 2) == 1.0
    assert chi2_survival_even(5.991, 2) == pytest.approx(0.05, abs=1e-4)  # the 95% quantile, 2 dof
    assert chi2_survival_even(18.307, 10) == pytest.approx(0.05, abs=1e-4)  # 10 dof


def test_hurst_separates_random_walk_trending_and_mean_reverting():
    walk = hurst_exponent(np.cumsum(np.random.default_rng(1).normal(0, 0.01, 8000)))
    assert 0.45 < walk < 0.56
    assert hurst_exponent(np.cumsum(ar1(0.6))) > walk + 0.05
    assert hurst_exponent(np.cumsum(ar1(-0.6))) < walk


def test_white_noise_has_no_serial_correlation_and_ar1_does():
    noise = np.random.default_rng(2).normal(0, 1, 5000)
    _, p_noise = ljung_box(noise)
    _, p_ar = ljung_box(ar1(0.3))
    assert p_noise > 0.01 and p_ar < 1e-6


def test_market_structure_report_on_planted_series():
    trend = analyze_market_structure(frame_from_returns(np.random.default_rng(3).normal(0.002, 0.004, 3000)))
    assert trend["trend"]["label"] == "trending up" and trend["trend"]["r_squared"] > 0.9
    revert = analyze_market_structure(frame_from_returns(ar1(-0.5)))
    assert revert["autocorrelation"]["returns"]["1"] == pytest.approx(-0.5, abs=0.05)
    assert revert["autocorrelation"]["serially_correlated"] is True
    fat = analyze_market_structure(frame_from_returns(np.random.default_rng(4).standard_t(3, 5000) * 0.01))
    assert fat["distribution"]["excess_kurtosis"] > 1 and fat["distribution"]["normal"] is False
    calm_then_wild = np.concatenate([np.random.default_rng(5).normal(0, 0.001, 3000),
                                     np.random.default_rng(6).normal(0, 0.02, 100)])
    assert analyze_market_structure(frame_from_returns(calm_then_wild))["volatility"]["regime"] == "high"
    for report in (trend, revert, fat):
        assert all(v is None or math.isfinite(v) for v in report["distribution"]["quantiles"].values())
        assert report["summary"]


def test_market_structure_refuses_bad_data():
    short = qlm.sample_data("synthetic", n=20)
    with pytest.raises(DataError) as info:
        analyze_market_structure(short)
    assert info.value.code == "TOO_SHORT"
    with pytest.raises(DataError):
        analyze_market_structure(short.drop(columns=["close"]))


# --- tool functions ---------------------------------------------------------------------------------


def test_sample_specs_are_validated(home):
    with pytest.raises(ConfigError, match="over the MCP limit") as caught:
        tools.run_backtest("sma_cross", sample={"kind": "synthetic", "n": 10**9})
    assert caught.value.code == "LIMIT_EXCEEDED"
    assert caught.value.context["option"] == "QLM_MCP_MAX_SAMPLE_BARS"
    with pytest.raises(DataError, match="between 2 and"):
        tools.run_backtest("sma_cross", sample={"kind": "synthetic", "n": 1})
    with pytest.raises(DataError, match="unknown sample field"):
        tools.run_backtest("sma_cross", sample={"kind": "synthetic", "path": "/etc/passwd"})
    with pytest.raises(ConfigError, match="unknown setting"):
        tools.run_backtest("sma_cross", sample={"kind": "synthetic", "n": 500}, settings={"levrage": 10})
    with pytest.raises(SecurityError):
        tools.run_backtest("../strategies/sma_cross.py")


def test_dataset_frames_are_cached_protected_and_fingerprinted_once(home):
    from qlm_kernel.workspace.data import load_dataset

    df = qlm.sample_data("synthetic", n=5000, seed=3)
    data_manager().register_frame(df, "prices")
    first = load_dataset("prices")
    second = load_dataset("prices")
    assert first is not second and first.index.equals(second.index)
    assert frame_fingerprint(first) == fingerprint_frame(first) == first.attrs["fingerprint"]
    first.loc[first.index[10], "close"] = -1.0  # a strategy editing its data in place
    assert load_dataset("prices")["close"].iloc[10] == df["close"].iloc[10]
    data_manager().register_frame(qlm.sample_data("synthetic", n=4000, seed=4), "prices", overwrite=True)
    assert len(load_dataset("prices")) == 4000  # a re-import is seen


def test_loaded_datasets_carry_their_stored_fingerprint(home):
    data_manager().register_frame(qlm.sample_data("synthetic", n=3000, seed=5), "p2")
    frame, name = resolve_data(None, dataset="p2")
    assert name == "p2" and frame_fingerprint(frame) == fingerprint_frame(frame)


def test_trades_summary_counts(home):
    res = qlm.backtest("donchian_breakout", qlm.sample_data("synthetic", n=5000, seed=1), record=False)
    summary = tools.trades_summary(res.trades)
    assert summary["count"] == len(res.trades) == summary["wins"] + summary["losses"]
    assert summary["long"] + summary["short"] == summary["count"] and summary["short"] > 0
    assert sum(summary["exit_reasons"].values()) == summary["count"]
    assert len(summary["last"]) == 5 and isinstance(summary["last"][0]["entry_time"], str)
    assert tools.trades_summary(res.trades.iloc[:0])["count"] == 0


def test_run_backtest_returns_the_ruin_warning(home):
    out = tools.run_backtest("donchian_breakout", sample={"kind": "btcusd"}, settings={"fill": "next_open"})
    assert out["stats"]["liquidated"] is True
    assert [w["code"] for w in out["warnings"]][:1] == ["LIQUIDATED"]
    calm = tools.run_backtest("sma_cross", sample={"kind": "synthetic", "n": 5000})
    assert calm["stats"]["liquidated"] is False
    assert all(w["code"] != "LIQUIDATED" for w in calm["warnings"])


# --- the server's tool list -------------------------------------------------------------------------


def test_the_server_builds_its_tool_list_and_schemas_once_per_change(monkeypatch) -> None:
    import asyncio

    from mcp.server.mcpserver import MCPServer

    from qlm_kernel.mcp.server import QLMServer

    built: list[int] = []
    original = MCPServer.list_tools

    async def counting(self):
        built.append(1)
        return await original(self)

    monkeypatch.setattr(MCPServer, "list_tools", counting)

    def first(x: int) -> int:
        """First tool."""
        return x

    def second(y: str = "a") -> str:
        """Second tool."""
        return y

    async def scenario() -> None:
        server = QLMServer("t")
        server.add_tool(first)
        one = await server.list_tools()
        assert [t.name for t in one] == ["first"] and "x" in one[0].input_schema["properties"]
        again = await server.list_tools()
        assert [t.model_dump() for t in again] == [t.model_dump() for t in one] and len(built) == 1
        schemas_before = await server.input_schemas()
        assert list(schemas_before) == ["first"] and await server.input_schemas() is schemas_before
        err = await server.call_tool("frist", {"x": 1})  # refused by the cached schemas
        assert err.is_error and "did you mean 'first'?" in err.content[0].text and len(built) == 1
        assert (await server.call_tool("first", {"x": 2})).structured_content == {"result": 2}
        assert len(built) == 1  # calls do not rebuild the tool list
        server.add_tool(second)  # a change: listed (and checked) at once
        assert [t.name for t in await server.list_tools()] == ["first", "second"] and len(built) == 2
        assert list(await server.input_schemas()) == ["first", "second"]
        server.remove_tool("first")
        assert [t.name for t in await server.list_tools()] == ["second"]
        assert "first" not in await server.input_schemas()

    asyncio.run(scenario())
