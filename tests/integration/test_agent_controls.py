"""The console's agent and supervisor controls through AppBackend against the real ACD (SIP on
loopback, the acd_harness phones): an agent makes itself ready and paused, hangs up its customer,
sets a disposition, records its call on demand (pause/resume) and asks the ACD for a callback;
a supervisor pauses, readies and logs out an agent and assigns a waiting call to an agent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from acd.models import CallbackRow
from acd.service import CallbackScheduled, DispositionSet
from dialer.app import DialerApp
from dialer.console_backend import AppBackend
from dialer.web import LiveState, create_app
from dialer.web.models import User
from dialer.wiring import RecordingHookup
from infra.settings import load_settings
from recordings.service import Policy, RecordingPolicy, RecordingService
from tests.integration.acd_harness import World, agent, queue, until, world
from tests.web.conftest import _PASSWORD_HASH, login

pytestmark = pytest.mark.timeout(60)


@dataclass
class Setup:
    w: World
    client: httpx.AsyncClient
    recordings: RecordingService

    async def post(self, user: str, path: str, body: object = None) -> httpx.Response:
        token = await login(self.client, user)
        return await self.client.post(path, json=body, headers={"X-CSRF-Token": token})


async def callback_row(w: World, callback_id: str) -> CallbackRow:
    """The row once the ACD's database worker has written it (it is off the call path)."""
    for _ in range(100):
        async with w.sessionmaker() as session:
            row = await session.get(CallbackRow, callback_id)
        if row is not None and row.state == "scheduled":
            return row
        await asyncio.sleep(0.02)
    raise AssertionError(f"callback {callback_id} was not stored")


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    cfg = {
        "queues": [queue("q"), queue("other")],
        "agents": [agent("a"), agent("b", {"other": 0})],
        "dids": {"100": "queue:q"},
    }
    async with world(tmp_path, cfg) as w:
        async with w.sessionmaker() as session:
            session.add(User(username="alice", password_hash=_PASSWORD_HASH, role="agent", agent_id="a"))
            session.add(User(username="sam", password_hash=_PASSWORD_HASH, role="supervisor"))
            await session.commit()
        settings = load_settings(
            None, site={"data_dir": tmp_path / "data"}, http={"secret_key": "test-secret-key-0123456789"}
        )
        recordings = RecordingService(
            w.sessionmaker, tmp_path / "rec", bus=w.bus, queue_policies={"q": RecordingPolicy(Policy.ON_DEMAND)}
        )
        hookup = RecordingHookup(recordings, w.bus, lambda _campaign_id: None)
        hookup.attach(w.service)
        app = DialerApp(settings=settings, sessionmaker=w.sessionmaker, bus=w.bus, acd=w.service)
        backend = AppBackend(app)
        live = LiveState()
        web = create_app(settings=settings, sessionmaker=w.sessionmaker, bus=w.bus, backend=backend, live=live)
        await w.phone("a")
        await w.phone("b")
        transport = httpx.ASGITransport(app=web)
        async with httpx.AsyncClient(transport=transport, base_url="http://console.test") as client:
            try:
                yield Setup(w, client, recordings)
            finally:
                await hookup.close()
                backend.close()
                live.detach()


