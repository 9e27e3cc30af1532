"""Synthesised voices for the simulated people: customers, answering machines and agents.

Every clip is spoken by espeak-ng and converted by sox (through :func:`ivr.prompts.generate`)
into an 8 kHz mono PCM16 WAV, once, into a cache directory keyed by a hash of the text, voice
and speed; later runs only read the files. Voices and speeds vary so calls do not all sound
alike and so answering-machine detection sees realistic variety:

- a customer voice has short greetings ("Hello?", "Yes?", "Hi, who's calling?") and a few
  conversational sentences; a person says a greeting and then waits in silence;
- a machine greeting is one long continuous message ending in a 1 kHz, 400 ms beep, the
  shape :mod:`dialer.amd` classifies as a machine;
- an agent voice has the call's purpose statement ("Hello, this is Anna from Acme Energy,
  I'm calling about your contract renewal."), an inbound greeting and a few lines.

Without espeak-ng or sox, :class:`SimAudioError` says which Debian packages to install.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import structlog

from ivr.prompts import PromptError, generate
from telephony.media.player import tone
from telephony.media.wav import read_wav
from telephony.rtp.g711 import Pcm16

__all__ = [
    "DEFAULT_VOICES",
    "SAMPLE_RATE",
    "AgentVoice",
    "CustomerVoice",
    "SimAudio",
    "SimAudioError",
    "Voice",
    "beep",
    "default_cache_dir",
    "line_noise",
    "silence",
]

log = structlog.get_logger(__name__)

SAMPLE_RATE: Final = 8000
_VERSION: Final = "sim-audio/1"


@dataclass(frozen=True, slots=True)
class Voice:
    """An espeak-ng voice (``-v``, e.g. ``en-us+f3``) and its speed in words per minute."""

    name: str
    speed: int


DEFAULT_VOICES: Final[tuple[Voice, ...]] = (
    Voice("en-us", 165),
    Voice("en-gb+f3", 150),
    Voice("en-gb-scotland", 140),
    Voice("en-us+f2", 175),
    Voice("en-029", 155),
    Voice("en-gb+m3", 160),
)

HUMAN_GREETINGS: Final = ("Hello?", "Yes?", "Hi, who's calling?", "Hello, yes?")
HUMAN_TALK: Final = (
    "Oh, okay. What is this about?",
    "I see. I'm not sure I need that right now.",
    "How much would that cost me per month?",
    "Yes, I remember signing that contract last year.",
    "Alright, that sounds reasonable to me.",
    "Could you send me the details by email, please?",
)
MACHINE_NAMES: Final = ("John Smith", "Maria", "the Miller family", "Dave", "Sarah and Tom")
MACHINE_TEMPLATE: Final = (
    "Hi, you've reached {name}. I can't take your call right now, please leave a message after the tone."
)
AGENT_PURPOSE: Final = "Hello, this is {agent} from {company}, I'm calling about {purpose}."
AGENT_INBOUND: Final = "Thank you for calling {company}, this is {agent}. How can I help you?"
AGENT_LINES: Final = (
    "Do you have a minute to talk about it?",
    "Your current contract ends next month.",
    "We can offer you a better rate for the next two years.",
    "I can send you all the details by email today.",
    "Is there anything else I can help you with?",
)
AGENT_CLOSING: Final = "Thank you for your time, and have a nice day. Goodbye."


class SimAudioError(RuntimeError):
    """The simulation's voices cannot be synthesised; the message says what to install."""


@dataclass(frozen=True, slots=True)
class CustomerVoice:
    """One simulated person's clips, all in the same voice."""

    voice: Voice
    greetings: tuple[Pcm16, ...]
    talk: tuple[Pcm16, ...]


@dataclass(frozen=True, slots=True)
class AgentVoice:
    """One simulated agent's clips: the purpose statement comes first on outbound calls."""

    name: str
    voice: Voice
    purpose: Pcm16
    inbound_greeting: Pcm16
    lines: tuple[Pcm16, ...]
    closing: Pcm16


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dialer" / "sim-audio"


def silence(seconds: float) -> Pcm16:
    return np.zeros(round(seconds * SAMPLE_RATE), dtype=np.int16)


def beep(hz: float = 1000.0, seconds: float = 0.4) -> Pcm16:
    """The answering machine's "start recording" tone (what :class:`dialer.amd.BeepDetector` finds)."""
    return tone(hz, seconds, 0.3)


