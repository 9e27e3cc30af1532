"""A simulated carrier trunk on loopback: real SIP and RTP customers behind one SIP endpoint.

:class:`SimulatedCarrier` is a :class:`~telephony.aio.ua.UserAgent` that plays the part of a
carrier and of every person behind it. The dialer sends it INVITEs for E.164 numbers in the
Request-URI user part (``sip:+442079460000@127.0.0.1:5080``); the carrier can challenge them
with Digest (RFC 3261 §22, trunk credentials) and require the dialer to be registered first
(it is then the trunk's registrar, §10). Each call follows the :class:`CustomerModel`:

- answers (§13.3.1.4): 180, ringing for the drawn time, 200 with SDP, then a *person* says a
  short greeting, waits for someone to speak (hangs up after a few silent seconds: the
  experience of an abandoned call), talks for the drawn time and hangs up, or lets the dialer
  hang up; a *machine* plays a long greeting and a beep and records until the dialer hangs up
  (at most ``machine_max_s``);
- refuses: 486 Busy Here, 480 Temporarily Unavailable, 404 Not Found, or 603 Decline after
  some ringing;
- never answers: rings until the dialer's CANCEL (§9.2, answered 487 by the UA), or until
  the network gives up after ``no_answer_timeout_s`` (480).

Every call leaves a :class:`CarrierCallRecord` in :attr:`SimulatedCarrier.log`: the ground
truth that tests and the demo compare the dialer's CDRs with. :meth:`place_inbound` makes
customers call the dialer's DID: they press IVR digits, wait in the queue, talk once an agent
is connected (the caller of :meth:`InboundCall.mark_connected` knows when) or abandon.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, TypeVar

import structlog

from dialer.sim._line import Ear, Speaker
from dialer.sim.audio import SimAudio
from dialer.sim.customers import Behaviour, CustomerDecision, CustomerModel, normalize_number
from telephony.aio.ua import Call, CallState, UAConfig, UserAgent
from telephony.sdp import SdpNegotiationError
from telephony.sip.dialog import CallOutcome
from telephony.sip.uri import Address, SipSyntaxError, SipURI

__all__ = [
    "CarrierCallRecord",
    "CarrierConfig",
    "CarrierResult",
    "InboundBehaviour",
    "InboundCall",
    "SimulatedCarrier",
]

log = structlog.get_logger(__name__)

_T = TypeVar("_T")
_SAFE = re.compile(r"[^A-Za-z0-9+._-]")


class CarrierResult(StrEnum):
    """How a call ended, as the carrier saw it."""

    ANSWERED = "answered"
    BUSY = "busy"  # 486
    REJECTED = "rejected"  # 603 by the customer
    UNAVAILABLE = "unavailable"  # 480 at once (phone off)
    NOT_FOUND = "not_found"  # 404
    CANCELLED = "cancelled"  # the dialer's CANCEL while ringing (487)
    RING_TIMEOUT = "ring_timeout"  # nobody answered and the network gave up (480)
    OVERFLOW = "overflow"  # more than max_calls at once (503)
    FORBIDDEN = "forbidden"  # the trunk is not registered (403)
    ABANDONED = "abandoned"  # inbound: the customer gave up waiting in the queue
    FAILED = "failed"  # inbound: the dialer refused or never answered


_RESULT_FOR: dict[Behaviour, CarrierResult] = {
    Behaviour.BUSY: CarrierResult.BUSY,
    Behaviour.REJECT: CarrierResult.REJECTED,
    Behaviour.UNAVAILABLE: CarrierResult.UNAVAILABLE,
    Behaviour.NOT_FOUND: CarrierResult.NOT_FOUND,
}


@dataclass
class CarrierCallRecord:
    """The truth about one call. Times are ``time.time()`` seconds, like the UA's Call times.

    ``direction`` is from the dialer's point of view: ``outbound`` calls were dialled by the
    dialer to a customer, ``inbound`` calls were placed by a customer to the dialer's DID.
    ``ended_by`` is ``customer``, ``dialer`` or ``network``.
    """

    call_id: str
    direction: Literal["outbound", "inbound"]
    number: str
    uri: str
    caller_id: str | None = None
    attempt: int = 0
    decision: CustomerDecision | None = None
    behaviour: Behaviour | None = None
    result: CarrierResult | None = None
    sip_status: int | None = None
    invited_at: float = field(default_factory=time.time)
    ringing_at: float | None = None
    answered_at: float | None = None
    connected_at: float | None = None
    ended_at: float | None = None
    ended_by: str | None = None
    detail: str = ""
    heard_s: float = 0.0
    spoken_s: float = 0.0
    dtmf_sent: str = ""
    recording: Path | None = None

    @property
    def talk_s(self) -> float:
        """Seconds from answer to end (0 when never answered)."""
        if self.answered_at is None or self.ended_at is None:
            return 0.0
        return self.ended_at - self.answered_at

    def as_dict(self) -> dict[str, object]:
        return {
            "call_id": self.call_id,
            "direction": self.direction,
            "number": self.number,
            "attempt": self.attempt,
            "behaviour": self.behaviour.value if self.behaviour else None,
            "result": self.result.value if self.result else None,
            "sip_status": self.sip_status,
            "invited_at": self.invited_at,
            "ringing_at": self.ringing_at,
            "answered_at": self.answered_at,
            "connected_at": self.connected_at,
            "ended_at": self.ended_at,
            "ended_by": self.ended_by,
            "talk_s": round(self.talk_s, 3),
            "detail": self.detail,
            "recording": str(self.recording) if self.recording else None,
        }


@dataclass
class CarrierConfig:
    host: str = "127.0.0.1"
    port: int = 0
    realm: str = "carrier"
    #: trunk credentials; with them the carrier is the trunk's registrar and can challenge INVITEs
    trunk_user: str | None = None
    trunk_password: str | None = None
    challenge_invites: bool = False
    require_registration: bool = False
    max_calls: int = 200
    no_answer_timeout_s: float = 120.0
    machine_max_s: float = 30.0
    #: a customer who lets the dialer hang up stays at most this long after their talk time
    linger_max_s: float = 60.0
    record_dir: Path | None = None
    #: where place_inbound sends calls given as a bare number (``sip:127.0.0.1:5060``); when
    #: unset, the trunk's registered contact is used
    deliver_to: str | None = None
    media_ports: tuple[int, int] = (40000, 50000)
    media_timeout: float = 30.0

    def __post_init__(self) -> None:
        if (self.trunk_user is None) != (self.trunk_password is None):
            raise ValueError("give both trunk_user and trunk_password, or neither")
        if (self.challenge_invites or self.require_registration) and self.trunk_user is None:
            raise ValueError("challenge_invites/require_registration need trunk_user and trunk_password")
        if self.max_calls < 1:
            raise ValueError(f"max_calls={self.max_calls}: the carrier needs at least one line")


@dataclass(frozen=True)
class InboundBehaviour:
    """A customer calling the dialer's DID."""

    #: IVR digits to press (e.g. "1" for sales), sent ``dtmf_after_s`` after the answer
    dtmf: str = ""
    dtmf_after_s: float = 3.0
    #: give up (abandon) if no agent is connected this long after the IVR digits
    patience_s: float = 60.0
    talk_s: float = 30.0
    hangs_up_first: bool = True
    ring_timeout_s: float = 30.0
    #: treat the call as connected to an agent after this long in the queue (when nobody
    #: calls mark_connected); None waits for mark_connected only
    assume_connected_after_s: float | None = None
    seed: int = 0


