"""Recording real calls between our user agents on loopback, with the metadata row in SQLite.

The customer's phone plays 500 Hz and the agent's 1000 Hz; the file must be stereo 8 kHz PCM16
with 500 Hz on the left and 1000 Hz on the right (by FFT), its row must describe it exactly,
and a pause must leave silence and a gap entry.
"""

from __future__ import annotations

import asyncio
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infra.db import create_engine, create_sessionmaker, migrate
from recordings.models import Recording, RecordingStatus
from recordings.recorder import sha256_file
from recordings.service import RecordingMeta, RecordingService, RecordingStarted, RecordingStopped
from telephony.aio.ua import Call, UAConfig, UserAgent
from telephony.media.bridge import Bridge

pytestmark = pytest.mark.timeout(60)
RATE = 8000


def tone(freq: float, seconds: float, amplitude: int = 8000) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (np.sin(2 * np.pi * freq * t) * amplitude).astype(np.int16)


def read_stereo(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getframerate(), w.getsampwidth()) == (2, RATE, 2)
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)


def voiced(audio: np.ndarray) -> np.ndarray:
    """From the first to the last non-zero frame (a sampled tone has exact zeros: keep them)."""
    nz = np.flatnonzero((audio != 0).any(axis=1))
    assert len(nz), "the recording is silent"
    return audio[nz[0] : nz[-1] + 1]


def peak_hz(x: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(x.astype(float) * np.hanning(len(x))))
    return float(np.argmax(spectrum) * RATE / len(x))


def band_energy(x: np.ndarray, freq: float) -> float:
    spectrum = np.abs(np.fft.rfft(x.astype(float) * np.hanning(len(x))))
    k = round(freq * len(x) / RATE)
    return float(spectrum[max(k - 3, 0) : k + 4].sum())


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'dialer.db'}")
    await migrate(engine)
    try:
        yield create_sessionmaker(engine)
    finally:
        await engine.dispose()


@pytest.fixture
async def uas() -> AsyncIterator[list[UserAgent]]:
    agents = [UserAgent(UAConfig(host="127.0.0.1", port=0, user=f"ua{i}", registrar=False)) for i in range(3)]
    for ua in agents:
        await ua.start()
    try:
        yield agents
    finally:
        for ua in agents:
            await ua.close()


async def connect(caller: UserAgent, callee: UserAgent) -> tuple[Call, Call]:
    out = await caller.call(f"sip:x@127.0.0.1:{callee.port}")
    inc = await asyncio.wait_for(callee.incoming().__anext__(), 5)
    await inc.answer()
    await asyncio.wait_for(out.wait_answered(), 5)
    return out, inc


async def load_row(db: async_sessionmaker[AsyncSession], recording_id: str) -> Recording:
    async with db() as session:
        row = await session.get(Recording, recording_id)
    assert row is not None
    return row


