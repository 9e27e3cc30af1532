"""A small world for ACD tests over real SIP on 127.0.0.1: our service UA (registrar + DIDs), agent
phones (our UAs registered with digest auth) and callers (our UAs calling a DID through the
trusted "trunk" address), with a migrated SQLite database and the event bus recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import select

from acd.models import QueueLogRow
from acd.service import AcdService, AcdServiceConfig
from infra.bus import EventBus
from infra.db import create_engine, create_sessionmaker, migrate
from ivr.prompts import SHIPPED_PROMPTS_DIR, PromptLibrary, write_wav
from telephony.aio.ua import Call, UAConfig, UserAgent
from telephony.media.player import tone

HOST = "127.0.0.1"
PASSWORD = "s3cret-pw"

Behaviour = Literal["answer", "reject", "ignore"]


@dataclass(eq=False)
class Phone:
    """An agent's softphone: registers, answers/rejects/ignores offers, can dial the login code."""

    ua: UserAgent
    user: str
    behaviour: Behaviour = "answer"
    answer_delay: float = 0.0
    offers: list[Call] = field(default_factory=list)
    answered: list[Call] = field(default_factory=list)
    offered_at: list[float] = field(default_factory=list)
    nailed: Call | None = None

    def on_incoming(self, call: Call) -> None:
        self.offers.append(call)
        self.offered_at.append(asyncio.get_running_loop().time())
        asyncio.get_running_loop().create_task(self._handle(call))

    async def _handle(self, call: Call) -> None:
        if self.behaviour == "reject":
            await call.reject(486)
            return
        await call.ring()
        if self.behaviour == "ignore":
            return
        if self.answer_delay:
            await asyncio.sleep(self.answer_delay)
        if not call.ended:
            await call.answer()
            self.answered.append(call)

    async def login_nailed(self, server_port: int, code: str = "*55") -> Call:
        call = await self.ua.call(f"sip:{code}@{HOST}:{server_port}", auth=(self.user, PASSWORD))
        outcome = await asyncio.wait_for(call.wait_answered(), 5)
        assert outcome.outcome.value == "answered", outcome
        self.nailed = call
        return call

    @property
    def current(self) -> Call:
        assert self.answered, f"{self.user} answered nothing"
        return self.answered[-1]


