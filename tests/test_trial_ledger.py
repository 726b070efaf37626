"""The trial ledger: every variant tried, per strategy family and data fingerprint, in the store.

Real store files, real processes and a real MCP client: the count grows across two processes and an MCP
run, an optimization adds its trials, the deflated Sharpe counts them all and says since when; the family
rule keeps a renamed copy with small edits in the original's family and gives different code its own."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

import qlm_kernel as qlm
from qlm_kernel.store import Store
from qlm_kernel.store.ledger import FAMILY_SIMILARITY, code_similarity, normalized_code
from qlm_kernel.workspace.fingerprints import frame_fingerprint
from tests.mcp_helpers import http_client, serving, structured

SAMPLE = {"kind": "synthetic", "n": 1500, "seed": 11}
RUN = """
import sys
import qlm_kernel as qlm
qlm.backtest("sma_cross", sample={sample!r}, fast=int(sys.argv[1]), fees=0.001)
"""

ORIGINAL = '''"""SMA cross."""
from qlm_kernel import Strategy, indicators as ta


class Cross(Strategy):
    fast = 10
    slow = 50

    def signals(self, df):
        f, s = ta.sma(df["close"], self.fast), ta.sma(df["close"], self.slow)
        return ta.crossed_above(f, s), ta.crossed_below(f, s)
'''
RENAMED_COPY = ORIGINAL.replace("class Cross", "class MyCross").replace("slow = 50", "slow = 60") + "# x\n"
DIFFERENT = '''"""Breakout."""
from qlm_kernel import Strategy


class Breakout(Strategy):
    window = 20

    def signals(self, df):
        high = df["high"].rolling(self.window).max().shift(1)
        low = df["low"].rolling(self.window).min().shift(1)
        return df["close"] > high, df["close"] < low
'''


def test_variants_are_distinct_parameter_sets_and_settings(tmp_path: Path) -> None:
    with Store(tmp_path / "qlm.db") as store:
        one = {"params": {"fast": 5}, "settings": {"fees": 0.001}}
        out = store.note_trials("s", "fp", [one, one, {"params": {"fast": 6}, "settings": {"fees": 0.001}}],
                                source="python")
        assert out["variants"] == 2 and out["evaluations"] == 3 and out["family"] == "s"
        out = store.note_trials("s", "fp", [{"params": {"fast": 5}, "settings": {"fees": 0.002}}],
                                source="mcp")
        assert out["variants"] == 3  # other settings: another variant
        assert store.trial_count("other-data", strategy="s")["variants"] == 0  # counted per data
        assert store.trial_count("fp", strategy="never-seen") == {
            "family": "never-seen", "data_fingerprint": "fp", "variants": 0, "evaluations": 0, "since": None}
        with pytest.raises(qlm.QLMError):
            store.note_trials("s", "fp", [{"settings": {}}], source="python")
        assert store.trial_count("fp", strategy="s")["variants"] == 3  # the bad call wrote nothing


def test_a_renamed_copy_with_small_edits_keeps_its_family(tmp_path: Path) -> None:
    assert code_similarity(normalized_code(ORIGINAL), normalized_code(RENAMED_COPY)) >= FAMILY_SIMILARITY
    assert code_similarity(normalized_code(ORIGINAL), normalized_code(DIFFERENT)) < FAMILY_SIMILARITY
    assert normalized_code(ORIGINAL + "\n\n# a comment\n") == normalized_code(ORIGINAL)
    with Store(tmp_path / "qlm.db") as store:
        store.ensure_strategy_version("cross", ORIGINAL)
        store.note_trials("cross", "fp", [{"params": {"fast": 5}}], source="python", code=ORIGINAL)
        store.ensure_strategy_version("my_cross", RENAMED_COPY)
        joined = store.note_trials("my_cross", "fp", [{"params": {"fast": 7}}], source="python",
                                   code=RENAMED_COPY)
        assert joined["family"] == "cross" and joined["variants"] == 2
        assert joined["family_similarity"] >= FAMILY_SIMILARITY
        store.ensure_strategy_version("breakout", DIFFERENT)
        own = store.note_trials("breakout", "fp", [{"params": {"window": 20}}], source="python",
                                code=DIFFERENT)
        assert own["family"] == "breakout" and own["variants"] == 1
        # a later, very different version of the original stays in its family (families follow versions)
        later = store.note_trials("cross", "fp", [{"params": {"fast": 9}}], source="python", code=DIFFERENT)
        assert later["family"] == "cross" and later["variants"] == 3
        assert store.strategy_family("my_cross")["members"] == ["cross", "my_cross"]


@pytest.mark.slow
def test_the_count_grows_across_processes_an_mcp_run_and_a_job(tmp_path: Path, monkeypatch) -> None:
    home = tmp_path / "ws"
    env = {**os.environ, "QLM_HOME": str(home), "QLM_RECORD_RUNS": "1"}
    for fast in ("5", "7"):  # two processes
        done = subprocess.run([sys.executable, "-c", RUN.format(sample=SAMPLE), fast], env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
    fingerprint = frame_fingerprint(qlm.sample_data(**{k: v for k, v in SAMPLE.items()}))
    with Store(home / "qlm.db") as store:
        assert store.trial_count(fingerprint, strategy="sma_cross")["variants"] == 2

    async def mcp_run() -> dict:
        async with http_client(server) as client:
            return structured(await client.call_tool("run_backtest", {
                "strategy": "sma_cross", "sample": SAMPLE, "params": {"fast": 9},
                "settings": {"fees": 0.001}}))

    with serving(home) as server:
        out = asyncio.run(mcp_run())
    assert out["run_id"] is not None
    with Store(home / "qlm.db") as store:
        count = store.trial_count(fingerprint, strategy="sma_cross")
    assert count["variants"] == 3 and count["since"] is not None

    monkeypatch.setenv("QLM_HOME", str(home))
    monkeypatch.setenv("QLM_RECORD_RUNS", "1")
    opt = qlm.optimize("sma_cross", sample=SAMPLE, space={"fast": [5, 6, 8]}, fees=0.001, record=True)
    report = qlm.sanity.deflated_sharpe(opt)
    assert report.numbers["job_trials"] == 3
    assert report.numbers["n_trials"] == report.numbers["ledger_variants"] == 5  # fast 5, 6, 7, 8, 9
    assert "5 variants of 'sma_cross' tried on this data since" in report.verdict
    alone = qlm.sanity.deflated_sharpe(opt, use_ledger=False)
    assert alone.numbers["n_trials"] == 3 and alone.numbers["dsr"] >= report.numbers["dsr"]
