"""Simulated agents: softphones that register with Digest, take calls, talk and key dispositions.

A :class:`SimulatedAgent` is a :class:`~telephony.aio.ua.UserAgent` acting as one agent's
softphone. It registers to the dialer's registrar with its username and password (RFC 3261
§10, Digest §22) and keeps the binding fresh, then works in one of two modes:

- ``ring``: every call rings the phone; it answers after a short delay, speaks (the purpose
  statement first), and at the end keys its disposition and hangs up. If the customer hangs
  up first, the disposition is only reported to :attr:`SimulatedAgent.on_disposition` (a real
  agent would use the web page).
- ``nailed``: it dials the login URI (``sip:*55@dialer`` by default, see
  :data:`acd.codes.LOGIN_CODE`) once and stays connected. A customer bridged in is noticed by
  the short tone the dialer plays (a :class:`dialer.amd.BeepDetector` on the received audio)
  or by :meth:`SimulatedAgent.customer_connected`, which the demo or a test calls. The agent
  then talks; when done it keys "release the customer" (``*0``), waits its wrap-up time and
  keys the disposition (``*5<code>#``). :meth:`customer_disconnected` tells it the customer
  left first.

Every DTMF code is a parameter of :class:`AgentBehaviour`, as are the timings and the
disposition probabilities; the agent's random choices are seeded.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import structlog

from acd.codes import LOGIN_CODE
from dialer.amd import AmdConfig
from dialer.sim._line import Ear, Speaker
from dialer.sim.audio import AgentVoice, SimAudio
from telephony.aio.ua import Call, TrunkRegistration, UAConfig, UserAgent
from telephony.sdp import SdpNegotiationError
from telephony.sip.dialog import CallOutcome
from telephony.sip.uri import SipURI

__all__ = ["AgentBehaviour", "AgentConversation", "AgentLoginError", "AgentMode", "AgentSimState", "SimulatedAgent"]

log = structlog.get_logger(__name__)


class AgentMode(StrEnum):
    RING = "ring"
    NAILED = "nailed"


class AgentSimState(StrEnum):
    OFFLINE = "offline"
    IDLE = "idle"
    TALKING = "talking"
    WRAP_UP = "wrap_up"


class AgentLoginError(RuntimeError):
    """The simulated agent could not register or log in; the message says what the server answered."""


@dataclass(frozen=True)
class AgentBehaviour:
    """How one simulated agent works. Ranges are (low, high) seconds, drawn uniformly."""

    answer_delay_s: tuple[float, float] = (0.5, 2.0)
    #: the agent closes the conversation after this long (if the customer did not leave first)
    talk_s: tuple[float, float] = (25.0, 60.0)
    #: listening between two of the agent's lines
    listen_s: tuple[float, float] = (1.0, 3.0)
    wrap_up_s: tuple[float, float] = (2.0, 6.0)
    #: disposition code -> probability (weights; they need not add up to 1)
    dispositions: Mapping[str, float] = field(default_factory=lambda: {"1": 0.5, "2": 0.3, "3": 0.2})
    disposition_dtmf: str = "*5{code}#"
    #: nailed mode: keyed to release the customer when the agent ends the conversation
    hangup_customer_dtmf: str | None = "*0"
    #: keyed after the disposition to become ready again (None: the dialer readies by itself)
    ready_dtmf: str | None = None
    #: ring mode: key the disposition before hanging up (else only report it)
    disposition_in_call: bool = True
    #: nailed mode: a tone on the idle line means "customer connected"
    detect_connect_tone: bool = True
    #: nailed mode: a tone during a conversation means "customer left"
    detect_disconnect_tone: bool = False
    tone_min_ms: int = 160
    #: greet with the inbound greeting instead of the outbound purpose statement
    inbound: bool = False

    def __post_init__(self) -> None:
        for name in ("answer_delay_s", "talk_s", "listen_s", "wrap_up_s"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise ValueError(f"{name} must be a (low, high) range with 0 <= low <= high, got {(lo, hi)}")
        if not self.dispositions or any(w < 0 for w in self.dispositions.values()):
            raise ValueError("dispositions must map at least one code to a weight >= 0")
        if sum(self.dispositions.values()) <= 0:
            raise ValueError("disposition weights add up to 0; give at least one code a positive weight")
        if "{code}" not in self.disposition_dtmf:
            raise ValueError(f"disposition_dtmf {self.disposition_dtmf!r} must contain {{code}}, e.g. '*5{{code}}#'")


@dataclass
class AgentConversation:
    """One customer conversation of a simulated agent (times are ``time.time()``)."""

    call_id: str
    started_at: float
    ended_at: float | None = None
    ended_by: str | None = None  # agent | customer | shutdown
    disposition: str | None = None
    disposition_keyed: bool = False
    spoken_s: float = 0.0


class SimulatedAgent:
    """One agent's softphone; ``await start()`` registers (and logs in when nailed)."""

    def __init__(
        self,
        username: str,
        password: str,
        registrar_uri: str,
        *,
        audio: SimAudio,
        name: str | None = None,
        mode: AgentMode = AgentMode.RING,
        login_uri: str | None = None,
        behaviour: AgentBehaviour | None = None,
        seed: int = 0,
        host: str = "127.0.0.1",
        media_ports: tuple[int, int] = (30000, 40000),
        register_expires: int = 300,
    ) -> None:
        target = SipURI.parse(registrar_uri)
        self.username, self.password = username, password
        self.registrar_uri = registrar_uri
        self.name = name or username.capitalize()
        self.mode = AgentMode(mode)
        self.login_uri = login_uri or f"sip:{LOGIN_CODE}@{target.host}" + (f":{target.port}" if target.port else "")
        self.behaviour = behaviour or AgentBehaviour()
        self.audio = audio
        self.register_expires = register_expires
        self.rng = random.Random(f"{seed}|{username}")
        self.ua = UserAgent(
            UAConfig(
                host=host,
                port=0,
                user=username,
                display_name=self.name,
                user_agent="sim-agent/0.1",
                registrar=False,
                media_ports=media_ports,
            )
        )
        self.ua.on_incoming = self._on_incoming
        self.state = AgentSimState.OFFLINE
        self.conversations: list[AgentConversation] = []
        self.on_disposition: Callable[[AgentConversation], None] | None = None
        self.nailed_call: Call | None = None
        self._voice: AgentVoice | None = None
        self._registration: TrunkRegistration | None = None
        self._speaker: Speaker | None = None
        self._ear: Ear | None = None
        self._customer_gone = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self.log = log.bind(agent=username)

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self, timeout: float = 5.0) -> None:
        """Register (and dial the login URI in nailed mode); :class:`AgentLoginError` on failure."""
        self._voice = await asyncio.to_thread(self.audio.agent_voice, self.name)
        await self.ua.start()
        reg = self.ua.keep_registered(self.registrar_uri, self.username, self.password, expires=self.register_expires)
        self._registration = reg
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not reg.registered:
            if loop.time() >= deadline:
                status = reg.client.last_status
                hint = " (check the username and password)" if status in (401, 403, 407) else ""
                raise AgentLoginError(
                    f"agent {self.username} could not register to {self.registrar_uri} within {timeout:.0f} s: "
                    f"last answer {status or 'none'}{hint}"
                )
            await asyncio.sleep(0.05)
        self.log.info("sim_agent.registered", registrar=self.registrar_uri, mode=self.mode.value)
        if self.mode is AgentMode.NAILED:
            await self._login(max(0.5, deadline - loop.time()))
        self.state = AgentSimState.IDLE

    async def _login(self, timeout: float) -> None:
        call = await self.ua.call(self.login_uri, auth=(self.username, self.password), ring_timeout=timeout)
        outcome = await call.wait_answered()
        if outcome.outcome is not CallOutcome.ANSWERED:
            raise AgentLoginError(
                f"agent {self.username}: the nailed login call to {self.login_uri} was not answered "
                f"({outcome.outcome.value} {outcome.sip_status or ''} {outcome.detail or ''})".rstrip()
            )
        self.nailed_call = call
        self._speaker = Speaker(call)
        self._speaker.start()
        self._ear = Ear(
            call,
            on_tone=self._on_tone,
            tone_config=AmdConfig(beep_min_ms=self.behaviour.tone_min_ms),
        )
        self._spawn(self._watch_nailed(call))
        self.log.info("sim_agent.logged_in", uri=self.login_uri)

    async def stop(self) -> None:
        """Hang up, unregister and release the ports."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._speaker is not None:
            await self._speaker.stop()
        await self.ua.close()
        self.state = AgentSimState.OFFLINE

    async def __aenter__(self) -> SimulatedAgent:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def registered(self) -> bool:
        return self._registration is not None and self._registration.registered

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _watch_nailed(self, call: Call) -> None:
        await call.wait_ended()
        self.state = AgentSimState.OFFLINE
        self._customer_gone.set()
        self.log.info("sim_agent.nailed_call_ended", by=call.ended_by)

    # -- nailed mode ------------------------------------------------------------------------
    def _on_tone(self, hz: float) -> None:
        b = self.behaviour
        if self.state is AgentSimState.IDLE and b.detect_connect_tone:
            self.log.debug("sim_agent.connect_tone", hz=hz)
            self.customer_connected()
        elif self.state is AgentSimState.TALKING and b.detect_disconnect_tone:
            self.customer_disconnected()

    def customer_connected(self, call_id: str | None = None) -> bool:
        """A customer was bridged to the nailed line: start talking. False when not idle."""
        if self.mode is not AgentMode.NAILED or self.state is not AgentSimState.IDLE:
            return False
        assert self.nailed_call is not None and self._speaker is not None
        self.state = AgentSimState.TALKING
        self._customer_gone.clear()
        conv = AgentConversation(call_id or self.nailed_call.id, time.time())
        self.conversations.append(conv)
        self._spawn(self._nailed_conversation(conv, self.nailed_call, self._speaker))
        return True

    def customer_disconnected(self) -> None:
        """The customer left the nailed line (the dialer knows; a test or the demo tells us)."""
        self._customer_gone.set()

    async def _nailed_conversation(self, conv: AgentConversation, call: Call, speaker: Speaker) -> None:
        b = self.behaviour
        assert self._ear is not None
        talk = asyncio.get_running_loop().create_task(self._talk(speaker, self._ear))
        gone = asyncio.get_running_loop().create_task(self._customer_gone.wait())
        try:
            done, _ = await asyncio.wait({talk, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            talk.cancel()
            gone.cancel()
            await asyncio.gather(talk, gone, return_exceptions=True)
        conv.spoken_s = speaker.spoken_s
        if call.ended:
            conv.ended_by, conv.ended_at = "shutdown", time.time()
            return
        if talk in done and not self._customer_gone.is_set():
            conv.ended_by = "agent"
            if b.hangup_customer_dtmf:
                await call.send_dtmf(b.hangup_customer_dtmf)
        else:
            conv.ended_by = "customer"
        conv.ended_at = time.time()
        self.state = AgentSimState.WRAP_UP
        await asyncio.sleep(self.rng.uniform(*b.wrap_up_s))
        await self._dispose(conv, call)
        if b.ready_dtmf and not call.ended:
            await call.send_dtmf(b.ready_dtmf)
        if not call.ended:
            self.state = AgentSimState.IDLE

    # -- ring mode --------------------------------------------------------------------------
    def _on_incoming(self, call: Call) -> None:
        self._spawn(self._ring_call(call))

    async def _ring_call(self, call: Call) -> None:
        if self.mode is AgentMode.NAILED or self.state is not AgentSimState.IDLE:
            await call.reject(486, "Busy Here")
            return
        b = self.behaviour
        self.state = AgentSimState.TALKING
        conv = AgentConversation(call.id, time.time())
        try:
            await call.ring()
            await asyncio.sleep(self.rng.uniform(*b.answer_delay_s))
            if call.ended:  # the dialer gave up ringing
                return
            try:
                await call.answer()
            except (SdpNegotiationError, RuntimeError) as exc:
                self.log.warning("sim_agent.answer_failed", call_id=call.id, error=str(exc))
                return
            conv.started_at = time.time()
            self.conversations.append(conv)
            speaker = Speaker(call)
            speaker.start()
            talk = asyncio.get_running_loop().create_task(self._talk(speaker, Ear(call)))
            ended = asyncio.get_running_loop().create_task(call.wait_ended())
            try:
                await asyncio.wait({talk, ended}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                talk.cancel()
                ended.cancel()
                await asyncio.gather(talk, ended, return_exceptions=True)
            conv.spoken_s = speaker.spoken_s
            conv.ended_by = "customer" if call.ended else "agent"
            if not call.ended and b.disposition_in_call:
                await self._dispose(conv, call)
            await speaker.stop()
            if not call.ended:
                await call.hangup()
            conv.ended_at = time.time()
            if conv.disposition is None:
                self.state = AgentSimState.WRAP_UP
                await asyncio.sleep(self.rng.uniform(*b.wrap_up_s))
                await self._dispose(conv, None)
        finally:
            if not call.ended:
                await call.hangup()
            if self.state is not AgentSimState.OFFLINE:
                self.state = AgentSimState.IDLE

    # -- shared -----------------------------------------------------------------------------
    async def _talk(self, speaker: Speaker, ear: Ear) -> None:
        """The agent's side of a conversation: greeting or purpose statement, lines, closing."""
        assert self._voice is not None
        b, voice, rng = self.behaviour, self._voice, self.rng
        loop = asyncio.get_running_loop()
        deadline = loop.time() + rng.uniform(*b.talk_s)
        await speaker.say(voice.inbound_greeting if b.inbound else voice.purpose)
        lines = list(voice.lines)
        rng.shuffle(lines)
        i = 0
        while loop.time() < deadline:
            await asyncio.sleep(min(rng.uniform(*b.listen_s), max(0.05, deadline - loop.time())))
            if loop.time() >= deadline:
                break
            await ear.turn()
            await speaker.say(lines[i % len(lines)])
            i += 1
        await speaker.say(voice.closing)

    def choose_disposition(self) -> str:
        codes = list(self.behaviour.dispositions)
        return self.rng.choices(codes, weights=[self.behaviour.dispositions[c] for c in codes])[0]

    async def _dispose(self, conv: AgentConversation, call: Call | None) -> None:
        conv.disposition = self.choose_disposition()
        if call is not None and not call.ended:
            await call.send_dtmf(self.behaviour.disposition_dtmf.format(code=conv.disposition))
            conv.disposition_keyed = True
        self.log.info(
            "sim_agent.disposition", call_id=conv.call_id, code=conv.disposition, keyed=conv.disposition_keyed
        )
        if self.on_disposition is not None:
            self.on_disposition(conv)

    async def send_dtmf(self, digits: str) -> None:
        """Key ``digits`` on the nailed line (e.g. a pause code); no-op when not logged in."""
        if self.nailed_call is not None and not self.nailed_call.ended:
            with contextlib.suppress(RuntimeError):
                await self.nailed_call.send_dtmf(digits)
