"""Abandon accounting: the 2-second rule, per local day (Ofcom), rolling 30 days (TSR), 72 h no-redial."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dialer.abandon import AbandonLedger, is_abandoned, redial_allowed_after_abandon, redial_not_before

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def test_two_second_rule() -> None:
    assert not is_abandoned(T0, T0 + timedelta(seconds=2))
    assert is_abandoned(T0, T0 + timedelta(seconds=2.01))
    assert is_abandoned(T0, None)


def test_rate_today_counts_human_answered_calls_of_the_local_day() -> None:
    ledger = AbandonLedger(target=0.03, day_zone="America/New_York")
    for i in range(97):
        ledger.record(T0 + timedelta(minutes=i), abandoned=False)
    for i in range(3):
        ledger.record(T0 + timedelta(hours=2, minutes=i), abandoned=True)
    now = T0 + timedelta(hours=3)
    assert ledger.rate_today(now) == pytest.approx(0.03)
    assert not ledger.over_target(now)
    ledger.record(now, abandoned=True)
    assert ledger.over_target(now)
    # 05:30 UTC next day is still 00:30 EST the next local day -> a fresh day
    next_day = datetime(2026, 3, 3, 5, 30, tzinfo=UTC)
    assert ledger.rate_today(next_day) == 0.0
    assert ledger.counts_30d(next_day).answered_human == 101


def test_local_day_boundary_uses_the_campaign_zone() -> None:
    ledger = AbandonLedger(day_zone="America/New_York")
    ledger.record(datetime(2026, 3, 3, 4, 59, tzinfo=UTC), abandoned=True)  # 23:59 on the 2nd in NY
    assert ledger.counts_today(datetime(2026, 3, 3, 3, 0, tzinfo=UTC)).abandoned == 1
    assert ledger.counts_today(datetime(2026, 3, 3, 5, 1, tzinfo=UTC)).abandoned == 0


def test_rolling_30_days_drops_old_calls() -> None:
    ledger = AbandonLedger()
    ledger.record(T0, abandoned=True)
    for d in range(1, 31):
        ledger.record(T0 + timedelta(days=d), abandoned=False)
    assert ledger.counts_30d(T0 + timedelta(days=29, hours=23)).abandoned == 1
    at_30 = ledger.counts_30d(T0 + timedelta(days=30))
    assert at_30.abandoned == 0
    assert at_30.answered_human == 30  # days 1..30; day 0 left the window
    assert ledger.rate_30d(T0 + timedelta(days=30)) == 0.0


def test_out_of_order_records_are_counted() -> None:
    ledger = AbandonLedger()
    ledger.record(T0 + timedelta(minutes=5), abandoned=False)
    ledger.record(T0, abandoned=True)
    assert ledger.counts_30d(T0 + timedelta(minutes=10)).abandoned == 1
    assert ledger.rate_today(T0 + timedelta(minutes=10)) == 0.5


def test_bad_target_is_explained() -> None:
    with pytest.raises(ValueError, match="fraction"):
        AbandonLedger(target=3)


def test_72h_no_redial_unless_agent_reserved() -> None:
    assert redial_not_before(T0, agent_reserved=False) == T0 + timedelta(hours=72)
    assert redial_not_before(T0, agent_reserved=True) is None
    assert not redial_allowed_after_abandon(T0, T0 + timedelta(hours=71, minutes=59), agent_reserved=False)
    assert redial_allowed_after_abandon(T0, T0 + timedelta(hours=72), agent_reserved=False)
    assert redial_allowed_after_abandon(T0, T0 + timedelta(minutes=1), agent_reserved=True)


def test_rolling_24_hours_is_not_the_local_day() -> None:
    ledger = AbandonLedger(0.03, "Asia/Shanghai")  # local midnight is 16:00 UTC
    ledger.record(T0 - timedelta(hours=25), True)  # outside the 24 h
    ledger.record(T0 - timedelta(hours=20), True)  # yesterday local (14:00 UTC), inside the 24 h
    ledger.record(T0 - timedelta(hours=1), False)
    ledger.record(T0 + timedelta(hours=1), False)  # after now: not yet in the window
    day = ledger.counts_24h(T0)
    assert (day.answered_human, day.abandoned) == (2, 1)
    assert ledger.counts_today(T0).answered_human == 2  # 2 March local (from 16:00 UTC on 1 March): the last two
    assert ledger.counts_24h(T0 + timedelta(hours=30)).answered_human == 0
