"""Campaign-side reports from the CDR (``call_attempts``), the leads and, when the ACD has logged
agent state, the ``queue_log``: the figures campaign managers steer by (issue 5 items 4 and 7).

Definitions (the CLI help repeats them; the tests compute them by hand):

- *attempt*: one CDR row. A *machine* call has outcome ``machine`` or AMD result ``machine``;
  every other answered call is *human-answered*.
- *contact*: an attempt whose disposition is flagged ``contact``, or a human call bridged to an agent.
- *effective call*: a human conversation bridged to an agent, with ``talk_seconds`` at or above the
  campaign's ``effective_call_seconds`` (default 15) AND a disposition flagged ``effective``.
  Too short, the wrong disposition or a machine: not effective. *success*: disposition flagged ``success``.
- *agent report* for one local day (site time zone, or ``--tz``): per agent, attempts, contacts,
  effective calls against the daily target (the campaign's ``daily_target``, default 100, summed
  over the campaigns the agent made attempts in that day), successes and talk time (CDR
  ``talk_seconds``). *Occupancy* = (talk + wrap-up) / (logged in and not paused), replayed from the
  ACD ``queue_log`` (see :mod:`acd.reports`) when the agent has staffed time there that day;
  otherwise an *estimate*: CDR talk / the span from the agent's first dial to the end of the last
  call that day, labelled ``estimate``.
- *campaign report* up to ``as_of`` (now, or the end of ``--date``): leads total and by status
  (statuses as they are now), *penetration* = leads with at least one attempt / leads, *contact
  rate* = contacts / attempts, and *lead contact rate* = leads contacted at least once / leads;
  the day's attempts, contacts, effective calls against the day's target (daily_target x agents
  who made attempts in the campaign that day), *abandon rate* = abandoned / human-answered as
  :mod:`dialer.abandon` and the runner count them: human-answered = answered with outcome
  ``completed`` or ``abandoned`` (not a machine); abandoned = no agent connected within 2 s, i.e.
  outcome ``abandoned``, or completed but bridged more than 2 s after the answer when no AMD ran;
  counted by answer instant over the campaign's local day, the last 24 h and the rolling 30 days
  (both ``(as_of - span, as_of]`` as in :class:`~dialer.abandon.AbandonLedger`); calls in progress
  are left out until their fate is known. *Exhausted* leads have status ``exhausted``.
  *Attempts by hour* of the callee's local day (first time zone of the contact, else the campaign's,
  else the site's) with the contact rate per hour: the contact-rate-by-hour chart.
- *leads at risk*: open leads (ready, callback, dialing) not yet contacted whose reach deadline
  (``reach_deadline_at``, else created + ``retry.reach_deadline_hours``; see
  :meth:`dialer.retry.RetryPolicy.at_risk`) falls within N hours (default 12); overdue ones too.
- *lead history*: every attempt of one lead with its times in UTC and in the callee's local time,
  outcome, SIP status, agent and disposition, then the next attempt and why (from the status, the
  callback, or the retry policy replayed over the lead's attempts).

Functions take an :class:`~sqlalchemy.ext.asyncio.AsyncSession` and the current instant ``now``
(never read the clock) and return frozen dataclasses; :func:`write_csv` writes them as UTF-8 CSV
with a BOM (Excel then opens Chinese names correctly), numbers unformatted, instants in ISO 8601 UTC.
SQL groups rows (quarter-hour buckets for the hour chart, exact for half-hour zones) so a month
of CDRs comes back as a few thousand rows; works on SQLite and PostgreSQL.
"""

from __future__ import annotations

import csv
import dataclasses
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal

import structlog
from sqlalchemy import BigInteger, Integer, String, and_, case, cast, func, inspect, literal_column, not_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from dialer.campaigns import CampaignSettings, campaign_settings, get_campaign
from dialer.models import CallAttempt, Campaign, Contact, Disposition, Lead, LeadStatus
from dialer.retry import Attempt, Exhausted, LeadState, NextAttempt, RetryPolicy
from dialer.windows import zone

__all__ = [
    "ABANDON_GRACE_S",
    "AbandonDay",
    "AgentDayRow",
    "AttemptLine",
    "CampaignReport",
    "HourRow",
    "LeadAtRisk",
    "LeadHistory",
    "ReportError",
    "abandon_by_day",
    "agent_day_report",
    "campaign_report",
    "day_bounds",
    "lead_history",
    "leads_at_risk",
    "write_csv",
]

log = structlog.get_logger()

#: dialer.abandon's 2-second rule, repeated here as SQL
ABANDON_GRACE_S = 2.0
#: the CDR outcomes of a call a person answered (dialer.runner_store.HUMAN_OUTCOMES)
HUMAN_OUTCOMES: tuple[str, ...] = ("completed", "abandoned")
OPEN_STATUSES: tuple[str, ...] = (LeadStatus.READY, LeadStatus.CALLBACK, LeadStatus.DIALING)
DEFAULT_AT_RISK_WITHIN = timedelta(hours=12)


class ReportError(Exception):
    """A report that cannot be made, phrased for the user with the fix."""


