"""Queue and agent metrics with the standard contact-centre definitions, computed from ACD events.

:class:`AcdMetrics` only reads events (``observe``), so the same figures come from the live core,
the simulator, or a replayed queue log. Counters are cumulative since construction or ``reset``;
the service snapshots and resets them per interval if it wants interval figures.

Definitions (per queue):

- *offered*: calls that entered the queue and left it: answered + abandoned + exited (max wait,
  exit key, leave rule) + turned into a callback request. Calls refused at the door (FULL,
  JOINEMPTY) never entered and are counted as ``rejected`` only.
- *service level* = answered with hold <= T / offered; abandons are included (short ones too).
  Default T = 20 s with target 0.8 ("80/20"). ``None`` while nothing was offered.
- *ASA* = total hold of answered calls / answered.
- *AHT* = (talk + on-hold + wrap-up) / handled calls (completed calls; callbacks included).
- *abandon rate* = abandoned / offered.
- *occupancy* (agent) = (time on_call + wrap_up) / (logged-in time not paused, i.e. time in ready,
  offered, on_call, wrap_up). Per queue it is the queue's handle time over the summed staffed time of
  its members (an agent in several queues counts fully in each, so per-queue occupancies of shared
  agents do not add up).
- *longest waiting call*: the longest current wait among live callers in the queue (callbacks are
  reported separately as ``oldest_callback_s``).

Callback connections (virtual callers) count as ``callbacks_answered``, not as answered calls, so
the live service level is not flattered by callbacks.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from acd._events import (
    AcdEvent,
    AgentLoggedIn,
    AgentStateChanged,
    CallAbandoned,
    CallbackRequested,
    CallCompleted,
    CallConnected,
    CallExitedEmpty,
    CallExitedWithKey,
    CallExitedWithTimeout,
    CallOffered,
    CallQueued,
    CallRejected,
    RingNoAnswer,
    WrapupEnded,
)
from acd._state import AgentState

__all__ = ["AcdMetrics", "AgentStats", "QueueStats"]

_STAFFED = frozenset({AgentState.READY, AgentState.OFFERED, AgentState.ON_CALL, AgentState.WRAP_UP})
_BUSY = frozenset({AgentState.ON_CALL, AgentState.WRAP_UP})


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueStats:
    queue: str
    entered: int
    offered: int
    answered: int
    answered_within_sl: int
    abandoned: int
    exited_timeout: int
    exited_key: int
    exited_empty: int
    callbacks_requested: int
    callbacks_answered: int
    rejected: int
    waiting: int
    service_level_s: float
    service_level: float | None
    asa_s: float | None
    aht_s: float | None
    abandon_rate: float | None
    occupancy: float | None
    longest_wait_s: float
    oldest_callback_s: float
    handled: int
    talk_s: float
    on_hold_s: float
    wrap_s: float


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentStats:
    agent_id: str
    state: AgentState
    offers: int
    no_answers: int
    answered: int
    handled: int
    effective_calls: int
    talk_s: float
    on_hold_s: float
    wrap_s: float
    logged_in_s: float
    staffed_s: float
    busy_s: float
    paused_s: float
    aht_s: float | None
    occupancy: float | None


@dataclass(slots=True)
class _Q:
    sl_s: float
    aht_window: int
    entered: int = 0
    answered: int = 0
    within: int = 0
    hold_total: float = 0.0
    abandoned: int = 0
    ex_timeout: int = 0
    ex_key: int = 0
    ex_empty: int = 0
    cb_requested: int = 0
    cb_live: int = 0  # callbacks requested by callers who were waiting live (they left the live queue)
    cb_answered: int = 0
    rejected: int = 0
    handled: int = 0
    talk: float = 0.0
    on_hold: float = 0.0
    wrap: float = 0.0
    waiting: dict[str, float] = field(default_factory=dict)  # live call -> entered at
    callbacks: dict[str, float] = field(default_factory=dict)  # callback call -> requested at
    recent_handle: deque[float] = field(default_factory=deque)
    recent_wrap: deque[float] = field(default_factory=deque)

    @property
    def offered(self) -> int:
        return self.answered + self.abandoned + self.ex_timeout + self.ex_key + self.ex_empty + self.cb_live


@dataclass(slots=True)
class _A:
    state: AgentState = AgentState.LOGGED_OUT
    since: float = 0.0
    in_state: dict[AgentState, float] = field(default_factory=dict)
    offers: int = 0
    no_answers: int = 0
    answered: int = 0
    handled: int = 0
    effective: int = 0
    talk: float = 0.0
    on_hold: float = 0.0
    wrap: float = 0.0

    def time_in(self, states: frozenset[AgentState], now: float) -> float:
        total = sum((v for s, v in self.in_state.items() if s in states), 0.0)
        if self.state in states:
            total += max(0.0, now - self.since)
        return total


class AcdMetrics:
    """Accumulates queue and agent figures from events; ask with :meth:`queue_stats`/:meth:`agent_stats`."""

    def __init__(self) -> None:
        self._queues: dict[str, _Q] = {}
        self._agents: dict[str, _A] = {}

    def add_queue(self, queue: str, service_level_s: float = 20.0, aht_window: int = 50) -> None:
        if queue not in self._queues:
            self._queues[queue] = _Q(sl_s=service_level_s, aht_window=aht_window)

    def reset(self) -> None:
        """Zero the counters; calls waiting now and agents' current states are kept."""
        for name, q in list(self._queues.items()):
            fresh = _Q(sl_s=q.sl_s, aht_window=q.aht_window, waiting=q.waiting, callbacks=q.callbacks)
            fresh.recent_handle, fresh.recent_wrap = q.recent_handle, q.recent_wrap
            self._queues[name] = fresh
        for name, a in list(self._agents.items()):
            self._agents[name] = _A(state=a.state, since=a.since)

    def _q(self, queue: str) -> _Q:
        q = self._queues.get(queue)
        if q is None:
            q = self._queues[queue] = _Q(sl_s=20.0, aht_window=50)
        return q

    def _a(self, agent_id: str) -> _A:
        a = self._agents.get(agent_id)
        if a is None:
            a = self._agents[agent_id] = _A()
        return a

    def mark_effective(self, agent_id: str) -> None:
        """Count one effective call for the agent (the disposition said the contact was reached)."""
        self._a(agent_id).effective += 1

    def observe(self, e: AcdEvent) -> None:
        """Feed one event; unknown event types are ignored."""
        if isinstance(e, AgentStateChanged):
            a = self._a(e.agent_id)
            a.in_state[a.state] = a.in_state.get(a.state, 0.0) + max(0.0, e.at - a.since)
            a.state, a.since = e.new, e.at
        elif isinstance(e, AgentLoggedIn):
            self._a(e.agent_id)
        elif isinstance(e, CallQueued):
            q = self._q(e.queue)
            q.entered += 1
            if e.callback_id is None:
                q.waiting[e.call_id] = e.at
            else:
                q.callbacks[e.call_id] = e.at
        elif isinstance(e, CallOffered):
            self._a(e.agent_id).offers += 1
        elif isinstance(e, RingNoAnswer):
            self._a(e.agent_id).no_answers += 1
        elif isinstance(e, CallConnected):
            q = self._q(e.queue)
            if e.callback_id is None:
                q.answered += 1
                q.hold_total += e.hold_s
                q.within += e.hold_s <= q.sl_s
                q.waiting.pop(e.call_id, None)
            else:
                q.cb_answered += 1
                q.callbacks.pop(e.call_id, None)
            self._a(e.agent_id).answered += 1
        elif isinstance(e, CallCompleted):
            q = self._q(e.queue)
            q.handled += 1
            q.talk += e.talk_s
            q.on_hold += e.on_hold_s
            _push(q.recent_handle, e.talk_s + e.on_hold_s, q.aht_window)
            a = self._a(e.agent_id)
            a.handled += 1
            a.talk += e.talk_s
            a.on_hold += e.on_hold_s
        elif isinstance(e, WrapupEnded):
            q = self._q(e.queue)
            q.wrap += e.wrap_s
            _push(q.recent_wrap, e.wrap_s, q.aht_window)
            self._a(e.agent_id).wrap += e.wrap_s
        elif isinstance(e, CallAbandoned):
            q = self._q(e.queue)
            q.abandoned += 1
            q.waiting.pop(e.call_id, None)
        elif isinstance(e, CallExitedWithTimeout | CallExitedWithKey | CallExitedEmpty):
            q = self._q(e.queue)
            if isinstance(e, CallExitedWithTimeout):
                q.ex_timeout += 1
            elif isinstance(e, CallExitedWithKey):
                q.ex_key += 1
            else:
                q.ex_empty += 1
            q.waiting.pop(e.call_id, None)
        elif isinstance(e, CallbackRequested):
            q = self._q(e.queue)
            q.cb_requested += 1
            if q.waiting.pop(e.call_id, None) is not None:
                q.cb_live += 1
            q.callbacks.setdefault(e.call_id, e.at)
        elif isinstance(e, CallRejected):
            self._q(e.queue).rejected += 1

    def forget_callback(self, queue: str, call_id: str) -> None:
        """A callback left the queue without a CONNECT (the dial failed)."""
        self._q(queue).callbacks.pop(call_id, None)

    def recent_aht(self, queue: str) -> float | None:
        """Mean handle time of the last ``aht_window`` calls (talk + on-hold, plus mean wrap-up)."""
        q = self._queues.get(queue)
        if q is None or not q.recent_handle:
            return None
        wrap = sum(q.recent_wrap) / len(q.recent_wrap) if q.recent_wrap else 0.0
        return sum(q.recent_handle) / len(q.recent_handle) + wrap

    def queue_stats(self, queue: str, now: float, members: Iterable[str] = ()) -> QueueStats:
        q = self._q(queue)
        offered = q.offered
        handle = q.talk + q.on_hold + q.wrap
        staffed = sum(self._a(m).time_in(_STAFFED, now) for m in members)
        return QueueStats(
            queue=queue,
            entered=q.entered,
            offered=offered,
            answered=q.answered,
            answered_within_sl=q.within,
            abandoned=q.abandoned,
            exited_timeout=q.ex_timeout,
            exited_key=q.ex_key,
            exited_empty=q.ex_empty,
            callbacks_requested=q.cb_requested,
            callbacks_answered=q.cb_answered,
            rejected=q.rejected,
            waiting=len(q.waiting),
            service_level_s=q.sl_s,
            service_level=q.within / offered if offered else None,
            asa_s=q.hold_total / q.answered if q.answered else None,
            aht_s=handle / q.handled if q.handled else None,
            abandon_rate=q.abandoned / offered if offered else None,
            occupancy=handle / staffed if staffed > 0 else None,
            longest_wait_s=max((now - t for t in q.waiting.values()), default=0.0),
            oldest_callback_s=max((now - t for t in q.callbacks.values()), default=0.0),
            handled=q.handled,
            talk_s=q.talk,
            on_hold_s=q.on_hold,
            wrap_s=q.wrap,
        )

    def agent_stats(self, agent_id: str, now: float) -> AgentStats:
        a = self._a(agent_id)
        staffed = a.time_in(_STAFFED, now)
        busy = a.time_in(_BUSY, now)
        paused = a.time_in(frozenset({AgentState.PAUSED}), now)
        return AgentStats(
            agent_id=agent_id,
            state=a.state,
            offers=a.offers,
            no_answers=a.no_answers,
            answered=a.answered,
            handled=a.handled,
            effective_calls=a.effective,
            talk_s=a.talk,
            on_hold_s=a.on_hold,
            wrap_s=a.wrap,
            logged_in_s=staffed + paused,
            staffed_s=staffed,
            busy_s=busy,
            paused_s=paused,
            aht_s=(a.talk + a.on_hold + a.wrap) / a.handled if a.handled else None,
            occupancy=busy / staffed if staffed > 0 else None,
        )


def _push(window: deque[float], value: float, size: int) -> None:
    window.append(value)
    while len(window) > size:
        window.popleft()
