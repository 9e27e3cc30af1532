"""G.711 u-law and A-law (ITU-T G.711, RFC 3551 §4.5.14) with numpy lookup tables.

The tables are computed once at import from the ITU reference algorithm (the well-known
Sun Microsystems ``g711.c`` that G.191 ships): decoding is a 256-entry int16 table indexed by
the code byte, encoding a 65536-entry table indexed by the sample's bit pattern. A whole
buffer therefore converts in one vectorised ``take``. The u-law <-> A-law tables are bytes
so a relay transcodes a packet with ``bytes.translate`` without touching numpy.

The :class:`Encoder`/:class:`Decoder` pair is the small codec interface of aiortc's
``codecs/base.py``: PCM16 numpy arrays in, payload bytes out, and back.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "ALAW_DECODE",
    "ALAW_ENCODE",
    "ALAW_SILENCE",
    "ALAW_TO_ULAW",
    "DECODE_TABLES",
    "ENCODE_TABLES",
    "SILENCE_BYTE",
    "ULAW_DECODE",
    "ULAW_ENCODE",
    "ULAW_SILENCE",
    "ULAW_TO_ALAW",
    "AlawDecoder",
    "AlawEncoder",
    "Decoder",
    "Encoder",
    "Pcm16",
    "UlawDecoder",
    "UlawEncoder",
    "alaw_decode",
    "alaw_encode",
    "get_decoder",
    "get_encoder",
    "transcode",
    "ulaw_decode",
    "ulaw_encode",
]

Pcm16 = npt.NDArray[np.int16]

_SEG_UEND: Final = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF], dtype=np.int32)
_SEG_AEND: Final = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF], dtype=np.int32)
_BIAS: Final = 0x84
_CLIP: Final = 8159


def _build_ulaw_decode() -> Pcm16:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = (((u & 0x0F) << 3) + _BIAS) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, _BIAS - t, t - _BIAS).astype(np.int16)


def _build_alaw_decode() -> Pcm16:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    t = np.where(seg == 0, t + 8, t + 0x108)
    t = np.where(seg > 1, t << np.maximum(seg - 1, 0), t)
    return np.where(a & 0x80, t, -t).astype(np.int16)


def _all_samples() -> npt.NDArray[np.int32]:
    # Index i of an encode table is the uint16 bit pattern of the sample.
    return np.arange(65536, dtype=np.uint16).view(np.int16).astype(np.int32)


def _build_ulaw_encode() -> npt.NDArray[np.uint8]:
    pcm = _all_samples() >> 2
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    pcm = np.minimum(np.abs(pcm), _CLIP) + (_BIAS >> 2)
    seg = np.searchsorted(_SEG_UEND, pcm, side="left")
    uval = (seg << 4) | ((pcm >> np.minimum(seg + 1, 31)) & 0x0F)
    return np.where(seg >= 8, 0x7F ^ mask, uval ^ mask).astype(np.uint8)


def _build_alaw_encode() -> npt.NDArray[np.uint8]:
    pcm = _all_samples() >> 3
    mask = np.where(pcm >= 0, 0xD5, 0x55)
    pcm = np.where(pcm >= 0, pcm, -pcm - 1)
    seg = np.searchsorted(_SEG_AEND, pcm, side="left")
    quant = np.where(seg < 2, pcm >> 1, pcm >> np.minimum(seg, 31)) & 0x0F
    aval = (seg << 4) | quant
    return np.where(seg >= 8, 0x7F ^ mask, aval ^ mask).astype(np.uint8)


ULAW_DECODE: Final = _build_ulaw_decode()
ALAW_DECODE: Final = _build_alaw_decode()
ULAW_ENCODE: Final = _build_ulaw_encode()
ALAW_ENCODE: Final = _build_alaw_encode()
for _table in (ULAW_DECODE, ALAW_DECODE, ULAW_ENCODE, ALAW_ENCODE):
    _table.flags.writeable = False

#: Codes that decode to (near) zero: u-law 0xFF -> 0, A-law 0xD5 -> +8.
ULAW_SILENCE: Final = 0xFF
ALAW_SILENCE: Final = 0xD5
SILENCE_BYTE: Final[dict[str, int]] = {"PCMU": ULAW_SILENCE, "PCMA": ALAW_SILENCE}
DECODE_TABLES: Final[dict[str, Pcm16]] = {"PCMU": ULAW_DECODE, "PCMA": ALAW_DECODE}
ENCODE_TABLES: Final[dict[str, npt.NDArray[np.uint8]]] = {"PCMU": ULAW_ENCODE, "PCMA": ALAW_ENCODE}

#: ``payload.translate(ULAW_TO_ALAW)`` transcodes a u-law payload to A-law via linear PCM.
ULAW_TO_ALAW: Final = ALAW_ENCODE[ULAW_DECODE.view(np.uint16)].tobytes()
ALAW_TO_ULAW: Final = ULAW_ENCODE[ALAW_DECODE.view(np.uint16)].tobytes()


def _codes(payload: bytes | bytearray | memoryview | npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    if isinstance(payload, np.ndarray):
        return payload
    return np.frombuffer(payload, dtype=np.uint8)


def ulaw_decode(payload: bytes | bytearray | memoryview | npt.NDArray[np.uint8]) -> Pcm16:
    return ULAW_DECODE[_codes(payload)]


def alaw_decode(payload: bytes | bytearray | memoryview | npt.NDArray[np.uint8]) -> Pcm16:
    return ALAW_DECODE[_codes(payload)]


def _as_pcm16(pcm: npt.ArrayLike) -> Pcm16:
    array = np.asarray(pcm)
    if array.dtype != np.int16:
        raise TypeError(f"G.711 encodes 16-bit PCM; got an array of {array.dtype} (convert with .astype(np.int16))")
    return array


def ulaw_encode(pcm: npt.ArrayLike) -> bytes:
    return ULAW_ENCODE[_as_pcm16(pcm).view(np.uint16)].tobytes()


def alaw_encode(pcm: npt.ArrayLike) -> bytes:
    return ALAW_ENCODE[_as_pcm16(pcm).view(np.uint16)].tobytes()


def transcode(payload: bytes, source: str, target: str) -> bytes:
    """Convert a G.711 payload between codecs (identity when they match)."""
    if source == target:
        return payload
    if (source, target) == ("PCMU", "PCMA"):
        return payload.translate(ULAW_TO_ALAW)
    if (source, target) == ("PCMA", "PCMU"):
        return payload.translate(ALAW_TO_ULAW)
    raise ValueError(f"cannot transcode {source} to {target}; only PCMU and PCMA are supported")


class Encoder(ABC):
    """PCM16 in, payload out (aiortc ``codecs/base.py`` shape, minus the frame objects)."""

    name: str
    payload_type: int

    @abstractmethod
    def encode(self, pcm: Pcm16) -> bytes: ...


class Decoder(ABC):
    name: str
    payload_type: int

    @abstractmethod
    def decode(self, payload: bytes) -> Pcm16: ...


class UlawEncoder(Encoder):
    name = "PCMU"
    payload_type = 0

    def encode(self, pcm: Pcm16) -> bytes:
        return ulaw_encode(pcm)


class AlawEncoder(Encoder):
    name = "PCMA"
    payload_type = 8

    def encode(self, pcm: Pcm16) -> bytes:
        return alaw_encode(pcm)


class UlawDecoder(Decoder):
    name = "PCMU"
    payload_type = 0

    def decode(self, payload: bytes) -> Pcm16:
        return ulaw_decode(payload)


class AlawDecoder(Decoder):
    name = "PCMA"
    payload_type = 8

    def decode(self, payload: bytes) -> Pcm16:
        return alaw_decode(payload)


def get_encoder(codec: str) -> Encoder:
    if codec == "PCMU":
        return UlawEncoder()
    if codec == "PCMA":
        return AlawEncoder()
    raise ValueError(f"no G.711 encoder for {codec!r}; use 'PCMU' or 'PCMA'")


def get_decoder(codec: str) -> Decoder:
    if codec == "PCMU":
        return UlawDecoder()
    if codec == "PCMA":
        return AlawDecoder()
    raise ValueError(f"no G.711 decoder for {codec!r}; use 'PCMU' or 'PCMA'")
