"""``research_loop`` / ``qlm research``: train/test split, the best parameters tested out of sample, PBO
and the deflated Sharpe of the selection, and a verdict by the stated rule."""

from __future__ import annotations

import json

import pytest

import qlm_kernel as qlm
from qlm_kernel.cli import main
from qlm_kernel.errors import ConfigError
from qlm_kernel.session import research_loop
from qlm_kernel.session.research import split_train_test, verdict_sentence

SAMPLE = {"kind": "synthetic", "n": 20_000, "seed": 4}
SPACE = {"fast": [5, 10, 20], "slow": [50, 100, 150]}


def test_the_verdict_follows_its_stated_rule() -> None:
    real, text = verdict_sentence(120, "sharpe", 0.9, 0.4, 0.2, True, 0.97)
    assert real and "may be real" in text and "best of 120 variants" in text
    for oos, pbo_value, dsr_passed, reason in ((-0.2, 0.2, True, "loses out of sample"),
                                              (0.4, 0.71, True, "PBO 0.71"),
                                              (0.4, 0.2, False, "not significant once 120 tries")):
        real, text = verdict_sentence(120, "sharpe", 0.9, oos, pbo_value, dsr_passed, 0.5)
        assert not real and "this edge is not real" in text and reason in text
    real, text = verdict_sentence(120, "sharpe", 0.9, None, None, False, None)
    assert not real and "n/a" in text


def test_the_loop_matches_its_parts_computed_directly(home) -> None:
    found = research_loop("sma_cross", sample=SAMPLE, space=SPACE, train_fraction=0.6, fees=0.001,
                          record=False)
    frame = qlm.sample_data("synthetic", n=SAMPLE["n"], seed=SAMPLE["seed"])
    train, test = split_train_test(frame, 0.6)
    assert found["train"]["bars"] == len(train) == 12_000 and found["test"]["bars"] == len(test) == 8_000
    opt = qlm.optimize("sma_cross", train, SPACE, method="grid", fees=0.001, record=False)
    assert found["best_params"] == opt.best_params and found["variants"] == 9
    oos = qlm.backtest("sma_cross", test, fees=0.001, record=False, **opt.best_params)
    assert found["out_of_sample"]["sharpe"] == pytest.approx(oos.stats["sharpe"])
    assert found["pbo"]["numbers"]["pbo"] == pytest.approx(qlm.sanity.pbo(opt).numbers["pbo"])
    assert found["deflated_sharpe"]["numbers"]["dsr"] == pytest.approx(
        qlm.sanity.deflated_sharpe(opt).numbers["dsr"])
    expected, _ = verdict_sentence(9, "sharpe", opt.best_value, oos.stats["sharpe"],
                                   found["pbo"]["numbers"]["pbo"], found["deflated_sharpe"]["passed"],
                                   found["deflated_sharpe"]["numbers"]["dsr"])
    assert found["may_be_real"] is expected and found["verdict"].startswith("the best of 9 variants")
    with pytest.raises(ConfigError):
        research_loop("sma_cross", sample=SAMPLE, space=SPACE, train_fraction=0.99)


def test_qlm_research_prints_the_verdict(home, capsys) -> None:
    args = ["research", "sma_cross", "--sample", "synthetic", "--n", "20000", "--seed", "4",
            "--space", "fast=5,10,20", "--space", "slow=50,100,150", "--fees", "0.001"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "9 variants optimized on 14,000 bars" in text and "verdict: the best of 9 variants" in text
    assert main([*args, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["variants"] == 9
