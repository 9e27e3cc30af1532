"""The live ACD: drives the pure core (:class:`acd.Acd`) with real SIP calls, media bridges and IVR.

:class:`AcdService` owns the SIP legs of the ACD. Inbound INVITEs to a DID (from the trunk, a
trusted source, RFC 3261 §22 challenges only for the others) are answered, run through an IVR
menu (``ivr.run_menu``), queued with hold music and position/EWT announcements, and bridged
(``telephony.media.bridge.Bridge``, an RTP translator per RFC 3550 §7.2) to the agent the core
picks. Agents register with digest auth (RFC 7616) on our registrar; ``ring`` agents get a new
INVITE per offer, ``nailed`` agents dial the login code once and customers are bridged into that
leg after a short beep. Agents key DTMF codes (RFC 4733 events, ``acd.codes``) on the phone.

Theory of operation: the service never decides anything. Every SIP happening becomes one input
of the core with ``now = loop.time()``; the core's outputs are applied in order from one queue
(an action that causes another input appends to the same queue, so events keep one global
order). Exactly one loop timer is armed, at ``acd.next_deadline()``. Every agent state has an
exit: the core's timers, or the end of the agent's SIP dialog, which the UA ends itself on the
RTP media timeout, so a lost BYE cannot leave an agent on a call. Events go to the EventBus
(MQTT) and, through a batched writer, to the queue_log table; neither ever blocks a call.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import heapq
import random
import re
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from acd._config import (
    AcdConfig,
    AgentConfig,
    ConnectionMode,
    Destination,
    EscalationStep,
    JoinRule,
    LeaveRule,
    MaxPauseAction,
    QueueConfig,
    Strategy,
)
from acd._engine import Acd, AgentInfo, CallInfo
from acd._errors import AcdError, AcdStateError, UnknownAgentError, UnknownQueueError
from acd._events import (
    AcdEvent,
    AcdOutput,
    AgentStateChanged,
    BridgeCall,
    CallbackAtRisk,
    CallbackFinished,
    CallbackRequested,
    CallCompleted,
    CallConnected,
    CallQueued,
    ConfirmCallback,
    DialCallback,
    OfferCall,
    PlayAnnouncement,
    ReleaseAgentLeg,
    SendToVoicemail,
    WithdrawOffer,
)
from acd._state import AgentState
from acd.codes import (
    LOGIN_CODE,
    CodeParser,
    Disposition,
    HangupCustomer,
    InvalidCode,
    Logout,
    Pause,
    Ready,
    RecordingToggle,
    ScheduleCallback,
    StartRecording,
)
from acd.metrics import AgentStats, QueueStats
from acd.queue_log import NO_QUEUE, queue_log_record
from acd.storage import (
    CallerInfo,
    CallerLookup,
    LogLine,
    QueueLogWriter,
    SqlCallerLookup,
    StoredAgent,
    insert_callback,
    load_agents,
    load_open_callbacks,
    store_agents,
    update_callback,
)
from acd.supervision import (
    SupervisedTarget,
    SupervisionManager,
    SupervisionRefused,
    SupervisorSettings,
    TrustedCalls,
)
from infra.bus import EventBus
from infra.logging import in_log_context
from ivr.announce import AnnouncementPolicy, play_hold
from ivr.menu import CallerHungUp, HangUp, MenuSet, RequestCallback, RouteToQueue, RouteToVoicemail, run_menu
from ivr.prompts import PromptError
from ivr.steps import PromptSource, digit_reader
from ivr.survey import run_survey
from telephony.aio.supervision import DEFAULT_FEATURE_CODES, DEFAULT_KEYS, LEAVE, SupervisionMode
from telephony.aio.ua import Call, UserAgent
from telephony.media.bridge import Bridge
from telephony.media.player import tone
from telephony.sip.auth import DigestServer, InMemoryCredentials, ha1
from telephony.sip.dialog import CallOutcome
from telephony.sip.uri import Address, SipSyntaxError, SipURI, Via

__all__ = [
    "AcdService",
    "AcdServiceConfig",
    "AgentCodeRejected",
    "AgentSettings",
    "AgentStatus",
    "CallbackScheduled",
    "Connected",
    "CustomerHeld",
    "DispositionSet",
    "HoldSettings",
    "NoAgent",
    "QueueSettings",
    "QueueStatus",
    "RecordingAction",
    "RecordingControl",
    "SupervisionRefused",
    "SupervisorSettings",
    "SurveyAnswered",
    "SurveySettings",
    "SurveyStarted",
    "VoicemailRecorded",
    "tune_gc_for_calls",
]

log = structlog.get_logger(__name__)

_HA1_ALGORITHMS = ("MD5", "SHA-256", "SHA-512-256")
_USERNAME_RE = re.compile(r'username\s*=\s*"([^"]*)"', re.IGNORECASE)
_SAFE_RE = re.compile(r"[^A-Za-z0-9._-]+")


# == configuration ================================================================================


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _destination(value: str, where: str) -> Destination:
    kind, _, target = value.partition(":")
    if kind == "queue" and target:
        return Destination("queue", target)
    if kind in ("voicemail", "callback") and not target:
        return Destination(kind)  # type: ignore[arg-type]
    raise ValueError(f"{where} = {value!r}: use 'voicemail', 'callback' or 'queue:<queue id>'")


class HoldSettings(_Model):
    """What a waiting caller hears: music and, every ``interval_s``, position and estimated wait."""

    enabled: bool = True
    music: str = "hold_music"
    intro: str | None = None
    first_after_s: float = Field(default=15.0, ge=0)
    interval_s: float = Field(default=30.0, gt=0)
    position: bool = True
    ewt: bool = True

    def policy(self) -> AnnouncementPolicy:
        return AnnouncementPolicy(
            first_after=self.first_after_s,
            interval=self.interval_s,
            position=self.position,
            ewt=self.ewt,
            intro=self.intro,
            music=self.music,
        )


class SurveySettings(_Model):
    """The post-call satisfaction survey (``ivr.survey``): asked to the customer after the AGENT
    hangs up ("press 1 satisfied, 2 average, 3 unsatisfied"), never when the customer hangs up.
    ``prompt``/``thanks``/``invalid`` are prompt names; the answer goes to the service's
    ``on_survey`` hook (recordings stores it) and the bus as :class:`SurveyAnswered`."""

    enabled: bool = False
    prompt: str = Field(default="survey_question", min_length=1)
    thanks: str = Field(default="survey_thanks", min_length=1)
    invalid: str = Field(default="invalid", min_length=1)
    attempts: int = Field(default=3, ge=1, le=5)
    timeout_s: float = Field(default=5.0, gt=0, le=60)


class QueueSettings(_Model):
    """One queue as written in the config; :meth:`core` gives the pure core's :class:`QueueConfig`.

    Destinations are ``voicemail``, ``callback`` or ``queue:<id>``; ``escalation`` lists
    ``[after_s, min_level]`` steps, e.g. ``[[0, 7], [30, 4], [60, 1]]``.
    """

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    skill: str | None = None
    strategy: Strategy = Strategy.LONGEST_IDLE
    escalation: list[tuple[float, int]] = Field(default_factory=lambda: [(0.0, 1)])
    weight: float = 1.0
    vip_credit_s: float = 60.0
    priority_credit_s: float = 30.0
    ring_timeout_s: float = 15.0
    nailed_confirm_s: float = 5.0
    retry_s: float = 5.0
    wrapup_s: float = 10.0
    sticky_wait_s: float = 20.0
    max_wait_s: float | None = None
    max_wait_destination: str = "voicemail"
    max_len: int | None = None
    full_destination: str = "voicemail"
    join_rule: JoinRule = JoinRule.JOIN
    leave_rule: LeaveRule = LeaveRule.STAY
    empty_destination: str = "voicemail"
    exit_keys: dict[str, str] = Field(default_factory=dict)
    agent_order: list[str] = Field(default_factory=list)
    service_level_s: float = 20.0
    service_level_target: float = 0.8
    callback_sla_s: float = 12 * 3600.0
    callback_risk_fraction: float = 0.8
    default_aht_s: float = 180.0
    hold: HoldSettings = Field(default_factory=HoldSettings)
    survey: SurveySettings = Field(default_factory=SurveySettings)

    def core(self) -> QueueConfig:
        where = f"queue {self.id!r}"
        return QueueConfig(
            id=self.id,
            skill=self.skill,
            strategy=self.strategy,
            escalation=EscalationStep.steps(*self.escalation),
            weight=self.weight,
            vip_credit_s=self.vip_credit_s,
            priority_credit_s=self.priority_credit_s,
            ring_timeout_s=self.ring_timeout_s,
            nailed_confirm_s=self.nailed_confirm_s,
            retry_s=self.retry_s,
            wrapup_s=self.wrapup_s,
            sticky_wait_s=self.sticky_wait_s,
            max_wait_s=self.max_wait_s,
            max_wait_destination=_destination(self.max_wait_destination, f"{where} max_wait_destination"),
            max_len=self.max_len,
            full_destination=_destination(self.full_destination, f"{where} full_destination"),
            join_rule=self.join_rule,
            leave_rule=self.leave_rule,
            empty_destination=_destination(self.empty_destination, f"{where} empty_destination"),
            # Hold audio (ivr.announce) times the announcements; the core's own stay off.
            announce_first_s=None,
            announce_every_s=None,
            exit_keys={k: _destination(v, f"{where} exit_keys[{k!r}]") for k, v in self.exit_keys.items()},
            agent_order=tuple(self.agent_order),
            service_level_s=self.service_level_s,
            service_level_target=self.service_level_target,
            callback_sla_s=self.callback_sla_s,
            callback_risk_fraction=self.callback_risk_fraction,
            default_aht_s=self.default_aht_s,
        )


class AgentSettings(_Model):
    """One agent. ``password`` is hashed to HA1 at load time and never stored; agents may also come
    from the database (``agents`` table, HA1 only)."""

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    name: str = ""
    extension: str | None = None
    sip_username: str | None = None
    password: str | None = Field(default=None, repr=False)
    mode: ConnectionMode = ConnectionMode.RING
    skills: dict[str, int] = Field(default_factory=dict)
    queues: dict[str, int] = Field(default_factory=dict)
    max_pause_s: float | None = None
    max_pause_action: MaxPauseAction = MaxPauseAction.LOGOUT

    @property
    def username(self) -> str:
        return self.sip_username or self.id

    def core(self) -> AgentConfig:
        return AgentConfig(
            id=self.id,
            mode=self.mode,
            skills=self.skills,
            queues=self.queues,
            max_pause_s=self.max_pause_s,
            max_pause_action=self.max_pause_action,
        )


_FULL_GC_EVERY = 100  # middle-generation collections per full one (CPython's default: 10)


def tune_gc_for_calls() -> None:
    """Tune the collector for a latency-bound call loop (see ``AcdServiceConfig.tune_gc``).

    Everything allocated so far goes to the permanent generation, and full collections run
    ``_FULL_GC_EVERY`` middle-generation passes apart instead of 10.
    """
    gc.collect()
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, _FULL_GC_EVERY)


class AcdServiceConfig(_Model):
    """Everything the live ACD needs besides the UA, the bus and the database.

    ``dids`` maps a dialled number (the Request-URI user) to ``menu:<name>`` or ``queue:<id>``.
    ``callback_uri`` is where callbacks are dialled, ``{number}`` being the customer's number
    (normally the trunk, e.g. ``sip:{number}@carrier.example``).

    ``supervisors`` are the accounts that may listen, whisper and barge (``acd.supervision``):
    they register like agents and dial ``supervision_codes`` (prefix -> mode, default ``*22``
    listen, ``*23`` whisper, ``*24`` barge) followed by an agent's extension; in the session
    ``supervision_keys`` switch mode (default 1/2/3, # or * to leave). A console user
    supervises with the supervisor account whose id equals its username.
    ``trusted_supervisor_calls``: a feature-code INVITE from a trusted source is not digest
    challenged, so nothing proves who sent it; ``refuse`` (the default) answers 403,
    ``registered_source`` accepts it when it comes from the address and port of the
    supervisor's authenticated registration (only where trusted hosts carry no untrusted
    callers, such as single-host test set-ups).
    """

    queues: list[QueueSettings]
    agents: list[AgentSettings] = Field(default_factory=list)
    dids: dict[str, str] = Field(default_factory=dict)
    menus: MenuSet | None = None
    login_code: str = LOGIN_CODE
    trusted_sources: list[str] = Field(default_factory=list)
    callback_uri: str = "sip:{number}@127.0.0.1"
    callback_ring_timeout_s: float = Field(default=30.0, gt=0)
    max_no_answer: int = Field(default=3, ge=0)
    sticky_days: float = Field(default=7.0, ge=0)
    effective_talk_s: float = Field(default=10.0, ge=0)
    timezone: str = "UTC"
    voicemail_dir: Path = Path("var/voicemail")
    voicemail_max_s: float = Field(default=120.0, gt=0)
    effective_dispositions: list[str] = Field(default_factory=list)
    beep_hz: float = 880.0
    beep_s: float = Field(default=0.15, gt=0, le=1.0)
    code_timeout_s: float = Field(default=5.0, gt=0)
    queue_log_flush_s: float = Field(default=0.2, gt=0)
    # The caller look-up (contact, VIP flag, last effective agent) runs beside the call and
    # never holds routing: a call is queued at once, and a look-up that returns later gives a
    # caller still waiting in line its VIP credit and sticky reservation. Routing waits for it
    # only when it could change which FREE agent is offered the call (a sticky customer while
    # agents are ready), and then for at most ``routing_lookup_wait_s``. ``lookup_timeout_s``
    # is when a look-up is given up (logged as acd.caller_lookup_slow).
    lookup_timeout_s: float = Field(default=1.0, gt=0)
    routing_lookup_wait_s: float = Field(default=0.01, ge=0)
    caller_lookup: bool = True
    # Garbage-collector tuning for a latency-bound loop, applied by start(): everything
    # allocated until then (config, SQLAlchemy models, prompts) goes to the permanent generation
    # (gc.freeze), so a full collection walks only what calls allocate, and full collections run
    # 10 times less often (gc threshold2 100, not 10). Without it a full collection stopped the
    # loop for 100-300 ms, which 2-3% of calls waited out before ringing an agent.
    tune_gc: bool = True
    stats_interval_s: float = Field(default=1.0, gt=0)
    outbound_wait_s: float = Field(default=1.5, gt=0)
    supervisors: list[SupervisorSettings] = Field(default_factory=list)
    supervision_codes: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_FEATURE_CODES))
    supervision_keys: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_KEYS))
    supervisor_ring_timeout_s: float = Field(default=30.0, gt=0)
    trusted_supervisor_calls: TrustedCalls = "refuse"
    seed: int | None = None

    @field_validator("supervision_codes")
    @classmethod
    def _codes(cls, value: dict[str, str]) -> dict[str, str]:
        for prefix, mode in value.items():
            if not prefix or any(c not in "0123456789*#" for c in prefix):
                raise ValueError(f"supervision code {prefix!r} must be dialable: digits, * and #, e.g. '*22'")
            if mode not in set(SupervisionMode):
                raise ValueError(f"supervision code {prefix!r} maps to {mode!r}; use listen, whisper or barge")
        return value

    @field_validator("supervision_keys")
    @classmethod
    def _keys(cls, value: dict[str, str]) -> dict[str, str]:
        for key, action in value.items():
            if len(key) != 1 or key not in "0123456789*#ABCD":
                raise ValueError(f"supervision key {key!r} is not a DTMF key; use one of 0-9, *, #, A-D")
            if action != LEAVE and action not in set(SupervisionMode):
                raise ValueError(f"supervision key {key!r} maps to {action!r}; use listen, whisper, barge or leave")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"timezone {value!r} is not an IANA zone such as Europe/Paris") from None
        return value

    @model_validator(mode="after")
    def _references(self) -> AcdServiceConfig:
        queues = {q.id for q in self.queues}
        if len(queues) != len(self.queues):
            raise ValueError("a queue id is defined twice; queue ids must be unique")
        agent_users = {a.username for a in self.agents}
        seen: set[str] = set()
        for sup in self.supervisors:
            if sup.id in seen or sup.username in seen:
                raise ValueError(f"supervisor {sup.id!r} is defined twice; supervisor ids and usernames must be unique")
            seen.update((sup.id, sup.username))
            if sup.username in agent_users:
                raise ValueError(
                    f"supervisor {sup.id!r} uses SIP username {sup.username!r}, which an agent has; "
                    "give the supervisor account its own username"
                )
        for did, target in self.dids.items():
            kind, _, name = target.partition(":")
            if kind == "queue" and name in queues:
                continue
            if kind == "menu" and self.menus is not None and name in self.menus.menus:
                continue
            raise ValueError(
                f"DID {did!r} -> {target!r}: use 'queue:<id>' with a configured queue ({', '.join(sorted(queues))}) "
                "or 'menu:<name>' with a menu defined under menus"
            )
        if self.menus is not None:
            for name, menu in self.menus.menus.items():
                actions = [*menu.options.values(), menu.default]
                if menu.hours is not None:
                    actions.append(menu.hours.closed_action)
                for action in actions:
                    queue = getattr(action, "queue", None)
                    if queue is not None and queue not in queues:
                        raise ValueError(f"menu {name!r} sends callers to unknown queue {queue!r}; add the queue")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> AcdServiceConfig:
        """Build from TOML-like tables: ``queues`` and ``agents`` may be tables keyed by id."""
        raw = dict(data)
        for key in ("queues", "agents", "supervisors"):
            value = raw.get(key)
            if isinstance(value, Mapping):
                raw[key] = [{"id": k, **v} for k, v in value.items()]
        return cls.model_validate(raw)


# == events with MQTT topics ======================================================================


@dataclass(frozen=True, slots=True)
class AgentStatus:
    """Current state of an agent (retained): ``dialer/<site>/agents/<id>/state``."""

    __topic__: ClassVar[str] = "agents/{agent_id}/state"
    __retain__: ClassVar[bool] = True
    agent_id: str
    state: str
    mode: str
    reason: str
    call_id: str | None
    since: datetime


@dataclass(frozen=True, slots=True)
class QueueStatus:
    """Current figures of a queue (retained): ``dialer/<site>/queues/<id>/stats``."""

    __topic__: ClassVar[str] = "queues/{queue}/stats"
    __retain__: ClassVar[bool] = True
    queue: str
    agents_ready: int
    agents_logged_in: int
    stats: QueueStats


@dataclass(frozen=True, slots=True)
class VoicemailRecorded:
    __topic__: ClassVar[str] = "calls/{call_id}/events"
    call_id: str
    queue: str
    number: str
    path: str
    seconds: float
    reason: str


@dataclass(frozen=True, slots=True)
class DispositionSet:
    __topic__: ClassVar[str] = "calls/{call_id}/events"
    call_id: str
    agent_id: str
    code: str
    effective: bool


@dataclass(frozen=True, slots=True)
class CallbackScheduled:
    __topic__: ClassVar[str] = "agents/{agent_id}/callbacks"
    callback_id: str
    agent_id: str
    queue: str
    number: str
    at: datetime


@dataclass(frozen=True, slots=True)
class CustomerHeld:
    """The agent put the customer on hold (``held``) or took them off it; ``on_hold_s`` is the
    call's hold time so far. From the agent phone's re-INVITE (RFC 3264 §8.4: sendonly, inactive
    or the c=0.0.0.0 of RFC 2543) on the agent's leg."""

    __topic__: ClassVar[str] = "calls/{call_id}/events"
    call_id: str
    agent_id: str
    held: bool
    on_hold_s: float


