"""check_memory refuses work that would not fit, before anything is allocated."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from qlm_kernel.data import DataManager, check_memory, load_ohlcv, sample_data
from qlm_kernel.data.memory import ENV_LIMIT, SAFETY_MIN_BYTES, memory_budget
from qlm_kernel.errors import ConfigError, QLMSystemError

GIB = 1024**3


def test_fits_returns_the_budget():
    budget = check_memory(1000, available=64 * GIB)
    assert 0 < budget < 64 * GIB  # the safety margin is kept back


def test_refusal_via_available_override():
    with pytest.raises(QLMSystemError) as info:
        check_memory(2 * GIB, "a big job", available=2 * GIB)  # the margin makes 2 GiB not enough
    err = info.value
    assert err.code == "MEMORY_LIMIT"
    assert "a big job" in err.message and "needs about 2.0 GiB" in err.message
    assert err.context["needed_bytes"] == 2 * GIB
    assert err.context["margin_bytes"] >= SAFETY_MIN_BYTES
    assert err.hint and "free memory" in err.hint
    assert json.loads(err.to_json())["context"]["what"] == "a big job"


def test_env_limit_caps_the_budget(monkeypatch):
    monkeypatch.setenv(ENV_LIMIT, "1000000")
    assert memory_budget(available=64 * GIB)["budget"] == 1_000_000
    check_memory(999_999, available=64 * GIB)
    with pytest.raises(QLMSystemError) as info:
        check_memory(1_000_001, available=64 * GIB)
    assert ENV_LIMIT in info.value.message and ENV_LIMIT in info.value.hint


def test_bad_env_value_is_a_config_error(monkeypatch):
    monkeypatch.setenv(ENV_LIMIT, "lots")
    with pytest.raises(ConfigError) as info:
        check_memory(1)
    assert info.value.hint


def test_loader_checks_memory_before_reading(tmp_path, monkeypatch):
    path = tmp_path / "big.csv"
    sample_data(n=20_000).to_csv(path)
    parquet = tmp_path / "big.parquet"
    sample_data(n=20_000).to_parquet(parquet)
    monkeypatch.setenv(ENV_LIMIT, "100000")
    for target in (path, parquet):
        with pytest.raises(QLMSystemError) as info:
            load_ohlcv(target)
        assert info.value.code == "MEMORY_LIMIT" and str(target) in info.value.message
    with pytest.raises(QLMSystemError):
        sample_data(n=1_000_000)
    monkeypatch.delenv(ENV_LIMIT)
    assert len(load_ohlcv(path)) == 20_000


def test_manager_load_is_guarded(tmp_path, monkeypatch):
    dm = DataManager(tmp_path)
    dm.register_frame(sample_data(n=5000), "s")
    monkeypatch.setenv(ENV_LIMIT, "1000")
    with pytest.raises(QLMSystemError):
        dm.load("s")
    monkeypatch.delenv(ENV_LIMIT)
    assert isinstance(dm.load("s"), pd.DataFrame)