async def test_customer_left_agent_right_on_a_two_party_call(
    uas: list[UserAgent], db: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    """The dialer side of the call is the agent: left is what its leg receives, right what it sends."""
    from infra.bus import EventBus

    customer_ua, agent_ua, _ = uas
    bus = EventBus()
    events = bus.subscribe(types=(RecordingStarted, RecordingStopped))
    service = RecordingService(db, tmp_path / "rec", bus=bus)
    customer, agent = await connect(customer_ua, agent_ua)
    assert agent.media is not None
    handle = await service.start(
        "call-500-1000", agent.media, None, RecordingMeta(agent_id="a7", campaign="spring", queue="sales")
    )
    row = await load_row(db, handle.id)
    assert row.status == RecordingStatus.RECORDING and row.sha256 is None  # written at start
    await asyncio.gather(customer.play(tone(500, 2.0)), agent.play(tone(1000, 2.0)))
    summary = await handle.stop(outcome="completed")
    await customer.hangup()

    audio = read_stereo(handle.path)
    assert len(audio) >= int(1.6 * RATE)
    loud = voiced(audio)
    left, right = loud[:, 0], loud[:, 1]
    assert abs(peak_hz(left) - 500) < 10 and abs(peak_hz(right) - 1000) < 10
    assert band_energy(left, 1000) < 0.01 * band_energy(left, 500)  # no cross-talk
    assert band_energy(right, 500) < 0.01 * band_energy(right, 1000)

    row = await load_row(db, handle.id)
    assert row.status == RecordingStatus.COMPLETE and summary.saved
    assert row.call_id == "call-500-1000" and row.agent_id == "a7" and row.campaign == "spring"
    assert row.queue == "sales" and row.outcome == "completed" and row.trigger == "all"
    assert (tmp_path / "rec" / row.path) == handle.path
    assert row.path.startswith(handle.started_at.strftime("%Y/%m/%d/"))
    assert row.size == handle.path.stat().st_size
    assert row.sha256 == sha256_file(handle.path)
    assert row.duration == pytest.approx(len(audio) / RATE)
    assert row.gaps == []
    assert row.ended_at is not None and row.ended_at >= row.started_at
    got: list[object] = []
    while len(got) < 2:
        got.append(await asyncio.wait_for(events.__anext__(), 1))
    assert isinstance(got[0], RecordingStarted) and isinstance(got[1], RecordingStopped)
    assert got[1].sha256 == row.sha256
    assert service.active("call-500-1000") is None


async def test_bridged_call_recorded_from_the_bridge(
    uas: list[UserAgent], db: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    """Customer -> dialer -> agent, bridged by the dialer: the ACD's case."""
    customer_ua, dialer_ua, agent_ua = uas
    service = RecordingService(db, tmp_path / "rec")
    customer, customer_leg = await connect(customer_ua, dialer_ua)
    agent_leg, agent = await connect(dialer_ua, agent_ua)
    assert customer_leg.media is not None and agent_leg.media is not None
    bridge = Bridge(customer_leg.media, agent_leg.media)
    handle = await service.start("bridged-1", customer_leg.media, bridge, RecordingMeta(agent_id="a1"))
    await asyncio.gather(customer.play(tone(500, 2.0)), agent.play(tone(1000, 2.0)))
    await handle.stop()
    bridge.stop()
    await customer.hangup()
    await agent.hangup()

    audio = read_stereo(handle.path)
    loud = voiced(audio)
    assert len(loud) >= int(1.5 * RATE)
    assert abs(peak_hz(loud[:, 0]) - 500) < 10 and abs(peak_hz(loud[:, 1]) - 1000) < 10
    row = await load_row(db, handle.id)
    assert row.sha256 == sha256_file(handle.path) and row.size == handle.path.stat().st_size


async def test_two_unbridged_legs_each_give_their_received_voice(
    uas: list[UserAgent], db: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    customer_ua, dialer_ua, agent_ua = uas
    service = RecordingService(db, tmp_path / "rec")
    customer, customer_leg = await connect(customer_ua, dialer_ua)
    agent_leg, agent = await connect(dialer_ua, agent_ua)
    assert customer_leg.media is not None and agent_leg.media is not None
    handle = await service.start("legs-1", customer_leg.media, agent_leg.media)
    await asyncio.gather(customer.play(tone(500, 1.5)), agent.play(tone(1000, 1.5)))
    await handle.stop()
    await customer.hangup()
    await agent.hangup()
    audio = read_stereo(handle.path)
    loud = voiced(audio)
    assert len(loud) >= RATE
    assert abs(peak_hz(loud[:, 0]) - 500) < 10 and abs(peak_hz(loud[:, 1]) - 1000) < 10


async def test_pause_leaves_silence_and_a_gap_in_the_row(
    uas: list[UserAgent], db: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    customer_ua, agent_ua, _ = uas
    service = RecordingService(db, tmp_path / "rec")
    customer, agent = await connect(customer_ua, agent_ua)
    assert agent.media is not None
    handle = await service.start("paused-1", agent.media)

    async def card_number_read() -> None:
        await asyncio.sleep(1.0)
        handle.pause("card number")
        assert handle.paused
        await asyncio.sleep(1.0)
        handle.resume()

    await asyncio.gather(customer.play(tone(500, 3.0)), agent.play(tone(1000, 3.0)), card_number_read())
    summary = await handle.stop()
    await customer.hangup()

    row = await load_row(db, handle.id)
    assert len(row.gaps) == 1
    gap = row.gaps[0]
    assert gap["reason"] == "card number"
    assert 0.7 <= gap["end_s"] - gap["start_s"] <= 1.6
    assert (gap["start"], gap["end"]) == (summary.info.gaps[0].start, summary.info.gaps[0].end)
    audio = read_stereo(handle.path)
    assert (audio[gap["start"] : gap["end"]] == 0).all()
    # Both tones are there before and after the gap.
    before, after = audio[: gap["start"]], audio[gap["end"] :]
    for part in (before, after):
        loud = voiced(part)
        assert len(loud) > RATE // 4
        assert abs(peak_hz(loud[:, 0]) - 500) < 20 and abs(peak_hz(loud[:, 1]) - 1000) < 20


async def test_on_demand_starts_once_and_a_second_recording_gets_its_own_file(
    uas: list[UserAgent], db: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    customer_ua, agent_ua, _ = uas
    service = RecordingService(db, tmp_path / "rec")
    customer, agent = await connect(customer_ua, agent_ua)
    assert agent.media is not None
    first = await service.start_on_demand("od-1", agent.media, None, RecordingMeta(agent_id="a2"))
    assert await service.start_on_demand("od-1", agent.media, None, RecordingMeta(agent_id="a2")) is first
    with pytest.raises(ValueError, match="already being recorded"):
        await service.start("od-1", agent.media)
    await asyncio.sleep(0.3)
    await first.stop()
    second = await service.start_on_demand("od-1", agent.media, None, RecordingMeta(agent_id="a2"))
    await asyncio.sleep(0.3)
    await second.stop()
    await customer.hangup()
    assert first.path != second.path and first.path.exists() and second.path.exists()
    for handle in (first, second):
        row = await load_row(db, handle.id)
        assert row.trigger == "on_demand" and row.status == RecordingStatus.COMPLETE
