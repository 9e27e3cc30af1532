"""Preview dialling from the agent's web page: ``GET /api/agent/preview`` shows the next lead of a
preview-mode campaign (held for the agent), ``POST /api/agent/preview/skip`` puts it off, and
``POST /api/agent/preview/dial`` calls it through the live campaign runner, over real SIP, with
the answer connected to that agent.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from dialer.campaigns import set_campaign_status
from dialer.console_backend import AppBackend
from dialer.models import CallAttempt, CampaignStatus, Contact, Lead, LeadStatus
from dialer.runner import RunnerService, SettableClock
from dialer.runner_agents import UaAgentPool
from dialer.web import LiveState, create_app
from telephony.aio.ua import UAConfig, UserAgent
from tests.integration.test_runner_calls import FAST, HOST, MONDAY_10, Agents, Customers, until
from tests.web.conftest import Console, login

pytestmark = pytest.mark.timeout(60)


async def _leads(console: Console, campaign_id: int, people: list[tuple[str, str]], clock: SettableClock) -> list[int]:
    ids = []
    async with console.sessionmaker() as session, session.begin():
        for i, (number, name) in enumerate(people):
            contact = Contact(phone=number, name=name, timezones=["Europe/London"], country="GB")
            session.add(contact)
            await session.flush()
            lead = Lead(
                campaign_id=campaign_id,
                contact_id=contact.id,
                status=LeadStatus.READY,
                priority=10 - i,  # the first one is previewed first
                next_attempt_at=clock() - timedelta(minutes=5),
                created_at=clock(),
            )
            session.add(lead)
            await session.flush()
            ids.append(lead.id)
    return ids


async def test_preview_next_skip_and_dial_through_the_api(console: Console, tmp_path: Path) -> None:
    # The dev backend has no runner: it says what to run instead.
    async with console.client() as dev:
        await login(dev, "alice")
        refused = await dev.get("/api/agent/preview")
        assert refused.status_code == 409 and "dialer run" in refused.json()["detail"]

    clock = SettableClock(MONDAY_10)
    cid = await console.add_campaign(
        "previews",
        caller_id="+442079460000",
        timezone="Europe/London",
        pacing={"mode": "preview", "ring_timeout_seconds": 15},
    )
    async with console.sessionmaker() as session, session.begin():
        await set_campaign_status(session, "previews", CampaignStatus.ACTIVE)
    first, second = await _leads(console, cid, [("+442071230090", "Ann Lee"), ("+442071230091", "Bo Chan")], clock)

    customers_ua = UserAgent(UAConfig(host=HOST, port=0, user="carrier", registrar=False, tcp=False))
    dialer_ua = UserAgent(UAConfig(host=HOST, port=0, user="dialer", registrar=False, tcp=False))
    await customers_ua.start()
    await dialer_ua.start()
    customers = Customers(customers_ua, tmp_path, behaviour={"+442071230091": "answer"}, talk_s=0.5)
    customers_ua.on_incoming = customers.on_incoming
    agents = Agents()
    pool = UaAgentPool(dialer_ua, {"1001": await agents.add("1001")}, wrapup_s=0.2)
    service = RunnerService(
        sessionmaker=console.sessionmaker,
        ua=dialer_ua,
        pool_for=lambda _row: pool,
        trunk_uri=f"sip:{{number}}@{HOST}:{customers_ua.port}",
        node="web-node",
        clock=clock,
        timers=FAST,
    )
    await service.start()
    app = SimpleNamespace(sessionmaker=console.sessionmaker, bus=console.bus, acd=None, services=[service])
    backend = AppBackend(app)  # type: ignore[arg-type]
    live = LiveState(clock=console.clock)
    web = create_app(
        settings=console.settings, sessionmaker=console.sessionmaker, bus=console.bus, backend=backend, live=live,
        clock=console.clock,
    )  # fmt: skip
    import httpx

    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=web), base_url="http://console.test") as c:
            csrf = await login(c, "alice")
            headers = {"X-CSRF-Token": csrf}
            shown = (await c.get("/api/agent/preview")).json()["lead"]
            assert shown is not None
            assert (shown["lead_id"], shown["number"], shown["name"]) == (first, "+442071230090", "Ann Lee")
            assert (shown["campaign"], shown["campaign_id"], shown["timezones"]) == ("previews", cid, ["Europe/London"])
            assert (await c.get("/api/agent/preview")).json()["lead"]["lead_id"] == first, "held for the agent"
            assert pool.load(cid).ready == 0, "the agent is reserved while previewing"

            # Only the previewed lead can be skipped or dialled, and only with the CSRF token.
            wrong = await c.post("/api/agent/preview/dial", json={"lead_id": second}, headers=headers)
            assert wrong.status_code == 409 and "not being previewed" in wrong.json()["detail"]
            no_csrf = await c.post("/api/agent/preview/skip", json={"lead_id": first})
            assert no_csrf.status_code == 403

            skipped = await c.post("/api/agent/preview/skip", json={"lead_id": first}, headers=headers)
            assert skipped.status_code == 200, skipped.text
            async with console.sessionmaker() as session:
                lead = await session.get(Lead, first)
                assert lead is not None and lead.status == LeadStatus.READY and lead.attempts == 0
                assert lead.next_attempt_at is not None and lead.next_attempt_at > clock() + timedelta(minutes=29)
                assert lead.next_attempt_reason == "skipped in preview by agent 1001"

            nxt = (await c.get("/api/agent/preview")).json()["lead"]
            assert nxt["lead_id"] == second, "after a skip the next lead is shown"
            dialled = await c.post("/api/agent/preview/dial", json={"lead_id": second}, headers=headers)
            assert dialled.status_code == 200, dialled.text
            call_id = dialled.json()["call_id"]
            assert call_id

            async def ended() -> bool:
                async with console.sessionmaker() as session:
                    rows = list((await session.execute(select(CallAttempt))).scalars())
                return len(rows) == 1 and rows[0].ended_at is not None

            await until(ended, 15, "the previewed call to end")
            async with console.sessionmaker() as session:
                (row,) = (await session.execute(select(CallAttempt))).scalars()
            assert (row.call_id, row.lead_id, row.outcome, row.agent_id) == (call_id, second, "completed", "1001")
            assert len(customers.calls) == 1, "the skipped lead was not dialled"
            await asyncio.sleep(0.3)  # wrap-up over: nothing else is due, so nothing is shown
            assert (await c.get("/api/agent/preview")).json() == {"lead": None}

            await login(c, "sam")  # a supervisor: not an agent
            assert (await c.get("/api/agent/preview")).status_code == 403
    finally:
        backend.close()
        live.detach()
        await service.stop()
        await pool.close()
        await agents.close()
        await dialer_ua.close()
        await customers_ua.close()
