"""Jitter buffer: ordering, duplicates, late packets, loss skipping, sequence wrap."""

from __future__ import annotations

import pytest

from telephony.rtp.jitter import JitterBuffer


def push_all(buffer: JitterBuffer[int], seqs: list[int]) -> list[int]:
    out: list[int] = []
    for seq in seqs:
        out.extend(buffer.push(seq, seq))
    return out


def test_reorders_within_depth() -> None:
    buffer: JitterBuffer[int] = JitterBuffer(depth=3)
    assert push_all(buffer, [10, 12, 11, 13, 15, 14]) == [10, 11, 12, 13, 14, 15]
    assert buffer.lost == 0


def test_drops_duplicates_and_late() -> None:
    buffer: JitterBuffer[int] = JitterBuffer(depth=3)
    assert push_all(buffer, [1, 2, 2, 4, 4, 3, 1]) == [1, 2, 3, 4]
    # A repeat of a played packet counts as late; a repeat of a held one as a duplicate.
    assert buffer.duplicates == 1 and buffer.late == 2


def test_skips_a_lost_packet_when_full() -> None:
    buffer: JitterBuffer[int] = JitterBuffer(depth=2)
    assert push_all(buffer, [1, 3]) == [1]
    assert buffer.push(4, 4) == [3, 4]
    assert buffer.lost == 1
    assert buffer.push(2, 2) == []  # arrives after we gave up on it
    assert buffer.late == 1


def test_sequence_wrap() -> None:
    buffer: JitterBuffer[int] = JitterBuffer(depth=3)
    assert push_all(buffer, [65534, 0, 65535, 1]) == [65534, 65535, 0, 1]


def test_large_jump_resynchronises_and_flush_drains() -> None:
    buffer: JitterBuffer[int] = JitterBuffer(depth=3)
    assert push_all(buffer, [100, 102]) == [100]
    assert buffer.push(40000, 40000) == [102, 40000]
    assert buffer.push(40002, 40002) == []
    assert buffer.flush() == [40002]
    assert len(buffer) == 0


def test_depth_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        JitterBuffer(depth=0)
