"""Test doubles for the IVR: a scripted :class:`FakeCall` and an in-memory :class:`FakePrompts`.

Like httpx's mock transport, they implement the same small interfaces as the real thing
(:class:`~ivr.steps.CallLike`, :class:`~ivr.steps.PromptSource`) so IVR dialogues, hold audio and
surveys are tested without SIP or RTP. Prompt playback takes no time unless a duration is given,
and a reaction table presses digits (or hangs up) when a given prompt starts.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

__all__ = ["FakeCall", "FakePrompts", "PlayRecord"]

HANGUP = "hangup"


class FakePrompts:
    """Every name resolves to a short distinct array; ``name_of`` maps an array back to its name."""

    def __init__(self, missing: frozenset[str] = frozenset()) -> None:
        self.missing = missing
        self._arrays: dict[str, npt.NDArray[np.int16]] = {}
        self._names: dict[int, str] = {}
        self.loaded: list[str] = []

    def load(self, name: str) -> npt.NDArray[np.int16]:
        if name in self.missing:
            raise KeyError(name)
        self.loaded.append(name)
        if name not in self._arrays:
            array = np.full(160, len(self._arrays) + 1, dtype=np.int16)
            self._arrays[name] = array
            self._names[id(array)] = name
        return self._arrays[name]

    def has(self, name: str) -> bool:
        return name not in self.missing

    def name_of(self, source: object) -> str:
        if isinstance(source, np.ndarray):
            if id(source) in self._names:
                return self._names[id(source)]
            # A rolled or sliced copy (hold music resuming mid-loop): every prompt has its own fill value.
            values = set(np.unique(source).tolist())
            for name, array in self._arrays.items():
                if values == {int(array[0])}:
                    return name
            return "<array>"
        return os.fspath(source) if isinstance(source, os.PathLike) else str(source)


@dataclass
class PlayRecord:
    prompt: str
    loop: bool
    outcome: str = "playing"  # finished | stopped (cancelled: barge-in or hold interruption)


@dataclass(eq=False)  # hashed by identity, like a real call
class FakeCall:
    """A call whose caller follows a script.

    ``reactions`` maps a prompt name to what the caller does when that prompt starts: digits to
    press (during the prompt, so interruptible prompts get barged) or ``"hangup"``. Each entry is
    used once, in order, when given as a list. ``durations`` gives prompts a playing time in
    seconds (default 0; looping sources play until stopped).
    """

    prompts: FakePrompts
    id: str = "call-1"
    reactions: Mapping[str, str | list[str]] = field(default_factory=dict)
    durations: Mapping[str, float] = field(default_factory=dict)
    plays: list[PlayRecord] = field(default_factory=list)
    hangup_reason: str | None = None
    hung_up_by: str | None = None

    def __post_init__(self) -> None:
        self._digits: asyncio.Queue[str] = asyncio.Queue()
        self._ended = asyncio.Event()
        self._pending = {k: list(v) if isinstance(v, list) else [v] for k, v in self.reactions.items()}

    @property
    def ended(self) -> bool:
        return self._ended.is_set()

    @property
    def played(self) -> list[str]:
        return [p.prompt for p in self.plays]

    def press(self, digits: str) -> None:
        for d in digits:
            self._digits.put_nowait(d)

    def remote_hangup(self) -> None:
        if not self.ended:
            self.hung_up_by = "remote"
            self._ended.set()

    async def play(self, source: str | os.PathLike[str] | npt.NDArray[np.int16], *, loop: bool = False) -> None:
        name = self.prompts.name_of(source)
        record = PlayRecord(name, loop)
        self.plays.append(record)
        reaction = self._pending.get(name)
        if reaction:
            action = reaction.pop(0)
            if action == HANGUP:
                asyncio.get_running_loop().call_soon(self.remote_hangup)
            else:
                asyncio.get_running_loop().call_soon(self.press, action)
        try:
            if self.ended:
                record.outcome = "ended"
                return
            duration = None if loop else self.durations.get(name, 0.0)
            ended = asyncio.ensure_future(self._ended.wait())
            try:
                await asyncio.wait({ended}, timeout=duration)
            finally:
                ended.cancel()
            record.outcome = "ended" if self.ended else "finished"
        except asyncio.CancelledError:
            record.outcome = "stopped"
            raise

    async def dtmf(self) -> AsyncIterator[str]:
        while not self.ended or not self._digits.empty():
            get = asyncio.ensure_future(self._digits.get())
            end = asyncio.ensure_future(self._ended.wait())
            done, _ = await asyncio.wait({get, end}, return_when=asyncio.FIRST_COMPLETED)
            if get in done:
                end.cancel()
                yield get.result()
            else:
                get.cancel()
                return

    async def hangup(self, reason: str | None = None) -> None:
        if not self.ended:
            self.hangup_reason = reason
            self.hung_up_by = "local"
            self._ended.set()

    async def wait_ended(self) -> None:
        await self._ended.wait()
