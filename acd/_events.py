"""What the ACD core says: events (facts, for the queue log, MQTT and metrics) and actions (orders
for the service that owns the SIP legs).

Every input of :class:`acd.Acd` returns a list of outputs in the order they happened; each output
is either an :class:`AcdEvent` or an :class:`AcdAction`. Events carry ``at``, the time on the ACD's
clock. Events whose ``verb`` is set become one queue_log row each (see ``acd.queue_log``); the
verbs and data fields follow Asterisk's queue_log (ENTERQUEUE, CONNECT, COMPLETEAGENT, ...), with a
few clearly named extensions (WRAPUPEND, CALLBACKDONE, ...). Times in payloads are seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from acd._config import ConnectionMode, Destination
from acd._state import AgentState

__all__ = [
    "AcdAction",
    "AcdEvent",
    "AcdOutput",
    "AgentLoggedIn",
    "AgentLoggedOut",
    "AgentPaused",
    "AgentStateChanged",
    "AgentUnpaused",
    "BridgeCall",
    "CallAbandoned",
    "CallCompleted",
    "CallConnected",
    "CallExitedEmpty",
    "CallExitedWithKey",
    "CallExitedWithTimeout",
    "CallOffered",
    "CallQueued",
    "CallRejected",
    "CallbackAtRisk",
    "CallbackFinished",
    "CallbackRequested",
    "ConfirmCallback",
    "DialCallback",
    "OfferCall",
    "OfferWithdrawn",
    "PlayAnnouncement",
    "ReleaseAgentLeg",
    "RingNoAnswer",
    "SendToVoicemail",
    "WithdrawOffer",
    "WithdrawReason",
    "WrapupEnded",
    "WrapupStarted",
]


WithdrawReason = Literal["caller-left", "answered-elsewhere", "agent-logged-out", "timed-out"]


def _nonneg(cls: str, **values: float) -> None:
    for name, value in values.items():
        if value < 0:
            raise ValueError(f"{cls}.{name}={value!r} must be >= 0 seconds")


# -- events ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class AcdEvent:
    """Base of all events. ``verb`` is the queue_log verb, or ``None`` when the event is not logged."""

    verb: ClassVar[str | None] = None
    at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentLoggedIn(AcdEvent):
    """LOGIN. The agent's phone (or nailed leg) is available to the ACD."""

    verb: ClassVar[str | None] = "LOGIN"
    agent_id: str
    mode: ConnectionMode


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentLoggedOut(AcdEvent):
    """LOGOFF, with the length of the session."""

    verb: ClassVar[str | None] = "LOGOFF"
    agent_id: str
    logged_in_s: float
    reason: str = ""

    def __post_init__(self) -> None:
        _nonneg("AgentLoggedOut", logged_in_s=self.logged_in_s)


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentStateChanged(AcdEvent):
    """Every agent state change (retained MQTT state); not a queue_log row of its own."""

    agent_id: str
    old: AgentState
    new: AgentState
    reason: str = ""
    call_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentPaused(AcdEvent):
    """PAUSE with its reason; ``automatic`` for the ACD's own pause after unanswered offers."""

    verb: ClassVar[str | None] = "PAUSE"
    agent_id: str
    reason: str
    automatic: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentUnpaused(AcdEvent):
    """UNPAUSE, with the pause reason that ended and how long it lasted."""

    verb: ClassVar[str | None] = "UNPAUSE"
    agent_id: str
    reason: str
    paused_s: float

    def __post_init__(self) -> None:
        _nonneg("AgentUnpaused", paused_s=self.paused_s)


@dataclass(frozen=True, slots=True, kw_only=True)
class CallQueued(AcdEvent):
    """ENTERQUEUE. ``position`` is 1-based; callbacks entering (from a rule) set ``callback_id``."""

    verb: ClassVar[str | None] = "ENTERQUEUE"
    call_id: str
    queue: str
    position: int
    contact_id: str | None = None
    vip: bool = False
    priority: int = 0
    callback_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CallOffered(AcdEvent):
    """The call is ringing an agent (ring mode) or being bridged to its nailed leg."""

    call_id: str
    queue: str
    agent_id: str
    mode: ConnectionMode
    callback_id: str | None = None
    forced: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class OfferWithdrawn(AcdEvent):
    """RINGCANCELED: the offer ended because the caller left or another agent answered first."""

    verb: ClassVar[str | None] = "RINGCANCELED"
    call_id: str
    queue: str
    agent_id: str
    ring_s: float
    reason: WithdrawReason


