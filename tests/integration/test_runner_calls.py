"""The campaign runner over real SIP on 127.0.0.1: our UAs are the customers (busy, no answer,
answer, ring for ever) and the agents (auto-answer); CDR rows, lead rescheduling into other
day-parts, the 2-second abandon with its message, pause/resume, and two runners on one database.
"""

from __future__ import annotations

import asyncio
import contextlib
import wave
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from dialer.campaigns import CampaignSettings, create_campaign, set_campaign_status
from dialer.dnc import add_dnc, dnc_match
from dialer.models import CallAttempt, CampaignStatus, Contact, Lead, LeadStatus
from dialer.runner import CampaignRunner, RunnerTimers, SettableClock
from dialer.runner_agents import UaAgentPool
from infra.db import create_engine, create_sessionmaker, migrate
from telephony.aio.ua import Call, UAConfig, UserAgent
from telephony.media.player import tone
from tests.storage.conftest import postgres_template  # type: ignore[attr-defined]  # noqa: F401  (PostgreSQL template fixture)

pytestmark = pytest.mark.timeout(90)

HOST = "127.0.0.1"
LONDON = "Europe/London"
# Monday 2 March 2026, 10:00 in London (GMT): the morning day-part, inside the 09:00-21:00 window.
MONDAY_10 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
FAST = RunnerTimers(safety_tick_s=0.5, decide_tick_s=0.2, status_poll_s=0.2, stats_every_s=0.5, drain_s=20.0)


@dataclass
class Customers:
    """One UA answering for every customer number; what it does depends on the number's last digits."""

    ua: UserAgent
    tmp: Path
    behaviour: dict[str, str] = field(default_factory=dict)  # number -> busy|ring|answer|ring_forever|machine
    talk_s: float = 2.0
    calls: list[Call] = field(default_factory=list)
    recordings: dict[str, Path] = field(default_factory=dict)
    #: "machine": the greeting it plays (then a short pause and a 1 kHz beep)
    machine_greeting: Any = None
    #: "machine": seconds from the answer (the start of its recording) to the end of its beep
    beep_end_s: dict[str, float] = field(default_factory=dict)

    def on_incoming(self, call: Call) -> None:
        self.calls.append(call)
        asyncio.get_running_loop().create_task(self._serve(call))

    async def _serve(self, call: Call) -> None:
        number = (call.request_uri.user if call.request_uri is not None else None) or ""
        what = self.behaviour.get(number or "", "answer")
        if what == "busy":
            await call.reject(486, "Busy Here")
            return
        await call.ring()
        if what == "ring_forever":
            return
        await asyncio.sleep(0.3)
        if call.ended:
            return
        await call.answer()
        assert call.media is not None
        path = self.tmp / f"heard-{number}-{len(self.recordings)}.wav"
        call.media.record_to(path)
        self.recordings[number] = path
        if what == "machine":
            await self._machine(call, number)
            return
        with contextlib.suppress(asyncio.CancelledError):
            await call.play(tone(300.0, 0.4, 0.3))
        if what == "answer":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(call.wait_ended(), self.talk_s)
            await call.hangup()

    async def _machine(self, call: Call, number: str) -> None:
        """An answering machine: one long greeting, a pause, the beep, then it records until hung up."""
        greeting = self.machine_greeting if self.machine_greeting is not None else tone(300.0, 4.0, 0.3)
        started = asyncio.get_running_loop().time()
        with contextlib.suppress(asyncio.CancelledError, RuntimeError):
            await call.play(np.concatenate([greeting, np.zeros(2800, dtype=np.int16), tone(1000.0, 0.4, 0.3)]))
        self.beep_end_s[number] = asyncio.get_running_loop().time() - started
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(call.wait_ended(), 40.0)


class Agents:
    """Agent phones: our UAs answering at once (``answer``) or ringing for ever (``ring``)."""

    def __init__(self) -> None:
        self.uas: dict[str, UserAgent] = {}
        self.answered: list[Call] = []

    async def add(self, agent_id: str, behaviour: str = "answer") -> str:
        ua = UserAgent(UAConfig(host=HOST, port=0, user=agent_id, registrar=False, tcp=False))
        await ua.start()

        def incoming(call: Call) -> None:
            async def handle() -> None:
                await call.ring()
                if behaviour == "answer":
                    await call.answer()
                    self.answered.append(call)

            asyncio.get_running_loop().create_task(handle())

        ua.on_incoming = incoming
        self.uas[agent_id] = ua
        return f"sip:{agent_id}@{HOST}:{ua.port}"

    async def close(self) -> None:
        for ua in self.uas.values():
            await ua.close()


