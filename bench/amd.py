#!/usr/bin/env python3
"""AMD benchmark: a labelled set of generated greetings, classified by dialer.amd.

Generates at run time with espeak-ng (text to speech, several voices and speeds) and sox
(resampling to 8 kHz PCM16): humans say a short greeting and wait ("Hello?", "Yes, hello",
"Hi, who is this?"), some with background noise or a second "Hello?" later; machines play a
long greeting ("Hi, you've reached ... please leave a message after the tone"), half of them
followed by a 1 kHz beep. Prints the false-positive rate (humans classified as machines: the
target is 0), the machine detection rate, the beep detection rate, and a JSON last line.

    .venv/bin/python bench/amd.py [--limit N]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
if Path(sys.prefix).resolve() != (ROOT / ".venv").resolve() and VENV_PYTHON.exists():
    os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), __file__, *sys.argv[1:]])
sys.path.insert(0, str(ROOT))

from dialer.amd import AmdVerdict, BeepDetector, classify  # noqa: E402

RATE = 8000
HUMAN_PHRASES = [
    "Hello?", "Yes, hello", "Hi, who is this?", "Hello, yes?", "Yeah?", "Hi", "Hello, this is Mark",
    "Good morning", "Speaking", "Hello, who's calling?",
]  # fmt: skip
MACHINE_PHRASES = [
    "Hi, you've reached John Smith. I can't take your call right now, please leave a message after the tone.",
    "Hello, you have reached the voicemail of Sarah. Please leave your name and number and I will call you back.",
    "The person you are calling is not available. Please leave a message after the beep.",
    "Thanks for calling the Miller family. We're not home right now, leave a message and we'll get back to you.",
    "Hi, this is Dave. Sorry I missed you. Leave a message.",
    "You have reached five five five, one two three four. Please leave a message after the tone.",
]
VOICES = ["en-us", "en-gb", "en-us+f3", "en-gb+m3", "en+f2", "en-gb-scotland", "en-029"]
SPEEDS = [130, 160, 190]


def speak(text: str, voice: str, speed: int, workdir: Path) -> np.ndarray:
    """espeak-ng to WAV, sox to 8 kHz mono PCM16; returns int16 samples."""
    wav = workdir / "tts.wav"
    raw = workdir / "tts.raw"
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(wav), text], check=True,
                   capture_output=True)  # fmt: skip
    subprocess.run(["sox", str(wav), "-r", str(RATE), "-c", "1", "-b", "16", "-e", "signed-integer", str(raw)],
                   check=True, capture_output=True)  # fmt: skip
    return np.fromfile(raw, dtype=np.int16)


def trim(x: np.ndarray) -> np.ndarray:
    """Cut espeak's leading/trailing silence so the generated timing is ours."""
    loud = np.nonzero(np.abs(x.astype(np.int32)) > 300)[0]
    return x[loud[0] : loud[-1] + 1] if loud.size else x


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), dtype=np.int16)


def beep(seconds: float = 0.5, hz: float = 1000.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * 32767 * np.sin(2 * np.pi * hz * t)).astype(np.int16)


def mix_noise(x: np.ndarray, rng: np.random.Generator, dbfs: float) -> np.ndarray:
    noise = rng.normal(0.0, 32768.0 * 10 ** (dbfs / 20), x.size)
    return np.clip(x.astype(np.float64) + noise, -32768, 32767).astype(np.int16)


def build_set(workdir: Path, limit: int | None) -> list[tuple[str, bool, np.ndarray, str]]:
    rng = np.random.default_rng(42)
    pick = random.Random(42)
    cases: list[tuple[str, bool, np.ndarray, str]] = []
    humans = list(itertools.product(HUMAN_PHRASES, VOICES, SPEEDS))
    machines = list(itertools.product(MACHINE_PHRASES, VOICES, SPEEDS))
    pick.shuffle(humans)
    pick.shuffle(machines)
    if limit:
        humans, machines = humans[:limit], machines[:limit]
    for i, (text, voice, speed) in enumerate(humans):
        speech = trim(speak(text, voice, speed, workdir))
        parts = [silence(pick.uniform(0.1, 0.9)), speech, silence(pick.uniform(1.5, 3.0))]
        if i % 4 == 1:  # "Hello? ... Hello?" when nobody answers them
            parts += [speech, silence(1.0)]
        audio = np.concatenate(parts)
        noise = [None, -55.0, -45.0][i % 3]
        if noise is not None:
            audio = mix_noise(audio, rng, noise)
        cases.append((f"human {text!r} {voice} {speed} noise={noise}", False, audio, ""))
    for i, (text, voice, speed) in enumerate(machines):
        speech = trim(speak(text, voice, speed, workdir))
        with_beep = i % 2 == 0
        parts = [silence(pick.uniform(0.1, 0.6)), speech, silence(pick.uniform(0.3, 0.8))]
        if with_beep:
            parts += [beep(), silence(1.0)]
        audio = np.concatenate(parts)
        noise = [None, -55.0, -45.0][i % 3]
        if noise is not None:
            audio = mix_noise(audio, rng, noise)
        cases.append((f"machine {text[:30]!r}... {voice} {speed} noise={noise}", True, audio,
                      "beep" if with_beep else ""))  # fmt: skip
    return cases


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=None, help="at most N humans and N machines")
    args = ap.parse_args()
    missing = [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]
    if missing:
        print(f"bench/amd needs {' and '.join(missing)}: apt-get install espeak-ng sox", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        cases = build_set(Path(tmp), args.limit)
        generated = time.perf_counter() - started
    started = time.perf_counter()
    humans = machines = false_pos = detected = notsure = beeps = beeps_found = 0
    audio_s = 0.0
    decide_ms: list[int] = []
    for label, is_machine, audio, tag in cases:
        pcm = audio.tobytes()
        audio_s += audio.size / RATE
        res = classify(pcm)
        decide_ms.append(res.decided_at_ms)
        if is_machine:
            machines += 1
            detected += res.verdict == AmdVerdict.MACHINE
        else:
            humans += 1
            if res.verdict == AmdVerdict.MACHINE:
                false_pos += 1
                print(f"FALSE POSITIVE: {label}: {res.reason}")
            notsure += res.verdict == AmdVerdict.NOTSURE
        if tag == "beep":
            beeps += 1
            beeps_found += BeepDetector().feed(pcm) is not None
        elif is_machine and BeepDetector().feed(pcm) is not None:
            print(f"beep reported in a greeting without one: {label}")
    elapsed = time.perf_counter() - started
    fp_rate = false_pos / humans if humans else 0.0
    det_rate = detected / machines if machines else 0.0
    beep_rate = beeps_found / beeps if beeps else 0.0
    print(f"humans {humans}: classified machine {false_pos} (false-positive rate {fp_rate:.2%}), not sure {notsure}")
    print(f"machines {machines}: detected {detected} (detection rate {det_rate:.2%})")
    print(f"beeps {beeps}: found {beeps_found} ({beep_rate:.2%})")
    print(f"median decision after {int(np.median(decide_ms))} ms of audio; "
          f"{audio_s / max(elapsed, 1e-9):.0f}x real time; set generated in {generated:.1f} s")  # fmt: skip
    print(json.dumps({
        "humans": humans, "machines": machines, "false_positive_rate": round(fp_rate, 4),
        "machine_detection_rate": round(det_rate, 4), "beep_detection_rate": round(beep_rate, 4),
        "human_notsure": notsure, "median_decision_ms": int(np.median(decide_ms)),
        "realtime_factor": round(audio_s / max(elapsed, 1e-9), 1),
    }))  # fmt: skip
    return 0 if false_pos == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
