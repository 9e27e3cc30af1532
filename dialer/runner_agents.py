"""Agents as the campaign runner sees them: a pacing view and "connect this answered call now".

:class:`AgentPool` is all the runner asks of whoever owns the agents: how many are ready,
talking (with their talk time so far) and in wrap-up (with the time left), so the pacing
model can predict when they free up; and ``connect(call, ...)`` which bridges an answered
customer call to a free agent or answers None within ``wait_s`` (the runner keeps the
2-second rule, Ofcom / FTC TSR 16 CFR 310.4(b)(4)(i)). ``reserve`` holds an agent for one
lead (a callback owned by that agent, a preview call) so nobody else's call takes them.

Two implementations:

- :class:`AcdAgentPool` adapts the live ACD (:class:`acd.service.AcdService`): agents are the
  members of the campaign's queue and ``connect`` is ``AcdService.connect_outbound``.
- :class:`UaAgentPool` is a small real pool on one of our user agents: each agent is a SIP
  URI (a softphone, or another of our UAs answering automatically); ``connect`` dials the
  agent's leg and joins it to the customer with :class:`telephony.media.bridge.Bridge`. It
  serves ``dialer campaign dial`` without an ACD and the runner's own tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from telephony.aio.ua import Call, UserAgent
from telephony.media.bridge import Bridge
from telephony.sip.dialog import CallOutcome

__all__ = ["AcdAgentPool", "AgentLoad", "AgentPool", "OutboundLead", "UaAgentPool"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class AgentLoad:
    """The agents serving one campaign at one instant (durations in seconds)."""

    ready: int = 0
    talk_so_far_s: tuple[float, ...] = ()
    wrapup_remaining_s: tuple[float, ...] = ()
    #: the agents' usual wrap-up length (the pacing model adds it to each call's talk time)
    wrapup_s: float = 10.0

    @property
    def logged_in(self) -> int:
        return self.ready + len(self.talk_so_far_s) + len(self.wrapup_remaining_s)


@dataclass(frozen=True, slots=True)
class OutboundLead:
    """Who the answered call is with, for the agent's screen and routing."""

    lead_id: int
    contact_id: int
    number: str
    vip: bool = False


