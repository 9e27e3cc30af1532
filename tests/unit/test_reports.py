"""dialer.reports on a hand-built history (tests/unit/reports_data.py): every figure computed by hand."""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialer.campaigns import CampaignError
from dialer.models import Lead
from dialer.reports import (
    AgentDayRow,
    CampaignReport,
    LeadAtRisk,
    ReportError,
    agent_day_report,
    campaign_report,
    columns_of,
    day_bounds,
    lead_history,
    leads_at_risk,
    write_csv,
)
from infra.db import create_engine, create_sessionmaker, migrate
from tests.unit.reports_data import DAY, NOW, SHANGHAI, Seeded, local, seed


@pytest.fixture
async def sm(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'reports.db'}")
    await migrate(engine)
    try:
        yield create_sessionmaker(engine)
    finally:
        await engine.dispose()


@pytest.fixture
async def seeded(sm: async_sessionmaker[AsyncSession]) -> Seeded:
    return await seed(sm)


def by_agent(rows: list[AgentDayRow]) -> dict[str, AgentDayRow]:
    return {r.agent_id: r for r in rows}


def test_day_bounds_follow_the_zone() -> None:
    assert day_bounds(DAY, SHANGHAI) == (
        datetime(2026, 3, 9, 16, tzinfo=UTC),
        datetime(2026, 3, 10, 16, tzinfo=UTC),
    )
    # A DST day in New York is 23 hours long.
    start, end = day_bounds(datetime(2026, 3, 8).date(), "America/New_York")
    assert end - start == timedelta(hours=23)


async def test_agent_report_counts_effective_calls_by_hand(
    sm: async_sessionmaker[AsyncSession], seeded: Seeded
) -> None:
    async with sm() as s:
        rows = by_agent(await agent_day_report(s, DAY, SHANGHAI, now=NOW))
    assert list(rows) == ["1001", "1002", "1003", "1004", "2001"]
    a = rows["1001"]
    # a1 effective; a2 19 s < 20 s; a3 CALLBACK is not flagged effective; a4 was a machine.
    assert (a.attempts, a.contacts, a.effective, a.successes) == (5, 4, 1, 1)
    assert a.talk_s == 120 + 19 + 60 + 40
    assert a.daily_target == 50 and a.target_reached == pytest.approx(1 / 50)
    assert a.agent_name == "张伟" and a.campaigns == ("spring",)
    # No queue_log for 1001: talk over first dial (10:00:00) .. last end (11:00:30).
    assert a.occupancy_source == "estimate"
    assert a.occupancy == pytest.approx(239 / 3630)
    assert a.staffed_s is None
    b = rows["1002"]
    # b1 spring 25 s >= 20; b2 autumn 15 s >= autumn's 15 s; targets add up over campaigns.
    assert (b.attempts, b.contacts, b.effective, b.successes, b.talk_s) == (2, 2, 2, 1, 40)
    assert (b.daily_target, b.campaigns) == (150, ("autumn", "spring"))
    assert b.occupancy_source == "queue_log"
    assert b.occupancy == pytest.approx(60 / 6600)  # (talk 40 + wrap 20) / (2 h - 10 min pause)
    assert (b.acd_answered, b.wrap_s, b.aht_s, b.staffed_s) == (1, 20, 60, 6600)
    c = rows["1003"]
    # Only the call at 00:00:00 local is in the day; 23:59:59 the day before is not.
    assert (c.attempts, c.contacts, c.effective, c.occupancy, c.occupancy_source) == (1, 0, 0, 0.0, "estimate")
    d = rows["1004"]
    assert (d.attempts, d.contacts, d.effective, d.talk_s) == (1, 1, 0, 30)
    assert d.occupancy == pytest.approx(30 / 39)
    inbound = rows["2001"]
    # In the queue_log only: still logged in at NOW (18:00), since 13:00.
    assert (inbound.attempts, inbound.daily_target, inbound.target_reached) == (0, 0, None)
    assert inbound.occupancy == pytest.approx(110 / (5 * 3600))
    assert inbound.occupancy_source == "queue_log"