@dataclass(frozen=True, slots=True)
class SurveyStarted:
    """The agent hung up and the customer is asked the post-call survey."""

    __topic__: ClassVar[str] = "calls/{call_id}/events"
    call_id: str
    agent_id: str
    queue: str | None


@dataclass(frozen=True, slots=True)
class SurveyAnswered:
    """The post-call survey is over; ``answer`` 1 satisfied, 2 average, 3 unsatisfied, None (no answer)."""

    __topic__: ClassVar[str] = "calls/{call_id}/events"
    call_id: str
    agent_id: str
    queue: str | None
    campaign_id: int | None
    campaign: str | None
    answer: int | None


@dataclass(frozen=True, slots=True)
class AgentCodeRejected:
    __topic__: ClassVar[str] = "agents/{agent_id}/codes"
    agent_id: str
    keyed: str
    why: str


# == what the service asks of recordings ===========================================================

RecordingAction = Literal["start", "pause", "resume", "toggle"]


class RecordingControl(Protocol):
    """The agent's recording controls (``*7``/``*8`` and the HTTP API), carried out by recordings
    (``dialer.wiring.RecordingHookup``): the ACD only finds the agent's customer and bridge.

    Returns ``"recording"`` or ``"paused"``; raises ValueError (or RuntimeError) saying why not."""

    async def agent_recording(
        self,
        action: RecordingAction,
        call: Call,
        bridge: Bridge | None,
        *,
        agent_id: str,
        queue: str | None,
        campaign_id: int | None,
        campaign: str | None,
    ) -> str: ...


# == results for the campaign runner ==============================================================


@dataclass(frozen=True, slots=True)
class Connected:
    """The answered outbound call is bridged to ``agent_id`` after ``waited_s`` seconds."""

    call_id: str
    agent_id: str
    waited_s: float


@dataclass(frozen=True, slots=True)
class NoAgent:
    """No agent took the call; the runner plays its abandon message. ``reason``: no-agent-ready,
    timeout, caller-left or stopping."""

    call_id: str
    reason: str
    waited_s: float


# == internal records =============================================================================

_Phase = Literal["ivr", "queued", "connected", "leaving", "gone"]


