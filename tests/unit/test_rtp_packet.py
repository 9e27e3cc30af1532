"""RTP header parse/build (RFC 3550 §5.1): roundtrips, CSRC/extension/padding, malformed input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from telephony.rtp.packet import RtpError, RtpPacket, build_rtp, is_rtcp, payload_offset, seq_delta, ts_delta

packets = st.builds(
    RtpPacket,
    payload_type=st.integers(0, 127),
    sequence_number=st.integers(0, 0xFFFF),
    timestamp=st.integers(0, 0xFFFFFFFF),
    ssrc=st.integers(0, 0xFFFFFFFF),
    payload=st.binary(max_size=200),
    marker=st.booleans(),
    csrc=st.lists(st.integers(0, 0xFFFFFFFF), max_size=15).map(tuple),
    extension=st.none() | st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=12).map(lambda b: b[: len(b) // 4 * 4])),
    padding=st.integers(0, 255),
)


@given(packets)
def test_roundtrip(packet: RtpPacket) -> None:
    assert RtpPacket.parse(packet.to_bytes()) == packet


@given(st.binary(max_size=40))
def test_arbitrary_bytes_parse_or_raise_rtperror(data: bytes) -> None:
    try:
        packet = RtpPacket.parse(data)
    except RtpError:
        return
    assert len(packet.to_bytes()) == len(data)


def test_known_header_bytes() -> None:
    data = build_rtp(0, 0x1234, 0xDEADBEEF, 0x01020304, b"\xff" * 160, marker=True)
    assert data[:12] == bytes.fromhex("80 80 1234 deadbeef 01020304")
    packet = RtpPacket.parse(data)
    assert packet.marker and packet.payload_type == 0 and len(packet.payload) == 160
    assert payload_offset(data) == 12


def test_csrc_and_extension_offsets() -> None:
    packet = RtpPacket(8, 1, 2, 3, b"abc", csrc=(7, 9), extension=(0xBEDE, b"\x10\x01\x00\x00"))
    data = packet.to_bytes()
    assert payload_offset(data) == 12 + 8 + 4 + 4
    assert data[0] == 0x80 | 0x10 | 2


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"\x80\x00\x00", "shorter than the 12-byte"),
        (bytes.fromhex("40000001000000020000000300"), "version is 1"),
        (bytes.fromhex("83000001000000020000000300"), "claims 24 bytes"),
        (bytes.fromhex("90000001000000020000000300"), "extension header is truncated"),
        (bytes.fromhex("a0000001000000020000000300"), "padding count 0"),
        (bytes.fromhex("a000000100000002000000030103"), "padding count 3"),
    ],
)
def test_malformed_packets(data: bytes, fragment: str) -> None:
    with pytest.raises(RtpError, match=fragment):
        RtpPacket.parse(data)


def test_field_validation() -> None:
    with pytest.raises(RtpError, match="payload type"):
        RtpPacket(128, 0, 0, 0)
    with pytest.raises(RtpError, match="multiple of 4"):
        RtpPacket(0, 0, 0, 0, extension=(1, b"abc"))


def test_rtcp_detection_and_wrap_arithmetic() -> None:
    assert is_rtcp(bytes([0x80, 200]) + bytes(6))  # sender report
    assert not is_rtcp(build_rtp(0, 1, 1, 1, b""))
    assert not is_rtcp(build_rtp(72 - 64, 1, 1, 1, b"", marker=True))  # PT 8 with marker = 0x88
    assert seq_delta(2, 65534) == 4 and seq_delta(65534, 2) == -4
    assert ts_delta(10, 0xFFFFFFF0) == 26