async def test_agent_report_for_one_campaign(sm: async_sessionmaker[AsyncSession], seeded: Seeded) -> None:
    async with sm() as s:
        rows = by_agent(await agent_day_report(s, DAY, SHANGHAI, campaign="spring", now=NOW))
        without_log = by_agent(await agent_day_report(s, DAY, SHANGHAI, now=NOW, use_queue_log=False))
        with pytest.raises(CampaignError, match="no campaign named 'winter'"):
            await agent_day_report(s, DAY, SHANGHAI, campaign="winter")
    assert list(rows) == ["1001", "1002", "1003", "1004"]  # 2001 has no spring attempts
    b = rows["1002"]
    assert (b.attempts, b.effective, b.talk_s, b.daily_target, b.campaigns) == (1, 1, 25, 50, ("spring",))
    # Without the queue log, 1002's occupancy is the estimate: 40 s over 14:00:00 .. 14:10:22.
    assert without_log["1002"].occupancy_source == "estimate"
    assert without_log["1002"].occupancy == pytest.approx(40 / 622)
    assert "2001" not in without_log


async def test_agent_report_day_without_calls(sm: async_sessionmaker[AsyncSession], seeded: Seeded) -> None:
    async with sm() as s:
        assert await agent_day_report(s, DAY + timedelta(days=5), SHANGHAI, now=NOW) == []


async def test_campaign_report_by_hand(sm: async_sessionmaker[AsyncSession], seeded: Seeded) -> None:
    async with sm() as s:
        r = await campaign_report(s, "spring", now=NOW)
    assert (r.as_of, r.day, r.timezone) == (NOW, DAY, SHANGHAI)
    assert r.leads_total == 9
    assert r.leads_by_status == {"done": 2, "callback": 1, "ready": 4, "dialing": 1, "exhausted": 1}
    assert r.leads_attempted == 6 and r.penetration == pytest.approx(6 / 9)
    assert (r.attempts, r.contacts) == (17, 7) and r.contact_rate == pytest.approx(7 / 17)
    assert r.leads_contacted == 4 and r.lead_contact_rate == pytest.approx(4 / 9)
    assert (r.day_attempts, r.day_contacts, r.day_effective, r.day_successes) == (10, 6, 2, 1)
    assert (r.day_agents, r.daily_target, r.day_target) == (4, 50, 200)
    # Abandoned / human-answered: the machine and the call still in progress are left out.
    assert (r.abandon_today_answered, r.abandon_today_abandoned) == (6, 2)
    assert r.abandon_today_rate == pytest.approx(2 / 6)
    # 24 h adds yesterday 20:00; the call answered exactly 24 h ago is outside (as in AbandonLedger).
    assert (r.abandon_24h_answered, r.abandon_24h_abandoned) == (7, 3)
    # 30 d adds that call and the abandon 29 days ago; exactly 30 and 31 days ago are out.
    assert (r.abandon_30d_answered, r.abandon_30d_abandoned) == (9, 4)
    assert r.abandon_30d_rate == pytest.approx(4 / 9)
    assert r.abandon_target == 0.03
    assert (r.leads_exhausted, r.leads_at_risk, r.at_risk_within_hours) == (1, 3, 12.0)
    hours = {h.hour: (h.attempts, h.contacts) for h in r.hours if h.attempts}
    # The Kolkata call at 02:30 UTC is 08:00 there (a whole-hour UTC bucket would say 07).
    assert hours == {
        0: (1, 0),
        8: (1, 1),
        10: (3, 3),
        11: (1, 0),
        12: (2, 1),
        14: (1, 1),
        17: (5, 1),
        18: (1, 0),
        20: (1, 0),
        23: (1, 0),
    }
    assert [h.hour for h in r.hours] == list(range(24))
    assert r.hours[10].contact_rate == 1.0 and r.hours[3].contact_rate is None


async def test_campaign_report_of_a_past_day(sm: async_sessionmaker[AsyncSession], seeded: Seeded) -> None:
    yesterday = DAY - timedelta(days=1)
    async with sm() as s:
        r = await campaign_report(s, "spring", now=NOW, day=yesterday)
    assert r.as_of == local(0, 0)  # the end of yesterday in Shanghai
    # Yesterday: 1003 at 23:59:59, x3 at 20:00 and x4 at 17:59:55.
    assert (r.day_attempts, r.day_contacts, r.day_effective, r.day_agents) == (3, 1, 0, 1)
    assert (r.abandon_today_answered, r.abandon_today_abandoned) == (2, 1)
    # Lifetime figures stop at the end of that day: the 6 abandon-era calls + L8 + 1003 + x3 + x4.
    assert r.attempts == 7


