"""The campaign runner's database side: claims, dial-time look-ups, CDR rows and lead updates.

Every function takes the sessionmaker and runs one short transaction of its own, so the live
runner never holds a session across a SIP call. The invariants the runner relies on live here:

- a lead is claimed atomically (``dialer.leads.claim_leads``: ``FOR UPDATE SKIP LOCKED`` on
  PostgreSQL, one writer on SQLite) into ``dialing`` with this node's id, so two dialer
  processes on one database never dial it twice;
- the lead's schedule after an attempt is written only while it is still ``dialing`` and
  claimed by this node, so an agent's disposition (``dnc``, a callback, ``final``) given
  during the call is never overwritten by the attempt's own retry decision;
- every attempt is one ``call_attempts`` row, opened when the INVITE goes out and completed
  (times, SIP status, outcome, agent, AMD, talk seconds) together with the lead update, in
  one transaction.

Instants are aware UTC datetimes taken from the runner's clock, never read here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialer.campaigns import CampaignSettings, campaign_settings
from dialer.dnc import DncHit, add_dnc, dnc_match
from dialer.leads import ClaimedLead, claim_leads
from dialer.models import (
    CLAIMABLE_LEAD_STATUSES,
    CallAttempt,
    Campaign,
    CampaignStatus,
    Contact,
    Lead,
    LeadStatus,
)
from dialer.retry import Attempt, Exhausted, LeadState, NextAttempt, RetryPolicy
from dialer.windows import zone

__all__ = [
    "AttemptRecord",
    "CampaignRow",
    "DialContext",
    "DispositionResult",
    "RunnerStoreError",
    "abandon_history",
    "apply_disposition",
    "callee_hour",
    "campaign_history",
    "campaign_row",
    "campaign_rows",
    "claim",
    "defer_lead",
    "dial_context",
    "due_mix",
    "effective_today",
    "finish_attempt",
    "lead_mix",
    "lead_state",
    "mark_dnc",
    "next_due_at",
    "open_attempt",
    "recent_attempts",
    "release_claims",
    "release_node_claims",
    "schedule_callback",
]

Sessions = async_sessionmaker[AsyncSession]
HUMAN_OUTCOMES = ("completed", "abandoned")


class RunnerStoreError(Exception):
    """A runner operation on the database that cannot be done; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class CampaignRow:
    id: int
    name: str
    status: str
    settings: CampaignSettings
    updated_at: datetime


def _row(c: Campaign) -> CampaignRow:
    return CampaignRow(c.id, c.name, c.status, campaign_settings(c), c.updated_at)


async def campaign_row(sm: Sessions, campaign_id: int) -> CampaignRow | None:
    async with sm() as session:
        c = await session.get(Campaign, campaign_id)
        return _row(c) if c is not None else None


async def campaign_rows(
    sm: Sessions, statuses: Sequence[str] = (CampaignStatus.ACTIVE, CampaignStatus.PAUSED)
) -> list[CampaignRow]:
    """Campaigns in ``statuses`` (the runner service's periodic look at what to run)."""
    async with sm() as session:
        rows = (await session.execute(select(Campaign).where(Campaign.status.in_(list(statuses))))).scalars()
        return [_row(c) for c in rows]


# -- claiming --------------------------------------------------------------------------------------
async def claim(sm: Sessions, campaign_id: int, now: datetime, limit: int, node: str) -> list[ClaimedLead]:
    """Claim up to ``limit`` due leads for ``node`` and commit (see :func:`dialer.leads.claim_leads`)."""
    async with sm() as session, session.begin():
        return await claim_leads(session, campaign_id, now, limit, node=node)


async def next_due_at(sm: Sessions, campaign_id: int) -> datetime | None:
    """When the next claimable lead of the campaign falls due (None: nothing left to dial)."""
    async with sm() as session:
        stmt = select(func.min(Lead.next_attempt_at)).where(
            Lead.campaign_id == campaign_id, Lead.status.in_(CLAIMABLE_LEAD_STATUSES)
        )
        value: datetime | None = (await session.execute(stmt)).scalar_one_or_none()
        if value is not None and value.tzinfo is None:  # SQLite aggregate bypasses the column type
            from datetime import UTC

            value = value.replace(tzinfo=UTC)
        return value


def _unclaimed_status(lead: Lead) -> str:
    return LeadStatus.CALLBACK if lead.callback_at is not None else LeadStatus.READY