@dataclass(eq=False)
class _Customer:
    call: Call
    acd_id: str
    number: str
    direction: Literal["inbound", "outbound", "callback"]
    phase: _Phase = "ivr"
    queue: str | None = None
    agent_id: str | None = None
    bridge: Bridge | None = None
    hold: asyncio.Task[None] | None = None
    keys: asyncio.Task[None] | None = None
    connected: asyncio.Future[str | None] | None = None
    info: asyncio.Task[CallerInfo] | None = None
    # The campaign's word on the survey (connect_outbound): None = the queue's setting.
    survey: bool | SurveySettings | None = None
    campaign_id: int | None = None
    campaign: str | None = None
    # The agent's holds of this customer, for AHT = talk + hold + wrap-up.
    on_hold_s: float = 0.0
    held_since: float | None = None

    def hold_total(self, now: float) -> float:
        return self.on_hold_s + (now - self.held_since if self.held_since is not None else 0.0)


@dataclass(eq=False)
class _Agent:
    spec: AgentSettings
    parser: CodeParser
    nailed: Call | None = None
    offer_call: str | None = None
    offer_leg: Call | None = None
    talk_leg: Call | None = None
    call_id: str | None = None
    last_call: str | None = None
    last_number: str | None = None
    last_queue: str | None = None

    @property
    def id(self) -> str:
        return self.spec.id


@dataclass(eq=False)
class _Callback:
    callback_id: str
    queue: str
    number: str | None
    complaint: bool = False
    owner: str | None = None


# == the service ==================================================================================


