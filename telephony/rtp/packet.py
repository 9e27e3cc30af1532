"""RTP packets (RFC 3550 §5.1): header parse and build with precompiled structs.

:class:`RtpPacket` is the readable form (CSRC list, header extension §5.3.1, padding §5.1
stripped on parse). The relay hot path does not build objects: it uses :data:`HEADER`
(``struct.Struct("!BBHII")``) on the fixed 12 bytes and :func:`payload_offset` to skip CSRCs
and extensions, which is why both are public. :func:`is_rtcp` tells RTCP apart when it
arrives on the RTP port (RFC 5761 §4). Malformed input raises :class:`RtpError`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

__all__ = [
    "HEADER",
    "RTP_VERSION",
    "RtpError",
    "RtpPacket",
    "build_rtp",
    "is_rtcp",
    "payload_offset",
    "seq_delta",
    "ts_delta",
]

RTP_VERSION: Final = 2
HEADER: Final = struct.Struct("!BBHII")
_EXTENSION: Final = struct.Struct("!HH")
_V2_NO_EXTRAS: Final = 0x80  # version 2, no padding, no extension, CC = 0


class RtpError(ValueError):
    """A datagram that is not a valid RTP packet; the message says which field is wrong."""


def seq_delta(a: int, b: int) -> int:
    """Signed distance ``a - b`` between 16-bit sequence numbers (RFC 3550 A.1 wrap rules)."""
    return ((a - b + 0x8000) & 0xFFFF) - 0x8000


def ts_delta(a: int, b: int) -> int:
    """Signed distance ``a - b`` between 32-bit RTP timestamps."""
    return ((a - b + 0x80000000) & 0xFFFFFFFF) - 0x80000000


def is_rtcp(data: bytes) -> bool:
    """True for RTCP packet types 192-223 (RFC 5761 §4: SR, RR, SDES, BYE, APP ...)."""
    return len(data) >= 2 and 192 <= data[1] <= 223


def payload_offset(data: bytes) -> int:
    """Offset of the payload, after CSRCs and any header extension; raises :class:`RtpError`."""
    if len(data) < 12:
        raise RtpError(f"RTP packet of {len(data)} bytes is shorter than the 12-byte fixed header")
    first = data[0]
    if first >> 6 != RTP_VERSION:
        raise RtpError(f"RTP version is {first >> 6}, expected 2 (RFC 3550 §5.1)")
    offset = 12 + 4 * (first & 0x0F)
    if first & 0x10:
        if len(data) < offset + 4:
            raise RtpError("RTP header extension bit is set but the extension header is truncated")
        _, words = _EXTENSION.unpack_from(data, offset)
        offset += 4 + 4 * words
    if offset > len(data):
        raise RtpError(f"RTP header claims {offset} bytes but the packet has {len(data)}")
    return offset


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """One RTP packet (RFC 3550 §5.1). ``extension`` is (profile-defined id, data) or None."""

    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrc: tuple[int, ...] = ()
    extension: tuple[int, bytes] | None = None
    padding: int = 0  # bytes of padding removed on parse / to add on build

    def __post_init__(self) -> None:
        if not 0 <= self.payload_type <= 127:
            raise RtpError(f"payload type {self.payload_type} is outside 0-127")
        if not 0 <= self.sequence_number <= 0xFFFF:
            raise RtpError(f"sequence number {self.sequence_number} is outside 0-65535")
        if not 0 <= self.timestamp <= 0xFFFFFFFF or not 0 <= self.ssrc <= 0xFFFFFFFF:
            raise RtpError("timestamp and SSRC must be 32-bit unsigned integers")
        if len(self.csrc) > 15:
            raise RtpError(f"{len(self.csrc)} CSRCs given; RTP allows at most 15")
        if self.extension is not None and len(self.extension[1]) % 4:
            raise RtpError("RTP header extension data must be a multiple of 4 bytes (RFC 3550 §5.3.1)")
        if not 0 <= self.padding <= 255:
            raise RtpError(f"padding of {self.padding} bytes is outside 0-255")

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        offset = payload_offset(data)
        first, second, seq, ts, ssrc = HEADER.unpack_from(data)
        cc = first & 0x0F
        csrc = struct.unpack_from(f"!{cc}I", data, 12) if cc else ()
        extension: tuple[int, bytes] | None = None
        if first & 0x10:
            ext_at = 12 + 4 * cc
            profile, _ = _EXTENSION.unpack_from(data, ext_at)
            extension = (profile, bytes(data[ext_at + 4 : offset]))
        end = len(data)
        padding = 0
        if first & 0x20:
            padding = data[-1]
            if padding == 0 or end - padding < offset:
                raise RtpError(f"RTP padding count {padding} is impossible for a {end}-byte packet")
            end -= padding
        return cls(
            payload_type=second & 0x7F,
            sequence_number=seq,
            timestamp=ts,
            ssrc=ssrc,
            payload=bytes(data[offset:end]),
            marker=bool(second & 0x80),
            csrc=tuple(csrc),
            extension=extension,
            padding=padding,
        )

    def to_bytes(self) -> bytes:
        first = 0x80 | len(self.csrc)
        if self.padding:
            first |= 0x20
        if self.extension is not None:
            first |= 0x10
        parts = [
            HEADER.pack(
                first,
                (0x80 if self.marker else 0) | self.payload_type,
                self.sequence_number,
                self.timestamp,
                self.ssrc,
            )
        ]
        if self.csrc:
            parts.append(struct.pack(f"!{len(self.csrc)}I", *self.csrc))
        if self.extension is not None:
            parts.append(_EXTENSION.pack(self.extension[0], len(self.extension[1]) // 4))
            parts.append(self.extension[1])
        parts.append(self.payload)
        if self.padding:
            parts.append(bytes(self.padding - 1) + bytes([self.padding]))
        return b"".join(parts)


def build_rtp(payload_type: int, seq: int, timestamp: int, ssrc: int, payload: bytes, *, marker: bool = False) -> bytes:
    """The common case, fast: no CSRC, no extension, no padding."""
    return HEADER.pack(_V2_NO_EXTRAS, payload_type | 0x80 if marker else payload_type, seq, timestamp, ssrc) + payload