class World:
    def __init__(self, tmp: Path, engine: AsyncEngine) -> None:
        self.tmp = tmp
        self.engine = engine
        self.sm: async_sessionmaker[AsyncSession] = create_sessionmaker(engine)
        self.clock = SettableClock(MONDAY_10)
        self.agents = Agents()
        self.runners: list[CampaignRunner] = []
        self.pools: list[UaAgentPool] = []
        self.uas: list[UserAgent] = []

    async def start(self) -> None:
        cust = UserAgent(UAConfig(host=HOST, port=0, user="carrier", registrar=False, tcp=False))
        await cust.start()
        self.customers = Customers(cust, self.tmp)
        cust.on_incoming = self.customers.on_incoming
        self.uas.append(cust)

    async def dialer_ua(self) -> UserAgent:
        ua = UserAgent(UAConfig(host=HOST, port=0, user="dialer", registrar=False, tcp=False))
        await ua.start()
        self.uas.append(ua)
        return ua

    async def campaign(self, name: str = "c1", **overrides: Any) -> int:
        settings = CampaignSettings.model_validate(
            {
                "timezone": LONDON,
                "caller_id": "+442071230000",
                "pacing": {"mode": "progressive", "ring_timeout_seconds": 15},
                **overrides,
            }
        )
        async with self.sm() as session, session.begin():
            c = await create_campaign(session, name, settings, status=CampaignStatus.ACTIVE, now=self.clock())
            return c.id

    async def leads(self, campaign_id: int, numbers: list[str], zones: tuple[str, ...] = (LONDON,)) -> list[int]:
        ids = []
        now = self.clock()
        async with self.sm() as session, session.begin():
            for number in numbers:
                contact = (await session.execute(select(Contact).where(Contact.phone == number))).scalar_one_or_none()
                if contact is None:
                    contact = Contact(phone=number, timezones=list(zones), country="GB")
                    session.add(contact)
                    await session.flush()
                lead = Lead(
                    campaign_id=campaign_id,
                    contact_id=contact.id,
                    status=LeadStatus.READY,
                    next_attempt_at=now - timedelta(minutes=1),
                    created_at=now,
                )
                session.add(lead)
                await session.flush()
                ids.append(lead.id)
        return ids

    async def runner(
        self,
        campaign_id: int,
        pool: UaAgentPool,
        *,
        node: str = "node-a",
        sm: Any = None,
        ua: UserAgent | None = None,
        **options: Any,
    ) -> CampaignRunner:
        options.setdefault("abandon_audio", tone(440.0, 1.0, 0.3))
        runner = CampaignRunner(
            campaign_id,
            sessionmaker=sm or self.sm,
            ua=ua or pool.ua,
            agents=pool,
            trunk_uri=f"sip:{{number}}@{HOST}:{self.customers.ua.port}",
            node=node,
            clock=self.clock,
            timers=FAST,
            **options,
        )
        await runner.start()
        self.runners.append(runner)
        return runner

    async def pool(self, agents: dict[str, str], wrapup_s: float = 0.2) -> UaAgentPool:
        ua = await self.dialer_ua()
        uris = {a: await self.agents.add(a, behaviour) for a, behaviour in agents.items()}
        pool = UaAgentPool(ua, uris, wrapup_s=wrapup_s)
        self.pools.append(pool)
        return pool

    async def cdrs(self, lead_id: int | None = None) -> list[CallAttempt]:
        async with self.sm() as session:
            stmt = select(CallAttempt).order_by(CallAttempt.id)
            if lead_id is not None:
                stmt = stmt.where(CallAttempt.lead_id == lead_id)
            return list((await session.execute(stmt)).scalars())

    async def lead(self, lead_id: int) -> Lead:
        async with self.sm() as session:
            lead = await session.get(Lead, lead_id)
            assert lead is not None
            return lead

    async def stop(self) -> None:
        for runner in self.runners:
            await runner.stop()
        for pool in self.pools:
            await pool.close()
        await self.agents.close()
        for ua in self.uas:
            await ua.close()


@contextlib.asynccontextmanager
async def world(tmp_path: Path) -> AsyncIterator[World]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'runner.db'}")
    await migrate(engine)
    w = World(tmp_path, engine)
    await w.start()
    try:
        yield w
    finally:
        await w.stop()
        await engine.dispose()


async def until(predicate: Callable[[], Any], timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)


