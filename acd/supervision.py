"""The ACD's side of live supervision: who may supervise, which call an extension is on, and the log.

:class:`SupervisionManager` turns a supervisor's request into a running
:class:`telephony.aio.supervision.Supervision` on the right customer <-> agent call. Requests
come two ways: the supervisor's softphone dials a feature code and the agent's extension
(``*22<ext>`` listen, ``*23<ext>`` whisper, ``*24<ext>`` barge), or the console asks
(:meth:`SupervisionManager.supervise`) and the manager rings the supervisor's registered
softphone (RFC 3261 §8.1 INVITE to the registrar's binding) and starts the session when it is
answered. Only configured supervisor accounts may do either: a phone is identified by the
digest user its INVITE authenticated as (RFC 7616 §3.4); a call from a trusted source carries
no such proof and is refused unless ``trusted_calls="registered_source"`` (then the INVITE
must come from the very address and port the supervisor's authenticated REGISTER came
from). Every session's start, mode changes and end go on the event bus (the events carry
their MQTT topics) and to the queue_log table as extension verbs:

=========  ==================================================================
SPYSTART   data1 supervisor, data2 mode, data3 origin (phone|console), data4 supervisor's call id
SPYMODE    data1 supervisor, data2 mode, data3 previous mode, data4 by (dtmf|api)
SPYEND     data1 supervisor, data2 last mode, data3 duration (s), data4 reason
=========  ==================================================================

The row's call id is the customer's call, its agent the supervised agent and its queue the
call's queue (``NONE`` for a call that came through none). At most one supervisor joins a
call (the mixer has three seats) and a supervisor supervises one call at a time. When the
ACD ends or unbridges the call, :meth:`SupervisionManager.call_unbridged` stops the mixing
before the legs are reused, and the supervisor's call is hung up.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal, Protocol

import structlog
from pydantic import BaseModel, ConfigDict, Field

from acd._errors import AcdError
from acd.queue_log import NO_QUEUE, VERBS
from acd.storage import LogLine
from infra.bus import EventBus
from telephony.aio.supervision import (
    DEFAULT_FEATURE_CODES,
    DEFAULT_KEYS,
    Supervision,
    SupervisionEnded,
    SupervisionError,
    SupervisionEvent,
    SupervisionMode,
    SupervisionModeChanged,
    SupervisionStarted,
    parse_feature_code,
)
from telephony.aio.ua import Call, UserAgent
from telephony.media.bridge import Bridge
from telephony.media.player import tone
from telephony.sip.dialog import CallOutcome
from telephony.sip.uri import SipSyntaxError, SipURI

__all__ = [
    "SPY_VERBS",
    "ActiveSupervision",
    "SupervisedTarget",
    "SupervisionHost",
    "SupervisionManager",
    "SupervisionRefused",
    "SupervisorSettings",
    "TrustedCalls",
]

log = structlog.get_logger(__name__)

#: queue_log verbs of supervision (extensions: Asterisk logs ChanSpy nowhere) -> data fields.
SPY_VERBS: Final[Mapping[str, tuple[str, ...]]] = {verb: VERBS[verb][0] for verb in ("SPYSTART", "SPYMODE", "SPYEND")}

TrustedCalls = Literal["refuse", "registered_source"]
Origin = Literal["phone", "console"]
RefusalKind = Literal["not_supervisor", "not_on_call", "busy", "not_registered"]


class SupervisorSettings(BaseModel):
    """One supervisor account. ``password`` is hashed to HA1 at start and never stored.

    The console maps its users to these accounts by name: a console user supervises with the
    account whose ``id`` (or SIP username) equals the console username.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    name: str = ""
    sip_username: str | None = None
    password: str | None = Field(default=None, repr=False)

    @property
    def username(self) -> str:
        return self.sip_username or self.id


class SupervisionRefused(AcdError):
    """A supervision request that was turned down; ``kind`` says why, the message what to do.

    ``kind``: ``not_supervisor`` (not a supervisor account: SIP 403), ``not_on_call`` (the
    agent has no bridged customer: 480), ``busy`` (the call or the supervisor is already in
    a session: 486), ``not_registered`` (the console cannot ring a softphone that is not
    registered).
    """

    def __init__(self, message: str, *, kind: RefusalKind) -> None:
        super().__init__(message)
        self.kind: RefusalKind = kind


@dataclass(frozen=True, slots=True)
class SupervisedTarget:
    """An agent's bridged customer call, as the ACD service reports it."""

    agent_id: str
    call_id: str
    queue: str | None
    customer: Call
    agent_leg: Call
    bridge: Bridge | None