async def release_claims(sm: Sessions, lead_ids: Sequence[int], node: str, now: datetime) -> int:
    """Give back leads this node claimed but did not dial (unchanged schedule, no attempt counted)."""
    if not lead_ids:
        return 0
    count = 0
    async with sm() as session, session.begin():
        leads = (
            await session.execute(
                select(Lead).where(
                    Lead.id.in_(list(lead_ids)), Lead.status == LeadStatus.DIALING, Lead.claimed_by == node
                )
            )
        ).scalars()
        for lead in leads:
            lead.status = _unclaimed_status(lead)
            lead.claimed_by = None
            lead.claimed_at = None
            lead.updated_at = now
            count += 1
    return count


async def release_node_claims(
    sm: Sessions, node: str, now: datetime, *, campaign_id: int | None = None, stale: timedelta | None = None
) -> int:
    """At start-up: give back the campaign's leads left ``dialing`` by a dead claimant.

    A claim is dead when it is this exact node id's (a previous run with the same id crashed
    mid-call) or older than ``stale`` (longer than any call lasts: its node is gone). A fresh
    claim of another node id is that node's call in progress, even on this host (two
    ``dialer run`` processes have different node ids), and is left alone.
    """
    dead = Lead.claimed_by == node
    if stale is not None:
        dead = or_(dead, Lead.claimed_at.is_(None), Lead.claimed_at < now - stale)
    where = [Lead.status == LeadStatus.DIALING, dead]
    if campaign_id is not None:
        where.append(Lead.campaign_id == campaign_id)
    count = 0
    async with sm() as session, session.begin():
        for lead in (await session.execute(select(Lead).where(*where))).scalars():
            lead.status = _unclaimed_status(lead)
            lead.claimed_by = None
            lead.claimed_at = None
            lead.updated_at = now
            count += 1
    return count


@dataclass(frozen=True, slots=True)
class DialContext:
    """What the dial-time checks need beyond the claimed lead."""

    dnc: tuple[DncHit, ...]
    last_abandoned_at: datetime | None
    callback_customer_requested: bool
    list_id: int | None


async def dial_context(sm: Sessions, lead: ClaimedLead) -> DialContext:
    """DNC hits (global, campaign, prefixes) for the number to dial, the number's last abandoned
    call (72 h rule) and the lead's callback flag: read just before dialling."""
    number = lead.number
    async with sm() as session:
        hits = await dnc_match(session, number, lead.campaign_id)
        last_abandoned = (
            await session.execute(
                select(func.max(CallAttempt.dialled_at)).where(
                    CallAttempt.contact_id == lead.contact_id,
                    CallAttempt.number == number,
                    CallAttempt.outcome == "abandoned",
                )
            )
        ).scalar_one_or_none()
        row = (
            await session.execute(select(Lead.callback_customer_requested, Lead.list_id).where(Lead.id == lead.lead_id))
        ).one()
    if last_abandoned is not None and last_abandoned.tzinfo is None:
        from datetime import UTC

        last_abandoned = last_abandoned.replace(tzinfo=UTC)
    return DialContext(tuple(hits), last_abandoned, bool(row.callback_customer_requested), row.list_id)


async def defer_lead(sm: Sessions, lead_id: int, node: str, at: datetime, reason: str, now: datetime) -> bool:
    """Put a claimed lead back, not dialled, to be tried at ``at`` (outside its window, 72 h rule...)."""
    async with sm() as session, session.begin():
        lead = await session.get(Lead, lead_id)
        if lead is None or lead.status != LeadStatus.DIALING or lead.claimed_by != node:
            return False
        lead.status = _unclaimed_status(lead)
        lead.next_attempt_at = at
        lead.next_attempt_reason = reason
        lead.claimed_by = None
        lead.claimed_at = None
        lead.updated_at = now
    return True


async def mark_dnc(sm: Sessions, lead_id: int, reason: str, now: datetime) -> None:
    """The number is on a DNC list: the lead is never dialled (status ``dnc``)."""
    async with sm() as session, session.begin():
        await session.execute(
            update(Lead)
            .where(Lead.id == lead_id)
            .values(
                status=LeadStatus.DNC,
                next_attempt_at=None,
                next_attempt_reason=reason,
                claimed_by=None,
                claimed_at=None,
                updated_at=now,
            )
        )