def rms(path: Path, start_s: float = 0.0) -> float:
    with wave.open(str(path), "rb") as f:
        pcm = np.frombuffer(f.readframes(f.getnframes()), dtype=np.int16).astype(np.float64)
    pcm = pcm[int(start_s * 8000) :]
    return float(np.sqrt(np.mean(pcm * pcm))) if pcm.size else 0.0


async def _finished(w: World, lead_ids: list[int]) -> bool:
    rows = await w.cdrs()
    done = {r.lead_id for r in rows if r.ended_at is not None}
    return all(i in done for i in lead_ids)


async def test_busy_no_answer_and_answered_calls_write_complete_cdrs_and_reschedule(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        busy, silent, human = "+442071230001", "+442071230002", "+442071230003"
        w.customers.behaviour = {busy: "busy", silent: "ring_forever", human: "answer"}
        cid = await w.campaign()
        pool = await w.pool({"a1": "answer", "a2": "answer", "a3": "answer"})
        lead_busy, lead_silent, lead_human = await w.leads(cid, [busy, silent, human])
        await w.runner(cid, pool)
        # The unanswered call rings the campaign's ring timeout (15 s, the minimum) before it is cancelled.
        await until(lambda: _finished(w, [lead_busy, lead_silent, lead_human]), 30, "three attempts to end")

        rows = {r.lead_id: r for r in await w.cdrs()}
        assert len(await w.cdrs()) == 3, "each lead is dialled exactly once"
        b, s, h = rows[lead_busy], rows[lead_silent], rows[lead_human]
        for r in (b, s, h):
            assert r.dialled_at is not None and r.ended_at is not None and r.ended_at >= r.dialled_at
            assert r.campaign_id == cid and r.node == "node-a" and r.call_id
            assert abs((r.dialled_at - MONDAY_10).total_seconds()) < 60, "times come from the runner's clock"
        assert (b.outcome, b.sip_status, b.answered_at, b.agent_id) == ("busy", 486, None, None)
        assert s.outcome == "no_answer" and s.ringing_at is not None and s.answered_at is None
        assert s.ended_at is not None and (s.ended_at - s.dialled_at).total_seconds() >= 14.5, (
            "rings the full 15 s ring timeout"
        )
        assert h.outcome == "completed" and h.sip_status == 200 and h.agent_id in {"a1", "a2", "a3"}
        assert h.ringing_at is not None and h.answered_at is not None and h.bridged_at is not None
        assert h.dialled_at <= h.ringing_at <= h.answered_at <= h.bridged_at <= h.ended_at  # type: ignore[operator]
        assert (h.bridged_at - h.answered_at).total_seconds() < 2.0
        assert h.talk_seconds is not None and 1.0 < h.talk_seconds < 5.0

        # The caller ID is presented in From and P-Asserted-Identity.
        invite = w.customers.calls[0].headers
        assert invite is not None and "+442071230000" in (invite.get("from") or "")
        assert "+442071230000" in (invite.get("p-asserted-identity") or "")

        ls, lb, lh = await w.lead(lead_silent), await w.lead(lead_busy), await w.lead(lead_human)
        assert lh.status == LeadStatus.DONE and lh.attempts == 1 and lh.last_outcome == "completed"
        # No answer in the morning: next in another day-part (after 14:00, past the 12-14 quiet hours).
        assert ls.status == LeadStatus.READY and ls.attempts == 1 and ls.dayparts_tried == ["morning"]
        assert ls.next_attempt_at is not None and ls.next_attempt_at >= datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
        assert ls.next_attempt_reason and "afternoon" in ls.next_attempt_reason
        assert ls.claimed_by is None and ls.number_attempts == [1]
        # Busy: at least the 10 minute delay, and in a day-part not tried yet (the afternoon, after 14:00).
        assert lb.status == LeadStatus.READY and lb.next_attempt_at is not None
        assert b.ended_at is not None and lb.next_attempt_at - b.ended_at >= timedelta(minutes=10)
        assert lb.next_attempt_at >= datetime(2026, 3, 2, 14, 0, tzinfo=UTC) and lb.dayparts_tried == ["morning"]
        assert lb.next_attempt_reason and "afternoon" in lb.next_attempt_reason


async def test_no_agent_within_two_seconds_abandons_with_the_message(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        number = "+442071230010"
        w.customers.behaviour = {number: "answer_silent"}
        cid = await w.campaign()
        # The only agent's phone rings and never answers: nobody is connected within 2 s.
        pool = await w.pool({"slow": "ring"})
        (lead_id,) = await w.leads(cid, [number])
        runner = await w.runner(cid, pool)
        await until(lambda: _finished(w, [lead_id]), 20, "the abandoned call to end")
        (row,) = await w.cdrs(lead_id)
        assert row.outcome == "abandoned" and row.agent_id is None and row.bridged_at is None
        assert row.answered_at is not None and row.ended_at is not None
        held = (row.ended_at - row.answered_at).total_seconds()
        assert 2.0 <= held < 5.5, f"message after 2 s, then hung up (held {held:.1f} s)"
        # The customer heard the message (440 Hz tone) after the 2 s grace.
        heard = w.customers.recordings[number]
        await until(lambda: heard.exists() and heard.stat().st_size > 1000, 3, "the customer's recording")
        assert rms(heard, start_s=2.0) > 1000
        assert runner.ledger.rate_today(w.clock()) == 1.0
        lead = await w.lead(lead_id)
        # Regulators: an abandoned number waits 72 h.
        assert lead.next_attempt_at is not None and lead.next_attempt_at - row.ended_at >= timedelta(hours=72)
        assert lead.last_outcome == "abandoned"


async def test_dnc_at_dial_time_and_outside_the_window(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        cid = await w.campaign()
        pool = await w.pool({"a1": "answer"})
        blocked, night = "+442071230020", "+12125550100"
        (lead_blocked,) = await w.leads(cid, [blocked])
        # A New York contact at 05:00 local time: outside 09:00-21:00.
        (lead_night,) = await w.leads(cid, [night], zones=("America/New_York",))
        async with w.sm() as session, session.begin():
            await add_dnc(session, "+4420712300*", campaign_id=None)  # a global prefix added after the import
        runner = await w.runner(cid, pool)
        await until(lambda: _status_is(w, {lead_blocked: LeadStatus.DNC}), 5, "the DNC lead to be marked at dial time")
        await until(lambda: _reason_set(w, lead_night), 5, "the night lead to be deferred")
        assert await w.cdrs() == [], "nothing was dialled"
        assert w.customers.calls == []
        night_lead = await w.lead(lead_night)
        assert night_lead.status == LeadStatus.READY and night_lead.attempts == 0
        # 09:00 in New York that day is 14:00 UTC.
        assert night_lead.next_attempt_at == datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
        assert runner.dialled == 0


async def _status_is(w: World, expected: dict[int, str]) -> bool:
    for lead_id, status in expected.items():
        if (await w.lead(lead_id)).status != status:
            return False
    return True


async def _reason_set(w: World, lead_id: int) -> bool:
    return bool((await w.lead(lead_id)).next_attempt_reason)


async def test_pause_stops_new_dials_at_once_and_ringing_calls_finish(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        numbers = [f"+44207123004{i}" for i in range(3)]
        w.customers.behaviour = dict.fromkeys(numbers, "answer")
        w.customers.talk_s = 0.8
        cid = await w.campaign()
        pool = await w.pool({"a1": "answer"})
        leads = await w.leads(cid, numbers)
        runner = await w.runner(cid, pool)
        await until(lambda: runner.live, 5, "the first call to be dialled")
        async with w.sm() as session, session.begin():
            await set_campaign_status(session, "c1", CampaignStatus.PAUSED)
        await until(lambda: runner.status == CampaignStatus.PAUSED, 2, "the runner to see the pause")
        await until(lambda: not runner.live, 10, "the ringing call to finish")
        (first,) = await w.cdrs()
        assert first.outcome == "completed", "a call ringing at the pause is answered and connected, not cancelled"
        await asyncio.sleep(1.5)  # the agent is free again: a running campaign would dial now
        assert len(await w.cdrs()) == 1 and runner.dialled == 1
        async with w.sm() as session, session.begin():
            await set_campaign_status(session, "c1", CampaignStatus.ACTIVE)
        await until(lambda: _finished(w, leads), 15, "the other leads after the resume")
        assert [r.outcome for r in await w.cdrs()] == ["completed"] * 3


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_two_runners_on_one_database_never_dial_a_lead_twice(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"
        engine = create_engine(url)
        await migrate(engine)
    else:
        from tests.conftest import require_postgres
        from tests.storage.conftest import _admin  # type: ignore[attr-defined]

        server = require_postgres(request.getfixturevalue("postgres_template"))
        name = f"runner_{abs(hash(request.node.nodeid)) % 10**8}"
        await _admin(server, f'CREATE DATABASE "{name}" TEMPLATE "dialer_template"')
        url = server.url(name)
        engine = create_engine(url)
    other = create_engine(url)
    w = World(tmp_path, engine)
    await w.start()
    try:
        numbers = [f"+4420712301{i:02d}" for i in range(24)]
        w.customers.behaviour = dict.fromkeys(numbers, "busy")
        cid = await w.campaign()
        leads = await w.leads(cid, numbers)
        pool_a = await w.pool({f"a{i}": "answer" for i in range(4)})
        pool_b = await w.pool({f"b{i}": "answer" for i in range(4)})
        # Two nodes, each with its own engine, SIP stack and agents, on the same campaign.
        await asyncio.gather(
            w.runner(cid, pool_a, node="node-a"),
            w.runner(cid, pool_b, node="node-b", sm=create_sessionmaker(other)),
        )
        await until(lambda: _finished(w, leads), 30, "every lead to be dialled")
        await asyncio.sleep(0.5)
        rows = await w.cdrs()
        per_lead: dict[int | None, int] = {}
        for r in rows:
            per_lead[r.lead_id] = per_lead.get(r.lead_id, 0) + 1
        assert sorted(k for k in per_lead if k is not None) == sorted(leads) and None not in per_lead
        assert set(per_lead.values()) == {1}, per_lead
        assert len(w.customers.calls) == len(leads), "the carrier saw each number once"
        assert {r.node for r in rows} == {"node-a", "node-b"}, "both nodes dialled"
    finally:
        await w.stop()
        await other.dispose()
        await engine.dispose()


async def test_preview_disposition_effective_and_an_owned_callback(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        first, second = "+442071230050", "+442071230051"
        w.customers.behaviour = {first: "answer", second: "answer"}
        cid = await w.campaign(effective_call_seconds=1, pacing={"mode": "preview", "ring_timeout_seconds": 15})
        pool = await w.pool({"a1": "answer", "a2": "answer"})
        lead_first, lead_second = await w.leads(cid, [first, second])
        runner = await w.runner(cid, pool)
        await asyncio.sleep(0.6)
        assert runner.dialled == 0, "preview mode never dials on its own"
        shown = await runner.preview_next("a2")
        assert shown is not None and shown.lead_id == lead_first and shown.number == first
        assert await runner.preview_next("a2") == shown, "the agent keeps their previewed lead"
        assert pool.load(cid).ready == 1, "a2 is held for the previewed lead"
        call_id = await runner.preview_dial("a2", lead_first)
        await until(lambda: _finished(w, [lead_first]), 10, "the previewed call to end")
        (row,) = await w.cdrs(lead_first)
        assert row.call_id == call_id and row.outcome == "completed" and row.agent_id == "a2"
        result = await runner.set_disposition("CALLBACK", "call me later", call_id=call_id, agent_id="a2")
        assert result.callback_requested and not result.effective and result.lead_status == LeadStatus.DONE
        # The agent agrees a time with the customer: in 3 s, London wall clock, owned by a2.
        at_local = (w.clock() + timedelta(seconds=3)).astimezone(ZoneInfo(LONDON)).replace(tzinfo=None)
        await runner.schedule_callback(lead_first, at_local, LONDON, owner="a2")
        lead = await w.lead(lead_first)
        assert lead.status == LeadStatus.CALLBACK and lead.callback_owner == "a2"
        # Meanwhile a1 previews the other lead (and holds it).
        held = await runner.preview_next("a1")
        assert held is not None and held.lead_id == lead_second
        due_at = lead.next_attempt_at
        assert due_at is not None
        await until(lambda: runner.clock() >= due_at, 6, "the callback to fall due")
        offered = await runner.preview_next("a2")
        assert offered is not None and offered.lead_id == lead_first and offered.callback_at is not None
        again = await runner.preview_dial("a2", lead_first)
        await until(lambda: _count(w, lead_first, 2), 10, "the callback to be dialled and end")
        rows = await w.cdrs(lead_first)
        assert len(rows) == 2 and rows[1].call_id == again and rows[1].agent_id == "a2"
        effective = await runner.set_disposition("SALE", None, attempt_id=rows[1].id, agent_id="a2")
        assert effective.effective and effective.lead_status == LeadStatus.DONE
        done = await w.lead(lead_first)
        assert done.status == LeadStatus.DONE and done.callback_at is None and done.last_disposition == "SALE"
        # The DNC flag puts the number on the campaign's list.
        call2 = await runner.preview_dial("a1", lead_second)
        await until(lambda: _finished(w, [lead_second]), 10, "the second call to end")
        dnc = await runner.set_disposition("DNC", None, call_id=call2)
        assert dnc.lead_status == LeadStatus.DNC
        async with w.sm() as session:
            assert await dnc_match(session, second, cid)


async def _count(w: World, lead_id: int, n: int) -> bool:
    rows = await w.cdrs(lead_id)
    return len(rows) >= n and all(r.ended_at is not None for r in rows)
