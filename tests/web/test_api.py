"""The console's HTTP surface through httpx's ASGI transport: login, roles, CSRF, expiry, API errors."""

from __future__ import annotations

import re

from acd import AgentState, AgentStateChanged, CallQueued
from tests.web.conftest import PASSWORD, Console, login


async def test_every_page_and_api_needs_a_session_except_login_and_static(console: Console) -> None:
    async with console.client() as client:
        for path in ("/", "/wallboard", "/agent", "/manager/campaigns", "/manager/reports", "/manager/lists/upload"):
            response = await client.get(path)
            assert response.status_code == 303, path
            assert response.headers["location"].startswith("/login?next="), path
        for path in ("/api/wallboard", "/api/agent", "/api/campaigns", "/openapi.json", "/api/reports/abandon"):
            response = await client.get(path)
            assert response.status_code == 401, path
            assert "log in" in response.json()["message"]
        assert (await client.get("/login")).status_code == 200
        static = await client.get("/static/console.css")
        assert static.status_code == 200
        assert "text/css" in static.headers["content-type"]


async def test_login_form_sets_a_hardened_cookie_and_rotates_the_session(console: Console) -> None:
    async with console.client() as client:
        page = await client.get("/login")
        assert page.headers["content-security-policy"].startswith("default-src 'self'")
        anonymous_cookie = client.cookies["dialer_session"]
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token is not None
        response = await client.post(
            "/login", data={"username": "sam", "password": PASSWORD, "csrf_token": token.group(1), "next": "/wallboard"}
        )
        assert response.status_code == 303
        assert response.headers["location"] == "/wallboard"
        set_cookie = response.headers["set-cookie"].lower()
        assert "httponly" in set_cookie
        assert "samesite=lax" in set_cookie
        assert "secure" not in set_cookie  # plain http here; https requests get Secure
        assert client.cookies["dialer_session"] != anonymous_cookie
        wallboard = await client.get("/wallboard")
        assert wallboard.status_code == 200
        assert 'id="agents"' in wallboard.text


async def test_wrong_password_and_login_without_csrf_are_refused(console: Console) -> None:
    async with console.client() as client:
        response = await client.post("/api/session", json={"username": "sam", "password": "wrong password"})
        assert response.status_code == 401
        assert response.json()["message"] == "wrong username or password"
        await client.get("/login")
        response = await client.post("/login", data={"username": "sam", "password": PASSWORD})
        assert response.status_code == 403
        assert "expired" in response.text
        assert (await client.get("/wallboard")).status_code == 303


async def test_repeated_failures_lock_the_username(console: Console) -> None:
    async with console.client() as client:
        for _ in range(5):
            await client.post("/api/session", json={"username": "sam", "password": "nope nope"})
        response = await client.post("/api/session", json={"username": "sam", "password": PASSWORD})
        assert response.status_code == 401
        assert "too many failed logins" in response.json()["message"]
        console.clock.advance(301)
        await login(client, "sam")


async def test_an_agent_cannot_open_supervisor_or_manager_pages(console: Console) -> None:
    async with console.client() as client:
        token = await login(client, "alice")
        for path in ("/wallboard", "/manager/campaigns", "/manager/lists/upload", "/manager/reports", "/admin/users"):
            response = await client.get(path)
            assert response.status_code == 403, path
            assert "Not allowed" in response.text
        assert (await client.get("/api/wallboard")).status_code == 403
        response = await client.post("/api/agents/1002/state", json={"state": "ready"}, headers={"X-CSRF-Token": token})
        assert response.status_code == 403
        assert "your own state" in response.json()["message"]
        assert (await client.get("/agent")).status_code == 200
        response = await client.post("/api/agents/1001/state", json={"state": "ready"}, headers={"X-CSRF-Token": token})
        assert response.status_code == 200
        assert console.live.agents["1001"].state == AgentState.READY


async def test_state_changes_need_the_csrf_token(console: Console) -> None:
    async with console.client() as client:
        token = await login(client, "sam")
        response = await client.post("/api/agents/1001/state", json={"state": "ready"})
        assert response.status_code == 403
        assert "CSRF" in response.json()["message"]
        response = await client.post(
            "/api/agents/1001/state", json={"state": "ready"}, headers={"X-CSRF-Token": "forged"}
        )
        assert response.status_code == 403
        assert "1001" not in console.live.agents or console.live.agents["1001"].state != AgentState.READY
        response = await client.post("/logout", data={})
        assert response.status_code == 403
        response = await client.post("/api/agents/1001/state", json={"state": "ready"}, headers={"X-CSRF-Token": token})
        assert response.status_code == 200