# -- attempts ----------------------------------------------------------------------------------------
async def open_attempt(
    sm: Sessions,
    *,
    lead: ClaimedLead,
    call_id: str,
    node: str,
    dialled_at: datetime,
    queue: str | None = None,
) -> int:
    """The CDR row of an attempt, written when the INVITE goes out; returns its id."""
    async with sm() as session, session.begin():
        row = CallAttempt(
            call_id=call_id,
            lead_id=lead.lead_id,
            contact_id=lead.contact_id,
            campaign_id=lead.campaign_id,
            number=lead.number,
            number_index=min(lead.number_index, len(lead.numbers) - 1),
            node=node,
            dialled_at=dialled_at,
            queue=queue,
        )
        session.add(row)
        await session.flush()
        return int(row.id)


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """How an attempt went, for its CDR row. ``outcome`` is one of the CDR outcomes."""

    outcome: str
    ended_at: datetime
    ringing_at: datetime | None = None
    answered_at: datetime | None = None
    bridged_at: datetime | None = None
    sip_status: int | None = None
    sip_reason: str | None = None
    agent_id: str | None = None
    amd_result: str | None = None
    talk_seconds: float | None = None
    recording_id: str | None = None
    recording_path: str | None = None


async def _history(session: AsyncSession, lead_id: int, exclude: int | None = None) -> list[Attempt]:
    stmt = (
        select(CallAttempt.id, CallAttempt.dialled_at, CallAttempt.outcome, CallAttempt.number_index)
        .where(CallAttempt.lead_id == lead_id, CallAttempt.outcome.is_not(None))
        .order_by(CallAttempt.dialled_at, CallAttempt.id)
    )
    return [
        Attempt(dialled_at=r.dialled_at, outcome=r.outcome, number_index=r.number_index)
        for r in (await session.execute(stmt)).all()
        if r.id != exclude
    ]


def lead_state(lead: Lead, numbers: int, attempts: Sequence[Attempt], policy: RetryPolicy) -> LeadState:
    """The retry policy's view of a lead. The stored priority includes the deadline boost given at
    the last scheduling; it is taken off again so boosts never compound."""
    state = LeadState(
        attempts=tuple(attempts),
        numbers=max(1, numbers),
        created_at=lead.created_at,
        reach_deadline=lead.reach_deadline_at,
        base_priority=0,
    )
    boost = 0
    if lead.attempts > 0 and lead.next_attempt_at is not None and policy.deadline_of(state) is not None:
        boost = policy.priority(state, lead.next_attempt_at)
    return LeadState(
        attempts=state.attempts,
        numbers=state.numbers,
        created_at=state.created_at,
        reach_deadline=state.reach_deadline,
        base_priority=lead.priority - boost,
    )


@dataclass(frozen=True, slots=True)
class LeadOutcome:
    """What happened to the lead after an attempt (for the runner's event and logs)."""

    status: str
    next_attempt_at: datetime | None
    reason: str
    daypart: str | None = None
    applied: bool = True


@dataclass
class FinishInput:
    attempt_id: int
    lead: ClaimedLead
    record: AttemptRecord
    node: str
    policy: RetryPolicy
    zones: tuple[str, ...]
    window: Any
    country: str | None = None