class World:
    def __init__(self, tmp_path: Path, config: dict[str, Any], *, media_timeout: float = 30.0) -> None:
        self.tmp_path = tmp_path
        self.raw_config = config
        self.media_timeout = media_timeout
        self.server = UserAgent(
            UAConfig(host=HOST, port=0, user="acd", realm="acd.test", media_timeout=media_timeout, tcp=False)
        )
        self.bus = EventBus()
        self.events: list[Any] = []
        self.bus.add_listener(self.events.append)
        self.phones: dict[str, Phone] = {}
        self.callers: list[UserAgent] = []
        self.called_back: list[Call] = []
        self.engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'acd.db'}")
        self.sessionmaker = create_sessionmaker(self.engine)
        self.service: AcdService

    async def start(self) -> None:
        await migrate(self.engine)
        await self.server.start()
        # Where callbacks land: one UA answering for every customer number.
        self.customers = UserAgent(UAConfig(host=HOST, port=0, user="customer", registrar=False, tcp=False))
        await self.customers.start()
        self.customers.on_incoming = self._callback_arrives
        self.callers.append(self.customers)
        cfg = {
            "trusted_sources": [HOST],
            "voicemail_dir": str(self.tmp_path / "voicemail"),
            "callback_uri": f"sip:{{number}}@{HOST}:{self.customers.port}",
            "queue_log_flush_s": 0.05,
            "stats_interval_s": 0.1,
            "effective_talk_s": 0.0,
            "seed": 7,
            **self.raw_config,
        }
        for agent in cfg.get("agents", []):
            agent.setdefault("password", PASSWORD)
        self.service = AcdService(
            AcdServiceConfig.from_mapping(cfg),
            self.server,
            self.bus,
            self.sessionmaker,
            prompts=PromptLibrary(self._short_prompts(), SHIPPED_PROMPTS_DIR),
        )
        await self.service.start()

    def _callback_arrives(self, call: Call) -> None:
        self.called_back.append(call)
        asyncio.get_running_loop().create_task(call.answer())

    def _short_prompts(self) -> Path:
        """Short stand-ins for the long shipped prompts, so tests stay quick."""
        folder = self.tmp_path / "prompts"
        folder.mkdir(exist_ok=True)
        for name in ("callback_confirm", "voicemail_intro", "goodbye", "closed", "survey_question", "survey_thanks"):
            write_wav(folder / f"{name}.wav", tone(700, 0.3, 0.2))
        return folder

    async def stop(self) -> None:
        await self.service.stop()
        for phone in self.phones.values():
            await phone.ua.close()
        for ua in self.callers:
            await ua.close()
        await self.server.close()
        await self.engine.dispose()

    @property
    def port(self) -> int:
        return self.server.port

    async def phone(self, user: str, behaviour: Behaviour = "answer", *, register: bool = True) -> Phone:
        ua = UserAgent(UAConfig(host=HOST, port=0, user=user, registrar=False, tcp=False, media_timeout=30.0))
        await ua.start()
        phone = Phone(ua=ua, user=user, behaviour=behaviour)
        ua.on_incoming = phone.on_incoming
        self.phones[user] = phone
        if register:
            resp = await ua.register(f"sip:{HOST}:{self.port}", user, PASSWORD, expires=300)
            assert resp is not None and resp.status == 200, resp
        return phone

    async def call(self, did: str, number: str = "15550001", *, wait_answer: bool = True) -> Call:
        """A customer calls ``did`` from ``number`` through the trusted trunk address."""
        ua = UserAgent(UAConfig(host=HOST, port=0, user=number, registrar=False, tcp=False, media_timeout=30.0))
        await ua.start()
        ua.on_incoming = answer_soon  # callbacks come back to the same number
        self.callers.append(ua)
        call = await ua.call(f"sip:{did}@{HOST}:{self.port}")
        if wait_answer:
            outcome = await asyncio.wait_for(call.wait_answered(), 5)
            assert outcome.outcome.value == "answered", outcome
        return call

    async def customer_ua(self, number: str) -> UserAgent:
        """A customer that only receives calls (callbacks), listening where callback_uri points."""
        ua = UserAgent(UAConfig(host=HOST, port=0, user=number, registrar=False, tcp=False, media_timeout=30.0))
        await ua.start()
        self.callers.append(ua)
        return ua

    async def rows(self, event: str | None = None) -> list[QueueLogRow]:
        assert self.service.writer is not None
        await self.service.writer.flush()
        async with self.sessionmaker() as session:
            stmt = select(QueueLogRow).order_by(QueueLogRow.id)
            if event is not None:
                stmt = stmt.where(QueueLogRow.event == event)
            return list((await session.execute(stmt)).scalars().all())

    def state(self, agent_id: str) -> str:
        return self.service.agent_info(agent_id).state.value

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


def answer_soon(call: Call) -> None:
    asyncio.get_running_loop().create_task(call.answer())


async def until(predicate: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    """Wait (polling the loop, bounded) until ``predicate()`` holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def world(tmp_path: Path, config: dict[str, Any], **kwargs: Any) -> AsyncIterator[World]:
    w = World(tmp_path, config, **kwargs)
    await w.start()
    try:
        yield w
    finally:
        await w.stop()


def queue(qid: str, **kwargs: Any) -> dict[str, Any]:
    """A queue with short test timers and hold audio off unless asked for."""
    base: dict[str, Any] = {
        "id": qid,
        "wrapup_s": 0.0,
        "ring_timeout_s": 2.0,
        "retry_s": 0.2,
        "sticky_wait_s": 0.0,
        "hold": {"enabled": False},
    }
    base.update(kwargs)
    return base


def agent(aid: str, queues: dict[str, int] | None = None, **kwargs: Any) -> dict[str, Any]:
    return {"id": aid, "queues": queues or {"q": 0}, **kwargs}
