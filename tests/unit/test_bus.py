"""EventBus: fan-out, ordering, bounded subscriptions with drop counting, and the topic/payload contract."""

from __future__ import annotations

import asyncio
import enum
import gc
import inspect
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone

import pytest
from structlog.testing import capture_logs

from infra.bus import SCHEMA_VERSION, EventBus, encode, retain_for, to_payload, topic_for

T0 = datetime(2026, 3, 2, 10, 0, 0, 123456, tzinfo=UTC)


class AgentState(enum.Enum):
    READY = "ready"
    PAUSED = "paused"


@dataclass(frozen=True, slots=True)
class AgentStateChanged:
    __topic__ = "agents/{agent_id}/state"
    __retain__ = True

    agent_id: str
    state: AgentState
    since: datetime


@dataclass(frozen=True, slots=True)
class CallQueued:
    call_id: str
    queue_id: int
    wait: timedelta = timedelta(0)


@dataclass(frozen=True, slots=True)
class Tick:
    n: int


@dataclass(frozen=True, slots=True)
class Stats:
    __topic__ = "queues/{queue_id}/stats"
    __retain__ = True

    queue_id: int
    asa: float
    skills: frozenset[str] = frozenset()
    by_agent: dict[str, int] = field(default_factory=dict)


def test_fan_out_to_listeners_and_subscriptions_with_type_filters() -> None:
    bus = EventBus()
    seen_all: list[object] = []
    seen_calls: list[object] = []
    bus.add_listener(seen_all.append)
    bus.add_listener(seen_calls.append, types=CallQueued)
    every = bus.subscribe()
    agents_only = bus.subscribe(types=(AgentStateChanged,))

    a = AgentStateChanged("1001", AgentState.READY, T0)
    c = CallQueued("c1", 7)
    bus.publish(a)
    bus.publish(c)

    assert seen_all == [a, c]
    assert seen_calls == [c]
    assert [every.get_nowait(), every.get_nowait(), every.get_nowait()] == [a, c, None]
    assert [agents_only.get_nowait(), agents_only.get_nowait()] == [a, None]
    assert bus.published == 2


def test_publish_is_plain_sync_and_works_without_a_running_loop() -> None:
    assert not inspect.iscoroutinefunction(EventBus.publish)
    bus = EventBus()
    sub = bus.subscribe(maxsize=2)
    bus.publish(Tick(1))
    assert sub.get_nowait() == Tick(1)


def test_slow_subscriber_drops_oldest_and_counts_without_affecting_others() -> None:
    bus = EventBus()
    slow = bus.subscribe(maxsize=3)
    roomy = bus.subscribe(maxsize=100)
    with capture_logs() as logs:
        for i in range(10):
            bus.publish(Tick(i))
    assert slow.dropped == 7
    assert [slow.get_nowait() for _ in range(3)] == [Tick(7), Tick(8), Tick(9)]
    assert roomy.dropped == 0
    assert len(roomy) == 10
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert warnings
    assert warnings[0]["dropped"] == 1
    assert warnings[0]["maxsize"] == 3


def test_publish_with_a_full_subscriber_does_not_grow_memory() -> None:
    bus = EventBus()
    sub = bus.subscribe(maxsize=10)
    for i in range(50_000):
        bus.publish(Tick(i))
    assert len(sub) == 10
    assert sub.dropped == 49_990


def test_listener_publishing_inside_dispatch_does_not_overtake() -> None:
    bus = EventBus()
    order: list[tuple[str, object]] = []

    def react(event: object) -> None:
        order.append(("first", event))
        if event == Tick(1):
            bus.publish(Tick(2))

    bus.add_listener(react)
    bus.add_listener(lambda e: order.append(("second", e)))
    bus.publish(Tick(1))
    assert order == [("first", Tick(1)), ("second", Tick(1)), ("first", Tick(2)), ("second", Tick(2))]


def test_failing_listener_is_logged_and_isolated() -> None:
    bus = EventBus()
    got: list[object] = []

    def broken(event: object) -> None:
        raise RuntimeError("boom")

    bus.add_listener(broken)
    bus.add_listener(got.append)
    with capture_logs() as logs:
        bus.publish(Tick(1))
    assert got == [Tick(1)]
    assert bus.listener_errors == 1
    assert any(e["event"] == "event listener failed" and e["event_type"] == "Tick" for e in logs)


def test_remove_listener() -> None:
    bus = EventBus()
    got: list[object] = []
    remove = bus.add_listener(got.append)
    bus.publish(Tick(1))
    remove()
    bus.publish(Tick(2))
    assert got == [Tick(1)]


