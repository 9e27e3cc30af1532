"""G.711 tables against ITU reference values and error bounds."""

from __future__ import annotations

import numpy as np
import pytest

from telephony.rtp import g711


def test_reference_decode_values() -> None:
    assert g711.ULAW_DECODE[0xFF] == 0 and g711.ULAW_DECODE[0x7F] == 0
    assert g711.ULAW_DECODE[0x00] == -32124 and g711.ULAW_DECODE[0x80] == 32124
    assert g711.ALAW_DECODE[0xD5] == 8 and g711.ALAW_DECODE[0x55] == -8
    assert g711.ALAW_DECODE[0xAA] == 32256 and g711.ALAW_DECODE[0x2A] == -32256


def test_reference_encode_values() -> None:
    assert g711.ulaw_encode(np.array([0, -1, 32767, -32768], dtype=np.int16)) == bytes([0xFF, 0x7E, 0x80, 0x00])
    assert g711.alaw_encode(np.array([0, -1, 32767, -32768], dtype=np.int16)) == bytes([0xD5, 0x55, 0xAA, 0x2A])


def test_codes_survive_decode_encode_exactly() -> None:
    codes = bytes(range(256))
    assert g711.alaw_encode(g711.alaw_decode(codes)) == codes
    # u-law has two zero codes (0x7F is -0 and decodes to 0, which encodes as 0xFF).
    roundtrip = g711.ulaw_encode(g711.ulaw_decode(codes))
    assert [i for i in range(256) if roundtrip[i] != i] == [0x7F]


def test_roundtrip_error_is_bounded_by_the_segment_step() -> None:
    pcm = np.arange(-32768, 32768, 7, dtype=np.int32).astype(np.int16)
    for encode, decode in ((g711.ulaw_encode, g711.ulaw_decode), (g711.alaw_encode, g711.alaw_decode)):
        back = decode(encode(pcm)).astype(np.int32)
        error = np.abs(back - pcm.astype(np.int32))
        # Quantisation error stays under ~3.2% of the magnitude plus the smallest step.
        assert np.all(error <= np.abs(pcm.astype(np.int32)) * 0.032 + 16), int(error.max())


def test_matches_python_audioop_reference() -> None:
    audioop = pytest.importorskip("audioop")  # CPython's copy of the Sun reference code (gone in 3.13)
    pcm = np.arange(65536, dtype=np.uint16).view(np.int16)
    assert g711.ulaw_encode(pcm) == audioop.lin2ulaw(pcm.tobytes(), 2)
    assert g711.alaw_encode(pcm) == audioop.lin2alaw(pcm.tobytes(), 2)


def test_transcoding_tables_and_codec_objects() -> None:
    tone = (np.sin(np.arange(160) / 5) * 8000).astype(np.int16)
    ulaw = g711.get_encoder("PCMU").encode(tone)
    alaw = g711.transcode(ulaw, "PCMU", "PCMA")
    assert len(alaw) == 160
    error = np.abs(g711.get_decoder("PCMA").decode(alaw).astype(int) - tone.astype(int))
    assert error.max() < 400
    assert g711.transcode(ulaw, "PCMU", "PCMU") is ulaw
    assert g711.transcode(bytes([0xFF]), "PCMU", "PCMA") == bytes([0xD5])
    with pytest.raises(ValueError, match="only PCMU and PCMA"):
        g711.transcode(ulaw, "PCMU", "G722")
    with pytest.raises(TypeError, match="16-bit PCM"):
        g711.ulaw_encode(np.zeros(4, dtype=np.float32))
