"""Voice prompts: a library of named WAV files, their text-to-speech generation and the hold music.

A prompt is a short 8 kHz mono WAV (PCM16 or G.711 u-law/A-law) named after what it says:
``welcome``, ``menu_main``, ``position_3``, ``ewt_minutes_5`` ... :class:`PromptLibrary` resolves a
name to a file, searching an override directory before the shipped defaults, and decodes it once
into a PCM16 numpy array that ``Call.play`` accepts as is.

Shipping decision: the default set is generated with espeak-ng + sox as 8 kHz u-law WAVs (half
the size of PCM16, and the codec the calls use anyway) and committed under ``config/prompts/``
(about 1 MB). :func:`ensure_prompts` regenerates into any directory what is missing or whose text
changed; it needs espeak-ng and sox only when something has to be generated, never the network.
The hold music is synthesised here with numpy (soft chords), so no copyrighted audio is shipped.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import tempfile
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Final, Literal

import numpy as np
import numpy.typing as npt
import structlog

from telephony.media.wav import WavError, read_wav
from telephony.rtp.g711 import ulaw_encode

__all__ = [
    "DEFAULT_PROMPTS",
    "HOLD_MUSIC",
    "MAX_EWT_MINUTES",
    "MAX_POSITION",
    "SAMPLE_RATE",
    "SHIPPED_PROMPTS_DIR",
    "Encoding",
    "PromptError",
    "PromptLibrary",
    "PromptNotFoundError",
    "PromptToolMissingError",
    "campaign_message_names",
    "company_prompt_name",
    "ensure_company_prompt",
    "ensure_prompts",
    "generate",
    "hold_music",
    "write_wav",
]

log = structlog.get_logger(__name__)

Pcm16 = npt.NDArray[np.int16]
Encoding = Literal["pcm16", "ulaw"]

SAMPLE_RATE: Final = 8000
MAX_POSITION: Final = 20
MAX_EWT_MINUTES: Final = 20
HOLD_MUSIC: Final = "hold_music"
SHIPPED_PROMPTS_DIR: Final = Path(__file__).resolve().parent.parent / "config" / "prompts"
_MANIFEST: Final = ".prompts.json"
_NAME_RE: Final = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_NUMBER_WORDS: Final = (
    *("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"),
    *("eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"),
    "twenty",
)
_WAVE_PCM: Final = 1
_WAVE_MULAW: Final = 7


def _default_texts() -> dict[str, str]:
    texts = {
        "welcome": "Thank you for calling.",
        "menu_main": (
            "For sales, press 1. For support, press 2. To make a complaint, press 3. "
            "To ask for a call back, press 4. To hear these options again, press 0."
        ),
        "closed": "Our offices are now closed. Please call again during our opening hours.",
        "invalid": "Sorry, that is not a valid choice.",
        "no_input": "Sorry, we did not receive your choice.",
        "goodbye": "Thank you for calling. Goodbye.",
        "please_hold": "Please hold. Your call will be answered by the next available agent.",
        "abandon_message": (
            "Sorry, all our agents are busy right now. We will call you back as soon as possible. Goodbye."
        ),
        # The campaign message heard by an abandoned call (and left on a machine), composed by
        # campaign_message_names: who called and the number to call back, digit by digit.
        "abandon_busy": "Hello. Sorry, all our agents are busy right now.",
        "machine_hello": "Hello, this is a message for you.",
        "message_call_from": "This call was from",
        "message_call_back": "To call us back, please dial",
        "message_goodbye": "We will try again later. Thank you, goodbye.",
        "callback_confirm": "Thank you. We will call you back as soon as an agent is free.",
        "voicemail_intro": "Please leave your message after the tone.",
        "survey_question": (
            "Please rate this call. Press 1 if you were satisfied, 2 if it was average, 3 if you were unsatisfied."
        ),
        "survey_thanks": "Thank you for your feedback. Goodbye.",
        "position_many": f"There are more than {_NUMBER_WORDS[MAX_POSITION]} callers ahead of you.",
        "ewt_less_than_minute": "Your call will be answered in less than a minute.",
        "ewt_long": f"Your estimated waiting time is more than {_NUMBER_WORDS[MAX_EWT_MINUTES]} minutes.",
    }
    texts["position_1"] = "You are next in line."
    for n in range(2, MAX_POSITION + 1):
        texts[f"position_{n}"] = f"You are number {_NUMBER_WORDS[n]} in line."
    texts["ewt_minutes_1"] = "Your estimated waiting time is one minute."
    for n in range(2, MAX_EWT_MINUTES + 1):
        texts[f"ewt_minutes_{n}"] = f"Your estimated waiting time is {_NUMBER_WORDS[n]} minutes."
    for d in range(10):
        texts[f"digit_{d}"] = _NUMBER_WORDS[d]
    return texts


DEFAULT_PROMPTS: Final[Mapping[str, str]] = _default_texts()
"""Prompt name -> spoken text of the default set (``hold_music`` is synthesised, not spoken)."""


class PromptError(Exception):
    """A prompt cannot be found, read or generated; the message says what to do."""


class PromptNotFoundError(PromptError, KeyError):
    """No WAV file for a prompt name in any directory of the library."""

    def __str__(self) -> str:  # KeyError would print the repr of the message
        return str(self.args[0])


class PromptToolMissingError(PromptError):
    """espeak-ng or sox is not installed."""


# --------------------------------------------------------------------------- WAV writing
def write_wav(path: str | os.PathLike[str], samples: npt.ArrayLike, *, encoding: Encoding = "pcm16") -> None:
    """Write mono 8 kHz ``samples`` (int16) as PCM16 or u-law, atomically (temp file + rename)."""
    pcm = np.asarray(samples)
    if pcm.dtype != np.int16 or pcm.ndim != 1:
        raise ValueError(f"write_wav takes a 1-D int16 array, got {pcm.ndim}-D {pcm.dtype}")
    if encoding == "pcm16":
        payload = pcm.astype("<i2").tobytes()
        fmt = struct.pack("<HHIIHH", _WAVE_PCM, 1, SAMPLE_RATE, SAMPLE_RATE * 2, 2, 16)
        extra = b""
    elif encoding == "ulaw":
        payload = ulaw_encode(pcm)
        # Non-PCM formats carry cbSize in fmt and a fact chunk with the sample count.
        fmt = struct.pack("<HHIIHHH", _WAVE_MULAW, 1, SAMPLE_RATE, SAMPLE_RATE, 1, 8, 0)
        extra = b"fact" + struct.pack("<II", 4, len(pcm))
    else:
        raise ValueError(f"unknown encoding {encoding!r}: use 'pcm16' or 'ulaw'")
    pad = b"\0" if len(payload) & 1 else b""
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + extra
    body += b"data" + struct.pack("<I", len(payload)) + payload + pad
    _atomic_write(Path(path), b"RIFF" + struct.pack("<I", len(body)) + body)


def _atomic_write(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
        Path(tmp).chmod(0o644)  # mkstemp makes 0600; prompts and manifests are meant to be shared
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------- generation
def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise PromptToolMissingError(
            f"{name} is not installed, so prompts cannot be generated: install the Debian packages "
            "espeak-ng and sox (apt-get install espeak-ng sox), or put recorded 8 kHz mono WAV files "
            "in the prompt directory"
        )
    return found


def generate(
    text: str,
    out_path: str | os.PathLike[str],
    voice: str = "en",
    speed: int = 165,
    *,
    encoding: Encoding = "pcm16",
    timeout: float = 30.0,
) -> Path:
    """Speak ``text`` with espeak-ng into an 8 kHz mono WAV (PCM16 or u-law) at ``out_path``.

    sox resamples, trims leading/trailing silence (keeping 100 ms) and normalises to -3 dBFS so
    that all prompts play at the same loudness. Each tool call is bounded by ``timeout`` seconds.
    """
    if not text.strip():
        raise ValueError(f"empty prompt text for {out_path}: give the words to speak")
    if not 80 <= speed <= 450:
        raise ValueError(f"speed={speed} words per minute is outside espeak-ng's 80..450 range")
    espeak, sox = _tool("espeak-ng"), _tool("sox")
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    sox_encoding = ["-e", "signed-integer", "-b", "16"] if encoding == "pcm16" else ["-e", "u-law", "-b", "8"]
    with tempfile.TemporaryDirectory(prefix="prompt-") as tmp:
        raw, converted = Path(tmp) / "tts.wav", Path(tmp) / "out.wav"
        # Text goes through stdin so that a prompt starting with '-' is never read as an option.
        _run([espeak, "-v", voice, "-s", str(speed), "--stdin", "-w", str(raw)], text, timeout)
        _run(
            [
                *(sox, str(raw), "-r", str(SAMPLE_RATE), "-c", "1", *sox_encoding, str(converted)),
                *("silence", "1", "0.02", "0.5%", "reverse", "silence", "1", "0.02", "0.5%", "reverse"),
                *("pad", "0.1", "0.1", "norm", "-3"),
            ],
            None,
            timeout,
        )
        shutil.move(str(converted), out)
    return out


def _run(argv: list[str], stdin: str | None, timeout: float) -> None:
    try:
        proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise PromptError(f"{Path(argv[0]).name} took more than {timeout:.0f} s; is the machine overloaded?") from exc
    if proc.returncode != 0:
        raise PromptError(f"{Path(argv[0]).name} failed with exit status {proc.returncode}: {proc.stderr.strip()}")


def hold_music(seconds_per_chord: float = 2.0, *, level_dbfs: float = -12.0) -> Pcm16:
    """A seamless loop of soft chords (C, Am, F, G) with a gentle arpeggio, as 8 kHz PCM16.

    Every chord fades in and out, so the loop boundary is click-free; partials stay under
    1.2 kHz because the G.711 channel stops at 3.4 kHz and bright tones sound harsh on a phone.
    """
    progression = (
        (261.63, 329.63, 392.00),  # C
        (220.00, 261.63, 329.63),  # Am
        (174.61, 220.00, 261.63),  # F
        (196.00, 246.94, 293.66),  # G
    )
    n = int(seconds_per_chord * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    fade = np.minimum(1.0, np.minimum(t, seconds_per_chord - t) / 0.25)
    pieces = []
    for chord in progression:
        pad = sum(np.sin(2 * np.pi * f * t) + 0.3 * np.sin(4 * np.pi * f * t) for f in chord) / len(chord)
        pad *= 0.6 * (1 + 0.1 * np.sin(2 * np.pi * 0.5 * t)) * fade
        notes = np.zeros(n)
        step = n // 4
        for i, f in enumerate((*chord, chord[1])):
            tt = t[: n - i * step] if i * step < n else t[:0]
            pluck = np.sin(2 * np.pi * 2 * f * tt) * np.exp(-tt * 4.0) * np.minimum(1.0, tt / 0.015)
            notes[i * step : i * step + len(tt)] += 0.35 * pluck
        pieces.append(pad + notes * fade)
    signal = np.concatenate(pieces)
    signal /= np.max(np.abs(signal))
    return np.round(signal * 32767 * 10 ** (level_dbfs / 20)).astype(np.int16)


# --------------------------------------------------------------------------- ensure_prompts
def _fingerprint(text: str, voice: str, speed: int, encoding: Encoding) -> str:
    return hashlib.sha256(json.dumps([text, voice, speed, encoding]).encode()).hexdigest()[:16]


def ensure_prompts(
    directory: str | os.PathLike[str],
    *,
    texts: Mapping[str, str] | None = None,
    voice: str = "en",
    speed: int = 165,
    encoding: Encoding = "ulaw",
    names: Iterable[str] | None = None,
) -> list[Path]:
    """Generate the prompts of ``texts`` (default :data:`DEFAULT_PROMPTS` + hold music) missing in ``directory``.

    Generation is cached on disk: a manifest ``.prompts.json`` remembers the text, voice and speed of
    every generated file, so a prompt is regenerated only when its text changes. A WAV that is not
    in the manifest was put there by a person (a studio recording) and is never overwritten.
    Returns the paths written by this call. ``names`` limits the work to some prompts.
    """
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    wanted = dict(DEFAULT_PROMPTS if texts is None else texts)
    selected = (set(wanted) | {HOLD_MUSIC}) if names is None else set(names)
    manifest_path = root / _MANIFEST
    try:
        manifest: dict[str, str] = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    except (OSError, ValueError):
        log.warning("prompts.manifest_unreadable", path=str(manifest_path))
        manifest = {}
    written: list[Path] = []
    for name in sorted(selected):
        _check_name(name)
        path = root / f"{name}.wav"
        if name == HOLD_MUSIC:
            stamp = f"hold_music/v1/{encoding}"
            if _is_current(path, name, stamp, manifest):
                continue
            write_wav(path, hold_music(), encoding=encoding)
        else:
            if name not in wanted:
                raise PromptNotFoundError(f"no text for prompt {name!r}: add it to texts= or record {path}")
            stamp = _fingerprint(wanted[name], voice, speed, encoding)
            if _is_current(path, name, stamp, manifest):
                continue
            generate(wanted[name], path, voice, speed, encoding=encoding)
        manifest[name] = stamp
        written.append(path)
        log.info("prompts.generated", prompt=name, path=str(path))
    if written:
        _atomic_write(manifest_path, json.dumps(manifest, indent=1, sort_keys=True).encode())
    return written


def _is_current(path: Path, name: str, stamp: str, manifest: Mapping[str, str]) -> bool:
    if not path.exists():
        return False
    # Not ours (no manifest entry): a hand-made recording wins over generation.
    return name not in manifest or manifest[name] == stamp


def _check_name(name: str) -> None:
    if not _NAME_RE.match(name):
        raise ValueError(
            f"bad prompt name {name!r}: use lower-case letters, digits, '_' and '-' (e.g. 'menu_sales'), "
            "at most 64 characters"
        )


# --------------------------------------------------------------------------- campaign messages
def company_prompt_name(company: str) -> str:
    """The prompt that speaks a campaign's company name: ``company_<slug>`` (a hash for names that
    are not plain ASCII). Generated at campaign create time, or recorded by the site under this name."""
    slug = re.sub(r"[^a-z0-9]+", "_", company.strip().lower()).strip("_")
    if not slug or not company.isascii():
        slug = hashlib.sha256(company.strip().encode()).hexdigest()[:12]
    return f"company_{slug[:50]}"


def ensure_company_prompt(
    directory: str | os.PathLike[str], company: str, *, voice: str = "en", speed: int = 165
) -> Path | None:
    """Speak ``company`` into ``directory`` as :func:`company_prompt_name` (cached like
    :func:`ensure_prompts`); None, with a warning, when espeak-ng or sox is missing."""
    name = company_prompt_name(company)
    try:
        ensure_prompts(directory, texts={name: company.strip()}, voice=voice, speed=speed, names=[name])
    except PromptToolMissingError as exc:
        log.warning("prompts.company_not_generated", company=company, prompt=name, why=str(exc))
        return None
    return Path(directory) / f"{name}.wav"


def campaign_message_names(
    kind: Literal["abandon", "machine"],
    *,
    company_prompt: str | None,
    callback_number: str | None,
) -> list[str]:
    """The prompts, in order, of a campaign's message: a greeting (``abandon_busy`` for an abandoned
    call, ``machine_hello`` on a machine), who called (``message_call_from`` + the company
    prompt), the number to call back spoken digit by digit (``message_call_back`` + ``digit_N``),
    and ``message_goodbye``. Parts without their setting are left out."""
    names = ["abandon_busy" if kind == "abandon" else "machine_hello"]
    if company_prompt is not None:
        names += ["message_call_from", company_prompt]
    digits = [c for c in (callback_number or "") if c.isdigit()]
    if digits:
        names += ["message_call_back", *(f"digit_{d}" for d in digits)]
    names.append("message_goodbye")
    return names


# --------------------------------------------------------------------------- library
class PromptLibrary:
    """Resolve prompt names to WAV files and decoded PCM16 audio.

    ``PromptLibrary(directory, *fallbacks)``: a name is looked up in ``directory`` first, then in each
    fallback (typically :data:`SHIPPED_PROMPTS_DIR`), so a site overrides single prompts by dropping
    a file with the same name. Decoded audio is cached per file and modification time.
    """

    def __init__(self, directory: str | os.PathLike[str], *fallbacks: str | os.PathLike[str]) -> None:
        self.directories: tuple[Path, ...] = tuple(Path(d) for d in (directory, *fallbacks))
        self._cache: dict[Path, tuple[int, Pcm16]] = {}
        self._lock = threading.Lock()

    def path(self, name: str) -> Path:
        """The WAV file of prompt ``name``; :class:`PromptNotFoundError` says where it was looked for."""
        _check_name(name)
        for directory in self.directories:
            candidate = directory / f"{name}.wav"
            if candidate.is_file():
                return candidate
        where = ", ".join(str(d) for d in self.directories)
        raise PromptNotFoundError(
            f"prompt {name!r} not found in {where}: run ivr.prompts.ensure_prompts(<dir>) "
            f"or record {self.directories[0] / (name + '.wav')} (8 kHz mono WAV)"
        )

    def has(self, name: str) -> bool:
        try:
            self.path(name)
        except PromptNotFoundError:
            return False
        return True

    def names(self) -> list[str]:
        """All prompt names available in any directory."""
        found = {p.stem for d in self.directories if d.is_dir() for p in d.glob("*.wav")}
        return sorted(n for n in found if _NAME_RE.match(n))

    def load(self, name: str) -> Pcm16:
        """Prompt ``name`` as 8 kHz mono PCM16 samples (read-only array shared by all callers)."""
        path = self.path(name)
        mtime = path.stat().st_mtime_ns
        with self._lock:
            cached = self._cache.get(path)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        try:
            samples = read_wav(path)  # PCM16, u-law or A-law; 8 kHz mono or a message with the sox fix
        except WavError as exc:
            raise PromptError(f"prompt {name!r}: {exc}") from exc
        samples.setflags(write=False)
        with self._lock:
            self._cache[path] = (mtime, samples)
        return samples

    def concat(self, names: Iterable[str], *, gap: float = 0.15) -> Pcm16:
        """Several prompts as one array with ``gap`` seconds of silence between them (announcements)."""
        silence = np.zeros(int(gap * SAMPLE_RATE), dtype=np.int16)
        parts: list[Pcm16] = []
        for i, name in enumerate(names):
            if i:
                parts.append(silence)
            parts.append(self.load(name))
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)
