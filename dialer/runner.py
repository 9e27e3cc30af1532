"""The live campaign runner: the pure pacing, window, retry and abandon code driven with real SIP calls.

One :class:`CampaignRunner` per campaign runs one event-driven loop. It wakes when an agent
frees up, a call ends or is answered, the campaign is paused or resumed, and on a timer at
the next sensible moment (a pacing re-evaluation while lines ring, the next lead falling
due, a cps token); a coarse safety tick covers anything missed. Each wake builds a
:class:`~dialer.pacing.PacingSnapshot` from live state exactly as ``dialer simulate`` does,
asks the campaign's :class:`~dialer.pacing.PacingModel` how many lines to dial, and bounds
the answer by the campaign's max lines, its calls-per-second token bucket and the trunk's
channels. Leads are claimed atomically in the database (``dialer.runner_store``) under a node id
unique to the process (:func:`default_node`); at start-up only dead claims are released (this
node id's own, or older than any call lasts), never another live process's calls in progress.

The answer probability the pacing model reads is learned from every finished dial (answered,
busy, no answer, failed, machine), keyed by the lead's list and the callee's local hour at dial
time, and read as the mean over the next due leads of their (list, callee hour now).

Just before each dial the lead passes :func:`check_dial` (pure): DNC again (global, campaign,
prefix: a hit marks the lead ``dnc``), every candidate zone inside the calling window (else
the lead waits for the window's next opening), the 72 h rule after an abandoned call, and for
callbacks the agreed time, the owning agent first and anyone after the grace period. Calls
present the campaign's caller ID in From and P-Asserted-Identity (RFC 3325), which is required
(a campaign without one is not started), go out through the trunk its ``trunk`` setting names,
and ring at least 15 s (settings refuse less; 25 s by default).

An answered call optionally goes through answering-machine detection on its first seconds of
received audio (:class:`~dialer.amd.AnsweringMachineDetector`); a machine is hung up (or gets
a message after its beep) with outcome ``machine``. A person must be connected to an agent
within 2 s (Ofcom; FTC TSR 16 CFR 310.4(b)(4)(i) counts from the end of the greeting, which
is where the 2 s start when AMD listened to it): otherwise the call is abandoned, hears the
campaign's message and is hung up, and the :class:`~dialer.abandon.AbandonLedger` the pacing
model reads counts it. Every attempt writes one CDR row; the lead is then rescheduled by the
campaign's :class:`~dialer.retry.RetryPolicy` (the next untried day-part, alternates in
order, or exhausted with the reason stored).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal, Protocol

import numpy as np
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialer import runner_store as store
from dialer.abandon import ABANDON_GRACE_S, AbandonLedger, is_abandoned, redial_not_before
from dialer.amd import AmdConfig, AmdResult, AnsweringMachineDetector, MessageCue
from dialer.campaigns import CampaignSettings
from dialer.dnc import DncHit
from dialer.leads import ClaimedLead
from dialer.models import CampaignStatus
from dialer.pacing import PacingModel, PacingSnapshot, VicidialAdaptPacing, make_pacing
from dialer.retry import Callback, CallbackRules
from dialer.runner_agents import AgentLoad, AgentPool, OutboundLead
from dialer.simulator import PacingEstimators
from dialer.web.events import CampaignStats
from dialer.windows import CallingWindow, ensure_utc, local_to_utc, zone
from infra.bus import EventBus
from infra.logging import bind_contextvars, in_log_context
from telephony.aio.ua import Call, UserAgent
from telephony.media.player import tone
from telephony.sip.dialog import CallOutcome

__all__ = [
    "AttemptEnded",
    "Block",
    "CampaignRunner",
    "Defer",
    "Dial",
    "RunnerConfigError",
    "RunnerService",
    "RunnerTimers",
    "SettableClock",
    "TokenBucket",
    "TrunkLines",
    "TrunkRoute",
    "callback_times",
    "check_dial",
    "check_dialable",
    "default_node",
    "lead_zones",
]

log = structlog.get_logger(__name__)

Clock = Callable[[], datetime]
Sessions = async_sessionmaker[AsyncSession]


def utc_now() -> datetime:
    return datetime.now(UTC)


class SettableClock:
    """Wall time that runs at real speed from a chosen instant; tests place a campaign at a local
    time of day with it, and :meth:`jump_to` moves on to another day-part. SIP timing stays real."""

    def __init__(self, start: datetime | None = None) -> None:
        self._offset = (ensure_utc(start, "start") - utc_now()) if start is not None else timedelta(0)

    def __call__(self) -> datetime:
        return utc_now() + self._offset

    def jump_to(self, when: datetime) -> None:
        self._offset = ensure_utc(when, "when") - utc_now()


# == the pure dial-time decision =================================================================
@dataclass(frozen=True, slots=True)
class Dial:
    """Dial now; ``owner`` is the agent the call must go to (a callback's owner, a preview agent)."""

    reason: str
    owner: str | None = None


@dataclass(frozen=True, slots=True)
class Defer:
    """Not now: try again at ``at`` (the lead goes back with ``reason``)."""

    at: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class Block:
    """Never: the number is on a DNC list."""

    reason: str


DialDecision = Dial | Defer | Block


def lead_zones(lead: ClaimedLead, default_zone: str | None) -> tuple[str, ...]:
    """The lead's candidate zones; a contact without any gets the campaign's zone (or UTC)."""
    return lead.timezones or ((default_zone or "UTC"),)


def check_dial(
    lead: ClaimedLead,
    now: datetime,
    *,
    window: CallingWindow,
    zones: Sequence[str],
    dnc: Sequence[DncHit] = (),
    last_abandoned_at: datetime | None = None,
    customer_requested: bool = False,
    callback_rules: CallbackRules | None = None,
    owner_ready: bool = False,
    preview_agent: str | None = None,
    retry_s: float = 15.0,
) -> DialDecision:
    """Whether a claimed lead may be dialled at ``now``; pure, so it is property-tested.

    Order matters: a DNC hit blocks whatever else is true; a callback keeps its agreed time and
    may go outside the window only when the customer asked for that time; every other call
    needs every candidate zone inside the window; an abandoned number waits 72 h unless an
    agent is reserved for the redial.
    """
    now = ensure_utc(now)
    if dnc:
        return Block(f"number {lead.number} is {dnc[0].describe}")
    rules = callback_rules or CallbackRules()
    owner: str | None = preview_agent
    if lead.callback_at is not None:
        cb = Callback(
            due_local=ensure_utc(lead.callback_at, "callback_at"),
            zone=zones[0],
            customer_requested=customer_requested,
            owner_agent=lead.callback_owner,
        )
        due_from = rules.dial_at(cb, zones, lead.country, window)
        if due_from is None:
            return Defer(now + timedelta(days=1), "callback: no calling window open in the next days")
        if now < due_from:
            return Defer(due_from, f"callback due at {_local(due_from, zones[0])}")
        if not customer_requested and not window.is_callable(zones, lead.country, now):
            at = window.next_open(zones, lead.country, now) or now + timedelta(days=1)
            return Defer(at, f"callback outside the calling window; next opening {_local(at, zones[0])}")
        offered = rules.offered_to(cb, now, zones, lead.country, window)
        if offered == "owner" and preview_agent is None:
            if not owner_ready:
                grace_end = due_from + rules.grace
                at = min(now + timedelta(seconds=retry_s), grace_end)
                return Defer(
                    at, f"callback waits for its owner {lead.callback_owner} until {_local(grace_end, zones[0])}"
                )
            owner = lead.callback_owner
        elif offered == "owner" and preview_agent != lead.callback_owner:
            return Defer(now + timedelta(seconds=retry_s), f"callback reserved for {lead.callback_owner}")
        reserved = owner is not None
        if last_abandoned_at is not None:
            embargo = redial_not_before(last_abandoned_at, reserved)
            if embargo is not None and now < embargo:
                return Defer(embargo, "72 h no-redial after an abandoned call")
        return Dial(f"callback for {owner or 'any agent'}", owner)
    if not window.is_callable(zones, lead.country, now):
        opening = window.next_open(zones, lead.country, now)
        if opening is None:
            return Defer(now + timedelta(days=1), f"no calling window open for {', '.join(zones)} soon")
        return Defer(
            opening, f"outside the calling window in {', '.join(zones)}; next opening {_local(opening, zones[0])}"
        )
    if last_abandoned_at is not None:
        embargo = redial_not_before(last_abandoned_at, owner is not None)
        if embargo is not None and now < embargo:
            return Defer(embargo, "72 h no-redial after an abandoned call")
    return Dial("due" if owner is None else f"preview by {owner}", owner)


_NO_CALLER_ID = (
    "campaign {name!r} has no caller_id: every campaign call presents one (From and "
    "P-Asserted-Identity). Set caller_id to the number customers may call back, in E.164 such as "
    "+861012345678, in the campaign's settings (web console, or `dialer campaign create --caller-id`)"
)


def check_dialable(name: str, settings: CampaignSettings) -> None:
    """Raise :class:`RunnerConfigError` when the campaign's settings do not allow dialling."""
    if settings.caller_id is None:
        raise RunnerConfigError(_NO_CALLER_ID.format(name=name))


def campaign_messages(prompts: Any, settings: CampaignSettings, name: str = "") -> tuple[Any, Any]:
    """(abandon message, machine message) of a campaign as PCM16 audio from the prompt library.

    The abandon message: a recording under the campaign's ``abandon_prompt`` name if the site put
    one in the library; else, when the campaign sets ``company_name`` or ``callback_number``, the
    message composed by :func:`ivr.prompts.campaign_message_names` (shipped prompts, the company
    prompt generated at campaign create time, the callback number digit by digit); else the shipped
    generic ``abandon_message``. The machine message: a recording under ``machine_prompt``, else
    the composed one. None where nothing could be loaded.
    """
    from ivr.prompts import PromptError, campaign_message_names, company_prompt_name

    company: str | None = None
    if settings.company_name:
        company = company_prompt_name(settings.company_name)
        if not prompts.has(company):
            log.warning(
                "runner.no_company_prompt",
                campaign=name,
                prompt=company,
                fix=f"re-create the campaign where espeak-ng is installed, or record {company}.wav in the prompts dir",
            )
            company = None

    def load(*names: str) -> Any:
        for candidate in names:
            try:
                if prompts.has(candidate):
                    return prompts.load(candidate)
            except (PromptError, ValueError):
                continue
        return None

    def compose(kind: Literal["abandon", "machine"]) -> Any:
        try:
            return prompts.concat(
                campaign_message_names(kind, company_prompt=company, callback_number=settings.callback_number)
            )
        except (PromptError, ValueError) as exc:
            log.warning("runner.message_not_composed", campaign=name, kind=kind, error=str(exc))
            return None

    abandon = load(settings.abandon_prompt)
    if abandon is None and (settings.company_name or settings.callback_number):
        abandon = compose("abandon")
    if abandon is None:
        abandon = load("abandon_message")
    machine = load(settings.machine_prompt)
    if machine is None:
        machine = compose("machine")
    return abandon, machine


def _local(at: datetime, zone_name: str) -> str:
    return f"{at.astimezone(zone(zone_name)):%a %H:%M} local"


# == rate and channel limits ========================================================================
class TokenBucket:
    """Calls per second: ``rate`` tokens a second, at most ``capacity`` saved up. Pure (``now`` in)."""

    def __init__(self, rate: float, capacity: float | None = None, now: float = 0.0) -> None:
        if rate <= 0:
            raise ValueError(f"calls per second must be positive, got {rate!r}")
        self.rate = rate
        self.capacity = capacity if capacity is not None else max(1.0, rate)
        self._tokens = self.capacity
        self._at = now

    def _refill(self, now: float) -> None:
        if now > self._at:
            self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate)
            self._at = now

    def available(self, now: float) -> int:
        self._refill(now)
        return int(self._tokens + 1e-9)

    def take(self, now: float) -> bool:
        self._refill(now)
        if self._tokens + 1e-9 < 1.0:
            return False
        self._tokens -= 1.0
        return True

    def wait_s(self, now: float) -> float:
        """Seconds until the next token."""
        self._refill(now)
        return max(0.0, (1.0 - self._tokens) / self.rate)