async def finish_attempt(sm: Sessions, f: FinishInput) -> LeadOutcome:
    """Complete the CDR row and reschedule the lead through the retry policy, in one transaction."""
    r = f.record
    async with sm() as session, session.begin():
        cdr = await session.get(CallAttempt, f.attempt_id)
        if cdr is None:
            raise RunnerStoreError(f"call attempt {f.attempt_id} vanished before it was completed")
        for name in (
            "outcome",
            "ended_at",
            "ringing_at",
            "answered_at",
            "bridged_at",
            "sip_status",
            "sip_reason",
            "agent_id",
            "amd_result",
            "talk_seconds",
        ):
            setattr(cdr, name, getattr(r, name))
        if r.recording_id is not None:
            cdr.recording_id, cdr.recording_path = r.recording_id, r.recording_path
        lead = await session.get(Lead, f.lead.lead_id)
        if lead is None:
            return LeadOutcome("deleted", None, "the lead was deleted during the call", applied=False)
        index = cdr.number_index
        counts = list(lead.number_attempts or [])
        counts += [0] * (len(f.lead.numbers) - len(counts))
        if index < len(counts):
            counts[index] += 1
        lead.number_attempts = counts
        lead.attempts = (lead.attempts or 0) + 1
        lead.last_attempt_at = cdr.dialled_at
        lead.last_outcome = r.outcome
        lead.updated_at = r.ended_at
        attempts = [*(await _history(session, lead.id, exclude=cdr.id)), Attempt(cdr.dialled_at, r.outcome, index)]
        state = lead_state(lead, len(f.lead.numbers), attempts, f.policy)
        # Day-parts tried in the current cycle, as the policy counts them (shown per lead).
        primary = f.zones[0]
        untried = {d.name for d in f.policy.untried_dayparts(state, primary)}
        lead.dayparts_tried = [d.name for d in f.policy.dayparts if d.name not in untried]
        if lead.status != LeadStatus.DIALING or lead.claimed_by != f.node:
            # An agent's disposition (dnc, callback, final) or an operator already decided.
            if lead.claimed_by == f.node:
                lead.claimed_by = None
                lead.claimed_at = None
            return LeadOutcome(lead.status, lead.next_attempt_at, lead.next_attempt_reason or "", applied=False)
        was_callback = lead.callback_at is not None
        lead.claimed_by = None
        lead.claimed_at = None
        if was_callback:
            lead.callback_at = None
            lead.callback_owner = None
            lead.callback_customer_requested = False
        decision = f.policy.schedule_next(state, r.outcome, r.ended_at, f.zones, f.country, f.window)
        if isinstance(decision, NextAttempt):
            lead.status = LeadStatus.READY
            lead.next_attempt_at = decision.at_utc
            lead.number_index = decision.number_index
            lead.priority = decision.priority
            lead.next_attempt_reason = decision.reason
            return LeadOutcome(LeadStatus.READY, decision.at_utc, decision.reason, decision.daypart)
        assert isinstance(decision, Exhausted)
        lead.status = LeadStatus.DONE if r.outcome == "completed" else LeadStatus.EXHAUSTED
        lead.next_attempt_at = None
        lead.next_attempt_reason = decision.reason
        return LeadOutcome(lead.status, None, decision.reason)


async def lead_attempt_count(sm: Sessions, lead_id: int) -> int:
    async with sm() as session:
        return int((await session.execute(select(func.count()).where(CallAttempt.lead_id == lead_id))).scalar_one())


# -- dispositions and callbacks ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DispositionResult:
    attempt_id: int
    call_id: str | None
    lead_id: int | None
    campaign_id: int | None
    code: str
    effective: bool
    lead_status: str | None
    callback_requested: bool


def is_effective(
    *,
    outcome: str | None,
    amd_result: str | None,
    bridged: bool,
    talk_seconds: float | None,
    threshold: float,
    disposition_effective: bool,
) -> bool:
    """An effective call: a human conversation bridged to an agent, at least ``threshold`` seconds of
    talk, with a disposition flagged effective."""
    return (
        outcome == "completed"
        and amd_result != "machine"
        and bridged
        and talk_seconds is not None
        and talk_seconds >= threshold
        and disposition_effective
    )