async def test_sessions_expire_when_idle_and_at_the_absolute_limit(console: Console) -> None:
    idle = console.settings.http.session_idle_minutes * 60
    async with console.client() as client:
        await login(client, "sam")
        console.clock.advance(idle - 5)
        assert (await client.get("/api/wallboard")).status_code == 200
        console.clock.advance(idle - 5)  # still alive: the previous request reset the idle timer
        assert (await client.get("/api/wallboard")).status_code == 200
        console.clock.advance(idle + 1)
        assert (await client.get("/api/wallboard")).status_code == 401

    absolute = console.settings.http.session_max_hours * 3600
    async with console.client() as client:
        await login(client, "sam")
        for _ in range(int(absolute // (idle - 60)) + 1):
            console.clock.advance(idle - 60)
            response = await client.get("/api/wallboard")
        assert response.status_code == 401


async def test_logout_ends_the_session_on_the_server(console: Console) -> None:
    async with console.client() as client:
        token = await login(client, "sam")
        stolen = client.cookies["dialer_session"]
        response = await client.delete("/api/session", headers={"X-CSRF-Token": token})
        assert response.status_code == 200
    async with console.client() as replay:
        replay.cookies.set("dialer_session", stolen)
        assert (await replay.get("/api/wallboard")).status_code == 401


async def test_bad_requests_name_the_field_and_the_fix(console: Console) -> None:
    async with console.client() as client:
        token = await login(client, "sam")
        console.bus.publish(AgentStateChanged(at=1.0, agent_id="1001", old=AgentState.LOGGED_OUT, new=AgentState.READY))
        response = await client.post(
            "/api/agents/1001/supervise", json={"mode": "spy"}, headers={"X-CSRF-Token": token}
        )
        assert response.status_code == 422
        message = response.json()["message"]
        assert "field 'mode'" in message
        assert "'listen', 'whisper' or 'barge'" in message
        response = await client.post("/api/calls/c1/assign", json={"agent": "1001"}, headers={"X-CSRF-Token": token})
        assert response.status_code == 422
        assert "field 'agent_id'" in response.json()["message"]
    async with console.client() as client:
        await login(client, "mia")
        response = await client.get("/api/reports/abandon?days=0")
        assert response.status_code == 422
        assert "query field 'days'" in response.json()["message"]
        assert "greater than or equal to 1" in response.json()["message"]


async def test_supervisor_actions_change_the_live_state(console: Console) -> None:
    async with console.client() as client:
        token = await login(client, "sam")
        headers = {"X-CSRF-Token": token}
        assert (
            await client.post("/api/agents/1001/state", json={"state": "ready"}, headers=headers)
        ).status_code == 200
        console.bus.publish(CallQueued(at=2.0, call_id="c-7", queue="sales", position=1))
        snapshot = (await client.get("/api/wallboard")).json()
        assert [c["id"] for c in snapshot["calls"]] == ["c-7"]
        assert snapshot["queues"][0]["waiting"] == 1

        response = await client.post("/api/calls/c-7/assign", json={"agent_id": "1001"}, headers=headers)
        assert response.status_code == 200, response.text
        assert console.live.agents["1001"].state == AgentState.ON_CALL
        assert console.live.calls["c-7"].state == "talking"

        response = await client.post("/api/agents/1001/supervise", json={"mode": "whisper"}, headers=headers)
        assert response.status_code == 200
        assert console.live.agents["1001"].supervise_mode == "whisper"

        response = await client.post("/api/agents/1001/logout", headers=headers)
        assert response.status_code == 409
        assert "after the call" in response.json()["message"]

        await console.backend.hang_up("1001")
        assert console.live.agents["1001"].state == AgentState.WRAP_UP
        response = await client.post(
            "/api/agents/1001/state", json={"state": "paused", "reason": "coaching"}, headers=headers
        )
        assert response.status_code == 200
        assert console.live.agents["1001"].state == AgentState.PAUSED
        assert console.live.agents["1001"].reason == "coaching"
        assert (await client.post("/api/agents/1001/logout", headers=headers)).status_code == 200
        assert console.live.agents["1001"].state == AgentState.LOGGED_OUT


async def test_openapi_describes_the_api(console: Console) -> None:
    async with console.client() as client:
        await login(client, "mia")
        response = await client.get("/openapi.json")
        assert response.status_code == 200
        doc = response.json()
    paths = doc["paths"]
    for path in (
        "/api/session",
        "/api/wallboard",
        "/api/agents/{agent_id}/state",
        "/api/agents/{agent_id}/logout",
        "/api/agents/{agent_id}/supervise",
        "/api/calls/{call_id}/assign",
        "/api/agent",
        "/api/agent/disposition",
        "/api/agent/callback",
        "/api/campaigns",
        "/api/campaigns/{name}/settings",
        "/api/lists/upload",
        "/api/reports/agents",
        "/api/reports/campaigns/{name}",
        "/api/reports/campaigns/{name}/leads-at-risk",
        "/api/reports/abandon",
        "/api/users",
    ):
        assert path in paths, path
    assert not any(p in paths for p in ("/login", "/wallboard", "/agent"))
    schemas = doc["components"]["schemas"]
    assert set(schemas["SuperviseRequest"]["properties"]["mode"]["enum"]) == {"listen", "whisper", "barge"}
    assert "CampaignSettings" in schemas
    # The report responses are dialer.reports' own rows, the CLI's CSV columns.
    assert {"daily_target", "occupancy_source"} <= set(schemas["AgentDayRow"]["properties"])
    assert "hours" in schemas["CampaignReport"]["properties"]