class TrunkLines:
    """The trunk's channel limit, shared by every campaign of the process."""

    def __init__(self, channels: int) -> None:
        if channels < 1:
            raise ValueError(f"a trunk needs at least one channel, got {channels}")
        self.channels = channels
        self.in_use = 0

    @property
    def free(self) -> int:
        return max(0, self.channels - self.in_use)

    def acquire(self) -> bool:
        if self.in_use >= self.channels:
            return False
        self.in_use += 1
        return True

    def release(self) -> None:
        self.in_use = max(0, self.in_use - 1)


# == events ===========================================================================================
@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptEnded:
    """One dial attempt is over and its CDR written (``dialer/<site>/calls/<id>/events``)."""

    __topic__: ClassVar[str] = "calls/{call_id}/events"

    campaign_id: int
    lead_id: int
    attempt_id: int
    call_id: str
    number: str
    outcome: str
    sip_status: int | None
    agent_id: str | None
    talk_seconds: float | None
    amd_result: str | None
    lead_status: str
    next_attempt_at: datetime | None
    reason: str
    at: datetime


# == the runner ========================================================================================
@dataclass(frozen=True)
class RunnerTimers:
    """Loop timings; tests shorten them. Seconds."""

    safety_tick_s: float = 5.0
    decide_tick_s: float = 1.0
    status_poll_s: float = 2.0
    stats_every_s: float = 2.0
    callback_retry_s: float = 15.0
    connect_grace_s: float = ABANDON_GRACE_S
    drain_s: float = 25.0
    #: the abandon message says who called and the number to call back, digit by digit
    abandon_message_max_s: float = 30.0
    beep_wait_s: float = 20.0


class Recorder(Protocol):
    """Optional recording hook: called once the customer is bridged; returns (id, path) or None."""

    def __call__(self, call: Call, agent_id: str, campaign_id: int) -> Awaitable[tuple[str, str] | None]: ...


Phase = Literal["dialing", "answered", "bridged", "ending"]


@dataclass(eq=False)
class _Live:
    lead: ClaimedLead
    owner: str | None
    started: float
    zones: tuple[str, ...]
    list_id: int | None = None
    call: Call | None = None
    attempt_id: int | None = None
    phase: Phase = "dialing"
    trunk_line: bool = False
    dialled_at: datetime | None = None
    #: the hour of the callee's local day at dial time (answer rates are learned per list and hour)
    callee_hour: int | None = None