class SupervisionHost(Protocol):
    """What the manager asks of the ACD service."""

    def agent_for_extension(self, extension: str) -> str | None:
        """The agent id dialled as ``extension``, or None."""

    def extension_of(self, agent_id: str) -> str:
        """What to dial to reach the agent (its extension, else its id)."""

    def supervised_call(self, agent_id: str) -> SupervisedTarget | None:
        """The agent's bridged customer call, or None; raises UnknownAgentError for unknown ids."""


@dataclass(eq=False)
class ActiveSupervision:
    """One running session (read-only for callers)."""

    supervisor: SupervisorSettings
    target: SupervisedTarget
    leg: Call
    origin: Origin
    started_at: datetime
    session: _Session | None = None

    @property
    def mode(self) -> SupervisionMode | None:
        return self.session.mode if self.session is not None else None


@dataclass(eq=False)
class _Ringing:
    supervisor: SupervisorSettings
    agent_id: str
    mode: SupervisionMode
    leg: Call | None = None
    task: asyncio.Task[Any] | None = field(default=None, repr=False)


class _Session(Supervision):
    def end_with_call(self) -> None:
        """The ACD ended or unbridged the call: stop mixing now, before it reuses the legs."""
        self._end("call_ended")


class SupervisionManager:
    """Supervision sessions of one ACD service. See the module docstring.

    ``spawn`` runs a coroutine as a task the service tracks and cancels on stop; ``log_line``
    queues one queue_log row. ``codes`` maps feature-code prefixes to modes, ``keys`` the
    supervisor's DTMF keys to a mode or ``leave``.
    """

    def __init__(
        self,
        supervisors: Sequence[SupervisorSettings],
        *,
        ua: UserAgent,
        bus: EventBus,
        host: SupervisionHost,
        spawn: Callable[[Coroutine[Any, Any, Any], str], asyncio.Task[Any]],
        log_line: Callable[[LogLine], None],
        codes: Mapping[str, str] = DEFAULT_FEATURE_CODES,
        keys: Mapping[str, str] = DEFAULT_KEYS,
        trusted_calls: TrustedCalls = "refuse",
        ring_timeout_s: float = 30.0,
    ) -> None:
        self.ua = ua
        self.bus = bus
        self.host = host
        self.codes = dict(codes)
        self.keys = dict(keys)
        self.trusted_calls: TrustedCalls = trusted_calls
        self.ring_timeout_s = ring_timeout_s
        self._spawn = spawn
        self._log_line = log_line
        self._by_id = {s.id: s for s in supervisors}
        self._by_username = {s.username: s for s in supervisors}
        self._by_call: dict[str, ActiveSupervision] = {}  # customer call id -> session
        self._by_supervisor: dict[str, ActiveSupervision] = {}
        self._ringing: dict[str, _Ringing] = {}  # supervisor id -> console ring in progress
        self._prefix = {SupervisionMode(mode): prefix for prefix, mode in sorted(self.codes.items(), reverse=True)}
        self._error_tone = tone(300.0, 0.4, 0.3)
        self._stopping = False

    # -- look-ups ------------------------------------------------------------------------------

    def feature_code(self, dialled: str) -> tuple[SupervisionMode, str] | None:
        """``(mode, extension)`` when ``dialled`` is a supervision feature code, else None."""
        return parse_feature_code(dialled, self.codes)

    def supervisor(self, name: str) -> SupervisorSettings | None:
        """The supervisor account with this id or SIP username."""
        return self._by_id.get(name) or self._by_username.get(name)

    @property
    def supervisors(self) -> list[SupervisorSettings]:
        return list(self._by_id.values())

    @property
    def sessions(self) -> list[ActiveSupervision]:
        return list(self._by_call.values())

    def session_of(self, supervisor_id: str) -> ActiveSupervision | None:
        return self._by_supervisor.get(supervisor_id)

    def identify(self, call: Call) -> SupervisorSettings | None:
        """The supervisor account that placed ``call``, or None when it is not provably one."""
        if call.auth_user:
            return self._by_username.get(call.auth_user)
        if self.trusted_calls != "registered_source" or call.source is None or self.ua.registrar is None:
            return None
        try:
            user = SipURI.parse(call.remote).user or ""
        except (SipSyntaxError, ValueError):
            return None
        supervisor = self._by_username.get(user)
        if supervisor is None:
            return None
        aor = f"sip:{supervisor.username}@{self.ua.config.realm}"
        source = (call.source.host, call.source.port)
        if any(tuple(b.source) == source for b in self.ua.registrar.lookup(aor, time.time())):
            return supervisor
        return None

    # -- from the supervisor's phone ------------------------------------------------------------

    async def feature_call(self, call: Call, mode: SupervisionMode, extension: str) -> None:
        """Handle an INVITE to a feature code: answer and supervise, or refuse with a clear status."""
        supervisor = self.identify(call)
        if supervisor is None:
            log.warning(
                "acd.supervision_refused",
                call_id=call.id,
                caller=call.remote,
                auth_user=call.auth_user,
                source=f"{call.source.host}:{call.source.port}" if call.source else None,
                why="not a supervisor account",
            )
            await call.reject(403, "Forbidden (only supervisor accounts may supervise)")
            return
        agent_id = self.host.agent_for_extension(extension)
        if agent_id is None:
            log.info("acd.supervision_refused", supervisor=supervisor.id, extension=extension, why="unknown extension")
            await call.reject(404, f"Not Found (no agent has extension {extension})")
            return
        try:
            self._check(supervisor, agent_id)
        except SupervisionRefused as exc:
            log.info("acd.supervision_refused", supervisor=supervisor.id, agent_id=agent_id, why=str(exc))
            status = 480 if exc.kind == "not_on_call" else 486
            phrase = "Temporarily Unavailable" if status == 480 else "Busy Here"
            await call.reject(status, f"{phrase} ({exc})")
            return
        try:
            await call.answer()
        except RuntimeError as exc:  # cancelled while answering, or no common codec (488 sent)
            log.info("acd.supervision_not_answered", supervisor=supervisor.id, call_id=call.id, error=str(exc))
            return
        await self._join(supervisor, call, agent_id, mode, "phone")

    # -- from the console ---------------------------------------------------------------------------

    async def supervise(
        self, supervisor_id: str, agent_id: str, mode: SupervisionMode | str
    ) -> Literal["ringing", "switched"]:
        """Ring the supervisor's softphone into ``agent_id``'s call in ``mode``; switch mode instead
        when this supervisor already supervises that agent. Raises :class:`SupervisionRefused`."""
        try:
            wanted = SupervisionMode(str(mode))
        except ValueError:
            raise SupervisionError(f"supervision mode {mode!r} is not one of listen, whisper, barge") from None
        supervisor = self.supervisor(supervisor_id)
        if supervisor is None:
            raise SupervisionRefused(
                f"{supervisor_id!r} has no supervisor account; add it under [acd.options.supervisors] "
                f"with id = {supervisor_id!r} and a SIP password, and register its softphone",
                kind="not_supervisor",
            )
        current = self._by_supervisor.get(supervisor.id)
        if current is not None and current.target.agent_id == agent_id and current.session is not None:
            current.session.set_mode(wanted, by="api")
            return "switched"
        ringing = self._ringing.get(supervisor.id)
        if ringing is not None:
            if ringing.agent_id != agent_id:
                raise SupervisionRefused(
                    f"your softphone is already ringing to supervise agent {ringing.agent_id}; "
                    "answer or reject it first",
                    kind="busy",
                )
            ringing.mode = wanted  # asked again while ringing: the newest mode applies on answer
            return "ringing"
        self._check(supervisor, agent_id)
        if not self.ua.registered(supervisor.username):
            raise SupervisionRefused(
                f"the softphone of supervisor {supervisor.id} is not registered; register it as "
                f"{supervisor.username} (realm {self.ua.config.realm}) and try again",
                kind="not_registered",
            )
        ringing = _Ringing(supervisor, agent_id, wanted)
        self._ringing[supervisor.id] = ringing
        ringing.task = self._spawn(self._ring(ringing), "acd-supervision-ring")
        log.info("acd.supervision_ringing", supervisor=supervisor.id, agent_id=agent_id, mode=wanted.value)
        return "ringing"

    async def _ring(self, ringing: _Ringing) -> None:
        supervisor = ringing.supervisor
        try:
            extension = self.host.extension_of(ringing.agent_id)
            try:
                leg = await self.ua.call(
                    f"sip:{supervisor.username}@{self.ua.config.realm}",
                    # Shown on the phone, and re-dialling it from the call history starts the same session.
                    from_user=f"{self._prefix.get(ringing.mode, '')}{extension}",
                    display_name=f"{ringing.mode.value} {ringing.agent_id}",
                    ring_timeout=self.ring_timeout_s,
                )
            except (OSError, ValueError, SipSyntaxError) as exc:
                log.warning("acd.supervision_ring_failed", supervisor=supervisor.id, error=str(exc))
                return
            ringing.leg = leg
            outcome = await leg.wait_answered()
            if outcome.outcome is not CallOutcome.ANSWERED:
                log.info(
                    "acd.supervision_not_answered",
                    supervisor=supervisor.id,
                    agent_id=ringing.agent_id,
                    outcome=outcome.outcome.value,
                )
                return
            if self._ringing.get(supervisor.id) is ringing:
                del self._ringing[supervisor.id]
            await self._join(supervisor, leg, ringing.agent_id, ringing.mode, "console")
        finally:
            if self._ringing.get(supervisor.id) is ringing:
                del self._ringing[supervisor.id]

    # -- sessions ------------------------------------------------------------------------------

    def _check(self, supervisor: SupervisorSettings, agent_id: str) -> SupervisedTarget:
        target = self.host.supervised_call(agent_id)
        if target is None:
            raise SupervisionRefused(f"agent {agent_id} is not on a call", kind="not_on_call")
        mine = self._by_supervisor.get(supervisor.id)
        if mine is not None:
            raise SupervisionRefused(
                f"supervisor {supervisor.id} is already supervising agent {mine.target.agent_id}; press # there first",
                kind="busy",
            )
        other = self._by_call.get(target.call_id)
        if other is not None:
            raise SupervisionRefused(
                f"agent {agent_id}'s call is already supervised by {other.supervisor.id}", kind="busy"
            )
        return target

    async def _join(
        self, supervisor: SupervisorSettings, leg: Call, agent_id: str, mode: SupervisionMode, origin: Origin
    ) -> None:
        """Start the session on the answered ``leg``; the call may have ended while it rang."""
        if self._stopping:
            await leg.hangup("shutdown")
            return
        try:
            target = self._check(supervisor, agent_id)
        except SupervisionRefused as exc:
            log.info("acd.supervision_refused", supervisor=supervisor.id, agent_id=agent_id, why=str(exc))
            await self._refuse_answered(leg)
            return
        active = ActiveSupervision(supervisor, target, leg, origin, datetime.now(UTC))
        session = _Session(
            target.customer,
            target.agent_leg,
            leg,
            mode,
            bridge=target.bridge,
            keys=self.keys,
            on_event=lambda event: self._record(active, event),
            supervisor_id=supervisor.id,
            agent_id=agent_id,
            call_id=target.call_id,
        )
        active.session = session
        # Registered before start(): start() publishes SupervisionStarted, whose row needs the session.
        self._by_call[target.call_id] = active
        self._by_supervisor[supervisor.id] = active
        try:
            await session.start()
        except SupervisionError as exc:
            self._forget(active)
            log.warning("acd.supervision_failed", supervisor=supervisor.id, agent_id=agent_id, error=str(exc))
            await self._refuse_answered(leg)

    async def _refuse_answered(self, leg: Call) -> None:
        """A low tone, then hang up: the phone was answered but there is nothing to supervise."""
        if not leg.ended and leg.media is not None and not leg.media.closed:
            try:
                await leg.play(self._error_tone)
            except RuntimeError as exc:  # the leg closed while playing
                log.debug("acd.supervision_tone_skipped", call_id=leg.id, error=str(exc))
        await leg.hangup()

    def _record(self, active: ActiveSupervision, event: SupervisionEvent) -> None:
        self.bus.publish(event)
        target = active.target
        data: tuple[str, ...]
        if isinstance(event, SupervisionStarted):
            verb, data = "SPYSTART", (event.supervisor, event.mode.value, active.origin, active.leg.id)
        elif isinstance(event, SupervisionModeChanged):
            verb, data = "SPYMODE", (event.supervisor, event.mode.value, event.previous.value, event.by)
        else:
            verb = "SPYEND"
            data = (event.supervisor, event.mode.value, str(round(event.duration)), event.reason)
            self._forget(active)
        self._log_line(
            LogLine(datetime.now(UTC), target.call_id, target.queue or NO_QUEUE, target.agent_id, verb, data)
        )

    def _forget(self, active: ActiveSupervision) -> None:
        if self._by_call.get(active.target.call_id) is active:
            del self._by_call[active.target.call_id]
        if self._by_supervisor.get(active.supervisor.id) is active:
            del self._by_supervisor[active.supervisor.id]

    # -- the ACD's hooks -------------------------------------------------------------------------

    def call_unbridged(self, call_id: str) -> None:
        """The ACD is about to unbridge (or has ended) ``call_id``: end its session first."""
        active = self._by_call.get(call_id)
        if active is not None and active.session is not None:
            active.session.end_with_call()

    async def stop(self) -> None:
        """End every session and stop ringing supervisors (the service is stopping)."""
        self._stopping = True
        for ringing in list(self._ringing.values()):
            if ringing.leg is not None and not ringing.leg.ended:
                await ringing.leg.hangup("shutdown")
        ended: list[SupervisionEnded | None] = []
        for active in list(self._by_call.values()):
            if active.session is not None:
                ended.append(await active.session.stop())
        if ended:
            log.info("acd.supervision_stopped", sessions=len(ended))
