"""WAV files for telephony: read 8 kHz mono PCM16 / G.711 prompts, write PCM16 recordings.

The stdlib ``wave`` module only knows format tag 1 (PCM), so :func:`read_wav` walks the
RIFF chunks itself to also accept tag 6 (A-law) and 7 (u-law) and WAVE_FORMAT_EXTENSIBLE
wrappers of those, which is what ``sox -e u-law`` and most IVR prompt packs produce. Other
rates or channel counts are refused with the sox command that converts them.
:class:`WavSink` is a :data:`~telephony.media.tap.TapConsumer` that writes a mono or stereo
PCM16 WAV as frames arrive.
"""

from __future__ import annotations

import os
import struct
import wave
from pathlib import Path
from typing import Final

import numpy as np

from telephony.rtp.g711 import ALAW_DECODE, ULAW_DECODE, Pcm16

__all__ = ["WavError", "WavSink", "read_wav"]

_PCM: Final = 1
_ALAW: Final = 6
_ULAW: Final = 7
_EXTENSIBLE: Final = 0xFFFE


class WavError(ValueError):
    """A WAV file we cannot play; the message names the file and the fix."""


def read_wav(path: str | os.PathLike[str]) -> Pcm16:
    """Samples of an 8 kHz mono WAV (PCM16, u-law or A-law) as int16."""
    data = Path(path).read_bytes()
    fix = f"convert it with: sox '{path}' -r 8000 -c 1 -b 16 -e signed-integer out.wav"
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise WavError(f"{path} is not a RIFF/WAVE file; {fix}")
    offset = 12
    fmt: tuple[int, int, int, int] | None = None
    samples: bytes | None = None
    while offset + 8 <= len(data):
        chunk_id = data[offset : offset + 4]
        (size,) = struct.unpack_from("<I", data, offset + 4)
        body = data[offset + 8 : offset + 8 + size]
        if chunk_id == b"fmt ":
            if len(body) < 16:
                raise WavError(f"{path} has a truncated fmt chunk; {fix}")
            tag, channels, rate = struct.unpack_from("<HHI", body)
            (bits,) = struct.unpack_from("<H", body, 14)
            if tag == _EXTENSIBLE and len(body) >= 26:
                (tag,) = struct.unpack_from("<H", body, 24)  # first two bytes of the SubFormat GUID
            fmt = (tag, channels, rate, bits)
        elif chunk_id == b"data":
            samples = body
        offset += 8 + size + (size & 1)
    if fmt is None or samples is None:
        raise WavError(f"{path} lacks a fmt or data chunk; {fix}")
    tag, channels, rate, bits = fmt
    if channels != 1 or rate != 8000:
        raise WavError(f"{path} is {rate} Hz with {channels} channel(s); telephony needs 8000 Hz mono; {fix}")
    if tag == _PCM and bits == 16:
        return np.frombuffer(samples[: len(samples) // 2 * 2], dtype="<i2").astype(np.int16)
    codes = np.frombuffer(samples, dtype=np.uint8)
    if tag == _ULAW and bits == 8:
        return ULAW_DECODE[codes]
    if tag == _ALAW and bits == 8:
        return ALAW_DECODE[codes]
    raise WavError(f"{path} uses WAV format tag {tag} with {bits} bits; expected PCM16, u-law or A-law; {fix}")


class WavSink:
    """Writes tap output to a PCM16 WAV: ``channels=2`` is left/right stereo, 1 keeps the left."""

    def __init__(self, path: str | os.PathLike[str], *, channels: int = 2, rate: int = 8000) -> None:
        if channels not in (1, 2):
            raise ValueError(f"a recording has 1 or 2 channels, not {channels}")
        self.path = Path(path)
        self.channels = channels
        self._wav = wave.open(str(self.path), "wb")  # noqa: SIM115 - closed by close()
        self._wav.setnchannels(channels)
        self._wav.setsampwidth(2)
        self._wav.setframerate(rate)
        self.frames = 0

    def __call__(self, left: Pcm16, right: Pcm16) -> None:
        if self.channels == 1:
            block = left
        else:
            block = np.empty((len(left), 2), dtype=np.int16)
            block[:, 0] = left
            block[:, 1] = right
        self._wav.writeframesraw(block.astype("<i2", copy=False).tobytes())
        self.frames += len(left)

    def close(self) -> None:
        self._wav.close()  # patches the RIFF sizes written so far
