"""`qlm.download` / `qlm data download|update` against the local fake exchange (tests/fake_exchange.py).

No public endpoint is contacted: every ccxt request goes to the fake on 127.0.0.1 (``api_url``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import qlm_kernel as qlm
from qlm_kernel.cli import main
from qlm_kernel.errors import DataError, SecurityError
from qlm_kernel.session import data_manager, download, update_dataset

SERVER = Path(__file__).with_name("fake_exchange.py")
HOUR = 3_600_000
T0 = 1_700_000_000_000 // HOUR * HOUR
NAME = "binance_BTC-USDT_1h"


@pytest.fixture
def fake(home):
    """A fresh fake exchange; yields (base url, control function)."""
    proc = subprocess.Popen([sys.executable, str(SERVER), "secret", "key"], stdout=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{int(proc.stdout.readline().split()[1])}"

        def control(path: str, body: dict | None = None):
            data = None if body is None else json.dumps(body).encode()
            with urllib.request.urlopen(urllib.request.Request(base + path, data=data), timeout=5) as resp:
                return json.loads(resp.read())

        yield base, control
    finally:
        proc.kill()
        proc.wait()


def _opts(base: str) -> dict:
    return {"api_url": base, "rateLimit": 1}


def _klines_requests(control) -> list[dict]:
    return [r for r in control("/__requests") if r["path"] == "/api/v3/klines"]


def _get(base, control, *, since=T0, until=T0 + 1200 * HOUR, **kw):
    args = {"limit": 500, "backoff": 0.01, "exchange_options": _opts(base)}
    return download("binance", ["BTC/USDT"], "1h", since=since, until=until, **{**args, **kw})


def _expected(count: int, skip: set[int] = frozenset()) -> pd.DataFrame:
    k = np.array([i for i in range(count) if i not in skip])
    o = 20_000.0 + 10 * k
    idx = pd.DatetimeIndex(pd.to_datetime(T0 + k * HOUR, unit="ms", utc=True), name="time")
    columns = {"open": o, "high": o + 30, "low": o - 30, "close": o + 10, "volume": 12.5}
    return pd.DataFrame(columns, index=idx)


def _check_stored(expected: pd.DataFrame) -> None:
    frame = data_manager().load(NAME)
    assert frame.index.is_unique and frame.index.is_monotonic_increasing
    pd.testing.assert_frame_equal(frame[list(expected.columns)], expected, check_freq=False,
                                  check_index_type=False)


def test_pages_across_several_requests_and_stores_one_validated_dataset(fake):
    base, control = fake
    control("/__control", {"klines": {"start": T0, "count": 1200}})
    seen = []
    result = _get(base, control, progress=seen.append)
    (report,) = result["datasets"]
    assert report["name"] == NAME and report["rows"] == 1200 and report["rows_added"] == 1200
    assert report["gaps"] == [] and report["duplicates_dropped"] == 0 and report["resumed_from"] is None
    starts = [int(r["params"]["startTime"]) for r in _klines_requests(control)]
    assert starts == [T0, T0 + 500 * HOUR, T0 + 1000 * HOUR]  # next page = last candle + one timeframe
    assert all(r["params"]["limit"] == "500" for r in _klines_requests(control))
    _check_stored(_expected(1200))
    meta = data_manager().info(NAME)
    assert meta["download"] == {"exchange": "binance", "symbol": "BTC/USDT", "timeframe": "1h"}
    assert [p["done"] for p in seen] == [500, 1000, 1200] and seen[-1]["total"] == 1200
    assert seen[-1]["eta_seconds"] == 0 and all("eta_seconds" in p for p in seen)


def test_rate_limit_429_is_retried_with_backoff(fake):
    base, control = fake
    control("/__control", {"klines": {"start": T0, "count": 1200}, "faults": [
        {"method": "GET", "path": "/api/v3/klines", "kind": "status", "status": 429, "times": 2, "skip": 1}]})
    (report,) = _get(base, control)["datasets"]
    assert report["retries"] == 2 and report["requests"] == 5 and report["rows"] == 1200
    _check_stored(_expected(1200))


def test_retries_run_out_with_a_clear_error_then_a_rerun_resumes(fake):
    base, control = fake
    control("/__control", {"klines": {"start": T0, "count": 1200}, "faults": [
        {"method": "GET", "path": "/api/v3/klines", "kind": "status", "status": 503, "times": 3, "skip": 1}]})
    with pytest.raises(DataError) as info:
        _get(base, control, max_retries=2)
    err = info.value
    assert err.code == "DOWNLOAD_FAILED" and "BTC/USDT" in err.message
    last = pd.Timestamp(T0 + 499 * HOUR, unit="ms", tz="UTC").isoformat()
    assert err.context["last_stored"] == last and last in err.message and err.hint
    assert data_manager().info(NAME)["rows"] == 500  # the first page was kept
    (report,) = _get(base, control)["datasets"]
    assert report["resumed_from"] == last and report["rows_added"] == 700
    assert report["duplicates_dropped"] == 0
    assert int(_klines_requests(control)[-2]["params"]["startTime"]) == T0 + 500 * HOUR
    _check_stored(_expected(1200))


def test_interrupted_download_resumes_to_the_same_result(fake):
    base, control = fake
    control("/__control", {"klines": {"start": T0, "count": 1200}})

    def interrupt(info):
        if info["done"] >= 1000:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _get(base, control, progress=interrupt)
    assert data_manager().info(NAME)["rows"] == 1000
    (again,) = _get(base, control)["datasets"]
    assert again["rows_added"] == 200 and again["rows"] == 1200
    (third,) = _get(base, control)["datasets"]  # nothing new: nothing written twice
    assert third["rows_added"] == 0 and third["rows"] == 1200
    _check_stored(_expected(1200))


def test_a_time_limit_keeps_what_it_fetched_and_a_second_call_completes(fake):
    base, control = fake
    control("/__control", {"klines": {"start": T0, "count": 1200}})
    stopped = _get(base, control, time_limit=0.0)  # past the deadline after the first page
    (report,) = stopped["datasets"]
    assert stopped["complete"] is False and report["complete"] is False
    assert report["rows_added"] == 500 and data_manager().info(NAME)["rows"] == 500
    done = _get(base, control, time_limit=60)
    assert done["complete"] is True and done["datasets"][0]["rows_added"] == 700
    _check_stored(_expected(1200))


def test_gap_reported_not_filled_and_duplicate_candles_dropped(fake):
    base, control = fake
    control("/__control", {"klines": {"start": T0, "count": 1200, "gaps": [[100, 105]],
                                      "duplicates": [300, 499, 500, 1199]}})
    (report,) = _get(base, control)["datasets"]
    assert report["gaps"] == [{"from": pd.Timestamp(T0 + 99 * HOUR, unit="ms", tz="UTC").isoformat(),
                               "to": pd.Timestamp(T0 + 105 * HOUR, unit="ms", tz="UTC").isoformat(),
                               "missing": 5}]
    assert report["gaps_total_missing"] == 5
    assert report["duplicates_dropped"] == 4 and report["rows"] == 1195
    _check_stored(_expected(1200, skip=set(range(100, 105))))


def test_update_continues_after_the_last_bar(fake):
    base, control = fake
    control("/__control", {"klines": {"start": T0, "count": 1200}})
    _get(base, control, until=T0 + 600 * HOUR)
    assert data_manager().info(NAME)["rows"] == 600
    report = update_dataset(NAME, until=T0 + 1200 * HOUR, exchange_options=_opts(base), limit=500)
    assert report["resumed_from"] == pd.Timestamp(T0 + 599 * HOUR, unit="ms", tz="UTC").isoformat()
    assert report["rows_added"] == 600 and report["rows"] == 1200
    assert int(_klines_requests(control)[-2]["params"]["startTime"]) == T0 + 600 * HOUR
    _check_stored(_expected(1200))
    data_manager().register_frame(_expected(10), "plain")
    with pytest.raises(DataError) as info:
        update_dataset("plain")
    assert info.value.code == "NOT_DOWNLOADED"


def test_to_now_stops_at_the_end_of_history_and_keeps_no_unclosed_bar(fake):
    base, control = fake
    now = int(time.time() * 1000)
    start = now // HOUR * HOUR - 10 * HOUR  # bar 10 is the current, still open hour
    control("/__control", {"klines": {"start": start, "count": 11}})
    result = qlm.download("binance", "BTC/USDT", since=start, exchange_options=_opts(base), backoff=0.01)
    (report,) = result["datasets"]
    assert report["rows"] == 10 and report["unclosed_dropped"] == 1
    assert report["end"] == pd.Timestamp(start + 9 * HOUR, unit="ms", tz="UTC").isoformat()


def test_cli_download_and_update_json(fake, capsys, monkeypatch):
    base, control = fake
    control("/__control", {"klines": {"start": T0, "count": 1200, "gaps": [[10, 12]]}})
    iso = lambda ms: pd.Timestamp(ms, unit="ms", tz="UTC").isoformat()  # noqa: E731
    code = main(["data", "download", "binance", "BTC/USDT", "--timeframe", "1h", "--since", iso(T0),
                 "--until", iso(T0 + 700 * HOUR), "--exchange-url", base, "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["exchange"] == "binance" and out["timeframe"] == "1h"
    (report,) = out["datasets"]
    assert report["name"] == NAME and report["rows"] == 698 and report["gaps"][0]["missing"] == 2
    monkeypatch.setenv("QLM_EXCHANGE_URL", base)
    code = main(["data", "update", NAME, "--until", iso(T0 + 1200 * HOUR), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["rows_added"] == 500 and report["rows"] == 1198
    code = main(["data", "download", "binance", "ETH/USDT", "--exchange-url", base])
    assert code != 0 and "since" in capsys.readouterr().err


def test_naming_rule_and_plain_http_refused(home):
    from qlm_kernel.data.download import dataset_name

    assert dataset_name("binance", "BTC/USDT", "1h") == "binance_BTC-USDT_1h"
    assert dataset_name("bybit", "BTC/USDT:USDT", "15m") == "bybit_BTC-USDT-USDT_15m"
    with pytest.raises(SecurityError):
        download("binance", ["BTC/USDT"], since="2021-01-01", exchange_options={"api_url": "http://example.com"})


def test_an_earlier_since_backfills_before_the_first_stored_bar_and_reports_the_join_gap(fake):
    base, control = fake
    control("/__control", {"klines": {"start": T0, "count": 1200, "gaps": [[595, 600]]}})
    _get(base, control, since=T0 + 600 * HOUR)
    assert data_manager().info(NAME)["rows"] == 600
    asked = len(_klines_requests(control))
    (report,) = _get(base, control)["datasets"]  # since=T0: the 600 hours before the first stored bar
    assert report["backfilled"] == 595 and report["rows_added"] == 595 and report["rows"] == 1195
    assert report["gaps"] == [{"from": pd.Timestamp(T0 + 594 * HOUR, unit="ms", tz="UTC").isoformat(),
                               "to": pd.Timestamp(T0 + 600 * HOUR, unit="ms", tz="UTC").isoformat(),
                               "missing": 5}]  # the exchange's hole just before the stored bars
    assert report["complete"] is True and report["backfill_pending_until"] is None
    starts = [int(r["params"]["startTime"]) for r in _klines_requests(control)[asked:]]
    assert starts == [T0, T0 + 500 * HOUR]  # the backfill's two pages; after the last bar is `until`
    _check_stored(_expected(1200, skip=set(range(595, 600))))
    assert "backfill_until" not in data_manager().info(NAME)["download"]
    (again,) = _get(base, control)["datasets"]  # nothing before or after: nothing written twice
    assert again["rows_added"] == again["backfilled"] == 0 and again["rows"] == 1195


def test_an_interrupted_backfill_is_resumed_by_update_and_leaves_no_hole(fake):
    base, control = fake
    control("/__control", {"klines": {"start": T0, "count": 1200}})
    _get(base, control, since=T0 + 600 * HOUR)
    stopped = _get(base, control, time_limit=0.0)  # past the deadline after the backfill's first page
    (report,) = stopped["datasets"]
    assert stopped["complete"] is False and report["backfilled"] == 500 and report["rows"] == 1100
    until = T0 + 600 * HOUR
    assert report["backfill_pending_until"] == pd.Timestamp(until, unit="ms", tz="UTC").isoformat()
    assert data_manager().info(NAME)["download"]["backfill_until"] == until
    asked = len(_klines_requests(control))
    resumed = update_dataset(NAME, until=T0 + 1200 * HOUR, exchange_options=_opts(base), limit=500)
    starts = [int(r["params"]["startTime"]) for r in _klines_requests(control)[asked:]]
    assert starts == [T0 + 500 * HOUR]  # after the last backfilled bar, not from the start again
    assert resumed["backfilled"] == 100 and resumed["rows"] == 1200 and resumed["gaps"] == []
    assert resumed["backfill_pending_until"] is None
    assert "backfill_until" not in data_manager().info(NAME)["download"]
    _check_stored(_expected(1200))
