"""The post-call survey on live calls: when the AGENT hangs up (BYE from a ring-mode phone, ``*0`` on
a nailed leg) the customer's leg is kept, asked "press 1, 2 or 3", the answer is stored through
the recordings wiring (``save_survey_answer``) with the agent, queue and campaign, the survey
report counts it, and then the customer is hung up. A customer who hangs up first gets no survey."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from acd.service import SurveyAnswered, SurveyStarted
from dialer.wiring import RecordingHookup
from recordings.models import SurveyAnswerRow
from recordings.qa import survey_report
from recordings.service import RecordingService
from telephony.aio.ua import Call
from tests.integration.acd_harness import HOST, World, agent, answer_soon, queue, until, world

pytestmark = pytest.mark.timeout(40)

SURVEY = {"enabled": True, "timeout_s": 3.0}


@asynccontextmanager
async def surveyed_world(tmp_path: Path, config: dict[str, Any]) -> AsyncIterator[World]:
    """The ACD world with the app's recording hookup attached (it stores the survey answers)."""
    async with world(tmp_path, config) as w:
        service = RecordingService(w.sessionmaker, tmp_path / "rec", bus=w.bus)
        hookup = RecordingHookup(service, w.bus, lambda _campaign_id: None)
        hookup.attach(w.service)
        try:
            yield w
        finally:
            await hookup.close()


async def answers(w: World) -> list[SurveyAnswerRow]:
    async with w.sessionmaker() as session:
        return list((await session.execute(select(SurveyAnswerRow))).scalars().all())


async def test_agent_bye_runs_the_survey_and_the_answer_is_stored_and_reported(tmp_path: Path) -> None:
    cfg = {"queues": [queue("q", survey=SURVEY)], "agents": [agent("a")], "dids": {"100": "queue:q"}}
    async with surveyed_world(tmp_path, cfg) as w:
        phone = await w.phone("a")
        await w.service.agent_login("a")
        caller = await w.call("100", "15550123")
        await until(lambda: w.state("a") == "on_call", what="agent on call")
        await phone.current.hangup()  # the agent's BYE
        await until(lambda: bool(w.of(SurveyStarted)), what="the survey starts")
        assert not caller.ended, "the customer's leg is kept for the survey"
        assert w.state("a") != "on_call"  # the agent is free (wrap-up or ready) meanwhile
        await caller.send_dtmf("2")
        await asyncio.wait_for(caller.wait_ended(), 10)
        assert caller.ended_by == "remote"  # we hung up after the thanks
        done = w.of(SurveyAnswered)
        assert [(e.call_id, e.agent_id, e.queue, e.answer) for e in done] == [(caller.id, "a", "q", 2)]
        rows = await answers(w)
        assert [(r.call_id, r.agent_id, r.queue, r.answer, r.campaign) for r in rows] == [
            (caller.id, "a", "q", 2, None)
        ]
        async with w.sessionmaker() as session:
            by_agent = await survey_report(session, by="agent")
        assert [(r.key, r.answers, r.satisfied, r.average, r.unsatisfied) for r in by_agent] == [("a", 1, 0, 1, 0)]
        assert any(r.event == "SURVEY" and r.data1 == "2" for r in await w.rows())


async def test_customer_hanging_up_first_gets_no_survey(tmp_path: Path) -> None:
    cfg = {"queues": [queue("q", survey=SURVEY)], "agents": [agent("a")], "dids": {"100": "queue:q"}}
    async with surveyed_world(tmp_path, cfg) as w:
        phone = await w.phone("a")
        await w.service.agent_login("a")
        caller = await w.call("100", "15550124")
        await until(lambda: w.state("a") == "on_call", what="agent on call")
        await caller.hangup()
        await asyncio.wait_for(phone.current.wait_ended(), 5)
        await until(lambda: w.state("a") == "ready", what="agent ready again")
        await asyncio.sleep(0.2)
        assert w.of(SurveyStarted) == [] and w.of(SurveyAnswered) == []
        assert await answers(w) == []


async def test_queue_without_survey_hangs_the_customer_up_at_once(tmp_path: Path) -> None:
    cfg = {"queues": [queue("q")], "agents": [agent("a")], "dids": {"100": "queue:q"}}
    async with surveyed_world(tmp_path, cfg) as w:
        phone = await w.phone("a")
        await w.service.agent_login("a")
        caller = await w.call("100", "15550125")
        await until(lambda: w.state("a") == "on_call", what="agent on call")
        await phone.current.hangup()
        await asyncio.wait_for(caller.wait_ended(), 5)
        assert w.of(SurveyStarted) == []


async def test_nailed_star0_runs_the_campaign_s_survey_on_an_outbound_call(tmp_path: Path) -> None:
    """The queue has no survey; the campaign asks for one through connect_outbound(survey=True)."""
    cfg = {"queues": [queue("q")], "agents": [agent("n", mode="nailed")]}
    async with surveyed_world(tmp_path, cfg) as w:
        phone = await w.phone("n")
        leg = await phone.login_nailed(w.port)
        await until(lambda: w.state("n") == "ready", what="nailed login")
        customers = await w.customer_ua("7001")
        legs: list[Call] = []

        def answer(call: Call) -> None:
            legs.append(call)
            answer_soon(call)

        customers.on_incoming = answer
        out = await w.server.call(f"sip:7001@{HOST}:{customers.port}")
        await asyncio.wait_for(out.wait_answered(), 5)
        result = await w.service.connect_outbound(
            out, "q", number="7001", survey=True, campaign_id=12, campaign="spring"
        )
        assert getattr(result, "agent_id", None) == "n"
        await leg.send_dtmf("*0")
        await until(lambda: bool(w.of(SurveyStarted)), what="the survey starts after *0")
        assert not out.ended and not leg.ended
        await legs[0].send_dtmf("1")  # the customer's phone
        await asyncio.wait_for(out.wait_ended(), 10)
        rows = await answers(w)
        assert [(r.agent_id, r.queue, r.campaign_id, r.campaign, r.answer) for r in rows] == [
            ("n", "q", 12, "spring", 1)
        ]
        async with w.sessionmaker() as session:
            by_campaign = await survey_report(session, by="campaign")
        assert [(r.key, r.satisfied) for r in by_campaign] == [("spring", 1)]
