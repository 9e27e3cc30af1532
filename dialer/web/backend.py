"""What the web console asks of the live services, and the in-process dev implementation.

:class:`ConsoleBackend` is the contract between the console and the services that own the
state: the ACD (agent states, call assignment), supervision (listen, whisper, barge), and
the campaign runner (dispositions, callbacks, pause and resume). The console never changes
that state itself; it asks, and the change comes back as events on the bus like any other.

:class:`LocalBackend` is the dev backend used by ``dialer web serve`` and the tests: it
plays the ACD's part in-process, applying each command by publishing the events the ACD
would publish (an agent made ready gets ``AgentStateChanged(paused -> ready)``), checked
against the ACD's own transition table, and writes dispositions and callbacks to the
database as the campaign runner does. It is a complete implementation for one process
without SIP, not a placeholder; ``dialer run`` plugs in the services' implementation.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from acd import (
    AGENT_TRANSITIONS,
    AgentInput,
    AgentLoggedIn,
    AgentLoggedOut,
    AgentPaused,
    AgentState,
    AgentStateChanged,
    AgentUnpaused,
    CallAbandoned,
    CallCompleted,
    CallConnected,
    CallExitedEmpty,
    CallExitedWithKey,
    CallExitedWithTimeout,
    CallOffered,
    CallQueued,
    ConnectionMode,
    WrapupEnded,
    WrapupStarted,
)
from dialer.campaigns import CampaignError, campaign_settings, set_campaign_status
from dialer.models import CallAttempt, Campaign, CampaignStatus, Contact, Lead, LeadStatus
from dialer.web.events import (
    CallbackScheduled,
    CampaignStatusChanged,
    DispositionSet,
    SuperviseMode,
    SupervisionStarted,
)
from infra.bus import EventBus

__all__ = [
    "BackendError",
    "Conflict",
    "ConsoleBackend",
    "CustomerView",
    "DispositionOption",
    "HistoryEntry",
    "LocalBackend",
    "NotFound",
    "PreviewLead",
    "RecordingCommand",
]

log = structlog.get_logger(__name__)


class BackendError(Exception):
    """A console command that cannot be carried out; the message says why and what to do."""

    status = 409


class NotFound(BackendError):
    status = 404


class Conflict(BackendError):
    status = 409


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    dialled_at: datetime
    outcome: str | None
    disposition: str | None
    agent_id: str | None
    talk_seconds: float | None
    note: str | None


@dataclass(frozen=True, slots=True)
class DispositionOption:
    code: str
    label: str
    callback: bool
    final: bool


@dataclass(frozen=True, slots=True)
class CustomerView:
    """The customer on an agent's current call: who, which campaign, and what happened before."""

    call_id: str
    contact_id: int | None
    lead_id: int | None
    name: str | None
    phone: str
    timezone: str | None
    segment: str | None
    vip: bool
    attributes: dict[str, Any]
    campaign: str | None
    dispositions: list[DispositionOption]
    history: list[HistoryEntry] = field(default_factory=list)


RecordingCommand = Literal["start", "pause", "resume"]


@dataclass(frozen=True, slots=True)
class PreviewLead:
    """The lead an agent looks at before dialling it (preview mode), held for them until they
    dial or skip it."""

    lead_id: int
    campaign_id: int
    campaign: str
    number: str
    name: str | None
    timezones: tuple[str, ...]
    attempts: int
    callback_at: datetime | None
    reason: str | None = None


