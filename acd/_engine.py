"""The ACD core: agents, queues and waiting calls, driven by inputs and a clock, deciding offers.

Theory of operation
-------------------
:class:`Acd` is pure: no asyncio, no sockets, no database, no clock of its own. Every input is a
method taking ``now`` (seconds on one monotonic clock: the service passes ``loop.time()``, the
simulator its virtual time; epoch seconds work too, as long as one clock is used throughout), and
returns the outputs it caused, in order: :class:`~acd.AcdAction` orders for the service (offer a
call, bridge, withdraw an offer, play an announcement, send to voicemail, dial a callback) and
:class:`~acd.AcdEvent` facts for the queue log, MQTT and metrics. ``next_deadline()`` is the one
timer the service arms; when it fires, the service calls ``tick(now)``. Nothing polls. Each input
first runs every deadline that is due, at the deadline's own time, so a late or coarse tick (or
the simulator jumping ahead) gives the same outcome as exact timers.

Rule 1: agent state changes only through the table in ``acd._state`` (``_fire``). An agent who
is offered a call or on one is not ready, and only ready agents are in the routing indices, so
no agent is ever offered a second call.

Rule 2: after every input the core is *settled*: no ready agent is eligible for a waiting call
(except agents who just declined that call, for the queue's ``retry_s``). Whatever makes a call
routable (arrival, an offer that failed, an escalation step, the end of a sticky wait) or an
agent ready marks it dirty, and ``_settle`` routes the dirty calls first, then the dirty agents.

Rule 3, fairness: a call that becomes routable picks among ready agents by its queue's strategy;
an agent that becomes ready takes, over all its queues, the waiting call with the highest
``(now - arrived + credit) * queue weight``: one global decision, not per-queue first-come.
Within a queue the order is ``arrived - credit``, which callbacks keep, so a virtual caller holds
the place of the caller who asked for it.

Deadlines live in one heap with lazy cancellation: ``_armed`` maps (kind, ref) to the live entry.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

import structlog

from acd._config import (
    MAX_SKILL_LEVEL,
    AcdConfig,
    AgentConfig,
    ConnectionMode,
    Destination,
    JoinRule,
    LeaveRule,
    MaxPauseAction,
    QueueConfig,
)
from acd._errors import (
    AcdClockError,
    AcdConfigError,
    AcdStateError,
    AssignmentError,
    UnknownAgentError,
    UnknownCallError,
    UnknownQueueError,
)
from acd._events import (
    AcdAction,
    AcdEvent,
    AcdOutput,
    AgentLoggedIn,
    AgentLoggedOut,
    AgentPaused,
    AgentStateChanged,
    AgentUnpaused,
    BridgeCall,
    CallAbandoned,
    CallbackAtRisk,
    CallbackFinished,
    CallbackRequested,
    CallCompleted,
    CallConnected,
    CallExitedEmpty,
    CallExitedWithKey,
    CallExitedWithTimeout,
    CallOffered,
    CallQueued,
    CallRejected,
    ConfirmCallback,
    DialCallback,
    OfferCall,
    OfferWithdrawn,
    PlayAnnouncement,
    ReleaseAgentLeg,
    RingNoAnswer,
    SendToVoicemail,
    WithdrawOffer,
    WithdrawReason,
    WrapupEnded,
    WrapupStarted,
)
from acd._routing import ReadyIndex, WaitingIndex, ready_key
from acd._state import (
    AGENT_STATE_EXITS,
    AgentInput,
    AgentState,
    AgentStateMachine,
    CallbackInput,
    CallbackState,
    CallbackStateMachine,
)
from acd.metrics import AcdMetrics, AgentStats, QueueStats

__all__ = ["Acd", "AgentInfo", "CallInfo", "CallPhase", "CallbackInfo"]

log = structlog.get_logger()

A = AgentState
AI = AgentInput


class CallPhase(StrEnum):
    """Where a call (or callback's virtual caller) is in the ACD."""

    WAITING = "waiting"  # in line, routable
    STICKY = "sticky"  # in line, reserved for its sticky agent for a while
    OFFERED = "offered"  # ringing one agent (or several, ring-all)
    DIALING = "dialing"  # callback: the agent took it, the customer is being dialled
    CONNECTED = "connected"


_IN_LINE = frozenset({CallPhase.WAITING, CallPhase.STICKY, CallPhase.OFFERED})


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentInfo:
    agent_id: str
    state: AgentState
    since: float
    mode: ConnectionMode
    pause_reason: str | None
    offered_call: str | None
    call_id: str | None
    pending: str | None
    idle_since: float | None
    calls: int
    talk_s: float


@dataclass(frozen=True, slots=True, kw_only=True)
class CallInfo:
    call_id: str
    queue: str
    phase: CallPhase
    position: int | None
    original_position: int
    arrived_at: float
    entered_at: float
    vip: bool
    priority: int
    contact_id: str | None
    offered_to: tuple[str, ...]
    agent_id: str | None
    sticky_agent: str | None
    escalation_step: int
    callback_id: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class CallbackInfo:
    callback_id: str
    call_id: str
    queue: str
    contact_id: str | None
    state: CallbackState
    requested_at: float
    due_at: float
    risk_at: float

    def at_risk(self, now: float) -> bool:
        return self.state not in (CallbackState.DONE, CallbackState.FAILED) and now >= self.risk_at


@dataclass(slots=True)
class _Membership:
    penalty: int
    index: int
    level: int


@dataclass(slots=True, eq=False)
class _Callback:
    sm: CallbackStateMachine
    call_id: str
    queue: str
    contact_id: str | None
    requested_at: float
    due_at: float
    risk_at: float
    agent_id: str | None = None

    def info(self) -> CallbackInfo:
        return CallbackInfo(
            callback_id=self.sm.callback_id,
            call_id=self.call_id,
            queue=self.queue,
            contact_id=self.contact_id,
            state=self.sm.state,
            requested_at=self.requested_at,
            due_at=self.due_at,
            risk_at=self.risk_at,
        )


@dataclass(slots=True, eq=False)
class _Queue:
    cfg: QueueConfig
    ready: ReadyIndex
    waiting: WaitingIndex
    step_levels: list[int]
    members: dict[str, _Membership] = field(default_factory=dict)
    calls: dict[str, _Call] = field(default_factory=dict)  # every call holding a place in line
    logged_in: int = 0
    available: int = 0
    next_index: int = 0


@dataclass(slots=True, eq=False)
class _Call:
    call_id: str
    queue: _Queue
    contact_id: str | None
    vip: bool
    priority: int
    arrived_at: float
    entered_at: float = 0.0
    key: tuple[float, int] = (0.0, 0)
    phase: CallPhase = CallPhase.WAITING
    original_position: int = 0
    step: int = 0
    offers: dict[str, float] = field(default_factory=dict)  # agent -> offered at
    excluded: dict[str, float] = field(default_factory=dict)  # agent -> not before
    sticky_agent: str | None = None
    agent_id: str | None = None
    answered_at: float = 0.0
    connected_at: float = 0.0
    ring_s: float = 0.0
    timed_out: bool = False
    hops: int = 0
    callback: _Callback | None = None


@dataclass(slots=True, eq=False)
class _Agent:
    cfg: AgentConfig
    sm: AgentStateMachine
    members: dict[str, _Membership] = field(default_factory=dict)
    idle_since: float = 0.0
    calls: int = 0
    talk_s: float = 0.0
    offer_call: str | None = None
    call_id: str | None = None
    wrap: tuple[str, str, float] | None = None  # call id, queue, started
    pending: tuple[Literal["pause", "logout"], str] | None = None
    no_answer_streak: int = 0
    pause_reason: str | None = None
    logged_in_at: float = 0.0
    sticky: set[str] = field(default_factory=set)


_TimerKind = Literal["ring", "wrapup", "maxpause", "step", "sticky", "maxwait", "announce", "exclude", "risk"]


class Acd:
    """The pure ACD. Build it with queues and agents, then feed inputs; see the module docstring."""

    def __init__(
        self,
        queues: Iterable[QueueConfig] = (),
        agents: Iterable[AgentConfig] = (),
        config: AcdConfig | None = None,
        *,
        rng: random.Random | None = None,
        now: float = 0.0,
    ) -> None:
        self.config = config or AcdConfig()
        self._rng = rng or random.Random()
        self._now = now
        self._queues: dict[str, _Queue] = {}
        self._agents: dict[str, _Agent] = {}
        self._calls: dict[str, _Call] = {}
        self._callbacks: dict[str, _Callback] = {}
        self._timers: list[tuple[float, int, _TimerKind, str]] = []
        self._armed: dict[tuple[_TimerKind, str], int] = {}
        self._seq = itertools.count()
        self._out: list[AcdOutput] = []
        self._dirty_calls: dict[str, None] = {}
        self._dirty_agents: dict[str, None] = {}
        self._dirty_queues: dict[str, None] = {}
        self.metrics = AcdMetrics()
        for q in queues:
            self.add_queue(q)
        for a in agents:
            self.add_agent(a)

    # == configuration ==========================================================================

    def add_queue(self, cfg: QueueConfig) -> None:
        """Add a queue (before the agents that are members of it)."""
        if cfg.id in self._queues:
            raise AcdConfigError(f"queue {cfg.id!r} is defined twice; queue ids must be unique")
        self._queues[cfg.id] = _Queue(
            cfg=cfg,
            ready=ReadyIndex(cfg.strategy, self._rng),
            waiting=WaitingIndex(len(cfg.escalation)),
            step_levels=[s.min_level for s in cfg.escalation],
        )
        self.metrics.add_queue(cfg.id, cfg.service_level_s, cfg.aht_window)

    def add_agent(self, cfg: AgentConfig) -> None:
        """Add an agent, or replace the settings of a logged-out one."""
        old = self._agents.get(cfg.id)
        if old is not None and old.sm.state is not A.LOGGED_OUT:
            raise AcdStateError(
                f"agent {cfg.id!r} is {old.sm.state.value}; log the agent out before changing skills or queues",
                subject=cfg.id,
                state=old.sm.state.value,
                command="add_agent",
            )
        members: dict[str, _Membership] = {}
        for qid, penalty in cfg.queues.items():
            q = self._queues.get(qid)
            if q is None:
                raise AcdConfigError(f"agent {cfg.id!r} is a member of unknown queue {qid!r}; add the queue first")
            if q.cfg.skill is None:
                level = MAX_SKILL_LEVEL
            elif q.cfg.skill in cfg.skills:
                level = cfg.skills[q.cfg.skill]
            else:
                raise AcdConfigError(
                    f"agent {cfg.id!r} is a member of queue {qid!r} but has no level in its skill "
                    f"{q.cfg.skill!r}; add skills={{{q.cfg.skill!r}: 5}} or drop the membership"
                )
            if cfg.id in q.cfg.agent_order:
                index = q.cfg.agent_order.index(cfg.id)
            else:
                index = len(q.cfg.agent_order) + q.next_index
                q.next_index += 1
            members[qid] = _Membership(penalty=penalty, index=index, level=level)
        if old is not None:
            for qid in old.members:
                self._queues[qid].members.pop(cfg.id, None)
        agent = _Agent(cfg=cfg, sm=old.sm if old else AgentStateMachine(cfg.id, self._now), members=members)
        if old is not None:
            agent.calls, agent.talk_s = old.calls, old.talk_s
        for qid, m in members.items():
            self._queues[qid].members[cfg.id] = m
        self._agents[cfg.id] = agent

    # == time =====================================================================================

    def next_deadline(self) -> float | None:
        """The earliest time at which ``tick`` has work; ``None`` when nothing is timed."""
        while self._timers:
            at, seq, kind, ref = self._timers[0]
            if self._armed.get((kind, ref)) == seq:
                return at
            heapq.heappop(self._timers)
        return None

    def tick(self, now: float) -> list[AcdOutput]:
        """Run every deadline up to ``now``."""
        self._advance(now)
        return self._flush(now)

    def _arm(self, kind: _TimerKind, ref: str, at: float) -> None:
        seq = next(self._seq)
        self._armed[(kind, ref)] = seq
        heapq.heappush(self._timers, (at, seq, kind, ref))
        if len(self._timers) > 4 * len(self._armed) + 1024:  # drop cancelled entries now and then
            self._timers = [t for t in self._timers if self._armed.get((t[2], t[3])) == t[1]]
            heapq.heapify(self._timers)

    def _cancel(self, kind: _TimerKind, ref: str) -> None:
        self._armed.pop((kind, ref), None)

    def _advance(self, now: float) -> None:
        if now < self._now:
            raise AcdClockError(
                f"now={now} is earlier than {self._now}, a time already seen; feed the ACD one monotonic clock"
            )
        while self._timers and self._timers[0][0] <= now:
            at, seq, kind, ref = heapq.heappop(self._timers)
            if self._armed.get((kind, ref)) != seq:
                continue
            del self._armed[(kind, ref)]
            self._now = max(self._now, at)
            self._on_timer(kind, ref, self._now)
            self._settle(self._now)
        self._now = now

    def _on_timer(self, kind: _TimerKind, ref: str, now: float) -> None:
        if kind == "risk":
            cb = self._callbacks[ref]
            self._emit(CallbackAtRisk(at=now, callback_id=ref, queue=cb.queue, due_at=cb.due_at))
            return
        if kind in ("ring", "wrapup", "maxpause"):
            agent = self._agents[ref]
            if kind == "ring":
                assert agent.offer_call is not None
                self._offer_failed(agent, self._calls[agent.offer_call], now, "timeout")
            elif kind == "wrapup":
                self._end_wrapup(agent, now, early=False)
                self._free_agent(agent, AI.WRAPUP_DONE, now)
            else:
                self._max_pause(agent, now)
            return
        call = self._calls[ref]
        if kind == "step":
            self._escalate(call, now)
        elif kind == "sticky":
            self._release_sticky(call, now)
        elif kind == "maxwait":
            self._max_wait(call, now)
        elif kind == "announce":
            self._announce(call, now)
        elif kind == "exclude":
            self._exclusions_expired(call, now)

    # == output ===================================================================================

    def _emit(self, event: AcdEvent) -> None:
        self._out.append(event)
        self.metrics.observe(event)

    def _act(self, action: AcdAction) -> None:
        self._out.append(action)

    def _flush(self, now: float) -> list[AcdOutput]:
        self._settle(now)
        out, self._out = self._out, []
        return out

    def _settle(self, now: float) -> None:
        """Rule 2: route dirty calls, then dirty agents, until nothing routable is left."""
        while True:
            if self._dirty_queues:
                qid = next(iter(self._dirty_queues))
                del self._dirty_queues[qid]
                self._check_leave(self._queues[qid], now)
            elif self._dirty_calls:
                cid = next(iter(self._dirty_calls))
                del self._dirty_calls[cid]
                call = self._calls.get(cid)
                if call is not None and call.phase is CallPhase.WAITING:
                    self._route_call(call, now)
            elif self._dirty_agents:
                aid = next(iter(self._dirty_agents))
                del self._dirty_agents[aid]
                agent = self._agents[aid]
                if agent.sm.state is A.READY:
                    self._route_agent(agent, now)
            else:
                return

    # == lookups ==================================================================================

    def _agent(self, agent_id: str) -> _Agent:
        agent = self._agents.get(agent_id)
        if agent is None:
            raise UnknownAgentError(f"agent {agent_id!r} is not configured; add it with add_agent(AgentConfig(...))")
        return agent

    def _queue(self, queue: str) -> _Queue:
        q = self._queues.get(queue)
        if q is None:
            known = ", ".join(sorted(self._queues)) or "none"
            raise UnknownQueueError(f"queue {queue!r} is not configured (known: {known})")
        return q

    # == agent inputs =============================================================================

    def agent_login(self, agent_id: str, now: float, *, paused_reason: str | None = None) -> list[AcdOutput]:
        """LOGIN; the agent starts ready, or paused with ``paused_reason``."""
        agent = self._agent(agent_id)
        self._advance(now)
        inp = AI.LOGIN if paused_reason is None else AI.LOGIN_PAUSED
        agent.sm.check(inp)
        agent.logged_in_at = now
        agent.no_answer_streak = 0
        agent.pending = None
        self._emit(AgentLoggedIn(at=now, agent_id=agent_id, mode=agent.cfg.mode))
        if paused_reason is None:
            self._fire(agent, inp, now, reason="login")
        else:
            self._pause(agent, inp, now, paused_reason)
        return self._flush(now)

    def agent_ready(self, agent_id: str, now: float) -> list[AcdOutput]:
        """The agent is ready: unpause, end wrap-up early, or cancel a pending pause/logout."""
        agent = self._agent(agent_id)
        self._advance(now)
        state = agent.sm.state
        if state is A.LOGGED_OUT:
            raise AcdStateError(
                f"agent {agent_id!r} is logged out; log the agent in (agent_login) before setting ready",
                subject=agent_id,
                state=state.value,
                command="ready",
            )
        if state is A.PAUSED:
            self._unpause(agent, now, "agent")
        elif state is A.WRAP_UP:
            self._end_wrapup(agent, now, early=True)
            self._free_agent(agent, AI.WRAPUP_DONE, now)
        else:
            agent.pending = None  # ready after this call
        return self._flush(now)

    def wrapup_done(self, agent_id: str, now: float) -> list[AcdOutput]:
        """The agent ends wrap-up early. Idempotent when the timer already ended it."""
        agent = self._agent(agent_id)
        self._advance(now)
        if agent.sm.state is A.WRAP_UP:
            self._end_wrapup(agent, now, early=True)
            self._free_agent(agent, AI.WRAPUP_DONE, now)
        elif agent.sm.state is not A.READY:
            agent.sm.check(AI.WRAPUP_DONE)
        return self._flush(now)

    def agent_pause(self, agent_id: str, now: float, reason: str = "break") -> list[AcdOutput]:
        """PAUSE with ``reason``. While ringing or on a call the pause waits for the call to end."""
        agent = self._agent(agent_id)
        self._advance(now)
        state = agent.sm.state
        if not reason:
            raise AcdStateError(
                f"agent {agent_id!r}: give a pause reason, e.g. 'break' or 'lunch'",
                subject=agent_id,
                state=state.value,
                command="pause",
            )
        if state in (A.OFFERED, A.ON_CALL):
            agent.pending = ("pause", reason)
        elif state is A.LOGGED_OUT:
            agent.sm.check(AI.PAUSE)
        else:
            if state is A.WRAP_UP:
                self._end_wrapup(agent, now, early=True)
            self._pause(agent, AI.PAUSE, now, reason)
        return self._flush(now)

    def agent_logout(self, agent_id: str, now: float, reason: str = "agent") -> list[AcdOutput]:
        """LOGOFF. A ringing offer is withdrawn (the caller keeps the place); a call in progress
        finishes first (and its wrap-up), then the agent is logged out."""
        agent = self._agent(agent_id)
        self._advance(now)
        state = agent.sm.state
        if state is A.LOGGED_OUT:
            agent.sm.check(AI.LOGOUT)
        if state is A.ON_CALL:
            agent.pending = ("logout", reason)
            return self._flush(now)
        if state is A.OFFERED:
            assert agent.offer_call is not None
            call = self._calls[agent.offer_call]
            self._withdraw(agent, call, now, "agent-logged-out")
            if not call.offers:
                self._requeue(call, now)
        elif state is A.WRAP_UP:
            self._end_wrapup(agent, now, early=True)
        self._logout(agent, now, reason)
        return self._flush(now)

    # == call inputs ==============================================================================

    def call_arrived(
        self,
        call_id: str,
        queue: str,
        now: float,
        *,
        contact_id: str | None = None,
        vip: bool = False,
        priority: int = 0,
        sticky_agent: str | None = None,
    ) -> list[AcdOutput]:
        """A caller wants ``queue``. ``sticky_agent``: the caller's last effective agent, looked up
        by the service (within its N days); the call waits up to ``sticky_wait_s`` for that agent."""
        q = self._queue(queue)
        self._advance(now)
        if call_id in self._calls:
            existing = self._calls[call_id]
            raise AcdStateError(
                f"call {call_id!r} is already {existing.phase.value} in queue {existing.queue.cfg.id!r}; "
                "use a new call id per arrival",
                subject=call_id,
                state=existing.phase.value,
                command="call_arrived",
            )
        call = _Call(call_id=call_id, queue=q, contact_id=contact_id, vip=vip, priority=priority, arrived_at=now)
        rule = q.cfg.join_rule
        if (rule is JoinRule.REJECT_NO_AGENTS and q.logged_in == 0) or (
            rule is JoinRule.REJECT_UNAVAILABLE and q.available == 0
        ):
            self._emit(
                CallRejected(at=now, call_id=call_id, queue=queue, reason="empty", destination=q.cfg.empty_destination)
            )
            self._send_to(call, q.cfg.empty_destination, now, "join-empty")
        elif q.cfg.max_len is not None and self._live_in_line(q) >= q.cfg.max_len:
            self._emit(
                CallRejected(at=now, call_id=call_id, queue=queue, reason="full", destination=q.cfg.full_destination)
            )
            self._send_to(call, q.cfg.full_destination, now, "queue-full")
        else:
            self._enqueue(call, q, now, sticky_agent=sticky_agent)
        return self._flush(now)

    def caller_identified(
        self,
        call_id: str,
        now: float,
        *,
        contact_id: str | None = None,
        vip: bool = False,
        sticky_agent: str | None = None,
    ) -> list[AcdOutput]:
        """What the service's caller look-up found, arriving after the call was queued: routing
        does not wait for the database. A call still waiting in line gets its VIP credit (its
        place moves up as if it had been VIP on arrival) and its sticky reservation, for what is
        left of ``sticky_wait_s`` since it entered (or at once if that agent is ready). A call
        already offered, connected or gone keeps its course; ``contact_id`` is recorded anyway."""
        self._advance(now)
        call = self._calls.get(call_id)
        if call is None:
            return self._flush(now)
        if contact_id is not None and call.contact_id is None:
            call.contact_id = contact_id
        if call.phase is not CallPhase.WAITING or call.callback is not None:
            return self._flush(now)
        q = call.queue
        if vip and not call.vip:
            call.vip = True
            q.waiting.remove(call.call_id)
            q.waiting.release_place(call.key)
            call.key = (call.arrived_at - self._credit(call, q), call.key[1])
            q.waiting.hold_place(call.key)
            q.waiting.add(call.step, (call.key[0], call.key[1], call.call_id))
            self._dirty_calls[call.call_id] = None
        sticky = self._agents.get(sticky_agent) if sticky_agent else None
        until = call.entered_at + q.cfg.sticky_wait_s
        if (
            sticky is not None
            and q.cfg.id in sticky.members
            and sticky.sm.state is not A.LOGGED_OUT
            and (sticky.sm.state is A.READY or until > now)
        ):
            q.waiting.remove(call.call_id)
            self._dirty_calls.pop(call.call_id, None)
            call.phase = CallPhase.STICKY
            call.sticky_agent = sticky.cfg.id
            sticky.sticky.add(call.call_id)
            self._arm("sticky", call.call_id, max(now, until))
            if sticky.sm.state is A.READY:
                self._dirty_agents[sticky.cfg.id] = None
        return self._flush(now)

    def has_ready_agent(self, queue: str) -> bool:
        """Whether some member of ``queue`` is ready now (skills aside): a call arriving now
        could be offered at once, so who it is (a sticky customer) may change the agent."""
        return len(self._queue(queue).ready) > 0

    def offer_answered(self, call_id: str, agent_id: str, now: float) -> list[AcdOutput]:
        """The agent answered (ring mode), or the service confirms the nailed bridge. A stale
        answer (the caller left, another agent won) yields :class:`ReleaseAgentLeg`."""
        agent = self._agent(agent_id)
        self._advance(now)
        call = self._calls.get(call_id)
        if agent.offer_call != call_id or call is None:
            if agent.call_id == call_id and agent.sm.state is A.ON_CALL:
                return self._flush(now)  # duplicate confirmation
            log.info("acd.stale_answer", call_id=call_id, agent_id=agent_id, state=agent.sm.state.value)
            self._act(ReleaseAgentLeg(call_id=call_id, agent_id=agent_id))
            return self._flush(now)
        offered_at = call.offers.pop(agent_id)
        self._cancel("ring", agent_id)
        agent.offer_call = None
        for other_id in list(call.offers):
            self._withdraw(self._agents[other_id], call, now, "answered-elsewhere")
        self._fire(agent, AI.ANSWER, now, call_id=call_id)
        agent.call_id = call_id
        agent.calls += 1
        agent.no_answer_streak = 0
        self._unplace(call)
        call.agent_id = agent_id
        call.answered_at = now
        call.ring_s = now - offered_at
        if call.callback is not None:
            call.callback.sm.fire(CallbackInput.DIAL)
            call.callback.agent_id = agent_id
            call.phase = CallPhase.DIALING
            cb = call.callback
            self._act(
                DialCallback(
                    callback_id=cb.sm.callback_id,
                    call_id=call_id,
                    agent_id=agent_id,
                    queue=call.queue.cfg.id,
                    contact_id=call.contact_id,
                )
            )
        else:
            self._connect(call, now)
            if agent.cfg.mode is ConnectionMode.RING:
                self._act(BridgeCall(call_id=call_id, agent_id=agent_id))
        return self._flush(now)

    def offer_rejected(
        self, call_id: str, agent_id: str, now: float, reason: Literal["rejected", "failed"] = "rejected"
    ) -> list[AcdOutput]:
        """The agent declined (486/603) or the agent leg failed. Stale reports are ignored."""
        agent = self._agent(agent_id)
        self._advance(now)
        if agent.offer_call != call_id:
            log.info("acd.stale_rejection", call_id=call_id, agent_id=agent_id)
            return self._flush(now)
        self._offer_failed(agent, self._calls[call_id], now, reason)
        return self._flush(now)

    def caller_hung_up(self, call_id: str, now: float) -> list[AcdOutput]:
        """The caller's leg ended: ABANDON while in line, COMPLETECALLER when connected."""
        self._advance(now)
        call = self._calls.get(call_id)
        if call is None:
            log.info("acd.stale_hangup", call_id=call_id)
            return self._flush(now)
        if call.phase is CallPhase.CONNECTED:
            self._complete(call, "caller", now, 0.0)
        elif call.callback is None and call.phase in _IN_LINE:
            position = call.queue.waiting.position(call.key)
            self._leave_line(call, now, "caller-left")
            self._emit(
                CallAbandoned(
                    at=now,
                    call_id=call_id,
                    queue=call.queue.cfg.id,
                    position=position,
                    original_position=call.original_position,
                    wait_s=now - call.entered_at,
                )
            )
            self._forget(call)
        # A callback's virtual caller has no live leg; its dialled leg ends via callback_result.
        return self._flush(now)

    def call_ended(
        self, call_id: str, now: float, by: Literal["agent", "caller"], *, on_hold_s: float = 0.0
    ) -> list[AcdOutput]:
        """A connected call ended (BYE from either side, or the RTP media timeout reported by the
        service). ``on_hold_s``: how long the agent held the customer (for AHT)."""
        self._advance(now)
        call = self._calls.get(call_id)
        if call is None:
            log.info("acd.stale_call_end", call_id=call_id)
            return self._flush(now)
        if call.phase is CallPhase.CONNECTED:
            self._complete(call, by, now, on_hold_s)
        elif call.phase is CallPhase.DIALING:
            assert call.callback is not None
            self._callback_failed(call, now)
        elif by == "caller":
            return self.caller_hung_up(call_id, now)
        else:
            raise AcdStateError(
                f"call {call_id!r} is {call.phase.value}, not connected to an agent; "
                "report the caller's hang-up with caller_hung_up",
                subject=call_id,
                state=call.phase.value,
                command="call_ended",
            )
        return self._flush(now)

    def dtmf_pressed(self, call_id: str, digit: str, now: float) -> list[AcdOutput]:
        """A waiting caller pressed ``digit``; the queue's exit keys decide (EXITWITHKEY or callback)."""
        self._advance(now)
        call = self._calls.get(call_id)
        if call is None or call.callback is not None or call.phase not in _IN_LINE:
            return self._flush(now)
        dest = call.queue.cfg.exit_keys.get(digit)
        if dest is None:
            log.debug("acd.dtmf_ignored", call_id=call_id, digit=digit)
            return self._flush(now)
        if dest.kind == "callback":
            return self.request_callback(call_id, now)
        position = call.queue.waiting.position(call.key)
        self._leave_line(call, now, "caller-left")
        self._emit(
            CallExitedWithKey(
                at=now,
                call_id=call_id,
                queue=call.queue.cfg.id,
                key=digit,
                position=position,
                original_position=call.original_position,
                wait_s=now - call.entered_at,
                destination=dest,
            )
        )
        self._send_to(call, dest, now, f"key-{digit}")
        return self._flush(now)

    def supervisor_assign(self, call_id: str, agent_id: str, now: float) -> list[AcdOutput]:
        """Offer a waiting call to a named ready agent, overriding strategy, skills and membership."""
        agent = self._agent(agent_id)
        self._advance(now)
        call = self._calls.get(call_id)
        if call is None:
            raise UnknownCallError(f"call {call_id!r} is not waiting in any queue (it may have ended)")
        if call.phase is CallPhase.OFFERED:
            raise AssignmentError(
                f"call {call_id!r} is ringing {', '.join(sorted(call.offers))}; wait for the outcome and retry"
            )
        if call.phase not in (CallPhase.WAITING, CallPhase.STICKY):
            raise AssignmentError(
                f"call {call_id!r} is already {call.phase.value}; only a waiting call can be assigned"
            )
        state = agent.sm.state
        if state is not A.READY:
            why = {
                A.LOGGED_OUT: "is logged out; ask them to log in",
                A.PAUSED: f"is paused ({agent.pause_reason}); unpause them first",
                A.OFFERED: f"is being offered call {agent.offer_call!r}; wait for the outcome",
                A.ON_CALL: f"is on call {agent.call_id!r}; pick another agent or wait",
                A.WRAP_UP: "is in wrap-up; end it (agent_ready) or wait for the timer",
            }[state]
            raise AssignmentError(f"cannot assign call {call_id!r}: agent {agent_id!r} {why}")
        self._offer(call, [agent], now, forced=True)
        return self._flush(now)

    def request_callback(
        self, call_id: str, now: float, *, callback_id: str | None = None, sla_s: float | None = None
    ) -> list[AcdOutput]:
        """The waiting caller asks to be called back: a virtual caller keeps the place in line and the
        caller is released (:class:`ConfirmCallback`). Idempotent by ``callback_id``
        (default ``cb-<call_id>``)."""
        self._advance(now)
        cb_id = callback_id or f"cb-{call_id}"
        if cb_id in self._callbacks:
            return self._flush(now)
        call = self._calls.get(call_id)
        if call is None or call.callback is not None or call.phase not in _IN_LINE:
            state = "gone" if call is None else call.phase.value
            raise AcdStateError(
                f"call {call_id!r} is {state}; only a caller waiting in a queue can ask for a callback "
                "(use schedule_callback for a new one)",
                subject=call_id,
                state=state,
                command="request_callback",
            )
        call.timed_out = False
        self._cancel("maxwait", call_id)
        self._cancel("announce", call_id)
        if call.phase is CallPhase.OFFERED:
            for aid in list(call.offers):
                self._withdraw(self._agents[aid], call, now, "caller-left")
            self._requeue(call, now)
        self._make_callback(call, now, cb_id, sla_s)
        self._act(ConfirmCallback(call_id=call_id, callback_id=cb_id, queue=call.queue.cfg.id))
        return self._flush(now)

    def schedule_callback(
        self,
        callback_id: str,
        queue: str,
        now: float,
        *,
        contact_id: str | None = None,
        sla_s: float | None = None,
        vip: bool = False,
        priority: int = 0,
        call_id: str | None = None,
        arrived_at: float | None = None,
    ) -> list[AcdOutput]:
        """A new callback request without a waiting caller (a complaint menu option, a web form).
        It joins ``queue`` now as a virtual caller. Idempotent by ``callback_id``.

        ``arrived_at`` (at most ``now``) is when the request first took its place in line: a
        callback restored after a restart keeps that place, its SLA counting from then."""
        q = self._queue(queue)
        self._advance(now)
        if callback_id in self._callbacks:
            return self._flush(now)
        cid = call_id or callback_id
        if cid in self._calls:
            raise AcdStateError(
                f"call id {cid!r} is in use; give the callback its own call_id",
                subject=cid,
                state=self._calls[cid].phase.value,
                command="schedule_callback",
            )
        arrived = now if arrived_at is None else min(arrived_at, now)
        call = _Call(call_id=cid, queue=q, contact_id=contact_id, vip=vip, priority=priority, arrived_at=arrived)
        self._enqueue(call, q, now, callback=(callback_id, sla_s))
        return self._flush(now)

    def callback_result(self, callback_id: str, reached: bool, now: float) -> list[AcdOutput]:
        """The one dial of a callback ended: ``reached`` -> CONNECT, else the callback failed and
        the agent goes to wrap-up. Repeated reports for a finished callback are ignored."""
        self._advance(now)
        cb = self._callbacks.get(callback_id)
        if cb is None:
            raise UnknownCallError(f"callback {callback_id!r} is unknown")
        if cb.sm.state in (CallbackState.DONE, CallbackState.FAILED):
            return self._flush(now)
        if cb.sm.state is not CallbackState.DIALING:
            raise AcdStateError(
                f"callback {callback_id!r} is {cb.sm.state.value}, not being dialled; no result to report",
                subject=callback_id,
                state=cb.sm.state.value,
                command="callback_result",
            )
        call = self._calls[cb.call_id]
        if reached:
            cb.sm.fire(CallbackInput.REACHED)
            self._connect(call, now)
            self._emit(
                CallbackFinished(
                    at=now,
                    callback_id=callback_id,
                    call_id=call.call_id,
                    queue=cb.queue,
                    agent_id=call.agent_id or "",
                    reached=True,
                )
            )
        else:
            self._callback_failed(call, now)
        return self._flush(now)

    def mark_effective(self, agent_id: str) -> None:
        """The agent's last call reached its goal (from the disposition); counts in agent stats."""
        self._agent(agent_id)
        self.metrics.mark_effective(agent_id)

    # == queries ==================================================================================

    def agent_info(self, agent_id: str) -> AgentInfo:
        a = self._agent(agent_id)
        return AgentInfo(
            agent_id=agent_id,
            state=a.sm.state,
            since=a.sm.since,
            mode=a.cfg.mode,
            pause_reason=a.pause_reason if a.sm.state is A.PAUSED else None,
            offered_call=a.offer_call,
            call_id=a.call_id,
            pending=a.pending[0] if a.pending else None,
            idle_since=a.idle_since if a.sm.state is A.READY else None,
            calls=a.calls,
            talk_s=a.talk_s,
        )

    def call_info(self, call_id: str) -> CallInfo:
        call = self._calls.get(call_id)
        if call is None:
            raise UnknownCallError(f"call {call_id!r} is not in the ACD (never arrived, or it left)")
        return CallInfo(
            call_id=call_id,
            queue=call.queue.cfg.id,
            phase=call.phase,
            position=call.queue.waiting.position(call.key) if call.phase in _IN_LINE else None,
            original_position=call.original_position,
            arrived_at=call.arrived_at,
            entered_at=call.entered_at,
            vip=call.vip,
            priority=call.priority,
            contact_id=call.contact_id,
            offered_to=tuple(sorted(call.offers)),
            agent_id=call.agent_id,
            sticky_agent=call.sticky_agent,
            escalation_step=call.step,
            callback_id=call.callback.sm.callback_id if call.callback else None,
        )

    def calls_in_line(self, queue: str) -> list[CallInfo]:
        """Callers and callbacks holding a place in ``queue``, in line order."""
        q = self._queue(queue)
        calls = sorted(q.calls.values(), key=lambda c: c.key)
        return [self.call_info(c.call_id) for c in calls]

    def callback_info(self, callback_id: str) -> CallbackInfo:
        cb = self._callbacks.get(callback_id)
        if cb is None:
            raise UnknownCallError(f"callback {callback_id!r} is unknown")
        return cb.info()

    def at_risk(self, now: float) -> list[CallbackInfo]:
        """Open callbacks past the risk share of their SLA (default 80% of 12 h), soonest due first."""
        risky = [cb.info() for cb in self._callbacks.values()]
        return sorted((c for c in risky if c.at_risk(now)), key=lambda c: c.due_at)

    def queue_stats(self, queue: str, now: float) -> QueueStats:
        q = self._queue(queue)
        return self.metrics.queue_stats(queue, now, q.members)

    def agent_stats(self, agent_id: str, now: float) -> AgentStats:
        self._agent(agent_id)
        return self.metrics.agent_stats(agent_id, now)

    def estimated_wait(self, queue: str, position: int) -> float:
        """EWT in seconds for ``position``: position x recent AHT / staffed members (at least 1)."""
        q = self._queue(queue)
        aht = self.metrics.recent_aht(queue) or q.cfg.default_aht_s
        return position * aht / max(1, q.available)

    @property
    def agent_ids(self) -> list[str]:
        return list(self._agents)

    @property
    def call_ids(self) -> list[str]:
        return list(self._calls)

    # == internals: agents ========================================================================

    def _fire(
        self, agent: _Agent, inp: AgentInput, now: float, *, reason: str = "", call_id: str | None = None
    ) -> None:
        """The single place where an agent's state changes (Rule 1); keeps indices and counters."""
        old, new = agent.sm.fire(inp, now)
        if old is new:
            return
        aid = agent.cfg.id
        if old is A.READY:
            for qid in agent.members:
                self._queues[qid].ready.remove(aid)
        d_in = (new is not A.LOGGED_OUT) - (old is not A.LOGGED_OUT)
        d_av = (new not in (A.LOGGED_OUT, A.PAUSED)) - (old not in (A.LOGGED_OUT, A.PAUSED))
        if d_in or d_av:
            for qid in agent.members:
                q = self._queues[qid]
                q.logged_in += d_in
                q.available += d_av
                if (d_in < 0 and q.logged_in == 0) or (d_av < 0 and q.available == 0):
                    self._dirty_queues[qid] = None
        if new is A.READY:
            if inp is not AI.OFFER_WITHDRAWN:  # a withdrawn offer was not the agent's doing
                agent.idle_since = now
            for qid, m in agent.members.items():
                q = self._queues[qid]
                key = ready_key(
                    q.cfg.strategy,
                    penalty=m.penalty,
                    index=m.index,
                    level=m.level,
                    idle_since=agent.idle_since,
                    calls=agent.calls,
                    talk_s=agent.talk_s,
                    agent_id=aid,
                )
                q.ready.add(aid, m.level, key)
            self._dirty_agents[aid] = None
        if new is not A.WRAP_UP:
            agent.wrap = None
        if new not in (A.ON_CALL, A.WRAP_UP):
            agent.call_id = None
        self._emit(AgentStateChanged(at=now, agent_id=aid, old=old, new=new, reason=reason, call_id=call_id))

    def _pause(self, agent: _Agent, inp: AgentInput, now: float, reason: str, *, automatic: bool = False) -> None:
        was_paused = agent.sm.state is A.PAUSED
        self._fire(agent, inp, now, reason=reason)
        agent.pause_reason = reason
        self._emit(AgentPaused(at=now, agent_id=agent.cfg.id, reason=reason, automatic=automatic))
        if not was_paused and agent.cfg.max_pause_s is not None:
            self._arm("maxpause", agent.cfg.id, now + agent.cfg.max_pause_s)

    def _unpause(self, agent: _Agent, now: float, reason: str) -> None:
        paused_s = now - agent.sm.since
        ended = agent.pause_reason or ""
        self._cancel("maxpause", agent.cfg.id)
        agent.no_answer_streak = 0
        agent.pause_reason = None
        self._emit(AgentUnpaused(at=now, agent_id=agent.cfg.id, reason=ended, paused_s=paused_s))
        self._fire(agent, AI.UNPAUSE, now, reason=reason)

    def _logout(self, agent: _Agent, now: float, reason: str) -> None:
        if agent.sm.state is A.PAUSED:
            self._cancel("maxpause", agent.cfg.id)
            paused_s = now - agent.sm.since
            self._emit(AgentUnpaused(at=now, agent_id=agent.cfg.id, reason=agent.pause_reason or "", paused_s=paused_s))
            agent.pause_reason = None
        agent.pending = None
        self._fire(agent, AI.LOGOUT, now, reason=reason)
        self._emit(AgentLoggedOut(at=now, agent_id=agent.cfg.id, logged_in_s=now - agent.logged_in_at, reason=reason))
        for cid in sorted(agent.sticky, key=lambda c: self._calls[c].key):
            self._release_sticky(self._calls[cid], now)

    def _free_agent(self, agent: _Agent, inp: AgentInput, now: float) -> None:
        """The agent's offer or call is over: honour a pending pause/logout, else ``inp`` (-> ready)."""
        pending, agent.pending = agent.pending, None
        if pending is None:
            self._fire(agent, inp, now)
        elif pending[0] == "pause":
            self._pause(agent, AI.PAUSE, now, pending[1])
        else:
            self._logout(agent, now, pending[1])

    def _max_pause(self, agent: _Agent, now: float) -> None:
        if agent.cfg.max_pause_action is MaxPauseAction.READY:
            self._unpause(agent, now, "max-pause")
        else:
            self._logout(agent, now, "max-pause")

    def _end_wrapup(self, agent: _Agent, now: float, *, early: bool) -> None:
        self._cancel("wrapup", agent.cfg.id)
        assert agent.wrap is not None
        call_id, queue, started = agent.wrap
        self._emit(
            WrapupEnded(at=now, agent_id=agent.cfg.id, call_id=call_id, queue=queue, wrap_s=now - started, early=early)
        )

    # == internals: routing =======================================================================

    def _route_call(self, call: _Call, now: float) -> None:
        q = call.queue
        if not len(q.ready):
            return
        excluded = call.excluded
        chosen = q.ready.pick(q.step_levels[call.step], lambda aid: excluded.get(aid, -math.inf) > now)
        if chosen:
            self._offer(call, [self._agents[a] for a in chosen], now)

    def _route_agent(self, agent: _Agent, now: float) -> None:
        aid = agent.cfg.id
        if agent.sticky:
            cid = min(agent.sticky, key=lambda c: self._calls[c].key)
            self._offer(self._calls[cid], [agent], now)
            return
        calls = self._calls
        best: tuple[float, float, int] | None = None
        best_id = ""

        def skip(cid: str) -> bool:
            return calls[cid].excluded.get(aid, -math.inf) > now

        for qid, m in agent.members.items():
            q = self._queues[qid]
            if not len(q.waiting):
                continue
            e = q.waiting.first_for(q.step_levels, m.level, skip)
            if e is None:
                continue
            rank = (-(now - e[0]) * q.cfg.weight, e[0], e[1])
            if best is None or rank < best:
                best, best_id = rank, e[2]
        if best is not None:
            self._offer(calls[best_id], [agent], now)

    def _offer(self, call: _Call, agents: list[_Agent], now: float, *, forced: bool = False) -> None:
        q = call.queue
        q.waiting.remove(call.call_id)
        if call.phase is CallPhase.STICKY:
            self._unreserve(call)
        if call.sticky_agent is not None and all(a.cfg.id != call.sticky_agent for a in agents):
            call.sticky_agent = None
        call.phase = CallPhase.OFFERED
        cb = call.callback
        if cb is not None:
            cb.sm.fire(CallbackInput.OFFER)
        for agent in agents:
            aid = agent.cfg.id
            self._fire(agent, AI.OFFER, now, call_id=call.call_id)
            agent.offer_call = call.call_id
            call.offers[aid] = now
            mode = agent.cfg.mode
            timeout = q.cfg.ring_timeout_s if mode is ConnectionMode.RING else q.cfg.nailed_confirm_s
            self._arm("ring", aid, now + timeout)
            cb_id = cb.sm.callback_id if cb else None
            self._emit(
                CallOffered(
                    at=now,
                    call_id=call.call_id,
                    queue=q.cfg.id,
                    agent_id=aid,
                    mode=mode,
                    callback_id=cb_id,
                    forced=forced,
                )
            )
            self._act(
                OfferCall(
                    call_id=call.call_id,
                    agent_id=aid,
                    queue=q.cfg.id,
                    mode=mode,
                    timeout_s=timeout,
                    callback_id=cb_id,
                    contact_id=call.contact_id,
                )
            )

    def _withdraw(self, agent: _Agent, call: _Call, now: float, reason: WithdrawReason) -> None:
        """End one agent's offer that nobody failed; the agent is freed, the call untouched."""
        aid = agent.cfg.id
        offered_at = call.offers.pop(aid)
        self._cancel("ring", aid)
        agent.offer_call = None
        self._emit(
            OfferWithdrawn(
                at=now,
                call_id=call.call_id,
                queue=call.queue.cfg.id,
                agent_id=aid,
                ring_s=now - offered_at,
                reason=reason,
            )
        )
        self._act(WithdrawOffer(call_id=call.call_id, agent_id=aid, reason=reason))
        if reason != "agent-logged-out":
            self._free_agent(agent, AI.OFFER_WITHDRAWN, now)

    def _offer_failed(
        self, agent: _Agent, call: _Call, now: float, reason: Literal["timeout", "rejected", "failed"]
    ) -> None:
        aid = agent.cfg.id
        offered_at = call.offers.pop(aid)
        self._cancel("ring", aid)
        agent.offer_call = None
        q = call.queue
        self._emit(
            RingNoAnswer(
                at=now, call_id=call.call_id, queue=q.cfg.id, agent_id=aid, ring_s=now - offered_at, reason=reason
            )
        )
        if agent.cfg.mode is ConnectionMode.NAILED:
            self._act(WithdrawOffer(call_id=call.call_id, agent_id=aid, reason=f"not-confirmed-{reason}"))
        elif reason == "timeout":
            self._act(WithdrawOffer(call_id=call.call_id, agent_id=aid, reason="ring-timeout"))
        call.excluded[aid] = now + q.cfg.retry_s
        self._arm_exclusion(call)
        agent.no_answer_streak += 1
        limit = self.config.max_no_answer
        if limit and agent.no_answer_streak >= limit and agent.pending is None:
            agent.no_answer_streak = 0
            self._pause(agent, AI.AUTO_PAUSE, now, self.config.auto_pause_reason, automatic=True)
            log.info("acd.auto_pause", agent_id=aid, after=limit)
        else:
            self._free_agent(agent, AI.OFFER_FAILED, now)
        if call.sticky_agent == aid:
            call.sticky_agent = None
        if not call.offers:
            self._requeue(call, now)

    def _requeue(self, call: _Call, now: float) -> None:
        """A call whose offers all ended goes back to its place in line."""
        if call.callback is not None and call.callback.sm.state is CallbackState.OFFERED:
            call.callback.sm.fire(CallbackInput.OFFER_FAILED)
        call.phase = CallPhase.WAITING
        call.queue.waiting.add(call.step, (call.key[0], call.key[1], call.call_id))
        self._dirty_calls[call.call_id] = None
        if call.timed_out:
            self._exit_timeout(call, now)

    def _arm_exclusion(self, call: _Call) -> None:
        self._arm("exclude", call.call_id, min(call.excluded.values()))

    def _exclusions_expired(self, call: _Call, now: float) -> None:
        call.excluded = {a: t for a, t in call.excluded.items() if t > now}
        if call.excluded:
            self._arm_exclusion(call)
        if call.phase is CallPhase.WAITING:
            self._dirty_calls[call.call_id] = None

    # == internals: calls in line =================================================================

    def _credit(self, call: _Call, q: _Queue) -> float:
        return (q.cfg.vip_credit_s if call.vip else 0.0) + call.priority * q.cfg.priority_credit_s

    def _live_in_line(self, q: _Queue) -> int:
        return sum(1 for c in q.calls.values() if c.callback is None)

    def _enqueue(
        self,
        call: _Call,
        q: _Queue,
        now: float,
        *,
        sticky_agent: str | None = None,
        callback: tuple[str, float | None] | None = None,
    ) -> None:
        call.queue = q
        call.sticky_agent = None
        call.callback = None
        call.entered_at = now
        call.key = (call.arrived_at - self._credit(call, q), next(self._seq))
        call.step = 0
        call.excluded = {}
        call.timed_out = False
        call.phase = CallPhase.WAITING
        self._calls[call.call_id] = call
        q.calls[call.call_id] = call
        call.original_position = q.waiting.hold_place(call.key)
        self._emit(
            CallQueued(
                at=now,
                call_id=call.call_id,
                queue=q.cfg.id,
                position=call.original_position,
                contact_id=call.contact_id,
                vip=call.vip,
                priority=call.priority,
                callback_id=callback[0] if callback else None,
            )
        )
        cfg = q.cfg
        if len(cfg.escalation) > 1:
            self._arm("step", call.call_id, now + cfg.escalation[1].after_s)
        if callback is not None:
            self._make_callback(call, now, callback[0], callback[1])
        else:
            if cfg.max_wait_s is not None:
                self._arm("maxwait", call.call_id, now + cfg.max_wait_s)
            first = cfg.announce_first_s if cfg.announce_first_s is not None else cfg.announce_every_s
            if first is not None:
                self._arm("announce", call.call_id, now + first)
        sticky = self._agents.get(sticky_agent) if sticky_agent else None
        if (
            sticky is not None
            and sticky.sm.state is not A.LOGGED_OUT
            and (sticky.sm.state is A.READY or cfg.sticky_wait_s > 0)
        ):
            call.phase = CallPhase.STICKY
            call.sticky_agent = sticky.cfg.id
            sticky.sticky.add(call.call_id)
            self._arm("sticky", call.call_id, now + cfg.sticky_wait_s)
            if sticky.sm.state is A.READY:
                self._dirty_agents[sticky.cfg.id] = None
        else:
            q.waiting.add(0, (call.key[0], call.key[1], call.call_id))
            self._dirty_calls[call.call_id] = None

    def _make_callback(self, call: _Call, now: float, callback_id: str, sla_s: float | None) -> None:
        q = call.queue
        sla = q.cfg.callback_sla_s if sla_s is None else sla_s
        if sla <= 0:
            raise AcdConfigError(f"callback SLA {sla} must be > 0 seconds, e.g. 43200 for 12 hours")
        cb = _Callback(
            sm=CallbackStateMachine(callback_id),
            call_id=call.call_id,
            queue=q.cfg.id,
            contact_id=call.contact_id,
            requested_at=now,
            due_at=call.arrived_at + sla,
            risk_at=call.arrived_at + sla * q.cfg.callback_risk_fraction,
        )
        call.callback = cb
        self._callbacks[callback_id] = cb
        if cb.risk_at > now:
            self._arm("risk", callback_id, cb.risk_at)
        self._emit(
            CallbackRequested(
                at=now,
                callback_id=callback_id,
                call_id=call.call_id,
                queue=q.cfg.id,
                contact_id=call.contact_id,
                position=q.waiting.position(call.key),
                due_at=cb.due_at,
            )
        )
        if cb.risk_at <= now:
            self._emit(CallbackAtRisk(at=now, callback_id=callback_id, queue=q.cfg.id, due_at=cb.due_at))

    def _unreserve(self, call: _Call) -> None:
        if call.sticky_agent is not None:
            self._agents[call.sticky_agent].sticky.discard(call.call_id)
        self._cancel("sticky", call.call_id)

    def _release_sticky(self, call: _Call, now: float) -> None:
        """The sticky wait is over (or the agent left): the call takes its place among the others."""
        if call.phase is not CallPhase.STICKY:
            return
        self._unreserve(call)
        call.sticky_agent = None
        call.phase = CallPhase.WAITING
        call.queue.waiting.add(call.step, (call.key[0], call.key[1], call.call_id))
        self._dirty_calls[call.call_id] = None

    def _escalate(self, call: _Call, now: float) -> None:
        cfg = call.queue.cfg
        # The timer marks the next boundary; float rounding of entered_at + after_s must not hold it back.
        call.step = min(len(cfg.escalation) - 1, max(call.step + 1, cfg.step_at(now - call.entered_at)))
        if call.step + 1 < len(cfg.escalation):
            self._arm("step", call.call_id, call.entered_at + cfg.escalation[call.step + 1].after_s)
        if call.phase is CallPhase.WAITING:
            call.queue.waiting.add(call.step, (call.key[0], call.key[1], call.call_id))
            self._dirty_calls[call.call_id] = None

    def _announce(self, call: _Call, now: float) -> None:
        cfg = call.queue.cfg
        if call.phase in (CallPhase.WAITING, CallPhase.STICKY) and call.callback is None:
            position = call.queue.waiting.position(call.key)
            ewt = math.ceil(self.estimated_wait(cfg.id, position) / 30.0) * 30.0
            self._act(PlayAnnouncement(call_id=call.call_id, queue=cfg.id, position=position, ewt_s=ewt))
        if cfg.announce_every_s is not None and call.callback is None:
            self._arm("announce", call.call_id, now + cfg.announce_every_s)

    def _max_wait(self, call: _Call, now: float) -> None:
        if call.callback is not None:
            return
        if call.phase is CallPhase.OFFERED:
            call.timed_out = True  # let the ringing agent answer; exit if the offer fails
        elif call.phase in (CallPhase.WAITING, CallPhase.STICKY):
            self._exit_timeout(call, now)

    def _exit_timeout(self, call: _Call, now: float) -> None:
        q = call.queue
        dest = q.cfg.max_wait_destination
        position = q.waiting.position(call.key)
        if dest.kind == "callback":
            # The caller becomes a virtual caller in the same place (EXITWITHTIMEOUT, CALLBACKREQUEST).
            self._emit(
                CallExitedWithTimeout(
                    at=now,
                    call_id=call.call_id,
                    queue=q.cfg.id,
                    position=position,
                    original_position=call.original_position,
                    wait_s=now - call.entered_at,
                    destination=dest,
                )
            )
            call.timed_out = False
            self._cancel("announce", call.call_id)
            self._send_to(call, dest, now, "max-wait")
            return
        self._leave_line(call, now, "timed-out")
        self._emit(
            CallExitedWithTimeout(
                at=now,
                call_id=call.call_id,
                queue=q.cfg.id,
                position=position,
                original_position=call.original_position,
                wait_s=now - call.entered_at,
                destination=dest,
            )
        )
        self._send_to(call, dest, now, "max-wait")

    def _check_leave(self, q: _Queue, now: float) -> None:
        rule = q.cfg.leave_rule
        if rule is LeaveRule.STAY:
            return
        if (rule is LeaveRule.LEAVE_NO_AGENTS and q.logged_in > 0) or (
            rule is LeaveRule.LEAVE_UNAVAILABLE and q.available > 0
        ):
            return
        dest = q.cfg.empty_destination
        leaving = sorted(
            (c for c in q.calls.values() if c.callback is None and c.phase in (CallPhase.WAITING, CallPhase.STICKY)),
            key=lambda c: c.key,
        )
        for call in leaving:
            position = q.waiting.position(call.key)
            if dest.kind == "callback":
                self._emit_exit_empty(call, position, dest, now)
                self._cancel("maxwait", call.call_id)
                self._cancel("announce", call.call_id)
                self._send_to(call, dest, now, "leave-empty")
                continue
            self._leave_line(call, now, "caller-left")
            self._emit_exit_empty(call, position, dest, now)
            self._send_to(call, dest, now, "leave-empty")

    def _emit_exit_empty(self, call: _Call, position: int, dest: Destination, now: float) -> None:
        self._emit(
            CallExitedEmpty(
                at=now,
                call_id=call.call_id,
                queue=call.queue.cfg.id,
                position=position,
                original_position=call.original_position,
                wait_s=now - call.entered_at,
                destination=dest,
            )
        )

    def _send_to(self, call: _Call, dest: Destination, now: float, reason: str) -> None:
        """Carry a caller to ``dest``. For 'callback' the call keeps (or takes) its place in line."""
        q = call.queue
        if dest.kind == "callback":
            cb_id = f"cb-{call.call_id}"
            if cb_id in self._callbacks:  # never twice; the caller is just released
                self._act(ConfirmCallback(call_id=call.call_id, callback_id=cb_id, queue=q.cfg.id))
                if call.call_id in self._calls and call.callback is None:
                    self._leave_line(call, now, "caller-left")
                    self._forget(call)
                return
            if call.call_id not in self._calls:  # refused at the door: a virtual caller joins instead
                self._enqueue(call, q, now, callback=(cb_id, None))
            else:
                self._make_callback(call, now, cb_id, None)
            self._act(ConfirmCallback(call_id=call.call_id, callback_id=cb_id, queue=q.cfg.id))
            return
        if dest.kind == "queue":
            target = self._queues.get(dest.queue or "")
            if target is not None and call.hops < self.config.max_queue_hops:
                if call.call_id in self._calls:
                    self._forget(call)
                call.hops += 1
                call.offers = {}
                self._enqueue(call, target, now)
                return
            log.warning("acd.queue_destination_unusable", call_id=call.call_id, target=dest.queue, hops=call.hops)
        if call.call_id in self._calls:
            self._forget(call)
        self._act(SendToVoicemail(call_id=call.call_id, queue=q.cfg.id, reason=reason))

    def _leave_line(self, call: _Call, now: float, reason: WithdrawReason) -> None:
        """Take a live call out of line: withdraw offers, give up its place and reservation."""
        for aid in list(call.offers):
            self._withdraw(self._agents[aid], call, now, reason)
        self._unplace(call)

    def _unplace(self, call: _Call) -> None:
        q = call.queue
        q.waiting.remove(call.call_id)
        q.waiting.release_place(call.key)
        q.calls.pop(call.call_id, None)
        if call.phase is CallPhase.STICKY:
            self._unreserve(call)
        kinds: tuple[_TimerKind, ...] = ("step", "sticky", "maxwait", "announce", "exclude")
        for kind in kinds:
            self._cancel(kind, call.call_id)

    def _forget(self, call: _Call) -> None:
        self._unplace(call)
        self._calls.pop(call.call_id, None)
        self._dirty_calls.pop(call.call_id, None)

    # == internals: connected calls ===============================================================

    def _connect(self, call: _Call, now: float) -> None:
        call.phase = CallPhase.CONNECTED
        call.connected_at = now
        self._emit(
            CallConnected(
                at=now,
                call_id=call.call_id,
                queue=call.queue.cfg.id,
                agent_id=call.agent_id or "",
                hold_s=call.answered_at - call.entered_at,
                ring_s=call.ring_s,
                original_position=call.original_position,
                callback_id=call.callback.sm.callback_id if call.callback else None,
            )
        )

    def _complete(self, call: _Call, by: Literal["agent", "caller"], now: float, on_hold_s: float) -> None:
        agent = self._agents[call.agent_id or ""]
        connected = now - call.connected_at
        on_hold = min(max(0.0, on_hold_s), connected)
        self._emit(
            CallCompleted(
                at=now,
                call_id=call.call_id,
                queue=call.queue.cfg.id,
                agent_id=agent.cfg.id,
                by=by,
                wait_s=call.answered_at - call.entered_at,
                talk_s=connected - on_hold,
                on_hold_s=on_hold,
                original_position=call.original_position,
            )
        )
        agent.talk_s += connected
        self._agent_call_over(agent, call, now)

    def _callback_failed(self, call: _Call, now: float) -> None:
        cb = call.callback
        assert cb is not None
        cb.sm.fire(CallbackInput.NOT_REACHED)
        agent = self._agents[call.agent_id or ""]
        self._emit(
            CallbackFinished(
                at=now,
                callback_id=cb.sm.callback_id,
                call_id=call.call_id,
                queue=cb.queue,
                agent_id=agent.cfg.id,
                reached=False,
            )
        )
        self.metrics.forget_callback(cb.queue, call.call_id)
        self._agent_call_over(agent, call, now)

    def _agent_call_over(self, agent: _Agent, call: _Call, now: float) -> None:
        self._forget(call)
        self._cancel("risk", call.callback.sm.callback_id if call.callback else "")
        wrap = call.queue.cfg.wrapup_s
        if wrap > 0:
            self._fire(agent, AI.CALL_ENDED, now, call_id=call.call_id)
            agent.wrap = (call.call_id, call.queue.cfg.id, now)
            self._emit(
                WrapupStarted(
                    at=now, agent_id=agent.cfg.id, call_id=call.call_id, queue=call.queue.cfg.id, wrapup_s=wrap
                )
            )
            self._arm("wrapup", agent.cfg.id, now + wrap)
        else:
            self._free_agent(agent, AI.CALL_ENDED_NO_WRAPUP, now)

    # == audit ====================================================================================

    def audit(self, now: float) -> list[str]:
        """Check every invariant; returns the violations (empty when sound). For tests and debugging:
        it scans everything, so it is slow by design."""
        problems: list[str] = []
        seen_calls: dict[str, str] = {}
        for aid, a in self._agents.items():
            state = a.sm.state
            in_ready = [qid for qid in a.members if aid in self._queues[qid].ready]
            if (state is A.READY) != bool(in_ready) and a.members:
                problems.append(f"{aid}: {state} but in ready index of {in_ready}")
            if state is A.OFFERED:
                call = self._calls.get(a.offer_call or "")
                if call is None or aid not in call.offers or call.phase is not CallPhase.OFFERED:
                    problems.append(f"{aid}: offered {a.offer_call} which is not offered to it")
                if ("ring", aid) not in self._armed:
                    problems.append(f"{aid}: offered without a ring deadline")
            elif a.offer_call is not None:
                problems.append(f"{aid}: {state} with an offer {a.offer_call}")
            if state is A.ON_CALL:
                call = self._calls.get(a.call_id or "")
                if call is None or call.agent_id != aid or call.phase not in (CallPhase.CONNECTED, CallPhase.DIALING):
                    problems.append(f"{aid}: on_call {a.call_id} which is not connected to it")
                elif a.call_id in seen_calls:
                    problems.append(f"{aid}: shares call {a.call_id} with {seen_calls[a.call_id]}")
                else:
                    seen_calls[a.call_id or ""] = aid
            if state is A.WRAP_UP and ("wrapup", aid) not in self._armed:
                problems.append(f"{aid}: wrap_up without a deadline")
            if state is A.READY and a.sticky:
                problems.append(f"{aid}: ready while its sticky calls {sorted(a.sticky)} wait")
            if AGENT_STATE_EXITS[state] is None and state is not A.PAUSED and a.pending is not None:
                problems.append(f"{aid}: {state} with a pending {a.pending}")
        for qid, q in self._queues.items():
            li = sum(1 for m in q.members if self._agents[m].sm.state is not A.LOGGED_OUT)
            av = sum(1 for m in q.members if self._agents[m].sm.state not in (A.LOGGED_OUT, A.PAUSED))
            if (li, av) != (q.logged_in, q.available):
                problems.append(f"queue {qid}: counters {(q.logged_in, q.available)} != {(li, av)}")
            if len(q.waiting.order) != len(q.calls):
                problems.append(f"queue {qid}: {len(q.waiting.order)} places for {len(q.calls)} calls")
        for cid, call in self._calls.items():
            if call.phase is CallPhase.WAITING and cid not in call.queue.waiting:
                problems.append(f"call {cid}: waiting but not routable")
            if call.phase is not CallPhase.WAITING and cid in call.queue.waiting:
                problems.append(f"call {cid}: {call.phase} but in the waiting index")
            if call.phase is CallPhase.OFFERED:
                for aid in call.offers:
                    if self._agents[aid].offer_call != cid:
                        problems.append(f"call {cid}: offered to {aid} who does not know it")
                if not call.offers:
                    problems.append(f"call {cid}: offered to nobody")
            if call.phase is CallPhase.STICKY and (
                call.sticky_agent is None or cid not in self._agents[call.sticky_agent].sticky
            ):
                problems.append(f"call {cid}: sticky without its agent")
            if call.phase is CallPhase.WAITING:
                q = call.queue
                need = q.step_levels[call.step]
                for aid, m in q.members.items():
                    a = self._agents[aid]
                    if a.sm.state is A.READY and m.level >= need and call.excluded.get(aid, -math.inf) <= now:
                        problems.append(f"call {cid} waits while eligible agent {aid} is ready")
        return problems
