"""The vocabulary shared by the IVR machines, and the one async driver that runs them on a call.

Menus and surveys are pure machines in the sans-I/O style of the SIP core: they take events
(:class:`Started`, :class:`DigitPressed`, :class:`PromptFinished`, :class:`InputTimedOut`,
:class:`CallEnded`, each carrying ``now``) and answer with the next step: :class:`PlayPrompt`,
:class:`WaitForDigit`, or a machine-specific final step. :func:`drive` is the thin asyncio side:
it plays prompts on a :class:`CallLike`, reads DTMF (RFC 4733 digits delivered by the call),
arms the input timeout and feeds the machine. A digit pressed during an interruptible prompt
stops it (barge-in); digits pressed during other prompts are kept as type-ahead.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import weakref
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
import structlog

__all__ = [
    "CallEnded",
    "CallLike",
    "DigitPressed",
    "DigitReader",
    "Event",
    "InputTimedOut",
    "Machine",
    "PlayPrompt",
    "PromptFinished",
    "PromptSource",
    "Started",
    "WaitForDigit",
    "digit_reader",
    "drive",
    "utc_now",
]

DTMF_DIGITS = frozenset("0123456789*#ABCD")


@runtime_checkable
class CallLike(Protocol):
    """The part of ``telephony.aio.ua.Call`` the IVR drives (structural, so tests use a fake)."""

    id: str

    @property
    def ended(self) -> bool: ...

    async def play(self, source: str | os.PathLike[str] | npt.NDArray[np.int16], *, loop: bool = False) -> None: ...

    def dtmf(self) -> AsyncIterator[str]: ...

    async def hangup(self, reason: str | None = None) -> None: ...

    async def wait_ended(self) -> None: ...


class PromptSource(Protocol):
    """Where prompt names become audio (``ivr.prompts.PromptLibrary``)."""

    def load(self, name: str) -> npt.NDArray[np.int16]: ...


def utc_now() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------- events
@dataclass(frozen=True, slots=True)
class Started:
    """The machine takes over the call."""

    now: datetime


@dataclass(frozen=True, slots=True)
class DigitPressed:
    """A DTMF digit from the caller (RFC 4733 telephone-event or SIP INFO)."""

    digit: str
    now: datetime

    def __post_init__(self) -> None:
        if self.digit not in DTMF_DIGITS:
            raise ValueError(f"{self.digit!r} is not a DTMF digit (0-9, *, #, A-D)")


@dataclass(frozen=True, slots=True)
class PromptFinished:
    """The prompt asked for by the last :class:`PlayPrompt` played to its end."""

    now: datetime


@dataclass(frozen=True, slots=True)
class InputTimedOut:
    """The :class:`WaitForDigit` timeout passed without a digit."""

    now: datetime


@dataclass(frozen=True, slots=True)
class CallEnded:
    """The caller hung up (or the call ended for any other reason)."""

    now: datetime


Event = Started | DigitPressed | PromptFinished | InputTimedOut | CallEnded


# --------------------------------------------------------------------------- steps
@dataclass(frozen=True, slots=True)
class PlayPrompt:
    """Play prompt ``prompt``; answer with :class:`PromptFinished`, or :class:`DigitPressed` on barge-in."""

    prompt: str
    interruptible: bool = True


@dataclass(frozen=True, slots=True)
class WaitForDigit:
    """Wait up to ``timeout`` seconds (until ``deadline``) for a digit; else :class:`InputTimedOut`."""

    timeout: float
    deadline: datetime


class Machine(Protocol):
    def handle(self, event: Event) -> object: ...


# --------------------------------------------------------------------------- driver
_ENDED = object()


class DigitReader:
    """The one reader of a call's ``dtmf()`` for the call's whole life, shared by every IVR stage.

    Stages come and go on a customer leg (menu, hold, survey); each cancelling its own
    ``async for`` over ``call.dtmf()`` would risk an abandoned read swallowing the next digit,
    so one pump task per call feeds a queue that the stages take turns reading. Get it with
    :func:`digit_reader`; code outside the IVR that wants the caller's digits reads it too.
    """

    def __init__(self, call: CallLike) -> None:
        self.queue: asyncio.Queue[object] = asyncio.Queue()
        self.ended = False
        self._task = asyncio.create_task(self._pump(call), name=f"ivr-dtmf-{call.id}")

    async def _pump(self, call: CallLike) -> None:
        try:
            async for digit in call.dtmf():
                if digit in DTMF_DIGITS:  # a stray event code (e.g. flash) is not caller input
                    self.queue.put_nowait(digit)
        finally:
            self.queue.put_nowait(_ENDED)

    async def next(self) -> str | None:
        """The next digit, ``None`` once the call has ended."""
        if self.ended:
            return None
        item = await self.queue.get()
        if item is _ENDED:
            self.ended = True
            self.queue.put_nowait(_ENDED)  # every later reader learns it too
            return None
        assert isinstance(item, str)
        return item

    def drain(self) -> str:
        """Drop (and return) digits pressed before now: a new stage does not act on stale input."""
        dropped, keep_end = [], False
        while not self.queue.empty():
            item = self.queue.get_nowait()
            if item is _ENDED:
                keep_end = True
            else:
                assert isinstance(item, str)
                dropped.append(item)
        if keep_end:
            self.queue.put_nowait(_ENDED)
        return "".join(dropped)


_READERS: weakref.WeakKeyDictionary[CallLike, DigitReader] = weakref.WeakKeyDictionary()


def digit_reader(call: CallLike) -> DigitReader:
    """The shared :class:`DigitReader` of ``call`` (created on first use, in the running loop)."""
    reader = _READERS.get(call)
    if reader is None or reader._task.get_loop() is not asyncio.get_running_loop():
        reader = _READERS[call] = DigitReader(call)
    return reader


async def _play(call: CallLike, audio: npt.NDArray[np.int16], interruptible: bool, digits: DigitReader) -> str | None:
    """Play ``audio``; the barge-in digit if one interrupted it, ``""`` when it finished, None if the call ended."""
    play = asyncio.create_task(call.play(audio))
    typeahead: list[str] = []
    try:
        while True:
            get = asyncio.create_task(digits.next())
            await asyncio.wait({play, get}, return_when=asyncio.FIRST_COMPLETED)
            if get.done():
                digit = get.result()
                if digit is None:
                    return None
                if interruptible:
                    return digit
                typeahead.append(digit)
                continue
            get.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await get
            play.result()  # surface a playback error
            return ""
    finally:
        if not play.done():
            play.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await play
        # Type-ahead goes back in front of the queue, in the order pressed.
        if typeahead:
            rest = [digits.queue.get_nowait() for _ in range(digits.queue.qsize())]
            for item in (*typeahead, *rest):
                digits.queue.put_nowait(item)


async def drive(
    call: CallLike,
    machine: Machine,
    prompts: PromptSource,
    clock: Callable[[], datetime] = utc_now,
    *,
    log: Any = None,
) -> object:
    """Run ``machine`` on ``call`` until it returns a step other than PlayPrompt/WaitForDigit; return that step."""
    log = log if log is not None else structlog.get_logger(__name__).bind(call_id=call.id)
    digits = digit_reader(call)
    stale = digits.drain()
    if stale:
        log.debug("ivr.stale_digits_dropped", digits=stale)
    step = machine.handle(Started(clock()))
    while True:
        if isinstance(step, PlayPrompt):
            log.debug("ivr.play", prompt=step.prompt)
            outcome = await _play(call, prompts.load(step.prompt), step.interruptible, digits)
            if outcome is None:
                step = machine.handle(CallEnded(clock()))
            elif outcome:
                log.debug("ivr.barge_in", prompt=step.prompt, digit=outcome)
                step = machine.handle(DigitPressed(outcome, clock()))
            else:
                step = machine.handle(PromptFinished(clock()))
        elif isinstance(step, WaitForDigit):
            try:
                async with asyncio.timeout(step.timeout):
                    digit = await digits.next()
            except TimeoutError:
                step = machine.handle(InputTimedOut(clock()))
            else:
                event = CallEnded(clock()) if digit is None else DigitPressed(digit, clock())
                step = machine.handle(event)
        else:
            return step
