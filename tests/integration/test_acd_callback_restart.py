"""Callback requests keep their place in line across a restart of the ACD.

Two waiting callers ask for a callback (key 5); the rows store when each took its place in line.
The process stops and a new one starts on the same database: the restored callbacks are put back
at their original arrival times, not at the restart. A live caller whose place lies between
them (a VIP: its wait credit puts it in line ahead of the later request but behind the earlier
one; a caller cannot itself survive the restart) is served between the two, and each callback is
dialled exactly once.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from acd import CallbackFinished
from acd.models import CallbackRow
from dialer.models import Contact
from telephony.sip.uri import Address, SipURI
from tests.integration.acd_harness import World, agent, queue, until, world

pytestmark = pytest.mark.timeout(60)

CFG = {
    "queues": [queue("q", exit_keys={"5": "callback"}, vip_credit_s=300.0)],
    "agents": [agent("a")],
    "dids": {"100": "queue:q"},
}


async def callbacks(w: World) -> list[CallbackRow]:
    async with w.sessionmaker() as session:
        return list((await session.execute(select(CallbackRow).order_by(CallbackRow.arrived_at))).scalars().all())


def dialled(call: object) -> str:
    headers = getattr(call, "headers", None)
    assert headers is not None
    return Address.parse(headers.get("to") or "").uri.user or ""


async def test_restored_callbacks_keep_their_place_and_are_dialled_once(tmp_path: Path) -> None:
    async with world(tmp_path, CFG) as w:
        for number in ("1701", "1702"):
            caller = await w.call("100", number)
            await until(lambda: any(c.callback_id is None for c in w.service.calls_in_line("q")), what="queued")
            await asyncio.sleep(0.05)
            await caller.send_dtmf("5")
            await asyncio.wait_for(caller.wait_ended(), 5)  # confirmed and released; its place is kept
        await until(lambda: len(w.service.calls_in_line("q")) == 2, what="two callbacks in line")
        for _ in range(100):
            rows = await callbacks(w)
            if len(rows) == 2 and all(r.arrived_at is not None for r in rows):
                break
            await asyncio.sleep(0.02)
        assert [(r.number, r.state) for r in rows] == [("1701", "requested"), ("1702", "requested")]
        first, second = rows
        assert first.arrived_at is not None and second.arrived_at is not None
        assert first.arrived_at < second.arrived_at <= datetime.now(UTC)
        assert first.arrived_at <= first.requested_at  # the caller's arrival, not the key press

    # Between the two processes: the requests are 10 and 1 minutes old.
    now = datetime.now(UTC)
    async with w.sessionmaker() as session, session.begin():
        for row, age in ((first, 600), (second, 60)):
            at = now - timedelta(seconds=age)
            await session.execute(
                update(CallbackRow).where(CallbackRow.id == row.id).values(arrived_at=at, requested_at=at)
            )
        session.add(Contact(phone="1703", vip=True))
    await w.engine.dispose()

    async with world(tmp_path, CFG) as w2:
        phone = await w2.phone("a")
        line = w2.service.calls_in_line("q")
        assert [c.callback_id for c in line] == [first.id, second.id]
        live = await w2.call("100", "1703")  # VIP: 300 s of credit, between 600 s and 60 s ago
        await until(lambda: len(w2.service.calls_in_line("q")) == 3, what="the live caller queued")
        # Queued at once; its VIP credit comes with the caller look-up, which never holds routing.
        expected = [first.id, live.id, second.id]
        await until(
            lambda: [c.callback_id or c.call_id for c in w2.service.calls_in_line("q")] == expected,
            what="the VIP's place once its look-up is in",
        )

        await w2.service.agent_login("a")
        # 1: the first callback (offered to the agent, then the customer is dialled).
        await until(lambda: len(w2.called_back) == 1, what="the first callback is dialled")
        assert dialled(w2.called_back[0]) == "1701"
        await until(lambda: w2.state("a") == "on_call", what="agent on the first callback")
        await asyncio.wait_for(w2.called_back[0].wait_answered(), 5)
        await until(lambda: len(w2.of(CallbackFinished)) == 1, what="the first callback reached")
        await w2.called_back[0].hangup()
        # 2: the live caller.
        await until(lambda: len(phone.offers) == 2, what="then the live caller")
        assert SipURI.parse(phone.offers[1].remote).user == "1703"
        await until(lambda: w2.state("a") == "on_call" and len(phone.answered) == 2, what="agent on the live call")
        assert len(w2.called_back) == 1
        await live.hangup()
        # 3: the second callback.
        await until(lambda: len(w2.called_back) == 2, what="the second callback is dialled")
        assert dialled(w2.called_back[1]) == "1702"
        await asyncio.wait_for(w2.called_back[1].wait_answered(), 5)
        await until(lambda: len(w2.of(CallbackFinished)) == 2, what="the second callback reached")
        await w2.called_back[1].hangup()
        await until(lambda: w2.state("a") == "ready", what="all served")
        await asyncio.sleep(0.5)
        assert [dialled(c) for c in w2.called_back] == ["1701", "1702"]  # each dialled once
        assert w2.service.calls_in_line("q") == []
        assert [e.reached for e in w2.of(CallbackFinished)] == [True, True]
        states = {r.id: r.state for r in await callbacks(w2)}
        assert states == {first.id: "done", second.id: "done"}