# -- rows ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentDayRow:
    agent_id: str
    agent_name: str | None
    campaigns: tuple[str, ...]
    attempts: int
    contacts: int
    effective: int
    daily_target: int
    target_reached: float | None  # effective / daily_target
    successes: int
    talk_s: float
    first_dial_at: datetime | None
    last_end_at: datetime | None
    occupancy: float | None
    occupancy_source: Literal["queue_log", "estimate", "none"]
    # From the ACD queue_log, when it has this agent that day (None otherwise).
    acd_answered: int | None = None
    acd_talk_s: float | None = None
    wrap_s: float | None = None
    aht_s: float | None = None
    staffed_s: float | None = None


@dataclass(frozen=True, slots=True)
class HourRow:
    hour: int  # 0-23, the callee's local hour
    attempts: int
    contacts: int
    contact_rate: float | None


@dataclass(frozen=True, slots=True)
class AbandonDay:
    day: date  # local day of the answer
    human_answered: int
    abandoned: int
    rate: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class CampaignReport:
    campaign: str
    as_of: datetime
    day: date
    timezone: str
    leads_total: int
    leads_by_status: dict[str, int]
    leads_attempted: int
    penetration: float | None
    attempts: int
    contacts: int
    contact_rate: float | None
    leads_contacted: int
    lead_contact_rate: float | None
    day_attempts: int
    day_contacts: int
    day_effective: int
    day_successes: int
    day_agents: int
    daily_target: int
    day_target: int
    abandon_target: float
    abandon_today_answered: int
    abandon_today_abandoned: int
    abandon_today_rate: float | None
    abandon_24h_answered: int
    abandon_24h_abandoned: int
    abandon_24h_rate: float | None
    abandon_30d_answered: int
    abandon_30d_abandoned: int
    abandon_30d_rate: float | None
    leads_exhausted: int
    leads_at_risk: int
    at_risk_within_hours: float
    hours: tuple[HourRow, ...]

    def csv_row(self) -> dict[str, Any]:
        """One flat row: status counts become ``leads_<status>`` columns, the hour chart is left out."""
        row = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in ("hours", "leads_by_status")
        }
        for status in LeadStatus:
            row[f"leads_{status.value}"] = self.leads_by_status.get(status.value, 0)
        return row


@dataclass(frozen=True, slots=True, kw_only=True)
class LeadAtRisk:
    lead_id: int
    phone: str
    name: str | None
    status: str
    attempts: int
    last_attempt_at: datetime | None
    last_outcome: str | None
    next_attempt_at: datetime | None
    deadline_at: datetime
    deadline_local: str
    timezone: str
    hours_left: float  # negative: overdue
    priority: int
    dayparts_tried: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptLine:
    attempt_id: int
    number: str
    number_index: int
    timezone: str
    dialled_at: datetime
    dialled_local: datetime
    daypart: str | None
    ringing_at: datetime | None
    answered_at: datetime | None
    bridged_at: datetime | None
    ended_at: datetime | None
    ring_s: float | None
    talk_s: float | None
    sip_status: int | None
    sip_reason: str | None
    outcome: str | None
    amd_result: str | None
    agent_id: str | None
    disposition: str | None
    recording_id: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class LeadHistory:
    lead_id: int
    campaign: str
    status: str
    phone: str
    numbers: tuple[str, ...]
    name: str | None
    timezone: str
    country: str | None
    priority: int
    dayparts_tried: tuple[str, ...]
    last_outcome: str | None
    last_disposition: str | None
    callback_at: datetime | None
    callback_owner: str | None
    reach_deadline_at: datetime | None
    created_at: datetime
    attempts: tuple[AttemptLine, ...]
    next_attempt_at: datetime | None
    next_attempt_local: datetime | None
    next_reason: str


# -- shared SQL pieces -------------------------------------------------------------------------


def day_bounds(day: date, tz: str) -> tuple[datetime, datetime]:
    """The UTC instants where the local ``day`` in ``tz`` starts and ends (DST-correct)."""
    z = zone(tz)
    start = datetime.combine(day, time(0), tzinfo=z).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=z).astimezone(UTC)
    return start, end


def _disposition_join() -> Any:
    return and_(Disposition.campaign_id == CallAttempt.campaign_id, Disposition.code == CallAttempt.disposition)


_HUMAN = and_(
    func.coalesce(CallAttempt.outcome, "") != "machine",
    func.coalesce(CallAttempt.amd_result, "") != "machine",
)
_BRIDGED_HUMAN = and_(CallAttempt.bridged_at.is_not(None), _HUMAN)
# Needs the outer join on Disposition.
_CONTACT = or_(Disposition.contact.is_(True), _BRIDGED_HUMAN)
_SUCCESS = Disposition.success.is_(True)


def _effective(threshold: ColumnElement[Any] | float) -> ColumnElement[bool]:
    return and_(
        _BRIDGED_HUMAN,
        Disposition.effective.is_(True),
        func.coalesce(CallAttempt.talk_seconds, 0.0) >= threshold,
    )


