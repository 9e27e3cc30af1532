"""End to end: a 56-lead outbound campaign over real SIP and RTP on 127.0.0.1.

The product side is what ``dialer run`` starts: one user agent with its registrar, the live ACD
(ring-mode agents in one queue) and the campaign runner service dialling through the trunk. The
other side is simulated: :class:`dialer.sim.SimulatedCarrier` is the trunk with seeded customers
who answer, are busy, do not answer or are an answering machine (synthesised speech), and
:class:`dialer.sim.SimulatedAgent` softphones register, answer, talk and key their
dispositions. The runner's wall clock is placed at Monday 10:00 London and later moved to the
afternoon and the evening so retries come due; SIP and media timing stay real.

Checks: every lead ends in the state its attempts call for, every attempt has a complete CDR that
agrees with the carrier's record, retries land in day-parts not tried yet, and no call is placed
outside the callee's window (a few New York leads are not dialled before 09:00 New York).
"""

from __future__ import annotations

import asyncio
import shutil
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from acd.service import AcdService, AcdServiceConfig
from dialer.campaigns import CampaignSettings, create_campaign
from dialer.models import CallAttempt, CampaignStatus, Contact, Lead, LeadStatus
from dialer.runner import CampaignRunner, RunnerService, RunnerTimers, SettableClock
from dialer.runner_agents import AcdAgentPool
from dialer.sim import (
    AgentBehaviour,
    AgentMode,
    Behaviour,
    CarrierConfig,
    CustomerModel,
    CustomerModelConfig,
    SimAudio,
    SimulatedAgent,
    SimulatedCarrier,
    Voice,
)
from infra.bus import EventBus
from infra.db import create_engine, create_sessionmaker, migrate
from ivr.prompts import SHIPPED_PROMPTS_DIR, PromptLibrary
from telephony.aio.ua import UAConfig, UserAgent

pytestmark = [
    pytest.mark.timeout(240),
    pytest.mark.skipif(
        not (shutil.which("espeak-ng") and shutil.which("sox")), reason="espeak-ng and sox synthesise the voices"
    ),
]

HOST = "127.0.0.1"
PASSWORD = "agent-pw-1"
CALLER_ID = "+442079460000"
LONDON, NEW_YORK = "Europe/London", "America/New_York"
MONDAY_10 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # 10:00 in London (GMT), 05:00 in New York
AFTERNOON = datetime(2026, 3, 2, 14, 5, tzinfo=UTC)  # 14:05 London, 09:05 New York
EVENING = datetime(2026, 3, 2, 17, 5, tzinfo=UTC)  # 17:05 London, 12:05 New York
AGENTS = [f"agent{i}" for i in range(12)]
MIX = {Behaviour.ANSWER_HUMAN: 0.4, Behaviour.ANSWER_MACHINE: 0.12, Behaviour.BUSY: 0.2, Behaviour.NO_ANSWER: 0.28}
CARRIER_RESULT = {
    Behaviour.BUSY: {"busy"},
    Behaviour.NO_ANSWER: {"no_answer"},
    Behaviour.ANSWER_MACHINE: {"machine"},
    Behaviour.ANSWER_HUMAN: {"completed", "abandoned"},
}
# Every unreached outcome moves the next attempt to an untried day-part (busy and failed included).
ROTATING = {"no_answer", "busy", "machine", "abandoned", "failed", "rejected", "unavailable"}
TIMERS = RunnerTimers(safety_tick_s=0.5, decide_tick_s=0.25, status_poll_s=0.3, stats_every_s=0.5, drain_s=30.0)


@pytest.fixture(scope="module")
def audio() -> SimAudio:
    lib = SimAudio(voices=[Voice("en-us", 165), Voice("en-gb+f3", 150)], customer_voices=2)
    lib.prepare(AGENTS)
    return lib