async def test_leads_at_risk(sm: async_sessionmaker[AsyncSession], seeded: Seeded) -> None:
    async with sm() as s:
        rows = await leads_at_risk(s, "spring", now=NOW)
        wide = await leads_at_risk(s, "spring", now=NOW, within=timedelta(hours=72))
    ids = {v: k for k, v in seeded.leads.items()}
    # L10 is 8 h overdue, L5 (created 70 h ago, 72 h deadline) has 2 h, L6 its explicit 5 h.
    assert [(ids[r.lead_id], r.hours_left) for r in rows] == [("L10", -8.0), ("L5", 2.0), ("L6", 5.0)]
    l5 = rows[1]
    assert (l5.phone, l5.name, l5.status, l5.timezone) == ("+8613800138005", "刘洋", "ready", SHANGHAI)
    assert l5.deadline_at == NOW + timedelta(hours=2)
    assert l5.deadline_local == "2026-03-10 20:00"
    # L9 (62 h left) joins with a 72 h horizon; L4 and L3 were contacted, L8 is exhausted.
    assert [ids[r.lead_id] for r in wide] == ["L10", "L5", "L6", "L9"]


async def test_csv_round_trip_with_bom(tmp_path: Path, sm: async_sessionmaker[AsyncSession], seeded: Seeded) -> None:
    async with sm() as s:
        agents = await agent_day_report(s, DAY, SHANGHAI, now=NOW)
        report = await campaign_report(s, "spring", now=NOW)
        risk = await leads_at_risk(s, "spring", now=NOW)
    path = tmp_path / "agents.csv"
    assert write_csv(path, agents) == 5
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    assert "张伟".encode() in raw
    with path.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == columns_of(AgentDayRow)
    first = rows[0]
    assert (first["agent_id"], first["agent_name"], first["attempts"], first["effective"]) == ("1001", "张伟", "5", "1")
    assert float(first["occupancy"]) == pytest.approx(239 / 3630)  # unformatted, not "6.6%"
    assert first["first_dial_at"] == "2026-03-10T02:00:00+00:00"
    assert rows[1]["campaigns"] == "autumn; spring"
    assert rows[4]["target_reached"] == ""  # None
    assert not list(tmp_path.glob("*.part"))

    camp = tmp_path / "campaign.csv"
    write_csv(camp, [report.csv_row()])
    with camp.open(encoding="utf-8-sig", newline="") as fh:
        (row,) = list(csv.DictReader(fh))
    assert row["campaign"] == "spring" and row["leads_ready"] == "4" and row["leads_pending"] == "0"
    assert float(row["penetration"]) == pytest.approx(6 / 9)
    assert "hours" not in row and set(columns_of(CampaignReport)) - set(row) == {"hours", "leads_by_status"}

    hours = tmp_path / "hours.csv"
    assert write_csv(hours, report.hours) == 24
    risk_csv = tmp_path / "risk.csv"
    write_csv(risk_csv, risk, columns_of(LeadAtRisk))
    with risk_csv.open(encoding="utf-8-sig") as fh:
        lines = fh.read().splitlines()
    assert lines[0].split(",") == columns_of(LeadAtRisk) and len(lines) == 4
    empty = tmp_path / "empty.csv"
    assert write_csv(empty, [], columns_of(LeadAtRisk)) == 0
    assert empty.read_text(encoding="utf-8-sig").splitlines() == [",".join(columns_of(LeadAtRisk))]


