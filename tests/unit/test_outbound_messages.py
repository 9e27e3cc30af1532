"""Campaign messages and per-campaign AMD settings: the abandon message says the company and the
callback number, a machine gets its message after the beep or the end of its greeting, caller ID
and AMD thresholds are validated.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from dialer.amd import AmdConfig, MessageCue
from dialer.campaigns import CampaignSettings
from dialer.runner import campaign_messages
from ivr.prompts import (
    SHIPPED_PROMPTS_DIR,
    PromptLibrary,
    campaign_message_names,
    company_prompt_name,
    ensure_company_prompt,
    write_wav,
)

HAS_TTS = bool(shutil.which("espeak-ng") and shutil.which("sox"))


def _settings(**kw: object) -> CampaignSettings:
    return CampaignSettings.model_validate({"caller_id": "+442079460000", **kw})


def test_the_message_names_the_company_and_spells_the_callback_number() -> None:
    names = campaign_message_names("abandon", company_prompt="company_acme", callback_number="+442079460001")
    assert names == [
        "abandon_busy", "message_call_from", "company_acme", "message_call_back",
        *(f"digit_{d}" for d in "442079460001"), "message_goodbye",
    ]  # fmt: skip
    assert campaign_message_names("machine", company_prompt=None, callback_number=None) == [
        "machine_hello",
        "message_goodbye",
    ]
    assert company_prompt_name("Acme Insurance Ltd.") == "company_acme_insurance_ltd"
    assert company_prompt_name("春季保险").startswith("company_") and company_prompt_name("春季保险").isascii()


def test_a_different_callback_number_is_heard_as_different_audio(tmp_path: Path) -> None:
    library = PromptLibrary(tmp_path, SHIPPED_PROMPTS_DIR)
    a, machine_a = campaign_messages(library, _settings(callback_number="+442079460001"))
    b, _ = campaign_messages(library, _settings(callback_number="+442079460009"))
    generic, _ = campaign_messages(library, _settings())
    assert a is not None and b is not None and machine_a is not None
    assert not np.array_equal(a, b), "the last digit differs, so does the audio"
    assert np.array_equal(generic, library.load("abandon_message")), "no company, no number: the generic message"
    expected = library.concat(campaign_message_names("abandon", company_prompt=None, callback_number="+442079460001"))
    assert np.array_equal(a, expected)
    assert not np.array_equal(machine_a, a), "the machine hears its own greeting"
    # A site's own recording under the campaign's abandon_prompt wins.
    write_wav(tmp_path / "abandon.wav", np.full(800, 1000, dtype=np.int16))
    own, _ = campaign_messages(library, _settings(callback_number="+442079460001"))
    assert own is not None and len(own) == 800


@pytest.mark.skipif(not HAS_TTS, reason="espeak-ng and sox speak the company name")
def test_the_company_name_spoken_at_create_time_is_in_the_message(tmp_path: Path) -> None:
    path = ensure_company_prompt(tmp_path, "Acme Insurance")
    assert path is not None and path.name == "company_acme_insurance.wav"
    library = PromptLibrary(tmp_path, SHIPPED_PROMPTS_DIR)
    with_company, _ = campaign_messages(
        library, _settings(company_name="Acme Insurance", callback_number="+442079460001")
    )
    without, _ = campaign_messages(library, _settings(callback_number="+442079460001"))
    assert with_company is not None and without is not None
    company = library.load("company_acme_insurance")
    assert len(with_company) > len(without) + len(company) // 2


def test_caller_id_and_callback_number_must_be_e164() -> None:
    for bad in ("12345", "+1", "0207 946 0000", "+99912345678901234"):
        with pytest.raises(ValidationError, match=r"E\.164"):
            _settings(caller_id=bad)
    with pytest.raises(ValidationError, match="callback_number"):
        _settings(callback_number="call us")
    assert _settings(caller_id="+44 (20) 7946-0000").caller_id == "+442079460000"
    assert CampaignSettings().caller_id is None, "unset while a campaign is being set up"


def test_amd_thresholds_are_per_campaign_and_validated() -> None:
    s = _settings(amd=True, amd_thresholds={"greeting_max_ms": 3000, "total_analysis_ms": 6000})
    config = s.amd_thresholds.config()
    assert isinstance(config, AmdConfig)
    assert (config.greeting_max_ms, config.total_analysis_ms, config.after_greeting_silence_ms) == (3000, 6000, 800)
    with pytest.raises(ValidationError, match="after_greeting_silence_ms"):
        _settings(amd_thresholds={"after_greeting_silence_ms": 100, "between_words_silence_ms": 150})
    with pytest.raises(ValidationError, match="total_analysis_ms"):
        _settings(amd_thresholds={"greeting_max_ms": 6000})
    with pytest.raises(ValidationError, match="vad_mode"):
        _settings(amd_thresholds={"vad_mode": 4})
    with pytest.raises(ValidationError, match="on_machine"):
        _settings(on_machine="voicemail")


def _tone(hz: float, seconds: float, level: float = 8000.0) -> bytes:
    t = np.arange(int(seconds * 8000)) / 8000
    return (np.sin(2 * np.pi * hz * t) * level).astype(np.int16).tobytes()


def _noise(seconds: float, level: float = 3000.0, seed: int = 1) -> bytes:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(seconds * 8000)) * level).astype(np.int16).tobytes()


def test_the_message_cue_is_the_beep_or_the_end_of_the_greeting() -> None:
    silence = bytes(1600 * 2)
    cue = MessageCue()
    assert cue.feed(_noise(1.0)) is None, "the greeting is still playing"
    assert cue.feed(bytes(800 * 2)) is None, "a short pause is not the end"
    assert cue.feed(_tone(1000.0, 0.4)) == "beep"
    assert cue.feed(silence) == "beep", "decided once"
    no_beep = MessageCue(AmdConfig(greeting_end_silence_ms=1000))
    assert no_beep.feed(silence) is None, "silence before any greeting is not its end"
    assert no_beep.feed(_noise(1.5)) is None
    assert no_beep.feed(bytes(int(0.9 * 8000) * 2)) is None
    assert no_beep.feed(bytes(int(0.2 * 8000) * 2)) == "silence"