class ConsoleBackend(Protocol):
    """Live operations behind the console. Failures raise :class:`BackendError` subclasses."""

    async def agent_set_state(self, agent_id: str, state: AgentState, reason: str, *, by: str) -> None:
        """Make the agent ready or pause them (with a reason); ``by`` is the console user."""

    async def agent_logout(self, agent_id: str, *, by: str) -> None:
        """Log the agent out of the ACD (a call in progress finishes first)."""

    async def assign_call(self, call_id: str, agent_id: str, *, by: str) -> None:
        """Give a waiting call to this agent now, ahead of routing."""

    async def supervise(self, supervisor: str, agent_id: str, mode: SuperviseMode) -> None:
        """Ring the supervisor's softphone into the agent's call in ``mode`` (or switch mode)."""

    async def set_disposition(self, call_id: str, code: str, notes: str, *, agent_id: str) -> None:
        """Record the agent's disposition code (one of the campaign's) for the call."""

    async def schedule_callback(self, lead_id: int, at_local: datetime, tz: str, owner: str | None) -> datetime:
        """Schedule a callback at the customer's local wall time ``at_local`` in ``tz``; returns it in UTC."""

    async def current_customer(self, agent_id: str) -> CustomerView | None:
        """The customer on the agent's current (or just ended) call, with their history."""

    async def campaign_pause(self, name: str, *, by: str) -> None: ...

    async def campaign_resume(self, name: str, *, by: str) -> None: ...

    # -- the agent's call controls on the ACD ---------------------------------------------------

    async def hangup_customer(self, agent_id: str) -> None:
        """Hang up the customer on the agent's call (the ACD's ``*0``); wrap-up follows."""

    async def acd_callback(self, agent_id: str, number: str, at: datetime, queue: str | None) -> str:
        """Have the ACD call ``number`` back at ``at`` (aware) through ``queue`` (default: the
        agent's last queue), offered to this agent first; returns the callback's id."""

    async def agent_recording(self, agent_id: str, action: RecordingCommand) -> str:
        """Start (on demand), pause or resume the recording of the agent's call; returns
        ``"recording"`` or ``"paused"``."""

    # -- preview dialling (campaigns in preview mode) ---------------------------------------------

    async def preview_next(self, agent_id: str) -> PreviewLead | None:
        """The lead the agent previews next (the one they hold, else the next due one), or None."""

    async def preview_dial(self, agent_id: str, lead_id: int) -> str:
        """Dial the lead the agent previews; the answer goes to them. Returns the call id."""

    async def preview_skip(self, agent_id: str, lead_id: int) -> datetime:
        """Do not call the previewed lead now; returns when it is due again (UTC)."""


def local_to_utc(at_local: datetime, tz: str) -> datetime:
    """A wall-clock time in zone ``tz`` as a UTC instant; refuses times a DST change skips."""
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise BackendError(f"time zone {tz!r} is unknown; use an IANA zone such as Asia/Shanghai") from None
    naive = at_local.replace(tzinfo=None)
    utc = naive.replace(tzinfo=zone).astimezone(UTC)
    if utc.astimezone(zone).replace(tzinfo=None) != naive:
        raise BackendError(f"{naive:%Y-%m-%d %H:%M} does not exist in {tz} (clocks go forward); pick another time")
    return utc


@dataclass(slots=True)
class _Tracked:
    state: AgentState = AgentState.LOGGED_OUT
    call_id: str | None = None
    queue: str | None = None
    since: float = 0.0
    last_call_id: str | None = None


_LEAVES_QUEUE = (CallAbandoned, CallExitedWithTimeout, CallExitedWithKey, CallExitedEmpty, CallConnected)


