"""MqttBridge against the embedded amqtt broker on a free loopback port, read back by an aiomqtt subscriber.

Covers topics and payloads, retained state for late subscribers, a broker lost and restarted on
the same port (publishers never wait, buffered events replayed in order, retained state
re-published), buffer overflow, graceful stop, and the URL / broker configuration errors.
"""

from __future__ import annotations

import asyncio
import enum
import json
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiomqtt
import pytest
from structlog.testing import capture_logs

from infra.bus import SCHEMA_VERSION, EventBus
from infra.mqtt import BrokerAddress, BrokerStartError, EmbeddedBroker, MqttBridge

SITE = "test"
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
WAIT = 10.0  # upper bound for anything the broker has to do; tests finish far sooner


class State(enum.Enum):
    READY = "ready"
    PAUSED = "paused"


@dataclass(frozen=True, slots=True)
class AgentStateChanged:
    __topic__ = "agents/{agent_id}/state"
    __retain__ = True

    agent_id: str
    state: State
    at: datetime = T0


@dataclass(frozen=True, slots=True)
class CallEvent:
    __topic__ = "calls/{call_id}/events"

    call_id: str
    n: int


@dataclass(frozen=True, slots=True)
class CallQueued:
    call_id: str
    queue: str


@dataclass(frozen=True, slots=True)
class Opaque:
    blob: object


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Collector:
    """An independent aiomqtt client subscribed to the site, collecting what the broker delivers."""

    def __init__(self, port: int, topic: str = f"dialer/{SITE}/#") -> None:
        self.port = port
        self.topic = topic
        self.messages: list[aiomqtt.Message] = []
        self._arrived = asyncio.Event()
        self._stack: Any = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Collector:
        self.client = aiomqtt.Client("127.0.0.1", self.port, identifier=f"collector-{id(self)}")
        await self.client.__aenter__()
        await self.client.subscribe(self.topic, qos=1)
        self._task = asyncio.create_task(self._collect())
        return self

    async def _collect(self) -> None:
        async for message in self.client.messages:
            self.messages.append(message)
            self._arrived.set()

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self.client.__aexit__(None, None, None)

    async def wait_for(self, count: int) -> list[aiomqtt.Message]:
        async with asyncio.timeout(WAIT):
            while len(self.messages) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.messages

    def payloads(self) -> list[dict[str, Any]]:
        return [json.loads(bytes(m.payload)) for m in self.messages]

    def topics(self) -> list[str]:
        return [m.topic.value for m in self.messages]


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
async def broker(port: int) -> AsyncIterator[EmbeddedBroker]:
    async with EmbeddedBroker("127.0.0.1", port) as b:
        yield b


def make_bridge(bus: EventBus, port: int, **kw: Any) -> MqttBridge:
    kw.setdefault("reconnect_min", 0.05)
    kw.setdefault("reconnect_max", 0.2)
    return MqttBridge(bus, url=f"mqtt://127.0.0.1:{port}", site=SITE, client_id=f"bridge-{port}", **kw)


async def flushed(bridge: MqttBridge) -> None:
    async with asyncio.timeout(WAIT):
        await bridge.flush()


async def disconnected(bridge: MqttBridge) -> None:
    # The bridge learns of the closed socket on its next read; poll its state with a bound.
    async with asyncio.timeout(WAIT):
        while bridge.connected:
            await asyncio.sleep(0.01)


async def test_events_arrive_on_their_topics_with_the_schema_version(broker: EmbeddedBroker, port: int) -> None:
    bus = EventBus()
    async with make_bridge(bus, port) as bridge, Collector(port) as sub:
        await flushed(bridge)
        bus.publish(AgentStateChanged("1001", State.READY))
        bus.publish(CallEvent("c-1", 1))
        bus.publish(CallQueued("c-1", "sales"))
        await sub.wait_for(3)

    assert sub.topics() == [
        f"dialer/{SITE}/agents/1001/state",
        f"dialer/{SITE}/calls/c-1/events",
        f"dialer/{SITE}/events/CallQueued",
    ]
    first, second, third = sub.payloads()
    assert first["schema"] == SCHEMA_VERSION == 1
    assert first["type"] == "AgentStateChanged"
    assert first["data"] == {"agent_id": "1001", "state": "ready", "at": "2026-03-02T10:00:00Z"}
    assert datetime.fromisoformat(first["ts"]).tzinfo is not None
    assert second["data"] == {"call_id": "c-1", "n": 1}
    assert third["type"] == "CallQueued"
    assert bridge.sent == 3
    assert bridge.dropped == 0


