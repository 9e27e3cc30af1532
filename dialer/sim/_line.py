"""A simulated person's mouth and ear on one call: continuous RTP out, sound and tone detection in.

:class:`Speaker` keeps audio flowing like a real phone does (faint line noise between
utterances), so the far end never sees a media timeout and recordings stay continuous;
``await speaker.say(clip)`` interrupts the noise and returns once the clip is played.
:class:`Ear` taps the received audio: it tracks when sound (speech, music, a message) was
last heard, and optionally reports narrowband tones (a bridge or "customer connected" tone)
through :class:`dialer.amd.BeepDetector`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque
from collections.abc import Callable

import numpy as np

from dialer.amd import AmdConfig, BeepDetector
from dialer.sim.audio import line_noise
from telephony.aio.media_session import MediaSessionError
from telephony.aio.ua import Call
from telephony.media.tap import Tap
from telephony.rtp.g711 import Pcm16

_NOISE = line_noise(0.2)
_NOISE.setflags(write=False)
_FRAME = 160


class Speaker:
    """Plays queued clips on ``call``; line noise in between. Start once the media is up."""

    def __init__(self, call: Call) -> None:
        self.call = call
        self._queue: deque[tuple[Pcm16, asyncio.Future[None]]] = deque()
        self._task: asyncio.Task[None] | None = None
        self._in_gap = False
        self.spoken_s = 0.0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def say(self, clip: Pcm16) -> bool:
        """Speak ``clip``; False when the call ended before it was fully played."""
        if self.call.ended or self._task is None or self._task.done():
            return False
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((clip, fut))
        if self._in_gap and self.call.media is not None:
            self.call.media.stop_playing()
        await fut
        return not self.call.ended

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while not self.call.ended and self.call.media is not None:
                if self._queue:
                    clip, fut = self._queue.popleft()
                    self._in_gap = False
                    started = loop.time()
                    try:
                        await self.call.play(clip)
                    finally:  # a clip cut short by a hang-up counts for the time it played
                        self.spoken_s += min(len(clip) / 8000, loop.time() - started)
                    if not fut.done():
                        fut.set_result(None)
                else:
                    self._in_gap = True
                    await self.call.play(_NOISE)
                    self._in_gap = False
        except MediaSessionError:
            pass  # the call ended between two clips: media closed under us
        finally:
            while self._queue:
                _, fut = self._queue.popleft()
                if not fut.done():
                    fut.set_result(None)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class Ear:
    """Listens to what ``call`` receives. ``last_sound_at`` is on the event loop's clock."""

    def __init__(
        self,
        call: Call,
        *,
        sound_dbfs: float = -40.0,
        on_tone: Callable[[float], None] | None = None,
        tone_config: AmdConfig | None = None,
    ) -> None:
        if call.media is None:
            raise RuntimeError(f"call {call.id} has no media to listen to yet; attach the Ear after answering")
        self.call = call
        self._loop = asyncio.get_running_loop()
        self._threshold = 32768.0 * 10 ** (sound_dbfs / 20)
        self.heard_s = 0.0
        self.last_sound_at: float | None = None
        self.started_at = self._loop.time()
        self._on_tone = on_tone
        self._tone_config = tone_config
        self._beeps = BeepDetector(tone_config) if on_tone is not None else None
        media = call.media
        # Short flushes: a person reacts to a tone or a voice within a few hundred ms.
        self._tap: Tap = media.new_tap(self._consume, flush_interval=0.1, delay=0.06)
        media.add_tap(self._tap)

    def _consume(self, left: Pcm16, right: Pcm16) -> None:
        n = len(left) // _FRAME
        if n:
            frames = left[: n * _FRAME].astype(np.float64).reshape(n, _FRAME)
            rms = np.sqrt(np.mean(frames * frames, axis=1))
            loud = int(np.count_nonzero(rms >= self._threshold))
            if loud:
                self.heard_s += loud * _FRAME / 8000
                self.last_sound_at = self._loop.time()
        if self._beeps is not None and self._on_tone is not None and self._beeps.feed(left.tobytes()) is not None:
            hz = self._beeps.beep_hz or math.nan
            self._beeps = BeepDetector(self._tone_config)  # ready for the next tone
            self._on_tone(hz)

    async def turn(self, gap_s: float = 0.5, max_wait_s: float = 6.0) -> None:
        """Wait for the other side to pause (``gap_s`` of quiet), but not longer than ``max_wait_s``:
        people take turns, and interrupt someone who goes on too long."""
        loop = self._loop
        deadline = loop.time() + max_wait_s
        while (quiet := self.silent_for()) < gap_s:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            # Sleep exactly until the pause would be long enough; sound meanwhile resets it.
            await asyncio.sleep(min(gap_s - quiet, remaining))

    def silent_for(self) -> float:
        """Seconds since the last sound (or since listening started)."""
        since = self.last_sound_at if self.last_sound_at is not None else self.started_at
        return self._loop.time() - since
