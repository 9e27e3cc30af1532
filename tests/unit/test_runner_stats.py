"""The campaign figures the wallboard shows (``CampaignRunner.stats()`` and the ``CampaignStats``
the runner publishes): dial level, lines in use, abandon rate today and over 30 days, effective
calls today against the target, on a hand-built CDR history.

The runner is the real one, started by the real :class:`RunnerService` on a migrated SQLite
database; its agents are a fake pool with fixed figures and its user agent a fake whose calls
ring until hung up, so lines stay in use and no socket is opened. The campaign's zone is
Asia/Shanghai (UTC+8): "today" is the local day, which began at 16:00 UTC the day before.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from dialer.campaigns import CampaignSettings, create_campaign
from dialer.models import CallAttempt, CampaignStatus, Contact, Lead, LeadStatus
from dialer.runner import RunnerService, RunnerTimers, SettableClock
from dialer.runner_agents import AgentLoad, OutboundLead
from dialer.web import LiveState
from dialer.web.events import CampaignStats
from infra.bus import EventBus
from infra.db import create_engine, create_sessionmaker, migrate
from telephony.sip.dialog import CallOutcome, Outcome

pytestmark = pytest.mark.timeout(30)

ZONE = "Asia/Shanghai"
NOW = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # Monday 10:00 in Shanghai, inside the calling window
LOCAL_MIDNIGHT = datetime(2026, 3, 1, 16, 0, tzinfo=UTC)
FAST = RunnerTimers(safety_tick_s=0.2, decide_tick_s=0.05, status_poll_s=0.1, stats_every_s=0.05, drain_s=0.1)


# -- fakes --------------------------------------------------------------------------------------------
class RingingCall:
    """An outbound call that rings until it is hung up (then: cancelled)."""

    def __init__(self, n: int) -> None:
        self.id = f"fake-{n}"
        self.created_at = time.time()
        self.ringing_at: float | None = self.created_at
        self.answered_at: float | None = None
        self.ended_at: float | None = None
        self.media = None
        self._outcome: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._ended = asyncio.Event()

    @property
    def ended(self) -> bool:
        return self._ended.is_set()

    async def wait_answered(self) -> Outcome:
        return await asyncio.shield(self._outcome)

    async def wait_ended(self) -> None:
        await self._ended.wait()

    async def hangup(self, reason: str | None = None) -> None:
        if not self._outcome.done():
            self._outcome.set_result(Outcome(CallOutcome.CANCELLED, 487, "Request Terminated"))
        self.ended_at = time.time()
        self._ended.set()


@dataclass
class FakeUA:
    calls: list[RingingCall] = field(default_factory=list)
    dialled: list[str] = field(default_factory=list)

    async def call(self, uri: str, **_kwargs: Any) -> RingingCall:
        self.dialled.append(uri)
        call = RingingCall(len(self.calls))
        self.calls.append(call)
        return call


@dataclass
class FakePool:
    """Two agents ready, one in wrap-up with 3 s left, nobody talking."""

    figures: AgentLoad = field(default_factory=lambda: AgentLoad(ready=2, wrapup_remaining_s=(3.0,), wrapup_s=10.0))

    def load(self, campaign_id: int) -> AgentLoad:
        return self.figures

    def is_ready(self, agent_id: str) -> bool:
        return False

    async def connect(
        self, call: Any, campaign_id: int, lead: OutboundLead, *, agent_id: str | None = None, wait_s: float = 2.0
    ) -> str | None:
        return None

    def reserve(self, agent_id: str, lead_id: int) -> bool:
        return False

    def release(self, agent_id: str, lead_id: int) -> None:
        pass

    def add_listener(self, callback: Callable[[], None]) -> Callable[[], None]:
        return lambda: None


# -- the hand-built history ------------------------------------------------------------------------------
def _cdr(
    campaign_id: int,
    answered: datetime | None,
    outcome: str,
    *,
    disposition: str | None = None,
    talk: float | None = None,
) -> CallAttempt:
    dialled = (answered or NOW - timedelta(hours=1)) - timedelta(seconds=8)
    bridged = answered + timedelta(seconds=1) if answered is not None and outcome == "completed" else None
    return CallAttempt(
        campaign_id=campaign_id,
        number="+8613800000000",
        dialled_at=dialled,
        answered_at=answered,
        bridged_at=bridged,
        ended_at=(answered or dialled) + timedelta(seconds=(talk or 0) + 2),
        outcome=outcome,
        disposition=disposition,
        talk_seconds=talk,
    )


def history(cid: int) -> list[CallAttempt]:
    """Human answers (completed + abandoned) per window, the figures the assertions expect:

    - local today (since 16:00 UTC yesterday): 8 completed + 2 abandoned -> 2/10; effective: SALE 30 s,
      SALE 45 s, SALE exactly 15 s (the threshold counts), INTERESTED 16 s = 4. Not effective:
      NOT_INTERESTED 14.9 s (too short), CALLBACK 60 s (code not effective), two without a code.
    - local yesterday: 10 completed, among them a SALE at 23:30 local (15:30 UTC, the same UTC date
      as today's first calls) that is not today's.
    - 20 days ago: 18 completed + 1 abandoned. Rolling 30 days: 39 answered, 3 abandoned.
    - 30 days and 1 hour ago (loaded, outside the 30 days): 3 abandoned; 40 days ago: 5 abandoned.
    - never counted: no_answer, busy, machine (even with an answer time).
    """
    first_today = LOCAL_MIDNIGHT + timedelta(hours=1)  # 01:00 local, still 1 March in UTC
    rows = [
        _cdr(cid, first_today, "completed", disposition="SALE", talk=30.0),
        _cdr(cid, first_today + timedelta(minutes=5), "completed", disposition="SALE", talk=45.0),
        _cdr(cid, first_today + timedelta(minutes=10), "completed", disposition="SALE", talk=15.0),
        _cdr(cid, first_today + timedelta(minutes=15), "completed", disposition="INTERESTED", talk=16.0),
        _cdr(cid, first_today + timedelta(minutes=20), "completed", disposition="NOT_INTERESTED", talk=14.9),
        _cdr(cid, first_today + timedelta(minutes=25), "completed", disposition="CALLBACK", talk=60.0),
        _cdr(cid, NOW - timedelta(minutes=30), "completed", talk=50.0),
        _cdr(cid, NOW - timedelta(minutes=20), "completed", talk=20.0),
        _cdr(cid, NOW - timedelta(minutes=50), "abandoned"),
        _cdr(cid, LOCAL_MIDNIGHT + timedelta(seconds=30), "abandoned"),
        _cdr(cid, None, "no_answer"),
        _cdr(cid, None, "busy"),
        _cdr(cid, NOW - timedelta(minutes=40), "machine"),
    ]
    yesterday = LOCAL_MIDNIGHT - timedelta(minutes=30)  # 23:30 local yesterday
    rows.append(_cdr(cid, yesterday, "completed", disposition="SALE", talk=40.0))
    rows += [_cdr(cid, yesterday - timedelta(hours=h + 1), "completed", talk=30.0) for h in range(9)]
    twenty = NOW - timedelta(days=20)
    rows += [_cdr(cid, twenty + timedelta(minutes=m), "completed", talk=25.0) for m in range(18)]
    rows.append(_cdr(cid, twenty - timedelta(hours=1), "abandoned"))
    rows += [_cdr(cid, NOW - timedelta(days=30, hours=1), "abandoned") for _ in range(3)]
    rows += [_cdr(cid, NOW - timedelta(days=40), "abandoned") for _ in range(5)]
    return rows


# -- the set-up -------------------------------------------------------------------------------------------
@dataclass
class Floor:
    sm: async_sessionmaker[AsyncSession]
    engine: AsyncEngine
    bus: EventBus
    published: list[CampaignStats]
    clock: SettableClock


@pytest.fixture
async def floor(tmp_path: Path) -> AsyncIterator[Floor]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'stats.db'}")
    await migrate(engine)
    bus = EventBus()
    published: list[CampaignStats] = []
    bus.add_listener(published.append, types=CampaignStats)
    try:
        yield Floor(create_sessionmaker(engine), engine, bus, published, SettableClock(NOW))
    finally:
        await engine.dispose()


async def _campaign(f: Floor, mode: str, leads: int, *, with_history: bool = True, **pacing: Any) -> int:
    settings = CampaignSettings.model_validate(
        {
            "timezone": ZONE,
            "caller_id": "+861012345678",
            "window": {"holidays": False},
            "effective_call_seconds": 15,
            "daily_target": 40,
            "pacing": {"mode": mode, "max_lines": 7, **pacing},
        }
    )
    async with f.sm() as session, session.begin():
        campaign = await create_campaign(session, "stats", settings, status=CampaignStatus.ACTIVE, now=NOW)
        for i in range(leads):
            contact = Contact(phone=f"+86138001380{i:02d}", timezones=[ZONE], country="CN")
            session.add(contact)
            await session.flush()
            session.add(
                Lead(
                    campaign_id=campaign.id,
                    contact_id=contact.id,
                    status=LeadStatus.READY,
                    next_attempt_at=NOW - timedelta(minutes=1),
                    created_at=NOW - timedelta(days=1),
                )
            )
        if with_history:
            session.add_all(history(campaign.id))
        return campaign.id


async def _service(f: Floor, ua: FakeUA, pool: FakePool) -> RunnerService:
    service = RunnerService(
        sessionmaker=f.sm,
        ua=ua,  # type: ignore[arg-type]
        pool_for=lambda _row: pool,
        trunk_uri="sip:{number}@127.0.0.1:5999",
        bus=f.bus,
        node="stats-node",
        clock=f.clock,
        timers=FAST,
        runner_options={"from_host": "127.0.0.1", "abandon_audio": b""},
    )
    await service.start()
    return service


async def _published(f: Floor, lines: int, timeout: float = 5.0) -> CampaignStats:
    """The first CampaignStats published once ``lines`` lines ring."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        for event in f.published:
            if event.lines_in_use == lines:
                return event
        if loop.time() > deadline:
            raise AssertionError(f"no CampaignStats with {lines} lines in use: {f.published[-3:]}")
        await asyncio.sleep(0.01)


# -- the tests ----------------------------------------------------------------------------------------------
async def test_progressive_figures_on_the_hand_built_history(floor: Floor) -> None:
    ua, pool = FakeUA(), FakePool()
    cid = await _campaign(floor, "progressive", leads=5)
    service = await _service(floor, ua, pool)
    try:
        runner = service.runner_for_lead_campaign(cid)
        # Progressive: one line per ready agent; the calls ring for ever, so 2 lines stay in use.
        event = await _published(floor, lines=2)
        await asyncio.sleep(0.2)
        assert len(ua.calls) == 2, "progressive dialled more lines than ready agents"
        expected = {
            "campaign_id": cid,
            "name": "stats",
            "status": "active",
            "mode": "progressive",
            "dial_level": 1.0,  # 2 lines / 2 agents ready or talking
            "lines_in_use": 2,
            "max_lines": 7,
            "agents_available": 2,
            "abandon_rate_24h": 2 / 20,  # rolling 24 h: today's 10 answers and yesterday's 10
            "abandon_rate_30d": 3 / 39,
            "effective_today": 4,
            "target_today": 40,
        }
        got = {k: getattr(event, k) for k in expected}
        assert got == pytest.approx(expected), got
        assert NOW.timestamp() <= event.at < NOW.timestamp() + 10  # SettableClock runs on from NOW
        direct = runner.stats(NOW)
        assert {k: getattr(direct, k) for k in expected} == pytest.approx(expected)

        # What the wallboard's campaign row holds for that event.
        live = LiveState(clock=time.time)
        live.on_event(event)
        row = live.snapshot()["campaigns"][0]
        assert row == pytest.approx({"id": cid, **{k: v for k, v in expected.items() if k != "campaign_id"}})

        # Ledger days follow the campaign's zone: at 16:00 UTC (local midnight) a new day starts at 0.
        floor.clock.jump_to(LOCAL_MIDNIGHT + timedelta(days=1))
        tomorrow = runner.stats()
        assert tomorrow.abandon_rate_24h == pytest.approx(2 / 10)  # rolling 24 h: only yesterday-local's calls
        assert runner.ledger.counts_today(runner.clock()).answered_human == 0  # Ofcom's day starts at 0
        assert tomorrow.abandon_rate_30d == pytest.approx(3 / 39)
    finally:
        await service.stop()


@pytest.mark.parametrize(
    ("with_history", "lines", "level", "rates"),
    [
        # No answers yet: full speed, 1.5 lines per ready agent rounded half up = 3 lines for 2 agents.
        (False, 3, 1.5, (None, None)),
        # The 30-day 7.7% abandons trip the guard: power falls back to progressive, one line per agent.
        (True, 2, 1.0, (2 / 20, 3 / 39)),
    ],
)
async def test_power_mode_dial_level_and_lines(
    floor: Floor, with_history: bool, lines: int, level: float, rates: tuple[float | None, float | None]
) -> None:
    ua, pool = FakeUA(), FakePool()
    cid = await _campaign(floor, "power", leads=6, with_history=with_history, lines_per_agent=1.5)
    service = await _service(floor, ua, pool)
    try:
        event = await _published(floor, lines=lines)
        await asyncio.sleep(0.2)
        assert len(ua.calls) == lines
        assert (event.mode, event.lines_in_use, event.agents_available, event.max_lines) == ("power", lines, 2, 7)
        assert event.dial_level == pytest.approx(level)
        assert (event.abandon_rate_24h, event.abandon_rate_30d) == pytest.approx(rates)
        assert (event.effective_today, event.target_today) == ((4, 40) if with_history else (0, 40))
        assert service.runner_for_lead_campaign(cid).stats(NOW).lines_in_use == lines
    finally:
        await service.stop()


async def test_a_campaign_with_no_history_shows_no_rates_yet(floor: Floor) -> None:
    settings = CampaignSettings.model_validate(
        {"timezone": ZONE, "caller_id": "+861012345678", "daily_target": 12, "pacing": {"mode": "preview"}}
    )
    async with floor.sm() as session, session.begin():
        cid = (await create_campaign(session, "empty", settings, status=CampaignStatus.ACTIVE, now=NOW)).id
    service = await _service(floor, FakeUA(), FakePool())
    try:
        stats = service.runner_for_lead_campaign(cid).stats(NOW)
        assert (stats.lines_in_use, stats.dial_level, stats.agents_available) == (0, 0.0, 2)
        assert stats.abandon_rate_24h is None and stats.abandon_rate_30d is None
        assert (stats.effective_today, stats.target_today, stats.max_lines) == (0, 12, 30)
    finally:
        await service.stop()
