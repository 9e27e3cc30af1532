"""Hold time in AHT: the agent's phone holds the customer with a re-INVITE (sendonly, then
sendrecv again); the ACD times it and the call's CallCompleted, the agent's and the queue's
figures carry it, so AHT = talk + hold + wrap-up."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from acd import CallCompleted
from acd.service import CustomerHeld
from tests.integration.acd_harness import agent, queue, until, world

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize("direction", ["sendonly", "inactive"])
async def test_agent_hold_by_reinvite_counts_as_hold_time(tmp_path: Path, direction: str) -> None:
    cfg = {"queues": [queue("q", wrapup_s=0.3)], "agents": [agent("a")], "dids": {"100": "queue:q"}}
    async with world(tmp_path, cfg) as w:
        phone = await w.phone("a")
        await w.service.agent_login("a")
        caller = await w.call("100", "15550600")
        await until(lambda: w.state("a") == "on_call", what="agent on call")
        leg = phone.current
        await asyncio.sleep(0.3)
        if direction == "sendonly":
            await leg.hold()
        else:
            await leg.hold("inactive")
        await until(lambda: [e.held for e in w.of(CustomerHeld)] == [True], what="the ACD sees the hold")
        await asyncio.sleep(1.0)
        await leg.unhold()
        await until(lambda: [e.held for e in w.of(CustomerHeld)] == [True, False], what="and the unhold")
        assert 0.9 <= w.of(CustomerHeld)[1].on_hold_s <= 1.6
        await asyncio.sleep(0.3)
        await leg.hangup()
        await asyncio.wait_for(caller.wait_ended(), 5)
        await until(lambda: w.state("a") == "ready", what="wrap-up over")

        [done] = [e for e in w.of(CallCompleted) if e.call_id == caller.id]
        assert done.by == "agent"
        assert 0.9 <= done.on_hold_s <= 1.6 and done.talk_s >= 0.4
        stats = w.service.agent_stats("a")
        assert stats.on_hold_s == pytest.approx(done.on_hold_s)
        assert stats.aht_s == pytest.approx(done.talk_s + done.on_hold_s + stats.wrap_s)
        q = w.service.queue_stats("q")
        assert q.on_hold_s == pytest.approx(done.on_hold_s) and q.aht_s is not None and q.aht_s > done.talk_s + 0.9
        verbs = [(r.event, r.data1) for r in await w.rows() if r.call_id == caller.id]
        assert ("HOLD", "") in verbs and ("UNHOLD", "1") in verbs
