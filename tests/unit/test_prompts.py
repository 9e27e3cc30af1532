"""Prompt library: the shipped set, WAV reading/writing, lookup order, generation and its cache."""

from __future__ import annotations

import json
import shutil
import wave

import numpy as np
import pytest

from ivr.prompts import (
    DEFAULT_PROMPTS,
    HOLD_MUSIC,
    SHIPPED_PROMPTS_DIR,
    PromptError,
    PromptLibrary,
    PromptNotFoundError,
    PromptToolMissingError,
    ensure_prompts,
    generate,
    hold_music,
    write_wav,
)
from telephony.media.wav import read_wav

needs_tts = pytest.mark.skipif(
    shutil.which("espeak-ng") is None or shutil.which("sox") is None, reason="espeak-ng and sox are not installed"
)


def test_shipped_set_is_complete_small_and_8khz_mono():
    library = PromptLibrary(SHIPPED_PROMPTS_DIR)
    expected = {*DEFAULT_PROMPTS, HOLD_MUSIC}
    assert expected <= set(library.names())
    for name in ["welcome", "menu_main", "closed", "invalid", "goodbye", "abandon_message", "survey_question"]:
        assert name in expected
    assert {f"position_{n}" for n in range(1, 21)} | {f"digit_{d}" for d in range(10)} <= expected
    total = 0
    for name in expected:
        samples = read_wav(library.path(name))  # refuses anything but 8 kHz mono
        assert len(samples) > 0.3 * 8000, name
        assert np.abs(samples.astype(np.int32)).max() > 3000, f"{name} is silent"
        total += library.path(name).stat().st_size
    assert total < 1_500_000


def test_pcm16_and_ulaw_round_trip(tmp_path):
    tone = (np.sin(np.arange(800) / 5) * 8000).astype(np.int16)
    write_wav(tmp_path / "p.wav", tone)
    with wave.open(str(tmp_path / "p.wav")) as w:  # PCM16 stays readable by the standard library
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()) == (8000, 1, 2, 800)
    assert read_wav(tmp_path / "p.wav").tolist() == tone.tolist()
    write_wav(tmp_path / "u.wav", tone, encoding="ulaw")
    decoded = read_wav(tmp_path / "u.wav")
    assert len(decoded) == 800
    assert np.abs(decoded.astype(np.int32) - tone).max() < 300  # G.711 quantisation
    assert (tmp_path / "u.wav").stat().st_size < (tmp_path / "p.wav").stat().st_size * 0.6


def test_library_lookup_order_cache_and_errors(tmp_path):
    site = tmp_path / "site"
    write_wav(site / "welcome.wav", np.full(100, 5, np.int16))
    library = PromptLibrary(site, SHIPPED_PROMPTS_DIR)
    assert library.path("welcome") == site / "welcome.wav"
    assert library.path("goodbye") == SHIPPED_PROMPTS_DIR / "goodbye.wav"
    first = library.load("welcome")
    assert first is library.load("welcome") and not first.flags.writeable
    with pytest.raises(PromptNotFoundError, match=r"prompt 'nope' not found in .*ensure_prompts"):
        library.load("nope")
    with pytest.raises(ValueError, match="bad prompt name"):
        library.path("../etc/passwd")
    (site / "wide.wav").parent.mkdir(exist_ok=True)
    with wave.open(str(site / "wide.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\0\0" * 100)
    with pytest.raises(PromptError, match=r"prompt 'wide': .*16000 Hz .* needs 8000 Hz mono; convert it with: sox"):
        library.load("wide")
    (site / "junk.wav").write_bytes(b"not a wav")
    with pytest.raises(PromptError, match="not a RIFF/WAVE file"):
        library.load("junk")
    joined = library.concat(["welcome", "welcome"], gap=0.01)
    assert len(joined) == 280 and (joined[100:180] == 0).all()


def test_hold_music_is_a_seamless_soft_loop():
    music = hold_music()
    assert len(music) == 8 * 8000
    assert abs(int(music[0])) < 50 and abs(int(music[-1])) < 200  # chords fade in and out: no click at the seam
    peak = np.abs(music.astype(np.int32)).max()
    assert 8000 < peak < 9000  # -12 dBFS
    spectrum = np.abs(np.fft.rfft(music.astype(np.float64)))
    freqs = np.fft.rfftfreq(len(music), 1 / 8000)
    assert spectrum[freqs > 1500].sum() < 0.01 * spectrum.sum()


def test_missing_tools_name_the_debian_packages(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(PromptToolMissingError, match=r"espeak-ng and sox \(apt-get install espeak-ng sox\)"):
        generate("hello", tmp_path / "x.wav")


@needs_tts
def test_generate_makes_8khz_mono_pcm16(tmp_path):
    out = generate("one two", tmp_path / "g.wav")
    with wave.open(str(out)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        assert 0.3 < w.getnframes() / 8000 < 3
    with pytest.raises(ValueError, match="empty prompt text"):
        generate("  ", tmp_path / "e.wav")


@needs_tts
def test_ensure_prompts_generates_once_and_respects_recordings(tmp_path):
    texts = {"alpha": "one", "beta": "two"}
    written = ensure_prompts(tmp_path, texts=texts, names=["alpha", "beta"])
    assert sorted(p.name for p in written) == ["alpha.wav", "beta.wav"]
    assert ensure_prompts(tmp_path, texts=texts, names=["alpha", "beta"]) == []  # cached on disk
    assert set(json.loads((tmp_path / ".prompts.json").read_text())) == {"alpha", "beta"}
    # A changed text is regenerated; a studio recording (not in the manifest) is left alone.
    write_wav(tmp_path / "gamma.wav", np.full(50, 9, np.int16))
    texts = {"alpha": "three", "beta": "two", "gamma": "four"}
    written = ensure_prompts(tmp_path, texts=texts, names=["alpha", "beta", "gamma"])
    assert [p.name for p in written] == ["alpha.wav"]
    assert read_wav(tmp_path / "gamma.wav").tolist() == [9] * 50
    with pytest.raises(PromptNotFoundError, match="no text for prompt 'delta'"):
        ensure_prompts(tmp_path, texts=texts, names=["delta"])
