"""HealingTrace (live and from a report) and EventLog (pattern, filter, bound, clear, many threads)."""

from __future__ import annotations

import threading

import pytest

import qlm_kernel as qlm
from qlm_kernel.errors import ConfigError
from qlm_kernel.events import publish
from qlm_kernel.widgets import EventLog, HealingTrace
from qlm_kernel.widgets.filters import topic_filter
from qlm_kernel.workspace.strategies import write_strategy
from tests.widget_helpers import BROKEN, count_sends, scripted_model

HEALED_KINDS = ["run", "diagnose", "prompt", "reply", "thinking", "patch", "verify", "finished"]


@pytest.fixture(scope="module")
def df():
    return qlm.sample_data("synthetic", n=2_000, seed=0)


def test_healing_trace_follows_the_next_session(home, df) -> None:
    trace = HealingTrace()
    write_strategy("broken_sma", BROKEN)
    rep = qlm.heal("broken_sma", df, model=scripted_model)
    trace.wait_idle()
    assert trace.session_id == rep.session_id and trace.strategy == "broken_sma"
    assert (trace.status, trace.healed, trace.attempts) == ("healed", True, 1)
    assert (trace.original_version, trace.final_version) == (1, 2)
    assert trace.step_kinds() == HEALED_KINDS
    steps = {s["kind"]: s for s in trace.steps}
    assert steps["run"]["ok"] is False and "clsoe" in steps["run"]["data"]["error"]["context"]["excerpt"]
    assert (
        "+        f, s = ta.sma(close, self.fast), ta.sma(close, self.slow)" in steps["patch"]["data"]["diff"]
    )
    assert steps["thinking"]["data"]["text"] == "'clsoe' is a typo"
    assert steps["verify"]["ok"] is True and "sharpe" in steps["verify"]["data"]["stats"]

    static = HealingTrace.from_report(rep)
    assert static.step_kinds() == HEALED_KINDS and static.status == "healed" and static.final_version == 2
    stored = HealingTrace(rep.session_id)  # a finished session, read back from the store
    assert stored.step_kinds() == HEALED_KINDS and stored.status == "healed"

    write_strategy("broken_sma", BROKEN)
    qlm.heal("broken_sma", df, model=scripted_model)  # another session: the bound traces ignore it
    trace.wait_idle()
    assert trace.session_id == rep.session_id and len(trace.steps) == len(HEALED_KINDS)
    assert qlm.widgets.show(rep).step_kinds() == HEALED_KINDS
    for widget in (trace, static, stored):
        widget.close()


def test_topic_filter_rule() -> None:
    keep = topic_filter("job.*, heal")
    assert keep("job.progress") and keep("heal.step") and not keep("mcp.tool.called")
    assert topic_filter("")("anything") and topic_filter("  ")("x")
    assert topic_filter("tool")("mcp.tool.called") and not topic_filter("tool.*")("mcp.tool.called")
    assert topic_filter("job.?rogress")("job.progress")


def test_event_log_keeps_the_newest_and_filters() -> None:
    log = EventLog("job.*", max_events=5)
    for i in range(8):
        publish("job.progress", {"job_id": "j", "done": i})
    publish("heal.step", {"session_id": "s"})  # not matched by the pattern
    publish("job.finished", {"job_id": "j"})
    log.wait_idle()
    assert log.received == 9 and len(log.events) == 5
    assert log.topics() == ["job.progress"] * 4 + ["job.finished"]
    assert [e["summary"] for e in log.events][-2] == "job_id=j, done=7"
    log.filter = "finished"
    assert [e["topic"] for e in log.visible()] == ["job.finished"]
    log._handle_custom_msg({"type": "clear"}, [])  # the Clear button
    assert log.events == [] and log.visible() == []
    log.close()


def test_event_log_rejects_bad_arguments() -> None:
    with pytest.raises(ConfigError):
        EventLog("Job.*")
    with pytest.raises(ConfigError):
        EventLog("*", max_events=0)


def test_event_log_from_many_threads_is_complete_and_throttled() -> None:
    log = EventLog("system.*", max_events=10_000)
    sends = count_sends(log)

    def publisher(k: int) -> None:
        for i in range(250):
            publish("system.error", {"thread": k, "i": i})

    threads = [threading.Thread(target=publisher, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.wait_idle()
    assert log.received == 2_000 and len(log.events) == 2_000
    seqs = [e["seq"] for e in log.events]
    assert seqs == sorted(seqs)  # delivered in bus order
    assert len(sends) < 50  # thousands of events, a few batched messages
    log.close()