async def test_lead_history_retry_reason(sm: async_sessionmaker[AsyncSession], seeded: Seeded) -> None:
    async with sm() as s:
        h = await lead_history(s, "spring", "+919812345678", now=NOW)
        by_alt = await lead_history(s, "spring", "+8613900139004", now=NOW)
        by_id = await lead_history(s, "spring", str(seeded.leads["L4"]), now=NOW)
    assert h.lead_id == by_alt.lead_id == by_id.lead_id == seeded.leads["L4"]
    assert (h.status, h.timezone, h.name) == ("ready", "Asia/Kolkata", "Asha")
    (a,) = h.attempts
    assert (a.outcome, a.amd_result, a.agent_id, a.disposition, a.sip_status) == (
        "machine",
        "machine",
        "1001",
        "NOT_INTERESTED",
        200,
    )
    assert a.dialled_at == local(10, 30)
    assert a.dialled_local.strftime("%H:%M %Z") == "08:00 IST"
    assert a.daypart is None and a.ring_s == 4.0
    # machine: 2 h minimum delay, then an untried day-part (morning 09-12 Kolkata).
    assert h.next_attempt_at == local(10, 30) + timedelta(seconds=47) + timedelta(hours=2)
    assert h.next_attempt_local is not None and h.next_attempt_local.strftime("%H:%M") == "10:00"
    assert "machine" in h.next_reason and "morning" in h.next_reason
    assert "2 h minimum delay" in h.next_reason


async def test_lead_history_reasons_by_status(sm: async_sessionmaker[AsyncSession], seeded: Seeded) -> None:
    async with sm() as s:
        cb = await lead_history(s, "spring", "13800138003", now=NOW)  # national form, campaign region CN
        first = await lead_history(s, "spring", "+8613800138005", now=NOW)
        dialing = await lead_history(s, "spring", "+8613800138006", now=NOW)
        done = await lead_history(s, "spring", "+8613800138001", now=NOW)
        exhausted = await lead_history(s, "spring", "+8613800138008", now=NOW)
        with pytest.raises(ReportError, match="no lead '\\+8613800138007' in campaign 'spring'"):
            await lead_history(s, "spring", "+8613800138007", now=NOW)  # an autumn lead
        with pytest.raises(ReportError, match="lead id or its phone number"):
            await lead_history(s, "spring", "nonsense", now=NOW)
    assert cb.status == "callback" and len(cb.attempts) == 4
    assert cb.next_attempt_at == local(16, 30, day=DAY + timedelta(days=1))
    assert "callback agreed for Wed 2026-03-11 16:30 local (Asia/Shanghai)" in cb.next_reason
    assert "agent 1001 first" in cb.next_reason
    # NOW is 18:00 in Shanghai, inside the 09:00-21:00 window.
    assert first.attempts == () and first.next_attempt_at == NOW
    assert "first attempt" in first.next_reason
    assert "being dialled now (claimed by node-a" in dialing.next_reason and dialing.next_attempt_at is None
    assert done.next_reason == "finished: final disposition SALE"
    assert exhausted.next_reason.startswith("exhausted: ")


async def test_lead_history_when_stored_time_differs(sm: async_sessionmaker[AsyncSession], seeded: Seeded) -> None:
    moved = datetime(2026, 3, 12, 6, 0, tzinfo=UTC)
    async with sm() as s:
        await s.execute(update(Lead).where(Lead.id == seeded.leads["L4"]).values(next_attempt_at=moved))
        await s.commit()
        h = await lead_history(s, "spring", "+919812345678", now=NOW)
    assert h.next_attempt_at == moved
    assert h.next_reason.startswith("scheduled for Thu 2026-03-12 11:30 local (Asia/Kolkata)")
    assert "would say" in h.next_reason


async def test_lead_history_shows_the_runners_stored_reason(
    sm: async_sessionmaker[AsyncSession], seeded: Seeded
) -> None:
    at = datetime(2026, 3, 11, 4, 0, tzinfo=UTC)
    why = "machine in no day-part; next untried day-part morning at Wed 09:30 local (Asia/Kolkata)"
    async with sm() as s:
        await s.execute(
            update(Lead).where(Lead.id == seeded.leads["L4"]).values(next_attempt_at=at, next_attempt_reason=why)
        )
        await s.execute(
            update(Lead)
            .where(Lead.id == seeded.leads["L8"])
            .values(next_attempt_reason="no_answer; all 9 attempts used")
        )
        await s.commit()
        ready = await lead_history(s, "spring", "+919812345678", now=NOW)
        exhausted = await lead_history(s, "spring", "+8613800138008", now=NOW)
    assert (ready.next_attempt_at, ready.next_reason) == (at, why)
    assert (exhausted.next_attempt_at, exhausted.next_reason) == (None, "exhausted: no_answer; all 9 attempts used")
