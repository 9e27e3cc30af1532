"""Live supervision of a bridged call: listen, whisper and barge from the supervisor's phone.

:class:`Supervision` joins a supervisor's answered call to a customer <-> agent call. While
it runs, the call's plain :class:`~telephony.media.bridge.Bridge` is stopped and a
:class:`~telephony.media.conference.Conference` mixes the three legs per the mode; when it
ends the bridge is restarted, so customer and agent keep talking with continuous RTP
streams. The supervisor switches mode with DTMF (RFC 4733 events or SIP INFO, whatever
the call reports): by default 1 = listen, 2 = whisper, 3 = barge, # or * = leave. Each
start, mode change and end is a small frozen dataclass handed to ``on_event`` (the app logs
it and puts it on the event bus). Who may supervise, and mapping an agent's extension to
its call, are the app's business; :func:`parse_feature_code` reads the dialled string
(``*22<extension>`` and friends) for it.

    supervision = Supervision(customer, agent, supervisor, "listen", bridge=bridge, on_event=bus.publish)
    await supervision.start()
    ...                                  # DTMF from the supervisor, or supervision.set_mode("barge")
    ended = await supervision.wait_ended()
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import ClassVar, Final, Literal, Protocol

import structlog

from telephony.media.bridge import Bridge
from telephony.media.conference import Conference
from telephony.media.leg import MediaLeg
from telephony.media.mixer import SupervisionMode

__all__ = [
    "DEFAULT_FEATURE_CODES",
    "DEFAULT_KEYS",
    "LEAVE",
    "SupervisedCall",
    "Supervision",
    "SupervisionEnded",
    "SupervisionError",
    "SupervisionEvent",
    "SupervisionMode",
    "SupervisionModeChanged",
    "SupervisionStarted",
    "parse_feature_code",
]

log = structlog.get_logger(__name__)

#: The key action that ends the session (the supervisor hangs up or moves on).
LEAVE: Final = "leave"
DEFAULT_KEYS: Final[Mapping[str, str]] = MappingProxyType(
    {"1": "listen", "2": "whisper", "3": "barge", "#": LEAVE, "*": LEAVE}
)
DEFAULT_FEATURE_CODES: Final[Mapping[str, str]] = MappingProxyType({"*22": "listen", "*23": "whisper", "*24": "barge"})
_DTMF_KEYS: Final = frozenset("0123456789*#ABCD")

EndReason = Literal["supervisor_left", "supervisor_hung_up", "call_ended", "stopped"]


class SupervisionError(ValueError):
    """A supervision that cannot start or a configuration that cannot work; says what to fix."""


# -- events ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SupervisionStarted:
    """A supervisor joined ``call_id`` (the customer's call) in ``mode``."""

    __topic__: ClassVar[str] = "calls/{call_id}/supervision"

    supervisor: str
    agent: str
    call_id: str
    mode: SupervisionMode


@dataclass(frozen=True, slots=True)
class SupervisionModeChanged:
    """The supervisor switched mode; ``by`` is ``"dtmf"`` (from the phone) or ``"api"``."""

    __topic__: ClassVar[str] = "calls/{call_id}/supervision"

    supervisor: str
    agent: str
    call_id: str
    mode: SupervisionMode
    previous: SupervisionMode
    by: Literal["dtmf", "api"]


@dataclass(frozen=True, slots=True)
class SupervisionEnded:
    """The session is over; customer and agent are bridged again unless the call ended.

    ``reason``: ``supervisor_left`` (leave key), ``supervisor_hung_up``, ``call_ended``
    (customer or agent hung up) or ``stopped`` (:meth:`Supervision.stop`).
    """

    __topic__: ClassVar[str] = "calls/{call_id}/supervision"

    supervisor: str
    agent: str
    call_id: str
    mode: SupervisionMode
    reason: EndReason
    duration: float

    def __post_init__(self) -> None:
        if self.duration < 0:
            raise ValueError(f"SupervisionEnded.duration={self.duration!r} must be >= 0 seconds")


SupervisionEvent = SupervisionStarted | SupervisionModeChanged | SupervisionEnded


# -- feature codes -------------------------------------------------------------------------


def parse_feature_code(
    dialled: str, prefixes: Mapping[str, str] = DEFAULT_FEATURE_CODES
) -> tuple[SupervisionMode, str] | None:
    """``"*22101"`` -> ``(SupervisionMode.LISTEN, "101")``; None when ``dialled`` is no supervision code.

    The longest matching prefix wins (so ``*2`` and ``*22`` can coexist); the rest must be a
    non-empty run of digits, the agent's extension. Raises :class:`SupervisionError` when
    ``prefixes`` maps to something other than listen, whisper or barge.
    """
    number = dialled.strip()
    for prefix in sorted(prefixes, key=len, reverse=True):
        if prefix and number.startswith(prefix):
            extension = number[len(prefix) :]
            if not extension.isdigit() or not extension.isascii():
                return None
            return _mode(prefixes[prefix], f"feature code {prefix!r}"), extension
    return None


def _mode(value: str, where: str) -> SupervisionMode:
    try:
        return SupervisionMode(value)
    except ValueError:
        raise SupervisionError(f"{where} maps to {value!r}; use one of listen, whisper, barge") from None


# -- the controller --------------------------------------------------------------------------


class SupervisedCall(Protocol):
    """What supervision needs of a call (:class:`telephony.aio.ua.Call` has it all)."""

    on_dtmf: Callable[[str], None] | None

    @property
    def id(self) -> str: ...

    @property
    def remote(self) -> str: ...

    @property
    def media(self) -> MediaLeg | None: ...

    @property
    def ended(self) -> bool: ...

    def wait_ended(self) -> Awaitable[None]: ...

    def hangup(self, reason: str | None = None) -> Awaitable[None]: ...


class Supervision:
    """One supervisor on one customer <-> agent call. See the module docstring.

    ``bridge`` is the call's running bridge: stopped on :meth:`start`, restarted at the end
    (its recording tap follows the conference meanwhile). Without one, a new
    :class:`Bridge` joins customer and agent at the end (:attr:`bridge`). ``keys`` maps DTMF
    keys to a mode or :data:`LEAVE`. With ``hangup_supervisor`` the supervisor's call is
    hung up when the session ends for any reason but its own hangup. ``supervisor_id``,
    ``agent_id`` and ``call_id`` name the parties in events (default: the calls' remote URIs
    and the customer call's id).
    """

    def __init__(
        self,
        customer: SupervisedCall,
        agent: SupervisedCall,
        supervisor: SupervisedCall,
        mode: SupervisionMode | str = SupervisionMode.LISTEN,
        *,
        bridge: Bridge | None = None,
        keys: Mapping[str, str] = DEFAULT_KEYS,
        on_event: Callable[[SupervisionEvent], object] | None = None,
        hangup_supervisor: bool = True,
        supervisor_id: str | None = None,
        agent_id: str | None = None,
        call_id: str | None = None,
    ) -> None:
        if len({id(customer), id(agent), id(supervisor)}) != 3:
            raise SupervisionError("customer, agent and supervisor must be three different calls")
        self.customer = customer
        self.agent = agent
        self.supervisor = supervisor
        self._mode = _mode(str(mode), "the requested mode")
        self.keys = _check_keys(keys)
        self.bridge = bridge
        self.on_event = on_event
        self.hangup_supervisor = hangup_supervisor
        self.supervisor_id = supervisor_id or supervisor.remote
        self.agent_id = agent_id or agent.remote
        self.call_id = call_id or customer.id
        self.conference: Conference | None = None
        self.ended: SupervisionEnded | None = None
        self._started_at = 0.0
        self._previous_on_dtmf: Callable[[str], None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._hangup: asyncio.Task[None] | None = None
        self._done = asyncio.Event()

    @property
    def mode(self) -> SupervisionMode:
        return self._mode

    @property
    def active(self) -> bool:
        return self.conference is not None and self.ended is None

    async def start(self) -> None:
        """Stop the bridge, start mixing and listen to the supervisor's keys."""
        if self.conference is not None:
            raise SupervisionError("this supervision has already been started; create a new one to supervise again")
        legs = []
        for role, call in (("customer", self.customer), ("agent", self.agent), ("supervisor", self.supervisor)):
            media = call.media
            if call.ended or media is None or media.params is None:
                raise SupervisionError(
                    f"the {role} call {call.id} is not an answered call with media; answer it before supervising"
                )
            legs.append(media)
        tap = None
        if self.bridge is not None:
            tap = self.bridge.tap
            self.bridge.stop()
        self.conference = Conference(legs[0], legs[1], legs[2], mode=self._mode, tap=tap)
        self.conference.start()
        self._started_at = time.monotonic()
        self._previous_on_dtmf = self.supervisor.on_dtmf
        self.supervisor.on_dtmf = self._on_digit
        self._watcher = asyncio.create_task(self._watch(), name=f"supervision-{self.call_id}")
        log.info(
            "supervision.started",
            supervisor=self.supervisor_id,
            agent=self.agent_id,
            call_id=self.call_id,
            mode=self._mode.value,
        )
        self._emit(SupervisionStarted(self.supervisor_id, self.agent_id, self.call_id, self._mode))

    def set_mode(self, mode: SupervisionMode | str, *, by: Literal["dtmf", "api"] = "api") -> None:
        """Switch to listen, whisper or barge (effective within 20 ms, cross-faded)."""
        new = _mode(str(mode), "the requested mode")
        if not self.active or new is self._mode:
            return
        assert self.conference is not None
        previous = self._mode
        self._mode = new
        self.conference.set_mode(new)
        log.info("supervision.mode", call_id=self.call_id, supervisor=self.supervisor_id, mode=new.value, by=by)
        self._emit(SupervisionModeChanged(self.supervisor_id, self.agent_id, self.call_id, new, previous, by))

    async def stop(self) -> SupervisionEnded | None:
        """End the session: customer and agent are bridged again. Returns the end event."""
        self._end("stopped")
        if self._hangup is not None:
            await self._hangup
        return self.ended

    async def wait_ended(self) -> SupervisionEnded:
        """Wait until the session ends (leave key, a hangup, or :meth:`stop`)."""
        await self._done.wait()
        if self._hangup is not None:
            await self._hangup
        assert self.ended is not None
        return self.ended

    # -- internals ---------------------------------------------------------------------------

    def _on_digit(self, digit: str) -> None:
        action = self.keys.get(digit)
        if action is None:
            log.debug("supervision.key_ignored", call_id=self.call_id, digit=digit)
        elif action == LEAVE:
            self._end("supervisor_left")
        else:
            self.set_mode(action, by="dtmf")

    async def _watch(self) -> None:
        waits: dict[asyncio.Future[None], EndReason] = {
            asyncio.ensure_future(self.supervisor.wait_ended()): "supervisor_hung_up",
            asyncio.ensure_future(self.customer.wait_ended()): "call_ended",
            asyncio.ensure_future(self.agent.wait_ended()): "call_ended",
        }
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for future in waits:
                future.cancel()
        # Customer or agent gone outranks the supervisor leaving at the same moment: no re-bridge.
        reason: EndReason = "call_ended" if any(waits[f] == "call_ended" for f in done) else "supervisor_hung_up"
        self._end(reason)

    def _end(self, reason: EndReason) -> None:
        if self.conference is None or self.ended is not None:
            return
        self.conference.stop()
        if self.supervisor.on_dtmf == self._on_digit:
            self.supervisor.on_dtmf = self._previous_on_dtmf
        customer_media, agent_media = self.customer.media, self.agent.media
        if not self.customer.ended and not self.agent.ended and customer_media and agent_media:
            if self.bridge is not None:
                self.bridge.start()
            else:
                self.bridge = Bridge(customer_media, agent_media)
        if self._watcher is not None and self._watcher is not asyncio.current_task():
            self._watcher.cancel()
        self.ended = SupervisionEnded(
            self.supervisor_id,
            self.agent_id,
            self.call_id,
            self._mode,
            reason,
            max(time.monotonic() - self._started_at, 0.0),
        )
        log.info(
            "supervision.ended",
            supervisor=self.supervisor_id,
            agent=self.agent_id,
            call_id=self.call_id,
            reason=reason,
            duration=round(self.ended.duration, 3),
            **self.conference.stats(),
        )
        if self.hangup_supervisor and reason != "supervisor_hung_up" and not self.supervisor.ended:
            self._hangup = asyncio.create_task(self._hangup_supervisor(), name=f"supervision-hangup-{self.call_id}")
        self._done.set()
        self._emit(self.ended)

    async def _hangup_supervisor(self) -> None:
        await self.supervisor.hangup()

    def _emit(self, event: SupervisionEvent) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(event)
        except Exception:
            # A failing listener (a logger, the bus) must not break the call's audio path.
            log.exception("supervision.event_listener_failed", event=type(event).__name__, call_id=self.call_id)


def _check_keys(keys: Mapping[str, str]) -> Mapping[str, str]:
    checked: dict[str, str] = {}
    for key, action in keys.items():
        if key not in _DTMF_KEYS:
            raise SupervisionError(f"supervision key {key!r} is not a DTMF key; use one of 0-9, *, #, A-D")
        checked[key] = LEAVE if action == LEAVE else _mode(action, f"supervision key {key!r}").value
    return MappingProxyType(checked)