def _count(cond: ColumnElement[bool]) -> Any:
    return func.coalesce(func.sum(case((cond, 1), else_=0)), 0)


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


def _seconds_between(session: AsyncSession, start: Any, end: Any) -> Any:
    if _dialect(session) == "postgresql":
        return func.extract("epoch", end - start)
    # SQLite keeps UTC instants as ISO text, which julianday() reads.
    return (func.julianday(end) - func.julianday(start)) * 86400.0


def _abandoned(session: AsyncSession) -> ColumnElement[bool]:
    """Abandoned among human-answered calls, as the runner feeds :class:`~dialer.abandon.AbandonLedger`.

    Outcome ``abandoned`` (no agent within the grace), or a completed call bridged more than 2 s
    after the answer when no AMD ran. With AMD the 2 s count from the detector's verdict (after the
    greeting, as Ofcom measures), an instant the CDR does not keep: the outcome decides.
    """
    late = _seconds_between(session, CallAttempt.answered_at, CallAttempt.bridged_at) > ABANDON_GRACE_S
    return or_(
        CallAttempt.outcome == "abandoned",
        and_(CallAttempt.outcome == "completed", CallAttempt.amd_result.is_(None), late),
    )


def _human_answered_known() -> ColumnElement[bool]:
    """Answered by a person and finished: outcome completed or abandoned (a call in progress has none)."""
    return and_(
        CallAttempt.answered_at.is_not(None),
        CallAttempt.outcome.in_(HUMAN_OUTCOMES),
        func.coalesce(CallAttempt.amd_result, "") != "machine",
    )


def _quarter_index(session: AsyncSession, column: Any) -> Any:
    """Quarter-hours since the Unix epoch of an instant, in SQL (exact integer arithmetic).

    Constants are literal SQL, not bound parameters: PostgreSQL must see the GROUP BY expression
    as the selected one, and $1 in one place and $4 in the other are different expressions to it.
    """
    if _dialect(session) == "postgresql":
        return cast(func.floor(func.extract("epoch", column) / literal_column("900")), BigInteger)
    return cast(func.strftime(literal_column("'%s'"), column), Integer).op("/")(literal_column("900"))


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def _fallback_zone(settings: CampaignSettings, site_tz: str) -> str:
    return settings.timezone or site_tz


def _zone_of(timezones: Sequence[str] | None, fallback: str) -> str:
    return timezones[0] if timezones else fallback


async def _has_table(session: AsyncSession, name: str) -> bool:
    def check(sync: Session) -> bool:
        return bool(inspect(sync.connection()).has_table(name))

    return await session.run_sync(check)


# -- agent report ------------------------------------------------------------------------------


@dataclass(slots=True)
class _AgentSum:
    campaigns: list[str] = dataclasses.field(default_factory=list)
    attempts: int = 0
    contacts: int = 0
    effective: int = 0
    successes: int = 0
    talk: float = 0.0
    target: int = 0
    first: datetime | None = None
    last: datetime | None = None


async def agent_day_report(
    session: AsyncSession,
    day: date,
    tz: str,
    *,
    campaign: str | None = None,
    now: datetime | None = None,
    use_queue_log: bool = True,
) -> list[AgentDayRow]:
    """Per agent for the local ``day`` in ``tz`` (see the module docstring for every definition).

    Without ``campaign``, agents known only from the ACD queue_log that day are listed too
    (zero attempts), so inbound-only agents still get their occupancy. ``now`` ends today's
    logged-in time (an agent still logged in is not counted as staffed until midnight).
    """
    start, end = day_bounds(day, tz)
    stmt = select(Campaign).order_by(Campaign.name)
    if campaign is not None:
        stmt = stmt.where(Campaign.id == (await get_campaign(session, campaign)).id)
    campaigns = {c.id: (c.name, campaign_settings(c)) for c in (await session.execute(stmt)).scalars()}
    sums: dict[str, _AgentSum] = defaultdict(_AgentSum)
    if campaigns:
        threshold = case(
            *((CallAttempt.campaign_id == cid, float(s.effective_call_seconds)) for cid, (_, s) in campaigns.items()),
            else_=float(CampaignSettings.model_fields["effective_call_seconds"].default),
        )
        rows = await session.execute(
            select(
                CallAttempt.agent_id,
                CallAttempt.campaign_id,
                func.count(),
                _count(_CONTACT),
                _count(_effective(threshold)),
                _count(_SUCCESS),
                func.coalesce(func.sum(CallAttempt.talk_seconds), 0.0),
                func.min(CallAttempt.dialled_at),
                func.max(func.coalesce(CallAttempt.ended_at, CallAttempt.dialled_at)),
            )
            .select_from(CallAttempt)
            .outerjoin(Disposition, _disposition_join())
            .where(
                CallAttempt.agent_id.is_not(None),
                CallAttempt.campaign_id.in_(list(campaigns)),
                CallAttempt.dialled_at >= start,
                CallAttempt.dialled_at < end,
            )
            .group_by(CallAttempt.agent_id, CallAttempt.campaign_id)
        )
        for agent_id, cid, attempts, contacts, effective, successes, talk, first, last in rows:
            name, settings = campaigns[cid]
            s = sums[agent_id]
            s.campaigns.append(name)
            s.attempts += int(attempts)
            s.contacts += int(contacts)
            s.effective += int(effective)
            s.successes += int(successes)
            s.talk += float(talk)
            s.target += settings.daily_target
            s.first = first if s.first is None or first < s.first else s.first
            s.last = last if s.last is None or last > s.last else s.last

    until = max(start, min(end, now)) if now is not None else end
    acd = await _acd_agents(session, start, until) if use_queue_log and until > start else {}
    names = await _agent_names(session)
    if campaign is None:
        for agent_id in acd:
            sums.setdefault(agent_id, _AgentSum())
    out: list[AgentDayRow] = []
    for agent_id, s in sorted(sums.items()):
        a = acd.get(agent_id)
        source: Literal["queue_log", "estimate", "none"]
        if a is not None and a.staffed_s > 0:
            occupancy, source = a.occupancy, "queue_log"
        elif s.first is not None and s.last is not None and s.last > s.first:
            occupancy, source = s.talk / (s.last - s.first).total_seconds(), "estimate"
        else:
            occupancy, source = None, "none"
        out.append(
            AgentDayRow(
                agent_id=agent_id,
                agent_name=names.get(agent_id),
                campaigns=tuple(sorted(s.campaigns)),
                attempts=s.attempts,
                contacts=s.contacts,
                effective=s.effective,
                daily_target=s.target,
                target_reached=_ratio(s.effective, s.target),
                successes=s.successes,
                talk_s=round(s.talk, 3),
                first_dial_at=s.first,
                last_end_at=s.last,
                occupancy=occupancy,
                occupancy_source=source,
                acd_answered=a.answered if a else None,
                acd_talk_s=a.talk_s if a else None,
                wrap_s=a.wrap_s if a else None,
                aht_s=a.aht_s if a else None,
                staffed_s=a.staffed_s if a else None,
            )
        )
    return out


