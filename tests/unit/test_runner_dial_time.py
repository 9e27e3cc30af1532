"""Property tests of the runner's dial-time decisions (pure: no sockets, no sleeping) and of the
atomic claim that keeps a lead from being dialled twice at once."""

from __future__ import annotations

import asyncio
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dialer.campaigns import CampaignSettings
from dialer.dnc import DncHit
from dialer.leads import ClaimedLead
from dialer.models import Lead
from dialer.retry import Attempt, CallbackRules, NextAttempt
from dialer.runner import Block, Defer, Dial, TokenBucket, check_dial
from dialer.runner_store import lead_state
from dialer.windows import CallingWindow

ZONES = [
    "Europe/London",
    "Asia/Shanghai",
    "America/New_York",
    "America/Los_Angeles",
    "Australia/Sydney",
    "Asia/Kolkata",
    "Pacific/Auckland",
    "UTC",
]
WINDOW = CallingWindow.build(quiet_hours=["12:00-14:00"], weekdays={"sun": None})
instants = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 31)).map(
    lambda d: d.replace(tzinfo=UTC)
)
zone_sets = st.lists(st.sampled_from(ZONES), min_size=1, max_size=3, unique=True).map(tuple)


def lead(
    zones: tuple[str, ...] = ("Europe/London",),
    *,
    callback_at: datetime | None = None,
    owner: str | None = None,
    country: str | None = None,
) -> ClaimedLead:
    return ClaimedLead(
        lead_id=1,
        contact_id=1,
        campaign_id=1,
        numbers=("+442071230001",),
        number_index=0,
        timezones=zones,
        country=country,
        attempts=0,
        priority=0,
        dayparts_tried=(),
        callback_owner=owner,
        callback_at=callback_at,
        reach_deadline_at=None,
    )


@settings(max_examples=400, deadline=None)
@given(zones=zone_sets, now=instants, country=st.sampled_from([None, "GB", "US", "CN"]))
def test_never_dials_outside_the_window_of_any_candidate_zone(
    zones: tuple[str, ...], now: datetime, country: str | None
) -> None:
    decision = check_dial(lead(zones, country=country), now, window=WINDOW, zones=zones)
    if isinstance(decision, Dial):
        for z in zones:
            assert WINDOW.is_open_in(z, country, now), f"dialled at {now} while {z} is closed"
    else:
        assert isinstance(decision, Defer)
        assert decision.at > now
        if "next opening" in decision.reason:
            assert WINDOW.is_callable(zones, country, decision.at), "deferred to an instant that is still closed"


@settings(max_examples=300, deadline=None)
@given(
    zones=zone_sets,
    now=instants,
    callback=st.booleans(),
    customer_requested=st.booleans(),
    owner_ready=st.booleans(),
    entries=st.lists(st.sampled_from(["+4420", "+442071230001", "+44"]), min_size=1, max_size=3),
)
def test_never_dials_a_dnc_number(
    zones: tuple[str, ...],
    now: datetime,
    callback: bool,
    customer_requested: bool,
    owner_ready: bool,
    entries: list[str],
) -> None:
    hits = [DncHit("+442071230001", e, e != "+442071230001", None) for e in entries]
    decision = check_dial(
        lead(zones, callback_at=now - timedelta(minutes=1) if callback else None, owner="a1" if callback else None),
        now,
        window=WINDOW,
        zones=zones,
        dnc=hits,
        customer_requested=customer_requested,
        owner_ready=owner_ready,
    )
    assert isinstance(decision, Block) and "DNC" in decision.reason


@settings(max_examples=200, deadline=None)
@given(now=instants, hours_ago=st.floats(min_value=0.0, max_value=100.0))
def test_an_abandoned_number_waits_72_hours(now: datetime, hours_ago: float) -> None:
    at = WINDOW.next_open(("UTC",), None, now)
    assert at is not None
    decision = check_dial(
        lead(("UTC",)), at, window=WINDOW, zones=("UTC",), last_abandoned_at=at - timedelta(hours=hours_ago)
    )
    if hours_ago < 72:
        assert isinstance(decision, Defer) and decision.at == at - timedelta(hours=hours_ago) + timedelta(hours=72)
    else:
        assert isinstance(decision, Dial)


def test_a_callback_goes_to_its_owner_first_then_to_anyone_and_keeps_the_window() -> None:
    rules = CallbackRules(grace=timedelta(minutes=5))
    due = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)  # Monday 15:00 London
    cb = lead(callback_at=due, owner="anna")
    early = check_dial(cb, due - timedelta(minutes=1), window=WINDOW, zones=("Europe/London",), callback_rules=rules)
    assert isinstance(early, Defer) and early.at == due
    waiting = check_dial(cb, due, window=WINDOW, zones=("Europe/London",), callback_rules=rules, owner_ready=False)
    assert isinstance(waiting, Defer) and due < waiting.at <= due + timedelta(minutes=5)
    owner = check_dial(cb, due, window=WINDOW, zones=("Europe/London",), callback_rules=rules, owner_ready=True)
    assert owner == Dial("callback for anna", "anna")
    anyone = check_dial(cb, due + timedelta(minutes=6), window=WINDOW, zones=("Europe/London",), callback_rules=rules)
    assert isinstance(anyone, Dial) and anyone.owner is None
    # 22:30 is outside the window: dialled at 22:30 only when the customer asked for that time.
    late = datetime(2026, 3, 2, 22, 30, tzinfo=UTC)
    asked = check_dial(lead(callback_at=late), late, window=WINDOW, zones=("Europe/London",), customer_requested=True)
    assert isinstance(asked, Dial)
    moved = check_dial(lead(callback_at=late), late, window=WINDOW, zones=("Europe/London",))
    assert isinstance(moved, Defer) and moved.at == datetime(2026, 3, 3, 9, 0, tzinfo=UTC)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(start=instants, zone_name=st.sampled_from(ZONES), tries=st.integers(min_value=3, max_value=9))
