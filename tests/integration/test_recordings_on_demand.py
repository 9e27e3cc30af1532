"""Agent-controlled recording of live ACD calls: on an ``on_demand`` queue nothing is recorded until
the agent keys ``*7``; ``*8`` pauses and ``*8`` again resumes, which leaves silence in the WAV and
a gap mark on the row. A queue whose policy is ``none`` refuses ``*7``."""

from __future__ import annotations

import asyncio
import wave
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from acd.service import AgentCodeRejected
from dialer.wiring import RecordingHookup
from recordings.models import Recording, RecordingStatus
from recordings.service import Policy, RecordingPaused, RecordingPolicy, RecordingResumed, RecordingService
from telephony.media.player import tone
from tests.integration.acd_harness import World, agent, queue, until, world

pytestmark = pytest.mark.timeout(40)
RATE = 8000


@asynccontextmanager
async def recorded_world(tmp_path: Path, policy: Policy) -> AsyncIterator[tuple[World, RecordingService]]:
    cfg = {"queues": [queue("q")], "agents": [agent("a")], "dids": {"100": "queue:q"}}
    async with world(tmp_path, cfg) as w:
        service = RecordingService(
            w.sessionmaker, tmp_path / "rec", bus=w.bus, queue_policies={"q": RecordingPolicy(policy)}
        )
        hookup = RecordingHookup(service, w.bus, lambda _campaign_id: None)
        hookup.attach(w.service)
        try:
            yield w, service
        finally:
            await hookup.close()


def read_stereo(path: Path) -> np.ndarray[Any, Any]:
    with wave.open(str(path)) as f:
        assert (f.getnchannels(), f.getframerate(), f.getsampwidth()) == (2, RATE, 2)
        return np.frombuffer(f.readframes(f.getnframes()), dtype="<i2").reshape(-1, 2)


async def test_on_demand_records_only_when_asked_and_pause_leaves_a_silent_gap(tmp_path: Path) -> None:
    async with recorded_world(tmp_path, Policy.ON_DEMAND) as (w, service):
        phone = await w.phone("a")
        await w.service.agent_login("a")
        caller = await w.call("100", "15550200")
        await until(lambda: w.state("a") == "on_call", what="agent on call")
        leg = phone.current
        talk = [
            asyncio.create_task(caller.play(tone(500, 1.0, 0.3), loop=True)),
            asyncio.create_task(leg.play(tone(1000, 1.0, 0.3), loop=True)),
        ]
        try:
            await asyncio.sleep(0.6)
            assert service.active(caller.id) is None, "on_demand: nothing is recorded before the agent asks"
            assert service.active_count == 0
            await leg.send_dtmf("*7")
            await until(lambda: service.active(caller.id) is not None, what="*7 starts the recording")
            handle = service.active(caller.id)
            assert handle is not None and handle.trigger == "on_demand"
            await asyncio.sleep(1.0)
            await leg.send_dtmf("*8")
            await until(lambda: handle.paused, what="*8 pauses")
            await asyncio.sleep(1.2)
            await leg.send_dtmf("*8")
            await until(lambda: not handle.paused, what="*8 again resumes")
            await asyncio.sleep(1.0)
        finally:
            for task in talk:
                task.cancel()
        await caller.hangup()
        summary = await asyncio.wait_for(handle.stop(), 5)
        assert summary.saved
        assert any(isinstance(e, RecordingPaused) and e.reason == "agent" for e in w.events)
        assert any(isinstance(e, RecordingResumed) for e in w.events)

        async with w.sessionmaker() as session:
            row = await session.get(Recording, handle.id)
        assert row is not None and row.status == RecordingStatus.COMPLETE
        assert (row.trigger, row.agent_id, row.queue) == ("on_demand", "a", "q")
        assert len(row.gaps) == 1 and row.gaps[0]["reason"] == "agent"
        gap = row.gaps[0]
        assert 1.1 <= gap["end_s"] - gap["start_s"] <= 2.6  # 1.2 s paused, plus keying the second *8

        audio = read_stereo(handle.path)
        start, end = int(gap["start"]), int(gap["end"])
        assert not audio[start:end].any(), "the paused span is silence"
        before, after = audio[max(0, start - RATE // 2) : start], audio[end : end + RATE // 2]
        assert np.abs(before[:, 0]).max() > 1000 and np.abs(before[:, 1]).max() > 1000  # both voices
        assert np.abs(after[:, 0]).max() > 1000 and np.abs(after[:, 1]).max() > 1000
        verbs = [(r.event, r.data1) for r in await w.rows() if r.event == "RECORDING"]
        assert verbs == [("RECORDING", "recording"), ("RECORDING", "paused"), ("RECORDING", "recording")]


async def test_policy_none_refuses_the_agent_s_record_code(tmp_path: Path) -> None:
    async with recorded_world(tmp_path, Policy.NONE) as (w, service):
        phone = await w.phone("a")
        await w.service.agent_login("a")
        caller = await w.call("100", "15550201")
        await until(lambda: w.state("a") == "on_call", what="agent on call")
        await phone.current.send_dtmf("*7")
        await until(lambda: bool(w.of(AgentCodeRejected)), what="*7 refused")
        assert "policy none" in w.of(AgentCodeRejected)[0].why
        assert service.active(caller.id) is None
        # *8 with nothing recording says so.
        await phone.current.send_dtmf("*8")
        await until(lambda: len(w.of(AgentCodeRejected)) == 2, what="*8 refused")
        assert "not being recorded" in w.of(AgentCodeRejected)[1].why
        await caller.hangup()