class AgentPool(Protocol):
    def load(self, campaign_id: int) -> AgentLoad:
        """Ready / talking / wrap-up agents of the campaign, reserved agents not counted as ready."""

    def is_ready(self, agent_id: str) -> bool: ...

    async def connect(
        self, call: Call, campaign_id: int, lead: OutboundLead, *, agent_id: str | None = None, wait_s: float = 2.0
    ) -> str | None:
        """Bridge the answered ``call`` to an agent (``agent_id`` if given) within ``wait_s``; the
        agent's id, or None when nobody was connected (the runner then abandons the call)."""

    def reserve(self, agent_id: str, lead_id: int) -> bool:
        """Hold a ready agent for one lead; False when the agent is not ready."""

    def release(self, agent_id: str, lead_id: int) -> None: ...

    def add_listener(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback()`` whenever an agent's availability changes; returns the remover."""


# == a pool on one of our user agents ===========================================================
@dataclass(eq=False)
class _PoolAgent:
    id: str
    uri: str
    campaigns: frozenset[int] | None
    state: str = "ready"  # ready | connecting | on_call | wrap_up | paused
    since: float = field(default_factory=time.monotonic)
    idle_since: float = field(default_factory=time.monotonic)
    reserved_for: int | None = None
    wrap_timer: asyncio.TimerHandle | None = None


class UaAgentPool:
    """Agents reached by SIP URI from ``ua``; see the module docstring.

    ``agents`` maps agent id -> SIP URI (``sip:1001@127.0.0.1:5070``). ``campaigns`` optionally
    limits an agent to some campaign ids. Wrap-up lasts ``wrapup_s`` after each call.
    """

    def __init__(
        self,
        ua: UserAgent,
        agents: Mapping[str, str],
        *,
        wrapup_s: float = 2.0,
        campaigns: Mapping[str, set[int]] | None = None,
    ) -> None:
        self.ua = ua
        self.wrapup_s = wrapup_s
        self._agents: dict[str, _PoolAgent] = {}
        for agent_id, uri in agents.items():
            only = frozenset((campaigns or {}).get(agent_id, ())) or None
            self._agents[agent_id] = _PoolAgent(agent_id, uri, only)
        self._listeners: list[Callable[[], None]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.bridges: dict[str, Bridge] = {}
        self.connected: list[tuple[str, str]] = []  # (customer call id, agent id), in order

    # -- the pacing view ----------------------------------------------------------------------------
    def _serves(self, a: _PoolAgent, campaign_id: int) -> bool:
        return a.campaigns is None or campaign_id in a.campaigns

    def load(self, campaign_id: int) -> AgentLoad:
        now = time.monotonic()
        mine = [a for a in self._agents.values() if self._serves(a, campaign_id)]
        return AgentLoad(
            ready=sum(1 for a in mine if a.state == "ready" and a.reserved_for is None),
            talk_so_far_s=tuple(now - a.since for a in mine if a.state in ("on_call", "connecting")),
            wrapup_remaining_s=tuple(max(0.0, a.since + self.wrapup_s - now) for a in mine if a.state == "wrap_up"),
            wrapup_s=self.wrapup_s,
        )

    def is_ready(self, agent_id: str) -> bool:
        a = self._agents.get(agent_id)
        return a is not None and a.state == "ready"

    def state(self, agent_id: str) -> str:
        return self._agents[agent_id].state

    def add_listener(self, callback: Callable[[], None]) -> Callable[[], None]:
        self._listeners.append(callback)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(callback)

        return remove

    def _changed(self) -> None:
        for callback in list(self._listeners):
            callback()

    def _set(self, a: _PoolAgent, state: str) -> None:
        a.state = state
        a.since = time.monotonic()
        if state == "ready":
            a.idle_since = a.since
        self._changed()

    def pause(self, agent_id: str) -> None:
        self._set(self._agents[agent_id], "paused")

    def ready(self, agent_id: str) -> None:
        a = self._agents[agent_id]
        if a.wrap_timer is not None:
            a.wrap_timer.cancel()
            a.wrap_timer = None
        self._set(a, "ready")

    # -- reservations ---------------------------------------------------------------------------------
    def reserve(self, agent_id: str, lead_id: int) -> bool:
        a = self._agents.get(agent_id)
        if a is None or a.state != "ready" or a.reserved_for not in (None, lead_id):
            return False
        a.reserved_for = lead_id
        self._changed()
        return True

    def release(self, agent_id: str, lead_id: int) -> None:
        a = self._agents.get(agent_id)
        if a is not None and a.reserved_for == lead_id:
            a.reserved_for = None
            self._changed()

    # -- connecting -----------------------------------------------------------------------------------
    def _pick(self, campaign_id: int, agent_id: str | None, lead_id: int) -> _PoolAgent | None:
        if agent_id is not None:
            a = self._agents.get(agent_id)
            ok = a is not None and a.state == "ready" and a.reserved_for in (None, lead_id)
            return a if ok else None
        free = [
            a
            for a in self._agents.values()
            if a.state == "ready" and a.reserved_for is None and self._serves(a, campaign_id)
        ]
        return min(free, key=lambda a: a.idle_since) if free else None

    async def connect(
        self, call: Call, campaign_id: int, lead: OutboundLead, *, agent_id: str | None = None, wait_s: float = 2.0
    ) -> str | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while True:
            agent = self._pick(campaign_id, agent_id, lead.lead_id)
            if agent is None or call.ended:
                return None
            agent.reserved_for = None
            self._set(agent, "connecting")
            leg = await self.ua.call(agent.uri, from_user=lead.number.lstrip("+") or "dialer", ring_timeout=wait_s)
            try:
                outcome = await asyncio.wait_for(leg.wait_answered(), max(0.05, deadline - loop.time()))
            except TimeoutError:
                outcome = None
            if outcome is not None and outcome.outcome is CallOutcome.ANSWERED and not call.ended:
                break
            with contextlib.suppress(Exception):
                await leg.hangup()
            self._set(agent, "ready")
            if agent_id is not None or loop.time() >= deadline:
                return None
        if call.media is None or leg.media is None:
            await leg.hangup()
            self._set(agent, "ready")
            return None
        call.media.stop_playing()
        bridge = Bridge(call.media, leg.media)
        self.bridges[call.id] = bridge
        self.connected.append((call.id, agent.id))
        self._set(agent, "on_call")
        task = loop.create_task(self._talk(agent, call, leg, bridge))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        log.info("pool.bridged", call_id=call.id, agent_id=agent.id)
        return agent.id

    async def _talk(self, agent: _PoolAgent, customer: Call, leg: Call, bridge: Bridge) -> None:
        ends = [asyncio.ensure_future(customer.wait_ended()), asyncio.ensure_future(leg.wait_ended())]
        try:
            await asyncio.wait(ends, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for f in ends:
                f.cancel()
            bridge.stop()
            self.bridges.pop(customer.id, None)
            for c in (customer, leg):
                if not c.ended:
                    with contextlib.suppress(Exception):
                        await c.hangup()
            self._set(agent, "wrap_up")
            agent.wrap_timer = asyncio.get_running_loop().call_later(self.wrapup_s, self._wrap_done, agent)

    def _wrap_done(self, agent: _PoolAgent) -> None:
        agent.wrap_timer = None
        if agent.state == "wrap_up":
            self._set(agent, "ready")

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for a in self._agents.values():
            if a.wrap_timer is not None:
                a.wrap_timer.cancel()


# == the live ACD ==================================================================================
class AcdAgentPool:
    """The runner's view of :class:`acd.service.AcdService`: the campaign's agents are the members
    of its queue (``queue_of(campaign_id)``), and answered calls go to ``connect_outbound``.

    The ACD routes by its own strategy, so ``reserve`` can only check that the owner is ready and
    keep them out of the pacing count; the call goes to whichever member the ACD picks.
    """

    def __init__(
        self,
        acd: Any,
        queue_of: Callable[[int], str],
        bus: Any | None = None,
        *,
        survey: bool | None = None,
        campaign: str | None = None,
    ) -> None:
        self.acd = acd
        self.queue_of = queue_of
        # The campaign's word on the post-call survey (None: the queue's setting) and its name,
        # stored with the answer.
        self.survey = survey
        self.campaign = campaign
        self._listeners: list[Callable[[], None]] = []
        self._reserved: dict[str, int] = {}
        self._remove_bus: Callable[[], None] | None = None
        if bus is not None:
            from acd.service import AgentStatus

            self._remove_bus = bus.add_listener(lambda _e: self._changed(), types=AgentStatus)

    def close(self) -> None:
        if self._remove_bus is not None:
            self._remove_bus()
            self._remove_bus = None

    def _changed(self) -> None:
        for callback in list(self._listeners):
            callback()

    def add_listener(self, callback: Callable[[], None]) -> Callable[[], None]:
        self._listeners.append(callback)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(callback)

        return remove

    def _members(self, campaign_id: int) -> list[str]:
        queue = self.queue_of(campaign_id)
        members = getattr(self.acd, "_members", {}).get(queue)
        return list(members) if members is not None else list(self.acd.agent_ids)

    def _wrapup_s(self, campaign_id: int) -> float:
        queue = self.queue_of(campaign_id)
        for q in self.acd.config.queues:
            if q.id == queue:
                return float(q.wrapup_s)
        return 10.0

    def load(self, campaign_id: int) -> AgentLoad:
        from acd._state import AgentState

        now = asyncio.get_running_loop().time()
        wrap = self._wrapup_s(campaign_id)
        ready = 0
        talk: list[float] = []
        wrapping: list[float] = []
        for agent_id in self._members(campaign_id):
            info = self.acd.agent_info(agent_id)
            if info.state is AgentState.READY and agent_id not in self._reserved:
                ready += 1
            elif info.state in (AgentState.ON_CALL, AgentState.OFFERED):
                talk.append(max(0.0, now - info.since))
            elif info.state is AgentState.WRAP_UP:
                wrapping.append(max(0.0, info.since + wrap - now))
        return AgentLoad(ready, tuple(talk), tuple(wrapping), wrap)

    def is_ready(self, agent_id: str) -> bool:
        from acd._state import AgentState

        try:
            return bool(self.acd.agent_info(agent_id).state is AgentState.READY)
        except Exception:  # an unknown agent (removed from the config) is simply not ready
            return False

    def reserve(self, agent_id: str, lead_id: int) -> bool:
        if not self.is_ready(agent_id) or self._reserved.get(agent_id, lead_id) != lead_id:
            return False
        self._reserved[agent_id] = lead_id
        return True

    def release(self, agent_id: str, lead_id: int) -> None:
        if self._reserved.get(agent_id) == lead_id:
            del self._reserved[agent_id]
            self._changed()

    async def connect(
        self, call: Call, campaign_id: int, lead: OutboundLead, *, agent_id: str | None = None, wait_s: float = 2.0
    ) -> str | None:
        from acd.service import Connected

        if agent_id is not None:
            self._reserved.pop(agent_id, None)
        result = await self.acd.connect_outbound(
            call,
            self.queue_of(campaign_id),
            contact_id=str(lead.contact_id),
            number=lead.number,
            vip=lead.vip,
            wait_s=wait_s,
            survey=self.survey,
            campaign_id=campaign_id,
            campaign=self.campaign,
        )
        return result.agent_id if isinstance(result, Connected) else None