async def _acd_agents(session: AsyncSession, start: datetime, end: datetime) -> dict[str, Any]:
    """acd.reports' per-agent figures for the window, or {} when there is no queue_log table."""
    if not await _has_table(session, "queue_log"):
        log.debug("no queue_log table: agent occupancy is estimated from CDRs")
        return {}
    from acd.models import QueueLogRow
    from acd.reports import summarise

    state_events = ("LOGIN", "LOGOFF", "PAUSE", "UNPAUSE")
    # Who was logged in or paused when the day began: agent-state rows of the day before.
    before = select(QueueLogRow).where(
        QueueLogRow.time >= start - timedelta(days=1), QueueLogRow.time < start, QueueLogRow.event.in_(state_events)
    )
    window = select(QueueLogRow).where(QueueLogRow.time >= start, QueueLogRow.time < end)
    rows = list((await session.execute(before)).scalars()) + list((await session.execute(window)).scalars())
    rows.sort(key=lambda r: (r.time, r.id))
    _, agents = summarise(rows, since=start, until=end)
    return {a.agent: a for a in agents}


async def _agent_names(session: AsyncSession) -> dict[str, str]:
    if not await _has_table(session, "agents"):
        return {}
    from acd.models import AgentRow

    return {aid: name for aid, name in await session.execute(select(AgentRow.id, AgentRow.name)) if name}


# -- campaign report ---------------------------------------------------------------------------


