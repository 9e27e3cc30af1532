"""MQTT mirror of the event bus (aiomqtt 2.x) and the embedded amqtt broker used by default.

``MqttBridge`` listens to the ``EventBus`` and publishes every event as JSON (``infra.bus.encode``)
to ``<topic_prefix>/<site>/<topic_for(event)>`` (``[mqtt] topic_prefix``, ``dialer`` by default);
events whose class sets ``__retain__`` are current
state (agent state, queue stats) and are published with the MQTT RETAIN flag (MQTT 3.1.1
section 3.3.1.3) so that a late subscriber gets the latest value at once. Delivery is QoS 1
by default (section 4.3.2): an event leaves the bridge's buffer only when the broker has
acknowledged it, so a lost broker costs nothing but buffer space. The buffer is bounded; when
it is full the oldest event is dropped and counted. On reconnect the latest retained state is
published again, then the buffered events in order. The bus listener only appends to a deque:
a dead, slow or unreachable broker never blocks a call.

Theory of operation: ``run`` is the reconnect loop of the aiomqtt documentation: ``async with
aiomqtt.Client(...)`` inside ``while``, catching ``MqttError`` and backing off. Each connection
runs two workers in an ``asyncio.TaskGroup``: the sender drains the buffer, and the watcher
iterates ``client.messages``, which raises ``MqttError`` as soon as the connection drops; that
cancels a sender waiting for a PUBACK that will never come, and its event goes back to the
front of the buffer. Delivery is therefore at least once: an event whose PUBACK was lost is
sent again after reconnect.

``EmbeddedBroker`` runs an amqtt 0.12 broker on a loopback TCP listener inside the same event
loop, with anonymous access (loopback only); set an external broker URL to share one broker
between nodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import random
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self
from urllib.parse import unquote, urlsplit

import aiomqtt
import structlog

from infra.bus import Event, EventBus, encode, retain_for, topic_for

__all__ = ["BrokerAddress", "BrokerStartError", "EmbeddedBroker", "MqttBridge"]

log = structlog.get_logger(__name__)

_DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """Where the broker is, parsed from ``mqtt://[user[:password]@]host[:port]`` or ``mqtts://...``."""

    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS:
            raise ValueError(f"MQTT broker URL {url!r} must start with mqtt:// or mqtts://, e.g. mqtt://127.0.0.1:1883")
        try:
            port = parts.port or _DEFAULT_PORTS[scheme]
        except ValueError:
            raise ValueError(f"MQTT broker URL {url!r} has an invalid port; use a number from 1 to 65535") from None
        if not parts.hostname:
            raise ValueError(f"MQTT broker URL {url!r} names no host, e.g. mqtt://broker.example.net:1883")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(
                f"MQTT broker URL {url!r} must not have a path or query; set [mqtt] topic_prefix and the site"
            )
        return cls(
            host=parts.hostname,
            port=port,
            tls=scheme == "mqtts",
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )


def _check_site(site: str) -> str:
    if not site or any(c in site for c in "/+#\x00"):
        raise ValueError(f"MQTT site {site!r} must be a non-empty name without '/', '+' or '#', e.g. 'paris'")
    return site


def _check_prefix(prefix: str) -> str:
    levels = prefix.split("/")
    if not prefix or any(not level or any(c in level for c in "+#\x00") for level in levels):
        raise ValueError(
            f"MQTT topic_prefix {prefix!r} must be topic levels without '+', '#' or empty levels "
            "(no leading, trailing or double '/'), e.g. 'dialer' or 'acme/dialer'"
        )
    return prefix


class _Outgoing:
    """One event on its way to the broker; the payload is encoded lazily, off the publish path."""

    __slots__ = ("event", "payload", "retain", "seq", "topic", "ts")

    def __init__(self, seq: int, topic: str, retain: bool, event: Event, ts: datetime) -> None:
        self.seq = seq
        self.topic = topic
        self.retain = retain
        self.event = event
        self.ts = ts
        self.payload: bytes | None = None