def test_unanswered_attempts_rotate_through_the_dayparts(start: datetime, zone_name: str, tries: int) -> None:
    """Dial at every time the runner would (first instant the policy schedules, checked by
    check_dial), never answered: each cycle of three attempts covers morning, afternoon, evening."""
    s = CampaignSettings.model_validate(
        {"retry": {"max_attempts": 20, "max_attempts_per_number": 20, "reach_deadline_hours": 0}}
    )
    policy, window = s.retry_policy(), s.calling_window()
    zones = (zone_name,)
    at = window.next_open(zones, None, start)
    assert at is not None
    row = Lead(priority=0, attempts=0, created_at=start, next_attempt_at=None, reach_deadline_at=None)
    attempts: list[Attempt] = []
    parts: list[str] = []
    for _ in range(tries):
        assert isinstance(check_dial(lead(zones), at, window=window, zones=zones), Dial)
        dp = policy.daypart_at(at, zone_name)
        assert dp is not None, f"dialled at {at} outside every day-part"
        parts.append(dp.name)
        attempts.append(Attempt(at, "no_answer"))
        state = lead_state(row, 1, attempts, policy)
        decision = policy.schedule_next(state, "no_answer", at + timedelta(seconds=30), zones, None, window)
        assert isinstance(decision, NextAttempt)
        row.attempts += 1
        row.next_attempt_at, row.priority = decision.at_utc, decision.priority
        at = decision.at_utc
    names = [d.name for d in policy.dayparts]
    for k in range(0, len(parts) - len(names) + 1, len(names)):
        assert sorted(parts[k : k + len(names)]) == sorted(names), parts


def test_the_calls_per_second_bucket_never_exceeds_its_rate() -> None:
    bucket = TokenBucket(2.0, now=0.0)
    sent = [t / 100 for t in range(1000) if bucket.take(t / 100)]
    # 2 saved up at the start, then 2 per second over 10 s.
    assert len(sent) <= 2 + 2 * 10
    for i in range(2, len(sent)):
        assert sent[i] - sent[i - 2] >= 0.99 - 1e-9 or sent[i] < 1.0
    assert bucket.wait_s(10.0) <= 0.5


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(leads=st.integers(min_value=5, max_value=40), claimers=st.integers(min_value=2, max_value=6),
       limit=st.integers(min_value=1, max_value=8))  # fmt: skip
def test_concurrent_claimers_never_get_the_same_lead(leads: int, claimers: int, limit: int) -> None:
    asyncio.run(_claim_race(leads, claimers, limit))


async def _claim_race(n_leads: int, claimers: int, limit: int) -> None:
    from sqlalchemy import select

    from dialer.campaigns import create_campaign
    from dialer.models import CampaignStatus, Contact, LeadStatus
    from dialer.runner_store import claim
    from infra.db import create_engine, create_sessionmaker, migrate

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'claims.db'}"
        engine = create_engine(url)
        await migrate(engine)
        now = datetime(2026, 3, 2, 10, tzinfo=UTC)
        sm = create_sessionmaker(engine)
        async with sm() as session, session.begin():
            c = await create_campaign(session, "race", status=CampaignStatus.ACTIVE, now=now)
            for i in range(n_leads):
                contact = Contact(phone=f"+4420712{i:05d}", timezones=["Europe/London"])
                session.add(contact)
                await session.flush()
                session.add(Lead(campaign_id=c.id, contact_id=contact.id, status=LeadStatus.READY, next_attempt_at=now))
        engines = [create_engine(url) for _ in range(claimers)]
        try:
            got: dict[str, list[int]] = {f"n{k}": [] for k in range(claimers)}

            async def worker(k: int) -> None:
                node_sm = create_sessionmaker(engines[k])
                while True:
                    batch = await claim(node_sm, c.id, now, limit, f"n{k}")
                    if not batch:
                        return
                    got[f"n{k}"].extend(x.lead_id for x in batch)

            await asyncio.gather(*(worker(k) for k in range(claimers)))
            everything = [lead_id for ids in got.values() for lead_id in ids]
            assert len(everything) == len(set(everything)) == n_leads, got
            async with sm() as session:
                rows = (await session.execute(select(Lead.id, Lead.status, Lead.claimed_by))).all()
            owner = {lead_id: node for node, ids in got.items() for lead_id in ids}
            assert all(r.status == LeadStatus.DIALING and r.claimed_by == owner[r.id] for r in rows)
        finally:
            for e in engines:
                await e.dispose()
            await engine.dispose()
