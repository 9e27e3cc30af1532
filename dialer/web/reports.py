"""Report figures for the manager pages, computed from the CDR (``call_attempts``).

Definitions (issue 5, item 7, and :mod:`dialer.abandon`):

- *effective call*: bridged to an agent, talk time at or above the campaign's
  ``effective_call_seconds``, with a disposition flagged ``effective``; counted per agent
  for one local day against the campaign's ``daily_target``;
- *abandon rate*: attempts with outcome ``abandoned`` / human-answered attempts (answered,
  not classified as a machine), per local day;
- *contact rate*: contacts / attempts, per local hour of day; a contact is a call bridged to
  an agent or given a disposition flagged ``contact``.

The database groups by UTC hour (SQLite ``strftime``, PostgreSQL ``to_char``) so only a few
hundred rows come back for a month; Python then maps each UTC hour to the site's local day
and hour (zones with half-hour offsets land on the hour that starts in that UTC hour).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from dialer.campaigns import CampaignSettings, campaign_settings
from dialer.models import CallAttempt, Campaign, Disposition

__all__ = [
    "AbandonDay",
    "AgentEffective",
    "HourContact",
    "abandon_by_day",
    "contact_rate_by_hour",
    "effective_by_agent",
]


@dataclass(frozen=True, slots=True)
class AgentEffective:
    agent_id: str
    attempts: int
    contacts: int
    effective: int
    target: int
    talk_s: float


@dataclass(frozen=True, slots=True)
class AbandonDay:
    day: date
    human_answered: int
    abandoned: int
    rate: float | None


@dataclass(frozen=True, slots=True)
class HourContact:
    hour: int
    attempts: int
    contacts: int
    rate: float | None


def _day_bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz).astimezone(UTC)
    return start, end


async def _campaigns(session: AsyncSession, name: str | None) -> list[tuple[Campaign, CampaignSettings]]:
    stmt = select(Campaign).order_by(Campaign.name)
    if name:
        stmt = stmt.where(Campaign.name == name)
    return [(c, campaign_settings(c)) for c in (await session.execute(stmt)).scalars()]


_HUMAN = and_(
    CallAttempt.answered_at.is_not(None),
    func.coalesce(CallAttempt.amd_result, "") != "machine",
    func.coalesce(CallAttempt.outcome, "") != "machine",
)


async def effective_by_agent(
    session: AsyncSession, day: date, tz: str, campaign: str | None = None
) -> list[AgentEffective]:
    """Per agent for one local day: attempts, contacts, effective calls and the target."""
    zone = ZoneInfo(tz)
    start, end = _day_bounds(day, zone)
    totals: dict[str, dict[str, Any]] = {}
    for camp, settings in await _campaigns(session, campaign):
        effective_codes = [d.code for d in settings.dispositions if d.effective]
        contact_codes = [d.code for d in settings.dispositions if d.contact]
        is_effective = and_(
            CallAttempt.bridged_at.is_not(None),
            CallAttempt.disposition.in_(effective_codes or [""]),
            func.coalesce(CallAttempt.talk_seconds, 0.0) >= settings.effective_call_seconds,
        )
        is_contact = or_(CallAttempt.bridged_at.is_not(None), CallAttempt.disposition.in_(contact_codes or [""]))
        rows = await session.execute(
            select(
                CallAttempt.agent_id,
                func.count(),
                func.sum(case((is_contact, 1), else_=0)),
                func.sum(case((is_effective, 1), else_=0)),
                func.sum(func.coalesce(CallAttempt.talk_seconds, 0.0)),
            )
            .where(
                CallAttempt.campaign_id == camp.id,
                CallAttempt.agent_id.is_not(None),
                CallAttempt.dialled_at >= start,
                CallAttempt.dialled_at < end,
            )
            .group_by(CallAttempt.agent_id)
        )
        for agent_id, attempts, contacts, effective, talk in rows:
            t = totals.setdefault(agent_id, {"attempts": 0, "contacts": 0, "effective": 0, "talk": 0.0, "target": 0})
            t["attempts"] += attempts
            t["contacts"] += int(contacts or 0)
            t["effective"] += int(effective or 0)
            t["talk"] += float(talk or 0.0)
            # An agent working two campaigns in a day answers to the larger target.
            t["target"] = max(t["target"], settings.daily_target)
    return [
        AgentEffective(a, t["attempts"], t["contacts"], t["effective"], t["target"], round(t["talk"], 1))
        for a, t in sorted(totals.items())
    ]


def _utc_hour(session: AsyncSession, column: Any) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD HH24")
    return func.strftime("%Y-%m-%d %H", column)


def _local(hour_key: str, zone: ZoneInfo) -> datetime:
    return datetime.strptime(hour_key, "%Y-%m-%d %H").replace(tzinfo=UTC).astimezone(zone)


async def abandon_by_day(
    session: AsyncSession, end_day: date, days: int, tz: str, campaign: str | None = None
) -> list[AbandonDay]:
    """Abandon rate per local day for ``days`` days ending with ``end_day``."""
    zone = ZoneInfo(tz)
    first = end_day - timedelta(days=days - 1)
    start, _ = _day_bounds(first, zone)
    _, end = _day_bounds(end_day, zone)
    bucket = _utc_hour(session, CallAttempt.answered_at)
    stmt = (
        select(
            bucket,
            func.count(),
            func.sum(case((CallAttempt.outcome == "abandoned", 1), else_=0)),
        )
        .where(_HUMAN, CallAttempt.answered_at >= start, CallAttempt.answered_at < end)
        .group_by(bucket)
    )
    stmt = await _filter_campaign(session, stmt, campaign)
    per_day: dict[date, list[int]] = defaultdict(lambda: [0, 0])
    for key, answered, abandoned in (await session.execute(stmt)).all():
        d = _local(key, zone).date()
        per_day[d][0] += answered
        per_day[d][1] += int(abandoned or 0)
    out: list[AbandonDay] = []
    for i in range(days):
        d = first + timedelta(days=i)
        answered, abandoned = per_day.get(d, [0, 0])
        out.append(AbandonDay(d, answered, abandoned, abandoned / answered if answered else None))
    return out


async def contact_rate_by_hour(
    session: AsyncSession, start_day: date, end_day: date, tz: str, campaign: str | None = None
) -> list[HourContact]:
    """Contacts / attempts per local hour of day (0-23), over the local days given."""
    zone = ZoneInfo(tz)
    start, _ = _day_bounds(start_day, zone)
    _, end = _day_bounds(end_day, zone)
    bucket = _utc_hour(session, CallAttempt.dialled_at)
    contact = or_(CallAttempt.bridged_at.is_not(None), Disposition.contact.is_(True))
    stmt = (
        select(bucket, func.count(), func.sum(case((contact, 1), else_=0)))
        .select_from(CallAttempt)
        .outerjoin(
            Disposition,
            and_(Disposition.campaign_id == CallAttempt.campaign_id, Disposition.code == CallAttempt.disposition),
        )
        .where(CallAttempt.dialled_at >= start, CallAttempt.dialled_at < end)
        .group_by(bucket)
    )
    stmt = await _filter_campaign(session, stmt, campaign)
    per_hour: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for key, attempts, contacts in (await session.execute(stmt)).all():
        h = _local(key, zone).hour
        per_hour[h][0] += attempts
        per_hour[h][1] += int(contacts or 0)
    return [
        HourContact(h, per_hour[h][0], per_hour[h][1], per_hour[h][1] / per_hour[h][0] if per_hour[h][0] else None)
        for h in range(24)
    ]


async def _filter_campaign(session: AsyncSession, stmt: Any, campaign: str | None) -> Any:
    if not campaign:
        return stmt
    campaign_id = (await session.execute(select(Campaign.id).where(Campaign.name == campaign))).scalar_one_or_none()
    return stmt.where(CallAttempt.campaign_id == (campaign_id if campaign_id is not None else -1))
