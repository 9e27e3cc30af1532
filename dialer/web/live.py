"""The wallboard's live state: a projection of bus events, fanned out to WebSocket clients.

:class:`LiveState` is a synchronous bus listener, so it sees every event in the bus's one
global order and never makes the publisher wait. It keeps four kinds of entities: agents
(state, reason, since, current call, supervisor listening in), queues (waiting calls with
the time they entered, service level, ASA, abandon %: counters from :class:`acd.AcdMetrics`),
campaigns (the last :class:`~dialer.web.events.CampaignStats`) and live calls. Each change
becomes one *item* ``{"kind", "id", "data"}`` (``data`` null: the entity is gone), serialised
to JSON once and offered to every connected :class:`WallboardClient`.

Theory of operation: a client holds the items it has not sent yet in a dict keyed by entity,
so a burst of changes to one agent costs one message, not many (each item is the entity's
whole state, so the last one wins). The dict is bounded; a client that falls that far behind
(a stalled browser tab) loses its pending items and gets a fresh snapshot instead. Times sent
to browsers are wall-clock epoch milliseconds (``since``), from the injected ``clock``:
time-in-state and waiting times are counted up by the browser, so nothing is pushed per second.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from acd import (
    AcdEvent,
    AcdMetrics,
    AgentLoggedIn,
    AgentLoggedOut,
    AgentPaused,
    AgentState,
    AgentStateChanged,
    CallAbandoned,
    CallCompleted,
    CallConnected,
    CallExitedEmpty,
    CallExitedWithKey,
    CallExitedWithTimeout,
    CallOffered,
    CallQueued,
    CallRejected,
    OfferWithdrawn,
    RingNoAnswer,
    WrapupEnded,
    WrapupStarted,
)
from dialer.web.events import (
    CampaignStats,
    CampaignStatusChanged,
    DispositionSet,
    SupervisionEnded,
    SupervisionStarted,
)
from infra.bus import EventBus

__all__ = ["LIVE_EVENT_TYPES", "LiveState", "WallboardClient"]

log = structlog.get_logger(__name__)

LIVE_EVENT_TYPES: tuple[type, ...] = (
    AcdEvent,
    CampaignStats,
    CampaignStatusChanged,
    DispositionSet,
    SupervisionStarted,
    SupervisionEnded,
)

_CALL_GONE = (CallCompleted, CallAbandoned, CallExitedWithTimeout, CallExitedWithKey, CallExitedEmpty, CallRejected)
_QUEUE_EVENTS = (
    CallQueued,
    CallConnected,
    CallCompleted,
    CallAbandoned,
    CallExitedWithTimeout,
    CallExitedWithKey,
    CallExitedEmpty,
    CallRejected,
    WrapupEnded,
)

Key = tuple[str, str]


class WallboardClient:
    """One WebSocket client's pending updates; read them with :meth:`next_message`."""

    def __init__(self, limit: int, only_agent: str | None = None) -> None:
        self.limit = limit
        self.only_agent = only_agent
        self.resyncs = 0
        self._pending: dict[Key, str] = {}
        self._resync = True  # the first message is always a snapshot
        self._wake = asyncio.Event()
        self._wake.set()

    def offer(self, key: Key, item: str) -> None:
        if self._resync:
            return  # a snapshot is due anyway and will include this change
        if self.only_agent is not None and key != ("agent", self.only_agent):
            return
        pending = self._pending
        if key in pending:
            pending[key] = item
        elif len(pending) >= self.limit:
            pending.clear()
            self._resync = True
            self.resyncs += 1
        else:
            pending[key] = item
        self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def next_message(self, live: LiveState) -> str:
        """Wait for something to send: a snapshot (first, or after falling behind) or a delta batch."""
        await self._wake.wait()
        self._wake.clear()
        if self._resync:
            self._resync = False
            self._pending = {}
            return live.snapshot_json(self.only_agent)
        items, self._pending = self._pending, {}
        return f'{{"type":"delta","server_time":{live.now_ms()},"items":[{",".join(items.values())}]}}'


@dataclass(slots=True)
class _Agent:
    agent_id: str
    name: str | None = None
    state: str = AgentState.LOGGED_OUT.value
    reason: str = ""
    since: int = 0
    call_id: str | None = None
    queue: str | None = None
    supervisor: str | None = None
    supervise_mode: str | None = None
    last_disposition: str | None = None
    answered: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.agent_id,
            "name": self.name,
            "state": self.state,
            "reason": self.reason,
            "since": self.since,
            "call_id": self.call_id,
            "queue": self.queue,
            "supervisor": self.supervisor,
            "supervise_mode": self.supervise_mode,
            "last_disposition": self.last_disposition,
            "answered": self.answered,
        }


@dataclass(slots=True)
class _Call:
    call_id: str
    queue: str
    state: str  # queued | ringing | talking
    since: int
    entered: int
    vip: bool = False
    agent_id: str | None = None
    position: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.call_id,
            "queue": self.queue,
            "state": self.state,
            "since": self.since,
            "entered": self.entered,
            "vip": self.vip,
            "agent_id": self.agent_id,
            "position": self.position,
        }