async def test_late_subscriber_gets_latest_retained_state_only(broker: EmbeddedBroker, port: int) -> None:
    bus = EventBus()
    async with make_bridge(bus, port) as bridge:
        await bridge.flush()
        bus.publish(AgentStateChanged("1001", State.READY))
        bus.publish(AgentStateChanged("1001", State.PAUSED))
        bus.publish(AgentStateChanged("1002", State.READY))
        bus.publish(CallEvent("c-1", 1))  # a happening, not state: not retained
        await flushed(bridge)
        async with Collector(port) as late:
            await late.wait_for(2)
            await asyncio.sleep(0.2)  # room for a wrongly retained third message to show up
    assert sorted(late.topics()) == [f"dialer/{SITE}/agents/1001/state", f"dialer/{SITE}/agents/1002/state"]
    assert all(m.retain for m in late.messages)
    by_topic = {m.topic.value: json.loads(bytes(m.payload)) for m in late.messages}
    assert by_topic[f"dialer/{SITE}/agents/1001/state"]["data"]["state"] == "paused"
    assert sorted(bridge.retained_topics) == [f"dialer/{SITE}/agents/1001/state", f"dialer/{SITE}/agents/1002/state"]


async def test_lost_broker_buffers_without_blocking_and_replays_in_order_on_restart(port: int) -> None:
    bus = EventBus()
    first = EmbeddedBroker("127.0.0.1", port)
    await first.start()
    # Long backoff: the bridge reconnects only when told to, so the collector is surely listening first.
    bridge = make_bridge(bus, port, reconnect_min=30.0, reconnect_max=30.0)
    await bridge.start()
    try:
        await flushed(bridge)
        bus.publish(AgentStateChanged("1001", State.READY))
        await flushed(bridge)

        await first.stop()
        await disconnected(bridge)

        durations = []
        for n in range(200):
            started = time.perf_counter()
            bus.publish(CallEvent("c-9", n))
            durations.append(time.perf_counter() - started)
            # Synchronous hand-off: the event is in the buffer before publish returns.
            assert bridge.buffered == n + 1
        bus.publish(AgentStateChanged("1001", State.PAUSED))
        # The buffered count above is the real proof; this bound only catches a publisher that waited for
        # a connect or PUBACK timeout (10 s), with room for a loaded CI machine.
        assert max(durations) < 0.5
        assert bridge.buffered == 200  # retained state is kept apart, not buffered
        assert bridge.dropped == 0

        second = EmbeddedBroker("127.0.0.1", port)
        await second.start()
        try:
            async with Collector(port) as sub:
                assert bridge.connections == 1
                bridge.retry_now()
                await sub.wait_for(201)
                await flushed(bridge)
        finally:
            await second.stop()
    finally:
        await bridge.stop()

    assert bridge.connections == 2
    payloads = sub.payloads()
    # The broker restarted empty: the latest agent state is re-published first, then the buffer in order.
    assert sub.topics()[0] == f"dialer/{SITE}/agents/1001/state"
    assert payloads[0]["data"]["state"] == "paused"
    assert [p["data"]["n"] for p in payloads[1:]] == list(range(200))
    assert bridge.buffered == 0


async def test_reconnects_by_itself_and_republishes_retained_state(port: int) -> None:
    bus = EventBus()
    bridge = make_bridge(bus, port)
    await bridge.start()
    try:
        async with EmbeddedBroker("127.0.0.1", port):
            await flushed(bridge)
            bus.publish(AgentStateChanged("1001", State.READY))
            await flushed(bridge)
        await disconnected(bridge)
        bus.publish(AgentStateChanged("1002", State.PAUSED))
        async with EmbeddedBroker("127.0.0.1", port):
            await flushed(bridge)  # reached through the bridge's own backoff loop
            async with Collector(port) as late:
                await late.wait_for(2)
    finally:
        await bridge.stop()
    assert bridge.connections == 2
    assert sorted(late.topics()) == [f"dialer/{SITE}/agents/1001/state", f"dialer/{SITE}/agents/1002/state"]
    assert all(m.retain for m in late.messages)


async def test_buffer_overflow_drops_oldest_counts_and_warns(port: int) -> None:
    bus = EventBus()
    bridge = make_bridge(bus, port, buffer=5, reconnect_min=30.0, reconnect_max=30.0)
    with capture_logs() as logs:
        await bridge.start()  # nothing listens on the port yet
        for n in range(12):
            bus.publish(CallEvent("c-1", n))
        assert bridge.buffered == 5
        assert bridge.dropped == 7
        async with asyncio.timeout(WAIT):  # the first connection attempt fails and says so
            while not any(e["event"] == "mqtt broker unreachable; buffering events" for e in logs):
                await asyncio.sleep(0.01)
        async with EmbeddedBroker("127.0.0.1", port), Collector(port) as sub:
            bridge.retry_now()
            await sub.wait_for(5)
            await flushed(bridge)
            await bridge.stop()
    assert [p["data"]["n"] for p in sub.payloads()] == [7, 8, 9, 10, 11]
    drops = [e for e in logs if e["event"] == "mqtt buffer full: dropping oldest events"]
    assert drops
    assert drops[0]["log_level"] == "warning"
    assert drops[0]["dropped"] == 1


