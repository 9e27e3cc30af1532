"""Agent and callback state machines, as transition tables (h11 ``_state.py`` style).

Theory of operation
-------------------
An agent is in exactly one :class:`AgentState`. The engine (``acd._engine``) is the only code that
changes it, and only by firing an :class:`AgentInput` through :data:`AGENT_TRANSITIONS`.

Rule 1: a transition that is not in the table is illegal. It raises :class:`AcdStateError` (h11
turns its ``KeyError`` into a ``LocalProtocolError`` the same way) and changes nothing.

Rule 2: every state either needs no exit (``logged_out``, ``ready``, ``paused``: the agent decides)
or has one that cannot be lost, listed in :data:`AGENT_STATE_EXITS`: ``offered`` ends on the ring
timeout (or, in nailed mode, the confirmation guard), ``on_call`` ends with the SIP dialog (BYE,
or the RTP media timeout that the service reports as the call's end), ``wrap_up`` ends on the
queue's wrap-up timer. An optional max pause ends ``paused`` too.

Rule 3: there is no transition from ``offered`` or ``on_call`` to ``offered``. An agent who is
ringing or talking is never offered a second call; no "ring in use" setting exists.

Commands that arrive while a call is ringing or connected (pause, log out) are kept pending by the
engine and fired from the next state that allows them; the table shows the transitions that are
finally taken.

A callback request has its own small machine (:data:`CALLBACK_TRANSITIONS`):
``requested -> offered -> dialing -> done | failed``; ``offered -> requested`` when the agent did not
take it. ``dialing`` is entered once only, so a callback is never dialled twice.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from acd._errors import AcdStateError

__all__ = [
    "AGENT_STATE_EXITS",
    "AGENT_TRANSITIONS",
    "CALLBACK_TRANSITIONS",
    "AgentInput",
    "AgentState",
    "AgentStateMachine",
    "CallbackInput",
    "CallbackState",
    "CallbackStateMachine",
]


class AgentState(StrEnum):
    LOGGED_OUT = "logged_out"
    READY = "ready"
    OFFERED = "offered"
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"
    PAUSED = "paused"


class AgentInput(StrEnum):
    LOGIN = "login"
    LOGIN_PAUSED = "login_paused"
    OFFER = "offer"
    ANSWER = "answer"
    OFFER_FAILED = "offer_failed"  # ring timeout, rejection, nailed bridge not confirmed
    OFFER_WITHDRAWN = "offer_withdrawn"  # the caller left, or another agent won a ring-all
    AUTO_PAUSE = "auto_pause"  # the Nth consecutive failed offer
    CALL_ENDED = "call_ended"  # with wrap-up
    CALL_ENDED_NO_WRAPUP = "call_ended_no_wrapup"
    WRAPUP_DONE = "wrapup_done"  # by the agent or the wrap-up timer
    PAUSE = "pause"
    UNPAUSE = "unpause"
    LOGOUT = "logout"


S = AgentState
I = AgentInput  # noqa: E741 -- short alias keeps the table readable

AGENT_TRANSITIONS: Final[dict[AgentState, dict[AgentInput, AgentState]]] = {
    S.LOGGED_OUT: {I.LOGIN: S.READY, I.LOGIN_PAUSED: S.PAUSED},
    S.READY: {I.OFFER: S.OFFERED, I.PAUSE: S.PAUSED, I.LOGOUT: S.LOGGED_OUT},
    S.OFFERED: {
        I.ANSWER: S.ON_CALL,
        I.OFFER_FAILED: S.READY,
        I.OFFER_WITHDRAWN: S.READY,
        I.AUTO_PAUSE: S.PAUSED,
        I.PAUSE: S.PAUSED,  # a pause requested while ringing, taken when the offer ends unanswered
        I.LOGOUT: S.LOGGED_OUT,  # logging out withdraws the offer first
    },
    S.ON_CALL: {
        I.CALL_ENDED: S.WRAP_UP,
        I.CALL_ENDED_NO_WRAPUP: S.READY,
        I.PAUSE: S.PAUSED,  # pending pause, taken when a call without wrap-up ends
        I.LOGOUT: S.LOGGED_OUT,  # pending logout, likewise
    },
    S.WRAP_UP: {I.WRAPUP_DONE: S.READY, I.PAUSE: S.PAUSED, I.LOGOUT: S.LOGGED_OUT},
    S.PAUSED: {I.UNPAUSE: S.READY, I.PAUSE: S.PAUSED, I.LOGOUT: S.LOGGED_OUT},
}

#: What ends each state (Rule 2). ``None``: no exit is needed, the agent chooses.
AGENT_STATE_EXITS: Final[dict[AgentState, str | None]] = {
    S.LOGGED_OUT: None,
    S.READY: None,
    S.PAUSED: None,  # or max pause, when the agent has one
    S.OFFERED: "ring timeout (nailed: confirmation guard)",
    S.ON_CALL: "end of the SIP dialog: BYE, or the RTP media timeout reported as the call's end",
    S.WRAP_UP: "the queue's wrap-up timer",
}

_HINTS: Final[dict[AgentInput, str]] = {
    I.LOGIN: "the agent is already logged in",
    I.LOGIN_PAUSED: "the agent is already logged in",
    I.OFFER: "only a ready agent is offered a call",
    I.ANSWER: "there is no offer to answer",
    I.OFFER_FAILED: "there is no offer to fail",
    I.OFFER_WITHDRAWN: "there is no offer to withdraw",
    I.AUTO_PAUSE: "auto-pause follows an unanswered offer only",
    I.CALL_ENDED: "the agent is not on a call",
    I.CALL_ENDED_NO_WRAPUP: "the agent is not on a call",
    I.WRAPUP_DONE: "the agent is not in wrap-up",
    I.PAUSE: "log the agent in first",
    I.UNPAUSE: "the agent is not paused",
    I.LOGOUT: "the agent is not logged in",
}


class AgentStateMachine:
    """The state of one agent; changes only through :meth:`fire`."""

    __slots__ = ("agent_id", "since", "state")

    def __init__(self, agent_id: str, now: float) -> None:
        self.agent_id = agent_id
        self.state = AgentState.LOGGED_OUT
        self.since = now

    def can(self, event: AgentInput) -> bool:
        return event in AGENT_TRANSITIONS[self.state]

    def check(self, event: AgentInput) -> None:
        """Raise :class:`AcdStateError` if ``event`` is illegal now; change nothing."""
        if not self.can(event):
            raise self._error(event)

    def _error(self, event: AgentInput) -> AcdStateError:
        old = self.state
        return AcdStateError(
            f"agent {self.agent_id!r} cannot {event.value.replace('_', ' ')} while {old.value}: {_HINTS[event]}",
            subject=self.agent_id,
            state=old.value,
            command=event.value,
        )

    def fire(self, event: AgentInput, now: float) -> tuple[AgentState, AgentState]:
        """Apply ``event``; returns ``(old, new)``. Illegal -> :class:`AcdStateError`, nothing changed."""
        old = self.state
        try:
            new = AGENT_TRANSITIONS[old][event]
        except KeyError:
            raise self._error(event) from None
        self.state = new
        self.since = now
        return old, new


class CallbackState(StrEnum):
    REQUESTED = "requested"
    OFFERED = "offered"
    DIALING = "dialing"
    DONE = "done"
    FAILED = "failed"


class CallbackInput(StrEnum):
    OFFER = "offer"
    OFFER_FAILED = "offer_failed"
    DIAL = "dial"
    REACHED = "reached"
    NOT_REACHED = "not_reached"


C = CallbackState
CI = CallbackInput

CALLBACK_TRANSITIONS: Final[dict[CallbackState, dict[CallbackInput, CallbackState]]] = {
    C.REQUESTED: {CI.OFFER: C.OFFERED},
    C.OFFERED: {CI.DIAL: C.DIALING, CI.OFFER_FAILED: C.REQUESTED},
    C.DIALING: {CI.REACHED: C.DONE, CI.NOT_REACHED: C.FAILED},
    C.DONE: {},
    C.FAILED: {},
}


class CallbackStateMachine:
    """One callback request; ``dialing`` can be entered once only, so it is never fired twice."""

    __slots__ = ("callback_id", "state")

    def __init__(self, callback_id: str) -> None:
        self.callback_id = callback_id
        self.state = CallbackState.REQUESTED

    def fire(self, event: CallbackInput) -> CallbackState:
        try:
            self.state = CALLBACK_TRANSITIONS[self.state][event]
        except KeyError:
            raise AcdStateError(
                f"callback {self.callback_id!r} cannot {event.value.replace('_', ' ')} while {self.state.value}",
                subject=self.callback_id,
                state=self.state.value,
                command=event.value,
            ) from None
        return self.state
