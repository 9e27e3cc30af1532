"""Answering-machine detection from the first seconds of answered audio (PCM16, 8 kHz, mono).

A person usually answers with a short greeting ("Hello?") and then waits in silence for the
caller; a machine plays one long continuous greeting ("Hi, you've reached ... please leave a
message after the tone"). :class:`AnsweringMachineDetector` turns 20 ms frames into voiced /
silent decisions (webrtcvad, gated by an adaptive energy floor so line noise is not speech),
then applies the classic cadence rules with tunable thresholds (after Asterisk's ``app_amd``):

- a greeting longer than ``greeting_max_ms`` -> machine;
- a short greeting followed by ``after_greeting_silence_ms`` of silence -> human;
- more than ``max_words`` separate utterances before that silence -> machine;
- ``initial_silence_ms`` without any speech, or ``total_analysis_ms`` without a decision ->
  not sure, which the dialer treats as a person: dropping a human is the costly error.

:class:`BeepDetector` finds the narrowband tone (400-2200 Hz, typically 1 kHz) a machine plays
when it starts recording, for "wait for the beep, then leave the message". Both are pure and
driven by the audio itself: time is the number of samples fed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt
import webrtcvad

__all__ = [
    "AmdConfig",
    "AmdResult",
    "AmdVerdict",
    "AnsweringMachineDetector",
    "BeepDetector",
    "MessageCue",
    "classify",
    "detect_beep",
]

SAMPLE_RATE = 8000


class AmdVerdict(StrEnum):
    HUMAN = "human"
    MACHINE = "machine"
    NOTSURE = "notsure"


@dataclass(frozen=True, slots=True)
class AmdConfig:
    """Thresholds in milliseconds; defaults are tuned to never call a short greeting a machine."""

    initial_silence_ms: int = 3500
    greeting_max_ms: int = 2300
    after_greeting_silence_ms: int = 800
    total_analysis_ms: int = 5000
    #: utterances separated by less silence than this belong to one word/phrase
    between_words_silence_ms: int = 120
    min_word_ms: int = 100
    max_words: int = 5
    frame_ms: int = 20
    vad_mode: int = 2
    #: voiced frames must also be this many dB above the running noise floor
    speech_over_noise_db: float = 9.0
    #: absolute floor: frames quieter than this (dBFS) are silence whatever the VAD says
    min_speech_dbfs: float = -50.0
    beep_min_ms: int = 160
    beep_min_hz: float = 400.0
    beep_max_hz: float = 2200.0
    #: share of a frame's energy within +-1 bin of the peak for it to count as a pure tone
    beep_purity: float = 0.9
    #: a machine without a beep: this much silence after its greeting ends it (leave the message)
    greeting_end_silence_ms: int = 1500

    def __post_init__(self) -> None:
        if self.frame_ms not in (10, 20, 30):
            raise ValueError(f"frame_ms {self.frame_ms} is not supported by webrtcvad: use 10, 20 or 30")
        if not 0 <= self.vad_mode <= 3:
            raise ValueError(f"vad_mode {self.vad_mode} must be 0 (least aggressive) to 3 (most)")
        if self.after_greeting_silence_ms <= self.between_words_silence_ms:
            raise ValueError("after_greeting_silence_ms must be longer than between_words_silence_ms")
        times = (self.initial_silence_ms, self.greeting_max_ms, self.total_analysis_ms, self.greeting_end_silence_ms)
        if min(times) <= 0:
            raise ValueError("AMD time thresholds must be positive milliseconds")


@dataclass(frozen=True, slots=True)
class AmdResult:
    verdict: AmdVerdict
    reason: str
    decided_at_ms: int
    greeting_ms: int
    words: int

    @property
    def is_machine(self) -> bool:
        return self.verdict == AmdVerdict.MACHINE


def _frame_dbfs(frame: npt.NDArray[np.int16]) -> float:
    x = frame.astype(np.float64)
    rms = float(np.sqrt(np.mean(x * x))) if x.size else 0.0
    return 20.0 * math.log10(max(rms, 1e-3) / 32768.0)


class _Framer:
    def __init__(self, frame_samples: int) -> None:
        self.n = frame_samples
        self._buf = b""

    def frames(self, pcm: bytes) -> list[bytes]:
        if len(pcm) % 2:
            raise ValueError("PCM16 audio must have an even number of bytes (2 per sample)")
        data = self._buf + pcm
        size = self.n * 2
        k = len(data) // size
        self._buf = data[k * size :]
        return [data[i * size : (i + 1) * size] for i in range(k)]


class AnsweringMachineDetector:
    """Streaming human/machine classifier. ``feed`` audio as it arrives; a result appears once."""

    def __init__(self, config: AmdConfig | None = None, sample_rate: int = SAMPLE_RATE) -> None:
        if sample_rate not in (8000, 16000, 32000, 48000):
            raise ValueError(f"sample rate {sample_rate} is not supported by webrtcvad: use 8000 (G.711) or 16000")
        self.config = config or AmdConfig()
        self.sample_rate = sample_rate
        self._vad = webrtcvad.Vad(self.config.vad_mode)
        self._framer = _Framer(sample_rate * self.config.frame_ms // 1000)
        self._t = 0  # ms of audio analysed
        self._noise_db = -70.0
        self._first_voice: int | None = None
        self._last_voice: int | None = None
        self._voiced_run = 0
        self._silence_run = 0
        self._words = 0
        self._in_word = False
        self.result: AmdResult | None = None

    def _voiced(self, frame: bytes) -> bool:
        cfg = self.config
        samples = np.frombuffer(frame, dtype=np.int16)
        db = _frame_dbfs(samples)
        vad = self._vad.is_speech(frame, self.sample_rate)
        loud = db >= cfg.min_speech_dbfs and db >= self._noise_db + cfg.speech_over_noise_db
        if not (vad and loud):
            # Track the noise floor on non-speech frames: fast down, slow up.
            rate = 0.3 if db < self._noise_db else 0.02
            self._noise_db += rate * (db - self._noise_db)
        return vad and loud

    def _decide(self, verdict: AmdVerdict, reason: str) -> AmdResult:
        greeting = 0
        if self._first_voice is not None and self._last_voice is not None:
            greeting = self._last_voice - self._first_voice
        self.result = AmdResult(verdict, reason, self._t, greeting, self._words)
        return self.result

    def feed(self, pcm: bytes) -> AmdResult | None:
        """Analyse more audio; returns the result as soon as it is known (and on every later call)."""
        if self.result is not None:
            return self.result
        cfg = self.config
        for frame in self._framer.frames(pcm):
            self._t += cfg.frame_ms
            if self._voiced(frame):
                self._voiced_run += cfg.frame_ms
                self._silence_run = 0
                if self._first_voice is None:
                    self._first_voice = self._t - cfg.frame_ms
                self._last_voice = self._t
                if not self._in_word and self._voiced_run >= cfg.min_word_ms:
                    self._in_word = True
                    self._words += 1
            else:
                self._silence_run += cfg.frame_ms
                if self._silence_run >= cfg.between_words_silence_ms:
                    self._voiced_run = 0
                    self._in_word = False
            r = self._rules()
            if r is not None:
                return r
        return None

    def _rules(self) -> AmdResult | None:
        cfg = self.config
        if self._first_voice is None or self._words == 0:
            if self._t >= cfg.initial_silence_ms:
                return self._decide(AmdVerdict.NOTSURE, f"no speech in the first {cfg.initial_silence_ms} ms")
            return None
        assert self._last_voice is not None
        greeting = self._last_voice - self._first_voice
        if greeting > cfg.greeting_max_ms:
            return self._decide(AmdVerdict.MACHINE, f"greeting longer than {cfg.greeting_max_ms} ms")
        if self._words > cfg.max_words:
            return self._decide(AmdVerdict.MACHINE, f"more than {cfg.max_words} words before a pause")
        if self._silence_run >= cfg.after_greeting_silence_ms:
            return self._decide(
                AmdVerdict.HUMAN, f"short greeting ({greeting} ms) then {self._silence_run} ms of silence"
            )
        if self._t >= cfg.total_analysis_ms:
            return self._decide(AmdVerdict.NOTSURE, f"no decision within {cfg.total_analysis_ms} ms")
        return None

    def finish(self) -> AmdResult:
        """The result at the end of the available audio (not sure if the rules never fired)."""
        if self.result is not None:
            return self.result
        if self._first_voice is not None and self._words and self._silence_run >= self.config.between_words_silence_ms:
            return self._decide(AmdVerdict.HUMAN, "short greeting, audio ended during the silence after it")
        return self._decide(AmdVerdict.NOTSURE, "audio ended before a decision")


class BeepDetector:
    """Finds a steady narrowband tone (the answering machine's recording beep) in PCM16 frames."""

    def __init__(self, config: AmdConfig | None = None, sample_rate: int = SAMPLE_RATE) -> None:
        self.config = config or AmdConfig()
        self.sample_rate = sample_rate
        self._n = sample_rate * self.config.frame_ms // 1000
        self._framer = _Framer(self._n)
        self._window = np.hanning(self._n)
        self._freqs = np.fft.rfftfreq(self._n, 1.0 / sample_rate)
        self._t = 0
        self._run = 0
        self._run_hz: list[float] = []
        self.beep_at_ms: int | None = None
        self.beep_hz: float | None = None

    def _tone_hz(self, frame: bytes) -> float | None:
        cfg = self.config
        x = np.frombuffer(frame, dtype=np.int16).astype(np.float64)
        if _frame_dbfs(x.astype(np.int16)) < -40.0:
            return None
        power = np.abs(np.fft.rfft(x * self._window)) ** 2
        total = float(power.sum())
        k = int(np.argmax(power))
        hz = float(self._freqs[k])
        if total <= 0 or not cfg.beep_min_hz <= hz <= cfg.beep_max_hz:
            return None
        # A Hann window spreads a pure tone over the peak and one bin either side.
        peak = float(power[max(0, k - 2) : k + 3].sum())
        return hz if peak / total >= cfg.beep_purity else None

    def feed(self, pcm: bytes) -> int | None:
        """Analyse more audio; returns the time (ms) the beep was confirmed, once found."""
        if self.beep_at_ms is not None:
            return self.beep_at_ms
        cfg = self.config
        for frame in self._framer.frames(pcm):
            self._t += cfg.frame_ms
            hz = self._tone_hz(frame)
            # The same tone frame after frame: a beep. Speech never holds one pure pitch this long.
            if hz is not None and (not self._run_hz or abs(hz - self._run_hz[-1]) <= 60.0):
                self._run += cfg.frame_ms
                self._run_hz.append(hz)
            else:
                self._run = cfg.frame_ms if hz is not None else 0
                self._run_hz = [hz] if hz is not None else []
            if self._run >= cfg.beep_min_ms:
                self.beep_at_ms = self._t
                self.beep_hz = float(np.median(self._run_hz))
                return self.beep_at_ms
        return None


class MessageCue:
    """When to start leaving a message on a machine: its beep, or (machines without one) the end
    of its greeting, ``greeting_end_silence_ms`` of silence after speech was heard.

    Feed the audio heard after AMD said "machine" (the greeting is usually still playing);
    ``feed`` returns ``"beep"`` or ``"silence"`` once, then keeps returning it.
    """

    def __init__(self, config: AmdConfig | None = None, sample_rate: int = SAMPLE_RATE) -> None:
        self.config = config or AmdConfig()
        self._beep = BeepDetector(self.config, sample_rate)
        self._framer = _Framer(sample_rate * self.config.frame_ms // 1000)
        self._heard_sound = False
        self._silence_ms = 0
        self.cue: str | None = None

    def feed(self, pcm: bytes) -> str | None:
        if self.cue is not None:
            return self.cue
        if self._beep.feed(pcm) is not None:
            self.cue = "beep"
            return self.cue
        cfg = self.config
        for frame in self._framer.frames(pcm):
            if _frame_dbfs(np.frombuffer(frame, dtype=np.int16)) >= cfg.min_speech_dbfs:
                self._heard_sound = True
                self._silence_ms = 0
            elif self._heard_sound:
                self._silence_ms += cfg.frame_ms
                if self._silence_ms >= cfg.greeting_end_silence_ms:
                    self.cue = "silence"
                    return self.cue
        return None


def classify(pcm: bytes, config: AmdConfig | None = None, sample_rate: int = SAMPLE_RATE) -> AmdResult:
    """Classify a whole recording (offline convenience around :class:`AnsweringMachineDetector`)."""
    det = AnsweringMachineDetector(config, sample_rate)
    return det.feed(pcm) or det.finish()


def detect_beep(pcm: bytes, config: AmdConfig | None = None, sample_rate: int = SAMPLE_RATE) -> int | None:
    """The time in ms at which a beep is confirmed in ``pcm``, or None."""
    return BeepDetector(config, sample_rate).feed(pcm)