async def apply_disposition(
    sm: Sessions,
    *,
    code: str,
    note: str | None = None,
    attempt_id: int | None = None,
    call_id: str | None = None,
    agent_id: str | None = None,
    now: datetime,
) -> DispositionResult:
    """Write the agent's disposition on the CDR and apply the code's flags to the lead.

    ``final`` ends the lead (``done``), ``dnc`` adds the number to the campaign's DNC list and
    marks the lead ``dnc``; ``callback`` only reports that the agent should schedule one with
    :func:`schedule_callback`.
    """
    if attempt_id is None and call_id is None:
        raise RunnerStoreError("set_disposition needs the call id or the attempt id of the call")
    code = code.strip().upper()
    async with sm() as session, session.begin():
        if attempt_id is not None:
            cdr = await session.get(CallAttempt, attempt_id)
        else:
            cdr = (
                await session.execute(
                    select(CallAttempt).where(CallAttempt.call_id == call_id).order_by(CallAttempt.id.desc()).limit(1)
                )
            ).scalar_one_or_none()
        if cdr is None:
            which = f"id {attempt_id}" if attempt_id is not None else f"call id {call_id}"
            raise RunnerStoreError(f"no call attempt with {which}; was the call placed by the campaign runner?")
        if agent_id is not None and cdr.agent_id is not None and cdr.agent_id != agent_id:
            raise RunnerStoreError(f"call {cdr.call_id} was handled by agent {cdr.agent_id}, not {agent_id}")
        campaign = await session.get(Campaign, cdr.campaign_id) if cdr.campaign_id is not None else None
        if campaign is None:
            raise RunnerStoreError(f"call attempt {cdr.id} belongs to no campaign: dispositions are campaign codes")
        settings = campaign_settings(campaign)
        codes = {d.code: d for d in settings.dispositions}
        disposition = codes.get(code)
        if disposition is None:
            raise RunnerStoreError(
                f"disposition {code!r} is not a code of campaign {campaign.name!r}; use one of {', '.join(codes)}"
            )
        cdr.disposition = code
        cdr.disposition_note = note or None
        lead = await session.get(Lead, cdr.lead_id) if cdr.lead_id is not None else None
        if lead is not None:
            lead.last_disposition = code
            lead.updated_at = now
            if disposition.dnc:
                await add_dnc(
                    session, cdr.number, campaign_id=campaign.id, reason=f"disposition {code}", source="agent", now=now
                )
                lead.status = LeadStatus.DNC
                lead.next_attempt_at = None
                lead.next_attempt_reason = f"agent set disposition {code} (do not call)"
            elif disposition.final:
                lead.status = LeadStatus.DONE
                lead.next_attempt_at = None
                lead.next_attempt_reason = f"agent set final disposition {code}"
        effective = is_effective(
            outcome=cdr.outcome,
            amd_result=cdr.amd_result,
            bridged=cdr.bridged_at is not None,
            talk_seconds=cdr.talk_seconds,
            threshold=settings.effective_call_seconds,
            disposition_effective=disposition.effective,
        )
        return DispositionResult(
            attempt_id=int(cdr.id),
            call_id=cdr.call_id,
            lead_id=cdr.lead_id,
            campaign_id=cdr.campaign_id,
            code=code,
            effective=effective,
            lead_status=lead.status if lead is not None else None,
            callback_requested=disposition.callback,
        )


async def schedule_callback(
    sm: Sessions,
    lead_id: int,
    *,
    due_utc: datetime,
    dial_at: datetime,
    owner: str | None,
    customer_requested: bool,
    reason: str,
    now: datetime,
) -> None:
    """Set the lead to ``callback`` at ``due_utc`` (dialled from ``dial_at``), owned by ``owner``."""
    async with sm() as session, session.begin():
        lead = await session.get(Lead, lead_id)
        if lead is None:
            raise RunnerStoreError(f"lead {lead_id} does not exist")
        if lead.status in (LeadStatus.DNC, LeadStatus.PENDING):
            raise RunnerStoreError(f"lead {lead_id} is {lead.status}: it cannot be called back")
        lead.status = LeadStatus.CALLBACK
        lead.callback_at = due_utc
        lead.callback_owner = owner
        lead.callback_customer_requested = customer_requested
        lead.next_attempt_at = dial_at
        lead.next_attempt_reason = reason
        lead.claimed_by = None
        lead.claimed_at = None
        lead.updated_at = now


# -- warm start and figures ----------------------------------------------------------------------------
async def abandon_history(sm: Sessions, campaign_id: int, since: datetime) -> list[tuple[datetime, bool]]:
    """Human-answered attempts since ``since`` as (answered at, abandoned), for the AbandonLedger."""
    async with sm() as session:
        rows = await session.execute(
            select(CallAttempt.answered_at, CallAttempt.outcome).where(
                CallAttempt.campaign_id == campaign_id,
                CallAttempt.dialled_at >= since,
                CallAttempt.answered_at.is_not(None),
                CallAttempt.outcome.in_(HUMAN_OUTCOMES),
            )
        )
        return [(r.answered_at, r.outcome == "abandoned") for r in rows]


#: failures the far end never saw or caused (says nothing about whether the callee answers)
LOCAL_FAILURE_PREFIXES = ("cancelled:", "the INVITE could not be sent", "internal error")


def is_local_failure(outcome: str | None, sip_status: int | None, sip_reason: str | None) -> bool:
    """A ``failed`` attempt the dialer itself caused (stopping, no INVITE sent, a bug)."""
    if outcome != "failed":
        return False
    return (sip_reason or "").startswith(LOCAL_FAILURE_PREFIXES) or (sip_status is None and not sip_reason)


