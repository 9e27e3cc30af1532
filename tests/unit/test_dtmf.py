"""RFC 4733 telephone-events: payload format, once-only reporting, sender packet plans."""

from __future__ import annotations

import pytest

from telephony.rtp.dtmf import DtmfError, DtmfReceiver, DtmfSender, TelephoneEvent


def test_payload_roundtrip_and_known_bytes() -> None:
    event = TelephoneEvent(event=11, end=True, volume=10, duration=800)
    assert event.to_bytes() == bytes([11, 0x8A, 0x03, 0x20])
    assert TelephoneEvent.parse(event.to_bytes()) == event
    assert event.digit == "#"
    with pytest.raises(DtmfError, match="needs 4"):
        TelephoneEvent.parse(b"\x01\x02")


def _packets(digit_event: int, ts: int, updates: int = 5) -> list[tuple[int, bytes]]:
    out = [(ts, TelephoneEvent(digit_event, duration=160 * (k + 1)).to_bytes()) for k in range(updates)]
    end = TelephoneEvent(digit_event, end=True, duration=160 * updates).to_bytes()
    return [*out, (ts, end), (ts, end), (ts, end)]


def test_receiver_reports_each_press_once_despite_repeats_and_end_retransmissions() -> None:
    receiver = DtmfReceiver()
    stream = _packets(5, 1000) + _packets(5, 3000) + _packets(10, 5000)
    # Start packets repeated too (some stacks send the first one three times).
    stream.insert(1, stream[0])
    digits = [d for ts, payload in stream if (d := receiver.feed(ts, payload)) is not None]
    assert digits == ["5", "5", "*"]


def test_reordered_end_packet_of_an_old_event_is_ignored() -> None:
    receiver = DtmfReceiver()
    first = _packets(1, 1000)
    second = _packets(2, 3000)
    order = first[:-1] + second[:2] + first[-1:] + second[2:]
    digits = [d for ts, p in order if (d := receiver.feed(ts, p)) is not None]
    assert digits == ["1", "2"]


def test_only_end_packets_arrive_still_reports() -> None:
    receiver = DtmfReceiver()
    end = TelephoneEvent(9, end=True, duration=800).to_bytes()
    assert [receiver.feed(42, end) for _ in range(3)] == ["9", None, None]


def test_long_event_continuation_segment_is_not_a_new_press() -> None:
    receiver = DtmfReceiver()
    assert receiver.feed(0, TelephoneEvent(3, duration=0xFFFF).to_bytes()) == "3"
    assert receiver.feed(0xFFFF, TelephoneEvent(3, duration=160).to_bytes()) is None
    assert receiver.feed(0xFFFF + 1000, TelephoneEvent(3, duration=160).to_bytes()) == "3"


def test_sender_plan_timestamps_durations_marker_and_three_ends() -> None:
    plan = DtmfSender().plan("1#", duration_ms=100, gap_ms=60)
    first = [p for p in plan if p.timestamp_offset == 0]
    second = [p for p in plan if p.timestamp_offset == 1280]  # (100 + 60) ms * 8 samples/ms
    assert len(first) == 5 + 2 and len(second) == 7 and len(plan) == 14
    events = [TelephoneEvent.parse(p.payload) for p in first]
    assert [e.duration for e in events] == [160, 320, 480, 640, 800, 800, 800]
    assert [e.end for e in events] == [False] * 4 + [True] * 3
    assert [p.marker for p in first] == [True] + [False] * 6
    assert [p.at for p in first] == pytest.approx([0, 0.02, 0.04, 0.06, 0.08, 0.10, 0.12])
    assert second[0].at == pytest.approx(0.16) and second[0].marker
    assert {TelephoneEvent.parse(p.payload).event for p in second} == {11}


def test_sender_plan_feeds_receiver_exactly_once_per_digit() -> None:
    receiver = DtmfReceiver()
    plan = DtmfSender().plan("1122*#")
    digits = [d for p in plan if (d := receiver.feed(5000 + p.timestamp_offset, p.payload)) is not None]
    assert "".join(digits) == "1122*#"


def test_bad_digits_and_durations() -> None:
    with pytest.raises(DtmfError, match="not a DTMF digit"):
        DtmfSender().plan("12x")
    with pytest.raises(DtmfError, match="40-5000"):
        DtmfSender().plan("1", duration_ms=10)