@dataclass(frozen=True, slots=True, kw_only=True)
class RingNoAnswer(AcdEvent):
    """RINGNOANSWER: the agent did not take the offer (timeout, rejected, or the leg failed)."""

    verb: ClassVar[str | None] = "RINGNOANSWER"
    call_id: str
    queue: str
    agent_id: str
    ring_s: float
    reason: Literal["timeout", "rejected", "failed"]

    def __post_init__(self) -> None:
        _nonneg("RingNoAnswer", ring_s=self.ring_s)


@dataclass(frozen=True, slots=True, kw_only=True)
class CallConnected(AcdEvent):
    """CONNECT: caller and agent talk. ``hold_s`` is the wait in this queue, ``ring_s`` the ring time."""

    verb: ClassVar[str | None] = "CONNECT"
    call_id: str
    queue: str
    agent_id: str
    hold_s: float
    ring_s: float
    original_position: int
    callback_id: str | None = None

    def __post_init__(self) -> None:
        _nonneg("CallConnected", hold_s=self.hold_s, ring_s=self.ring_s)


@dataclass(frozen=True, slots=True, kw_only=True)
class CallCompleted(AcdEvent):
    """COMPLETEAGENT or COMPLETECALLER (by ``by``).

    ``wait_s``: the queue wait before CONNECT (Asterisk's holdtime). ``talk_s``: connected time not
    on hold. ``on_hold_s``: time the agent held the customer. Connected time = talk_s + on_hold_s.
    """

    call_id: str
    queue: str
    agent_id: str
    by: Literal["agent", "caller"]
    wait_s: float
    talk_s: float
    on_hold_s: float
    original_position: int

    def __post_init__(self) -> None:
        _nonneg("CallCompleted", wait_s=self.wait_s, talk_s=self.talk_s, on_hold_s=self.on_hold_s)

    @property
    def verb_for(self) -> str:
        return "COMPLETEAGENT" if self.by == "agent" else "COMPLETECALLER"


@dataclass(frozen=True, slots=True, kw_only=True)
class CallAbandoned(AcdEvent):
    """ABANDON: the caller hung up while queued (or ringing an agent)."""

    verb: ClassVar[str | None] = "ABANDON"
    call_id: str
    queue: str
    position: int
    original_position: int
    wait_s: float

    def __post_init__(self) -> None:
        _nonneg("CallAbandoned", wait_s=self.wait_s)


@dataclass(frozen=True, slots=True, kw_only=True)
class CallExitedWithTimeout(AcdEvent):
    """EXITWITHTIMEOUT: max wait reached; the caller goes to ``destination``."""

    verb: ClassVar[str | None] = "EXITWITHTIMEOUT"
    call_id: str
    queue: str
    position: int
    original_position: int
    wait_s: float
    destination: Destination


@dataclass(frozen=True, slots=True, kw_only=True)
class CallExitedWithKey(AcdEvent):
    """EXITWITHKEY: the caller pressed an exit key."""

    verb: ClassVar[str | None] = "EXITWITHKEY"
    call_id: str
    queue: str
    key: str
    position: int
    original_position: int
    wait_s: float
    destination: Destination


@dataclass(frozen=True, slots=True, kw_only=True)
class CallExitedEmpty(AcdEvent):
    """EXITEMPTY: the leave rule sent the caller away because the queue has no agents."""

    verb: ClassVar[str | None] = "EXITEMPTY"
    call_id: str
    queue: str
    position: int
    original_position: int
    wait_s: float
    destination: Destination