def callee_hour(at: datetime, zones: Sequence[str], default_zone: str | None = None) -> int:
    """The hour of the callee's local day at ``at``: in the contact's first zone (the campaign's
    zone, else UTC, when the contact has none), as answer rates are learned per callee hour."""
    name = zones[0] if zones else (default_zone or "UTC")
    return at.astimezone(zone(name)).hour


async def recent_attempts(
    sm: Sessions, campaign_id: int, limit: int = 2000, default_zone: str | None = None
) -> list[dict[str, Any]]:
    """The campaign's last finished attempts as estimator history rows (oldest first).

    Each row: ``answered`` (a person answered), ``ring_seconds``, ``talk_seconds``, ``list_id``
    (the lead's list) and ``local_hour`` (the callee's local hour when it was dialled), so
    answer rates warm up per list and per hour of the callee's day as the live runner learns
    them. Failures of the dialer's own making are left out.
    """
    async with sm() as session:
        rows = (
            await session.execute(
                select(
                    CallAttempt.dialled_at,
                    CallAttempt.answered_at,
                    CallAttempt.outcome,
                    CallAttempt.talk_seconds,
                    CallAttempt.sip_status,
                    CallAttempt.sip_reason,
                    Lead.list_id,
                    Contact.timezones,
                )
                .outerjoin(Lead, Lead.id == CallAttempt.lead_id)
                .outerjoin(Contact, Contact.id == CallAttempt.contact_id)
                .where(CallAttempt.campaign_id == campaign_id, CallAttempt.outcome.is_not(None))
                .order_by(CallAttempt.dialled_at.desc())
                .limit(limit)
            )
        ).all()
    out: list[dict[str, Any]] = []
    for r in reversed(rows):
        if is_local_failure(r.outcome, r.sip_status, r.sip_reason):
            continue
        answered = r.outcome in HUMAN_OUTCOMES and r.answered_at is not None
        ring = (r.answered_at - r.dialled_at).total_seconds() if r.answered_at is not None else 0.0
        out.append(
            {
                "answered": answered,
                "ring_seconds": max(0.0, ring),
                "talk_seconds": r.talk_seconds,
                "list_id": r.list_id,
                "local_hour": callee_hour(r.dialled_at, tuple(r.timezones or ()), default_zone),
                "outcome": r.outcome,
            }
        )
    return out


async def due_mix(
    sm: Sessions, campaign_id: int, now: datetime, limit: int = 50
) -> list[tuple[int | None, tuple[str, ...]]]:
    """(list id, contact zones) of the next ``limit`` leads the runner would claim at ``now``, in
    claim order: the pacing model's answer probability is the mean over these."""
    async with sm() as session:
        rows = (
            await session.execute(
                select(Lead.list_id, Contact.timezones)
                .join(Contact, Contact.id == Lead.contact_id)
                .where(
                    Lead.campaign_id == campaign_id,
                    Lead.status.in_(CLAIMABLE_LEAD_STATUSES),
                    Lead.next_attempt_at <= now,
                )
                .order_by(Lead.priority.desc(), Lead.next_attempt_at, Lead.id)
                .limit(limit)
            )
        ).all()
    return [(r.list_id, tuple(r.timezones or ())) for r in rows]