def line_noise(seconds: float, *, dbfs: float = -62.0, seed: int = 7) -> Pcm16:
    """Faint hiss for the gaps: a real line is never digitally silent, and RTP keeps flowing."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 32768.0 * 10 ** (dbfs / 20), round(seconds * SAMPLE_RATE))
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def _check_tools() -> None:
    missing = [t for t in ("espeak-ng", "sox") if shutil.which(t) is None]
    if missing:
        raise SimAudioError(
            f"{' and '.join(missing)} not found: the simulated customers and agents speak through espeak-ng and "
            "sox. Install the Debian packages: sudo apt-get install espeak-ng sox"
        )


class SimAudio:
    """The clip library of one simulation. Generation is lazy, cached on disk and in memory.

    Generation runs subprocesses: call :meth:`prepare` (or the accessors) from a worker
    thread (``await asyncio.to_thread(audio.prepare, agents)``) when an event loop is live.
    """

    def __init__(
        self,
        cache_dir: str | os.PathLike[str] | None = None,
        *,
        voices: Sequence[Voice] = DEFAULT_VOICES,
        customer_voices: int = 4,
        company: str = "Acme Energy",
        purpose: str = "your contract renewal",
        workers: int = 2,
    ) -> None:
        if not voices:
            raise ValueError("SimAudio needs at least one espeak-ng voice")
        if customer_voices < 1:
            raise ValueError(f"customer_voices={customer_voices}: need at least one customer voice")
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.voices = tuple(voices)
        self.company = company
        self.purpose = purpose
        self._n_customer = customer_voices
        self._workers = max(1, workers)
        self._lock = threading.Lock()
        self._customers: list[CustomerVoice] | None = None
        self._machines: list[Pcm16] | None = None
        self._agents: dict[str, AgentVoice] = {}

    # -- clips ----------------------------------------------------------------------------
    def _path(self, kind: str, text: str, voice: Voice) -> Path:
        key = hashlib.sha256(f"{_VERSION}|{text}|{voice.name}|{voice.speed}".encode()).hexdigest()[:16]
        return self.cache_dir / f"{kind}-{key}.wav"

    def _clip(self, kind: str, text: str, voice: Voice) -> Pcm16:
        path = self._path(kind, text, voice)
        if not path.exists():
            _check_tools()
            try:
                generate(text, path, voice.name, voice.speed, encoding="pcm16")
            except PromptError as exc:
                raise SimAudioError(f"could not synthesise {text!r} with voice {voice.name}: {exc}") from exc
            log.debug("sim_audio.generated", path=str(path), voice=voice.name)
        samples = read_wav(path)
        samples.setflags(write=False)
        return samples

    def _many(self, jobs: list[tuple[str, str, Voice]]) -> list[Pcm16]:
        if all(self._path(*job).exists() for job in jobs):
            return [self._clip(*job) for job in jobs]
        with ThreadPoolExecutor(self._workers, thread_name_prefix="sim-audio") as pool:
            return list(pool.map(lambda job: self._clip(*job), jobs))

    def customer_voices(self) -> list[CustomerVoice]:
        with self._lock:
            if self._customers is None:
                voices = [self.voices[i % len(self.voices)] for i in range(self._n_customer)]
                texts = (*HUMAN_GREETINGS, *HUMAN_TALK)
                clips = self._many([("human", t, v) for v in voices for t in texts])
                n, g = len(texts), len(HUMAN_GREETINGS)
                self._customers = [
                    CustomerVoice(v, tuple(clips[i * n : i * n + g]), tuple(clips[i * n + g : (i + 1) * n]))
                    for i, v in enumerate(voices)
                ]
            return self._customers

    def machine_greetings(self) -> list[Pcm16]:
        """Complete machine greetings: the message, a short pause, then the beep."""
        with self._lock:
            if self._machines is None:
                jobs = [
                    ("machine", MACHINE_TEMPLATE.format(name=name), self.voices[(i + 1) % len(self.voices)])
                    for i, name in enumerate(MACHINE_NAMES)
                ]
                tail = np.concatenate([silence(0.35), beep()])
                self._machines = [np.concatenate([clip, tail]) for clip in self._many(jobs)]
                for m in self._machines:
                    m.setflags(write=False)
            return self._machines

    def agent_voice(self, name: str, voice: Voice | None = None) -> AgentVoice:
        """The clips of agent ``name`` (generated on first use, then cached)."""
        with self._lock:
            found = self._agents.get(name)
            if found is not None:
                return found
            v = voice or self.voices[int(hashlib.sha256(name.encode()).hexdigest(), 16) % len(self.voices)]
            fields = {"agent": name, "company": self.company, "purpose": self.purpose}
            texts = [AGENT_PURPOSE.format(**fields), AGENT_INBOUND.format(**fields), *AGENT_LINES, AGENT_CLOSING]
            clips = self._many([("agent", t, v) for t in texts])
            agent = AgentVoice(name, v, clips[0], clips[1], tuple(clips[2:-1]), clips[-1])
            self._agents[name] = agent
            return agent

    def prepare(self, agents: Sequence[str] = ()) -> None:
        """Generate (or load) every clip now, so calls never wait for speech synthesis."""
        self.customer_voices()
        self.machine_greetings()
        for name in agents:
            self.agent_voice(name)
