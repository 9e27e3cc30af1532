"""Routing through real SIP calls: every strategy once, escalation steps, VIP priority (contact from
the dialer's contacts table), sticky agent with its fallback, and supervisor assignment.

Each strategy scenario is built so that its choice differs from what longest-idle would pick.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from dialer.models import Contact
from telephony.sip.uri import SipURI
from tests.integration.acd_harness import Phone, World, agent, queue, until, world

pytestmark = pytest.mark.timeout(40)


def caller_of(phone: Phone, i: int = -1) -> str:
    return SipURI.parse(phone.offers[i].remote).user or ""


async def one_call(w: World, number: str) -> None:
    """A caller reaches an agent, talks briefly and hangs up; the agent is ready again after."""
    call = await w.call("100", number)
    await until(
        lambda: w.service._customers.get(call.id) is not None and w.service._customers[call.id].phase == "connected"
    )
    await asyncio.sleep(0.3)
    await call.hangup()
    await asyncio.sleep(0.1)


async def login(w: World, *ids: str) -> None:
    for aid in ids:
        await w.service.agent_login(aid)
        await asyncio.sleep(0.02)  # distinct idle-since times


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [("longest-idle", "b"), ("top-down", "a"), ("skill-weighted", "b")],
)
async def test_single_pick_strategies(tmp_path: Path, strategy: str, expected: str) -> None:
    cfg = {
        "queues": [queue("q", strategy=strategy, skill="x", agent_order=["a", "b", "c"])],
        "agents": [
            agent("a", skills={"x": 5}),
            agent("b", skills={"x": 9}),
            agent("c", skills={"x": 3}),
        ],
        "dids": {"100": "queue:q"},
    }
    async with world(tmp_path, cfg) as w:
        phones = {aid: await w.phone(aid) for aid in "abc"}
        # login order c, b, a ... except for longest-idle where b must have waited longest
        await login(w, *(("b", "c", "a") if strategy == "longest-idle" else ("c", "a", "b")))
        await w.call("100", "1000")
        await until(lambda: sum(len(p.offers) for p in phones.values()) == 1, what="one offer")
        assert [aid for aid, p in phones.items() if p.offers] == [expected]


async def test_round_robin_rotates(tmp_path: Path) -> None:
    cfg = {
        "queues": [queue("q", strategy="round-robin", agent_order=["a", "b"])],
        "agents": [agent("a"), agent("b")],
        "dids": {"100": "queue:q"},
    }
    async with world(tmp_path, cfg) as w:
        pa, pb = await w.phone("a"), await w.phone("b")
        await login(w, "b", "a")
        for n in ("1", "2", "3"):
            await one_call(w, n)
        assert [caller_of(pa, i) for i in range(len(pa.offers))] == ["1", "3"]
        assert [caller_of(pb, i) for i in range(len(pb.offers))] == ["2"]


async def test_ring_all_rings_everyone_and_cancels_the_losers(tmp_path: Path) -> None:
    cfg = {"queues": [queue("q", strategy="ring-all")], "agents": [agent("a"), agent("b")], "dids": {"100": "queue:q"}}
    async with world(tmp_path, cfg) as w:
        pa = await w.phone("a")
        pb = await w.phone("b", "ignore")
        pa.answer_delay = 0.3
        await login(w, "a", "b")
        await w.call("100", "1000")
        await until(lambda: bool(pa.answered), what="a answers")
        assert len(pb.offers) == 1
        await asyncio.wait_for(pb.offers[0].wait_ended(), 5)
        assert pb.offers[0].outcome is not None and pb.offers[0].outcome.outcome.value == "cancelled"
        rows = await w.rows("RINGCANCELED")
        assert rows and rows[0].agent == "b" and rows[0].data2 == "answered-elsewhere"


async def test_random_offers_exactly_one_member(tmp_path: Path) -> None:
    cfg = {"queues": [queue("q", strategy="random")], "agents": [agent("a"), agent("b")], "dids": {"100": "queue:q"}}
    async with world(tmp_path, cfg) as w:
        phones = [await w.phone("a"), await w.phone("b")]
        await login(w, "a", "b")
        for n in ("1", "2", "3", "4"):
            await one_call(w, n)
        assert sum(len(p.offers) for p in phones) == 4 and all(len(p.answered) == len(p.offers) for p in phones)


@pytest.mark.parametrize("strategy", ["fewest-calls", "least-talk-time"])
async def test_history_strategies_prefer_the_less_busy_agent(tmp_path: Path, strategy: str) -> None:
    cfg = {"queues": [queue("q", strategy=strategy)], "agents": [agent("a"), agent("b")], "dids": {"100": "queue:q"}}
    async with world(tmp_path, cfg) as w:
        pa, pb = await w.phone("a"), await w.phone("b")
        await login(w, "a")
        await w.service.agent_login("b", paused_reason="break")
        await one_call(w, "1")  # a: one call, some talk time
        await w.service.agent_ready("b")  # b: idle since now, later than a -> longest-idle would pick a
        await w.call("100", "2")
        await until(lambda: bool(pb.offers), what="b offered")
        assert len(pa.offers) == 1


async def test_escalation_widens_the_skill_level_over_waiting_time(tmp_path: Path) -> None:
    cfg = {
        "queues": [queue("q", skill="x", escalation=[[0, 7], [0.6, 1]])],
        "agents": [agent("a", skills={"x": 3})],
        "dids": {"100": "queue:q"},
    }
    async with world(tmp_path, cfg) as w:
        pa = await w.phone("a")
        await login(w, "a")
        t0 = asyncio.get_running_loop().time()
        await w.call("100", "1000")
        await until(lambda: bool(pa.offers), what="offer after escalation")
        assert pa.offered_at[0] - t0 >= 0.55


async def test_vip_caller_goes_first(tmp_path: Path) -> None:
    cfg = {"queues": [queue("q")], "agents": [agent("a")], "dids": {"100": "queue:q"}}
    async with world(tmp_path, cfg) as w:
        async with w.sessionmaker() as session, session.begin():
            session.add(Contact(phone="9002", vip=True))
        pa = await w.phone("a")
        await w.service.agent_login("a", paused_reason="break")
        await w.call("100", "9001")
        await asyncio.sleep(0.1)
        await w.call("100", "9002")
        await until(lambda: len(w.service.calls_in_line("q")) == 2)
        # The VIP holds the first place once its look-up (which never holds routing) is in.
        await until(lambda: [c.vip for c in w.service.calls_in_line("q")] == [True, False], what="VIP first")
        await w.service.agent_ready("a")
        await until(lambda: bool(pa.offers))
        assert caller_of(pa, 0) == "9002"


async def test_sticky_agent_then_fallback(tmp_path: Path) -> None:
    cfg = {
        "queues": [queue("q", strategy="top-down", agent_order=["a", "b"], sticky_wait_s=0.8)],
        "agents": [agent("a"), agent("b")],
        "dids": {"100": "queue:q"},
    }
    async with world(tmp_path, cfg) as w:
        pa, pb = await w.phone("a"), await w.phone("b")
        await w.service.agent_login("a", paused_reason="break")
        await login(w, "b")
        await one_call(w, "9100")  # b handles the customer (a is paused)
        await w.service.agent_ready("a")
        await one_call(w, "9100")  # top-down would pick a; the customer's last agent b is preferred
        assert len(pb.offers) == 2 and not pa.offers
        await w.service.agent_pause("b", "lunch")
        t0 = asyncio.get_running_loop().time()
        await w.call("100", "9100")
        await until(lambda: bool(pa.offers), what="fallback to the queue after the sticky wait")
        assert pa.offered_at[0] - t0 >= 0.7


async def test_supervisor_assigns_a_waiting_call_to_a_named_agent(tmp_path: Path) -> None:
    cfg = {
        "queues": [queue("q"), queue("other")],
        "agents": [agent("a"), agent("s", {"other": 0})],
        "dids": {"100": "queue:q"},
    }
    async with world(tmp_path, cfg) as w:
        ps = await w.phone("s")
        await login(w, "s")
        call = await w.call("100", "1234")
        await until(lambda: len(w.service.calls_in_line("q")) == 1)
        await w.service.assign_call(call.id, "s")
        await until(lambda: bool(ps.answered), what="assigned agent answers")
        await until(lambda: w.state("s") == "on_call")
