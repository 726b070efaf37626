"""OptimizationProgress: follows the next job, shows its progress and best, cancels it, and pushes
throttled, thread-safe updates (bus events arrive on dispatcher threads)."""

from __future__ import annotations

import time

import pytest

import qlm_kernel as qlm
from qlm_kernel.errors import ConfigError
from qlm_kernel.events import publish
from qlm_kernel.widgets import OptimizationProgress
from tests.widget_helpers import BIG_SPACE, BROKEN, SMALL_SPACE, count_sends


@pytest.fixture(scope="module")
def df():
    return qlm.sample_data("synthetic", n=2_000, seed=0)


def test_follows_the_next_job_to_100_percent(home, df) -> None:
    widget = OptimizationProgress()
    assert widget.status == "waiting" and widget.job_id == ""
    res = qlm.optimize("sma_cross", df, SMALL_SPACE, method="grid")
    widget.wait_idle()
    assert widget.job_id == res.job_id
    assert (widget.status, widget.done, widget.total, widget.percent) == ("done", 12, 12, 100.0)
    assert widget.kind == "grid" and widget.objective == "sharpe" and widget.strategy == "SmaCross"
    assert widget.best_params == res.best_params
    assert widget.best_value == pytest.approx(res.best_value)
    assert widget.history[-1] == [12, pytest.approx(res.best_value)]
    assert widget.rate is not None and widget.rate > 0
    widget.close()


def test_sticks_to_its_job_unless_following_all(df) -> None:
    first, every = OptimizationProgress(), OptimizationProgress(follow="all")
    a = qlm.optimize("sma_cross", df, SMALL_SPACE, method="grid", record=False)
    b = qlm.optimize("sma_cross", df, {"fast": [5, 10], "slow": [40]}, method="grid", record=False)
    first.wait_idle(), every.wait_idle()
    assert first.total == 12 and first.best_params == a.best_params
    assert every.total == 2 and every.status == "done" and every.best_params == b.best_params
    assert first.job_id != every.job_id
    with pytest.raises(ConfigError):
        OptimizationProgress(follow="sometimes")
    first.close(), every.close()


def test_a_stored_job_is_shown_from_the_store(home, df) -> None:
    res = qlm.optimize("sma_cross", df, SMALL_SPACE, method="grid")
    widget = OptimizationProgress(res.job_id)
    assert (widget.status, widget.done, widget.total, widget.kind) == ("done", 12, 12, "grid")
    assert widget.best_params == res.best_params and widget.objective == "sharpe"
    widget.close()


def test_cancel_message_from_the_front_end_stops_a_background_job(home, df) -> None:
    widget = OptimizationProgress.start("sma_cross", df, BIG_SPACE, method="grid")
    deadline = time.monotonic() + 30
    while widget.done == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert widget.status == "running" and widget.done > 0
    widget._handle_custom_msg({"type": "cancel"}, [])  # what the Cancel button sends over the comm
    result = widget.result(timeout=60)
    widget.wait_idle()
    assert result.status == "cancelled"
    assert widget.status == "cancelled" and 0 < widget.done < widget.total
    assert qlm.optimize.status(widget.job_id)["status"] == "cancelled"
    assert widget.cancel() is False  # nothing left to cancel
    widget.close()


def test_a_failing_job_shows_its_error(tmp_path, df) -> None:
    path = tmp_path / "broken.py"
    path.write_text(BROKEN)
    widget = OptimizationProgress()
    with pytest.raises(qlm.QLMError):
        qlm.optimize(str(path), df, SMALL_SPACE, method="grid", record=False)
    widget.wait_idle()
    assert widget.status == "failed"
    assert widget.error["code"] == "STRATEGY_RUNTIME"
    with pytest.raises(ConfigError):
        widget.result()
    widget.close()


def test_updates_are_throttled_and_the_final_state_arrives() -> None:
    widget = OptimizationProgress()
    sends = count_sends(widget)
    publish("job.created", {"job_id": "synthetic01", "kind": "grid", "total": 2_000})
    started = time.monotonic()
    for done in range(1, 2_001):
        publish(
            "job.progress",
            {
                "job_id": "synthetic01",
                "done": done,
                "total": 2_000,
                "best_value": done / 1000,
                "best_params": {"x": done},
            },
        )
        if done % 200 == 0:
            time.sleep(0.1)  # a job that runs for about a second
    publish(
        "job.finished",
        {
            "job_id": "synthetic01",
            "done": 2_000,
            "total": 2_000,
            "best_value": 2.0,
            "best_params": {"x": 2_000},
        },
    )
    widget.wait_idle()
    seconds = time.monotonic() - started
    assert widget.status == "done" and widget.done == 2_000 and widget.best_params == {"x": 2000}
    # 2,000 events became a handful of batched messages: at most ~4 a second, plus created/finished
    assert len(sends) <= 4 * seconds + 6, (len(sends), seconds)
    assert widget._throttled.coalesced > 1_000
    widget.close()


def test_events_of_other_jobs_and_after_close_are_ignored() -> None:
    widget = OptimizationProgress()
    publish("job.progress", {"job_id": "nobody", "done": 5, "total": 10})
    widget.wait_idle()
    assert widget.done == 0 and widget.status == "waiting"
    widget.close()
    publish("job.created", {"job_id": "later", "kind": "grid", "total": 3})
    time.sleep(0.1)
    assert widget.job_id == ""
