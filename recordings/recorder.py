"""Stereo call recorder: customer on the left channel, agent on the right, written as the call goes.

The file is a canonical 44-byte-header RIFF/WAVE, PCM 16-bit little-endian, 8 kHz, 2 channels.
Audio is buffered in memory and reaches the disk at every flush (at least once per
``flush_interval``): one ``pwrite`` of the whole block, then one ``pwrite`` of the header with
the new RIFF and data sizes, two system calls per flush and none per frame. A process killed at
any moment therefore leaves a valid, playable WAV that lacks at most the last ``flush_interval``
of audio (plus, behind a Tap, the Tap's own ``flush_interval + delay``: ``recordings.service``
keeps the three under one second). A crash between the two writes only hides the newest block.

Time alignment. Each direction has a sample clock: the timeline position of its next sample.
Frames (20 ms PCM16 arrays from the media tap, possibly bursty and out of step between the two
directions) are appended at their direction's clock. A flush writes the part of the timeline that
both directions have reached; a direction more than ``max_lag`` behind the wall clock (lost packets,
a muted phone, hold) is padded with silence up to that point, so the other one is never held back
longer. When audio for a padded span arrives after all, the same amount is dropped from it
(concealment debt), so one direction never drifts behind the other.

Pause/resume (e.g. while a card number is read) zero both channels from the earlier of the two
clocks at ``pause`` to the later one at ``resume``: conservative, so that in-flight frames of the
paused span cannot leak into the file, and each gap is reported with its sample offsets.

A source that aligns and gap-fills by itself, such as ``telephony.media.tap.Tap`` (whose consumer
signature ``(left, right)`` this recorder implements), goes through :meth:`feed_stereo` and is
written as delivered, without wall-clock padding.

The per-frame path only appends to a list under a lock; numpy interleaving, writing and the
header update run in one shared background thread (or in the caller's thread via :meth:`flush`).
That thread keeps the recorders in a heap by due time and, once woken, flushes every recorder
due within the next ``_SLACK`` seconds, so hundreds of calls share a wake-up instead of costing
one per recorder and flush. The slack is short on purpose: the thread holds the GIL while it
interleaves a batch, and the event loop relaying the calls' RTP waits for it. A 50 ms slack
made bursts of ~100 files (milliseconds of GIL) 20 times a second; 5 ms keeps each burst near
10 files (bench/media --pin, 500 recorded calls: p99 relay delay 1.2-2.4 ms -> 0.53-0.66 ms,
same CPU).
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import itertools
import os
import struct
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import structlog

__all__ = [
    "Channel",
    "Gap",
    "RecorderError",
    "RecordingInfo",
    "StereoWavRecorder",
    "sha256_file",
    "wav_header",
]

log = structlog.get_logger(__name__)

Pcm16 = npt.NDArray[np.int16]
HEADER_SIZE: Final = 44
_MAX_DATA: Final = 0xFFFFFFFF - 36  # RIFF sizes are 32-bit


class Channel(StrEnum):
    """Which party a frame comes from; customer is the left channel, agent the right."""

    CUSTOMER = "customer"
    AGENT = "agent"


_INDEX: Final[dict[str, int]] = {Channel.CUSTOMER: 0, Channel.AGENT: 1}


class RecorderError(RuntimeError):
    """The recording cannot be written; the message names the file and what to check."""


@dataclass(frozen=True, slots=True)
class Gap:
    """A paused span of the recording, in samples from its start (``end`` exclusive)."""

    start: int
    end: int
    reason: str
    sample_rate: int = 8000

    @property
    def start_seconds(self) -> float:
        return self.start / self.sample_rate

    @property
    def end_seconds(self) -> float:
        return self.end / self.sample_rate


@dataclass(frozen=True, slots=True)
class RecordingInfo:
    """What :meth:`StereoWavRecorder.close` reports for the metadata record."""

    path: Path
    frames: int
    duration: float
    size: int
    sha256: str
    gaps: tuple[Gap, ...]
    padded: tuple[int, int]
    """Silence samples inserted per channel (customer, agent) because media was missing."""
    dropped: tuple[int, int]
    """Late samples dropped per channel because their span had already been padded."""


def wav_header(data_bytes: int, *, sample_rate: int = 8000, channels: int = 2) -> bytes:
    """The canonical 44-byte PCM16 WAV header for ``data_bytes`` of audio."""
    block = channels * 2
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data_bytes)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, channels, sample_rate, sample_rate * block, block, 16)
        + b"data"
        + struct.pack("<I", data_bytes)
    )


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


class StereoWavRecorder:
    """Record one call to ``path`` (which must not exist yet) as it goes.

    ``feed(Channel.CUSTOMER, pcm)`` / ``feed(Channel.AGENT, pcm)`` take PCM16 frames; ``pause`` /
    ``resume`` mark gaps; ``close()`` (or ``await aclose()``) finishes the file and returns a
    :class:`RecordingInfo`. With ``background=True`` a shared writer thread flushes when due; with
    ``background=False`` the owner calls :meth:`flush` (tests drive ``clock`` by hand).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        flush_interval: float = 1.0,
        max_lag: float | None = 0.3,
        sample_rate: int = 8000,
        clock: Callable[[], float] = time.monotonic,
        background: bool = True,
        fsync: bool = False,
    ) -> None:
        if flush_interval <= 0 or (max_lag is not None and not 0 < max_lag < flush_interval):
            raise ValueError(
                f"max_lag={max_lag} must be positive and below flush_interval={flush_interval}: audio is written "
                "up to max_lag behind real time at every flush, and must reach the disk within flush_interval"
            )
        self.path = Path(path)
        self.sample_rate = sample_rate
        self.flush_interval = flush_interval
        self._lag = int((max_lag or 0) * sample_rate)
        self._pad_wall = max_lag is not None
        # Flushing this often writes every sample within flush_interval of its arrival.
        self._period = flush_interval - (max_lag or 0)
        self._clock = clock
        self._fsync = fsync
        self._lock = threading.Lock()  # feed/pause/resume vs. the flush snapshot
        self._io_lock = threading.Lock()  # one flush at a time
        self._pending: tuple[list[Pcm16 | int], list[Pcm16 | int]] = ([], [])
        self._pos = [0, 0]
        self._debt = [0, 0]
        # Index in _pending just after the last pad with debt, while that pad's audio is not written.
        self._anchor: list[int | None] = [None, None]
        self._padded = [0, 0]
        self._dropped = [0, 0]
        self._gaps: list[_GapMark] = []
        self._carry: tuple[list[Pcm16], list[Pcm16]] = ([], [])
        self._written = 0  # stereo frames on disk
        self._closed = False
        self._failed: BaseException | None = None
        self._full = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # A raw descriptor: every write is one pwrite() at its offset, no buffer, no seek.
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        except FileExistsError:
            raise RecorderError(
                f"recording {self.path} already exists; recordings are never overwritten: use a new file name"
            ) from None
        except OSError as exc:
            raise RecorderError(f"cannot create recording {self.path}: {exc.strerror}; check the directory") from exc
        # Closes the descriptor once: at close(), or when a recorder nobody closed is collected.
        self._close_fd = weakref.finalize(self, os.close, self._fd)
        self._writer_generation = 0  # the writer's schedule entry that is current (0: none)
        self._parked = False  # nothing pending and not scheduled: feed_stereo() schedules it again
        try:
            os.pwrite(self._fd, wav_header(0, sample_rate=sample_rate), 0)
        except OSError as exc:
            self._close_fd()
            raise RecorderError(f"cannot write recording {self.path}: {exc.strerror}; check free space") from exc
        self._t0 = clock()
        self._next_flush = self._t0 + self._period
        self._log = log.bind(path=str(self.path))
        self._background = background
        if background:
            _WRITER.add(self)

    # ------------------------------------------------------------------ per frame (cheap)
    def feed(self, channel: Channel | str, pcm: Pcm16) -> None:
        """Append a frame of ``channel`` at its sample clock."""
        try:
            idx = _INDEX[channel]  # a StrEnum hashes like its value, so "customer" works too
        except KeyError:
            raise ValueError(f"unknown channel {channel!r}: use 'customer' (left) or 'agent' (right)") from None
        n = len(pcm)
        with self._lock:
            if self._closed:
                raise RecorderError(f"recording {self.path} is closed; frames after close() are not recorded")
            if self._debt[idx]:
                ahead = self._pos[idx] + n - self._wall()
                if ahead > 0:
                    pcm = self._drop_late(idx, min(self._debt[idx], ahead), pcm)
                    n = len(pcm)
            self._pending[idx].append(pcm)
            self._pos[idx] += n

    def feed_stereo(self, left: Pcm16, right: Pcm16) -> None:
        """Already aligned audio of both channels (customer, agent), e.g. from ``telephony.media.tap.Tap``.

        Such a source fills gaps itself and delivers in batches up to ``flush_interval + delay``
        late, so wall-clock padding is switched off for this recorder from the first call on.
        Create the recorder no later than the tap, so that their timelines start together.
        """
        n = len(left)
        if len(right) != n:
            raise ValueError(f"feed_stereo needs equally long channels, got {n} and {len(right)} samples")
        with self._lock:
            if self._closed:
                raise RecorderError(f"recording {self.path} is closed; frames after close() are not recorded")
            if self._pad_wall:
                self._pad_wall = False
                self._period = self.flush_interval
            self._pending[0].append(left)
            self._pending[1].append(right)
            self._pos[0] += n
            self._pos[1] += n
            wake = self._parked
            self._parked = False
        if wake:  # the writer has nothing of ours queued: due one period after this batch
            _WRITER.add(self, self._period)

    __call__ = feed_stereo  # a telephony.media.tap.TapConsumer

    def _wall(self) -> int:
        return int((self._clock() - self._t0) * self.sample_rate)

    def customer(self, pcm: Pcm16) -> None:
        self.feed(Channel.CUSTOMER, pcm)

    def agent(self, pcm: Pcm16) -> None:
        self.feed(Channel.AGENT, pcm)

    # ------------------------------------------------------------------ pause / resume
    @property
    def paused(self) -> bool:
        with self._lock:
            return bool(self._gaps) and self._gaps[-1].end is None

    def pause(self, reason: str) -> None:
        """Record silence from now on (both channels) until :meth:`resume`."""
        with self._lock:
            if self._gaps and self._gaps[-1].end is None:
                return
            if self._pad_wall:
                # Bring a silent direction up to real time first, so its next frame cannot land before the gap.
                self._pad_to(self._wall() - self._lag, debt=True)
            self._gaps.append(_GapMark(min(self._pos), None, reason))
            self._parked = False
        if self._background:
            _WRITER.add(self, 0.0)  # write what came before the gap now, off this thread
        self._log.info("recording.paused", reason=reason)

    def resume(self) -> None:
        """Record again; frames still in flight from the paused span (up to 100 ms) stay silent."""
        with self._lock:
            if not self._gaps or self._gaps[-1].end is not None:
                return
            end = max(self._pos)
            if not self._pad_wall:
                # An aligned source (a Tap) delivers a second or so late: what is in flight now was
                # spoken during the pause, and the timeline of "now" is the wall clock.
                end = max(end, self._wall())
            self._gaps[-1].end = end + self.sample_rate // 10
        self._log.info("recording.resumed")

    def _pad_to(self, target: int, *, debt: bool) -> set[int]:
        padded = set()
        for idx in (0, 1):
            missing = target - self._pos[idx]
            if missing > 0:
                self._pending[idx].append(missing)
                self._pos[idx] = target
                self._padded[idx] += missing
                padded.add(idx)
                if debt:
                    self._debt[idx] += missing
                    self._anchor[idx] = len(self._pending[idx])
        return padded

    def _drop_late(self, idx: int, drop: int, pcm: Pcm16) -> Pcm16:
        """Audio arrived for a span already padded: drop its oldest ``drop`` samples (caller holds the lock).

        The oldest samples are the ones that belong to the padded span, so they go first: from the
        frames received since the pad and not yet written, then from ``pcm``.
        """
        remaining = drop
        items = self._pending[idx]
        anchor = self._anchor[idx]
        if anchor is not None:
            for i in range(anchor, len(items)):
                item = items[i]
                if not remaining:
                    break
                if isinstance(item, int):  # cannot happen: a newer pad moves the anchor past itself
                    continue
                cut = min(remaining, len(item))
                items[i] = item[cut:]
                remaining -= cut
                self._pos[idx] -= cut
        cut = min(remaining, len(pcm))
        remaining -= cut
        self._debt[idx] -= drop - remaining
        self._dropped[idx] += drop - remaining
        return pcm[cut:]

    # ------------------------------------------------------------------ flushing
    def flush(self, *, final: bool = False) -> None:
        """Write what both channels have reached (padding a channel late by more than max_lag)."""
        with self._io_lock:
            if self._closed and not final:
                return
            with self._lock:
                now = self._clock()
                if final:
                    target = max(self._pos)
                    self._pad_to(target, debt=False)
                    for gap in self._gaps:  # an open gap, or a resume guard, ends with the recording
                        gap.end = target if gap.end is None else min(gap.end, target)
                    padded = set()
                elif self._pad_wall:
                    padded = self._pad_to(self._wall() - self._lag, debt=True)
                else:
                    padded = set()
                batches, self._pending = self._pending, ([], [])
                self._anchor = [0 if idx in padded else None for idx in (0, 1)]
                gaps = [(g.start, g.end) for g in self._gaps]
                self._next_flush = now + self._period
            if batches[0] or batches[1]:  # else nothing new: one channel's carry is always empty
                self._write(batches, gaps)

    def _write(self, batches: tuple[list[Pcm16 | int], list[Pcm16 | int]], gaps: list[tuple[int, int | None]]) -> None:
        channels = []
        for idx in (0, 1):
            parts = [np.zeros(p, np.int16) if isinstance(p, int) else p for p in batches[idx]]
            carry = self._carry[idx]
            if carry and len(carry[0]):
                parts = carry + parts
            channels.append(parts[0] if len(parts) == 1 else np.concatenate(parts) if parts else np.zeros(0, np.int16))
        n = min(len(channels[0]), len(channels[1]))
        self._carry = ([channels[0][n:]], [channels[1][n:]])
        if n == 0:
            return
        frames = np.empty((n, 2), dtype="<i2")
        frames[:, 0] = channels[0][:n]
        frames[:, 1] = channels[1][:n]
        first, last = self._written, self._written + n
        for start, end in gaps:
            lo, hi = max(start, first), last if end is None else min(end, last)
            if lo < hi:
                frames[lo - first : hi - first] = 0
        data = frames.data.cast("B")  # written as it is: no copy into a bytes object
        if self._written * 4 + len(data) > _MAX_DATA:
            if not self._full:
                self._log.error("recording.size_limit", detail="WAV files stop at 4 GiB; the rest is not recorded")
                self._full = True
            return
        fd = self._fd
        offset = HEADER_SIZE + self._written * 4
        while data:  # pwrite may write less than asked (a full disk reports ENOSPC on the retry)
            done = os.pwrite(fd, data, offset)
            data = data[done:]
            offset += done
        self._written = last
        # The sizes follow the data, so a crash between the two writes only hides the newest block.
        os.pwrite(fd, wav_header(self._written * 4, sample_rate=self.sample_rate), 0)
        if self._fsync:
            os.fsync(fd)

    def _flush_if_due(self, slack: float = 0.0) -> float | None:
        """Writer-thread hook: flush when due within ``slack``; seconds until the next flush is due.

        None parks the recorder: fed by a Tap (no wall-clock padding to do) and nothing pending, so
        the writer forgets it until :meth:`feed_stereo` brings the next batch.
        """
        now = self._clock()
        if now >= self._next_flush - slack:
            self.flush()
            now = self._clock()
        with self._lock:
            if not self._pad_wall and not self._pending[0] and not self._pending[1] and not self._closed:
                self._parked = True
                return None
        return max(self._next_flush - now, 0.0)

    # ------------------------------------------------------------------ close
    def close(self) -> RecordingInfo:
        """Finish the file (pads the shorter channel) and report duration, size, sha256 and gaps."""
        if self._background:
            _WRITER.remove(self)
        with self._lock:
            already = self._closed
            self._closed = True
        if already:
            raise RecorderError(f"recording {self.path} was already closed")
        try:
            self.flush(final=True)
        finally:
            with self._io_lock:
                self._close_fd()
        if self._failed is not None:
            raise RecorderError(
                f"recording {self.path} lost audio: {self._failed}; check free space and permissions"
            ) from self._failed
        gaps = tuple(
            Gap(g.start, g.end if g.end is not None else g.start, g.reason, self.sample_rate) for g in self._gaps
        )
        info = RecordingInfo(
            path=self.path,
            frames=self._written,
            duration=self._written / self.sample_rate,
            size=self.path.stat().st_size,
            sha256=sha256_file(self.path),
            gaps=gaps,
            padded=(self._padded[0], self._padded[1]),
            dropped=(self._dropped[0], self._dropped[1]),
        )
        self._log.info("recording.closed", duration=info.duration, size=info.size, gaps=len(gaps))
        return info

    async def aclose(self) -> RecordingInfo:
        """:meth:`close` off the event loop (hashing a long recording takes a while)."""
        return await asyncio.to_thread(self.close)

    def _fail(self, exc: BaseException) -> None:
        self._failed = exc
        self._log.error("recording.write_failed", error=str(exc))