async def test_async_subscriber_is_woken_and_ends_after_close() -> None:
    bus = EventBus()
    sub = bus.subscribe(types=Tick)
    received: list[object] = []

    async def consume() -> None:
        async for event in sub:
            received.append(event)

    task = asyncio.create_task(consume())
    await asyncio.sleep(0)  # let the consumer park on an empty queue
    bus.publish(Tick(1))
    bus.publish(CallQueued("c", 1))
    bus.publish(Tick(2))
    sub.close()
    await asyncio.wait_for(task, 2)
    assert received == [Tick(1), Tick(2)]
    bus.publish(Tick(3))
    assert len(sub) == 0


async def test_bus_close_ends_every_subscription() -> None:
    bus = EventBus()
    with bus.subscribe() as sub:
        bus.publish(Tick(1))
        bus.close()
        assert [e async for e in sub] == [Tick(1)]
    bus.publish(Tick(2))
    assert bus.published == 1


def test_forgotten_subscription_is_released() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    assert bus.subscriber_count == 1
    del sub
    gc.collect()
    assert bus.subscriber_count == 0


def test_bad_sizes_and_types_are_rejected() -> None:
    bus = EventBus()
    with pytest.raises(ValueError, match="maxsize must be at least 1"):
        bus.subscribe(maxsize=0)
    with pytest.raises(TypeError, match="types must be event classes"):
        bus.subscribe(types=("Tick",))  # type: ignore[arg-type]


def test_non_events_are_refused_with_a_fix() -> None:
    @dataclass
    class Mutable:
        x: int

    @dataclass(frozen=True)
    class BadTopic:
        __topic__ = "agents/{agent}/state"
        agent_id: str

    @dataclass(frozen=True)
    class Wildcard:
        __topic__ = "agents/+/state"

    bus = EventBus()
    with pytest.raises(TypeError, match=r"frozen=True"):
        bus.publish(Mutable(1))
    with pytest.raises(TypeError, match=r"\{agent\}, which is not a field.*agent_id"):
        bus.publish(BadTopic("1"))
    with pytest.raises(TypeError, match="wildcards"):
        bus.publish(Wildcard())
    with pytest.raises(TypeError, match="is not an event"):
        bus.publish("hello")  # type: ignore[arg-type]
    assert bus.published == 0


def test_topics_and_retain() -> None:
    assert topic_for(AgentStateChanged("1001", AgentState.READY, T0)) == "agents/1001/state"
    assert retain_for(AgentStateChanged("1001", AgentState.READY, T0))
    assert topic_for(CallQueued("c1", 7)) == "events/CallQueued"
    assert not retain_for(CallQueued("c1", 7))
    assert topic_for(Stats(queue_id=3, asa=1.0)) == "queues/3/stats"
    # a field value cannot add topic levels or wildcards
    assert topic_for(AgentStateChanged("a/b+#", AgentState.READY, T0)) == "agents/a_b__/state"
    assert topic_for(AgentStateChanged("", AgentState.READY, T0)) == "agents/_/state"


def test_payload_envelope_and_field_conversion() -> None:
    payload = to_payload(AgentStateChanged("1001", AgentState.PAUSED, T0), ts=T0 + timedelta(seconds=1))
    assert payload == {
        "schema": SCHEMA_VERSION,
        "type": "AgentStateChanged",
        "ts": "2026-03-02T10:00:01.123456Z",
        "data": {"agent_id": "1001", "state": "paused", "since": "2026-03-02T10:00:00.123456Z"},
    }
    cet = timezone(timedelta(hours=1))
    stats = Stats(queue_id=3, asa=float("nan"), skills=frozenset({"fr", "en"}), by_agent={"1001": 2})
    data = to_payload(stats, ts=datetime(2026, 3, 2, 11, 0, tzinfo=cet))
    assert data["ts"] == "2026-03-02T10:00:00Z"
    assert data["data"] == {"queue_id": 3, "asa": None, "skills": ["en", "fr"], "by_agent": {"1001": 2}}
    assert to_payload(CallQueued("c1", 7, timedelta(seconds=2.5)))["data"]["wait"] == 2.5


def test_payload_ts_defaults_to_now_in_utc() -> None:
    before = datetime.now(UTC)
    ts = datetime.fromisoformat(to_payload(Tick(1))["ts"])
    assert ts.tzinfo is not None
    assert before <= ts <= datetime.now(UTC)


def test_encode_is_compact_json() -> None:
    raw = encode(CallQueued("c1", 7), ts=T0)
    assert raw.startswith(b'{"schema":1,"type":"CallQueued","ts":"2026-03-02T10:00:00.123456Z"')
    assert json.loads(raw)["data"] == {"call_id": "c1", "queue_id": 7, "wait": 0.0}


def test_unserialisable_field_names_the_field() -> None:
    @dataclass(frozen=True)
    class Odd:
        blob: object

    with pytest.raises(TypeError, match=r"Odd\.blob holds a object"):
        to_payload(Odd(object()))