class Campaign:
    def __init__(self, tmp: Path, audio: SimAudio) -> None:
        self.tmp = tmp
        self.audio = audio
        self.clock = SettableClock(MONDAY_10)
        self.engine = create_engine(f"sqlite+aiosqlite:///{tmp / 'dialer.db'}")
        self.sm = create_sessionmaker(self.engine)
        self.bus = EventBus()
        self.events: list[Any] = []
        self.bus.add_listener(self.events.append)
        self.agents: list[SimulatedAgent] = []

    async def start(self) -> None:
        await migrate(self.engine)
        model = CustomerModel(
            CustomerModelConfig(
                mix=MIX,
                ring_median_s=1.5,
                ring_max_s=6.0,
                # From the answer: long enough that nobody hangs up while AMD listens to "Hello?".
                talk_mean_s=5.0,
                talk_min_s=4.0,
                talk_max_s=7.0,
                post_dial_delay_s=(0.05, 0.3),
            ),
            seed=11,
        )
        self.carrier = SimulatedCarrier(model, self.audio, CarrierConfig(no_answer_timeout_s=60.0), clock=self.clock)
        await self.carrier.start()
        self.ua = UserAgent(
            UAConfig(
                host=HOST,
                port=0,
                user="dialer",
                realm="dialer.test",
                tcp=False,
                trusted_sources={HOST},
            )
        )
        await self.ua.start()
        config = AcdServiceConfig.from_mapping(
            {
                "queues": [
                    {"id": "sales", "wrapup_s": 0.5, "ring_timeout_s": 2.0, "retry_s": 0.2, "sticky_wait_s": 0.0,
                     "hold": {"enabled": False}}
                ],
                "agents": [
                    {"id": a, "password": PASSWORD, "mode": "ring", "queues": {"sales": 0}} for a in AGENTS
                ],
                "trusted_sources": [HOST],
                "voicemail_dir": str(self.tmp / "voicemail"),
                "queue_log_flush_s": 0.1,
                "stats_interval_s": 0.5,
                "seed": 3,
            }
        )  # fmt: skip
        self.acd = AcdService(
            config, self.ua, self.bus, self.sm, prompts=PromptLibrary(SHIPPED_PROMPTS_DIR, SHIPPED_PROMPTS_DIR)
        )
        await self.acd.start()
        behaviour = AgentBehaviour(
            answer_delay_s=(0.1, 0.3),
            talk_s=(2.0, 4.0),
            listen_s=(0.3, 0.8),
            wrap_up_s=(0.2, 0.5),
            dispositions={"1": 0.6, "2": 0.4},
            detect_disconnect_tone=True,
        )
        for i, name in enumerate(AGENTS):
            agent = SimulatedAgent(
                name, PASSWORD, f"sip:{HOST}:{self.ua.port}", audio=self.audio, mode=AgentMode.RING,
                behaviour=behaviour, seed=i,
            )  # fmt: skip
            await agent.start()
            await self.acd.agent_login(name)
            self.agents.append(agent)
        self.service = RunnerService(
            sessionmaker=self.sm,
            ua=self.ua,
            pool_for=lambda row: AcdAgentPool(self.acd, lambda _cid: "sales", bus=self.bus),
            trunk_uri=f"sip:{{number}}@{HOST}:{self.carrier.port}",
            bus=self.bus,
            node="e2e-node",
            clock=self.clock,
            timers=TIMERS,
            runner_options={"prompts": PromptLibrary(SHIPPED_PROMPTS_DIR)},
        )

    async def stop(self) -> None:
        await self.service.stop()
        for agent in self.agents:
            await agent.stop()
        await self.acd.stop()
        await self.carrier.close()
        await self.ua.close()
        await self.engine.dispose()

    async def create(self, london: int, new_york: int) -> tuple[int, dict[int, tuple[str, ...]]]:
        settings = CampaignSettings.model_validate(
            {
                "timezone": LONDON,
                "caller_id": CALLER_ID,
                "queue": "sales",
                "amd": True,
                "pacing": {
                    "mode": "power",
                    "lines_per_agent": 2.0,
                    "max_lines": 24,
                    "calls_per_second": 10,
                    "ring_timeout_seconds": 15,
                },
                "retry": {"max_attempts": 3, "max_attempts_per_number": 3, "reach_deadline_hours": 0},
                "dispositions": [
                    {"code": "1", "label": "Sale", "effective": True, "success": True, "final": True},
                    {"code": "2", "label": "Not interested", "contact": True, "final": True},
                ],
            }
        )
        zones: dict[int, tuple[str, ...]] = {}
        async with self.sm() as session, session.begin():
            c = await create_campaign(session, "renewals", settings, status=CampaignStatus.ACTIVE, now=self.clock())
            numbers = [(f"+4420794{i:05d}", LONDON) for i in range(london)]
            numbers += [(f"+1212555{i:04d}", NEW_YORK) for i in range(new_york)]
            for number, tz in numbers:
                contact = Contact(phone=number, timezones=[tz], country="GB" if tz == LONDON else "US")
                session.add(contact)
                await session.flush()
                lead = Lead(
                    campaign_id=c.id,
                    contact_id=contact.id,
                    status=LeadStatus.READY,
                    next_attempt_at=self.clock() - timedelta(minutes=5),
                    created_at=self.clock(),
                )
                session.add(lead)
                await session.flush()
                zones[lead.id] = (tz,)
            return c.id, zones

    async def leads(self) -> list[Lead]:
        async with self.sm() as session:
            return list((await session.execute(select(Lead).order_by(Lead.id))).scalars())

    async def cdrs(self) -> list[CallAttempt]:
        async with self.sm() as session:
            return list((await session.execute(select(CallAttempt).order_by(CallAttempt.id))).scalars())

    def runner(self, campaign_id: int) -> CampaignRunner:
        return self.service.runners[campaign_id]

    async def settle(self, campaign_id: int, timeout: float) -> None:
        """Wait until nothing is due at the current (fake) time and no call is up."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        quiet_since: float | None = None
        while True:
            now = self.clock()
            runner = self.service.runners.get(campaign_id)
            due = [
                lead.id
                for lead in await self.leads()
                if lead.status == LeadStatus.DIALING
                or (
                    lead.status in (LeadStatus.READY, LeadStatus.CALLBACK)
                    and lead.next_attempt_at is not None
                    and lead.next_attempt_at <= now
                )
            ]
            busy = runner is None or bool(runner.live) or bool(due)
            if not busy:
                quiet_since = quiet_since or loop.time()
                if loop.time() - quiet_since > 0.6:
                    return
            else:
                quiet_since = None
            if loop.time() > deadline:
                states = {a: self.acd.agent_info(a).state.value for a in AGENTS}
                sims = {a.username: a.state.value for a in self.agents}
                raise AssertionError(
                    f"campaign not settled after {timeout} s: due or dialing leads {due}; ACD agents {states}; "
                    f"softphones {sims}; runner live {list(runner.live) if runner else None}"
                )
            await asyncio.sleep(0.2)


@pytest.fixture
async def campaign(tmp_path: Path, audio: SimAudio) -> AsyncIterator[Campaign]:
    c = Campaign(tmp_path, audio)
    await c.start()
    try:
        yield c
    finally:
        await c.stop()


async def test_a_campaign_of_56_leads_ends_every_lead_right_with_complete_cdrs(campaign: Campaign) -> None:
    c = campaign
    cid, zones = await c.create(london=50, new_york=6)
    await c.service.start()
    await c.settle(cid, 70)
    morning = await c.cdrs()
    assert len(morning) == 50, "every London lead dialled once in the morning, no New York lead at 05:00"
    c.clock.jump_to(AFTERNOON)
    await c.settle(cid, 60)
    c.clock.jump_to(EVENING)
    await c.settle(cid, 60)
    await asyncio.sleep(1.5)  # the last dispositions keyed in wrap-up
    rows = await c.cdrs()
    leads = {lead.id: lead for lead in await c.leads()}
    truth = {rec.call_id: rec for rec in c.carrier.log}
    settings = CampaignSettings.model_validate(await _campaign_settings(c, cid))
    window = settings.calling_window()
    policy = settings.retry_policy()

    # Every attempt: a complete CDR that agrees with what the customer did.
    outcomes = Counter(r.outcome for r in rows)
    for r in rows:
        assert r.lead_id is not None
        assert r.dialled_at and r.ended_at and r.ended_at >= r.dialled_at and r.call_id and r.node == "e2e-node"
        rec = truth.get(r.call_id)
        assert rec is not None, f"CDR {r.id} has no carrier record"
        assert rec.caller_id == CALLER_ID, "the campaign's caller ID is presented"
        assert rec.behaviour is not None and r.outcome in CARRIER_RESULT[rec.behaviour], (r.outcome, rec.as_dict())
        assert window.is_callable(zones[r.lead_id], None, r.dialled_at), f"CDR {r.id} dialled outside the window"
        if r.outcome == "busy":
            assert r.sip_status == 486 and r.answered_at is None
        if r.outcome == "no_answer":
            assert r.ringing_at is not None and (r.ended_at - r.dialled_at).total_seconds() >= 14.5
        if r.outcome in ("machine", "completed", "abandoned"):
            assert r.answered_at is not None and r.sip_status == 200 and r.amd_result is not None
        if r.outcome == "machine":
            assert r.amd_result == "machine" and r.agent_id is None
        if r.outcome == "completed":
            assert r.agent_id in AGENTS and r.bridged_at is not None and r.talk_seconds is not None
            assert r.answered_at is not None
            assert (r.bridged_at - r.answered_at).total_seconds() <= 2.0 + 5.5, "AMD then at most 2 s to an agent"
    for kind in ("busy", "no_answer", "machine", "completed"):
        assert outcomes[kind] > 0, f"the customer mix produced no {kind}: {outcomes}"
    assert sum(1 for r in rows if r.outcome == "completed" and r.disposition in ("1", "2")) > 0, "agents disposed"

    # New York leads waited for 09:00 New York (14:00 UTC).
    for r in rows:
        assert r.lead_id is not None
        if zones[r.lead_id] == (NEW_YORK,):
            assert r.dialled_at >= datetime(2026, 3, 2, 14, 0, tzinfo=UTC)

    # Every lead ends in the state its attempts call for.
    by_lead: dict[int, list[CallAttempt]] = {}
    for r in rows:
        assert r.lead_id is not None
        by_lead.setdefault(r.lead_id, []).append(r)
    for lead_id, lead in leads.items():
        attempts = by_lead.get(lead_id, [])
        assert attempts, f"lead {lead_id} was never dialled"
        assert lead.attempts == len(attempts) and lead.claimed_by is None
        last = attempts[-1]
        assert lead.last_outcome == last.outcome
        if last.outcome == "completed":
            assert lead.status == LeadStatus.DONE, (lead_id, lead.status, lead.next_attempt_reason)
        elif len(attempts) >= 3:
            assert lead.status == LeadStatus.EXHAUSTED and "attempts" in (lead.next_attempt_reason or "")
        else:
            assert lead.status == LeadStatus.READY and lead.next_attempt_at is not None
            assert lead.next_attempt_at > c.clock(), f"lead {lead_id} is due but was not dialled"
            assert lead.next_attempt_reason
            if last.outcome == "abandoned":
                assert last.ended_at is not None and lead.next_attempt_at - last.ended_at >= timedelta(hours=72)
        # Retries after unreached outcomes go to day-parts not tried yet.
        parts = [policy.daypart_at(r.dialled_at, zones[lead_id][0]) for r in attempts]
        names = [p.name if p else None for p in parts]
        for k in range(1, len(attempts)):
            if attempts[k - 1].outcome in ROTATING:
                assert names[k] not in names[:k], f"lead {lead_id} retried in a day-part already tried: {names}"
    retried = [ls for ls in by_lead.values() if len(ls) > 1]
    assert retried, "some leads were retried"


async def _campaign_settings(c: Campaign, campaign_id: int) -> dict[str, Any]:
    from dialer.models import Campaign as CampaignRow

    async with c.sm() as session:
        row = await session.get(CampaignRow, campaign_id)
        assert row is not None
        return dict(row.settings)
