"""Audio helpers for interop tests: write a test tone, and find the dominant frequency of a recording.

The peers (baresip's aufile/sndfile, pyVoIP, our player) exchange 8 kHz mono G.711, so the
reference signal is a 1 kHz sine in an 8 kHz mono PCM16 WAV. The check is spectral (numpy FFT
over the non-silent samples), which survives G.711 companding, jitter and leading silence.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 8000


def write_tone(
    path: Path,
    *,
    frequency: float = 1000.0,
    seconds: float = 3.0,
    amplitude: float = 0.5,
    sample_rate: int = SAMPLE_RATE,
) -> Path:
    """Write a mono PCM16 sine tone; ``amplitude`` is a fraction of full scale."""
    if not 0.0 < amplitude <= 1.0:
        raise ValueError(f"amplitude {amplitude} must be in (0, 1], a fraction of full scale")
    if not 0.0 < frequency < sample_rate / 2:
        raise ValueError(f"frequency {frequency} Hz must be below Nyquist ({sample_rate / 2} Hz)")
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    samples = (amplitude * 32767 * np.sin(2 * np.pi * frequency * t)).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(samples.tobytes())
    return path


def read_wav(path: Path) -> tuple[npt.NDArray[np.float64], int]:
    """Samples of a PCM16 WAV as float64 in [-1, 1] (first channel) and its sample rate."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{path}: {8 * w.getsampwidth()}-bit samples; only 16-bit PCM WAV is supported")
        channels = w.getnchannels()
        rate = w.getframerate()
        raw = w.readframes(w.getnframes())
    data = np.frombuffer(raw, dtype="<i2").astype(np.float64) / 32768.0
    if channels > 1:
        data = data.reshape(-1, channels)[:, 0]
    return data, rate


def active_samples(samples: npt.NDArray[np.float64], rate: int, *, threshold: float = 0.01) -> npt.NDArray[np.float64]:
    """Drop silent 20 ms blocks (RMS below ``threshold`` of full scale): leading silence, gaps."""
    block = max(1, rate // 50)
    usable = len(samples) - len(samples) % block
    if usable == 0:
        return samples[:0]
    blocks = samples[:usable].reshape(-1, block)
    rms = np.sqrt(np.mean(blocks**2, axis=1))
    active: npt.NDArray[np.float64] = blocks[rms >= threshold].reshape(-1)
    return active


def dominant_frequency(path: Path, *, threshold: float = 0.01) -> float:
    """Frequency (Hz) of the strongest FFT bin over the non-silent part of a WAV.

    Returns 0.0 when the file holds nothing above ``threshold`` (e.g. silence only), so a test
    asserting ``abs(f - 1000) < 20`` fails with a readable number instead of an exception.
    """
    samples, rate = read_wav(path)
    active = active_samples(samples, rate, threshold=threshold)
    if len(active) < rate // 10:
        return 0.0
    windowed = active * np.hanning(len(active))
    spectrum = np.abs(np.fft.rfft(windowed))
    spectrum[0] = 0.0  # DC offset is not a tone
    freqs = np.fft.rfftfreq(len(active), d=1.0 / rate)
    return float(freqs[int(np.argmax(spectrum))])


def active_seconds(path: Path, *, threshold: float = 0.01) -> float:
    """How many seconds of a WAV are above the silence threshold."""
    samples, rate = read_wav(path)
    return len(active_samples(samples, rate, threshold=threshold)) / rate


def write_silence(path: Path, *, seconds: float = 30.0, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write a mono PCM16 WAV of digital silence (a source that never ends the call early)."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(b"\x00\x00" * round(seconds * sample_rate))
    return path
