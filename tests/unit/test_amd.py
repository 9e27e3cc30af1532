"""Answering-machine detection on greetings generated at run time with espeak-ng and sox."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from dialer.amd import AmdConfig, AmdVerdict, AnsweringMachineDetector, BeepDetector, classify, detect_beep

RATE = 8000
TOOLS = [t for t in ("espeak-ng", "sox") if shutil.which(t) is None]

if TOOLS and os.environ.get("CI"):
    pytest.fail(f"AMD tests need {' and '.join(TOOLS)} on CI: run scripts/setup --test (apt-get install espeak-ng sox)",
                pytrace=False)  # fmt: skip
needs_tts = pytest.mark.skipif(bool(TOOLS), reason=f"needs {', '.join(TOOLS)} (apt-get install espeak-ng sox)")


def speak(tmp: Path, text: str, voice: str = "en-us", speed: int = 160) -> np.ndarray:
    wav, raw = tmp / "t.wav", tmp / "t.raw"
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(wav), text], check=True, capture_output=True)
    subprocess.run(["sox", str(wav), "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer", str(raw)],
                   check=True, capture_output=True)  # fmt: skip
    x = np.fromfile(raw, dtype=np.int16)
    loud = np.nonzero(np.abs(x.astype(np.int32)) > 300)[0]
    return x[loud[0] : loud[-1] + 1]


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), dtype=np.int16)


def tone(seconds: float = 0.5, hz: float = 1000.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * 32767 * np.sin(2 * np.pi * hz * t)).astype(np.int16)


def noisy(x: np.ndarray, dbfs: float = -45.0, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0, 32768 * 10 ** (dbfs / 20), x.size)
    return np.clip(x + noise, -32768, 32767).astype(np.int16)


@needs_tts
@pytest.mark.parametrize(
    ("text", "voice", "speed"),
    [("Hello?", "en-us", 160), ("Yes, hello", "en-gb", 130), ("Hi, who is this?", "en-us+f3", 130)],
)
def test_short_greetings_are_human(tmp_path: Path, text: str, voice: str, speed: int) -> None:
    audio = np.concatenate([silence(0.4), speak(tmp_path, text, voice, speed), silence(2.0)])
    for variant in (audio, noisy(audio)):
        res = classify(variant.tobytes())
        assert res.verdict == AmdVerdict.HUMAN, res
        assert res.decided_at_ms < 3500


@needs_tts
def test_long_greeting_is_machine_and_the_beep_is_found(tmp_path: Path) -> None:
    text = "Hi, you've reached John Smith. I can't take your call, please leave a message after the tone."
    greeting = speak(tmp_path, text)
    audio = np.concatenate([silence(0.3), greeting, silence(0.5), tone(0.5), silence(0.5)])
    res = classify(noisy(audio).tobytes())
    assert res.verdict == AmdVerdict.MACHINE
    assert "greeting longer" in res.reason
    assert res.decided_at_ms < 0.3 * 1000 + AmdConfig().greeting_max_ms + 200  # decided while it still talks
    beep_ms = detect_beep(noisy(audio).tobytes())
    beep_start_ms = (0.3 + greeting.size / RATE + 0.5) * 1000
    assert beep_ms is not None
    assert beep_start_ms < beep_ms < beep_start_ms + 500
    assert detect_beep(np.concatenate([greeting, silence(1.0)]).tobytes()) is None  # speech is not a beep


def test_streaming_feed_in_odd_chunks_matches_offline() -> None:
    rng = np.random.default_rng(1)
    # a synthetic "voice": 300 ms of harmonic buzz, then silence
    t = np.arange(int(0.3 * RATE)) / RATE
    buzz = (3000 * (np.sin(2 * np.pi * 140 * t) + 0.6 * np.sin(2 * np.pi * 280 * t)
                    + 0.4 * np.sin(2 * np.pi * 700 * t))).astype(np.int16)  # fmt: skip
    audio = np.concatenate([silence(0.3), buzz, silence(1.5)]) + rng.normal(0, 20, int(2.1 * RATE)).astype(np.int16)
    offline = classify(audio.tobytes())
    det = AnsweringMachineDetector()
    pcm = audio.tobytes()
    streamed = None
    for i in range(0, len(pcm), 334):  # chunks that do not align with 20 ms frames
        streamed = det.feed(pcm[i : i + 334]) or streamed
    assert streamed == offline
    assert offline.verdict == AmdVerdict.HUMAN, offline


def test_silence_is_not_sure_never_machine() -> None:
    res = classify(silence(5.0).tobytes())
    assert res.verdict == AmdVerdict.NOTSURE
    assert res.decided_at_ms == AmdConfig().initial_silence_ms


def test_beep_detector_on_pure_tones() -> None:
    assert detect_beep(np.concatenate([silence(0.2), tone(0.4, 1000.0)]).tobytes()) is not None
    assert BeepDetector().feed(tone(0.1, 1000.0).tobytes()) is None  # too short
    assert detect_beep(tone(0.5, 3000.0).tobytes()) is None  # outside the beep band
    det = BeepDetector()
    det.feed(np.concatenate([silence(0.2), tone(0.4, 850.0)]).tobytes())
    assert det.beep_hz is not None and abs(det.beep_hz - 850.0) <= 50.0


def test_bad_config_and_input_are_explained() -> None:
    with pytest.raises(ValueError, match="webrtcvad"):
        AmdConfig(frame_ms=25)
    with pytest.raises(ValueError, match="even number of bytes"):
        AnsweringMachineDetector().feed(b"\x00\x01\x02")
    with pytest.raises(ValueError, match="sample rate"):
        AnsweringMachineDetector(sample_rate=11025)
