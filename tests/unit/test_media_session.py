"""Loopback tests of the asyncio RTP endpoint, MediaSession, Bridge and Tap (127.0.0.1 / ::1 only, short)."""

from __future__ import annotations

import asyncio
import socket
import wave
from pathlib import Path

import numpy as np
import pytest

from telephony.aio.media_session import MediaSession, MediaSessionError
from telephony.aio.rtp import PortAllocator, open_rtp_endpoint
from telephony.media.bridge import Bridge
from telephony.media.player import tone
from telephony.rtp.packet import RtpPacket, build_rtp
from telephony.sdp import SdpNegotiationError, SessionDescription

pytestmark = pytest.mark.timeout(30)

RANGE = (31000, 31999)


async def pair(host: str = "127.0.0.1", **kwargs: object) -> tuple[MediaSession, MediaSession]:
    """Two sessions that negotiated with each other through real SDP text."""
    a = await MediaSession.open(host, port_range=RANGE, **kwargs)  # type: ignore[arg-type]
    b = await MediaSession.open(host, port_range=RANGE, **kwargs)  # type: ignore[arg-type]
    offer = SessionDescription.parse(a.offer(1).to_bytes())
    answer = SessionDescription.parse(b.answer(offer, 2).to_bytes())
    a.start(a.accept(answer))
    b.start()
    return a, b


def read_mono(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getframerate(), w.getsampwidth()) == (1, 8000, 2)
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)


async def test_ports_are_even_and_in_range_and_eaddrinuse_is_skipped() -> None:
    blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    blocker.bind(("127.0.0.1", 32000))
    try:
        allocator = PortAllocator((32000, 32003))  # only 32000 and 32002 are candidates
        endpoint = await open_rtp_endpoint("127.0.0.1", allocator=allocator)
        assert endpoint.local_port == 32002
        with pytest.raises(OSError, match="no free even RTP port"):
            await open_rtp_endpoint("127.0.0.1", allocator=allocator)
        endpoint.close()
        assert allocator.in_use == set()
    finally:
        blocker.close()


async def test_play_and_record_over_loopback(tmp_path: Path) -> None:
    a, b = await pair()
    assert a.local_port % 2 == 0 and RANGE[0] <= a.local_port <= RANGE[1]
    b.record_to(tmp_path / "rx.wav")
    await a.play(tone(1000, 0.3, 0.5))
    await asyncio.sleep(0.05)
    await b.close()
    await a.close()
    audio = read_mono(tmp_path / "rx.wav")
    assert 0.3 * 8000 <= len(audio) <= 0.6 * 8000
    loud = np.abs(audio) > 8000
    assert loud.sum() > 1000  # the tone arrived, decoded
    spectrum = np.abs(np.fft.rfft(audio[loud.argmax() : loud.argmax() + 1600]))
    assert abs(int(np.argmax(spectrum)) * 8000 / 1600 - 1000) <= 10
    assert b.stats["packets_rx"] == 15 and b.stats["packets_lost"] == 0
    assert a.stats["packets_tx"] == 15


async def test_dtmf_between_sessions_counted_once() -> None:
    a, b = await pair()
    digits: list[str] = []
    b.on_dtmf = digits.append
    await a.send_dtmf("12#", duration_ms=60, gap_ms=40)
    await asyncio.sleep(0.05)
    assert digits == ["1", "2", "#"]
    received = []
    await a.send_dtmf("5", duration_ms=40, gap_ms=0)
    await asyncio.sleep(0.05)
    await b.close()
    async for digit in b.dtmf():
        received.append(digit)
    assert received == ["1", "2", "#", "5"]
    await a.close()