async def campaign_report(
    session: AsyncSession,
    name: str,
    *,
    now: datetime,
    site_tz: str = "UTC",
    day: date | None = None,
    at_risk_within: timedelta = DEFAULT_AT_RISK_WITHIN,
) -> CampaignReport:
    """The campaign's figures up to ``as_of`` = ``now``, or the end of the local ``day`` if earlier.

    The campaign's day is in its ``timezone`` setting, else ``site_tz``.
    """
    camp = await get_campaign(session, name)
    settings = campaign_settings(camp)
    tz = _fallback_zone(settings, site_tz)
    if day is None:
        day = now.astimezone(zone(tz)).date()
    day_start, day_end = day_bounds(day, tz)
    as_of = min(now, day_end)
    cid = camp.id
    in_campaign = CallAttempt.campaign_id == cid
    upto = CallAttempt.dialled_at < as_of

    by_status = {
        str(s): int(n)
        for s, n in await session.execute(
            select(Lead.status, func.count()).where(Lead.campaign_id == cid).group_by(Lead.status)
        )
    }
    leads_total = sum(by_status.values())
    base = select().select_from(CallAttempt).outerjoin(Disposition, _disposition_join()).where(in_campaign)
    # One pass over the campaign's CDRs for the lifetime figures. A CDR's lead is in its campaign.
    attempts, contacts, leads_attempted, leads_contacted = (
        await session.execute(
            base.add_columns(
                func.count(),
                _count(_CONTACT),
                func.count(CallAttempt.lead_id.distinct()),
                func.count(case((_CONTACT, CallAttempt.lead_id)).distinct()),
            ).where(upto)
        )
    ).one()
    threshold = float(settings.effective_call_seconds)
    d_attempts, d_contacts, d_effective, d_success, d_agents = (
        await session.execute(
            base.add_columns(
                func.count(),
                _count(_CONTACT),
                _count(_effective(threshold)),
                _count(_SUCCESS),
                func.count(CallAttempt.agent_id.distinct()),
            ).where(CallAttempt.dialled_at >= day_start, CallAttempt.dialled_at < as_of)
        )
    ).one()

    # The three abandon windows in one pass; the bound on dialled_at (a call is answered within
    # minutes of its dialling) lets the (campaign_id, dialled_at) index narrow the scan.
    abandoned = _abandoned(session)
    since_30d, since_24h = as_of - timedelta(days=30), as_of - timedelta(hours=24)
    in_today = and_(CallAttempt.answered_at >= day_start, CallAttempt.answered_at < day_end)
    in_24h = CallAttempt.answered_at > since_24h
    ab = (
        await session.execute(
            select(
                _count(in_today),
                _count(and_(in_today, abandoned)),
                _count(in_24h),
                _count(and_(in_24h, abandoned)),
                func.count(),
                _count(abandoned),
            ).where(
                in_campaign,
                CallAttempt.dialled_at > since_30d - timedelta(hours=1),
                CallAttempt.dialled_at <= as_of,
                _human_answered_known(),
                CallAttempt.answered_at > since_30d,
                CallAttempt.answered_at <= as_of,
            )
        )
    ).one()
    today, last_24h, last_30d = (int(ab[0]), int(ab[1])), (int(ab[2]), int(ab[3])), (int(ab[4]), int(ab[5]))

    at_risk = await leads_at_risk(session, name, now=as_of, within=at_risk_within, site_tz=site_tz)
    hours = await _hours(session, cid, as_of, _fallback_zone(settings, site_tz))
    return CampaignReport(
        campaign=camp.name,
        as_of=as_of,
        day=day,
        timezone=tz,
        leads_total=leads_total,
        leads_by_status=by_status,
        leads_attempted=int(leads_attempted),
        penetration=_ratio(int(leads_attempted), leads_total),
        attempts=int(attempts),
        contacts=int(contacts),
        contact_rate=_ratio(int(contacts), int(attempts)),
        leads_contacted=int(leads_contacted),
        lead_contact_rate=_ratio(int(leads_contacted), leads_total),
        day_attempts=int(d_attempts),
        day_contacts=int(d_contacts),
        day_effective=int(d_effective),
        day_successes=int(d_success),
        day_agents=int(d_agents),
        daily_target=settings.daily_target,
        day_target=settings.daily_target * int(d_agents),
        abandon_target=settings.pacing.target_abandon_rate,
        abandon_today_answered=today[0],
        abandon_today_abandoned=today[1],
        abandon_today_rate=_ratio(today[1], today[0]),
        abandon_24h_answered=last_24h[0],
        abandon_24h_abandoned=last_24h[1],
        abandon_24h_rate=_ratio(last_24h[1], last_24h[0]),
        abandon_30d_answered=last_30d[0],
        abandon_30d_abandoned=last_30d[1],
        abandon_30d_rate=_ratio(last_30d[1], last_30d[0]),
        leads_exhausted=by_status.get(LeadStatus.EXHAUSTED, 0),
        leads_at_risk=len(at_risk),
        at_risk_within_hours=at_risk_within.total_seconds() / 3600,
        hours=hours,
    )


async def abandon_by_day(
    session: AsyncSession,
    end_day: date,
    days: int,
    tz: str,
    *,
    campaign: str | None = None,
    now: datetime | None = None,
) -> list[AbandonDay]:
    """Abandon rate per local day for the ``days`` days ending with ``end_day``: the series behind
    :attr:`CampaignReport.abandon_today_rate` (same definition, same day, day for day).

    With ``campaign`` the days are in its ``timezone`` setting, else ``tz``; without, every
    campaign counts, in ``tz``. Calls answered at or after ``now`` are left out, as the campaign
    report leaves out what follows its ``as_of``.
    """
    if days < 1:
        raise ReportError(f"days={days}: give at least 1 day")
    campaign_id: int | None = None
    if campaign is not None:
        camp = await get_campaign(session, campaign)
        tz = _fallback_zone(campaign_settings(camp), tz)
        campaign_id = camp.id
    first = end_day - timedelta(days=days - 1)
    start, _ = day_bounds(first, tz)
    _, end = day_bounds(end_day, tz)
    if now is not None:
        end = min(end, now)
    quarter = _quarter_index(session, CallAttempt.answered_at)
    where = [
        _human_answered_known(),
        CallAttempt.answered_at >= start,
        CallAttempt.answered_at < end,
        # A call is answered within minutes of its dialling: lets the dialled_at index narrow the scan.
        CallAttempt.dialled_at > start - timedelta(hours=1),
        CallAttempt.dialled_at < end,
    ]
    if campaign_id is not None:
        where.append(CallAttempt.campaign_id == campaign_id)
    rows = await session.execute(
        select(quarter, func.count(), _count(_abandoned(session))).where(*where).group_by(quarter)
    )
    z = zone(tz)
    per_day: dict[date, list[int]] = defaultdict(lambda: [0, 0])
    for q, answered, abandoned in rows:
        # Quarter-hour buckets land on the right local day in every zone (offsets are whole quarters).
        d = datetime.fromtimestamp(int(q) * 900, UTC).astimezone(z).date()
        per_day[d][0] += int(answered)
        per_day[d][1] += int(abandoned)
    out = []
    for i in range(days):
        d = first + timedelta(days=i)
        answered, abandoned = per_day.get(d, (0, 0))
        out.append(AbandonDay(d, answered, abandoned, _ratio(abandoned, answered)))
    return out


