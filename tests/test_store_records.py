"""Store records: datasets, strategy versions, runs and config round-trip as plain dicts."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from qlm_kernel.errors import ConfigError, StrategyError
from qlm_kernel.store import Store, code_sha256


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "qlm.db") as s:
        yield s


def test_record_dataset_accepts_datamanager_metadata_and_upserts(store):
    meta = {"name": "eurusd", "format_version": 1, "source": "/x/eur.csv", "file": "/h/data/eurusd.parquet",
            "fingerprint": "f1", "rows": 2, "start": "2020-01-01T00:00:00+00:00",
            "end": "2020-01-02T00:00:00+00:00", "columns": ["open", "high", "low", "close", "volume"]}
    rec = store.record_dataset(meta)
    assert rec["name"] == "eurusd" and rec["path"] == "/h/data/eurusd.parquet" and rec["rows"] == 2
    assert rec["schema"] == {"columns": meta["columns"]} and rec["meta"] == meta
    assert (rec["start"], rec["end"]) == (meta["start"], meta["end"])
    again = store.record_dataset({**meta, "fingerprint": "f2", "rows": 3})
    assert again["id"] == rec["id"] and again["fingerprint"] == "f2" and again["rows"] == 3
    assert again["created_at"] == rec["created_at"] and again["updated_at"] >= rec["updated_at"]
    store.record_dataset({"name": "aaa", "path": "/p.parquet", "rows": 1})
    assert [d["name"] for d in store.list_datasets()] == ["aaa", "eurusd"]
    assert store.get_dataset("nope") is None
    assert store.delete_dataset("aaa") is True and store.delete_dataset("aaa") is False
    with pytest.raises(ConfigError):
        store.record_dataset({"rows": 1})


def test_every_strategy_write_is_a_new_version(store):
    v1 = store.save_strategy_version("sma.py", "a = 1\n")
    v2 = store.save_strategy_version("sma.py", "a = 1\n", author="assistant", message="same code")
    v3 = store.save_strategy_version("sma.py", "a = 2\n", author="healer")
    assert [v["version"] for v in (v1, v2, v3)] == [1, 2, 3]
    assert v1["sha256"] == v2["sha256"] == code_sha256("a = 1\n") != v3["sha256"]
    assert v1["code"] == "a = 1\n" and v2["message"] == "same code" and v3["author"] == "healer"
    history = store.strategy_history("sma.py")
    assert [h["version"] for h in history] == [1, 2, 3] and "code" not in history[0]
    assert store.strategy_history("sma.py", include_code=True)[2]["code"] == "a = 2\n"
    assert store.get_strategy_version(v2["id"])["version"] == 2
    assert store.get_strategy_version(("sma.py", 3))["code"] == "a = 2\n"
    assert store.get_strategy_version(("sma.py", 9)) is None and store.get_strategy_version(999) is None
    assert store.latest_strategy_version("sma.py")["id"] == v3["id"]
    assert store.latest_strategy_version("other.py") is None and store.strategy_history("other.py") == []


def test_ensure_strategy_version_only_adds_changed_code(store):
    first = store.ensure_strategy_version("rsi.py", "x = 1")
    same = store.ensure_strategy_version("rsi.py", "x = 1")
    changed = store.ensure_strategy_version("rsi.py", "x = 2", author="assistant")
    assert first["created"] and not same["created"] and changed["created"]
    assert same["id"] == first["id"] and changed["version"] == 2
    store.save_strategy_version("b.py", "y")
    listing = store.list_strategies()
    assert [s["name"] for s in listing] == ["b.py", "rsi.py"]
    assert listing[1]["versions"] == 2 and listing[1]["latest_version"] == 2
    assert listing[1]["latest_author"] == "assistant" and listing[1]["latest_version_id"] == changed["id"]


@pytest.mark.parametrize("kwargs", [{"author": "robot"}, {"code": b"bytes"}, {"name": ""},
                                    {"message": 3}])
def test_strategy_version_arguments_are_checked(store, kwargs):
    args = {"name": "s.py", "code": "x", **kwargs}
    with pytest.raises(ConfigError) as info:
        store.save_strategy_version(args.pop("name"), args.pop("code"), **args)
    assert info.value.hint


def test_record_and_list_runs(store):
    series_like = {"sharpe": math.nan, "final_value": 10_500.0, "profit_factor": math.inf}
    ok = store.record_run(strategy="sma.py", dataset="eurusd", data_fingerprint="fp", params={"fast": 10},
                          settings={"fees": 0.001}, stats=series_like, duration_s=0.01, source="cli",
                          code="a = 1\n")
    err = store.record_run(strategy="sma.py", params={"fast": 11},
                           error=StrategyError("boom", hint="fix it", line=3), source="mcp")
    other = store.record_run(strategy="rsi.py", stats={"sharpe": 1.0})
    run = store.get_run(ok)
    assert run["params"] == {"fast": 10} and run["settings"] == {"fees": 0.001} and run["source"] == "cli"
    assert math.isnan(run["stats"]["sharpe"]) and run["stats"]["profit_factor"] == math.inf
    assert run["strategy_version_id"] == store.latest_strategy_version("sma.py")["id"]
    failed = store.get_run(err)
    assert failed["status"] == "error" and failed["error"]["type"] == "StrategyError"
    assert failed["error"]["context"] == {"line": 3} and failed["stats"] is None
    assert [r["id"] for r in store.list_runs()] == [other, err, ok]
    assert [r["id"] for r in store.list_runs(strategy="sma.py")] == [err, ok]
    assert [r["id"] for r in store.list_runs(status="error")] == [err]
    assert [r["id"] for r in store.list_runs(limit=1)] == [other]
    assert [r["id"] for r in store.list_runs(limit=1, offset=1)] == [err]
    assert store.get_run(9999) is None
    # the same code again reuses the version
    again = store.record_run(strategy="sma.py", code="a = 1\n")
    assert store.get_run(again)["strategy_version_id"] == run["strategy_version_id"]


def test_record_run_converts_numpy_and_pandas_values(store):
    np = pytest.importorskip("numpy")
    pd = pytest.importorskip("pandas")
    stats = pd.Series({"sharpe": np.float64(1.5), "n_trades": np.int64(4),
                       "start": pd.Timestamp("2020-01-01", tz="UTC")})
    rid = store.record_run(strategy="s.py", params={"fast": np.int64(5), "w": np.array([1, 2])}, stats=stats,
                           duration_s=np.float64(0.5))
    run = store.get_run(rid)
    assert run["params"] == {"fast": 5, "w": [1, 2]} and run["duration_s"] == 0.5
    assert run["stats"] == {"sharpe": 1.5, "n_trades": 4, "start": "2020-01-01T00:00:00+00:00"}


@pytest.mark.parametrize("fields", [{}, {"strategy": "s", "bogus": 1}, {"strategy": "s", "status": "meh"},
                                    {"strategy": "s", "duration_s": math.nan},
                                    {"strategy": "s", "strategy_version_id": 12345}])
def test_record_run_rejects_bad_fields(store, fields):
    with pytest.raises(ConfigError) as info:
        store.record_run(**fields)
    assert info.value.hint
    assert store.list_runs() == []


def test_config_values_round_trip(store):
    assert store.get_config("missing", default=7) == 7
    store.set_config("backtest.defaults", {"fees": 0.001, "fill": "close"})
    store.set_config("n", 3)
    store.set_config("none", None)
    store.set_config("n", 4)
    assert store.get_config("backtest.defaults") == {"fees": 0.001, "fill": "close"}
    assert store.get_config("n") == 4 and store.get_config("none", default=1) is None
    expected = {"backtest.defaults": {"fees": 0.001, "fill": "close"}, "n": 4, "none": None}
    assert store.list_config() == expected
    assert store.delete_config("n") and not store.delete_config("n")


def test_timestamps_are_utc_iso(store):
    rid = store.record_run(strategy="s.py")
    created = datetime.fromisoformat(store.get_run(rid)["created_at"])
    assert created.tzinfo is not None and abs((datetime.now(UTC) - created).total_seconds()) < 60
