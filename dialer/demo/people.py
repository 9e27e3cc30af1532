"""The demo's people: customers behind a simulated carrier, agents on softphones, callers to the DID.

Only these are simulated; they speak real SIP and RTP on loopback to the real product. The
agents register with digest auth and dial the login code (nailed mode). Like a real agent who
sees the customer pop up on the screen, a simulated agent learns from the ACD's events when a
customer is bridged to it (``CallConnected``) and when the customer hung up (``CallCompleted``
by the caller); it then talks (purpose statement first), releases the customer with ``*0``,
keys its disposition ``*5<code>#`` and ``*1`` (ready). Inbound customers call the DID at random
intervals, press the IVR digit and talk once connected.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import structlog

from dialer.demo.config import DemoSection
from dialer.sim import (
    AgentMode,
    AgentSimState,
    CarrierConfig,
    CustomerModel,
    InboundBehaviour,
    InboundCall,
    SimAudio,
    SimulatedAgent,
    SimulatedCarrier,
)
from infra.bus import EventBus

__all__ = ["DemoPeople"]

log = structlog.get_logger(__name__)

_NO_RTP_TIMEOUT_S = 24 * 3600.0


class DemoPeople:
    """The carrier with its customers, the agents and the inbound callers of one demo run."""

    def __init__(self, section: DemoSection, audio: SimAudio, *, seed: int, max_calls: int = 200) -> None:
        self.section = section
        self.audio = audio
        self.seed = seed
        self.carrier = SimulatedCarrier(
            CustomerModel(section.customers.model_config_for(), seed=seed),
            audio,
            CarrierConfig(max_calls=max_calls, media_ports=(40000, 49999)),
        )
        self.agents: dict[str, SimulatedAgent] = {}
        self.inbound: list[InboundCall] = []
        self.on_inbound: Callable[[InboundCall], None] | None = None
        self._rng = random.Random(f"inbound|{seed}")
        self._inbound_task: asyncio.Task[None] | None = None
        self._remove: list[Callable[[], None]] = []

    # -- carrier -------------------------------------------------------------------------------
    async def start_carrier(self) -> int:
        """Open the carrier's SIP port (the dialer's trunk); returns the port."""
        await self.carrier.start()
        return self.carrier.port

    # -- agents --------------------------------------------------------------------------------
    async def start_agents(self, registrar_uri: str, agents: Mapping[str, Mapping[str, Any]]) -> None:
        """Register every agent's softphone and log it in (nailed); raises AgentLoginError."""
        behaviour = self.section.agents.behaviour()
        for agent_id, spec in agents.items():
            self.agents[agent_id] = SimulatedAgent(
                str(spec.get("sip_username") or agent_id),
                str(spec["password"]),
                registrar_uri,
                audio=self.audio,
                name=str(spec.get("name") or agent_id),
                mode=AgentMode.NAILED,
                behaviour=behaviour,
                seed=self.seed,
                media_ports=(30000, 39999),
            )
            # Like most softphones (Linphone, MicroSIP), no RTP timeout: between customers the
            # ACD sends nothing on an idle nailed leg, and the agent's line must stay up.
            self.agents[agent_id].ua.config.media_timeout = _NO_RTP_TIMEOUT_S
        await asyncio.gather(*(a.start(timeout=10.0) for a in self.agents.values()))

    def follow(self, bus: EventBus) -> None:
        """React to the ACD's events like agents reading their screen."""
        from acd import CallCompleted, CallConnected

        self._remove.append(bus.add_listener(self._connected, types=CallConnected))
        self._remove.append(bus.add_listener(self._completed, types=CallCompleted))

    def _connected(self, event: Any) -> None:
        agent = self.agents.get(event.agent_id)
        if agent is not None:
            agent.customer_connected(event.call_id)
        self.carrier.mark_connected(event.call_id)

    def _completed(self, event: Any) -> None:
        agent = self.agents.get(event.agent_id)
        if agent is not None and event.by == "caller" and agent.state is AgentSimState.TALKING:
            agent.customer_disconnected()

    # -- inbound callers -----------------------------------------------------------------------
    def deliver_to(self, dialer_uri: str) -> None:
        """Where the carrier delivers calls to the DID: the dialer's SIP address (``sip:127.0.0.1:5060``)."""
        self.carrier.config.deliver_to = dialer_uri

    def start_inbound(self, did: str, caller_numbers: Sequence[str]) -> None:
        """Customers call ``did`` (delivered to the carrier's ``deliver_to``) every few seconds."""
        if not caller_numbers:
            raise ValueError("inbound callers need at least one caller number")
        self._inbound_task = asyncio.get_running_loop().create_task(self._inbound_loop(did, list(caller_numbers)))

    async def _inbound_loop(self, did: str, numbers: list[str]) -> None:
        cfg = self.section.inbound
        digits = list(cfg.digits)
        weights = [cfg.digits[d] for d in digits]
        await asyncio.sleep(cfg.first_after_s)
        n = 0
        while True:
            n += 1
            behaviour = InboundBehaviour(
                dtmf=self._rng.choices(digits, weights)[0],
                dtmf_after_s=self._rng.uniform(2.0, 3.5),
                patience_s=cfg.patience_s,
                talk_s=self._rng.uniform(*cfg.talk_s),
                hangs_up_first=True,
                seed=self.seed * 1000 + n,
            )
            try:
                handle = await self.carrier.place_inbound(did, self._rng.choice(numbers), behaviour)
            except (OSError, ValueError) as exc:
                log.warning("demo.inbound_failed", error=str(exc))
            else:
                self.inbound.append(handle)
                if self.on_inbound is not None:
                    self.on_inbound(handle)
            await asyncio.sleep(self._rng.uniform(*cfg.every_s))

    async def stop_inbound(self) -> None:
        task, self._inbound_task = self._inbound_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- state -----------------------------------------------------------------------------------
    def busy(self) -> bool:
        """Someone is still on a call, or an agent is still wrapping up (disposition not keyed)."""
        if any(a.state in (AgentSimState.TALKING, AgentSimState.WRAP_UP) for a in self.agents.values()):
            return True
        return self.carrier.active_calls > 0

    async def close(self) -> None:
        for remove in self._remove:
            remove()
        self._remove.clear()
        await self.stop_inbound()
        await asyncio.gather(*(a.stop() for a in self.agents.values()), return_exceptions=True)
        await self.carrier.close()