class LocalBackend:
    """The dev backend: plays the ACD in-process and writes to the database (see module doc).

    It follows the bus to know every agent's state and the waiting calls, so events that
    other code publishes (a test, a simulator) are taken into account too.
    """

    def __init__(
        self,
        bus: EventBus,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        clock: Callable[[], float] = time.monotonic,
        wrapup_s: float = 10.0,
    ) -> None:
        self.bus = bus
        self.sessionmaker = sessionmaker
        self.clock = clock
        self.wrapup_s = wrapup_s
        self.agents: dict[str, _Tracked] = {}
        self.waiting: dict[str, tuple[str, float, int]] = {}  # call -> (queue, entered, position)
        self._remove = bus.add_listener(self._follow)

    def close(self) -> None:
        self._remove()

    # -- following the bus ----------------------------------------------------------------

    def _follow(self, e: object) -> None:
        if isinstance(e, AgentStateChanged):
            t = self.agents.setdefault(e.agent_id, _Tracked())
            t.state, t.since = e.new, e.at
            if e.call_id is not None:
                t.call_id = e.call_id
            if e.new in (AgentState.READY, AgentState.PAUSED, AgentState.LOGGED_OUT):
                t.call_id = t.queue = None
        elif isinstance(e, CallQueued) and e.callback_id is None:
            self.waiting[e.call_id] = (e.queue, e.at, e.position)
        elif isinstance(e, CallOffered | CallConnected | WrapupStarted):
            t = self.agents.setdefault(e.agent_id, _Tracked())
            t.call_id, t.queue, t.last_call_id = e.call_id, e.queue, e.call_id
        if isinstance(e, _LEAVES_QUEUE):
            self.waiting.pop(e.call_id, None)

    def _state(self, agent_id: str) -> _Tracked:
        return self.agents.setdefault(agent_id, _Tracked())

    def _change(self, agent_id: str, via: AgentInput, reason: str = "", call_id: str | None = None) -> None:
        """Fire one transition of the ACD's table and publish it, as the ACD engine does."""
        t = self._state(agent_id)
        new = AGENT_TRANSITIONS[t.state].get(via)
        if new is None:
            raise Conflict(f"agent {agent_id} is {t.state.value}: cannot {via.value.replace('_', ' ')} now")
        self.bus.publish(
            AgentStateChanged(at=self.clock(), agent_id=agent_id, old=t.state, new=new, reason=reason, call_id=call_id)
        )

    # -- agents -----------------------------------------------------------------------------

    async def agent_set_state(self, agent_id: str, state: AgentState, reason: str, *, by: str) -> None:
        t = self._state(agent_id)
        now = self.clock()
        if state == AgentState.READY:
            if t.state == AgentState.READY:
                return
            if t.state == AgentState.LOGGED_OUT:
                self.bus.publish(AgentLoggedIn(at=now, agent_id=agent_id, mode=ConnectionMode.RING))
                self._change(agent_id, AgentInput.LOGIN, reason)
            elif t.state == AgentState.PAUSED:
                paused_s = max(0.0, now - t.since)
                self.bus.publish(AgentUnpaused(at=now, agent_id=agent_id, reason=reason, paused_s=paused_s))
                self._change(agent_id, AgentInput.UNPAUSE, reason)
            elif t.state == AgentState.WRAP_UP:
                self._end_wrapup(agent_id, early=True)
            else:
                raise Conflict(f"agent {agent_id} is {t.state.value}: they become ready when the call ends")
        elif state == AgentState.PAUSED:
            if t.state == AgentState.LOGGED_OUT:
                self.bus.publish(AgentLoggedIn(at=now, agent_id=agent_id, mode=ConnectionMode.RING))
                self._change(agent_id, AgentInput.LOGIN_PAUSED, reason)
                return
            if t.state in (AgentState.OFFERED, AgentState.ON_CALL):
                raise Conflict(f"agent {agent_id} is {t.state.value}: pause them after the call")
            self.bus.publish(AgentPaused(at=now, agent_id=agent_id, reason=reason or "supervisor"))
            self._change(agent_id, AgentInput.PAUSE, reason or "supervisor")
        else:
            raise BackendError(f"state {state.value!r} cannot be set from the console; use ready or paused")
        log.info("console.agent_state", agent_id=agent_id, state=state.value, reason=reason, by=by)

    async def agent_logout(self, agent_id: str, *, by: str) -> None:
        t = self._state(agent_id)
        if t.state == AgentState.LOGGED_OUT:
            raise Conflict(f"agent {agent_id} is already logged out")
        if t.state in (AgentState.OFFERED, AgentState.ON_CALL):
            raise Conflict(f"agent {agent_id} is {t.state.value}: log them out after the call")
        now = self.clock()
        self._change(agent_id, AgentInput.LOGOUT, f"logged out by {by}")
        self.bus.publish(AgentLoggedOut(at=now, agent_id=agent_id, logged_in_s=0.0, reason=f"by {by}"))
        log.info("console.agent_logout", agent_id=agent_id, by=by)

    def _end_wrapup(self, agent_id: str, *, early: bool) -> None:
        t = self._state(agent_id)
        now = self.clock()
        if t.call_id is not None:
            self.bus.publish(
                WrapupEnded(
                    at=now,
                    agent_id=agent_id,
                    call_id=t.call_id,
                    queue=t.queue or "",
                    wrap_s=max(0.0, now - t.since),
                    early=early,
                )
            )
        self._change(agent_id, AgentInput.WRAPUP_DONE)

    # -- calls ------------------------------------------------------------------------------

    async def assign_call(self, call_id: str, agent_id: str, *, by: str) -> None:
        waiting = self.waiting.get(call_id)
        if waiting is None:
            raise NotFound(f"call {call_id} is not waiting in a queue any more; refresh the wallboard")
        t = self._state(agent_id)
        if t.state != AgentState.READY:
            raise Conflict(f"agent {agent_id} is {t.state.value}: assign calls to a ready agent")
        queue, entered, position = waiting
        now = self.clock()
        # The dev backend answers at once; the real ACD rings the phone and confirms on answer.
        self.bus.publish(
            CallOffered(at=now, call_id=call_id, queue=queue, agent_id=agent_id, mode=ConnectionMode.RING, forced=True)
        )
        self._change(agent_id, AgentInput.OFFER, call_id=call_id)
        self.bus.publish(
            CallConnected(
                at=now,
                call_id=call_id,
                queue=queue,
                agent_id=agent_id,
                hold_s=max(0.0, now - entered),
                ring_s=0.0,
                original_position=position,
            )
        )
        self._change(agent_id, AgentInput.ANSWER, call_id=call_id)
        log.info("console.assign_call", call_id=call_id, agent_id=agent_id, by=by)

    async def hang_up(self, agent_id: str) -> None:
        """End the agent's call (dev helper: the real end is the SIP BYE); wrap-up follows."""
        t = self._state(agent_id)
        if t.state != AgentState.ON_CALL or t.call_id is None:
            raise Conflict(f"agent {agent_id} is not on a call")
        now = self.clock()
        self.bus.publish(
            CallCompleted(
                at=now,
                call_id=t.call_id,
                queue=t.queue or "",
                agent_id=agent_id,
                by="agent",
                wait_s=0.0,
                talk_s=max(0.0, now - t.since),
                on_hold_s=0.0,
                original_position=1,
            )
        )
        call_id, queue = t.call_id, t.queue or ""
        self._change(agent_id, AgentInput.CALL_ENDED, call_id=call_id)
        self.bus.publish(WrapupStarted(at=now, agent_id=agent_id, call_id=call_id, queue=queue, wrapup_s=self.wrapup_s))

    # -- the agent's call controls (what needs SIP is refused with the way to get it) -------------

    async def hangup_customer(self, agent_id: str) -> None:
        await self.hang_up(agent_id)

    async def acd_callback(self, agent_id: str, number: str, at: datetime, queue: str | None) -> str:
        raise Conflict("ACD callbacks are dialled by the live ACD: run `dialer run` with [acd] queues configured")

    async def agent_recording(self, agent_id: str, action: RecordingCommand) -> str:
        raise Conflict("call recording needs the live ACD and recordings: run `dialer run`")

    async def preview_next(self, agent_id: str) -> PreviewLead | None:
        raise Conflict("preview dialling needs the campaign runner: run `dialer run`")

    async def preview_dial(self, agent_id: str, lead_id: int) -> str:
        raise Conflict("preview dialling needs the campaign runner: run `dialer run`")

    async def preview_skip(self, agent_id: str, lead_id: int) -> datetime:
        raise Conflict("preview dialling needs the campaign runner: run `dialer run`")

    async def supervise(self, supervisor: str, agent_id: str, mode: SuperviseMode) -> None:
        t = self._state(agent_id)
        if t.state == AgentState.LOGGED_OUT:
            raise Conflict(f"agent {agent_id} is logged out: there is nothing to {mode} to")
        self.bus.publish(
            SupervisionStarted(at=self.clock(), agent_id=agent_id, supervisor=supervisor, mode=mode, call_id=t.call_id)
        )
        log.info("console.supervise", agent_id=agent_id, supervisor=supervisor, mode=mode)

    # -- dispositions and callbacks ---------------------------------------------------------------

    async def set_disposition(self, call_id: str, code: str, notes: str, *, agent_id: str) -> None:
        code = code.strip().upper()
        campaign_id: int | None = None
        async with self.sessionmaker() as session:
            attempt = (
                await session.execute(
                    select(CallAttempt).where(CallAttempt.call_id == call_id).order_by(CallAttempt.id.desc()).limit(1)
                )
            ).scalar_one_or_none()
            if attempt is not None:
                if attempt.agent_id is not None and attempt.agent_id != agent_id:
                    raise Conflict(f"call {call_id} was handled by agent {attempt.agent_id}, not {agent_id}")
                campaign_id = attempt.campaign_id
                if campaign_id is not None:
                    campaign = await session.get(Campaign, campaign_id)
                    if campaign is not None:
                        codes = [d.code for d in campaign_settings(campaign).dispositions]
                        if code not in codes:
                            raise BackendError(
                                f"disposition {code!r} is not a code of campaign {campaign.name!r}; "
                                f"use one of {', '.join(codes)}"
                            )
                attempt.disposition = code
                attempt.disposition_note = notes or None
                if attempt.lead_id is not None:
                    lead = await session.get(Lead, attempt.lead_id)
                    if lead is not None:
                        lead.last_disposition = code
                await session.commit()
        self.bus.publish(
            DispositionSet(at=self.clock(), call_id=call_id, agent_id=agent_id, code=code, campaign_id=campaign_id)
        )
        if self._state(agent_id).state == AgentState.WRAP_UP:
            self._end_wrapup(agent_id, early=True)
        log.info("console.disposition", call_id=call_id, agent_id=agent_id, code=code)

    async def schedule_callback(self, lead_id: int, at_local: datetime, tz: str, owner: str | None) -> datetime:
        due = local_to_utc(at_local, tz)
        if due <= datetime.now(UTC):
            raise BackendError(f"callback time {at_local:%Y-%m-%d %H:%M} {tz} is in the past; pick a later time")
        async with self.sessionmaker() as session:
            lead = await session.get(Lead, lead_id)
            if lead is None:
                raise NotFound(f"lead {lead_id} does not exist")
            if lead.status in (LeadStatus.DONE, LeadStatus.DNC):
                raise Conflict(f"lead {lead_id} is {lead.status}: it is not called again")
            lead.status = LeadStatus.CALLBACK
            lead.callback_at = due
            lead.callback_owner = owner
            lead.next_attempt_at = due
            lead.updated_at = datetime.now(UTC)
            await session.commit()
        self.bus.publish(CallbackScheduled(at=self.clock(), lead_id=lead_id, due_at=due, timezone=tz, owner=owner))
        log.info("console.callback", lead_id=lead_id, due_at=due.isoformat(), owner=owner)
        return due

    async def current_customer(self, agent_id: str) -> CustomerView | None:
        t = self.agents.get(agent_id)
        call_id = (t.call_id or t.last_call_id) if t is not None else None
        if call_id is None:
            return None
        async with self.sessionmaker() as session:
            attempt = (
                await session.execute(
                    select(CallAttempt).where(CallAttempt.call_id == call_id).order_by(CallAttempt.id.desc()).limit(1)
                )
            ).scalar_one_or_none()
            if attempt is None:
                return None
            return await customer_view(session, attempt)

    # -- campaigns --------------------------------------------------------------------------

    async def campaign_pause(self, name: str, *, by: str) -> None:
        await self._campaign_status(name, CampaignStatus.PAUSED, by)

    async def campaign_resume(self, name: str, *, by: str) -> None:
        await self._campaign_status(name, CampaignStatus.ACTIVE, by)

    async def _campaign_status(self, name: str, status: CampaignStatus, by: str) -> None:
        async with self.sessionmaker() as session:
            try:
                campaign = await set_campaign_status(session, name, status)
            except CampaignError as exc:
                raise NotFound(str(exc)) if "no campaign named" in str(exc) else Conflict(str(exc)) from None
            await session.commit()
            campaign_id = campaign.id
        self.bus.publish(
            CampaignStatusChanged(at=self.clock(), campaign_id=campaign_id, name=name, status=status.value, by=by)
        )
        log.info("console.campaign_status", campaign=name, status=status.value, by=by)


