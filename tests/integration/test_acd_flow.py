"""The live ACD over real SIP on loopback: inbound call -> queue -> ring-mode agent, abandon, wrap-up,
auto-pause, queue_log rows and MQTT state events, clean shutdown."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from acd.service import AgentStatus, QueueStatus
from telephony.media.player import tone
from tests.integration.acd_harness import agent, queue, until, world

pytestmark = pytest.mark.timeout(30)


def dominant_hz(samples: np.ndarray) -> float:
    loud = np.flatnonzero(np.abs(samples) > 3000)
    assert len(loud) > 800, "no audio heard"
    seg = samples[loud[0] : loud[0] + 1600].astype(np.float64)
    return float(np.argmax(np.abs(np.fft.rfft(seg)))) * 8000 / len(seg)


async def test_inbound_call_rings_agent_bridges_audio_and_logs(tmp_path: Path) -> None:
    cfg = {"queues": [queue("q")], "agents": [agent("a")], "dids": {"100": "queue:q"}}
    async with world(tmp_path, cfg) as w:
        phone = await w.phone("a")
        await w.service.agent_login("a")
        assert w.state("a") == "ready"
        caller = await w.call("100", "15551234")
        await until(lambda: bool(phone.answered), what="agent answers")
        await until(lambda: w.state("a") == "on_call", what="on_call")
        leg = phone.current
        assert leg.media is not None and caller.media is not None
        recorded = tmp_path / "agent.wav"
        leg.media.record_to(recorded)
        await caller.play(tone(500, 0.5, 0.5))
        await asyncio.sleep(0.1)
        leg.media.stop_recording()
        import wave

        with wave.open(str(recorded), "rb") as f:
            heard = np.frombuffer(f.readframes(f.getnframes()), dtype=np.int16)
        assert abs(dominant_hz(heard) - 500) < 20
        await caller.hangup()
        await asyncio.wait_for(leg.wait_ended(), 5)
        await until(lambda: w.state("a") == "ready", what="agent ready again (no wrap-up)")
        verbs = [r.event for r in await w.rows() if r.call_id == caller.id]
        assert verbs[:3] == ["ENTERQUEUE", "CONNECT", "COMPLETECALLER"]
        enter = (await w.rows("ENTERQUEUE"))[0]
        assert (enter.queue, enter.data2, enter.data3) == ("q", "15551234", "1")
        states = [e.state for e in w.of(AgentStatus) if e.agent_id == "a"]
        assert states[:4] == ["logged_out", "ready", "offered", "on_call"]
        assert w.service.queue_stats("q").answered == 1


async def test_abandon_while_queued_logs_position_and_wait(tmp_path: Path) -> None:
    cfg = {"queues": [queue("q", hold={"enabled": True, "first_after_s": 0.1})], "dids": {"100": "queue:q"}}
    async with world(tmp_path, cfg) as w:
        first = await w.call("100", "1001")
        second = await w.call("100", "1002")
        await until(lambda: len(w.service.calls_in_line("q")) == 2, what="two callers queued")
        await asyncio.sleep(0.4)
        await second.hangup()
        await until(lambda: len(w.service.calls_in_line("q")) == 1, what="abandon")
        rows = await w.rows("ABANDON")
        assert len(rows) == 1 and rows[0].call_id == second.id
        position, original, wait = int(rows[0].data1), int(rows[0].data2), int(rows[0].data3)
        assert (position, original) == (2, 2) and wait >= 0
        stats = w.service.queue_stats("q")
        assert stats.abandoned == 1 and stats.waiting == 1 and stats.longest_wait_s > 0.3
        assert any(isinstance(e, QueueStatus) and e.queue == "q" for e in w.events)
        # hold music was playing to the waiting caller
        assert first.media is not None and int(first.media.stats["packets_rx"] or 0) > 5


async def test_wrapup_holds_the_next_caller_until_it_ends(tmp_path: Path) -> None:
    cfg = {"queues": [queue("q", wrapup_s=0.6)], "agents": [agent("a")], "dids": {"100": "queue:q"}}
    async with world(tmp_path, cfg) as w:
        phone = await w.phone("a")
        await w.service.agent_login("a")
        c1 = await w.call("100", "2001")
        await until(lambda: len(phone.answered) == 1)
        await until(lambda: w.state("a") == "on_call")
        await c1.hangup()
        await until(lambda: w.state("a") == "wrap_up", what="wrap-up")
        ended_at = asyncio.get_running_loop().time()
        await w.call("100", "2002")
        await until(lambda: len(phone.offers) == 2, what="second offer")
        assert phone.offered_at[1] - ended_at >= 0.5  # not offered during wrap-up
        rows = await w.rows("WRAPUPSTART")
        assert rows and rows[0].agent == "a" and rows[0].data1 == "1"


async def test_auto_pause_after_unanswered_offers(tmp_path: Path) -> None:
    cfg = {
        "queues": [queue("q", ring_timeout_s=0.5, retry_s=0.1)],
        "agents": [agent("a")],
        "dids": {"100": "queue:q"},
        "max_no_answer": 2,
    }
    async with world(tmp_path, cfg) as w:
        phone = await w.phone("a", "ignore")
        await w.service.agent_login("a")
        await w.call("100", "3001")
        await until(lambda: w.state("a") == "paused", timeout=5, what="auto-pause")
        assert len(phone.offers) == 2
        await until(lambda: all(o.ended for o in phone.offers), what="ringing legs cancelled")
        ring = await w.rows("RINGNOANSWER")
        assert [r.data2 for r in ring] == ["timeout", "timeout"]
        pause = await w.rows("PAUSE")
        assert pause[-1].agent == "a" and (pause[-1].data1, pause[-1].data2) == ("no-answer", "1")


async def test_rejecting_agent_is_skipped_for_the_next(tmp_path: Path) -> None:
    cfg = {
        "queues": [queue("q", strategy="top-down", agent_order=["a", "b"])],
        "agents": [agent("a"), agent("b")],
        "dids": {"100": "queue:q"},
    }
    async with world(tmp_path, cfg) as w:
        pa = await w.phone("a", "reject")
        pb = await w.phone("b")
        await w.service.agent_login("a")
        await w.service.agent_login("b")
        await w.call("100", "4001")
        await until(lambda: bool(pb.answered), what="b answers after a rejects")
        assert len(pa.offers) == 1
        rows = await w.rows("RINGNOANSWER")
        assert rows[0].agent == "a" and rows[0].data2 == "rejected"


async def test_clean_shutdown_ends_calls_and_closes_records(tmp_path: Path) -> None:
    cfg = {"queues": [queue("q")], "agents": [agent("a"), agent("b")], "dids": {"100": "queue:q"}}
    w_ctx = world(tmp_path, cfg)
    w = await w_ctx.__aenter__()
    try:
        pa = await w.phone("a")
        await w.phone("b", "ignore")
        await w.service.agent_login("a")
        talking = await w.call("100", "5001")
        await until(lambda: w.state("a") == "on_call")
        await w.service.agent_login("b")
        waiting = await w.call("100", "5002")
        await until(lambda: w.state("b") == "offered", what="b ringing")
        await w.service.stop()
        for call in (talking, waiting, pa.current):
            await asyncio.wait_for(call.wait_ended(), 5)
        async with w.sessionmaker() as session:
            from sqlalchemy import select

            from acd.models import QueueLogRow

            rows = list((await session.execute(select(QueueLogRow))).scalars().all())
        verbs = [(r.event, r.agent) for r in rows]
        assert ("COMPLETECALLER", "a") in verbs
        assert ("ABANDON", "NONE") in verbs
        assert ("LOGOFF", "a") in verbs and ("LOGOFF", "b") in verbs
        assert w.state("a") == "logged_out"
    finally:
        await w_ctx.__aexit__(None, None, None)