class MqttBridge:
    """Mirror bus events to MQTT under ``<topic_prefix>/<site>/``; see the module docstring.

    Use ``async with MqttBridge(bus, ...)`` or ``await start()`` / ``await stop()``. The bus
    listener is attached at construction, so events published before the first connection
    are buffered, not lost.
    """

    def __init__(
        self,
        bus: EventBus,
        *,
        url: str = "mqtt://127.0.0.1:1883",
        site: str = "default",
        topic_prefix: str = "dialer",
        buffer: int = 10_000,
        client_id: str | None = None,
        qos: int = 1,
        keepalive: int = 30,
        publish_timeout: float = 10.0,
        reconnect_min: float = 0.2,
        reconnect_max: float = 10.0,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if buffer < 1:
            raise ValueError(f"MQTT buffer must hold at least 1 event, got {buffer}")
        if qos not in (0, 1, 2):
            raise ValueError(f"MQTT qos must be 0, 1 or 2, got {qos}")
        if not 0 < reconnect_min <= reconnect_max:
            raise ValueError(
                "reconnect delays must satisfy 0 < reconnect_min <= reconnect_max, "
                f"got {reconnect_min} and {reconnect_max}"
            )
        self.address = BrokerAddress.parse(url)
        self.url = url
        self.site = _check_site(site)
        self.topic_prefix = _check_prefix(topic_prefix)
        self.prefix = f"{topic_prefix}/{site}/"
        self.capacity = buffer
        self.client_id = client_id or f"dialer-{site}-{socket.gethostname()}-{os.getpid()}"
        self.qos = qos
        self.keepalive = keepalive
        self.publish_timeout = publish_timeout
        self.reconnect_min = reconnect_min
        self.reconnect_max = reconnect_max
        self._clock = clock or (lambda: datetime.now(UTC))

        self.sent = 0
        """Messages acknowledged by the broker (QoS 1/2) or written to the socket (QoS 0)."""
        self.dropped = 0
        """Events lost because the buffer was full (oldest first)."""
        self.failed = 0
        """Events that could not be serialised (a bug in the event class; logged)."""
        self.connections = 0

        self._seq = 0
        self._buffer: deque[_Outgoing] = deque()
        self._retained: dict[str, _Outgoing] = {}
        self._connected = False
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._connected_event = asyncio.Event()
        self._backoff_cut = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._last_drop_warning = -1e9
        self._remove_listener: Callable[[], None] | None = bus.add_listener(self._enqueue)

    # -- the publish path (synchronous, called by EventBus.publish) ---------------------------------

    def _enqueue(self, event: Event) -> None:
        self._seq += 1
        retain = retain_for(event)
        entry = _Outgoing(self._seq, self.prefix + topic_for(event), retain, event, self._clock())
        if retain:
            self._retained[entry.topic] = entry
            if not self._connected:
                # Re-published from _retained on connect: buffering it would only take the room of an event.
                return
        if len(self._buffer) >= self.capacity:
            self._buffer.popleft()
            self._count_drop()
        self._buffer.append(entry)
        self._idle.clear()
        self._wakeup.set()

    def _count_drop(self) -> None:
        self.dropped += 1
        now = time.monotonic()
        if now - self._last_drop_warning >= 10.0:
            self._last_drop_warning = now
            log.warning(
                "mqtt buffer full: dropping oldest events",
                dropped=self.dropped,
                buffer=self.capacity,
                url=self.url,
                connected=self._connected,
            )

    # -- state ----------------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def buffered(self) -> int:
        """Events waiting for the broker (retained state is kept apart, see ``retained_topics``)."""
        return len(self._buffer)

    @property
    def retained_topics(self) -> list[str]:
        """Topics whose latest state is re-published on every (re)connect."""
        return list(self._retained)

    async def wait_connected(self) -> None:
        """Wait until a connection to the broker is up (bound it with ``asyncio.timeout``)."""
        await self._connected_event.wait()

    async def flush(self) -> None:
        """Wait until connected, retained state re-published and the buffer empty (bound with ``asyncio.timeout``)."""
        await self._idle.wait()

    def retry_now(self) -> None:
        """Cut the current reconnect backoff short, e.g. right after the embedded broker was restarted."""
        self._backoff_cut.set()

    # -- lifecycle ----------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("MqttBridge.start() called twice; create a new bridge to restart")
        self._task = asyncio.create_task(self.run(), name=f"mqtt-bridge {self.url}")

    async def stop(self, *, flush_timeout: float = 2.0) -> None:
        """Stop taking events, give the broker ``flush_timeout`` seconds to take the buffer, disconnect."""
        if self._remove_listener is not None:
            self._remove_listener()
            self._remove_listener = None
        self._stopping = True
        self._backoff_cut.set()
        self._wakeup.set()
        task = self._task
        if task is not None and not task.done():
            try:
                async with asyncio.timeout(flush_timeout):
                    await asyncio.shield(task)
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._buffer:
            log.warning("mqtt bridge stopped with undelivered events", undelivered=len(self._buffer), url=self.url)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # -- the connection loop -----------------------------------------------------------------------

    def _client(self) -> aiomqtt.Client:
        address = self.address
        return aiomqtt.Client(
            address.host,
            address.port,
            identifier=self.client_id,
            username=address.username,
            password=address.password,
            keepalive=self.keepalive,
            timeout=self.publish_timeout,
            clean_session=True,
            tls_context=ssl.create_default_context() if address.tls else None,
        )

    async def run(self) -> None:
        """Connect, publish, reconnect with backoff; returns after ``stop()``."""
        delay = self.reconnect_min
        outage_logged = False
        # Stopping with events still buffered is worth one connection attempt (stop() bounds it).
        while not (self._stopping and not self._buffer):
            error: BaseException | None = None
            try:
                async with self._client() as client:
                    self._on_connected(outage_logged)
                    outage_logged = False
                    delay = self.reconnect_min
                    async with asyncio.TaskGroup() as workers:
                        watcher = workers.create_task(self._watch(client))
                        workers.create_task(self._send(client, watcher))
            except* (aiomqtt.MqttError, OSError) as group:
                # aiomqtt chains the reason ("Unexpected disconnection", connection refused) as the cause.
                error = group.exceptions[0].__cause__ or group.exceptions[0]
            except* Exception as group:
                # Not a connection problem: a bug. Keep mirroring events rather than take the node down.
                log.error("mqtt bridge failed; reconnecting", url=self.url, exc_info=group)
                error = group.exceptions[0]
            finally:
                self._on_disconnected()
            if self._stopping:
                break
            if not outage_logged:
                log.warning(
                    "mqtt broker unreachable; buffering events",
                    url=self.url,
                    error=str(error),
                    buffered=len(self._buffer),
                    retry_in=round(delay, 3),
                )
                outage_logged = True
            else:
                log.debug("mqtt reconnect failed", url=self.url, error=str(error), retry_in=round(delay, 3))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay * random.uniform(0.5, 1.0)):  # jitter: nodes don't reconnect in step
                    await self._backoff_cut.wait()
            if not self._stopping:
                self._backoff_cut.clear()
            delay = min(delay * 2, self.reconnect_max)

    def _on_connected(self, after_outage: bool) -> None:
        self._connected = True
        self.connections += 1
        if not self._stopping:
            self._backoff_cut.clear()
        self._connected_event.set()
        log.info(
            "mqtt connected",
            url=self.url,
            client_id=self.client_id,
            buffered=len(self._buffer),
            retained=len(self._retained),
            dropped=self.dropped,
            reconnect=after_outage or self.connections > 1,
        )

    def _on_disconnected(self) -> None:
        if self._connected:
            self._connected = False
            self._connected_event.clear()
        # Retained state must be re-published on the next connection before the bridge is idle again.
        self._idle.clear()

    async def _watch(self, client: aiomqtt.Client) -> None:
        # Nothing is subscribed: iterating only turns a lost connection into MqttError at once.
        async for _message in client.messages:
            pass

    async def _send(self, client: aiomqtt.Client, watcher: asyncio.Task[None]) -> None:
        # The broker may have restarted empty: give it the latest state first. Buffered retained
        # entries at or before what was just sent are stale and skipped.
        republished: dict[str, int] = {}
        for entry in list(self._retained.values()):
            await self._publish(client, entry)
            republished[entry.topic] = entry.seq
        buffer = self._buffer
        while True:
            if not buffer:
                if self._stopping:
                    break
                self._idle.set()
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            entry = buffer.popleft()
            if entry.retain and entry.seq <= republished.get(entry.topic, 0):
                continue
            delivered = False
            try:
                await self._publish(client, entry)
                delivered = True
            finally:
                if not delivered:
                    self._requeue(entry)
        watcher.cancel()

    def _requeue(self, entry: _Outgoing) -> None:
        """Put an unacknowledged event back at the front, where it is the oldest and dropped first."""
        if entry.retain:
            return  # the latest state is re-published from _retained on connect
        if len(self._buffer) >= self.capacity:
            self._count_drop()
            return
        self._buffer.appendleft(entry)

    async def _publish(self, client: aiomqtt.Client, entry: _Outgoing) -> None:
        payload = entry.payload
        if payload is None:
            try:
                payload = encode(entry.event, ts=entry.ts)
            except (TypeError, ValueError):
                self.failed += 1
                if self._retained.get(entry.topic) is entry:
                    del self._retained[entry.topic]
                log.exception("event cannot be serialised for mqtt; skipped", event_type=type(entry.event).__name__)
                return
            entry.payload = payload
        await client.publish(entry.topic, payload, qos=self.qos, retain=entry.retain)
        self.sent += 1


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class BrokerStartError(RuntimeError):
    """The embedded broker could not listen (port in use, bad address)."""


