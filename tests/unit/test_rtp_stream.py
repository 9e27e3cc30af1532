"""Pure RTP stream state: sender continuity, loss accounting, symmetric latching, media timeout."""

from __future__ import annotations

import random

from telephony.rtp.packet import RtpPacket, build_rtp
from telephony.rtp.stream import RtpReceiver, RtpSender

PHONE = ("192.0.2.10", 4000)
NAT = ("198.51.100.7", 61000)


def test_sender_sequence_and_timestamp_continuity() -> None:
    sender = RtpSender(rng=random.Random(1))
    ssrc, seq0, ts0 = sender.ssrc, sender.seq, sender.last_ts
    first = RtpPacket.parse(sender.packet(0, b"\xff" * 160, sender.timestamp_at(10.0), 10.0, marker=True))
    assert (first.ssrc, first.sequence_number, first.timestamp, first.marker) == (ssrc, seq0, ts0, True)
    # Silence for 1 s: the next talkspurt's timestamp moves on by 8000 samples.
    second = RtpPacket.parse(sender.packet(0, b"", sender.timestamp_at(11.0), 11.0))
    assert second.sequence_number == (seq0 + 1) & 0xFFFF
    assert second.timestamp == (ts0 + 8000) & 0xFFFFFFFF
    assert sender.packets == 2 and sender.octets == 160


def test_sender_wraps_sequence_and_timestamp() -> None:
    sender = RtpSender(ssrc=1, seq=0xFFFF, timestamp=0xFFFFFF00)
    sender.packet(0, b"", 0xFFFFFF00, 0.0)
    assert sender.seq == 0
    assert sender.timestamp_at(0.1) == (0xFFFFFF00 + 800) & 0xFFFFFFFF


def rtp(seq: int, ssrc: int = 7) -> bytes:
    return build_rtp(0, seq & 0xFFFF, seq * 160, ssrc, b"\xff" * 160)


def test_loss_accounting_with_wrap() -> None:
    receiver = RtpReceiver()
    receiver.start(0.0, PHONE)
    for seq in [65530, 65531, 65533, 65535, 0, 2, 3]:
        assert receiver.on_packet(PHONE, rtp(seq), 1.0)
    stats = receiver.stats()
    assert stats.expected == 10 and stats.packets == 7 and stats.lost == 3


def test_new_ssrc_starts_a_new_segment() -> None:
    receiver = RtpReceiver()
    receiver.start(0.0, PHONE)
    for seq in (1, 2, 4):
        receiver.on_packet(PHONE, rtp(seq), 1.0)
    for seq in (50000, 50001):
        receiver.on_packet(PHONE, rtp(seq, ssrc=9), 1.0)
    stats = receiver.stats()
    assert (stats.expected, stats.lost, stats.ssrc) == (6, 1, 9)


def test_latches_to_the_real_source_and_drops_others() -> None:
    receiver = RtpReceiver(relatch_after=2.0)
    receiver.start(0.0, PHONE)
    assert receiver.destination == PHONE
    assert receiver.on_packet(NAT, rtp(1), 1.0)  # media really comes from the NAT's address
    assert receiver.destination == NAT
    assert not receiver.on_packet(("203.0.113.66", 5000), rtp(2), 1.5)  # an injector is ignored
    assert receiver.destination == NAT and receiver.stats().foreign_dropped == 1
    # After 2 s of silence from the latched source a NAT rebinding is accepted.
    assert receiver.on_packet(("198.51.100.7", 61002), rtp(3), 3.6)
    assert receiver.destination == ("198.51.100.7", 61002)


def test_non_rtp_garbage_does_not_latch() -> None:
    receiver = RtpReceiver()
    receiver.start(0.0, PHONE)
    assert not receiver.on_packet(NAT, b"hello", 1.0)
    assert receiver.latched is None and receiver.destination == PHONE


def test_new_sdp_address_drops_the_latch() -> None:
    receiver = RtpReceiver()
    receiver.start(0.0, PHONE)
    receiver.on_packet(NAT, rtp(1), 1.0)
    receiver.start(5.0, PHONE)  # re-INVITE, same address: keep the latch
    assert receiver.destination == NAT
    receiver.start(6.0, ("192.0.2.99", 4000))
    assert receiver.destination == ("192.0.2.99", 4000)


def test_media_timeout_with_fake_clock() -> None:
    receiver = RtpReceiver(media_timeout=30.0)
    assert not receiver.timed_out(1000.0)  # not started: nothing expected
    receiver.start(100.0, PHONE)
    assert not receiver.timed_out(129.9)
    assert receiver.timed_out(130.0)
    receiver.on_packet(PHONE, rtp(1), 125.0)
    assert not receiver.timed_out(154.0)
    assert receiver.timed_out(155.0)
    # On hold (we only send) silence from the peer is fine; unhold re-arms from now.
    receiver.start(200.0, PHONE, expect_media=False)
    assert not receiver.timed_out(500.0)
    receiver.start(500.0, PHONE)
    assert not receiver.timed_out(529.0) and receiver.timed_out(530.0)
