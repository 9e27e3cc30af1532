"""The composition root: what `dialer run` starts, in order, and stops in reverse.

Storage (migrated on start), the event bus and its MQTT bridge (embedded amqtt broker by
default), the SIP user agent with its registrar, the trunk (registered to, or trusted by
address and pinged with OPTIONS), then the services that ride on them (ACD, campaign
runner, web console) as :class:`Service` objects. SIGTERM or SIGINT stops everything in
reverse order: services end or close their calls and flush their records before the SIP
stack, the bus and the database go away.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from infra.bus import EventBus
from infra.db import create_engine, create_sessionmaker, migrate
from infra.mqtt import EmbeddedBroker, MqttBridge
from infra.settings import Settings
from telephony import Destination, OptionsKeepalive, TrunkRegistration, UAConfig, UserAgent

__all__ = ["DialerApp", "Service"]

log = structlog.get_logger(__name__)


class Service(Protocol):
    """Something the app starts after the core and stops before it."""

    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


ServiceFactory = Callable[["DialerApp"], Awaitable[Service | None]]


@dataclass
class DialerApp:
    settings: Settings
    service_factories: list[ServiceFactory] = field(default_factory=list)
    engine: AsyncEngine | None = None
    sessionmaker: async_sessionmaker[AsyncSession] | None = None
    bus: EventBus = field(default_factory=EventBus)
    broker: EmbeddedBroker | None = None
    mqtt: MqttBridge | None = None
    ua: UserAgent | None = None
    trunk_registration: TrunkRegistration | None = None
    trunk_keepalive: OptionsKeepalive | None = None
    services: list[Service] = field(default_factory=list)
    acd: Any = None  # acd.service.AcdService when [acd.queues] is configured
    recordings: Any = None  # recordings.service.RecordingService
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    # Start-up -----------------------------------------------------------------------------
    async def start(self) -> None:
        s = self.settings
        s.site.data_dir.mkdir(parents=True, exist_ok=True)
        self.engine = create_engine(s.database_url, echo=s.database.echo, pool_size=s.database.pool_size)
        if s.database.migrate_on_start:
            revision = await migrate(self.engine)
            log.info("app.database", revision=revision)
        self.sessionmaker = create_sessionmaker(self.engine)

        url = s.mqtt.url
        if s.mqtt.embedded:
            host, port = _mqtt_host_port(url)
            self.broker = EmbeddedBroker(host=host, port=port)
            await self.broker.start()
            url = self.broker.url
        self.mqtt = MqttBridge(self.bus, url=url, site=s.site.name, topic_prefix=s.mqtt.topic_prefix)
        await self.mqtt.start()

        self.ua = UserAgent(self._ua_config())
        self.ua.accepting = False  # 503 + Retry-After until the services below are up
        await self.ua.start()
        self._start_trunk()

        for factory in self.service_factories:
            service = await factory(self)
            if service is None:
                continue
            await service.start()
            self.services.append(service)
            log.info("app.service_started", service=service.name)
        self.ua.accepting = True
        log.info("app.started", sip=f"{s.sip.listen_host}:{self.ua.port}", site=s.site.name)

    def _ua_config(self) -> UAConfig:
        s = self.settings
        trusted: set[str] = set()
        proxy: Destination | None = None
        if s.trunk.host:
            trusted = _resolve_all(s.trunk.host)
            addr = sorted(trusted)[0] if trusted else s.trunk.host
            proxy = Destination(s.trunk.transport, addr, s.trunk.port)
        return UAConfig(
            host=s.sip.listen_host,
            port=s.sip.listen_port,
            public_host=s.sip.public_address,
            user_agent=s.sip.user_agent,
            tcp="tcp" in s.sip.transports,
            realm=s.site.name,
            trusted_sources=trusted,
            media_ports=(s.sip.rtp_port_min, s.sip.rtp_port_max),
            outbound_proxy=proxy,
            user=s.trunk.username or "dialer",
        )

    def _start_trunk(self) -> None:
        t = self.settings.trunk
        assert self.ua is not None
        if not t.host:
            return
        uri = f"sip:{t.host}:{t.port};transport={t.transport}"
        if t.mode == "register":
            if not t.username or not t.password:
                raise ValueError('[trunk] mode = "register" needs username and password: set both, or mode = "peer"')
            self.trunk_registration = self.ua.keep_registered(uri, t.username, t.password)
        else:
            self.trunk_keepalive = self.ua.keepalive(uri)

    # Running ------------------------------------------------------------------------------
    def request_stop(self) -> None:
        self._stop.set()

    async def run_until_stopped(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.request_stop)
        try:
            await self._stop.wait()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    # Shutdown -----------------------------------------------------------------------------
    async def stop(self) -> None:
        log.info("app.stopping")
        for service in reversed(self.services):
            try:
                await asyncio.wait_for(service.stop(), 30)
            except Exception as exc:  # one broken service must not keep the rest running
                log.error("app.service_stop_failed", service=service.name, error=str(exc))
        self.services.clear()
        if self.ua is not None:
            await self.ua.close()  # unregisters the trunk, hangs up what is left
        if self.mqtt is not None:
            await self.mqtt.stop()
        if self.broker is not None:
            await self.broker.stop()
        if self.engine is not None:
            await self.engine.dispose()
        log.info("app.stopped")


def _mqtt_host_port(url: str) -> tuple[str, int]:
    from infra.mqtt import BrokerAddress

    addr = BrokerAddress.parse(url)
    return addr.host, addr.port


def _resolve_all(host: str) -> set[str]:
    with contextlib.suppress(OSError):
        return {str(info[4][0]) for info in socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)}
    return {host}
