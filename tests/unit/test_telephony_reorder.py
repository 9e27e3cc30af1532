"""Reordered RTP comes out of a leg's receive -> PCM path in order (see telephony/rtp/jitter.py).

Packets enter where the socket would deliver them (``MediaSession._on_datagram``) in a
shuffled order; the Tap that recording, AMD and supervision read places each one at its
RTP timestamp, so the PCM it emits is in sender order.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from telephony.aio.media_session import MediaSession
from telephony.media.tap import Tap
from telephony.rtp.g711 import ulaw_encode
from telephony.rtp.packet import build_rtp
from telephony.sdp import SessionDescription

pytestmark = pytest.mark.timeout(30)

FRAME = 160
SSRC = 0x1234ABCD


async def _session() -> tuple[MediaSession, tuple[str, int]]:
    near = await MediaSession.open("127.0.0.1", port_range=(32000, 32999))
    far = await MediaSession.open("127.0.0.1", port_range=(32000, 32999))
    answer = far.answer(SessionDescription.parse(near.offer(1).to_bytes()), 2)
    near.start(near.accept(SessionDescription.parse(answer.to_bytes())))
    remote = (far.local_host, far.local_port)
    await far.close()
    return near, remote


def _frame(level: int) -> bytes:
    return ulaw_encode(np.full(FRAME, level, dtype=np.int16))


@pytest.mark.parametrize("order", [[0, 2, 1, 3, 5, 4, 7, 6], [1, 0, 3, 2, 4, 7, 6, 5], [7, 6, 5, 4, 3, 2, 1, 0]])
async def test_reordered_packets_reach_the_tap_in_sender_order(order: list[int]) -> None:
    media, remote = await _session()
    chunks: list[np.ndarray] = []
    # The tap has been running for a second (as a recording has when packets arrive), so a
    # packet that arrives after a later one is still ahead of what the tap has emitted.
    now = asyncio.get_running_loop().time()
    tap = Tap(lambda left, right: chunks.append(left.copy()), now=now - 1.0, delay=0.2, first_flush=now + 60)
    media.add_tap(tap)
    try:
        levels = [1000 * (k + 1) for k in range(len(order))]  # packet k carries a flat level, by sequence
        for k in order:
            packet = build_rtp(0, 500 + k, 80_000 + k * FRAME, SSRC, _frame(levels[k]))
            media._on_datagram(packet, remote)
        media.remove_tap(tap)  # closes the tap: everything placed so far is emitted
    finally:
        await media.close()
    pcm = np.concatenate(chunks)
    frames = [pcm[i : i + FRAME] for i in range(0, len(pcm) - FRAME + 1, FRAME)]
    heard = [int(np.median(f)) for f in frames if np.abs(f).max() > 0]
    assert len(heard) == len(order)
    assert heard == sorted(heard), heard  # in sequence/timestamp order, whatever the arrival order
    assert all(abs(h - lvl) < 0.05 * lvl for h, lvl in zip(heard, levels, strict=True)), (heard, levels)