async def _hours(session: AsyncSession, campaign_id: int, as_of: datetime, fallback_tz: str) -> tuple[HourRow, ...]:
    quarter = _quarter_index(session, CallAttempt.dialled_at)
    stmt = (
        select(quarter, Contact.timezones, func.count(), _count(_CONTACT))
        .select_from(CallAttempt)
        .outerjoin(Disposition, _disposition_join())
        .outerjoin(Contact, Contact.id == CallAttempt.contact_id)
        .where(CallAttempt.campaign_id == campaign_id, CallAttempt.dialled_at < as_of)
        .group_by(quarter, Contact.timezones)
    )
    per_hour: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for q, zones, attempts, contacts in await session.execute(stmt):
        at = datetime.fromtimestamp(int(q) * 900, UTC)
        h = at.astimezone(zone(_zone_of(zones, fallback_tz))).hour
        per_hour[h][0] += int(attempts)
        per_hour[h][1] += int(contacts)
    return tuple(HourRow(h, a, c, _ratio(c, a)) for h, (a, c) in ((h, per_hour[h]) for h in range(24)))


# -- leads at risk -----------------------------------------------------------------------------


async def leads_at_risk(
    session: AsyncSession,
    name: str,
    *,
    now: datetime,
    within: timedelta = DEFAULT_AT_RISK_WITHIN,
    site_tz: str = "UTC",
) -> list[LeadAtRisk]:
    """Open, not yet contacted leads whose reach deadline is within ``within`` of ``now`` (or past)."""
    camp = await get_campaign(session, name)
    settings = campaign_settings(camp)
    policy: RetryPolicy = settings.retry_policy()
    fallback = _fallback_zone(settings, site_tz)
    horizon = now + within
    deadline_near: ColumnElement[bool] = Lead.reach_deadline_at <= horizon
    if policy.reach_deadline is not None:
        deadline_near = or_(
            deadline_near,
            and_(Lead.reach_deadline_at.is_(None), Lead.created_at <= horizon - policy.reach_deadline),
        )
    was_contacted = (
        select(CallAttempt.id)
        .outerjoin(Disposition, _disposition_join())
        .where(CallAttempt.lead_id == Lead.id, _CONTACT)
        .exists()
    )
    contact_codes = [d.code for d in settings.dispositions if d.contact]
    stmt = (
        select(Lead, Contact)
        .join(Contact, Contact.id == Lead.contact_id)
        .where(
            Lead.campaign_id == camp.id,
            Lead.status.in_(OPEN_STATUSES),
            deadline_near,
            not_(was_contacted),
            or_(Lead.last_disposition.is_(None), Lead.last_disposition.not_in(contact_codes or [""])),
        )
    )
    out: list[LeadAtRisk] = []
    for lead, contact in (await session.execute(stmt)).all():
        state = LeadState(attempts=(), created_at=lead.created_at, reach_deadline=lead.reach_deadline_at)
        deadline = policy.deadline_of(state)
        if deadline is None or not policy.at_risk(state, now, within):
            continue
        tz = _zone_of(contact.timezones, fallback)
        out.append(
            LeadAtRisk(
                lead_id=lead.id,
                phone=contact.phone,
                name=contact.name,
                status=lead.status,
                attempts=lead.attempts,
                last_attempt_at=lead.last_attempt_at,
                last_outcome=lead.last_outcome,
                next_attempt_at=lead.next_attempt_at,
                deadline_at=deadline,
                deadline_local=deadline.astimezone(zone(tz)).strftime("%Y-%m-%d %H:%M"),
                timezone=tz,
                hours_left=round((deadline - now).total_seconds() / 3600, 3),
                priority=lead.priority,
                dayparts_tried=", ".join(lead.dayparts_tried or []),
            )
        )
    out.sort(key=lambda r: (r.deadline_at, r.lead_id))
    return out


# -- per-lead history --------------------------------------------------------------------------


