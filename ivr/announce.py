"""Hold audio for queued callers: looping hold music, interrupted every so often by announcements.

An announcement tells the caller their position in line and the estimated waiting time, composed
from prompt pieces (``position_3``, ``ewt_minutes_5``, ``ewt_less_than_minute``, ...; see
:mod:`ivr.prompts`). The ACD supplies the figures through a callable ``get_position() ->
(position, ewt_seconds | None)`` read at announcement time. :class:`HoldSchedule` (when to announce)
and :func:`announcement_prompts` (what to say) are pure and clocked; :func:`play_hold` is the
cancellable asyncio side: cancel its task when an agent answers. After an announcement the
music resumes where it stopped rather than from the top, as a person would expect.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import structlog

from ivr.prompts import HOLD_MUSIC, MAX_EWT_MINUTES, MAX_POSITION, SAMPLE_RATE
from ivr.steps import CallLike, PromptSource

__all__ = ["AnnouncementPolicy", "HoldSchedule", "announcement_prompts", "play_hold"]

_log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class AnnouncementPolicy:
    """What is announced to a waiting caller, and how often (seconds)."""

    first_after: float = 15.0
    interval: float = 30.0
    """From the end of one announcement to the start of the next."""
    position: bool = True
    ewt: bool = True
    intro: str | None = None
    """Played once when hold starts, e.g. ``please_hold``."""
    music: str = HOLD_MUSIC
    position_limit: int = MAX_POSITION
    ewt_limit_minutes: int = MAX_EWT_MINUTES

    def __post_init__(self) -> None:
        if self.first_after < 0 or self.interval <= 0:
            raise ValueError(
                f"announcement first_after={self.first_after} must be >= 0 and interval={self.interval} > 0 seconds"
            )
        if not 1 <= self.position_limit <= MAX_POSITION or not 1 <= self.ewt_limit_minutes <= MAX_EWT_MINUTES:
            raise ValueError(
                f"position_limit and ewt_limit_minutes must be 1..{MAX_POSITION} and 1..{MAX_EWT_MINUTES}: "
                "there are no prompts beyond that"
            )


def announcement_prompts(position: int, ewt_seconds: float | None, policy: AnnouncementPolicy) -> list[str]:
    """The prompt names announcing ``position`` (1 = next) and the estimated wait; [] if nothing to say."""
    names: list[str] = []
    if policy.position and position >= 1:
        names.append(f"position_{position}" if position <= policy.position_limit else "position_many")
    if policy.ewt and ewt_seconds is not None and ewt_seconds >= 0:
        if ewt_seconds < 60:
            names.append("ewt_less_than_minute")
        else:
            minutes = int(ewt_seconds / 60 + 0.5)  # nearest minute, halves up: what a person would say
            names.append(f"ewt_minutes_{minutes}" if minutes <= policy.ewt_limit_minutes else "ewt_long")
    return names


class HoldSchedule:
    """When the next announcement is due, on any clock (seconds)."""

    def __init__(self, policy: AnnouncementPolicy, start: float) -> None:
        self.policy = policy
        self.next_at = start + policy.first_after

    def due(self, now: float) -> bool:
        return now >= self.next_at

    def delay(self, now: float) -> float:
        """Seconds of music before the next announcement."""
        return max(self.next_at - now, 0.0)

    def announced(self, now: float) -> None:
        """An announcement ended at ``now``: the next is one interval later."""
        self.next_at = now + self.policy.interval


async def play_hold(
    call: CallLike,
    prompts: PromptSource,
    get_position: Callable[[], tuple[int, float | None]],
    policy: AnnouncementPolicy | None = None,
    *,
    clock: Callable[[], float] | None = None,
) -> None:
    """Play hold music with periodic announcements until the call ends or the task is cancelled."""
    policy = policy or AnnouncementPolicy()
    clock = clock or asyncio.get_running_loop().time
    log = _log.bind(call_id=call.id)
    music = prompts.load(policy.music)
    if len(music) == 0:
        raise ValueError(f"hold music prompt {policy.music!r} is empty; regenerate it with ivr.prompts.ensure_prompts")
    offset = 0
    ended = asyncio.create_task(call.wait_ended())
    try:
        if policy.intro:
            await call.play(prompts.load(policy.intro))
        schedule = HoldSchedule(policy, clock())
        while not call.ended:
            started = clock()
            track = np.roll(music, -offset) if offset else music
            player = asyncio.create_task(call.play(track, loop=True))
            try:
                await asyncio.wait({ended}, timeout=schedule.delay(started))
            finally:
                player.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await player
            offset = (offset + int((clock() - started) * SAMPLE_RATE)) % len(music)
            if call.ended:
                return
            position, ewt = get_position()
            names = announcement_prompts(position, ewt, policy)
            log.debug("hold.announce", position=position, ewt=ewt, prompts=names)
            for name in names:
                if call.ended:
                    return
                await call.play(prompts.load(name))
            schedule.announced(clock())
    finally:
        ended.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ended