class EmbeddedBroker:
    """An amqtt broker on a loopback TCP port, inside the running event loop.

    Anonymous clients are allowed, which is why it refuses to listen anywhere but loopback:
    to serve other hosts, run mosquitto or EMQX with authentication and set the MQTT URL.
    ``stop()`` drops all sessions and retained messages (amqtt keeps them in memory only);
    ``MqttBridge`` re-publishes retained state when it reconnects.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 1883) -> None:
        if not _is_loopback(host):
            raise ValueError(
                f"the embedded MQTT broker allows anonymous clients and listens on loopback only, not {host!r}; "
                "use 127.0.0.1 or ::1, or run an external broker with authentication and set its URL"
            )
        if not 0 < port < 65536:
            raise ValueError(f"MQTT broker port must be from 1 to 65535, got {port}")
        self.host = host
        self.port = port
        self._broker: Any = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"mqtt://{host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._broker is not None

    def _config(self) -> dict[str, Any]:
        # amqtt brackets an IPv6 literal before handing it to asyncio, which cannot resolve it;
        # its rsplit(':') parsing takes the bare form instead.
        bind = f"{self.host}:{self.port}"
        return {
            "listeners": {"default": {"type": "tcp", "bind": bind}},
            # Listing plugins replaces amqtt's defaults: no $SYS publisher, no packet logger.
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }

    async def start(self) -> None:
        if self._broker is not None:
            raise RuntimeError("embedded MQTT broker already started")
        from amqtt.broker import Broker
        from amqtt.errors import BrokerError

        broker = Broker(self._config())
        try:
            await broker.start()
        except BrokerError as exc:
            raise BrokerStartError(
                f"cannot start the embedded MQTT broker on {self.host}:{self.port}: {exc.__cause__ or exc}; "
                "free the port or choose another one, or set the URL of an external broker"
            ) from exc
        self._broker = broker
        log.info("embedded mqtt broker started", url=self.url)

    async def stop(self) -> None:
        broker, self._broker = self._broker, None
        if broker is not None:
            await broker.shutdown()
            log.info("embedded mqtt broker stopped", url=self.url)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
