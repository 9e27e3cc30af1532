"""queue_log rows from ACD events, in Asterisk's layout: ``time|callid|queue|agent|verb|data1|...``.

Each event class maps to one verb (two for ``CallCompleted``: COMPLETEAGENT / COMPLETECALLER, and
for ``CallRejected``: FULL / JOINEMPTY). The data fields follow Asterisk's app_queue where the verb
exists there; for example ``CONNECT|holdtime|bridged-channel-uniqueid|ringtime`` becomes
``CONNECT|hold_s||ring_s`` and ``ABANDON|position|origposition|waittime``. Agent-only rows use
the queue name ``NONE`` as Asterisk does. Verbs that Asterisk lacks are marked "extension" in
:data:`VERBS`. Times are the ACD clock's seconds; the storage layer converts them to UTC.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from acd._events import (
    AcdEvent,
    AgentLoggedIn,
    AgentLoggedOut,
    AgentPaused,
    AgentUnpaused,
    CallAbandoned,
    CallbackAtRisk,
    CallbackFinished,
    CallbackRequested,
    CallCompleted,
    CallConnected,
    CallExitedEmpty,
    CallExitedWithKey,
    CallExitedWithTimeout,
    CallQueued,
    CallRejected,
    OfferWithdrawn,
    RingNoAnswer,
    WrapupEnded,
    WrapupStarted,
)

__all__ = ["NO_QUEUE", "VERBS", "QueueLogRecord", "queue_log_record", "verb_of"]

NO_QUEUE: Final = "NONE"

#: verb -> (data fields, origin). Data fields in order.
VERBS: Final[dict[str, tuple[tuple[str, ...], str]]] = {
    "ENTERQUEUE": (("url", "callerid", "position"), "asterisk"),
    "CONNECT": (("hold_s", "bridged_channel", "ring_s"), "asterisk"),
    "COMPLETEAGENT": (("hold_s", "call_s", "original_position"), "asterisk"),
    "COMPLETECALLER": (("hold_s", "call_s", "original_position"), "asterisk"),
    "ABANDON": (("position", "original_position", "wait_s"), "asterisk"),
    "EXITWITHTIMEOUT": (("position", "original_position", "wait_s", "destination"), "asterisk"),
    "EXITWITHKEY": (("key", "position", "original_position", "wait_s", "destination"), "asterisk"),
    "EXITEMPTY": (("position", "original_position", "wait_s", "destination"), "asterisk"),
    "FULL": (("destination",), "asterisk"),
    "JOINEMPTY": (("destination",), "asterisk"),
    "RINGNOANSWER": (("ring_ms", "reason"), "asterisk"),
    "RINGCANCELED": (("ring_ms", "reason"), "asterisk"),
    "PAUSE": (("reason", "automatic"), "asterisk"),
    "UNPAUSE": (("reason", "paused_s"), "asterisk"),
    "LOGIN": (("mode",), "asterisk (AGENTLOGIN)"),
    "LOGOFF": (("logged_in_s", "reason"), "asterisk (AGENTLOGOFF)"),
    "WRAPUPSTART": (("wrapup_s",), "asterisk"),
    "WRAPUPEND": (("wrap_s", "early"), "extension"),
    "CALLBACKREQUEST": (("callback_id", "position", "due_at", "contact_id"), "extension"),
    "CALLBACKATRISK": (("callback_id", "due_at"), "extension"),
    "CALLBACKDONE": (("callback_id",), "extension"),
    "CALLBACKFAILED": (("callback_id",), "extension"),
    # Live supervision sessions (acd.supervision): who listened, whispered or barged, and how long.
    "SPYSTART": (("supervisor", "mode", "origin", "supervisor_call_id"), "extension"),
    "SPYMODE": (("supervisor", "mode", "previous", "by"), "extension"),
    "SPYEND": (("supervisor", "mode", "duration_s", "reason"), "extension"),
}


@dataclass(frozen=True, slots=True)
class QueueLogRecord:
    """One queue_log row."""

    time: float
    call_id: str
    queue: str
    agent: str
    verb: str
    data: tuple[str, ...]

    def to_line(self) -> str:
        """Asterisk's pipe-separated text form, time in whole seconds."""
        return "|".join((str(int(self.time)), self.call_id, self.queue, self.agent, self.verb, *self.data))


def verb_of(event: AcdEvent) -> str | None:
    """The queue_log verb of ``event``, or ``None`` when it is not logged."""
    if isinstance(event, CallCompleted | CallRejected | CallbackFinished):
        return event.verb_for
    return event.verb


