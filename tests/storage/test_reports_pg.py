"""The report queries on both back ends: SQL that differs by dialect (quarter-hour buckets for the
hour chart, seconds between two instants for the 2 s abandon rule, JSON look-ups of alternate
numbers, GROUP BY of the contact's zones) must give the hand-computed figures on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from dialer.reports import agent_day_report, campaign_report, lead_history, leads_at_risk
from tests.storage.conftest import Db
from tests.unit.reports_data import DAY, NOW, SHANGHAI, local, seed


async def test_reports_match_by_hand_figures(db: Db) -> None:
    seeded = await seed(db.sessionmaker)
    async with db.sessionmaker() as s:
        agents = {r.agent_id: r for r in await agent_day_report(s, DAY, SHANGHAI, now=NOW)}
        report = await campaign_report(s, "spring", now=NOW)
        risk = await leads_at_risk(s, "spring", now=NOW)
        by_alt = await lead_history(s, "spring", "+8613900139004", now=NOW)

    a, b = agents["1001"], agents["1002"]
    assert (a.attempts, a.contacts, a.effective, a.successes, a.talk_s) == (5, 4, 1, 1, 239)
    assert a.occupancy_source == "estimate" and a.occupancy == pytest.approx(239 / 3630)
    assert (b.effective, b.daily_target, b.occupancy_source) == (2, 150, "queue_log")
    assert b.occupancy == pytest.approx(60 / 6600)
    assert agents["2001"].occupancy == pytest.approx(110 / 18000)
    assert agents["1004"].occupancy == pytest.approx(30 / 39)

    r = report
    assert (r.leads_total, r.leads_attempted, r.attempts, r.contacts, r.leads_contacted) == (9, 6, 17, 7, 4)
    assert (r.day_attempts, r.day_contacts, r.day_effective, r.day_target) == (10, 6, 2, 200)
    # x2, bridged 3 s after the answer, is abandoned on both back ends (seconds between instants).
    assert (r.abandon_today_answered, r.abandon_today_abandoned) == (6, 2)
    assert (r.abandon_24h_answered, r.abandon_24h_abandoned) == (7, 3)
    assert (r.abandon_30d_answered, r.abandon_30d_abandoned) == (9, 4)
    hours = {h.hour: (h.attempts, h.contacts) for h in r.hours if h.attempts}
    assert hours[8] == (1, 1) and hours[17] == (5, 1) and sum(a for a, _ in hours.values()) == 17

    ids = {v: k for k, v in seeded.leads.items()}
    assert [(ids[x.lead_id], x.hours_left) for x in risk] == [("L10", -8.0), ("L5", 2.0), ("L6", 5.0)]
    assert by_alt.lead_id == seeded.leads["L4"]
    assert by_alt.next_attempt_at == local(10, 30) + timedelta(seconds=47, hours=2)