class AcdService:
    """The live ACD on one :class:`UserAgent`. See the module docstring.

    ``await start()`` loads agents (config and database), installs their credentials on the
    UA's registrar, and takes over incoming calls to the configured DIDs and the login code;
    ``await stop()`` ends every call cleanly, logs agents off and flushes the queue log.
    """

    def __init__(
        self,
        config: AcdServiceConfig,
        ua: UserAgent,
        bus: EventBus,
        sessionmaker: async_sessionmaker[AsyncSession] | None = None,
        *,
        prompts: PromptSource,
        caller_lookup: CallerLookup | None = None,
    ) -> None:
        self.config = config
        self.ua = ua
        self.bus = bus
        self.sessionmaker = sessionmaker
        self.prompts = prompts
        self._lookup: CallerLookup | None = caller_lookup
        if self._lookup is None and sessionmaker is not None and config.caller_lookup:
            self._lookup = SqlCallerLookup(
                sessionmaker, sticky_days=config.sticky_days, min_talk_s=config.effective_talk_s
            )
        self.writer = QueueLogWriter(sessionmaker, flush_interval=config.queue_log_flush_s) if sessionmaker else None
        self.acd: Acd | None = None
        self.on_bridged: Callable[[Call, Call, Bridge], None] | None = None
        # Stores a survey answer (dialer.wiring sets it to recordings' save_survey_answer); awaited
        # before the customer is hung up.
        self.on_survey: Callable[[SurveyAnswered], Awaitable[None]] | None = None
        self.recording_control: RecordingControl | None = None
        self._queues = {q.id: q for q in config.queues}
        self._members: dict[str, list[str]] = {q.id: [] for q in config.queues}
        self._agents: dict[str, _Agent] = {}
        self._by_username: dict[str, _Agent] = {}
        self._by_extension: dict[str, str] = {}
        self._customers: dict[str, _Customer] = {}
        self._numbers: dict[str, str] = {}
        self._callbacks: dict[str, _Callback] = {}
        self._recent: dict[str, tuple[str, datetime]] = {}  # number -> last effective agent, at
        self._pending: deque[AcdOutput] = deque()
        self._applying = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._scheduled: list[tuple[float, str]] = []
        self._scheduled_timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._db_jobs: asyncio.Queue[Callable[[], Coroutine[Any, Any, None]] | None] = asyncio.Queue()
        self._db_task: asyncio.Task[None] | None = None
        self._stats_task: asyncio.Task[None] | None = None
        self._stats_dirty: set[str] = set()
        self._prev_incoming: Callable[[Call], None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wall_offset = 0.0
        self._started = False
        self._stopping = False
        self._beep = tone(config.beep_hz, config.beep_s, 0.3)
        self._error_tone = tone(300.0, 0.3, 0.3)
        self.supervision = SupervisionManager(
            config.supervisors,
            ua=ua,
            bus=bus,
            host=self,
            spawn=self._spawn,
            log_line=self._log,
            codes=config.supervision_codes,
            keys=config.supervision_keys,
            trusted_calls=config.trusted_supervisor_calls,
            ring_timeout_s=config.supervisor_ring_timeout_s,
        )

    # -- life cycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            return
        self._loop = asyncio.get_running_loop()
        self._wall_offset = time.time() - self._loop.time()
        stored = await load_agents(self.sessionmaker) if self.sessionmaker is not None else []
        specs, credentials = self._merge_agents(stored)
        for spec in specs:
            agent = _Agent(spec=spec, parser=CodeParser(self.config.zone, timeout_s=self.config.code_timeout_s))
            self._agents[spec.id] = agent
            self._by_username[spec.username] = agent
            if spec.extension:
                if spec.extension in self._by_extension:
                    log.error(
                        "acd.extension_taken",
                        extension=spec.extension,
                        agents=[self._by_extension[spec.extension], spec.id],
                        fix="give each agent its own extension; supervision codes reach the first one only",
                    )
                else:
                    self._by_extension[spec.extension] = spec.id
            for qid in spec.queues:
                if qid not in self._members:
                    raise UnknownQueueError(
                        f"agent {spec.id!r} is a member of unknown queue {qid!r}; add [acd.queues.{qid}] or drop it"
                    )
                self._members[qid].append(spec.id)
        self.acd = Acd(
            (q.core() for q in self.config.queues),
            (s.core() for s in specs),
            AcdConfig(max_no_answer=self.config.max_no_answer),
            rng=random.Random(self.config.seed),
            now=self._loop.time(),
        )
        realm = self.ua.config.realm
        for sup in self.config.supervisors:
            if sup.password:
                credentials[sup.username] = {a: ha1(sup.username, realm, sup.password, a) for a in _HA1_ALGORITHMS}
            else:
                log.warning("acd.supervisor_without_password", supervisor=sup.id, fix="give it a password")
        self._install_credentials(credentials)
        if self.sessionmaker is not None:
            await store_agents(
                self.sessionmaker,
                [
                    StoredAgent(
                        id=s.id,
                        name=s.name,
                        extension=s.extension,
                        sip_username=s.username,
                        realm=self.ua.config.realm,
                        ha1=credentials.get(s.username, {}),
                        mode=s.mode.value,
                        skills=dict(s.skills),
                        queues=dict(s.queues),
                    )
                    for s in specs
                ],
                [(q.id, q.model_dump(mode="json")) for q in self.config.queues],
            )
            self._db_task = self._loop.create_task(self._db_worker(), name="acd-db")
            if self.writer is not None:
                self.writer.start()
            await self._restore_callbacks()
        self.ua.config.trusted_sources.update(self.config.trusted_sources)
        self._prev_incoming = self.ua.on_incoming
        self.ua.on_incoming = self._on_incoming
        self._stats_task = self._loop.create_task(self._stats_loop(), name="acd-stats")
        self._started = True
        for agent in self._agents.values():
            self._publish_agent(agent.id, AgentState.LOGGED_OUT, "", None)
        if self.config.tune_gc:
            tune_gc_for_calls()
        log.info("acd.started", agents=len(self._agents), queues=len(self._queues), dids=len(self.config.dids))

    async def stop(self) -> None:
        """End every call (customers first, then agent legs), log agents off, flush the queue log."""
        if not self._started or self._stopping:
            return
        self._stopping = True
        if self.ua.on_incoming == self._on_incoming:
            self.ua.on_incoming = self._prev_incoming
        await self.supervision.stop()
        customer_calls = [c.call for c in self._customers.values() if not c.call.ended]
        await self._hangup_all(customer_calls)
        agent_legs = [
            leg
            for a in self._agents.values()
            for leg in (a.offer_leg, a.talk_leg, a.nailed)
            if leg is not None and not leg.ended
        ]
        await self._hangup_all(agent_legs)
        # Let the watchers feed the core with the ends of those calls.
        for _ in range(3):
            await asyncio.sleep(0)
        watchers = [t for t in self._tasks if t.get_name().startswith("acd-watch")]
        if watchers:
            await asyncio.wait(watchers, timeout=2.0)
        assert self.acd is not None
        for agent in self._agents.values():
            if self.acd.agent_info(agent.id).state is not AgentState.LOGGED_OUT:
                self._feed(functools.partial(self._core.agent_logout, agent.id, reason="shutdown"))
        for handle in (self._timer, self._scheduled_timer):
            if handle is not None:
                handle.cancel()
        self._timer = self._scheduled_timer = None
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2.0)
        if self._stats_task is not None:
            self._stats_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._stats_task
        self._publish_stats(all_queues=True)
        if self._db_task is not None:
            self._db_jobs.put_nowait(None)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._db_task, 5.0)
        if self.writer is not None:
            await self.writer.stop()
        log.info("acd.stopped")

    async def _hangup_all(self, calls: list[Call]) -> None:
        if not calls:
            return
        results = await asyncio.gather(*(c.hangup("shutdown") for c in calls), return_exceptions=True)
        for call, result in zip(calls, results, strict=True):
            if isinstance(result, BaseException):
                log.warning("acd.shutdown_hangup_failed", call_id=call.id, error=str(result))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(c.wait_ended() for c in calls)), 3.0)

    # -- credentials -----------------------------------------------------------------------------

    def _merge_agents(self, stored: list[StoredAgent]) -> tuple[list[AgentSettings], dict[str, dict[str, str]]]:
        """Config agents win over database rows of the same id; passwords become HA1 here."""
        realm = self.ua.config.realm
        specs: list[AgentSettings] = []
        credentials: dict[str, dict[str, str]] = {}
        by_id = {s.id: s for s in stored}
        for spec in self.config.agents:
            specs.append(spec)
            if spec.password:
                credentials[spec.username] = {a: ha1(spec.username, realm, spec.password, a) for a in _HA1_ALGORITHMS}
            elif spec.id in by_id and by_id[spec.id].realm == realm:
                credentials[spec.username] = dict(by_id[spec.id].ha1)
        configured = {s.id for s in self.config.agents}
        for row in stored:
            if row.id in configured:
                continue
            queues = {q: p for q, p in row.queues.items() if q in self._queues}
            specs.append(
                AgentSettings(
                    id=row.id,
                    name=row.name,
                    extension=row.extension,
                    sip_username=row.sip_username,
                    mode=ConnectionMode(row.mode),
                    skills=row.skills,
                    queues=queues,
                )
            )
            if row.realm != realm:
                log.error(
                    "acd.agent_realm_mismatch",
                    agent_id=row.id,
                    stored_realm=row.realm,
                    realm=realm,
                    fix="set the agent's password again so its HA1 is computed for this realm",
                )
            elif row.ha1:
                credentials[row.sip_username] = dict(row.ha1)
        return specs, credentials

    def _install_credentials(self, credentials: dict[str, dict[str, str]]) -> None:
        cfg = self.ua.config
        if self.ua.auth is None:
            self.ua.auth = DigestServer(
                cfg.realm,
                InMemoryCredentials(cfg.realm),
                secret=cfg.auth_secret,
                algorithms=cfg.auth_algorithms,
                allow_rfc2069=cfg.allow_rfc2069,
            )
        store = self.ua.auth.credentials
        if not isinstance(store, InMemoryCredentials):
            log.warning("acd.credentials_store_not_in_memory", store=type(store).__name__)
            return
        for username, hashes in credentials.items():
            for algorithm, value in hashes.items():
                store.add_ha1(username, algorithm, value)
        missing = [a.id for a in self._agents.values() if a.spec.username not in credentials]
        if missing:
            log.warning("acd.agents_without_credentials", agents=missing, fix="give them a password in [acd.agents]")

    # -- the core, its outputs and its timer -----------------------------------------------------

    @property
    def _core(self) -> Acd:
        if self.acd is None:
            raise RuntimeError("the ACD service is not started; await service.start() first")
        return self.acd

    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def _utc(self, at: float) -> datetime:
        return datetime.fromtimestamp(self._wall_offset + at, UTC)

    def _feed(self, step: Callable[[float], list[AcdOutput]], *, raise_errors: bool = False) -> None:
        """Give one input to the core and apply its outputs. Errors raise for API callers only."""
        try:
            outputs = step(self._now())
        except AcdError as exc:
            if raise_errors:
                raise
            log.info("acd.input_refused", error=str(exc))
            return
        self._apply(outputs)

    def _apply(self, outputs: list[AcdOutput]) -> None:
        self._pending.extend(outputs)
        if self._applying:
            return  # an action fed the core from inside this loop: its outputs queue behind ours
        self._applying = True
        try:
            while self._pending:
                out = self._pending.popleft()
                try:
                    if isinstance(out, AcdEvent):
                        self._on_event(out)
                    else:
                        self._on_action(out)
                except (AcdError, RuntimeError, ValueError, OSError) as exc:
                    log.exception("acd.output_failed", output=type(out).__name__, error=str(exc))
        finally:
            self._applying = False
        self._rearm()

    def _rearm(self) -> None:
        if self.acd is None:
            return
        at = self.acd.next_deadline()
        if at == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = at
        if at is not None:
            assert self._loop is not None
            self._timer = self._loop.call_at(at, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self._feed(self._core.tick)

    def _spawn(
        self, coro: Coroutine[Any, Any, Any], name: str = "acd-task", **log_context: object
    ) -> asyncio.Task[Any]:
        """Run ``coro`` as a task of the service; ``log_context`` (call_id, agent_id, ...) is bound
        on every log line the task writes."""
        assert self._loop is not None
        task = self._loop.create_task(in_log_context(coro, **log_context) if log_context else coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            log.error("acd.task_failed", task=task.get_name(), error=repr(exc), exc_info=exc)

    # -- events ----------------------------------------------------------------------------------

    def _on_event(self, e: AcdEvent) -> None:
        self.bus.publish(e)
        record = queue_log_record(e)
        if record is not None:
            data = record.data
            if isinstance(e, CallQueued):
                # Asterisk's ENTERQUEUE data2 is the caller id: the number, which sticky look-ups use.
                data = (data[0], self._numbers.get(e.call_id, data[1]), *data[2:])
            self._log(LogLine(self._utc(record.time), record.call_id, record.queue, record.agent, record.verb, data))
        queue = getattr(e, "queue", None)
        if isinstance(queue, str):
            self._stats_dirty.add(queue)
        if isinstance(e, AgentStateChanged):
            self._publish_agent(e.agent_id, e.new, e.reason, e.call_id)
            for qid in self._agents[e.agent_id].spec.queues:
                self._stats_dirty.add(qid)
            if e.new is AgentState.LOGGED_OUT:
                self._agent_logged_out(self._agents[e.agent_id])
        elif isinstance(e, CallConnected):
            agent = self._agents[e.agent_id]
            agent.call_id = agent.last_call = e.call_id
            agent.last_number = self._numbers.get(e.call_id)
            agent.last_queue = e.queue
            customer = self._customers.get(e.call_id)
            if customer is not None and customer.connected is not None and not customer.connected.done():
                customer.connected.set_result(e.agent_id)
        elif isinstance(e, CallCompleted):
            agent = self._agents[e.agent_id]
            if agent.call_id == e.call_id:
                agent.call_id = None
            number = self._numbers.get(e.call_id)
            if number and e.talk_s + e.on_hold_s >= self.config.effective_talk_s:
                self._recent[number] = (e.agent_id, self._utc(e.at))
        elif isinstance(e, CallbackRequested):
            self._callback_requested(e)
        elif isinstance(e, CallbackFinished):
            state = "done" if e.reached else "failed"
            self._db(update_callback, e.callback_id, state=state, agent_id=e.agent_id, finished_at=self._utc(e.at))
        elif isinstance(e, CallbackAtRisk):
            self._db(update_callback, e.callback_id, at_risk=True)

    def _log(self, line: LogLine) -> None:
        if self.writer is not None:
            self.writer.add(line)

    def _publish_agent(self, agent_id: str, state: AgentState, reason: str, call_id: str | None) -> None:
        agent = self._agents[agent_id]
        self.bus.publish(
            AgentStatus(
                agent_id=agent_id,
                state=state.value,
                mode=agent.spec.mode.value,
                reason=reason,
                call_id=call_id,
                since=datetime.now(UTC),
            )
        )

    async def _stats_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.stats_interval_s)
            self._publish_stats()

    def _publish_stats(self, *, all_queues: bool = False) -> None:
        if self.acd is None:
            return
        now = self._now()
        queues = set(self._queues) if all_queues else set(self._stats_dirty)
        # A queue with callers waiting changes every second (longest wait), so it is always sent.
        queues |= {c.queue for c in self._customers.values() if c.phase == "queued" and c.queue}
        self._stats_dirty.clear()
        for qid in sorted(queues):
            states = [self.acd.agent_info(a).state for a in self._members[qid]]
            self.bus.publish(
                QueueStatus(
                    queue=qid,
                    agents_ready=sum(s is AgentState.READY for s in states),
                    agents_logged_in=sum(s is not AgentState.LOGGED_OUT for s in states),
                    stats=self.acd.queue_stats(qid, now),
                )
            )

    # -- database jobs (ordered, off the call path) ------------------------------------------------

    def _db(self, fn: Callable[..., Coroutine[Any, Any, None]], *args: Any, **kwargs: Any) -> None:
        if self.sessionmaker is None:
            return
        sm = self.sessionmaker
        self._db_jobs.put_nowait(lambda: fn(sm, *args, **kwargs))

    async def _db_worker(self) -> None:
        while True:
            job = await self._db_jobs.get()
            if job is None:
                return
            try:
                await job()
            except Exception as exc:  # a failed record must not stop the worker
                log.warning("acd.db_job_failed", error=str(exc).splitlines()[0] if str(exc) else repr(exc))

    # -- actions ---------------------------------------------------------------------------------

    def _on_action(self, action: object) -> None:
        if isinstance(action, OfferCall):
            agent = self._agents[action.agent_id]
            agent.offer_call = action.call_id
            if action.mode is ConnectionMode.NAILED:
                self._spawn(
                    self._offer_nailed(agent, action), "acd-offer-nailed", agent_id=agent.id, call_id=action.call_id
                )
            else:
                self._spawn(
                    self._offer_ring(agent, action), "acd-offer-ring", agent_id=agent.id, call_id=action.call_id
                )
        elif isinstance(action, WithdrawOffer):
            agent = self._agents[action.agent_id]
            if agent.offer_call == action.call_id:
                agent.offer_call = None
            leg, agent.offer_leg = agent.offer_leg, None
            if leg is not None:
                self._spawn(leg.hangup(), "acd-withdraw")
            customer = self._customers.get(action.call_id)
            if customer is not None and customer.agent_id == agent.id and customer.phase == "connected":
                # A nailed bridge that was not confirmed: the caller goes back to hold.
                self._unbridge(customer)
                customer.phase, customer.agent_id = "queued", None
                self._start_hold(customer)
        elif isinstance(action, BridgeCall):
            agent = self._agents[action.agent_id]
            customer = self._customers.get(action.call_id)
            if customer is not None and agent.talk_leg is not None:
                self._bridge(customer, agent.talk_leg, agent)
        elif isinstance(action, ReleaseAgentLeg):
            agent = self._agents[action.agent_id]
            if agent.spec.mode is ConnectionMode.RING:
                leg, agent.talk_leg = agent.talk_leg, None
                if leg is not None:
                    self._spawn(leg.hangup(), "acd-release")
            else:
                customer = self._customers.get(action.call_id)
                if customer is not None and customer.agent_id == agent.id:
                    self._unbridge(customer)
        elif isinstance(action, PlayAnnouncement):
            log.debug("acd.announcement_by_hold_audio", call_id=action.call_id)
        elif isinstance(action, SendToVoicemail):
            customer = self._customers.get(action.call_id)
            if customer is not None:
                self._spawn(self._voicemail(customer, action.queue, action.reason), "acd-voicemail")
        elif isinstance(action, ConfirmCallback):
            customer = self._customers.get(action.call_id)
            if customer is not None:
                self._spawn(self._confirm_callback(customer), "acd-callback-confirm")
        elif isinstance(action, DialCallback):
            self._spawn(
                self._dial_callback(action),
                "acd-dial-callback",
                call_id=action.call_id,
                agent_id=action.agent_id,
                callback_id=action.callback_id,
            )

    # -- offers ----------------------------------------------------------------------------------

    async def _offer_ring(self, agent: _Agent, offer: OfferCall) -> None:
        def failed(reason: Literal["rejected", "failed"]) -> None:
            if agent.offer_call == offer.call_id:
                agent.offer_call = None
                self._feed(lambda now: self._core.offer_rejected(offer.call_id, agent.id, now, reason))

        if not self.ua.registered(agent.spec.username):
            log.info("acd.agent_not_registered", agent_id=agent.id, call_id=offer.call_id)
            failed("failed")
            return
        number = self._numbers.get(offer.call_id) or None
        try:
            leg = await self.ua.call(
                f"sip:{agent.spec.username}@{self.ua.config.realm}",
                from_user=number,
                ring_timeout=offer.timeout_s + 5.0,  # the core times the ring; this is the backstop
            )
        except (OSError, ValueError, SipSyntaxError) as exc:
            log.warning("acd.agent_call_failed", agent_id=agent.id, error=str(exc))
            failed("failed")
            return
        if agent.offer_call != offer.call_id:
            await leg.hangup()  # withdrawn while the INVITE was being built
            return
        agent.offer_leg = leg
        outcome = await leg.wait_answered()
        if outcome.outcome is CallOutcome.ANSWERED:
            if agent.offer_leg is leg and agent.offer_call == offer.call_id:
                agent.offer_leg, agent.offer_call, agent.talk_leg = None, None, leg
                leg.on_dtmf = lambda digit: self._agent_digit(agent, digit)
                self._watch_hold(agent, leg)
                self._spawn(self._watch_agent_leg(agent, leg, offer.call_id), "acd-watch-agent")
                self._feed(lambda now: self._core.offer_answered(offer.call_id, agent.id, now))
            else:
                await leg.hangup()  # answered after the offer ended
            return
        if agent.offer_leg is leg:
            agent.offer_leg = None
            declined = (CallOutcome.BUSY, CallOutcome.REJECTED, CallOutcome.UNAVAILABLE)
            failed("rejected" if outcome.outcome in declined else "failed")

    async def _offer_nailed(self, agent: _Agent, offer: OfferCall) -> None:
        leg = agent.nailed
        if leg is None or leg.ended or leg.media is None:
            if agent.offer_call == offer.call_id:
                agent.offer_call = None
                self._feed(lambda now: self._core.offer_rejected(offer.call_id, agent.id, now, "failed"))
            return
        customer = self._customers.get(offer.call_id)
        if customer is not None:
            self._stop_hold(customer)
        leg.media.stop_playing()
        await leg.play(self._beep)  # the agent hears the customer arrive; no ringing
        if agent.offer_call != offer.call_id or leg.ended:
            return
        agent.offer_call = None
        if customer is not None and customer.phase == "queued" and not customer.call.ended:
            self._bridge(customer, leg, agent)
        self._feed(lambda now: self._core.offer_answered(offer.call_id, agent.id, now))

    def _bridge(self, customer: _Customer, agent_leg: Call, agent: _Agent) -> None:
        self._stop_hold(customer)
        if customer.call.media is None or agent_leg.media is None:
            log.warning("acd.bridge_without_media", call_id=customer.acd_id, agent_id=agent.id)
            return
        agent_leg.media.stop_playing()
        customer.call.media.stop_playing()
        customer.bridge = Bridge(customer.call.media, agent_leg.media)
        customer.phase = "connected"
        customer.agent_id = agent.id
        agent.call_id = customer.acd_id
        self._agent_leg_direction(agent, agent_leg)  # a phone already on hold holds this customer
        log.info("acd.bridged", call_id=customer.acd_id, agent_id=agent.id, mode=agent.spec.mode.value)
        if self.on_bridged is not None:
            self.on_bridged(customer.call, agent_leg, customer.bridge)

    def _unbridge(self, customer: _Customer) -> None:
        # A supervision mixes these legs instead of the bridge: end it before the legs are reused.
        self.supervision.call_unbridged(customer.acd_id)
        if customer.bridge is not None:
            customer.bridge.stop()
            customer.bridge = None

    # -- watchers: every leg's end becomes an input ---------------------------------------------

    async def _watch_customer(self, customer: _Customer) -> None:
        await customer.call.wait_ended()
        self._customer_gone(customer)

    def _customer_gone(self, customer: _Customer) -> None:
        previous = customer.phase
        if previous == "gone":
            return
        customer.phase = "gone"
        self._stop_hold(customer)
        if self._customers.get(customer.acd_id) is customer:
            del self._customers[customer.acd_id]
        if customer.connected is not None and not customer.connected.done():
            customer.connected.set_result(None)
        if previous == "connected":
            agent = self._agents.get(customer.agent_id or "")
            self._unbridge(customer)
            self._feed(
                lambda now: self._core.call_ended(customer.acd_id, now, "caller", on_hold_s=customer.hold_total(now))
            )
            if agent is not None:
                agent.call_id = None if agent.call_id == customer.acd_id else agent.call_id
                leg, agent.talk_leg = agent.talk_leg, None
                if leg is not None:
                    self._spawn(leg.hangup(), "acd-agent-hangup")
                elif agent.nailed is not None and not agent.nailed.ended:
                    self._spawn(self._play_quietly(agent.nailed, self._beep), "acd-wrapup-beep")
        elif previous == "queued":
            self._feed(lambda now: self._core.caller_hung_up(customer.acd_id, now))

    async def _watch_agent_leg(self, agent: _Agent, leg: Call, call_id: str) -> None:
        await leg.wait_ended()
        self._unwatch_hold(leg)
        if agent.talk_leg is not leg:
            return  # we ended it after the customer left
        agent.talk_leg = None
        self._end_by_agent(agent, call_id)

    def _end_by_agent(self, agent: _Agent, call_id: str | None) -> None:
        """The agent ended the call (BYE, *0, media timeout of the agent leg, nailed leg gone)."""
        if call_id is None:
            return
        customer = self._customers.get(call_id)
        if customer is not None:
            connected = customer.phase == "connected" and not customer.call.ended
            survey = self._survey_for(customer) if connected and not self._stopping else None
            customer.phase = "leaving"
            self._unbridge(customer)
            if survey is not None:
                # The customer's leg stays up for the survey; the agent goes to wrap-up meanwhile.
                self._spawn(
                    self._survey(customer, agent.id, survey), "acd-survey", call_id=customer.acd_id, agent_id=agent.id
                )
            else:
                self._spawn(customer.call.hangup(), "acd-customer-hangup")
        if agent.call_id == call_id:
            agent.call_id = None
        held = customer if customer is not None and customer.agent_id == agent.id else None
        self._feed(
            lambda now: self._core.call_ended(call_id, now, "agent", on_hold_s=held.hold_total(now) if held else 0.0)
        )

    # -- hold: the agent's phone holds the customer ----------------------------------------------

    def _watch_hold(self, agent: _Agent, leg: Call) -> None:
        """Be told of every offer/answer on the agent's leg. The UA restarts the leg's media with
        the new direction on each re-INVITE, so wrapping that one call is the hook."""
        media = leg.media
        if media is None:
            return
        restart = media.start

        def start(params: Any = None) -> None:
            restart(params)
            self._agent_leg_direction(agent, leg)

        media.start = start  # type: ignore[method-assign]

    @staticmethod
    def _unwatch_hold(leg: Call) -> None:
        """Drop the hook of :meth:`_watch_hold` once the leg ended: the closure holds the leg,
        which holds the media, a cycle that only a full garbage collection would free."""
        if leg.media is not None:
            leg.media.__dict__.pop("start", None)

    def _agent_leg_direction(self, agent: _Agent, leg: Call) -> None:
        params = leg.media.params if leg.media is not None else None
        if params is None:
            return
        held = not params.sends  # the phone went sendonly/inactive: we answered recvonly/inactive
        customer = self._customers.get(agent.call_id or "")
        if customer is None or customer.agent_id != agent.id or customer.phase != "connected":
            return
        now = self._now()
        if held == (customer.held_since is not None):
            return
        data: tuple[str, ...] = ()
        if held:
            customer.held_since = now
            verb = "HOLD"
        else:
            assert customer.held_since is not None
            seconds = now - customer.held_since
            customer.on_hold_s += seconds
            customer.held_since = None
            verb, data = "UNHOLD", (str(round(seconds)),)
        log.info("acd.customer_held" if held else "acd.customer_unheld", call_id=customer.acd_id, agent_id=agent.id)
        self._log(LogLine(datetime.now(UTC), customer.acd_id, customer.queue or NO_QUEUE, agent.id, verb, data))
        self.bus.publish(
            CustomerHeld(call_id=customer.acd_id, agent_id=agent.id, held=held, on_hold_s=customer.hold_total(now))
        )

    def _survey_for(self, customer: _Customer) -> SurveySettings | None:
        """The survey to ask: the campaign's choice when the call came with one, else the queue's."""
        queue = self._queues.get(customer.queue or "")
        base = queue.survey if queue is not None else SurveySettings()
        wanted = customer.survey
        if isinstance(wanted, SurveySettings):
            return wanted if wanted.enabled else None
        if wanted is None:
            return base if base.enabled else None
        return base if wanted else None

    async def _survey(self, customer: _Customer, agent_id: str, settings: SurveySettings) -> None:
        call = customer.call
        answer: int | None = None
        try:
            if call.media is not None:
                call.media.stop_playing()
            self.bus.publish(SurveyStarted(call_id=customer.acd_id, agent_id=agent_id, queue=customer.queue))
            result = await run_survey(
                call,
                self.prompts,
                attempts=settings.attempts,
                timeout=settings.timeout_s,
                question=settings.prompt,
                thanks=settings.thanks,
                invalid=settings.invalid,
                hangup=False,
            )
            answer = None if result is None else int(result)
        except (PromptError, KeyError, RuntimeError, OSError) as exc:  # a broken survey never keeps the line
            log.warning("acd.survey_failed", call_id=customer.acd_id, error=str(exc))
        try:
            event = SurveyAnswered(
                call_id=customer.acd_id,
                agent_id=agent_id,
                queue=customer.queue,
                campaign_id=customer.campaign_id,
                campaign=customer.campaign,
                answer=answer,
            )
            self.bus.publish(event)
            queue = customer.queue or NO_QUEUE
            self._log(LogLine(datetime.now(UTC), customer.acd_id, queue, agent_id, "SURVEY", (str(answer or ""),)))
            if self.on_survey is not None:
                try:
                    await self.on_survey(event)
                except Exception as exc:  # the answer is lost, the call still ends
                    log.warning("acd.survey_not_saved", call_id=customer.acd_id, error=str(exc))
        finally:
            if not call.ended:
                await call.hangup()

    async def _watch_nailed(self, agent: _Agent, leg: Call) -> None:
        await leg.wait_ended()
        self._unwatch_hold(leg)
        if agent.nailed is not leg:
            return
        agent.nailed = None
        log.info("acd.nailed_leg_ended", agent_id=agent.id, by=leg.ended_by)
        if agent.offer_call is not None:
            call_id, agent.offer_call = agent.offer_call, None
            self._feed(lambda now: self._core.offer_rejected(call_id, agent.id, now, "failed"))
        if agent.call_id is not None:
            self._end_by_agent(agent, agent.call_id)
        if self._core.agent_info(agent.id).state is not AgentState.LOGGED_OUT:
            reason = "media-timeout" if leg.ended_by == "media_timeout" else "nailed-leg-ended"
            self._feed(lambda now: self._core.agent_logout(agent.id, now, reason))

    def _agent_logged_out(self, agent: _Agent) -> None:
        leg, agent.nailed = agent.nailed, None
        if leg is not None and not leg.ended:
            self._spawn(leg.hangup(), "acd-nailed-hangup")

    # -- incoming calls --------------------------------------------------------------------------

    def _on_incoming(self, call: Call) -> None:
        user = _dialled_user(call)
        if self._stopping:
            self._spawn(call.reject(503, "Service Unavailable (shutting down)"), "acd-reject")
        elif user == self.config.login_code:
            self._spawn(self._agent_login_call(call), "acd-login", call_id=call.id)
        elif user in self.config.dids:
            self._spawn(self._inbound(call, self.config.dids[user]), "acd-inbound", call_id=call.id)
        elif (code := self.supervision.feature_code(user)) is not None:
            self._spawn(self.supervision.feature_call(call, *code), "acd-supervision")
        elif self._prev_incoming is not None:
            self._prev_incoming(call)
        else:
            log.info("acd.unknown_number", call_id=call.id, user=user)
            self._spawn(call.reject(404, "Not Found"), "acd-reject")

    async def _agent_login_call(self, call: Call) -> None:
        agent = self._identify_agent(call)
        if agent is None:
            await call.reject(403, "Forbidden (register first, then dial the login code from that phone)")
            return
        if agent.spec.mode is ConnectionMode.NAILED and agent.nailed is not None and not agent.nailed.ended:
            await call.reject(486, "Busy Here (this agent already has a nailed call)")
            return
        await call.answer()
        if agent.spec.mode is ConnectionMode.RING:
            await self._play_quietly(call, self._beep)
            self._feed(lambda now: self._core.agent_login(agent.id, now))
            await call.hangup()
            return
        agent.nailed = call
        call.on_dtmf = lambda digit: self._agent_digit(agent, digit)
        self._watch_hold(agent, call)
        self._spawn(self._watch_nailed(agent, call), "acd-watch-nailed", agent_id=agent.id)
        await self._play_quietly(call, self._beep)
        if agent.nailed is call and self._core.agent_info(agent.id).state is AgentState.LOGGED_OUT:
            self._feed(lambda now: self._core.agent_login(agent.id, now))

    def _identify_agent(self, call: Call) -> _Agent | None:
        """Who dialled the login code: the digest-authenticated user when the INVITE was
        challenged, else the From user, accepted only from the address its registration came from."""
        headers = call.headers
        if headers is None:
            return None
        m = _USERNAME_RE.search(headers.get("authorization") or "")
        if m is not None:
            return self._by_username.get(m.group(1))
        try:
            user = SipURI.parse(call.remote).user or ""
            via = Via.parse(headers.get_all("via")[0])
        except (SipSyntaxError, IndexError, ValueError):
            return None
        agent = self._by_username.get(user)
        if agent is None or self.ua.registrar is None:
            return None
        host = via.params.get("received") or via.host
        rport = via.params.get("rport")
        port = int(rport) if rport and rport.isdigit() else via.port or 5060
        for binding in self.ua.registrar.lookup(f"sip:{user}@{self.ua.config.realm}", time.time()):
            if tuple(binding.source) == (host, port):
                return agent
        log.info("acd.login_refused", user=user, source=f"{host}:{port}")
        return None

    async def _inbound(self, call: Call, target: str) -> None:
        customer = _Customer(call=call, acd_id=call.id, number=_caller_number(call), direction="inbound")
        self._customers[customer.acd_id] = customer
        self._numbers[customer.acd_id] = customer.number
        self._spawn(self._watch_customer(customer), "acd-watch-customer", call_id=customer.acd_id)
        # The caller look-up (database) runs while we answer and while the IVR plays.
        customer.info = self._spawn(self._caller_info(customer.number), "acd-lookup")
        await call.answer()
        kind, _, name = target.partition(":")
        if kind == "queue":
            await self._enqueue(customer, name)
            return
        assert self.config.menus is not None
        menus = self.config.menus.model_copy(update={"entry": name})
        result = await run_menu(call, menus, prompts=self.prompts)
        step = result.exit
        if isinstance(step, RouteToQueue):
            if step.complaint:
                due = step.callback_due or datetime.now(UTC) + timedelta(hours=12)
                await self._callback_from_menu(customer, step.queue, complaint=True, due=due)
            else:
                await self._enqueue(customer, step.queue)
        elif isinstance(step, RequestCallback):
            await self._callback_from_menu(customer, step.queue, complaint=False, due=None)
        elif isinstance(step, RouteToVoicemail):
            await self._voicemail(customer, step.box or "general", "menu")
        elif isinstance(step, HangUp | CallerHungUp):
            customer.phase = "leaving"
            if not call.ended:
                await call.hangup()

    async def _caller_info(self, number: str) -> CallerInfo:
        """The look-up task: the database's answer (or nothing, after ``lookup_timeout_s``)
        merged with what this process remembers."""
        info = CallerInfo()
        if self._lookup is not None and number:
            try:
                info = await asyncio.wait_for(self._lookup(number), self.config.lookup_timeout_s)
            except TimeoutError:
                log.warning("acd.caller_lookup_slow", number=number, timeout=self.config.lookup_timeout_s)
        return self._with_recent(number, info)

    def _with_recent(self, number: str, info: CallerInfo) -> CallerInfo:
        """``info`` with this process's own memory of the customer's last effective agent,
        when that is newer (and within ``sticky_days``)."""
        recent = self._recent.get(number)
        if recent is not None and (info.last_agent_at is None or recent[1] > info.last_agent_at):
            cutoff = datetime.now(UTC) - timedelta(days=self.config.sticky_days)
            if recent[1] >= cutoff:
                info = CallerInfo(info.contact_id, info.vip, recent[0], recent[1])
        return info

    @staticmethod
    def _looked_up(task: asyncio.Task[CallerInfo]) -> CallerInfo | None:
        """The look-up's answer if it is in; an empty one if it failed (logged by _task_done)."""
        if not task.done():
            return None
        if task.cancelled() or task.exception() is not None:
            return CallerInfo()
        return task.result()

    async def _enqueue(self, customer: _Customer, queue: str) -> None:
        task = customer.info or self._spawn(self._caller_info(customer.number), "acd-lookup")
        info = self._looked_up(task)
        if info is None and self._lookup_may_pick_the_agent(customer, queue):
            await asyncio.wait({task}, timeout=self.config.routing_lookup_wait_s)
            info = self._looked_up(task)
        if customer.phase != "ivr" or customer.call.ended:
            return
        pending = info is None
        if info is None:  # route now with what memory knows; the look-up may still enrich it
            info = self._with_recent(customer.number, CallerInfo())
        sticky = info.last_agent if info.last_agent in self._members.get(queue, ()) else None
        customer.queue = queue
        customer.phase = "queued"
        self._feed(
            lambda now: self._core.call_arrived(
                customer.acd_id, queue, now, contact_id=info.contact_id, vip=info.vip, sticky_agent=sticky
            )
        )
        if pending:
            task.add_done_callback(lambda t: self._caller_identified(customer, queue, t))
        # After the arrival, so that an offer's task is scheduled before the hold audio's.
        if customer.phase == "queued":
            self._start_hold(customer)

    def _lookup_may_pick_the_agent(self, customer: _Customer, queue: str) -> bool:
        """Whether waiting for the look-up could change the agent offered: only a sticky
        customer (not yet known from memory) arriving while agents are ready. VIP credit only
        orders callers who wait, so it is applied when the look-up comes back."""
        return (
            self.config.routing_lookup_wait_s > 0
            and self.config.sticky_days > 0
            and bool(customer.number)
            and customer.number not in self._recent
            and self._core.has_ready_agent(queue)
        )

    def _caller_identified(self, customer: _Customer, queue: str, task: asyncio.Task[CallerInfo]) -> None:
        """A look-up that returned after the call was queued: a caller still waiting gets its
        VIP credit and sticky reservation (the core ignores it for a call already offered)."""
        info = self._looked_up(task)
        if info is None or self._stopping or customer.phase != "queued" or customer.queue != queue:
            return
        sticky = info.last_agent if info.last_agent in self._members.get(queue, ()) else None
        if not (info.vip or sticky or info.contact_id):
            return
        self._feed(
            lambda now: self._core.caller_identified(
                customer.acd_id, now, contact_id=info.contact_id, vip=info.vip, sticky_agent=sticky
            )
        )

    async def _callback_from_menu(
        self, customer: _Customer, queue: str, *, complaint: bool, due: datetime | None
    ) -> None:
        info = await (customer.info or self._caller_info(customer.number))
        customer.phase = "leaving"
        callback_id = f"cb-{customer.acd_id}"
        self._callbacks[callback_id] = _Callback(callback_id, queue, customer.number, complaint=complaint)
        self._numbers[callback_id] = customer.number
        sla = None if due is None else max(1.0, (due - datetime.now(UTC)).total_seconds())
        self._feed(
            lambda now: self._core.schedule_callback(
                callback_id, queue, now, contact_id=info.contact_id, sla_s=sla, vip=info.vip or complaint
            )
        )
        await self._confirm_callback(customer)

    # -- hold, voicemail, callbacks --------------------------------------------------------------

    def _start_hold(self, customer: _Customer) -> None:
        if customer.direction != "inbound" or customer.queue is None:
            return
        hold = self._queues[customer.queue].hold
        if hold.enabled and customer.hold is None:
            customer.hold = self._spawn(
                play_hold(customer.call, self.prompts, lambda: self._position(customer), hold.policy()), "acd-hold"
            )
        if customer.keys is None:
            customer.keys = self._spawn(self._read_keys(customer), "acd-keys")

    def _stop_hold(self, customer: _Customer) -> None:
        for task in (customer.hold, customer.keys):
            if task is not None:
                task.cancel()
        customer.hold = customer.keys = None
        if customer.call.media is not None:
            customer.call.media.stop_playing()

    def _position(self, customer: _Customer) -> tuple[int, float | None]:
        try:
            info = self._core.call_info(customer.acd_id)
        except AcdError:
            return 0, None
        if info.position is None:
            return 0, None
        return info.position, self._core.estimated_wait(info.queue, info.position)

    async def _read_keys(self, customer: _Customer) -> None:
        reader = digit_reader(customer.call)
        while True:
            digit = await reader.next()
            if digit is None:
                return
            self._feed(functools.partial(self._core.dtmf_pressed, customer.acd_id, digit))

    async def _voicemail(self, customer: _Customer, box: str, reason: str) -> None:
        customer.phase = "leaving"
        self._stop_hold(customer)
        call = customer.call
        if call.ended or call.media is None:
            return
        folder = self.config.voicemail_dir / _SAFE_RE.sub("_", box)
        folder.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        path = folder / f"{stamp}_{_SAFE_RE.sub('_', customer.acd_id)[:80]}.wav"
        with contextlib.suppress(PromptError):
            await call.play(self.prompts.load("voicemail_intro"))
        await self._play_quietly(call, self._beep)
        if call.ended or call.media is None:
            return
        started = self._now()
        call.media.record_to(path)
        reader = digit_reader(call)
        reader.drain()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.config.voicemail_max_s):
                while (digit := await reader.next()) is not None and digit != "#":
                    pass
        if call.media is not None:
            call.media.stop_recording()
        seconds = self._now() - started
        self._log(
            LogLine(
                datetime.now(UTC),
                customer.acd_id,
                box,
                NO_QUEUE,
                "VOICEMAIL",
                (str(path), str(round(seconds)), reason, customer.number),
            )
        )
        self.bus.publish(
            VoicemailRecorded(
                call_id=customer.acd_id,
                queue=box,
                number=customer.number,
                path=str(path),
                seconds=seconds,
                reason=reason,
            )
        )
        log.info("acd.voicemail", call_id=customer.acd_id, path=str(path), seconds=round(seconds, 1))
        if not call.ended:
            await call.hangup()

    async def _confirm_callback(self, customer: _Customer) -> None:
        customer.phase = "leaving"
        self._stop_hold(customer)
        call = customer.call
        if call.ended:
            return
        try:
            await call.play(self.prompts.load("callback_confirm"))
        except PromptError as exc:
            log.warning("acd.prompt_missing", prompt="callback_confirm", error=str(exc))
        if not call.ended:
            await call.hangup()

    def _callback_requested(self, e: CallbackRequested) -> None:
        record = self._callbacks.get(e.callback_id)
        if record is None:
            number = self._numbers.get(e.call_id)
            record = self._callbacks[e.callback_id] = _Callback(e.callback_id, e.queue, number)
        self._numbers.setdefault(e.call_id, record.number or "")
        try:  # the caller's place in line, which a restart must not lose
            arrived_at: datetime | None = self._utc(self._core.call_info(e.call_id).arrived_at)
        except AcdError:
            arrived_at = None
        self._db(
            _save_callback,
            id=e.callback_id,
            call_id=e.call_id,
            queue=e.queue,
            number=record.number,
            contact_id=e.contact_id,
            complaint=record.complaint,
            state="requested",
            requested_at=datetime.now(UTC),
            arrived_at=arrived_at,
            due_at=self._utc(e.due_at),
            owner_agent=record.owner,
        )

    async def _dial_callback(self, action: DialCallback) -> None:
        agent = self._agents[action.agent_id]
        record = self._callbacks.get(action.callback_id)
        agent_leg = agent.nailed if agent.spec.mode is ConnectionMode.NAILED else agent.talk_leg
        number = record.number if record is not None else None

        def failed() -> None:
            self._feed(lambda now: self._core.callback_result(action.callback_id, False, now))
            if agent.spec.mode is ConnectionMode.RING:
                leg, agent.talk_leg = agent.talk_leg, None
                if leg is not None:
                    self._spawn(leg.hangup(), "acd-agent-hangup")

        if not number or agent_leg is None or agent_leg.ended:
            failed()
            return
        self._db(update_callback, action.callback_id, state="dialing", agent_id=agent.id)
        try:
            leg = await self.ua.call(
                self.config.callback_uri.format(number=number),
                ring_timeout=self.config.callback_ring_timeout_s,
            )
        except (OSError, ValueError, SipSyntaxError) as exc:
            log.warning("acd.callback_dial_failed", callback_id=action.callback_id, error=str(exc))
            failed()
            return
        outcome = await leg.wait_answered()
        still_dialing = self._core.agent_info(agent.id).call_id == action.call_id and not agent_leg.ended
        if outcome.outcome is not CallOutcome.ANSWERED or not still_dialing:
            if not leg.ended:
                await leg.hangup()
            if still_dialing:
                failed()
            return
        customer = _Customer(call=leg, acd_id=action.call_id, number=number, direction="callback", queue=action.queue)
        self._customers[customer.acd_id] = customer
        self._spawn(self._watch_customer(customer), "acd-watch-customer", call_id=customer.acd_id)
        self._bridge(customer, agent_leg, agent)
        self._feed(lambda now: self._core.callback_result(action.callback_id, True, now))

    async def _restore_callbacks(self) -> None:
        assert self.sessionmaker is not None and self._loop is not None
        rows = await load_open_callbacks(self.sessionmaker)
        # In their order in line, so that equal arrival times keep their order too.
        rows.sort(key=lambda r: r.arrived_at or r.requested_at or datetime.now(UTC))
        for row in rows:
            if row.queue not in self._queues:
                continue
            self._callbacks[row.id] = _Callback(row.id, row.queue, row.number, row.complaint, row.owner_agent)
            self._numbers[row.call_id] = row.number or ""
            if row.state == "scheduled" and row.scheduled_for is not None:
                self._arm_scheduled(row.id, row.scheduled_for)
                continue
            # The request keeps its place in line (arrived_at) and its SLA deadline (due_at).
            wall_now = datetime.now(UTC)
            arrived = min(row.arrived_at or row.requested_at or wall_now, wall_now)
            due = row.due_at or wall_now + timedelta(hours=12)
            sla = max(1.0, (due - arrived).total_seconds())
            self._feed(
                functools.partial(
                    self._core.schedule_callback,
                    row.id,
                    row.queue,
                    contact_id=row.contact_id,
                    sla_s=sla,
                    call_id=row.call_id if row.call_id != row.id else None,
                    arrived_at=self._loop.time() - (wall_now - arrived).total_seconds(),
                )
            )
        log.info("acd.callbacks_restored", count=len(self._callbacks))

    def _arm_scheduled(self, callback_id: str, at: datetime) -> None:
        assert self._loop is not None
        delay = (at - datetime.now(UTC)).total_seconds()
        heapq.heappush(self._scheduled, (self._loop.time() + max(0.0, delay), callback_id))
        self._rearm_scheduled()

    def _rearm_scheduled(self) -> None:
        assert self._loop is not None
        if self._scheduled_timer is not None:
            self._scheduled_timer.cancel()
            self._scheduled_timer = None
        if self._scheduled:
            self._scheduled_timer = self._loop.call_at(self._scheduled[0][0], self._scheduled_due)

    def _scheduled_due(self) -> None:
        self._scheduled_timer = None
        now = self._now()
        while self._scheduled and self._scheduled[0][0] <= now:
            _, callback_id = heapq.heappop(self._scheduled)
            record = self._callbacks.get(callback_id)
            if record is not None:
                self._feed(functools.partial(self._core.schedule_callback, callback_id, record.queue))
        self._rearm_scheduled()

    # -- agent codes -----------------------------------------------------------------------------

    def _agent_digit(self, agent: _Agent, digit: str) -> None:
        result = agent.parser.feed(digit, self._now())
        if result is None:
            return
        log.info("acd.agent_code", agent_id=agent.id, code=type(result).__name__)
        try:
            if isinstance(result, InvalidCode):
                self.bus.publish(AgentCodeRejected(agent_id=agent.id, keyed=result.keyed, why=result.why))
                self._feedback(agent, ok=False)
                return
            if isinstance(result, Ready):
                self._feed(lambda now: self._core.agent_ready(agent.id, now), raise_errors=True)
            elif isinstance(result, Pause):
                self._feed(lambda now: self._core.agent_pause(agent.id, now, result.reason), raise_errors=True)
            elif isinstance(result, HangupCustomer):
                self._hangup_customer(agent)
            elif isinstance(result, Disposition):
                self._disposition(agent, result.code, None)
            elif isinstance(result, ScheduleCallback):
                self._schedule_callback(agent, result.at, None, None)
            elif isinstance(result, Logout):
                self._feed(lambda now: self._core.agent_logout(agent.id, now, "agent"), raise_errors=True)
            elif isinstance(result, StartRecording | RecordingToggle):
                action: RecordingAction = "start" if isinstance(result, StartRecording) else "toggle"
                customer = self._recordable(agent, action)  # refused at once when there is no call
                self._spawn(self._recording_code(agent, customer, action), "acd-recording-code")
                return  # the recording service answers; a refusal is published then
        except (AcdError, ValueError) as exc:
            self.bus.publish(AgentCodeRejected(agent_id=agent.id, keyed=type(result).__name__, why=str(exc)))
            self._feedback(agent, ok=False)
            return
        self._feedback(agent, ok=True)

    def _recordable(self, agent: _Agent, action: RecordingAction) -> _Customer:
        customer = self._customers.get(agent.call_id or "")
        if customer is None or customer.phase != "connected" or customer.agent_id != agent.id:
            raise AcdStateError(
                f"agent {agent.id!r} has no customer on the line to {action} recording",
                subject=agent.id,
                state=self._core.agent_info(agent.id).state.value,
                command=f"recording_{action}",
            )
        if self.recording_control is None:
            raise AcdStateError(
                "recordings are not running in this process; enable [recordings] and restart",
                subject=agent.id,
                state=self._core.agent_info(agent.id).state.value,
                command=f"recording_{action}",
            )
        return customer

    async def _recording(self, agent: _Agent, customer: _Customer, action: RecordingAction) -> str:
        assert self.recording_control is not None
        state = await self.recording_control.agent_recording(
            action,
            customer.call,
            customer.bridge,
            agent_id=agent.id,
            queue=customer.queue,
            campaign_id=customer.campaign_id,
            campaign=customer.campaign,
        )
        self._log(
            LogLine(datetime.now(UTC), customer.acd_id, customer.queue or NO_QUEUE, agent.id, "RECORDING", (state,))
        )
        return state

    async def _recording_code(self, agent: _Agent, customer: _Customer, action: RecordingAction) -> None:
        try:
            await self._recording(agent, customer, action)
        except (ValueError, RuntimeError, OSError) as exc:
            self.bus.publish(AgentCodeRejected(agent_id=agent.id, keyed=f"recording_{action}", why=str(exc)))

    def _feedback(self, agent: _Agent, *, ok: bool) -> None:
        """A beep (done) or a low tone (refused) on the agent's own leg, unless a customer is on it."""
        leg = agent.nailed or agent.talk_leg
        if leg is None or leg.ended or agent.call_id is not None:
            return
        self._spawn(self._play_quietly(leg, self._beep if ok else self._error_tone), "acd-feedback")

    async def _play_quietly(self, call: Call, audio: Any) -> None:
        if call.ended or call.media is None or call.media.closed:
            return
        try:
            await call.play(audio)
        except RuntimeError as exc:  # MediaSessionError: the leg closed while playing
            log.debug("acd.play_skipped", call_id=call.id, error=str(exc))

    def _hangup_customer(self, agent: _Agent) -> None:
        if agent.call_id is None:
            raise AcdStateError(
                f"agent {agent.id!r} has no customer on the line to hang up",
                subject=agent.id,
                state=self._core.agent_info(agent.id).state.value,
                command="hangup_customer",
            )
        call_id = agent.call_id
        leg, agent.talk_leg = agent.talk_leg, None
        self._end_by_agent(agent, call_id)
        if leg is not None:
            self._spawn(leg.hangup(), "acd-agent-hangup")

    def _disposition(self, agent: _Agent, code: str, call_id: str | None) -> str:
        target = call_id or agent.call_id or agent.last_call
        if target is None:
            raise AcdStateError(
                f"agent {agent.id!r} has had no call yet to set disposition {code!r} on",
                subject=agent.id,
                state=self._core.agent_info(agent.id).state.value,
                command="set_disposition",
            )
        effective = code in self.config.effective_dispositions
        if effective:
            self._core.mark_effective(agent.id)
        queue = agent.last_queue or NO_QUEUE
        self._log(LogLine(datetime.now(UTC), target, queue, agent.id, "DISPOSITION", (code, str(int(effective)))))
        self.bus.publish(DispositionSet(call_id=target, agent_id=agent.id, code=code, effective=effective))
        return target

    def _schedule_callback(self, agent: _Agent, at: datetime, number: str | None, queue: str | None) -> str:
        if at.tzinfo is None:
            raise ValueError(f"callback time {at.isoformat()} has no time zone; pass an aware datetime")
        if at < datetime.now(UTC) - timedelta(minutes=1):
            # A mistyped date (last year, or yesterday) would be dialled at once: say so instead.
            raise ValueError(f"callback time {at.isoformat(timespec='minutes')} is in the past; give a later time")
        number = number or agent.last_number
        if not number:
            raise ValueError(f"agent {agent.id!r} has no last customer; give the number to call back")
        queue = queue or agent.last_queue or next(iter(agent.spec.queues), None)
        if queue is None or queue not in self._queues:
            raise UnknownQueueError(f"queue {queue!r} is not configured; name a queue for the callback")
        callback_id = f"cbs-{uuid.uuid4().hex[:16]}"
        self._callbacks[callback_id] = _Callback(callback_id, queue, number, owner=agent.id)
        self._numbers[callback_id] = number
        self._db(
            _save_callback,
            id=callback_id,
            call_id=callback_id,
            queue=queue,
            number=number,
            contact_id=None,
            complaint=False,
            state="scheduled",
            requested_at=datetime.now(UTC),
            due_at=None,
            scheduled_for=at.astimezone(UTC),
            owner_agent=agent.id,
        )
        self._log(
            LogLine(datetime.now(UTC), callback_id, queue, agent.id, "CALLBACKSCHEDULED", (at.isoformat(), number))
        )
        self.bus.publish(
            CallbackScheduled(callback_id=callback_id, agent_id=agent.id, queue=queue, number=number, at=at)
        )
        self._arm_scheduled(callback_id, at)
        return callback_id

    # == public API: agents (phone codes and the HTTP API) ========================================

    def _agent(self, agent_id: str) -> _Agent:
        agent = self._agents.get(agent_id)
        if agent is None:
            raise UnknownAgentError(f"agent {agent_id!r} is not configured (known: {', '.join(sorted(self._agents))})")
        return agent

    async def agent_login(self, agent_id: str, *, paused_reason: str | None = None) -> None:
        """Log a ``ring`` agent in (a ``nailed`` agent logs in by dialling the login code)."""
        agent = self._agent(agent_id)
        if agent.spec.mode is ConnectionMode.NAILED and (agent.nailed is None or agent.nailed.ended):
            raise AcdStateError(
                f"agent {agent_id!r} works nailed-up: dial {self.config.login_code} from the phone to log in",
                subject=agent_id,
                state="logged_out",
                command="login",
            )
        self._feed(lambda now: self._core.agent_login(agent_id, now, paused_reason=paused_reason), raise_errors=True)

    async def agent_ready(self, agent_id: str) -> None:
        self._agent(agent_id)
        self._feed(lambda now: self._core.agent_ready(agent_id, now), raise_errors=True)

    async def agent_pause(self, agent_id: str, reason: str = "break") -> None:
        self._agent(agent_id)
        self._feed(lambda now: self._core.agent_pause(agent_id, now, reason), raise_errors=True)

    async def hangup_customer(self, agent_id: str) -> None:
        self._hangup_customer(self._agent(agent_id))

    async def set_disposition(self, agent_id: str, code: str, call_id: str | None = None) -> str:
        """Record a disposition for the agent's current (or last) call; returns that call id."""
        if not code or len(code) > 32:
            raise ValueError(f"disposition code {code!r} must be 1-32 characters")
        return self._disposition(self._agent(agent_id), code, call_id)

    async def schedule_callback(
        self, agent_id: str, at: datetime, *, number: str | None = None, queue: str | None = None
    ) -> str:
        """Schedule a callback at ``at`` (aware) to ``number`` (default: the agent's last customer)."""
        return self._schedule_callback(self._agent(agent_id), at, number, queue)

    async def logout(self, agent_id: str) -> None:
        self._agent(agent_id)
        self._feed(lambda now: self._core.agent_logout(agent_id, now, "agent"), raise_errors=True)

    async def agent_recording(self, agent_id: str, action: RecordingAction) -> str:
        """Start (on demand), pause, resume or toggle the recording of the agent's current call;
        returns ``"recording"`` or ``"paused"``. Raises AcdStateError without a call (or without
        recordings), ValueError when recordings refuse (e.g. policy none, nothing to pause)."""
        agent = self._agent(agent_id)
        return await self._recording(agent, self._recordable(agent, action), action)

    # == public API: supervisors ==================================================================

    async def assign_call(self, call_id: str, agent_id: str) -> None:
        self._agent(agent_id)
        self._feed(lambda now: self._core.supervisor_assign(call_id, agent_id, now), raise_errors=True)

    async def force_pause(self, agent_id: str, reason: str = "supervisor") -> None:
        self._agent(agent_id)
        self._feed(lambda now: self._core.agent_pause(agent_id, now, reason), raise_errors=True)

    async def force_logout(self, agent_id: str) -> None:
        self._agent(agent_id)
        self._feed(lambda now: self._core.agent_logout(agent_id, now, "supervisor"), raise_errors=True)

    async def supervise(
        self, supervisor_id: str, agent_id: str, mode: SupervisionMode | str
    ) -> Literal["ringing", "switched"]:
        """Ring supervisor ``supervisor_id``'s softphone into the agent's call to listen, whisper or
        barge; switch mode when that supervisor already supervises the agent. Raises
        :class:`~acd.supervision.SupervisionRefused` (or UnknownAgentError) saying what to do."""
        self._agent(agent_id)
        return await self.supervision.supervise(supervisor_id, agent_id, mode)

    # -- what supervision asks of the service (acd.supervision.SupervisionHost) ------------------------

    def agent_for_extension(self, extension: str) -> str | None:
        """The agent dialled as ``extension``: its configured extension, else an agent with that id."""
        agent_id = self._by_extension.get(extension)
        if agent_id is None and extension in self._agents and self._agents[extension].spec.extension is None:
            agent_id = extension
        return agent_id

    def extension_of(self, agent_id: str) -> str:
        return self._agent(agent_id).spec.extension or agent_id

    def supervised_call(self, agent_id: str) -> SupervisedTarget | None:
        agent = self._agent(agent_id)
        customer = self._customers.get(agent.call_id or "")
        if customer is None or customer.phase != "connected" or customer.agent_id != agent.id:
            return None
        leg = agent.nailed if agent.spec.mode is ConnectionMode.NAILED else agent.talk_leg
        if leg is None or leg.ended or customer.call.ended or customer.bridge is None:
            return None
        return SupervisedTarget(agent.id, customer.acd_id, customer.queue, customer.call, leg, customer.bridge)

    # == public API: figures ======================================================================

    def queue_stats(self, queue: str) -> QueueStats:
        return self._core.queue_stats(queue, self._now())

    def agent_stats(self, agent_id: str) -> AgentStats:
        return self._core.agent_stats(agent_id, self._now())

    def agent_info(self, agent_id: str) -> AgentInfo:
        return self._core.agent_info(agent_id)

    def calls_in_line(self, queue: str) -> list[CallInfo]:
        return self._core.calls_in_line(queue)

    @property
    def agent_ids(self) -> list[str]:
        return list(self._agents)

    @property
    def queue_ids(self) -> list[str]:
        return list(self._queues)

    # == public API: the campaign runner ==========================================================

    async def connect_outbound(
        self,
        call: Call,
        queue: str,
        *,
        contact_id: str | None = None,
        number: str | None = None,
        vip: bool = False,
        wait_s: float | None = None,
        survey: bool | SurveySettings | None = None,
        campaign_id: int | None = None,
        campaign: str | None = None,
    ) -> Connected | NoAgent:
        """Route an answered outbound call to a free agent of ``queue``.

        Nailed agents are bridged at once (a beep, no ringing). Returns :class:`NoAgent` at once
        when no member is ready, and after ``wait_s`` (default ``outbound_wait_s``) when nobody
        took it, so the runner can still play its abandon message within 2 seconds.

        ``survey`` is the campaign's post-call survey setting: True/False overrides the queue's
        ``survey.enabled`` (the queue's prompts are used), a :class:`SurveySettings` replaces it,
        None leaves it to the queue. ``campaign_id``/``campaign`` go with the survey answer.
        """
        started = self._now()
        if self._stopping or not self._started:
            return NoAgent(call.id, "stopping", 0.0)
        if queue not in self._queues:
            raise UnknownQueueError(f"queue {queue!r} is not configured (known: {', '.join(sorted(self._queues))})")
        if not any(self._core.agent_info(a).state is AgentState.READY for a in self._members[queue]):
            return NoAgent(call.id, "no-agent-ready", 0.0)
        assert self._loop is not None
        customer = _Customer(
            call=call,
            acd_id=call.id,
            number=number or _caller_number(call, outbound=True),
            direction="outbound",
            phase="queued",
            queue=queue,
            connected=self._loop.create_future(),
            survey=survey,
            campaign_id=campaign_id,
            campaign=campaign,
        )
        self._customers[customer.acd_id] = customer
        self._numbers[customer.acd_id] = customer.number
        self._spawn(self._watch_customer(customer), "acd-watch-customer", call_id=customer.acd_id)
        self._feed(lambda now: self._core.call_arrived(customer.acd_id, queue, now, contact_id=contact_id, vip=vip))
        assert customer.connected is not None
        try:
            agent_id = await asyncio.wait_for(
                asyncio.shield(customer.connected), self.config.outbound_wait_s if wait_s is None else wait_s
            )
        except TimeoutError:
            agent_id = None
        waited = self._now() - started
        if agent_id is not None:
            return Connected(call.id, agent_id, waited)
        if customer.phase == "queued":
            customer.phase = "leaving"  # the runner keeps the call for its abandon message
            self._stop_hold(customer)
            self._customers.pop(customer.acd_id, None)
            self._feed(lambda now: self._core.caller_hung_up(customer.acd_id, now))
            return NoAgent(call.id, "timeout", waited)
        return NoAgent(call.id, "caller-left", waited)


async def _save_callback(sessionmaker: async_sessionmaker[AsyncSession], **values: Any) -> None:
    await insert_callback(sessionmaker, **values)
    changes = {"state": values["state"]}
    if values.get("arrived_at") is not None:  # a scheduled callback takes its place when it falls due
        changes["arrived_at"] = values["arrived_at"]
    await update_callback(sessionmaker, values["id"], **changes)


def _dialled_user(call: Call) -> str:
    if call.headers is None:
        return ""
    try:
        return Address.parse(call.headers.get("to") or "").uri.user or ""
    except (SipSyntaxError, ValueError):
        return ""


def _caller_number(call: Call, *, outbound: bool = False) -> str:
    text = call.remote
    if outbound and call.headers is not None:
        text = call.headers.get("to") or text
    try:
        uri = Address.parse(text).uri if outbound else SipURI.parse(text)
    except (SipSyntaxError, ValueError):
        return ""
    return uri.user or ""