async def test_echo_and_latching_to_the_real_source() -> None:
    media = await MediaSession.open("127.0.0.1", port_range=RANGE)
    phone = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    phone.bind(("127.0.0.1", 0))
    phone.setblocking(False)
    try:
        offer = SessionDescription.parse(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            "m=audio 9 RTP/AVP 8 101\r\na=rtpmap:101 telephone-event/8000\r\n"  # SDP port is wrong (NAT)
        )
        media.answer(offer, 5)
        media.start()
        media.start_echo()
        loop = asyncio.get_running_loop()
        sent = build_rtp(8, 10, 1000, 0x42, b"\x55" * 160)
        await loop.sock_sendto(phone, sent, ("127.0.0.1", media.local_port))
        data = await asyncio.wait_for(loop.sock_recv(phone, 2048), 2)
        echoed = RtpPacket.parse(data)
        assert echoed.payload == b"\x55" * 160 and echoed.payload_type == 8
        assert echoed.ssrc == media.sender.ssrc and echoed.marker
        assert media.remote == phone.getsockname()
    finally:
        phone.close()
        await media.close()


async def test_media_timeout_fires_once() -> None:
    a, b = await pair(media_timeout=0.2)
    fired: list[str] = []
    b.on_timeout = lambda: fired.append("b")
    await asyncio.sleep(0.45)
    assert fired == ["b"]
    await a.close()
    await b.close()


async def test_bridge_and_tap_over_loopback_ipv6(tmp_path: Path) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this host")
    customer, relay_c = await pair("::1")
    agent, relay_a = await pair("::1")
    recorded: list[tuple[np.ndarray, np.ndarray]] = []
    tap = relay_c.new_tap(lambda left, right: recorded.append((left.copy(), right.copy())), delay=0.05)
    bridge = Bridge(relay_c, relay_a, tap=tap)
    agent.record_to(tmp_path / "agent.wav")
    customer.record_to(tmp_path / "customer.wav")
    digits: list[str] = []
    agent.on_dtmf = digits.append
    await asyncio.gather(customer.play(tone(500, 0.4, 0.5)), agent.play(tone(1500, 0.4, 0.5)))
    await customer.send_dtmf("7", duration_ms=40)
    await asyncio.sleep(0.1)
    tap.close(asyncio.get_running_loop().time())
    for session in (customer, agent, relay_c, relay_a):
        await session.close()
    assert digits == ["7"]
    assert bridge.stats()["a_to_b_relayed"] >= 20 and bridge.stats()["b_to_a_relayed"] == 20
    heard_by_agent = read_mono(tmp_path / "agent.wav")
    heard_by_customer = read_mono(tmp_path / "customer.wav")
    for audio, freq in ((heard_by_agent, 500), (heard_by_customer, 1500)):
        loud = np.flatnonzero(np.abs(audio) > 8000)
        assert len(loud) > 1500
        segment = audio[loud[0] : loud[0] + 1600]
        assert abs(int(np.argmax(np.abs(np.fft.rfft(segment)))) * 5 - freq) <= 10
    left = np.concatenate([x for x, _ in recorded])
    right = np.concatenate([y for _, y in recorded])
    assert len(left) == len(right) and len(left) % 160 == 0
    # Both directions are there and time-aligned: they started together within a couple of frames.
    start_left = np.flatnonzero(np.abs(left) > 8000)[0]
    start_right = np.flatnonzero(np.abs(right) > 8000)[0]
    assert abs(int(start_left) - int(start_right)) <= 480


async def test_negotiation_failure_and_state_errors() -> None:
    media = await MediaSession.open("127.0.0.1", port_range=RANGE)
    g722_only = SessionDescription.parse(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 9\r\n"
    )
    with pytest.raises(SdpNegotiationError):
        media.answer(g722_only, 1)
    with pytest.raises(MediaSessionError, match="start"):
        await media.play(tone(400, 0.1))
    with pytest.raises(MediaSessionError, match="offer"):
        media.accept(g722_only)
    first = media.offer(1)
    again = media.offer(1)
    hold = media.offer(1, "sendonly")
    assert first.origin.session_version == again.origin.session_version == hold.origin.session_version - 1
    await media.close()
    with pytest.raises(MediaSessionError, match="closed"):
        media.start()