async def campaign_history(
    sm: Sessions,
    campaign_id: int,
    *,
    since: datetime | None = None,
    limit: int = 20_000,
    default_zone: str | None = None,
) -> list[dict[str, Any]]:
    """The campaign's finished attempts as rows for :func:`dialer.simulator.fit_from_history`
    (oldest first): :func:`recent_attempts`' rows, with ``ring_seconds`` of an unanswered call
    being how long it rang, and ``wrapup_seconds`` of a bridged call from the agent's WRAPUPEND
    queue_log row when the ACD logged one."""
    from acd.models import QueueLogRow

    async with sm() as session:
        stmt = (
            select(
                CallAttempt.call_id,
                CallAttempt.dialled_at,
                CallAttempt.answered_at,
                CallAttempt.ended_at,
                CallAttempt.outcome,
                CallAttempt.talk_seconds,
                CallAttempt.sip_status,
                CallAttempt.sip_reason,
                Lead.list_id,
                Contact.timezones,
            )
            .outerjoin(Lead, Lead.id == CallAttempt.lead_id)
            .outerjoin(Contact, Contact.id == CallAttempt.contact_id)
            .where(CallAttempt.campaign_id == campaign_id, CallAttempt.outcome.is_not(None))
            .order_by(CallAttempt.dialled_at.desc())
            .limit(limit)
        )
        if since is not None:
            stmt = stmt.where(CallAttempt.dialled_at >= since)
        rows = (await session.execute(stmt)).all()
        bridged = [r.call_id for r in rows if r.outcome == "completed" and r.call_id]
        wraps: dict[str, float] = {}
        for start in range(0, len(bridged), 500):
            chunk = bridged[start : start + 500]
            for call_id, wrap_s in (
                await session.execute(
                    select(QueueLogRow.call_id, QueueLogRow.data1).where(
                        QueueLogRow.event == "WRAPUPEND", QueueLogRow.call_id.in_(chunk)
                    )
                )
            ).all():
                try:
                    wraps[call_id] = float(wrap_s)
                except ValueError:
                    continue
    out: list[dict[str, Any]] = []
    for r in reversed(rows):
        if is_local_failure(r.outcome, r.sip_status, r.sip_reason):
            continue
        answered = r.outcome in HUMAN_OUTCOMES and r.answered_at is not None
        end = r.answered_at if r.answered_at is not None else r.ended_at
        ring = (end - r.dialled_at).total_seconds() if end is not None else 0.0
        row: dict[str, Any] = {
            "answered": answered,
            "ring_seconds": max(0.0, ring),
            "talk_seconds": r.talk_seconds,
            "list_id": r.list_id,
            "local_hour": callee_hour(r.dialled_at, tuple(r.timezones or ()), default_zone),
            "outcome": r.outcome,
        }
        if r.call_id in wraps:
            row["wrapup_seconds"] = wraps[r.call_id]
        out.append(row)
    return out


async def lead_mix(
    sm: Sessions, campaign_id: int, *, default_zone: str | None = None, size: int = 20
) -> tuple[tuple[int | None, str], ...]:
    """About ``size`` (list id, callee zone) entries in proportion to the campaign's leads still to
    be dialled (all its leads when none is left): who a simulation of the campaign dials."""
    async with sm() as session:

        async def counts(statuses: Sequence[str] | None) -> list[tuple[int | None, str, int]]:
            stmt = select(Lead.list_id, Contact.timezones).join(Contact, Contact.id == Lead.contact_id)
            stmt = stmt.where(Lead.campaign_id == campaign_id)
            if statuses is not None:
                stmt = stmt.where(Lead.status.in_(list(statuses)))
            tally: dict[tuple[int | None, str], int] = {}
            for list_id, zones in (await session.execute(stmt.limit(200_000))).all():
                key = (list_id, (zones or [default_zone or "UTC"])[0])
                tally[key] = tally.get(key, 0) + 1
            return [(k[0], k[1], n) for k, n in tally.items()]

        found = await counts(CLAIMABLE_LEAD_STATUSES) or await counts(None)
    if not found:
        return ((None, default_zone or "UTC"),)
    total = sum(n for *_, n in found)
    mix: list[tuple[int | None, str]] = []
    for list_id, zone_name, n in sorted(found, key=lambda e: -e[2]):
        mix += [(list_id, zone_name)] * max(1, round(size * n / total))
    return tuple(mix)


async def effective_today(sm: Sessions, campaign_id: int, since: datetime, threshold: float) -> int:
    """Effective calls dialled since ``since`` (the campaign's local midnight)."""
    from dialer.models import Disposition

    async with sm() as session:
        stmt = (
            select(func.count())
            .select_from(CallAttempt)
            .join(
                Disposition,
                and_(Disposition.campaign_id == CallAttempt.campaign_id, Disposition.code == CallAttempt.disposition),
            )
            .where(
                CallAttempt.campaign_id == campaign_id,
                CallAttempt.dialled_at >= since,
                CallAttempt.outcome == "completed",
                CallAttempt.bridged_at.is_not(None),
                CallAttempt.talk_seconds >= threshold,
                Disposition.effective.is_(True),
            )
        )
        return int((await session.execute(stmt)).scalar_one())


def stale_after(settings: CampaignSettings) -> timedelta:
    """How long a claim may stay ``dialing`` before another node may take it back (crashed node):
    longer than any call lasts (the ring timeout plus four hours of talk)."""
    return timedelta(seconds=settings.pacing.ring_timeout_seconds) + timedelta(hours=4)
