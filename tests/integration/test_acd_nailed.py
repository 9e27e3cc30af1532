"""Nailed-up agents over real SIP: login by dialling *55, customers bridged into the agent's leg
with a beep and audio both ways, DTMF agent codes, connect_outbound for the campaign runner,
and the RTP media timeout ending a call whose BYE was lost."""

from __future__ import annotations

import asyncio
import wave
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from acd.models import CallbackRow
from acd.service import AgentCodeRejected, Connected, DispositionSet, NoAgent
from telephony.aio.ua import Call
from telephony.media.player import tone
from tests.integration.acd_harness import HOST, agent, answer_soon, queue, until, world

pytestmark = pytest.mark.timeout(40)


def heard(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as f:
        return np.frombuffer(f.readframes(f.getnframes()), dtype=np.int16)


def dominant_hz(samples: np.ndarray) -> float:
    loud = np.flatnonzero(np.abs(samples) > 3000)
    assert len(loud) > 800, "no audio heard"
    seg = samples[loud[0] : loud[0] + 1600].astype(np.float64)
    return float(np.argmax(np.abs(np.fft.rfft(seg)))) * 8000 / len(seg)


NAILED = {
    "queues": [queue("q", wrapup_s=0.3)],
    "agents": [agent("n", mode="nailed")],
    "dids": {"100": "queue:q"},
}


async def test_customer_is_bridged_into_the_nailed_leg_with_audio_both_ways(tmp_path: Path) -> None:
    async with world(tmp_path, NAILED) as w:
        phone = await w.phone("n")
        leg = await phone.login_nailed(w.port)
        await until(lambda: w.state("n") == "ready", what="LOGIN over the nailed leg")
        t0 = asyncio.get_running_loop().time()
        caller = await w.call("100", "6001")
        await until(lambda: w.state("n") == "on_call", what="bridged")
        assert asyncio.get_running_loop().time() - t0 < 2.0
        assert phone.offers == []  # nothing rang: the customer came in on the nailed leg
        assert leg.media is not None and caller.media is not None
        await asyncio.sleep(0.05)
        leg.media.record_to(tmp_path / "agent.wav")
        caller.media.record_to(tmp_path / "caller.wav")
        await asyncio.gather(caller.play(tone(500, 0.4, 0.5)), leg.play(tone(1500, 0.4, 0.5)))
        await asyncio.sleep(0.1)
        leg.media.stop_recording()
        caller.media.stop_recording()
        assert abs(dominant_hz(heard(tmp_path / "agent.wav")) - 500) < 20
        assert abs(dominant_hz(heard(tmp_path / "caller.wav")) - 1500) < 20
        await caller.hangup()
        await until(lambda: w.state("n") == "wrap_up", what="wrap-up after the customer left")
        assert not leg.ended  # the nailed leg stays up
        await until(lambda: w.state("n") == "ready", what="wrap-up timer")
        await leg.hangup()
        await until(lambda: w.state("n") == "logged_out", what="LOGOFF when the nailed leg ends")
        verbs = [r.event for r in await w.rows() if r.agent == "n"]
        assert verbs[0] == "LOGIN" and "CONNECT" in verbs and "COMPLETECALLER" in verbs and verbs[-1] == "LOGOFF"


async def test_agent_dtmf_codes(tmp_path: Path) -> None:
    async with world(tmp_path, NAILED) as w:
        phone = await w.phone("n")
        leg = await phone.login_nailed(w.port)
        await until(lambda: w.state("n") == "ready")
        await leg.send_dtmf("*23")
        await until(lambda: w.state("n") == "paused", what="*23 pauses")
        assert w.service.agent_info("n").pause_reason == "training"
        await leg.send_dtmf("*1")
        await until(lambda: w.state("n") == "ready", what="*1 ready")
        caller = await w.call("100", "6002")
        await until(lambda: w.state("n") == "on_call")
        await leg.send_dtmf("*542#")
        await until(lambda: bool(w.of(DispositionSet)), what="disposition")
        assert w.of(DispositionSet)[0].code == "42" and w.of(DispositionSet)[0].call_id == caller.id
        await leg.send_dtmf("*0")
        await asyncio.wait_for(caller.wait_ended(), 5)
        assert caller.ended_by == "remote" and not leg.ended
        # Tomorrow 10:30 (the parser's zone is UTC here): a callback already due would dial at once.
        later = (datetime.now(UTC) + timedelta(days=1)).replace(hour=10, minute=30, second=0, microsecond=0)
        await leg.send_dtmf(f"*6{later:%y%m%d%H%M}#")
        await until(lambda: len(w.service._callbacks) == 1, what="callback scheduled")
        await leg.send_dtmf("*62001011030#")  # 1 Jan 2020: in the past, refused rather than dialled at once
        await until(lambda: bool(w.of(AgentCodeRejected)), what="past callback refused")
        assert "in the past" in w.of(AgentCodeRejected)[0].why and len(w.service._callbacks) == 1
        await leg.send_dtmf("*4")
        await until(lambda: len(w.of(AgentCodeRejected)) == 2, what="invalid code refused")
        await leg.send_dtmf("*9")
        await asyncio.wait_for(leg.wait_ended(), 5)
        await until(lambda: w.state("n") == "logged_out")
        rows = await w.rows()
        assert [(r.event, r.data1) for r in rows if r.event in ("PAUSE", "UNPAUSE")][:2] == [
            ("PAUSE", "training"),
            ("UNPAUSE", "training"),
        ]
        assert any(r.event == "COMPLETEAGENT" and r.call_id == caller.id for r in rows)
        assert any(r.event == "DISPOSITION" and r.data1 == "42" for r in rows)
        scheduled = [r for r in rows if r.event == "CALLBACKSCHEDULED"]
        assert scheduled and scheduled[0].data2 == "6002"
        await asyncio.sleep(0.1)
        async with w.sessionmaker() as session:
            cb = (await session.execute(select(CallbackRow))).scalars().one()
        assert cb.state == "scheduled" and cb.owner_agent == "n" and cb.number == "6002"
        assert cb.scheduled_for is not None and cb.scheduled_for.replace(tzinfo=None) == later.replace(tzinfo=None)


async def test_connect_outbound_bridges_a_nailed_agent_fast_or_says_no_agent(tmp_path: Path) -> None:
    async with world(tmp_path, NAILED) as w:
        phone = await w.phone("n")
        await phone.login_nailed(w.port)
        await until(lambda: w.state("n") == "ready")
        customers = await w.customer_ua("7001")
        customers.on_incoming = answer_soon
        out = await w.server.call(f"sip:7001@{HOST}:{customers.port}")
        await asyncio.wait_for(out.wait_answered(), 5)
        result = await w.service.connect_outbound(out, "q", number="7001")
        assert isinstance(result, Connected) and result.agent_id == "n" and result.waited_s < 1.0
        assert w.state("n") == "on_call"
        second: Call = await w.server.call(f"sip:7001@{HOST}:{customers.port}")
        await asyncio.wait_for(second.wait_answered(), 5)
        t0 = asyncio.get_running_loop().time()
        none = await w.service.connect_outbound(second, "q")
        assert isinstance(none, NoAgent) and none.reason == "no-agent-ready"
        assert asyncio.get_running_loop().time() - t0 < 0.1
        await out.hangup()
        await until(lambda: w.state("n") == "wrap_up")


async def test_lost_bye_is_caught_by_the_media_timeout(tmp_path: Path) -> None:
    cfg = {"queues": [queue("q")], "agents": [agent("a")], "dids": {"100": "queue:q"}}
    async with world(tmp_path, cfg, media_timeout=1.0) as w:
        phone = await w.phone("a")
        await w.service.agent_login("a")
        caller = await w.call("100", "8001")
        await until(lambda: w.state("a") == "on_call")
        # The caller keeps talking; the agent's phone went silent (its BYE would be lost).
        talk = asyncio.create_task(caller.play(tone(400, 1.0, 0.3), loop=True))
        try:
            await until(lambda: w.state("a") != "on_call", timeout=4, what="media timeout ends the agent leg")
            await asyncio.wait_for(phone.current.wait_ended(), 3)
            await asyncio.wait_for(caller.wait_ended(), 3)
        finally:
            talk.cancel()
        rows = await w.rows("COMPLETEAGENT")
        assert rows and rows[0].call_id == caller.id
        assert w.state("a") == "ready"