async def test_stop_flushes_then_detaches_from_the_bus(broker: EmbeddedBroker, port: int) -> None:
    bus = EventBus()
    async with Collector(port) as sub:
        bridge = make_bridge(bus, port)
        for n in range(20):  # published before the first connection: buffered, not lost
            bus.publish(CallEvent("c-1", n))
        await bridge.start()
        await bridge.stop(flush_timeout=WAIT)
        await sub.wait_for(20)
        bus.publish(CallEvent("c-1", 99))
        assert bridge.buffered == 0
    assert [p["data"]["n"] for p in sub.payloads()] == list(range(20))


async def test_stop_with_broker_unreachable_is_bounded(port: int) -> None:
    bus = EventBus()
    bridge = make_bridge(bus, port)
    await bridge.start()
    bus.publish(CallEvent("c-1", 1))
    with capture_logs() as logs:
        async with asyncio.timeout(WAIT):
            await bridge.stop(flush_timeout=0.2)
    assert not bridge.connected
    assert any(e["event"] == "mqtt bridge stopped with undelivered events" and e["undelivered"] == 1 for e in logs)


async def test_unserialisable_event_is_skipped_and_counted(broker: EmbeddedBroker, port: int) -> None:
    bus = EventBus()
    async with make_bridge(bus, port) as bridge, Collector(port) as sub:
        with capture_logs() as logs:
            bus.publish(Opaque(object()))
            bus.publish(CallEvent("c-1", 1))
            await sub.wait_for(1)
            await flushed(bridge)
    assert bridge.failed == 1
    assert sub.topics() == [f"dialer/{SITE}/calls/c-1/events"]
    assert any(e["event"] == "event cannot be serialised for mqtt; skipped" for e in logs)


async def test_embedded_broker_on_ipv6_loopback() -> None:
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
        s.bind(("::1", 0))
        port6 = s.getsockname()[1]
    bus = EventBus()
    async with EmbeddedBroker("::1", port6) as b6:
        assert b6.url == f"mqtt://[::1]:{port6}"
        async with MqttBridge(bus, url=b6.url, site=SITE) as bridge:
            await flushed(bridge)
            assert bridge.connected


async def test_embedded_broker_refuses_a_busy_port_and_non_loopback(broker: EmbeddedBroker, port: int) -> None:
    with pytest.raises(BrokerStartError, match=f"127.0.0.1:{port}.*free the port"):
        await EmbeddedBroker("127.0.0.1", port).start()
    with pytest.raises(ValueError, match="loopback only"):
        EmbeddedBroker("0.0.0.0", port)
    with pytest.raises(ValueError, match="from 1 to 65535"):
        EmbeddedBroker("127.0.0.1", 0)


def test_broker_url_parsing() -> None:
    assert BrokerAddress.parse("mqtt://127.0.0.1") == BrokerAddress("127.0.0.1", 1883)
    assert BrokerAddress.parse("mqtts://u%40x:p%3Aw@broker.example.net:8884") == BrokerAddress(
        "broker.example.net", 8884, tls=True, username="u@x", password="p:w"
    )
    assert BrokerAddress.parse("mqtt://[::1]:1999") == BrokerAddress("::1", 1999)
    with pytest.raises(ValueError, match="must start with mqtt:// or mqtts://"):
        BrokerAddress.parse("http://127.0.0.1:1883")
    with pytest.raises(ValueError, match="invalid port"):
        BrokerAddress.parse("mqtt://127.0.0.1:99999")
    with pytest.raises(ValueError, match="names no host"):
        BrokerAddress.parse("mqtt://:1883")
    with pytest.raises(ValueError, match="path or query"):
        BrokerAddress.parse("mqtt://127.0.0.1/dialer")


async def test_bridge_rejects_bad_settings() -> None:
    bus = EventBus()
    with pytest.raises(ValueError, match="site"):
        MqttBridge(bus, site="a/b")
    with pytest.raises(ValueError, match="at least 1 event"):
        MqttBridge(bus, buffer=0)
    with pytest.raises(ValueError, match="qos"):
        MqttBridge(bus, qos=3)
    assert bus.subscriber_count == 0