@dataclass(slots=True)
class _GapMark:
    start: int
    end: int | None
    reason: str


_SLACK: Final = 0.005
"""The writer flushes a recorder up to this much before it is due, to serve many per wake-up."""
_MIN_WAIT: Final = 0.005


class _Writer:
    """One daemon thread flushing every open background recorder when it is due.

    Recorders wait in a heap of (due, generation, weak reference). Rescheduling or
    removing a recorder bumps its ``_writer_generation``, so a stale entry is dropped when it
    comes up; a recorder nobody closed disappears with its last reference (as from a WeakSet).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, weakref.ref[StereoWavRecorder]]] = []
        self._order = itertools.count(1)
        self._thread: threading.Thread | None = None

    def add(self, recorder: StereoWavRecorder, delay: float | None = None) -> None:
        """Schedule ``recorder`` (again) in ``delay`` seconds, or when its next flush is due."""
        if delay is None:
            delay = max(recorder._next_flush - recorder._clock(), 0.0)
        with self._cond:
            if recorder._closed:
                return
            first = self._push(recorder, time.monotonic() + delay)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="recorder-writer", daemon=True)
                self._thread.start()
            if first:  # due before everything else: the thread sleeps too long otherwise
                self._cond.notify()

    def remove(self, recorder: StereoWavRecorder) -> None:
        with self._cond:
            recorder._writer_generation = 0

    def _push(self, recorder: StereoWavRecorder, due: float) -> bool:
        """Schedule ``recorder`` at ``due`` (time.monotonic()), the caller holding the condition; first in line?"""
        generation = next(self._order)
        recorder._writer_generation = generation
        heapq.heappush(self._heap, (due, generation, weakref.ref(recorder)))
        return self._heap[0][1] == generation

    def _run(self) -> None:
        while True:
            self._flush(self._wait_for_due())

    def _wait_for_due(self) -> list[tuple[StereoWavRecorder, int]]:
        """Sleep until a recorder is due; every live recorder due within ``_SLACK`` from then."""
        heap = self._heap
        with self._cond:
            while True:
                now = time.monotonic()
                if heap and heap[0][0] <= now + _SLACK:
                    break
                self._cond.wait(timeout=heap[0][0] - now if heap else None)
            batch = []
            while heap and heap[0][0] <= now + _SLACK:
                _, generation, ref = heapq.heappop(heap)
                recorder = ref()
                if recorder is not None and recorder._writer_generation == generation:
                    batch.append((recorder, generation))
            return batch

    def _flush(self, batch: list[tuple[StereoWavRecorder, int]]) -> None:
        again = []
        for recorder, generation in batch:
            try:
                wait = recorder._flush_if_due(_SLACK)
                if wait is not None:
                    again.append((recorder, generation, max(wait, _MIN_WAIT)))
            except OSError as exc:
                recorder._fail(exc)
                self.remove(recorder)
            except Exception as exc:  # a bug must not stop the recording of every other call
                log.exception("recording.writer_error", path=str(recorder.path))
                recorder._fail(exc)
                self.remove(recorder)
        now = time.monotonic()
        with self._cond:
            for recorder, generation, wait in again:
                if recorder._writer_generation == generation and not recorder._closed:  # not removed meanwhile
                    self._push(recorder, now + wait)


_WRITER: Final = _Writer()