@dataclass(frozen=True, slots=True, kw_only=True)
class CallRejected(AcdEvent):
    """FULL (max length) or JOINEMPTY (join rule): the caller was not queued."""

    call_id: str
    queue: str
    reason: Literal["full", "empty"]
    destination: Destination

    @property
    def verb_for(self) -> str:
        return "FULL" if self.reason == "full" else "JOINEMPTY"


@dataclass(frozen=True, slots=True, kw_only=True)
class WrapupStarted(AcdEvent):
    """WRAPUPSTART: the agent has ``wrapup_s`` seconds (the queue's setting) before the next call."""

    verb: ClassVar[str | None] = "WRAPUPSTART"
    agent_id: str
    call_id: str
    queue: str
    wrapup_s: float


@dataclass(frozen=True, slots=True, kw_only=True)
class WrapupEnded(AcdEvent):
    """WRAPUPEND (extension): wrap-up is over, by the timer or early by the agent (``early``)."""

    verb: ClassVar[str | None] = "WRAPUPEND"
    agent_id: str
    call_id: str
    queue: str
    wrap_s: float
    early: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class CallbackRequested(AcdEvent):
    """CALLBACKREQUEST: a virtual caller holds the place; ``due_at`` is the SLA deadline."""

    verb: ClassVar[str | None] = "CALLBACKREQUEST"
    callback_id: str
    call_id: str
    queue: str
    contact_id: str | None
    position: int
    due_at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class CallbackAtRisk(AcdEvent):
    """CALLBACKATRISK (extension): the callback reached the risk share of its SLA unserved."""

    verb: ClassVar[str | None] = "CALLBACKATRISK"
    callback_id: str
    queue: str
    due_at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class CallbackFinished(AcdEvent):
    """CALLBACKDONE / CALLBACKFAILED (extension): the one dial of the callback ended."""

    callback_id: str
    call_id: str
    queue: str
    agent_id: str
    reached: bool

    @property
    def verb_for(self) -> str:
        return "CALLBACKDONE" if self.reached else "CALLBACKFAILED"


# -- actions --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class AcdAction:
    """Base of the orders to the service. The service carries each out and reports back."""


@dataclass(frozen=True, slots=True, kw_only=True)
class OfferCall(AcdAction):
    """Offer ``call_id`` to ``agent_id``.

    ``ring``: INVITE the agent's phone; report ``offer_answered``/``offer_rejected``; the ACD times
    the ring out itself after ``timeout_s``. ``nailed``: bridge the caller to the agent's nailed leg
    with a short tone now and confirm with ``offer_answered`` within ``timeout_s``.
    For a callback (``callback_id`` set) there is no caller leg yet: ring or tone the agent only.
    """

    call_id: str
    agent_id: str
    queue: str
    mode: ConnectionMode
    timeout_s: float
    callback_id: str | None = None
    contact_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class WithdrawOffer(AcdAction):
    """Cancel the ringing INVITE to ``agent_id`` (or undo the nailed bridge)."""

    call_id: str
    agent_id: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class BridgeCall(AcdAction):
    """The agent answered (ring mode): bridge the caller to the agent's leg."""

    call_id: str
    agent_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ReleaseAgentLeg(AcdAction):
    """The agent answered an offer that no longer exists (the caller left): hang that leg up."""

    call_id: str
    agent_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PlayAnnouncement(AcdAction):
    """Tell a waiting caller the position (1-based) and the estimated wait, rounded up to 30 s."""

    call_id: str
    queue: str
    position: int
    ewt_s: float


@dataclass(frozen=True, slots=True, kw_only=True)
class SendToVoicemail(AcdAction):
    """Take the caller out of the ACD to the queue's voicemail."""

    call_id: str
    queue: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfirmCallback(AcdAction):
    """Play the "we will call you back" prompt and hang the caller up; the place in line is kept."""

    call_id: str
    callback_id: str
    queue: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DialCallback(AcdAction):
    """The agent took the callback: dial the customer once and report ``callback_result``."""

    callback_id: str
    call_id: str
    agent_id: str
    queue: str
    contact_id: str | None


AcdOutput = AcdEvent | AcdAction