class InboundCall:
    """A customer's call into the dialer; ``mark_connected`` when an agent picks it up."""

    def __init__(self, record: CarrierCallRecord, call: Call, behaviour: InboundBehaviour) -> None:
        self.record = record
        self.call = call
        self.behaviour = behaviour
        self.connected = asyncio.Event()
        self.task: asyncio.Task[CarrierCallRecord] | None = None

    @property
    def call_id(self) -> str:
        return self.call.id

    def mark_connected(self) -> None:
        self.connected.set()

    async def wait(self) -> CarrierCallRecord:
        """The finished record (also when the carrier was closed during the call)."""
        assert self.task is not None
        try:
            return await asyncio.shield(self.task)
        except asyncio.CancelledError:
            if self.task.cancelled():
                return self.record
            raise


class SimulatedCarrier:
    """The trunk and its customers. ``await start()``, point the dialer at :attr:`uri`, ``await close()``."""

    def __init__(
        self,
        model: CustomerModel | None = None,
        audio: SimAudio | None = None,
        config: CarrierConfig | None = None,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.model = model or CustomerModel()
        self.audio = audio or SimAudio()
        self.config = config or CarrierConfig()
        self._clock = clock
        cfg = self.config
        accounts = {cfg.trunk_user: cfg.trunk_password} if cfg.trunk_user and cfg.trunk_password else {}
        self.ua = UserAgent(
            UAConfig(
                host=cfg.host,
                port=cfg.port,
                user="carrier",
                user_agent="sim-carrier/0.1",
                realm=cfg.realm,
                accounts=accounts,
                challenge_invites=cfg.challenge_invites,
                registrar=True,
                ring_timeout=cfg.no_answer_timeout_s,
                media_timeout=cfg.media_timeout,
                media_ports=cfg.media_ports,
                auth_algorithms=("MD5", "SHA-256"),
            )
        )
        self.ua.on_incoming = self._on_incoming
        self.log: list[CarrierCallRecord] = []
        self.on_record: Callable[[CarrierCallRecord], None] | None = None
        self._attempts: dict[str, int] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._inbound: dict[str, InboundCall] = {}
        self._active = 0
        self._closing = False

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        """Load the voices (generating them once) and open the SIP port."""
        await asyncio.to_thread(self.audio.customer_voices)
        await asyncio.to_thread(self.audio.machine_greetings)
        if self.config.record_dir is not None:
            self.config.record_dir.mkdir(parents=True, exist_ok=True)
        await self.ua.start()
        log.info("sim_carrier.started", uri=self.uri, max_calls=self.config.max_calls)

    async def close(self) -> None:
        """Hang up every call, wait for the call tasks, release the ports."""
        self._closing = True
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.ua.close()

    async def __aenter__(self) -> SimulatedCarrier:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def port(self) -> int:
        return self.ua.port

    @property
    def uri(self) -> str:
        """Where the dialer sends calls and REGISTERs: ``sip:<host>:<port>``."""
        return f"sip:{self.config.host}:{self.port}"

    def number_uri(self, number: str) -> str:
        return f"sip:{number}@{self.config.host}:{self.port}"

    @property
    def active_calls(self) -> int:
        return self._active

    def records_for(self, number: str) -> list[CarrierCallRecord]:
        return [r for r in self.log if r.number == number]

    def _spawn(self, coro: Coroutine[Any, Any, _T]) -> asyncio.Task[_T]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _finish(self, rec: CarrierCallRecord) -> None:
        if rec.ended_at is None:
            rec.ended_at = time.time()
        log.info("sim_carrier.call", **rec.as_dict())
        if self.on_record is not None:
            self.on_record(rec)

    # -- calls from the dialer --------------------------------------------------------------
    def _on_incoming(self, call: Call) -> None:
        self._spawn(self._serve(call))

    async def _serve(self, call: Call) -> None:
        uri = _request_uri(call)
        number = normalize_number(uri.user or "") or (uri.user or "")
        caller = _caller_id(call)
        rec = CarrierCallRecord(call.id, "outbound", number, str(uri), caller_id=caller)
        self.log.append(rec)
        counted = False
        try:
            if self._closing:
                await self._refuse(call, rec, 503, CarrierResult.OVERFLOW, "carrier shutting down")
                return
            if normalize_number(uri.user or "") is None:
                await self._refuse(call, rec, 404, CarrierResult.NOT_FOUND, f"{uri.user!r} is not an E.164 number")
                return
            trunk = self.config.trunk_user
            if self.config.require_registration and trunk is not None and not self.ua.registered(trunk):
                await self._refuse(call, rec, 403, CarrierResult.FORBIDDEN, f"trunk {trunk} is not registered")
                return
            if self._active >= self.config.max_calls:
                await self._refuse(call, rec, 503, CarrierResult.OVERFLOW, f"all {self.config.max_calls} lines busy")
                return
            self._active += 1
            counted = True
            attempt = self._attempts.get(number, 0)
            self._attempts[number] = attempt + 1
            decision = self.model.decide(number, attempt, self._clock())
            rec.attempt, rec.decision, rec.behaviour = attempt, decision, decision.behaviour
            await self._follow(call, rec, decision)
        finally:
            if counted:
                self._active -= 1
            if not call.ended:
                await call.hangup()
            if rec.result is None:
                rec.result = CarrierResult.FAILED
            if rec.ended_by is None:  # cancelled by close() mid-call
                rec.ended_by, rec.detail = "network", rec.detail or "carrier shut down"
            self._finish(rec)

    async def _refuse(self, call: Call, rec: CarrierCallRecord, status: int, result: CarrierResult, why: str) -> None:
        await call.reject(status, _REASONS.get(status))
        rec.result, rec.sip_status, rec.ended_by, rec.detail = result, status, "network", why

    async def _ring_for(self, call: Call, rec: CarrierCallRecord, seconds: float) -> bool:
        """Ring ``seconds``; False (and the record says why) when the dialer cancelled."""
        if not await _wait_ended(call, 0) and call.state is CallState.DIALING:
            await call.ring()
            rec.ringing_at = time.time()
        if await _wait_ended(call, seconds):
            rec.result, rec.sip_status, rec.ended_by = CarrierResult.CANCELLED, 487, "dialer"
            return False
        return True

    async def _follow(self, call: Call, rec: CarrierCallRecord, d: CustomerDecision) -> None:
        if await _wait_ended(call, d.post_dial_delay_s):  # CANCEL during post-dial delay
            rec.result, rec.sip_status, rec.ended_by = CarrierResult.CANCELLED, 487, "dialer"
            return
        b = d.behaviour
        if b in (Behaviour.BUSY, Behaviour.UNAVAILABLE, Behaviour.NOT_FOUND):
            status = b.sip_status or 480
            await self._refuse(call, rec, status, _RESULT_FOR[b], f"customer {b.value}")
            return
        if b is Behaviour.REJECT:
            if await self._ring_for(call, rec, d.ring_s):
                await call.reject(603, "Decline")
                rec.result, rec.sip_status, rec.ended_by = CarrierResult.REJECTED, 603, "customer"
            return
        if b is Behaviour.NO_ANSWER:
            if await self._ring_for(call, rec, self.config.no_answer_timeout_s):
                await call.reject(480, "Temporarily Unavailable")
                rec.result, rec.sip_status, rec.ended_by = CarrierResult.RING_TIMEOUT, 480, "network"
                rec.detail = f"no answer within {self.config.no_answer_timeout_s:.0f} s"
            return
        if not await self._ring_for(call, rec, d.ring_s):
            return
        try:
            await call.answer()
        except (SdpNegotiationError, RuntimeError) as exc:  # no common codec; or CANCEL crossed the answer
            if call.outcome is not None and call.outcome.outcome is CallOutcome.CANCELLED:
                rec.result, rec.sip_status, rec.ended_by = CarrierResult.CANCELLED, 487, "dialer"
            else:
                rec.result, rec.sip_status, rec.ended_by = CarrierResult.FAILED, 488, "network"
                rec.detail = str(exc)
            return
        rec.result, rec.sip_status, rec.answered_at = CarrierResult.ANSWERED, 200, time.time()
        self._record(call, rec)
        rng = random.Random(d.clip_seed)
        speaker, ear = Speaker(call), Ear(call)
        speaker.start()
        if b is Behaviour.ANSWER_MACHINE:
            script = self._machine(speaker, rng)
            budget = self.config.machine_max_s
        else:
            script = self._human(speaker, ear, d, rng)
            budget = d.talk_s if d.hangs_up_first else d.talk_s + self.config.linger_max_s
        try:
            rec.ended_by, rec.detail = await _converse(call, script, budget)
        finally:
            await speaker.stop()
            rec.heard_s, rec.spoken_s = ear.heard_s, speaker.spoken_s

    def _record(self, call: Call, rec: CarrierCallRecord) -> None:
        rdir = self.config.record_dir
        if rdir is not None and call.media is not None:
            rec.recording = rdir / _SAFE.sub("_", f"{rec.number}-{rec.attempt}-{call.id[:12]}.wav")
            call.media.record_to(rec.recording)

    async def _human(self, speaker: Speaker, ear: Ear, d: CustomerDecision, rng: random.Random) -> str:
        """A person: "Hello?", waits for the caller, then talks. Returns why they hang up."""
        voice = rng.choice(self.audio.customer_voices())
        greeting = rng.choice(voice.greetings)
        loop = asyncio.get_running_loop()
        await speaker.say(greeting)
        greeted = loop.time()
        said_again = False
        while ear.heard_s < 0.3:
            await asyncio.sleep(0.1)
            if loop.time() - greeted > d.silence_patience_s:
                if said_again:
                    return "silence: nobody spoke"
                await speaker.say(voice.greetings[0])  # "Hello?" once more before giving up
                said_again = True
                greeted = loop.time()
        while True:
            await asyncio.sleep(rng.uniform(1.0, 3.0))  # listening to the agent
            await ear.turn()
            await speaker.say(rng.choice(voice.talk))

    async def _machine(self, speaker: Speaker, rng: random.Random) -> str:
        await speaker.say(rng.choice(self.audio.machine_greetings()))
        await asyncio.Event().wait()  # recording the message until the caller hangs up
        return "unreachable"

    # -- calls to the dialer ----------------------------------------------------------------
    async def place_inbound(
        self, did_uri: str, from_number: str, behaviour: InboundBehaviour | None = None
    ) -> InboundCall:
        """A customer calls ``did_uri`` presenting ``from_number``; returns once the INVITE is sent.

        ``did_uri`` is a SIP URI, or a bare number delivered to ``config.deliver_to`` or to
        the trunk's registered contact, as a carrier delivers a DID call. ``await
        handle.wait()`` gives the finished :class:`CarrierCallRecord`.
        """
        number = normalize_number(from_number)
        if number is None:
            raise ValueError(f"caller id {from_number!r} is not an E.164 number; write it as +<country><number>")
        did_uri = self._inbound_target(did_uri)
        b = behaviour or InboundBehaviour()
        user, password = self.config.trunk_user, self.config.trunk_password
        auth = (user, password) if user is not None and password is not None else None
        call = await self.ua.call(did_uri, from_user=number, ring_timeout=b.ring_timeout_s, auth=auth)
        rec = CarrierCallRecord(call.id, "inbound", number, did_uri, caller_id=number)
        self.log.append(rec)
        handle = InboundCall(rec, call, b)
        self._inbound[call.id] = handle
        handle.task = self._spawn(self._inbound_call(handle))
        return handle

    def _inbound_target(self, did: str) -> str:
        if did.startswith(("sip:", "sips:")):
            return did
        number = normalize_number(did)
        if number is None:
            raise ValueError(f"DID {did!r} is neither a sip: URI nor an E.164 number")
        if self.config.deliver_to is not None:
            target = SipURI.parse(self.config.deliver_to)
            return f"sip:{number}@{_hostport(target.host, target.port or 5060)}"
        trunk = self.config.trunk_user
        if trunk is not None and self.ua.registrar is not None:
            bindings = self.ua.registrar.lookup(f"sip:{trunk}@{self.config.realm}", time.time())
            if bindings:
                host, port = bindings[0].source  # where the REGISTER came from (§10.3, NAT-safe)
                return f"sip:{number}@{_hostport(host, port)}"
        raise ValueError(
            f"cannot deliver DID {number}: pass a sip: URI, set CarrierConfig.deliver_to, "
            "or let the dialer register the trunk first"
        )

    def mark_connected(self, call_id: str) -> bool:
        """An agent was connected to inbound call ``call_id``; False if no such call is waiting."""
        handle = self._inbound.get(call_id)
        if handle is None:
            return False
        handle.mark_connected()
        return True

    async def _inbound_call(self, h: InboundCall) -> CarrierCallRecord:
        call, rec = h.call, h.record
        self._active += 1
        try:
            outcome = await call.wait_answered()
            rec.ringing_at = call.ringing_at
            rec.sip_status = outcome.sip_status
            if outcome.outcome is not CallOutcome.ANSWERED:
                rec.result, rec.ended_by = CarrierResult.FAILED, "dialer"
                rec.detail = f"{outcome.outcome.value} {outcome.sip_status or ''} {outcome.detail or ''}".strip()
                return rec
            rec.answered_at = call.answered_at or time.time()
            rec.result = CarrierResult.ANSWERED
            self._record(call, rec)
            speaker, ear = Speaker(call), Ear(call)
            speaker.start()
            try:
                rec.ended_by, rec.detail = await _converse(call, self._queue_caller(h, speaker, ear), None)
            finally:
                await speaker.stop()
                rec.heard_s, rec.spoken_s = ear.heard_s, speaker.spoken_s
            if rec.detail.startswith("abandoned"):
                rec.result = CarrierResult.ABANDONED
            return rec
        finally:
            self._active -= 1
            self._inbound.pop(call.id, None)
            if not call.ended:
                await call.hangup()
            if rec.result is None:
                rec.result = CarrierResult.FAILED
            if rec.ended_by is None:
                rec.ended_by, rec.detail = "network", rec.detail or "carrier shut down"
            self._finish(rec)

    async def _queue_caller(self, h: InboundCall, speaker: Speaker, ear: Ear) -> str:
        b, rec = h.behaviour, h.record
        rng = random.Random(b.seed)
        voice = rng.choice(self.audio.customer_voices())
        if b.dtmf:
            await asyncio.sleep(b.dtmf_after_s)  # listening to the menu
            await h.call.send_dtmf(b.dtmf)
            rec.dtmf_sent += b.dtmf
        wait = b.assume_connected_after_s
        try:
            await asyncio.wait_for(h.connected.wait(), b.patience_s if wait is None else min(wait, b.patience_s))
        except TimeoutError:
            if wait is None or wait >= b.patience_s:
                return f"abandoned after {b.patience_s:.0f} s in the queue"
        rec.connected_at = time.time()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + b.talk_s
        await speaker.say(rng.choice(voice.greetings))
        while not b.hangs_up_first or loop.time() < deadline:
            await asyncio.sleep(min(rng.uniform(1.0, 3.0), max(0.1, deadline - loop.time())))
            if b.hangs_up_first and loop.time() >= deadline:
                break
            await ear.turn()
            await speaker.say(rng.choice(voice.talk))
        return "talk time over"


_REASONS = {403: "Forbidden", 404: "Not Found", 480: "Temporarily Unavailable", 486: "Busy Here", 503: None}


async def _wait_ended(call: Call, seconds: float) -> bool:
    """Wait up to ``seconds`` for the call to end (a CANCEL or BYE); True if it did."""
    if call.ended:
        return True
    if seconds <= 0:
        return False
    try:
        await asyncio.wait_for(call.wait_ended(), seconds)
    except TimeoutError:
        return call.ended
    return True


async def _converse(call: Call, script: Coroutine[Any, Any, str], budget: float | None) -> tuple[str, str]:
    """Run a person's ``script`` coroutine until it decides to hang up, the budget runs out, or
    the far end hangs up. Returns (ended_by, detail)."""
    task = asyncio.get_running_loop().create_task(script)
    ended = asyncio.get_running_loop().create_task(call.wait_ended())
    try:
        done, _ = await asyncio.wait({task, ended}, timeout=budget, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in (task, ended):
            t.cancel()
        await asyncio.gather(task, ended, return_exceptions=True)
    if ended in done or call.ended:
        who = "dialer" if call.ended_by == "remote" else "network"
        return who, f"ended by the {who} ({call.ended_by})"
    detail = task.result() if task in done and not task.cancelled() and task.exception() is None else "talk time over"
    await call.hangup()
    return "customer", detail


def _request_uri(call: Call) -> SipURI:
    # The UA facade exposes the initial INVITE's headers but not its Request-URI; the server
    # transaction holds the request. Fall back to the To URI (equal for a direct trunk).
    tx = call._server_tx
    if tx is not None:
        return tx.request.uri
    assert call.headers is not None
    return Address.parse(call.headers.get("to") or "").uri


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _caller_id(call: Call) -> str | None:
    try:
        return SipURI.parse(call.remote).user
    except SipSyntaxError:
        return None