async def _find_lead(session: AsyncSession, camp: Campaign, key: str, region: str | None) -> tuple[Lead, Contact]:
    text = key.strip()
    base = select(Lead, Contact).join(Contact, Contact.id == Lead.contact_id).where(Lead.campaign_id == camp.id)
    if text.isdigit() and len(text) <= 18:
        found = (await session.execute(base.where(Lead.id == int(text)))).first()
        if found is not None:
            return found
    from dialer.lists.normalize import RowError, normalize_number

    try:
        e164 = normalize_number(text, region).e164
    except RowError:
        e164 = None
    if e164 is not None:
        found = (await session.execute(base.where(Contact.phone == e164))).first()
        if found is None:
            # An alternate number: JSON lists render as ["+86...", ...] on both back ends.
            like = cast(Contact.alt_phones, String).like(f'%"{e164}"%')
            found = (await session.execute(base.where(like))).first()
        if found is not None:
            return found
    raise ReportError(
        f"no lead {key!r} in campaign {camp.name!r}; give the lead id or its phone number "
        "(E.164 such as +8613800138000); `dialer leads export` lists them"
    )


async def lead_history(
    session: AsyncSession, campaign: str, key: str, *, now: datetime, site_tz: str = "UTC"
) -> LeadHistory:
    """Every attempt of one lead (by lead id or phone number) and its next attempt with the reason."""
    camp = await get_campaign(session, campaign)
    settings = campaign_settings(camp)
    lead, contact = await _find_lead(session, camp, key, settings.region)
    tz = _zone_of(contact.timezones, _fallback_zone(settings, site_tz))
    policy: RetryPolicy = settings.retry_policy()
    cdrs = (
        await session.execute(
            select(CallAttempt).where(CallAttempt.lead_id == lead.id).order_by(CallAttempt.dialled_at, CallAttempt.id)
        )
    ).scalars()
    lines = tuple(_attempt_line(c, tz, policy) for c in cdrs)
    at, reason = explain_next_attempt(lead, contact, lines, settings, tz, now)
    return LeadHistory(
        lead_id=lead.id,
        campaign=camp.name,
        status=lead.status,
        phone=contact.phone,
        numbers=tuple(contact.numbers),
        name=contact.name,
        timezone=tz,
        country=contact.country,
        priority=lead.priority,
        dayparts_tried=tuple(lead.dayparts_tried or ()),
        last_outcome=lead.last_outcome,
        last_disposition=lead.last_disposition,
        callback_at=lead.callback_at,
        callback_owner=lead.callback_owner,
        reach_deadline_at=policy.deadline_of(
            LeadState(attempts=(), created_at=lead.created_at, reach_deadline=lead.reach_deadline_at)
        ),
        created_at=lead.created_at,
        attempts=lines,
        next_attempt_at=at,
        next_attempt_local=at.astimezone(zone(tz)) if at is not None else None,
        next_reason=reason,
    )


def _attempt_line(c: CallAttempt, tz: str, policy: RetryPolicy) -> AttemptLine:
    dp = policy.daypart_at(c.dialled_at, tz)
    ring_end = c.answered_at or (c.ended_at if c.ringing_at is not None else None)
    return AttemptLine(
        attempt_id=c.id,
        number=c.number,
        number_index=c.number_index,
        timezone=tz,
        dialled_at=c.dialled_at,
        dialled_local=c.dialled_at.astimezone(zone(tz)),
        daypart=dp.name if dp else None,
        ringing_at=c.ringing_at,
        answered_at=c.answered_at,
        bridged_at=c.bridged_at,
        ended_at=c.ended_at,
        ring_s=(ring_end - c.ringing_at).total_seconds() if c.ringing_at and ring_end else None,
        talk_s=c.talk_seconds,
        sip_status=c.sip_status,
        sip_reason=c.sip_reason,
        outcome=c.outcome,
        amd_result=c.amd_result,
        agent_id=c.agent_id,
        disposition=c.disposition,
        recording_id=c.recording_id,
    )


def _local(at: datetime, tz: str) -> str:
    return f"{at.astimezone(zone(tz)):%a %Y-%m-%d %H:%M} local ({tz})"


