"""The console's supervise button on the real ACD: POST /api/agents/{id}/supervise rings the
supervisor's registered softphone (SIP on loopback), the session starts when it answers, the
wallboard shows who listens, and console users without a supervisor account get 403."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from dialer.app import DialerApp
from dialer.console_backend import AppBackend
from dialer.web import LiveState, create_app
from dialer.web.models import User
from infra.settings import load_settings
from telephony.aio.supervision import SupervisionEnded, SupervisionStarted
from tests.integration.acd_harness import PASSWORD as SIP_PASSWORD
from tests.integration.acd_harness import Phone, World, agent, queue, until, world
from tests.web.conftest import _PASSWORD_HASH, login

pytestmark = pytest.mark.timeout(60)


@dataclass
class Setup:
    w: World
    client: httpx.AsyncClient
    live: LiveState
    agent_phone: Phone
    supervisor_phone: Phone


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    cfg = {
        "queues": [queue("q")],
        "agents": [agent("1001", extension="101")],
        "dids": {"5000": "queue:q"},
        "supervisors": [{"id": "sam", "password": SIP_PASSWORD}],
    }
    async with world(tmp_path, cfg) as w:
        async with w.sessionmaker() as session:
            session.add(User(username="sam", password_hash=_PASSWORD_HASH, role="supervisor"))
            session.add(User(username="tom", password_hash=_PASSWORD_HASH, role="supervisor"))
            await session.commit()
        settings = load_settings(
            None, site={"data_dir": tmp_path / "data"}, http={"secret_key": "test-secret-key-0123456789"}
        )
        app = DialerApp(settings=settings, sessionmaker=w.sessionmaker, bus=w.bus, acd=w.service)
        backend = AppBackend(app)
        live = LiveState()
        web = create_app(settings=settings, sessionmaker=w.sessionmaker, bus=w.bus, backend=backend, live=live)
        agent_phone = await w.phone("1001")
        supervisor_phone = await w.phone("sam")
        transport = httpx.ASGITransport(app=web)
        async with httpx.AsyncClient(transport=transport, base_url="http://console.test") as client:
            try:
                yield Setup(w, client, live, agent_phone, supervisor_phone)
            finally:
                backend.close()
                live.detach()


async def supervise(s: Setup, user: str, agent_id: str, mode: str) -> httpx.Response:
    token = await login(s.client, user)
    return await s.client.post(
        f"/api/agents/{agent_id}/supervise", json={"mode": mode}, headers={"X-CSRF-Token": token}
    )


async def test_supervise_button_rings_the_supervisor_and_starts_the_session(setup: Setup) -> None:
    s, w = setup, setup.w
    response = await supervise(s, "sam", "1001", "listen")
    assert response.status_code == 409 and "agent 1001 is not on a call" in response.json()["message"]

    await w.service.agent_login("1001")
    customer = await w.call("5000", "15551234")
    await until(lambda: w.state("1001") == "on_call", what="agent on call")

    response = await supervise(s, "sam", "1001", "listen")
    assert response.status_code == 200, response.text
    await until(lambda: bool(s.supervisor_phone.answered), what="the supervisor's softphone rang and answered")
    await until(lambda: bool(w.of(SupervisionStarted)), what="supervision started")
    started = w.of(SupervisionStarted)[0]
    assert (started.supervisor, started.agent, started.mode, started.call_id) == ("sam", "1001", "listen", customer.id)
    # The wallboard shows who listens to whom.
    await until(lambda: s.live.agents["1001"].supervise_mode == "listen", what="wallboard shows the supervisor")
    assert s.live.agents["1001"].supervisor == "sam"

    # Pressing whisper again while supervising switches mode; nothing rings twice.
    response = await s.client.post(
        "/api/agents/1001/supervise", json={"mode": "whisper"}, headers={"X-CSRF-Token": await login(s.client, "sam")}
    )
    assert response.status_code == 200
    await until(lambda: s.live.agents["1001"].supervise_mode == "whisper", what="wallboard shows whisper")
    assert len(s.supervisor_phone.offers) == 1

    # Another console supervisor without a SIP supervisor account is refused.
    response = await supervise(s, "tom", "1001", "barge")
    assert response.status_code == 403
    assert "'tom' has no supervisor account" in response.json()["message"]

    await customer.hangup()
    await until(lambda: bool(w.of(SupervisionEnded)), what="supervision ended with the call")
    await asyncio.wait_for(s.supervisor_phone.current.wait_ended(), 5)
    rows = [(r.event, r.data1, r.data2, r.data3) for r in await w.rows() if r.event.startswith("SPY")]
    assert rows[:2] == [("SPYSTART", "sam", "listen", "console"), ("SPYMODE", "sam", "whisper", "listen")]
    assert rows[-1][0] == "SPYEND"
    await until(lambda: s.live.agents["1001"].supervisor is None, what="wallboard clears the supervisor")


async def test_unknown_agent_is_404(setup: Setup) -> None:
    response = await supervise(setup, "sam", "nobody", "listen")
    assert response.status_code == 404
    assert "agent 'nobody' is not configured" in response.json()["message"]
