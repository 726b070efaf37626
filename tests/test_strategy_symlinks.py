"""A workspace strategy file that is a symlink is never run: by name over MCP, the session API, by path,
or while listing strategies — the same SecurityError SYMLINK that strategy reads and writes raise."""

from __future__ import annotations

import pytest

from qlm_kernel import session
from qlm_kernel.errors import SecurityError
from qlm_kernel.strategy import load_strategy, resolve_strategy
from qlm_kernel.workspace.strategies import read_strategy

SAMPLE = {"kind": "synthetic", "n": 300, "seed": 0}

STRATEGY = '''
from pathlib import Path
from qlm_kernel import Param, Signals, Strategy

Path({marker!r}).write_text("ran")  # proof the file was executed


class Cross(Strategy):
    fast = Param(5)

    def signals(self, data):
        close = data["close"]
        up = close > close.rolling(self.fast).mean()
        return Signals(entry_long=up.to_numpy(), exit_long=(~up).to_numpy())
'''


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A fresh QLM_HOME with a link ``link.py`` to a strategy outside it; yields (strategies dir, marker)."""
    monkeypatch.setenv("QLM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("QLM_RECORD_RUNS", "0")
    strategies = tmp_path / "home" / "strategies"
    strategies.mkdir(parents=True)
    outside = tmp_path / "elsewhere" / "evil.py"
    outside.parent.mkdir()
    marker = tmp_path / "ran.txt"
    outside.write_text(STRATEGY.format(marker=str(marker)))
    (strategies / "link.py").symlink_to(outside)
    return strategies, marker


def _assert_symlink_refused(call, marker) -> None:
    with pytest.raises(SecurityError) as info:
        call()
    assert info.value.code == "SYMLINK" and "regular file" in info.value.hint
    assert not marker.exists()  # refused before the linked file ran


def test_running_a_linked_strategy_by_name_over_mcp_is_refused(workspace):
    from qlm_kernel.mcp import tools

    _, marker = workspace
    _assert_symlink_refused(lambda: tools.run_backtest(strategy="link.py", sample=SAMPLE), marker)
    _assert_symlink_refused(lambda: session.strategies.strategy_file("link.py"), marker)


def test_running_a_linked_strategy_through_the_session_api_is_refused(workspace):
    strategies, marker = workspace
    _assert_symlink_refused(lambda: session.backtest("link.py", sample=SAMPLE), marker)
    _assert_symlink_refused(lambda: session.backtest("link", sample=SAMPLE), marker)
    _assert_symlink_refused(lambda: resolve_strategy("link.py:Cross"), marker)
    _assert_symlink_refused(lambda: load_strategy(strategies / "link.py"), marker)  # by path too
    _assert_symlink_refused(lambda: read_strategy("link.py"), marker)  # the read path's rule, same code


def test_listing_strategies_shows_the_link_as_refused_without_running_it(workspace):
    _, marker = workspace
    entries = {e["name"]: e for e in session.strategies.list_strategies()}
    assert entries["link"]["error"]["code"] == "SYMLINK"
    assert "sma_cross" in entries and "error" not in entries["sma_cross"]
    assert not marker.exists()


def test_a_dangling_link_does_not_fall_through_to_the_example_of_that_name(workspace):
    strategies, _ = workspace
    (strategies / "sma_cross.py").symlink_to(strategies / "missing.py")
    with pytest.raises(SecurityError) as info:
        session.backtest("sma_cross", sample=SAMPLE)
    assert info.value.code == "SYMLINK"


def test_the_same_file_as_a_regular_workspace_file_runs(workspace):
    from qlm_kernel.mcp import tools

    strategies, marker = workspace
    (strategies / "real.py").write_text((strategies / "link.py").read_text())
    out = tools.run_backtest(strategy="real.py", sample=SAMPLE)
    assert out["strategy"] == "Cross" and marker.read_text() == "ran"
    assert session.backtest("real", sample=SAMPLE).strategy_name == "Cross"
