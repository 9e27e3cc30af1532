"""dialer.reports.abandon_by_day on the hand-built history (tests/unit/reports_data.py).

The daily series must say what ``campaign_report`` says for the same local day: it is the
console's abandon-rate chart, and managers compare it with ``dialer report campaign``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialer.reports import AbandonDay, ReportError, abandon_by_day, campaign_report
from infra.db import create_engine, create_sessionmaker, migrate
from tests.unit.reports_data import DAY, NOW, SHANGHAI, Seeded, seed


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


async def test_daily_abandon_rate_of_one_campaign_by_hand(sm: async_sessionmaker[AsyncSession], seeded: Seeded) -> None:
    async with sm() as s:
        rows = await abandon_by_day(s, DAY, 3, "UTC", campaign="spring", now=NOW)
    # The campaign's own zone (Shanghai) decides the days, not the fallback "UTC".
    assert rows == [
        AbandonDay(DAY - timedelta(days=2), 0, 0, None),
        # x4 answered at 18:00 (completed, bridged in 1 s) and x3 abandoned at 20:00:05.
        AbandonDay(DAY - timedelta(days=1), 2, 1, 0.5),
        # a1 a2 a3 b1 x2 (bridged 3 s late) x1 (abandoned); not the machine a4, not the call in flight.
        AbandonDay(DAY, 6, 2, 2 / 6),
    ]


async def test_each_day_matches_the_campaign_report(sm: async_sessionmaker[AsyncSession], seeded: Seeded) -> None:
    async with sm() as s:
        rows = await abandon_by_day(s, DAY, 30, SHANGHAI, campaign="spring", now=NOW)
        for row in rows:
            r = await campaign_report(s, "spring", now=NOW, day=row.day)
            assert (row.human_answered, row.abandoned) == (r.abandon_today_answered, r.abandon_today_abandoned)
    # x5, answered exactly 29 days before NOW, is the first day's; x6 (30 days) is before it.
    assert (rows[0].day, rows[0].human_answered, rows[0].abandoned) == (DAY - timedelta(days=29), 1, 1)
    assert sum(r.human_answered for r in rows) == 9 and sum(r.abandoned for r in rows) == 4


async def test_all_campaigns_and_bad_input(sm: async_sessionmaker[AsyncSession], seeded: Seeded) -> None:
    async with sm() as s:
        rows = await abandon_by_day(s, DAY, 1, SHANGHAI, now=NOW)
        # autumn's b2 (completed) joins spring's six.
        assert rows == [AbandonDay(DAY, 7, 2, 2 / 7)]
        # Without `now` the call in flight is still left out: it has no outcome yet.
        assert (await abandon_by_day(s, DAY, 1, SHANGHAI))[0].human_answered == 7
        with pytest.raises(ReportError, match="at least 1 day"):
            await abandon_by_day(s, DAY, 0, SHANGHAI)
