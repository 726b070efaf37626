"""Topic names, the topic catalog, and how subscription patterns route events (real Bus, queue targets)."""

from __future__ import annotations

import queue

import pytest

from qlm_kernel.errors import ConfigError
from qlm_kernel.events import TOPICS, Bus, matches, topics, validate_topic

ISSUE_TOPICS = [
    *("engine.backtest.started", "engine.backtest.finished", "engine.backtest.failed"),
    *("job.created", "job.progress", "job.finished", "job.failed", "job.cancelled"),
    *("heal.started", "heal.step", "heal.thinking", "heal.patch", "heal.finished"),
    *("mcp.server.started", "mcp.server.stopped", "mcp.client.connected", "mcp.client.disconnected"),
    *("mcp.tool.called", "mcp.tool.finished", "mcp.tool.failed"),
    *("store.run.recorded", "strategy.version.saved", "paper.order", "paper.fill", "paper.position"),
    "system.error",
]


def test_catalog_has_every_topic_with_a_meaning_and_a_constant():
    assert set(ISSUE_TOPICS) <= set(TOPICS)
    constants = {value for name, value in vars(topics).items() if name.isupper() and isinstance(value, str)}
    assert set(TOPICS) == constants
    for topic, meaning in TOPICS.items():
        assert validate_topic(topic) == topic
        assert meaning and "\n" not in meaning
    assert topics.JOB_PROGRESS == "job.progress"
    assert topics.HEAL_THINKING == "heal.thinking"


@pytest.mark.parametrize("topic", ["job.progress", "a", "engine.backtest.started", "x1.y_2.z3", "my_t.done"])
def test_valid_topics(topic):
    assert validate_topic(topic) == topic


@pytest.mark.parametrize(
    "topic",
    ["", "Job.progress", "job..progress", ".job", "job.", "job progress", "job.*", "1job", "job.-x", None, 3],
)
def test_invalid_topics_raise_config_error(topic):
    with pytest.raises(ConfigError) as info:
        validate_topic(topic)
    assert "topic" in info.value.to_dict()["message"]


@pytest.mark.parametrize(
    ("pattern", "topic", "expected"),
    [
        ("job.*", "job.created", True),
        ("job.*", "job.progress", True),
        ("job.*", "jobs.created", False),
        ("job.*", "job", False),
        ("job.*", "heal.step", False),
        ("heal.*", "heal.thinking", True),
        ("engine.*", "engine.backtest.finished", True),  # '*' crosses dots (fnmatch)
        ("*.failed", "mcp.tool.failed", True),
        ("*.failed", "job.finished", False),
        ("*", "system.error", True),
        ("job.progress", "job.progress", True),
        ("job.progress", "job.progress2", False),
        ("job.progres?", "job.progress", True),
        ("paper.[fo]*", "paper.fill", True),
        ("paper.[fo]*", "paper.position", False),
        ("paper.[!f]*", "paper.order", True),
    ],
)
def test_pattern_matching(pattern, topic, expected):
    assert matches(pattern, topic) is expected


@pytest.mark.parametrize("pattern", ["", "Job.*", "job progress", None, "job.progress\n"])
def test_invalid_patterns_raise(pattern):
    bus = Bus()
    with pytest.raises(ConfigError):
        bus.subscribe(pattern, queue.Queue())
    assert bus.subscriptions == []


def _drain(q: queue.Queue) -> list[str]:
    out = []
    while not q.empty():
        out.append(q.get_nowait().topic)
    return out


def test_bus_routes_by_pattern_including_subscriptions_added_after_first_publish():
    bus = Bus()
    jobs, heal, everything, exact = queue.Queue(), queue.Queue(), queue.Queue(), queue.Queue()
    bus.subscribe("job.*", jobs)
    bus.subscribe("*", everything)
    sent = ["job.created", "heal.step", "job.progress", "system.error"]
    for topic in sent:
        bus.publish(topic)
    # routes for these topics are cached now; new subscriptions must still be seen
    bus.subscribe("heal.*", heal)
    bus.subscribe("job.progress", exact)
    for topic in sent:
        bus.publish(topic)
    assert _drain(jobs) == ["job.created", "job.progress"] * 2
    assert _drain(everything) == sent * 2
    assert _drain(heal) == ["heal.step"]
    assert _drain(exact) == ["job.progress"]
    assert bus.stats()["topics"] == {t: 2 for t in sorted(sent)}


def test_publish_rejects_bad_topic_without_counting_it():
    bus = Bus()
    q = queue.Queue()
    bus.subscribe("*", q)
    with pytest.raises(ConfigError):
        bus.publish("Not A Topic")
    assert q.empty()
    assert bus.stats()["published"] == 0