def explain_next_attempt(
    lead: Lead,
    contact: Contact,
    attempts: Sequence[AttemptLine],
    settings: CampaignSettings,
    tz: str,
    now: datetime,
) -> tuple[datetime | None, str]:
    """When the lead is dialled next and why, in words (pure: the lead's rows, the settings and ``now``).

    The runner writes its reason with every decision (``leads.next_attempt_reason``): that is shown
    as it is. For leads without one (older rows, imports) the reason is rebuilt: from the status,
    the callback, or the campaign's retry policy replayed over the lead's attempts; a stored
    ``next_attempt_at`` that differs from the replay wins (it is what the dialer will do) and is said.
    """
    stored = lead.next_attempt_reason
    status = lead.status
    if status == LeadStatus.PENDING:
        return None, "the import that created this lead is still running; it is dialled once the import finishes"
    if status == LeadStatus.DIALING:
        by = f" by {lead.claimed_by}" if lead.claimed_by else ""
        since = f" since {lead.claimed_at:%Y-%m-%d %H:%M:%S} UTC" if lead.claimed_at else ""
        return None, f"being dialled now (claimed{by}{since})"
    if status == LeadStatus.CALLBACK:
        at = lead.next_attempt_at or lead.callback_at
        if stored:
            return at, stored
        if lead.callback_at is None:
            return at, "callback without an agreed time; dialled when due"
        who = f"offered to agent {lead.callback_owner} first" if lead.callback_owner else "shared: any agent"
        asked = "; the customer asked for this time" if lead.callback_customer_requested else ""
        return at, f"callback agreed for {_local(lead.callback_at, tz)}; {who}{asked}"
    if status in (LeadStatus.DNC, LeadStatus.DONE, LeadStatus.EXHAUSTED) and stored:
        return None, f"{status}: {stored}"
    if status == LeadStatus.DNC:
        return None, "on a do-not-call list (found at dial time or by disposition); never dialled again"
    if status == LeadStatus.DONE:
        d = lead.last_disposition
        return None, f"finished: final disposition {d}" if d else "finished: final disposition set"
    if status == LeadStatus.READY and stored:
        return lead.next_attempt_at, stored

    policy: RetryPolicy = settings.retry_policy()
    window = settings.calling_window()
    zones = list(contact.timezones or [tz])
    finished = [a for a in attempts if a.outcome]
    replay: NextAttempt | Exhausted | None = None
    if finished:
        last = finished[-1]
        history = tuple(Attempt(a.dialled_at, _retry_outcome(a), a.number_index, a.daypart) for a in finished)
        state = LeadState(
            attempts=history,
            numbers=len(contact.numbers),
            created_at=lead.created_at,
            reach_deadline=lead.reach_deadline_at,
        )
        try:
            replay = policy.schedule_next(
                state, history[-1].outcome, last.ended_at or last.dialled_at, zones, contact.country, window
            )
        except ValueError as exc:
            replay = Exhausted(f"cannot replay the retry rules: {exc}")

    if status == LeadStatus.EXHAUSTED:
        if isinstance(replay, Exhausted):
            return None, f"exhausted: {replay.reason}"
        deadline = policy.deadline_of(
            LeadState(attempts=(), created_at=lead.created_at, reach_deadline=lead.reach_deadline_at)
        )
        if deadline is not None and deadline <= now:
            return None, f"exhausted: reach deadline {_local(deadline, tz)} passed"
        return None, "exhausted: attempts or the reach deadline ran out"

    # status ready
    if replay is None:
        due = lead.next_attempt_at or now
        opening = window.next_open(zones, contact.country, max(due, now))
        if opening is None:
            return None, f"first attempt, but no calling window opens for {', '.join(zones)} in the next 14 days"
        if opening > max(due, now):
            return opening, f"first attempt; the calling window opens {_local(opening, tz)}"
        return due, "first attempt; due now (inside the calling window)"
    if isinstance(replay, Exhausted):
        d = f" with disposition {lead.last_disposition}" if lead.last_disposition else ""
        reason = (
            f"last call {finished[-1].outcome}{d}, not final, so the lead stays ready"
            if finished[-1].outcome == "completed"
            else f"retry rules say {replay.reason}; the lead will be closed"
        )
        return lead.next_attempt_at, reason
    if lead.next_attempt_at is not None and abs((lead.next_attempt_at - replay.at_utc).total_seconds()) > 60:
        return lead.next_attempt_at, (
            f"scheduled for {_local(lead.next_attempt_at, tz)}; the current retry rules would say "
            f"{_local(replay.at_utc, tz)} ({replay.reason}), so settings changed since or it was rescheduled"
        )
    return lead.next_attempt_at or replay.at_utc, replay.reason


def _retry_outcome(a: AttemptLine) -> str:
    """The CDR outcome as the retry rules know it: a bridged human call is 'completed'."""
    if a.outcome == "completed" or (a.bridged_at is not None and a.outcome not in ("machine", "abandoned")):
        return "completed"
    return a.outcome or "failed"


# -- CSV ---------------------------------------------------------------------------------------


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat() if value.tzinfo else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple | list):
        return "; ".join(str(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}={v}" for k, v in sorted(value.items()))
    return value


def _as_mapping(item: Any) -> Mapping[str, Any]:
    if isinstance(item, Mapping):
        return item
    if dataclasses.is_dataclass(item) and not isinstance(item, type):
        return {f.name: getattr(item, f.name) for f in dataclasses.fields(item)}
    raise TypeError(f"cannot write {type(item).__name__} as a CSV row; pass dataclasses or mappings")


def write_csv(path: Path, items: Iterable[Any], columns: Sequence[str] | None = None) -> int:
    """Write one header row and one row per item (dataclass or mapping); returns the row count.

    UTF-8 with a BOM so Excel detects the encoding; numbers are written as Python prints them
    (no thousands separators, rates as fractions), instants as ISO 8601 UTC, None as empty.
    """
    rows = [_as_mapping(i) for i in items]
    header = list(columns) if columns is not None else (list(rows[0]) if rows else [])
    tmp = path.with_name(path.name + ".part")
    with tmp.open("w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for r in rows:
            writer.writerow([_cell(r.get(c)) for c in header])
    tmp.replace(path)  # never leave a half-written report behind
    return len(rows)


def columns_of(cls: type[Any]) -> list[str]:
    """The CSV header of a row dataclass (for empty reports, which still get a header)."""
    return [f.name for f in dataclasses.fields(cls)]