@dataclass(slots=True)
class _Queue:
    name: str
    waiting: dict[str, int] = field(default_factory=dict)  # call -> entered (epoch ms)


class LiveState:
    """Projection of the bus for the wallboard; attach it to a bus with :meth:`attach`."""

    def __init__(self, *, clock: Callable[[], float] = time.time, client_queue_limit: int = 5000) -> None:
        self.clock = clock
        self.client_queue_limit = client_queue_limit
        self.metrics = AcdMetrics()
        self.agents: dict[str, _Agent] = {}
        self.queues: dict[str, _Queue] = {}
        self.campaigns: dict[int, dict[str, Any]] = {}
        self.calls: dict[str, _Call] = {}
        self.events_seen = 0
        self._clients: set[WallboardClient] = set()
        self._detach: Callable[[], None] | None = None

    # -- wiring ---------------------------------------------------------------------------

    def attach(self, bus: EventBus) -> None:
        if self._detach is None:
            self._detach = bus.add_listener(self.on_event, types=LIVE_EVENT_TYPES)

    def detach(self) -> None:
        if self._detach is not None:
            self._detach()
            self._detach = None

    def connect(self, *, only_agent: str | None = None) -> WallboardClient:
        """A new client; ``only_agent`` limits it to that agent's entity (the agent page)."""
        client = WallboardClient(self.client_queue_limit, only_agent)
        self._clients.add(client)
        return client

    def disconnect(self, client: WallboardClient) -> None:
        self._clients.discard(client)

    @property
    def client_count(self) -> int:
        return len(self._clients)

    @property
    def client_resyncs(self) -> int:
        """Snapshots sent to connected clients because they fell behind."""
        return sum(c.resyncs for c in self._clients)

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def set_agent_names(self, names: dict[str, str]) -> None:
        """Display names (console usernames) for agent ids; unknown agents are added logged out."""
        for agent_id, name in names.items():
            agent = self._agent(agent_id)
            if agent.name != name:
                agent.name = name
                self._emit_agent(agent)

    # -- reading --------------------------------------------------------------------------

    def agent(self, agent_id: str) -> dict[str, Any] | None:
        a = self.agents.get(agent_id)
        return a.as_json() if a is not None else None

    def snapshot(self, only_agent: str | None = None) -> dict[str, Any]:
        if only_agent is not None:
            agent = self.agents.get(only_agent)
            return {
                "type": "snapshot",
                "server_time": self.now_ms(),
                "agents": [agent.as_json()] if agent is not None else [],
                "queues": [],
                "campaigns": [],
                "calls": [],
            }
        return {
            "type": "snapshot",
            "server_time": self.now_ms(),
            "agents": [a.as_json() for a in sorted(self.agents.values(), key=lambda a: a.agent_id)],
            "queues": [self._queue_json(q) for q in sorted(self.queues)],
            "campaigns": [self.campaigns[c] for c in sorted(self.campaigns)],
            "calls": [c.as_json() for c in self.calls.values()],
        }

    def snapshot_json(self, only_agent: str | None = None) -> str:
        return json.dumps(self.snapshot(only_agent), separators=(",", ":"))

    # -- the projection -------------------------------------------------------------------

    def on_event(self, event: object) -> None:
        """Apply one bus event; emits the changed entities to every client."""
        self.events_seen += 1
        if isinstance(event, AcdEvent):
            self.metrics.observe(event)
            self._on_acd(event)
        elif isinstance(event, CampaignStats):
            data = {
                "id": event.campaign_id,
                "name": event.name,
                "status": event.status,
                "mode": event.mode,
                "dial_level": round(event.dial_level, 2),
                "lines_in_use": event.lines_in_use,
                "max_lines": event.max_lines,
                "agents_available": event.agents_available,
                "abandon_rate_24h": event.abandon_rate_24h,
                "abandon_rate_30d": event.abandon_rate_30d,
                "effective_today": event.effective_today,
                "target_today": event.target_today,
            }
            self.campaigns[event.campaign_id] = data
            self._emit(("campaign", str(event.campaign_id)), data)
        elif isinstance(event, CampaignStatusChanged):
            data = self.campaigns.get(event.campaign_id) or _empty_campaign(event.campaign_id, event.name)
            data = {**data, "status": event.status}
            self.campaigns[event.campaign_id] = data
            self._emit(("campaign", str(event.campaign_id)), data)
        elif isinstance(event, SupervisionStarted):
            agent = self._agent(event.agent_id)
            agent.supervisor, agent.supervise_mode = event.supervisor, event.mode
            self._emit_agent(agent)
        elif isinstance(event, SupervisionEnded):
            agent = self._agent(event.agent_id)
            if agent.supervisor == event.supervisor:
                agent.supervisor = agent.supervise_mode = None
                self._emit_agent(agent)
        elif isinstance(event, DispositionSet):
            agent = self._agent(event.agent_id)
            agent.last_disposition = event.code
            self._emit_agent(agent)

    def _on_acd(self, e: AcdEvent) -> None:
        now = self.now_ms()
        if isinstance(e, AgentStateChanged):
            agent = self._agent(e.agent_id)
            agent.state = e.new.value
            agent.reason = e.reason
            agent.since = now
            if e.call_id is not None:
                agent.call_id = e.call_id
            if e.new in (AgentState.READY, AgentState.PAUSED, AgentState.LOGGED_OUT):
                agent.call_id = agent.queue = None
                agent.supervisor = agent.supervise_mode = None
            self._emit_agent(agent)
        elif isinstance(e, AgentLoggedIn):
            self._emit_agent(self._agent(e.agent_id))
        elif isinstance(e, AgentPaused | AgentLoggedOut):
            agent = self._agent(e.agent_id)
            if e.reason and agent.reason != e.reason:
                agent.reason = e.reason
                self._emit_agent(agent)
        elif isinstance(e, CallQueued):
            self._queue(e.queue).waiting[e.call_id] = now
            queued = _Call(e.call_id, e.queue, "queued", now, now, vip=e.vip, position=e.position)
            self.calls[e.call_id] = queued
            self._emit(("call", e.call_id), queued.as_json())
        elif isinstance(e, CallOffered):
            agent = self._agent(e.agent_id)
            agent.call_id, agent.queue = e.call_id, e.queue
            self._emit_agent(agent)
            offered = self.calls.get(e.call_id)
            if offered is not None:
                offered.state, offered.agent_id, offered.since = "ringing", e.agent_id, now
                self._emit(("call", e.call_id), offered.as_json())
        elif isinstance(e, OfferWithdrawn | RingNoAnswer):
            back = self.calls.get(e.call_id)
            if back is not None and back.agent_id == e.agent_id and back.state == "ringing":
                back.state, back.agent_id, back.since = "queued", None, now
                self._emit(("call", e.call_id), back.as_json())
        elif isinstance(e, CallConnected):
            self._queue(e.queue).waiting.pop(e.call_id, None)
            agent = self._agent(e.agent_id)
            agent.call_id, agent.queue = e.call_id, e.queue
            agent.answered += 1
            self._emit_agent(agent)
            talking = self.calls.get(e.call_id)
            if talking is None:
                talking = self.calls[e.call_id] = _Call(e.call_id, e.queue, "talking", now, now)
            talking.state, talking.agent_id, talking.since = "talking", e.agent_id, now
            self._emit(("call", e.call_id), talking.as_json())
        elif isinstance(e, WrapupStarted):
            agent = self._agent(e.agent_id)
            agent.call_id, agent.queue = e.call_id, e.queue
            self._emit_agent(agent)
        if isinstance(e, _CALL_GONE):
            self._queue(e.queue).waiting.pop(e.call_id, None)
            if self.calls.pop(e.call_id, None) is not None:
                self._emit(("call", e.call_id), None)
        if isinstance(e, _QUEUE_EVENTS):
            queue = e.queue
            self._emit(("queue", queue), self._queue_json(queue))

    # -- helpers --------------------------------------------------------------------------

    def _agent(self, agent_id: str) -> _Agent:
        agent = self.agents.get(agent_id)
        if agent is None:
            agent = self.agents[agent_id] = _Agent(agent_id, since=self.now_ms())
        return agent

    def _queue(self, name: str) -> _Queue:
        queue = self.queues.get(name)
        if queue is None:
            queue = self.queues[name] = _Queue(name)
        return queue

    def _queue_json(self, name: str) -> dict[str, Any]:
        q = self._queue(name)
        s = self.metrics.queue_stats(name, 0.0)
        return {
            "id": name,
            "waiting": len(q.waiting),
            "oldest": min(q.waiting.values(), default=None),
            "offered": s.offered,
            "answered": s.answered,
            "abandoned": s.abandoned,
            "service_level": s.service_level,
            "service_level_s": s.service_level_s,
            "asa_s": s.asa_s,
            "aht_s": s.aht_s,
            "abandon_rate": s.abandon_rate,
        }

    def _emit_agent(self, agent: _Agent) -> None:
        self._emit(("agent", agent.agent_id), agent.as_json())

    def _emit(self, key: Key, data: dict[str, Any] | None) -> None:
        if not self._clients:
            return
        item = json.dumps({"kind": key[0], "id": key[1], "data": data}, separators=(",", ":"))
        for client in self._clients:
            client.offer(key, item)


def _empty_campaign(campaign_id: int, name: str) -> dict[str, Any]:
    return {
        "id": campaign_id,
        "name": name,
        "status": "paused",
        "mode": None,
        "dial_level": None,
        "lines_in_use": 0,
        "max_lines": None,
        "agents_available": None,
        "abandon_rate_24h": None,
        "abandon_rate_30d": None,
        "effective_today": 0,
        "target_today": None,
    }