def _s(x: float) -> str:
    return str(round(x))


def _ms(x: float) -> str:
    return str(round(x * 1000))


_Row = tuple[str, str, str, tuple[str, ...]]  # call_id, queue, agent, data

_BUILDERS: Final[dict[type[AcdEvent], Callable[[AcdEvent], _Row]]] = {}


def _call_row(e: AcdEvent) -> _Row:
    if isinstance(e, CallQueued):
        return e.call_id, e.queue, NO_QUEUE, ("", e.contact_id or "", str(e.position))
    if isinstance(e, CallConnected):
        return e.call_id, e.queue, e.agent_id, (_s(e.hold_s), "", _s(e.ring_s))
    if isinstance(e, CallCompleted):
        return e.call_id, e.queue, e.agent_id, (_s(e.wait_s), _s(e.talk_s + e.on_hold_s), str(e.original_position))
    if isinstance(e, CallAbandoned):
        return e.call_id, e.queue, NO_QUEUE, (str(e.position), str(e.original_position), _s(e.wait_s))
    if isinstance(e, CallExitedWithTimeout | CallExitedEmpty):
        return (
            e.call_id,
            e.queue,
            NO_QUEUE,
            (str(e.position), str(e.original_position), _s(e.wait_s), str(e.destination)),
        )
    if isinstance(e, CallExitedWithKey):
        keyed = (e.key, str(e.position), str(e.original_position), _s(e.wait_s), str(e.destination))
        return e.call_id, e.queue, NO_QUEUE, keyed
    if isinstance(e, CallRejected):
        return e.call_id, e.queue, NO_QUEUE, (str(e.destination),)
    if isinstance(e, RingNoAnswer | OfferWithdrawn):
        return e.call_id, e.queue, e.agent_id, (_ms(e.ring_s), e.reason)
    if isinstance(e, WrapupStarted):
        return e.call_id, e.queue, e.agent_id, (_s(e.wrapup_s),)
    if isinstance(e, WrapupEnded):
        return e.call_id, e.queue, e.agent_id, (_s(e.wrap_s), str(int(e.early)))
    if isinstance(e, CallbackRequested):
        data = (e.callback_id, str(e.position), _s(e.due_at), e.contact_id or "")
        return e.call_id, e.queue, NO_QUEUE, data
    if isinstance(e, CallbackAtRisk):
        return e.callback_id, e.queue, NO_QUEUE, (e.callback_id, _s(e.due_at))
    if isinstance(e, CallbackFinished):
        return e.call_id, e.queue, e.agent_id, (e.callback_id,)
    raise TypeError(type(e).__name__)


def _agent_row(e: AcdEvent) -> _Row:
    if isinstance(e, AgentLoggedIn):
        return NO_QUEUE, NO_QUEUE, e.agent_id, (e.mode.value,)
    if isinstance(e, AgentLoggedOut):
        return NO_QUEUE, NO_QUEUE, e.agent_id, (_s(e.logged_in_s), e.reason)
    if isinstance(e, AgentPaused):
        return NO_QUEUE, NO_QUEUE, e.agent_id, (e.reason, str(int(e.automatic)))
    if isinstance(e, AgentUnpaused):
        return NO_QUEUE, NO_QUEUE, e.agent_id, (e.reason, _s(e.paused_s))
    raise TypeError(type(e).__name__)


_CALL_EVENTS: tuple[type[AcdEvent], ...] = (
    CallQueued,
    CallConnected,
    CallCompleted,
    CallAbandoned,
    CallExitedWithTimeout,
    CallExitedEmpty,
    CallExitedWithKey,
    CallRejected,
    RingNoAnswer,
    OfferWithdrawn,
    WrapupStarted,
    WrapupEnded,
    CallbackRequested,
    CallbackAtRisk,
    CallbackFinished,
)
_AGENT_EVENTS: tuple[type[AcdEvent], ...] = (AgentLoggedIn, AgentLoggedOut, AgentPaused, AgentUnpaused)
_BUILDERS.update(dict.fromkeys(_CALL_EVENTS, _call_row))
_BUILDERS.update(dict.fromkeys(_AGENT_EVENTS, _agent_row))


def queue_log_record(event: AcdEvent) -> QueueLogRecord | None:
    """The queue_log row for ``event``; ``None`` for events that are not logged (state changes, offers)."""
    verb = verb_of(event)
    build = _BUILDERS.get(type(event))
    if verb is None or build is None:
        return None
    call_id, queue, agent, data = build(event)
    return QueueLogRecord(time=event.at, call_id=call_id, queue=queue, agent=agent, verb=verb, data=data)
