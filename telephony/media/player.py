"""Playing audio into a leg: WAV/array sources, a tone generator, and pure 20 ms pacing.

:class:`Playout` turns PCM16 samples into the sequence of G.711 payloads a leg sends, and
says when each is due: frame k at ``start + k * ptime`` with RTP timestamp
``timestamp + k * 160`` and the marker bit on the first frame of the talkspurt (RFC 3551
§4.1). It never reads a clock: the asyncio layer asks :meth:`Playout.due` with the loop's
time and sleeps until :attr:`Playout.next_deadline`. After a stall it sends at most
``max_burst`` late frames at once and shifts the schedule instead of flooding the peer.
"""

from __future__ import annotations

import os
from typing import Final

import numpy as np
import numpy.typing as npt

from telephony.media.wav import read_wav
from telephony.rtp.g711 import ENCODE_TABLES, SILENCE_BYTE, Pcm16

__all__ = ["AudioSource", "Playout", "dtmf_tone", "load_source", "tone"]

AudioSource = str | os.PathLike[str] | npt.NDArray[np.int16]
SAMPLE_RATE: Final = 8000


def tone(freq_hz: float, seconds: float, amplitude: float = 0.3, *, rate: int = SAMPLE_RATE) -> Pcm16:
    """A sine tone; ``amplitude`` is a fraction of full scale (0 < amplitude <= 1)."""
    if not 0 < amplitude <= 1:
        raise ValueError(f"tone amplitude {amplitude} must be a fraction of full scale in (0, 1]")
    if seconds < 0 or freq_hz < 0 or freq_hz >= rate / 2:
        raise ValueError(f"tone of {freq_hz} Hz for {seconds} s is impossible at {rate} Hz sampling")
    t = np.arange(round(seconds * rate)) / rate
    return np.round(np.sin(2 * np.pi * freq_hz * t) * amplitude * 32767).astype(np.int16)


# ITU-T Q.23 row/column frequencies, for peers that did not negotiate telephone-event.
_DTMF_LOW: Final = (697, 770, 852, 941)
_DTMF_HIGH: Final = (1209, 1336, 1477, 1633)
_DTMF_KEYS: Final = ("123A", "456B", "789C", "*0#D")


def dtmf_tone(digit: str, seconds: float = 0.1, pause: float = 0.0, *, amplitude: float = 0.25) -> Pcm16:
    """In-band DTMF (Q.23 dual tone) for ``digit``, followed by ``pause`` seconds of silence."""
    key = digit.upper()
    for row, keys in enumerate(_DTMF_KEYS):
        if key and key in keys:
            col = keys.index(key)
            tones = tone(_DTMF_LOW[row], seconds, amplitude).astype(np.int32)
            tones += tone(_DTMF_HIGH[col], seconds, amplitude)
            silence = np.zeros(round(pause * SAMPLE_RATE), dtype=np.int32)
            return np.concatenate([tones, silence]).astype(np.int16)
    raise ValueError(f"{digit!r} is not a DTMF key; use 0-9, *, # or A-D")


def load_source(source: AudioSource) -> Pcm16:
    """PCM16 samples from a WAV path or an int16 array (8 kHz mono)."""
    if isinstance(source, np.ndarray):
        if source.dtype != np.int16 or source.ndim != 1:
            raise TypeError(f"play() takes a 1-D int16 array of 8 kHz samples, got {source.ndim}-D {source.dtype}")
        return source
    return read_wav(source)


class Playout:
    """The frames of one playback and their schedule."""

    def __init__(
        self,
        pcm: Pcm16,
        codec: str,
        *,
        start: float,
        timestamp: int,
        loop: bool = False,
        ptime_ms: int = 20,
        max_burst: int = 5,
    ) -> None:
        self.samples_per_frame = SAMPLE_RATE * ptime_ms // 1000
        self.ptime = ptime_ms / 1000
        codes = ENCODE_TABLES[codec][pcm.view(np.uint16)].tobytes()
        pad = -len(codes) % self.samples_per_frame
        codes += bytes([SILENCE_BYTE[codec]]) * pad
        n = self.samples_per_frame
        self.frames = [codes[i : i + n] for i in range(0, len(codes), n)]
        self.loop = loop and bool(self.frames)
        self.max_burst = max_burst
        self._start = start
        self._ts0 = timestamp
        self._k = 0  # frames sent
        self.stopped = False

    @property
    def finished(self) -> bool:
        return self.stopped or (not self.loop and self._k >= len(self.frames))

    @property
    def next_deadline(self) -> float | None:
        if self.finished:
            return None
        return self._start + self._k * self.ptime

    def stop(self) -> None:
        self.stopped = True

    def due(self, now: float) -> list[tuple[bytes, int, bool]]:
        """(payload, RTP timestamp, marker) of every frame due at ``now``."""
        out: list[tuple[bytes, int, bool]] = []
        while not self.finished and self._start + self._k * self.ptime <= now + 1e-9:
            if len(out) == self.max_burst:
                # Stalled: shift the schedule rather than dumping the backlog on the peer.
                self._start = now - (self._k - 1) * self.ptime
                break
            k = self._k
            payload = self.frames[k % len(self.frames)]
            out.append((payload, (self._ts0 + k * self.samples_per_frame) & 0xFFFFFFFF, k == 0))
            self._k = k + 1
        return out