def _cdr_outcome(kind: CallOutcome) -> str:
    return {
        CallOutcome.BUSY: "busy",
        CallOutcome.NO_ANSWER: "no_answer",
        CallOutcome.REJECTED: "rejected",
        CallOutcome.UNAVAILABLE: "unavailable",
        CallOutcome.NOT_FOUND: "not_found",
    }.get(kind, "failed")


def default_node(prefix: str | None = None) -> str:
    """A node id unique to this process: ``[prefix:]host:pid:random``.

    Leads are claimed under it, and at start-up only claims of this exact id or stale ones are
    released, so two ``dialer run`` processes on one host (same host name) never release each
    other's calls in progress; the random part keeps a restarted process with a recycled pid
    apart from the run it replaces. It fits the 64-character ``claimed_by`` and ``node`` columns.
    """
    tail = f":{os.getpid()}:{secrets.token_hex(3)}"
    head = f"{prefix}:{socket.gethostname()}" if prefix else socket.gethostname()
    return head[: 64 - len(tail)] + tail


class RunnerConfigError(store.RunnerStoreError):
    """A campaign's settings do not allow it to dial (no caller ID, unknown trunk); names the fix."""


@dataclass(frozen=True)
class TrunkRoute:
    """One configured trunk: the request-URI template (``{number}``), its channel limit and the
    host presented in From / P-Asserted-Identity."""

    uri: str
    lines: TrunkLines
    from_host: str | None = None