async def customer_view(session: AsyncSession, attempt: CallAttempt, history_limit: int = 20) -> CustomerView:
    """The agent page's customer panel for one call attempt (used by any backend)."""
    contact = await session.get(Contact, attempt.contact_id) if attempt.contact_id is not None else None
    campaign = await session.get(Campaign, attempt.campaign_id) if attempt.campaign_id is not None else None
    options: list[DispositionOption] = []
    if campaign is not None:
        options = [
            DispositionOption(d.code, d.label, d.callback, d.final) for d in campaign_settings(campaign).dispositions
        ]
    history: list[HistoryEntry] = []
    if attempt.contact_id is not None:
        rows = await session.execute(
            select(CallAttempt)
            .where(CallAttempt.contact_id == attempt.contact_id, CallAttempt.id != attempt.id)
            .order_by(CallAttempt.dialled_at.desc())
            .limit(history_limit)
        )
        history = [
            HistoryEntry(a.dialled_at, a.outcome, a.disposition, a.agent_id, a.talk_seconds, a.disposition_note)
            for a in rows.scalars()
        ]
    return CustomerView(
        call_id=attempt.call_id or "",
        contact_id=attempt.contact_id,
        lead_id=attempt.lead_id,
        name=contact.name if contact else None,
        phone=attempt.number,
        timezone=(contact.timezones[0] if contact and contact.timezones else None),
        segment=contact.segment if contact else None,
        vip=bool(contact.vip) if contact else False,
        attributes=dict(contact.attributes) if contact else {},
        campaign=campaign.name if campaign else None,
        dispositions=options,
        history=history,
    )