async def test_agent_ready_pause_record_hangup_disposition_and_acd_callback(setup: Setup) -> None:
    s, w = setup, setup.w
    await w.service.agent_login("a", paused_reason="login")
    assert w.state("a") == "paused"

    response = await s.post("alice", "/api/agents/a/state", {"state": "ready"})
    assert response.status_code == 200, response.text
    assert w.state("a") == "ready"
    response = await s.post("alice", "/api/agents/a/state", {"state": "paused", "reason": "lunch"})
    assert response.status_code == 200, response.text
    assert w.state("a") == "paused" and w.service.agent_info("a").pause_reason == "lunch"
    assert (await s.post("alice", "/api/agents/b/state", {"state": "ready"})).status_code == 403  # not hers

    # Nothing to hang up or record without a call.
    response = await s.post("alice", "/api/agent/hangup")
    assert response.status_code == 409 and "no customer on the line" in response.json()["message"]
    response = await s.post("alice", "/api/agent/recording/start")
    assert response.status_code == 409 and "no customer on the line" in response.json()["message"]

    assert (await s.post("alice", "/api/agents/a/state", {"state": "ready"})).status_code == 200
    caller = await w.call("100", "15550300")
    await until(lambda: w.state("a") == "on_call", what="agent on call")

    # Recording on demand: nothing until asked, then pause and resume.
    assert s.recordings.active(caller.id) is None
    response = await s.post("alice", "/api/agent/recording/pause")
    assert response.status_code == 409 and "not being recorded" in response.json()["message"]
    response = await s.post("alice", "/api/agent/recording/start")
    assert response.status_code == 200 and response.json() == {"state": "recording"}
    handle = s.recordings.active(caller.id)
    assert handle is not None and handle.trigger == "on_demand" and handle.meta.agent_id == "a"
    response = await s.post("alice", "/api/agent/recording/pause")
    assert response.status_code == 200 and response.json() == {"state": "paused"} and handle.paused
    response = await s.post("alice", "/api/agent/recording/resume")
    assert response.status_code == 200 and response.json() == {"state": "recording"} and not handle.paused
    assert (await s.post("alice", "/api/agent/recording/stop")).status_code == 422  # not an action

    response = await s.post("alice", "/api/agent/hangup")
    assert response.status_code == 200, response.text
    await asyncio.wait_for(caller.wait_ended(), 5)
    assert caller.ended_by == "remote"
    await until(lambda: w.state("a") != "on_call", what="the call ended")
    await asyncio.wait_for(handle.stop(), 5)  # the recording stops with the customer's leg

    response = await s.post("alice", "/api/agent/disposition", {"call_id": caller.id, "code": "42"})
    assert response.status_code == 200, response.text
    assert [(e.call_id, e.agent_id, e.code) for e in w.of(DispositionSet)] == [(caller.id, "a", "42")]

    at = datetime.now(UTC) + timedelta(days=2)
    response = await s.post(
        "alice", "/api/agent/acd-callback", {"number": "15550999", "at": at.isoformat(), "queue": "q"}
    )
    assert response.status_code == 200, response.text
    callback_id = response.json()["callback_id"]
    assert [(e.callback_id, e.number, e.queue) for e in w.of(CallbackScheduled)] == [(callback_id, "15550999", "q")]
    response = await s.post(
        "alice", "/api/agent/acd-callback", {"number": "15550999", "at": at.isoformat(), "queue": "nope"}
    )
    assert response.status_code == 404 and "queue 'nope' is not configured" in response.json()["message"]
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    response = await s.post("alice", "/api/agent/acd-callback", {"number": "15550999", "at": past})
    assert response.status_code == 409 and "in the past" in response.json()["message"]

    rows = await w.rows()
    assert any(r.event == "COMPLETEAGENT" and r.call_id == caller.id for r in rows)
    assert any(r.event == "DISPOSITION" and r.call_id == caller.id and r.data1 == "42" for r in rows)
    stored = await callback_row(w, callback_id)
    assert (stored.state, stored.number, stored.owner_agent, stored.queue) == ("scheduled", "15550999", "a", "q")


async def test_supervisor_pause_ready_logout_and_assign_a_waiting_call(setup: Setup) -> None:
    s, w = setup, setup.w
    await w.service.agent_login("a")
    await w.service.agent_login("b")

    response = await s.post("sam", "/api/agents/a/state", {"state": "paused", "reason": "coaching"})
    assert response.status_code == 200, response.text
    assert w.state("a") == "paused" and w.service.agent_info("a").pause_reason == "coaching"

    # Agent a (the only member of q) is paused: the caller waits; b is not a member of q.
    caller = await w.call("100", "15550400")
    await until(lambda: len(w.service.calls_in_line("q")) == 1, what="caller waiting")
    assert (await s.post("alice", f"/api/calls/{caller.id}/assign", {"agent_id": "b"})).status_code == 403
    response = await s.post("sam", f"/api/calls/{caller.id}/assign", {"agent_id": "b"})
    assert response.status_code == 200, response.text
    await until(lambda: w.state("b") == "on_call", what="the assigned agent takes the call")
    assert w.service.agent_info("b").call_id == caller.id
    assert bool(w.phones["b"].answered) and w.phones["a"].offers == []
    response = await s.post("sam", f"/api/calls/{caller.id}/assign", {"agent_id": "a"})
    assert response.status_code == 409 and "only a waiting call can be assigned" in response.json()["message"]

    response = await s.post("sam", "/api/agents/a/state", {"state": "ready"})
    assert response.status_code == 200 and w.state("a") == "ready"
    assert (await s.post("alice", "/api/agents/a/logout")).status_code == 403  # supervisors only
    response = await s.post("sam", "/api/agents/a/logout")
    assert response.status_code == 200 and w.state("a") == "logged_out"
    response = await s.post("sam", "/api/agents/a/state", {"state": "ready"})
    assert response.status_code == 409 and "logged out" in response.json()["message"]
    response = await s.post("sam", "/api/agents/nobody/logout")
    assert response.status_code == 404 and "'nobody' is not configured" in response.json()["message"]

    await caller.hangup()
    await until(lambda: w.state("b") != "on_call", what="the call ended")
    verbs = [(r.event, r.agent) for r in await w.rows() if r.event in ("PAUSE", "UNPAUSE", "LOGOFF", "CONNECT")]
    assert ("PAUSE", "a") in verbs and ("UNPAUSE", "a") in verbs and ("LOGOFF", "a") in verbs
    assert ("CONNECT", "b") in verbs