class CampaignRunner:
    """Dials one campaign. ``await start()``; pause/resume via the campaign's status (polled) or
    :meth:`pause` / :meth:`resume`; ``await stop()`` lets ringing calls finish, then hangs up."""

    def __init__(
        self,
        campaign_id: int,
        *,
        sessionmaker: Sessions,
        ua: UserAgent,
        agents: AgentPool,
        trunk_uri: str,
        bus: EventBus | None = None,
        node: str | None = None,
        clock: Clock = utc_now,
        trunk: TrunkLines | None = None,
        from_host: str | None = None,
        abandon_audio: Any = None,
        machine_message: Any = None,
        recorder: Recorder | None = None,
        timers: RunnerTimers | None = None,
        amd_config: AmdConfig | None = None,
        callback_grace: timedelta = timedelta(minutes=5),
        prompts: Any = None,
    ) -> None:
        if "{number}" not in trunk_uri:
            raise ValueError(f"trunk_uri {trunk_uri!r} must contain {{number}}, e.g. 'sip:{{number}}@carrier:5060'")
        self.campaign_id = campaign_id
        self.sm = sessionmaker
        self.ua = ua
        self.agents = agents
        self.trunk_uri = trunk_uri
        self.bus = bus
        self.node = node or default_node()
        self.clock = clock
        self.trunk = trunk or TrunkLines(10_000)
        self.from_host = from_host
        self.prompts = prompts
        self._abandon_given = abandon_audio is not None
        self.abandon_audio = abandon_audio if abandon_audio is not None else tone(440.0, 1.0, 0.3)
        self._machine_given = machine_message is not None
        self.machine_message = machine_message
        self.recorder = recorder
        self.timers = timers or RunnerTimers()
        self._amd_given = amd_config is not None
        self.amd_config = amd_config or AmdConfig()
        self.callback_rules = CallbackRules(grace=callback_grace)
        self.name = ""
        self.status: str = CampaignStatus.PAUSED
        self.settings = CampaignSettings()
        self.window: CallingWindow = self.settings.calling_window()
        self.policy: Any = self.settings.retry_policy()
        self.model: PacingModel = make_pacing("progressive")
        self.ledger = AbandonLedger()
        self.estimators = PacingEstimators()
        self.bucket = TokenBucket(self.settings.pacing.calls_per_second)
        self.live: dict[int, _Live] = {}
        self.previews: dict[str, _Live] = {}
        self.dialled = 0
        self.ended: list[AttemptEnded] = []
        self._updated_at: datetime | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._no_leads_until = 0.0
        self._next_poll = 0.0
        self._next_stats = 0.0
        self._remove_listener: Callable[[], None] | None = None
        self._effective_today = 0
        self._effective_checked = 0.0
        #: (list id, callee zone) -> count among the next due leads; refreshed every status poll
        self._due_mix: Counter[tuple[int | None, str]] = Counter()
        self._next_mix = 0.0
        self._caller_id_warned = False

    # -- life cycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        row = await store.campaign_row(self.sm, self.campaign_id)
        if row is None:
            raise store.RunnerStoreError(
                f"campaign {self.campaign_id} does not exist; create it with `dialer campaign create`"
            )
        self._apply_row(row, first=True)
        check_dialable(row.name, self.settings)
        now = self.clock()
        # Only dead claims: this node id's own (a crashed earlier run) and claims older than any
        # call lasts; another live process's calls in progress keep theirs.
        await store.release_node_claims(
            self.sm, self.node, now, campaign_id=self.campaign_id, stale=store.stale_after(self.settings)
        )
        for answered_at, abandoned in await store.abandon_history(self.sm, self.campaign_id, now - timedelta(days=31)):
            self.ledger.record(answered_at, abandoned)
        self.estimators = PacingEstimators.from_history(
            await store.recent_attempts(self.sm, self.campaign_id, default_zone=self.settings.timezone)
        )
        await self.refresh_due_mix(now)
        self._remove_listener = self.agents.add_listener(self.wake)
        self._task = asyncio.get_running_loop().create_task(
            in_log_context(self._loop(), campaign_id=self.campaign_id, campaign=self.name),
            name=f"campaign-{self.campaign_id}",
        )
        log.info("runner.started", campaign=self.name, campaign_id=self.campaign_id, node=self.node, status=self.status)

    def _apply_row(self, row: store.CampaignRow, first: bool = False) -> None:
        was = self.status
        self.name = row.name
        self.status = row.status
        if first or row.updated_at != self._updated_at:
            s = row.settings
            mode_changed = first or s.pacing.mode != self.settings.pacing.mode or s.pacing != self.settings.pacing
            self.settings = s
            self.window = s.calling_window()
            self.policy = s.retry_policy()
            if mode_changed:
                options: dict[str, float] = {"ratio": s.pacing.lines_per_agent} if s.pacing.mode == "power" else {}
                self.model = make_pacing(s.pacing.mode, **options)
                self.bucket = TokenBucket(s.pacing.calls_per_second, now=asyncio.get_running_loop().time())
            if not self._amd_given:
                self.amd_config = s.amd_thresholds.config()
            self._load_messages(s)
            if first:
                self.ledger = AbandonLedger(s.pacing.target_abandon_rate, s.timezone or "UTC")
            else:
                self.ledger.target = s.pacing.target_abandon_rate
        self._updated_at = row.updated_at
        if was != self.status:
            log.info("runner.status", campaign=self.name, status=self.status, was=was)
            self.wake()

    def _load_messages(self, s: CampaignSettings) -> None:
        """The campaign's abandon and machine messages from the prompt library (see
        :func:`campaign_messages`). A campaign with a company name or callback number always gets
        its own abandon message, even over a generic ``abandon_audio`` the caller passed."""
        if self.prompts is None:
            return
        abandon, machine = campaign_messages(self.prompts, s, self.name)
        if abandon is not None and (not self._abandon_given or s.company_name or s.callback_number):
            self.abandon_audio = abandon
        elif abandon is None and not self._abandon_given:
            log.warning(
                "runner.no_abandon_prompt",
                campaign=self.name,
                prompt=s.abandon_prompt,
                fix="add the WAV to the prompts dir",
            )
        if not self._machine_given:
            self.machine_message = machine

    def wake(self) -> None:
        self._wake.set()

    def pause(self) -> None:
        """Stop dialling new lines now; calls already ringing finish normally."""
        self.status = CampaignStatus.PAUSED
        self.wake()

    def resume(self) -> None:
        self.status = CampaignStatus.ACTIVE
        self._no_leads_until = 0.0
        self.wake()

    def poke(self) -> None:
        """Leads changed (import, callback scheduled): look for due leads at once."""
        self._no_leads_until = 0.0
        self.wake()

    async def stop(self) -> None:
        self._closing = True
        self.wake()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._remove_listener is not None:
            self._remove_listener()
        for agent_id, live in list(self.previews.items()):
            self.agents.release(agent_id, live.lead.lead_id)
            await store.release_claims(self.sm, [live.lead.lead_id], self.node, self.clock())
        self.previews.clear()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=self.timers.drain_s)
            if pending:
                for live in list(self.live.values()):
                    if live.call is not None and not live.call.ended:
                        with contextlib.suppress(Exception):
                            await live.call.hangup("shutdown")
                await asyncio.wait(pending, timeout=5.0)
        log.info("runner.stopped", campaign=self.name, dialled=self.dialled)

    # -- the loop -----------------------------------------------------------------------------------
    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._closing:
            self._wake.clear()
            try:
                delay = await self._step()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("runner.step_failed", campaign=self.name)
                delay = self.timers.safety_tick_s
            if loop.time() >= self._next_stats:
                self._next_stats = loop.time() + self.timers.stats_every_s
                await self._publish_stats()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), min(delay, self.timers.safety_tick_s))

    async def _poll_status(self, loop_now: float) -> None:
        if loop_now < self._next_poll:
            return
        self._next_poll = loop_now + self.timers.status_poll_s
        row = await store.campaign_row(self.sm, self.campaign_id)
        if row is None:
            self.status = CampaignStatus.ARCHIVED
            return
        self._apply_row(row)

    def agent_load(self) -> AgentLoad:
        return self.agents.load(self.campaign_id)

    async def refresh_due_mix(self, now: datetime | None = None) -> None:
        """Re-read which lists and callee zones the next due leads are in (for the answer probability)."""
        now = now or self.clock()
        mix: Counter[tuple[int | None, str]] = Counter()
        for list_id, zones in await store.due_mix(self.sm, self.campaign_id, now):
            mix[(list_id, zones[0] if zones else (self.settings.timezone or "UTC"))] += 1
        self._due_mix = mix
        self._next_mix = asyncio.get_running_loop().time() + self.timers.status_poll_s

    def answer_probability(self, now: datetime) -> float:
        """The chance that the next line dialled is answered by a person: the mean, over the next
        due leads, of the probability learned for the lead's list at its callee's local hour now.
        With nothing due, the campaign-wide rate."""
        answers = self.estimators.answers
        if not self._due_mix:
            return answers.probability(None, None)
        total = sum(self._due_mix.values())
        return (
            sum(
                n * answers.probability(list_id, now.astimezone(zone(zone_name)).hour)
                for (list_id, zone_name), n in self._due_mix.items()
            )
            / total
        )

    def snapshot(self, now: datetime) -> PacingSnapshot:
        """The pacing model's view, built like :meth:`dialer.simulator._Run.snapshot`."""
        loop_now = asyncio.get_running_loop().time()
        load = self.agent_load()
        today = self.ledger.counts_today(now)
        roll = self.ledger.counts_30d(now)
        p = self.settings.pacing
        return PacingSnapshot(
            agents_ready=load.ready,
            talk_so_far_s=load.talk_so_far_s,
            wrapup_remaining_s=load.wrapup_remaining_s,
            ringing_s=tuple(loop_now - lv.started for lv in self.live.values() if lv.phase == "dialing"),
            answer_probability=self.answer_probability(now),
            ring_time=self.estimators.ring.distribution(),
            handle_time=self.estimators.handle.distribution(),
            wrapup_s=load.wrapup_s,
            calls_waiting=sum(1 for lv in self.live.values() if lv.phase == "answered"),
            abandon_rate_today=today.rate,
            abandon_rate_30d=roll.rate,
            answered_today=today.answered_human,
            answered_30d=roll.answered_human,
            target_abandon_rate=p.target_abandon_rate,
            max_lines=p.max_lines,
            ring_timeout_s=float(p.ring_timeout_seconds),
        )

    def _idle_delay(self) -> float:
        busy = bool(self.live) or self.agent_load().ready > 0
        return self.timers.decide_tick_s if busy else self.timers.safety_tick_s

    async def _step(self) -> float:
        loop = asyncio.get_running_loop()
        await self._poll_status(loop.time())
        if self.status != CampaignStatus.ACTIVE or self._closing:
            return self.timers.safety_tick_s
        if self.settings.pacing.mode == "preview":
            return self.timers.safety_tick_s
        if not self._may_dial():
            return self.timers.safety_tick_s
        now = self.clock()
        if loop.time() >= self._next_mix:
            await self.refresh_due_mix(now)
        snap = self.snapshot(now)
        want = self.model.lines_to_dial(snap, now)
        room = min(self.settings.pacing.max_lines - len(self.live), self.trunk.free)
        want = min(want, room)
        if want <= 0:
            return self._idle_delay()
        loop_now = loop.time()
        if loop_now < self._no_leads_until:
            return min(self._no_leads_until - loop_now, self._idle_delay())
        tokens = self.bucket.available(loop_now)
        if tokens < 1:
            return max(0.01, self.bucket.wait_s(loop_now))
        want = min(want, tokens)
        leads = await store.claim(self.sm, self.campaign_id, now, want, self.node)
        if len(leads) < want:
            due = await store.next_due_at(self.sm, self.campaign_id)
            wait = self.timers.safety_tick_s if due is None else (due - now).total_seconds()
            self._no_leads_until = loop.time() + min(max(wait, 0.05), self.timers.safety_tick_s)
        for i, lead in enumerate(leads):
            if self.status != CampaignStatus.ACTIVE or self._closing:
                # Paused while claiming: the rest go back untouched.
                await store.release_claims(self.sm, [x.lead_id for x in leads[i:]], self.node, self.clock())
                break
            await self._consider(lead)
        return 0.0 if leads else self._idle_delay()

    async def _consider(self, lead: ClaimedLead) -> None:
        """Dial-time checks on one claimed lead, then dial it, defer it or mark it DNC."""
        now = self.clock()
        if lead.lead_id in self.live:
            # The database handed us a lead we are already dialling: never dial twice.
            log.error("runner.lead_already_live", lead_id=lead.lead_id)
            return
        decision, live = await self._check(lead, now, preview_agent=None)
        if isinstance(decision, Dial):
            if decision.owner is not None and not self.agents.reserve(decision.owner, lead.lead_id):
                await store.defer_lead(
                    self.sm,
                    lead.lead_id,
                    self.node,
                    now + timedelta(seconds=self.timers.callback_retry_s),
                    f"callback owner {decision.owner} is busy",
                    now,
                )
                return
            live.owner = decision.owner
            self.bucket.take(asyncio.get_running_loop().time())
            # Counted as ringing before the task runs, so the next pacing decision sees it.
            self.live[lead.lead_id] = live
            self._spawn(self._attempt(live))
        elif isinstance(decision, Defer):
            await store.defer_lead(self.sm, lead.lead_id, self.node, decision.at, decision.reason, now)
            log.info("runner.deferred", lead_id=lead.lead_id, at=decision.at.isoformat(), reason=decision.reason)
        else:
            await store.mark_dnc(self.sm, lead.lead_id, decision.reason, now)
            log.info("runner.dnc", lead_id=lead.lead_id, reason=decision.reason)

    async def _check(self, lead: ClaimedLead, now: datetime, preview_agent: str | None) -> tuple[DialDecision, _Live]:
        ctx = await store.dial_context(self.sm, lead)
        zones = lead_zones(lead, self.settings.timezone)
        owner_ready = lead.callback_owner is not None and self.agents.is_ready(lead.callback_owner)
        decision = check_dial(
            lead,
            now,
            window=self.window,
            zones=zones,
            dnc=ctx.dnc,
            last_abandoned_at=ctx.last_abandoned_at,
            customer_requested=ctx.callback_customer_requested,
            callback_rules=self.callback_rules,
            owner_ready=owner_ready,
            preview_agent=preview_agent,
            retry_s=self.timers.callback_retry_s,
        )
        live = _Live(lead=lead, owner=None, started=asyncio.get_running_loop().time(), zones=zones, list_id=ctx.list_id)
        return decision, live

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- one attempt ------------------------------------------------------------------------------
    def _wall(self, t: float | None) -> datetime | None:
        """A ``time.time()`` stamp of the SIP layer on the runner's clock."""
        if t is None:
            return None
        return self.clock() - timedelta(seconds=max(0.0, time.time() - t))

    def _may_dial(self) -> bool:
        """Settings changed while running may have lost the caller ID: then no new calls (once logged)."""
        try:
            check_dialable(self.name, self.settings)
        except RunnerConfigError as exc:
            if not self._caller_id_warned:
                log.error("runner.cannot_dial", campaign=self.name, why=str(exc))
                self._caller_id_warned = True
            return False
        self._caller_id_warned = False
        return True

    def _caller_id(self) -> tuple[str, list[tuple[str, str]]]:
        """The campaign's caller ID, always presented (never the UA's own user name)."""
        cid = self.settings.caller_id
        if cid is None:
            raise RunnerConfigError(_NO_CALLER_ID.format(name=self.name))
        host = self.from_host or self.ua.advertised_host
        return cid, [("P-Asserted-Identity", f"<sip:{cid}@{host}>")]

    async def _dial(self, live: _Live) -> bool:
        """Send the INVITE and open the CDR row; False when the call could not even be placed."""
        lead = live.lead
        self.live[lead.lead_id] = live
        live.trunk_line = self.trunk.acquire()
        live.started = asyncio.get_running_loop().time()
        live.dialled_at = self.clock()
        live.callee_hour = store.callee_hour(live.dialled_at, live.zones, self.settings.timezone)
        try:
            cid, headers = self._caller_id()
            live.call = await self.ua.call(
                self.trunk_uri.format(number=lead.number),
                from_user=cid,
                display_name=self.settings.description[:40] or None,
                ring_timeout=float(self.settings.pacing.ring_timeout_seconds),
                headers=headers,
            )
        except Exception as exc:  # a bad number or trunk URI must not stop the campaign
            log.warning("runner.dial_failed", lead_id=lead.lead_id, number=lead.number, error=str(exc))
        live.attempt_id = await store.open_attempt(
            self.sm,
            lead=lead,
            call_id=live.call.id if live.call is not None else f"failed-{lead.lead_id}-{time.time_ns()}",
            node=self.node,
            dialled_at=live.dialled_at,
            queue=self.settings.queue,
        )
        self.dialled += 1
        return live.call is not None

    async def _attempt(self, live: _Live) -> None:
        # This task's own context: campaign_id comes from the campaign task, lead and call are added.
        bind_contextvars(campaign_id=self.campaign_id, lead_id=live.lead.lead_id)
        try:
            placed = await self._dial(live)
            if live.call is not None:
                bind_contextvars(call_id=live.call.id)
            record = await self._follow(live) if placed else self._failed(live, "the INVITE could not be sent")
            await self._finish(live, record)
        except Exception:
            log.exception("runner.attempt_failed", lead_id=live.lead.lead_id)
            if live.attempt_id is not None:
                with contextlib.suppress(Exception):
                    await self._finish(live, self._failed(live, "internal error during the attempt"))
            else:
                with contextlib.suppress(Exception):
                    await store.release_claims(self.sm, [live.lead.lead_id], self.node, self.clock())
        finally:
            self.live.pop(live.lead.lead_id, None)
            if live.trunk_line:
                self.trunk.release()
            if live.owner is not None:
                self.agents.release(live.owner, live.lead.lead_id)
            self.wake()

    def _failed(self, live: _Live, why: str) -> store.AttemptRecord:
        return store.AttemptRecord(outcome="failed", ended_at=self.clock(), sip_reason=why)

    async def _follow(self, live: _Live) -> store.AttemptRecord:
        call = live.call
        assert call is not None
        outcome = await call.wait_answered()
        ringing_at = self._wall(call.ringing_at)
        if outcome.outcome is not CallOutcome.ANSWERED:
            await call.wait_ended()
            reason = outcome.sip_reason or outcome.detail
            if outcome.outcome is CallOutcome.CANCELLED:
                reason = "cancelled: the dialer was stopping"
            else:
                # Busy, no answer, rejected, failed: a dial nobody answered. Leaving these out
                # would learn the answer rate from answers only.
                rang = max(0.0, (call.ended_at or time.time()) - call.created_at)
                self.estimators.observe_attempt(False, rang, live.list_id, live.callee_hour)
            return store.AttemptRecord(
                outcome=_cdr_outcome(outcome.outcome),
                ended_at=self._wall(call.ended_at) or self.clock(),
                ringing_at=ringing_at,
                sip_status=outcome.sip_status,
                sip_reason=reason,
            )
        live.phase = "answered"
        self.wake()
        loop = asyncio.get_running_loop()
        answered_at = self._wall(call.answered_at) or self.clock()
        ring_s = max(0.0, (call.answered_at or time.time()) - call.created_at)
        amd: AmdResult | None = None
        if self.settings.amd and call.media is not None:
            amd = await self._detect(call)
            if amd.is_machine:
                live.phase = "ending"
                await self._machine(call)
                self.estimators.observe_attempt(False, ring_s, live.list_id, live.callee_hour)
                return store.AttemptRecord(
                    outcome="machine",
                    ended_at=self._wall(call.ended_at) or self.clock(),
                    ringing_at=ringing_at,
                    answered_at=answered_at,
                    sip_status=outcome.sip_status,
                    sip_reason=outcome.sip_reason,
                    amd_result=amd.verdict.value,
                )
        self.estimators.observe_attempt(True, ring_s, live.list_id, live.callee_hour)
        grace_from = loop.time()
        grace_from_wall = self.clock()
        lead = live.lead
        agent_id: str | None = None
        if not call.ended:
            try:
                agent_id = await asyncio.wait_for(
                    self.agents.connect(
                        call,
                        self.campaign_id,
                        OutboundLead(lead.lead_id, lead.contact_id, lead.number),
                        agent_id=live.owner,
                        wait_s=self.timers.connect_grace_s,
                    ),
                    self.timers.connect_grace_s + 0.5,
                )
            except TimeoutError:
                agent_id = None
        connected_wall = self.clock() if agent_id is not None else None
        abandoned = agent_id is None or is_abandoned(grace_from_wall, connected_wall, self.timers.connect_grace_s)
        self.ledger.record(answered_at, abandoned)
        if agent_id is None:
            live.phase = "ending"
            waited = loop.time() - grace_from
            await self._abandon(call)
            log.info("runner.abandoned", lead_id=lead.lead_id, call_id=call.id, waited_s=round(waited, 3))
            return store.AttemptRecord(
                outcome="abandoned",
                ended_at=self._wall(call.ended_at) or self.clock(),
                ringing_at=ringing_at,
                answered_at=answered_at,
                sip_status=outcome.sip_status,
                sip_reason=outcome.sip_reason,
                amd_result=amd.verdict.value if amd else None,
            )
        live.phase = "bridged"
        self.wake()
        bridged = loop.time()
        recording: tuple[str, str] | None = None
        if self.recorder is not None:
            try:
                recording = await self.recorder(call, agent_id, self.campaign_id)
            except Exception as exc:  # a broken recorder must not break the call
                log.warning("runner.recorder_failed", call_id=call.id, error=str(exc))
        await call.wait_ended()
        talk = loop.time() - bridged
        self.estimators.handle.record(talk)
        return store.AttemptRecord(
            outcome="completed",
            ended_at=self._wall(call.ended_at) or self.clock(),
            ringing_at=ringing_at,
            answered_at=answered_at,
            bridged_at=connected_wall,
            sip_status=outcome.sip_status,
            sip_reason=outcome.sip_reason,
            agent_id=agent_id,
            amd_result=amd.verdict.value if amd else None,
            talk_seconds=round(talk, 3),
            recording_id=recording[0] if recording else None,
            recording_path=recording[1] if recording else None,
        )

    async def _detect(self, call: Call) -> AmdResult:
        """Feed the first seconds of received audio to the detector until it decides."""
        assert call.media is not None
        detector = AnsweringMachineDetector(self.amd_config)
        loop = asyncio.get_running_loop()
        decided: asyncio.Future[AmdResult] = loop.create_future()

        def consume(left: Any, _right: Any) -> None:
            if decided.done():
                return
            result = detector.feed(np.asarray(left, dtype=np.int16).tobytes())
            if result is not None:
                decided.set_result(result)

        tap = call.media.new_tap(consume, flush_interval=0.1, delay=0.06)
        call.media.add_tap(tap)
        ended: asyncio.Future[Any] = asyncio.ensure_future(call.wait_ended())
        waiting: set[asyncio.Future[Any]] = {decided, ended}
        try:
            await asyncio.wait(
                waiting, timeout=self.amd_config.total_analysis_ms / 1000 + 0.5, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            ended.cancel()
            if call.media is not None:
                call.media.remove_tap(tap)
        return decided.result() if decided.done() else detector.finish()

    async def _machine(self, call: Call) -> None:
        """Hang up on a machine (``on_machine = "hangup"``), or (``"message"``) wait for its beep or
        the end of its greeting, leave the campaign's machine message, then hang up."""
        wants_message = self.settings.on_machine == "message" or self._machine_given
        if wants_message and self.machine_message is not None and call.media is not None and not call.ended:
            cue_detector = MessageCue(self.amd_config)
            cue: asyncio.Future[str] = asyncio.get_running_loop().create_future()

            def consume(left: Any, _right: Any) -> None:
                if not cue.done():
                    found = cue_detector.feed(np.asarray(left, dtype=np.int16).tobytes())
                    if found is not None:
                        cue.set_result(found)

            tap = call.media.new_tap(consume, flush_interval=0.1, delay=0.06)
            call.media.add_tap(tap)
            try:
                heard = await asyncio.wait_for(asyncio.shield(cue), self.timers.beep_wait_s)
                call.media.remove_tap(tap)
                log.info("runner.machine_message", call_id=call.id, after=heard)
                await asyncio.wait_for(call.play(self.machine_message), self.timers.abandon_message_max_s * 2)
            except TimeoutError:
                log.info("runner.no_beep", call_id=call.id, waited_s=self.timers.beep_wait_s)
            finally:
                if call.media is not None:
                    call.media.remove_tap(tap)
        await call.hangup()

    async def _abandon(self, call: Call) -> None:
        """The 2 s passed without an agent: the campaign's message, then hang up."""
        if not call.ended and call.media is not None:
            with contextlib.suppress(TimeoutError, RuntimeError):
                await asyncio.wait_for(call.play(self.abandon_audio), self.timers.abandon_message_max_s)
        await call.hangup()

    async def _finish(self, live: _Live, record: store.AttemptRecord) -> None:
        assert live.attempt_id is not None
        lead = live.lead
        result = await store.finish_attempt(
            self.sm,
            store.FinishInput(
                attempt_id=live.attempt_id,
                lead=lead,
                record=record,
                node=self.node,
                policy=self.policy,
                zones=live.zones,
                window=self.window,
                country=lead.country,
            ),
        )
        event = AttemptEnded(
            campaign_id=self.campaign_id,
            lead_id=lead.lead_id,
            attempt_id=live.attempt_id,
            call_id=live.call.id if live.call is not None else "",
            number=lead.number,
            outcome=record.outcome,
            sip_status=record.sip_status,
            agent_id=record.agent_id,
            talk_seconds=record.talk_seconds,
            amd_result=record.amd_result,
            lead_status=result.status,
            next_attempt_at=result.next_attempt_at,
            reason=result.reason,
            at=record.ended_at,
        )
        self.ended.append(event)
        if self.bus is not None:
            self.bus.publish(event)
        log.info(
            "runner.attempt",
            campaign=self.name,
            lead_id=lead.lead_id,
            outcome=record.outcome,
            sip_status=record.sip_status,
            lead_status=result.status,
            next=result.next_attempt_at.isoformat() if result.next_attempt_at else None,
            reason=result.reason,
        )

    # -- preview -------------------------------------------------------------------------------------
    async def preview_next(self, agent_id: str) -> ClaimedLead | None:
        """The next lead for ``agent_id`` to look at before dialling (preview mode); it stays claimed
        for them until :meth:`preview_dial` or :meth:`preview_release`."""
        held = self.previews.get(agent_id)
        if held is not None:
            return held.lead
        if self.status != CampaignStatus.ACTIVE:
            return None
        for _ in range(20):
            now = self.clock()
            leads = await store.claim(self.sm, self.campaign_id, now, 1, self.node)
            if not leads:
                return None
            decision, live = await self._check(leads[0], now, preview_agent=agent_id)
            if isinstance(decision, Dial):
                if not self.agents.reserve(agent_id, live.lead.lead_id):
                    await store.release_claims(self.sm, [live.lead.lead_id], self.node, now)
                    return None
                live.owner = agent_id
                self.previews[agent_id] = live
                return live.lead
            if isinstance(decision, Defer):
                await store.defer_lead(self.sm, live.lead.lead_id, self.node, decision.at, decision.reason, now)
            else:
                await store.mark_dnc(self.sm, live.lead.lead_id, decision.reason, now)
        return None

    async def preview_dial(self, agent_id: str, lead_id: int) -> str:
        """The agent starts the previewed call; returns the call id. The answer goes to that agent."""
        live = self.previews.get(agent_id)
        if live is None or live.lead.lead_id != lead_id:
            raise store.RunnerStoreError(
                f"lead {lead_id} is not being previewed by agent {agent_id}; ask for one with preview_next first"
            )
        check_dialable(self.name, self.settings)
        now = self.clock()
        if not self.window.is_callable(live.zones, live.lead.country, now) and live.lead.callback_at is None:
            await self.preview_release(agent_id, lead_id)
            raise store.RunnerStoreError(f"lead {lead_id} is now outside its calling window; it was put back")
        del self.previews[agent_id]
        placed = await self._dial(live)
        self._spawn(self._preview_follow(live, placed))
        assert live.call is not None or not placed
        return live.call.id if live.call is not None else ""

    async def _preview_follow(self, live: _Live, placed: bool) -> None:
        try:
            record = await self._follow(live) if placed else self._failed(live, "the INVITE could not be sent")
            await self._finish(live, record)
        finally:
            self.live.pop(live.lead.lead_id, None)
            if live.trunk_line:
                self.trunk.release()
            if live.owner is not None:
                self.agents.release(live.owner, live.lead.lead_id)
            self.wake()

    async def preview_release(self, agent_id: str, lead_id: int) -> None:
        """Give the previewed lead back unchanged (the runner stops, the lead left its window)."""
        live = self.previews.get(agent_id)
        if live is None or live.lead.lead_id != lead_id:
            return
        del self.previews[agent_id]
        self.agents.release(agent_id, lead_id)
        await store.release_claims(self.sm, [lead_id], self.node, self.clock())

    async def preview_skip(self, agent_id: str, lead_id: int, delay: timedelta = timedelta(minutes=30)) -> datetime:
        """The agent decides not to call the previewed lead now: it waits ``delay`` (no attempt is
        counted, so the next preview shows another lead); returns when it is due again."""
        live = self.previews.get(agent_id)
        if live is None or live.lead.lead_id != lead_id:
            raise store.RunnerStoreError(
                f"lead {lead_id} is not being previewed by agent {agent_id}; ask for one with preview_next first"
            )
        del self.previews[agent_id]
        self.agents.release(agent_id, lead_id)
        now = self.clock()
        at = now + delay
        await store.defer_lead(self.sm, lead_id, self.node, at, f"skipped in preview by agent {agent_id}", now)
        self.poke()
        return at

    # -- dispositions and callbacks ------------------------------------------------------------------
    async def set_disposition(
        self,
        code: str,
        note: str | None = None,
        *,
        call_id: str | None = None,
        attempt_id: int | None = None,
        agent_id: str | None = None,
    ) -> store.DispositionResult:
        result = await store.apply_disposition(
            self.sm, code=code, note=note, call_id=call_id, attempt_id=attempt_id, agent_id=agent_id, now=self.clock()
        )
        self._effective_checked = 0.0
        return result

    async def schedule_callback(
        self, lead_id: int, at_local: datetime, zone_name: str, owner: str | None, customer_requested: bool = False
    ) -> datetime:
        """Call the lead back at ``at_local`` (wall clock in ``zone_name``); returns the UTC dial time."""
        due, dial_at, reason = callback_times(at_local, zone_name, customer_requested, self.window, self.callback_rules)
        await store.schedule_callback(
            self.sm,
            lead_id,
            due_utc=due,
            dial_at=dial_at,
            owner=owner,
            customer_requested=customer_requested,
            reason=reason,
            now=self.clock(),
        )
        self.poke()
        return dial_at

    # -- figures ---------------------------------------------------------------------------------------
    async def _publish_stats(self) -> None:
        if self.bus is None:
            return
        now = self.clock()
        loop_now = asyncio.get_running_loop().time()
        if loop_now >= self._effective_checked:
            tz = zone(self.settings.timezone or "UTC")
            local = now.astimezone(tz)
            midnight = local_to_utc(local.date(), 0, self.settings.timezone or "UTC")
            self._effective_today = await store.effective_today(
                self.sm, self.campaign_id, midnight, self.settings.effective_call_seconds
            )
            self._effective_checked = loop_now + 30.0
        self.bus.publish(self.stats(now))

    def stats(self, now: datetime | None = None) -> CampaignStats:
        now = now or self.clock()
        load = self.agent_load()
        day = self.ledger.counts_24h(now)
        roll = self.ledger.counts_30d(now)
        level = (
            self.model.level
            if isinstance(self.model, VicidialAdaptPacing)
            else len(self.live) / max(1, load.ready + len(load.talk_so_far_s))
        )
        return CampaignStats(
            campaign_id=self.campaign_id,
            name=self.name,
            status=self.status,
            mode=self.settings.pacing.mode,
            dial_level=float(level),
            lines_in_use=len(self.live),
            max_lines=self.settings.pacing.max_lines,
            agents_available=load.ready,
            abandon_rate_24h=day.rate if day.answered_human else None,
            abandon_rate_30d=roll.rate if roll.answered_human else None,
            effective_today=self._effective_today,
            target_today=self.settings.daily_target,
            at=now.timestamp(),
        )


def callback_times(
    at_local: datetime, zone_name: str, customer_requested: bool, window: CallingWindow, rules: CallbackRules
) -> tuple[datetime, datetime, str]:
    """(agreed instant, first instant it may be dialled, reason) of a callback."""
    if at_local.tzinfo is not None:
        at_local = at_local.astimezone(zone(zone_name)).replace(tzinfo=None)
    cb = Callback(due_local=at_local, zone=zone_name, customer_requested=customer_requested)
    due = cb.due_utc()
    dial_at = rules.dial_at(cb, (zone_name,), None, window)
    if dial_at is None:
        raise store.RunnerStoreError(
            f"callback at {at_local:%Y-%m-%d %H:%M} {zone_name} has no calling window in the following days; "
            "pick a time inside the window or mark it as requested by the customer"
        )
    why = "customer asked for this time" if customer_requested else "agreed time"
    if dial_at != due:
        why += f"; moved into the calling window ({dial_at.astimezone(zone(zone_name)):%a %H:%M} local)"
    return due, dial_at, f"callback: {why}"


# == the service for `dialer run` ======================================================================
PoolFactory = Callable[[store.CampaignRow], AgentPool]
#: the name of the one trunk an installation with a single ``[trunk]`` section has
DEFAULT_TRUNK = "default"


class RunnerService:
    """Runs a :class:`CampaignRunner` for every active campaign and follows status changes.

    The CLI and the web console change a campaign's status in the database, possibly from
    another process, so the service looks at the campaigns table every ``status_poll_s``
    (one small query) and each runner re-reads its own row as often; ``CampaignStatusChanged``
    on the bus makes an in-process change immediate.

    Each campaign dials through the trunk its ``trunk`` setting names, among ``trunks`` (by
    default one, ``"default"``, made of ``trunk_uri`` and ``trunk``). A campaign whose settings
    cannot dial (an unknown trunk, no caller ID) is not started: the error names the setting to
    fix and is logged once, until the campaign's settings change.
    """

    name = "campaign-runner"

    def __init__(
        self,
        *,
        sessionmaker: Sessions,
        ua: UserAgent,
        pool_for: PoolFactory,
        trunk_uri: str | None = None,
        bus: EventBus | None = None,
        node: str | None = None,
        clock: Clock = utc_now,
        trunk: TrunkLines | None = None,
        timers: RunnerTimers | None = None,
        runner_options: dict[str, Any] | None = None,
        trunks: Mapping[str, TrunkRoute] | None = None,
    ) -> None:
        self.sm = sessionmaker
        self.ua = ua
        self.pool_for = pool_for
        self.bus = bus
        self.node = node or default_node()
        self.clock = clock
        self.trunk = trunk or TrunkLines(10_000)
        self.timers = timers or RunnerTimers()
        self.runner_options = runner_options or {}
        if trunks is None:
            if trunk_uri is None:
                raise ValueError("RunnerService needs trunk_uri (one trunk) or trunks (by name)")
            trunks = {DEFAULT_TRUNK: TrunkRoute(trunk_uri, self.trunk)}
        if not trunks:
            raise ValueError("RunnerService needs at least one trunk")
        self.trunks: dict[str, TrunkRoute] = dict(trunks)
        self.trunk_uri = trunk_uri or next(iter(self.trunks.values())).uri
        self.runners: dict[int, CampaignRunner] = {}
        #: campaigns whose settings cannot dial -> (their settings' updated_at, the error)
        self.refused: dict[int, tuple[datetime, str]] = {}
        self._task: asyncio.Task[None] | None = None
        self._poke = asyncio.Event()
        self._removers: list[Callable[[], None]] = []

    async def start(self) -> None:
        await self._sync()
        if self.bus is not None:
            from dialer.web.events import CampaignStatusChanged

            self._removers.append(self.bus.add_listener(self._status_event, types=CampaignStatusChanged))
            try:
                from acd.service import DispositionSet as AcdDisposition

                self._removers.append(self.bus.add_listener(self._acd_disposition, types=AcdDisposition))
            except ImportError:  # no ACD in this installation
                pass
        self._task = asyncio.get_running_loop().create_task(self._watch(), name="campaign-runner-service")

    def _status_event(self, event: Any) -> None:
        runner = self.runners.get(event.campaign_id)
        if runner is not None and event.status == CampaignStatus.PAUSED:
            runner.pause()
        elif runner is not None and event.status == CampaignStatus.ACTIVE:
            runner.resume()
        self._poke.set()

    def _acd_disposition(self, event: Any) -> None:
        asyncio.get_running_loop().create_task(self._dispose_from_acd(event.call_id, event.agent_id, event.code))

    async def _dispose_from_acd(self, call_id: str, agent_id: str, code: str) -> None:
        try:
            await store.apply_disposition(self.sm, code=code, call_id=call_id, agent_id=agent_id, now=self.clock())
        except store.RunnerStoreError as exc:
            log.info("runner.acd_disposition_ignored", call_id=call_id, code=code, why=str(exc))

    async def _watch(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poke.wait(), self.timers.status_poll_s)
            self._poke.clear()
            try:
                await self._sync()
            except Exception:
                log.exception("runner_service.sync_failed")

    def route_for(self, row: store.CampaignRow) -> TrunkRoute:
        """The trunk the campaign's ``trunk`` setting names; :class:`RunnerConfigError` if none."""
        name = row.settings.trunk
        route = self.trunks.get(name)
        if route is not None:
            return route
        known = ", ".join(repr(n) for n in self.trunks)
        if len(self.trunks) == 1:
            raise RunnerConfigError(
                f"campaign {row.name!r} sets trunk = {name!r}, but this installation has one trunk, {known} "
                f"(the [trunk] section); set the campaign's trunk to {known}"
            )
        raise RunnerConfigError(
            f"campaign {row.name!r} sets trunk = {name!r}, which is not configured; the trunks are {known}"
        )

    async def _start_runner(self, row: store.CampaignRow) -> None:
        refused = self.refused.get(row.id)
        if refused is not None and refused[0] == row.updated_at:
            return  # already told; wait for the settings to change
        try:
            route = self.route_for(row)
            check_dialable(row.name, row.settings)
        except RunnerConfigError as exc:
            self.refused[row.id] = (row.updated_at, str(exc))
            log.error("runner.campaign_not_started", campaign=row.name, campaign_id=row.id, why=str(exc))
            return
        options = dict(self.runner_options)
        if route.from_host is not None:
            options["from_host"] = route.from_host
        runner = CampaignRunner(
            row.id,
            sessionmaker=self.sm,
            ua=self.ua,
            agents=self.pool_for(row),
            trunk_uri=route.uri,
            bus=self.bus,
            node=self.node,
            clock=self.clock,
            trunk=route.lines,
            timers=self.timers,
            **options,
        )
        try:
            await runner.start()
        except RunnerConfigError as exc:
            self.refused[row.id] = (row.updated_at, str(exc))
            log.error("runner.campaign_not_started", campaign=row.name, campaign_id=row.id, why=str(exc))
            return
        self.refused.pop(row.id, None)
        self.runners[row.id] = runner

    async def _sync(self) -> None:
        rows = {r.id: r for r in await store.campaign_rows(self.sm)}
        for cid, row in rows.items():
            if cid not in self.runners and row.status == CampaignStatus.ACTIVE:
                await self._start_runner(row)
        for cid in [c for c in self.runners if c not in rows]:  # archived or deleted
            runner = self.runners.pop(cid)
            await runner.stop()

    async def stop(self) -> None:
        for remove in self._removers:
            remove()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await asyncio.gather(*(r.stop() for r in self.runners.values()), return_exceptions=True)
        self.runners.clear()

    # -- preview mode, for the agents' web page -----------------------------------------------------
    async def preview_next(self, agent_id: str) -> tuple[CampaignRunner, ClaimedLead] | None:
        """The lead ``agent_id`` previews next: the one they already hold, else the next due lead of
        an active preview-mode campaign (held for them until they dial or skip it)."""
        for runner in self.runners.values():
            held = runner.previews.get(agent_id)
            if held is not None:
                return runner, held.lead
        for runner in list(self.runners.values()):
            if runner.settings.pacing.mode != "preview" or runner.status != CampaignStatus.ACTIVE:
                continue
            lead = await runner.preview_next(agent_id)
            if lead is not None:
                return runner, lead
        return None

    def _previewing(self, agent_id: str, lead_id: int) -> CampaignRunner:
        for runner in self.runners.values():
            held = runner.previews.get(agent_id)
            if held is not None and held.lead.lead_id == lead_id:
                return runner
        raise store.RunnerStoreError(
            f"lead {lead_id} is not being previewed by agent {agent_id}; open the next preview first"
        )

    async def preview_dial(self, agent_id: str, lead_id: int) -> str:
        """Dial the lead the agent previews; the answer goes to them. Returns the call id."""
        return await self._previewing(agent_id, lead_id).preview_dial(agent_id, lead_id)

    async def preview_skip(self, agent_id: str, lead_id: int) -> datetime:
        """Skip the previewed lead for now (see :meth:`CampaignRunner.preview_skip`)."""
        return await self._previewing(agent_id, lead_id).preview_skip(agent_id, lead_id)

    def runner_for_lead_campaign(self, campaign_id: int) -> CampaignRunner:
        runner = self.runners.get(campaign_id)
        if runner is None:
            raise store.RunnerStoreError(f"campaign {campaign_id} is not running on this node; resume it first")
        return runner

    async def set_disposition(
        self,
        code: str,
        note: str | None = None,
        *,
        call_id: str | None = None,
        attempt_id: int | None = None,
        agent_id: str | None = None,
    ) -> store.DispositionResult:
        return await store.apply_disposition(
            self.sm, code=code, note=note, call_id=call_id, attempt_id=attempt_id, agent_id=agent_id, now=self.clock()
        )
