"""LiveState, the wallboard's projection of the bus: entities, deltas, coalescing, resync, clocks."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import websockets
from websockets.typing import Origin

from acd import AgentState, AgentStateChanged, CallAbandoned, CallConnected, CallQueued
from dialer.web import CampaignStats, LiveState, SupervisionStarted, serve_console
from infra.bus import EventBus
from tests.web.conftest import PASSWORD, FakeClock, build_console


def ready(agent: str, at: float = 0.0, old: AgentState = AgentState.LOGGED_OUT) -> AgentStateChanged:
    return AgentStateChanged(at=at, agent_id=agent, old=old, new=AgentState.READY)


def test_agent_state_and_since_come_from_the_injected_clock() -> None:
    clock = FakeClock(1000.0)
    live = LiveState(clock=clock)
    live.on_event(ready("7"))
    clock.advance(12.5)
    live.on_event(AgentStateChanged(at=5.0, agent_id="7", old=AgentState.READY, new=AgentState.PAUSED, reason="lunch"))
    agent = live.agent("7")
    assert agent is not None
    assert agent["state"] == "paused"
    assert agent["reason"] == "lunch"
    assert agent["since"] == 1_012_500


def test_queue_figures_follow_the_calls() -> None:
    clock = FakeClock(0.0)
    live = LiveState(clock=clock)
    live.on_event(CallQueued(at=0.0, call_id="a", queue="sales", position=1))
    live.on_event(CallQueued(at=1.0, call_id="b", queue="sales", position=2))
    clock.advance(5)
    live.on_event(
        CallConnected(at=10.0, call_id="a", queue="sales", agent_id="7", hold_s=10.0, ring_s=1.0, original_position=1)
    )
    live.on_event(CallAbandoned(at=40.0, call_id="b", queue="sales", position=1, original_position=2, wait_s=39.0))
    snapshot = live.snapshot()
    (queue,) = snapshot["queues"]
    assert queue["waiting"] == 0
    assert queue["answered"] == 1
    assert queue["abandoned"] == 1
    assert queue["service_level"] == pytest.approx(0.5)  # 1 of 2 offered answered within 20 s
    assert queue["asa_s"] == pytest.approx(10.0)
    assert queue["abandon_rate"] == pytest.approx(0.5)
    assert [c["id"] for c in snapshot["calls"]] == ["a"]
    assert snapshot["calls"][0]["state"] == "talking"


async def test_a_client_gets_a_snapshot_then_coalesced_deltas() -> None:
    live = LiveState(clock=FakeClock())
    live.on_event(ready("1"))
    client = live.connect()
    first = json.loads(await client.next_message(live))
    assert first["type"] == "snapshot"
    assert [a["id"] for a in first["agents"]] == ["1"]
    live.on_event(ready("2"))
    live.on_event(AgentStateChanged(at=1, agent_id="2", old=AgentState.READY, new=AgentState.PAUSED, reason="x"))
    live.on_event(SupervisionStarted(at=1, agent_id="1", supervisor="sam", mode="listen", call_id=None))
    delta = json.loads(await client.next_message(live))
    assert delta["type"] == "delta"
    assert [(i["kind"], i["id"]) for i in delta["items"]] == [("agent", "2"), ("agent", "1")]
    assert delta["items"][0]["data"]["state"] == "paused"  # the last state of agent 2 wins
    assert delta["items"][1]["data"]["supervise_mode"] == "listen"


async def test_a_client_that_falls_behind_is_resynchronised_with_a_snapshot() -> None:
    live = LiveState(clock=FakeClock(), client_queue_limit=10)
    client = live.connect()
    await client.next_message(live)  # the first snapshot
    for i in range(25):
        live.on_event(ready(f"a{i}"))
    assert client.resyncs == 1
    message = json.loads(await client.next_message(live))
    assert message["type"] == "snapshot"
    assert len(message["agents"]) == 25


async def test_agent_clients_see_only_their_own_agent() -> None:
    live = LiveState(clock=FakeClock())
    client = live.connect(only_agent="1")
    live.on_event(ready("2"))
    first = json.loads(await client.next_message(live))
    assert first["agents"] == []
    live.on_event(ready("2", old=AgentState.PAUSED))
    live.on_event(ready("1"))
    delta = json.loads(await client.next_message(live))
    assert [i["id"] for i in delta["items"]] == ["1"]


def test_campaign_stats_are_kept_and_validated() -> None:
    live = LiveState(clock=FakeClock())
    stats = CampaignStats(
        campaign_id=3, name="spring", status="active", mode="predictive", dial_level=2.0, lines_in_use=5,
        max_lines=30, agents_available=2, abandon_rate_24h=0.01, abandon_rate_30d=None, effective_today=40,
        target_today=100, at=0.0,
    )  # fmt: skip
    live.on_event(stats)
    assert live.snapshot()["campaigns"][0]["effective_today"] == 40
    with pytest.raises(ValueError, match="abandon_rate_24h"):
        CampaignStats(
            campaign_id=3, name="spring", status="active", mode="predictive", dial_level=2.0, lines_in_use=5,
            max_lines=30, agents_available=2, abandon_rate_24h=3.0, abandon_rate_30d=None, effective_today=40,
            target_today=100, at=0.0,
        )  # fmt: skip


async def test_publishing_never_waits_for_clients() -> None:
    bus = EventBus()
    live = LiveState(clock=FakeClock())
    live.attach(bus)
    clients = [live.connect() for _ in range(50)]
    for c in clients:
        await c.next_message(live)
    for i in range(1000):
        bus.publish(ready(str(i % 200)))
    # Nobody read anything since: each client holds one pending item per agent, not one per event.
    assert all(c.pending == 200 for c in clients)
    assert all(c.resyncs == 0 for c in clients)
    assert live.events_seen == 1000
    live.detach()
    bus.publish(ready("x"))
    assert live.events_seen == 1000


async def test_websocket_streams_snapshot_then_deltas_and_refuses_others(tmp_path: object) -> None:
    from pathlib import Path

    console = await build_console(Path(str(tmp_path)), clock=time.time)
    await console.add_user("sam", "supervisor")
    await console.add_user("alice", "agent", agent_id="1001")
    server = await serve_console(console.app, "127.0.0.1", 0)
    base = f"127.0.0.1:{server.port}"
    try:
        import httpx

        async with httpx.AsyncClient(base_url=f"http://{base}") as http:
            assert (await http.post("/api/session", json={"username": "sam", "password": PASSWORD})).status_code == 200
            cookie = f"dialer_session={http.cookies['dialer_session']}"
            async with websockets.connect(f"ws://{base}/ws/wallboard", additional_headers={"Cookie": cookie}) as ws:
                snapshot = json.loads(await asyncio.wait_for(ws.recv(), 5))
                assert snapshot["type"] == "snapshot"
                assert [a["id"] for a in snapshot["agents"]] == ["1001"]  # named agents are listed from the start
                console.bus.publish(ready("1001"))
                delta = json.loads(await asyncio.wait_for(ws.recv(), 5))
                assert delta["items"][0]["data"]["state"] == "ready"
                assert delta["items"][0]["data"]["name"] == "alice"
            # Another site's page cannot use the supervisor's cookie.
            with pytest.raises(websockets.exceptions.InvalidStatus):
                async with websockets.connect(
                    f"ws://{base}/ws/wallboard",
                    additional_headers={"Cookie": cookie},
                    origin=Origin("http://evil.example"),
                ):
                    pass
        with pytest.raises(websockets.exceptions.InvalidStatus):
            async with websockets.connect(f"ws://{base}/ws/wallboard"):
                pass
        async with httpx.AsyncClient(base_url=f"http://{base}") as http:
            await http.post("/api/session", json={"username": "alice", "password": PASSWORD})
            cookie = f"dialer_session={http.cookies['dialer_session']}"
            with pytest.raises(websockets.exceptions.InvalidStatus):
                async with websockets.connect(f"ws://{base}/ws/wallboard", additional_headers={"Cookie": cookie}):
                    pass
            async with websockets.connect(f"ws://{base}/ws/agent", additional_headers={"Cookie": cookie}) as ws:
                own = json.loads(await asyncio.wait_for(ws.recv(), 5))
                assert [a["id"] for a in own["agents"]] == ["1001"]
    finally:
        await server.stop()
        console.backend.close()
        await console.engine.dispose()
    assert server.task is not None and server.task.done()


async def test_console_service_starts_and_stops_inside_the_app_loop(tmp_path: object) -> None:
    from pathlib import Path
    from types import SimpleNamespace

    import httpx

    from dialer.web import ConsoleService, LocalBackend

    console = await build_console(Path(str(tmp_path)), clock=time.time)
    settings = console.settings.model_copy(update={"http": console.settings.http.model_copy(update={"port": 0})})
    dialer = SimpleNamespace(settings=settings, sessionmaker=console.sessionmaker, bus=console.bus)
    service = ConsoleService(dialer, LocalBackend(console.bus, console.sessionmaker))  # type: ignore[arg-type]
    await service.start()
    try:
        assert service.server is not None
        port = service.server.port
        async with httpx.AsyncClient() as http:
            response = await http.get(f"http://127.0.0.1:{port}/login")
            assert response.status_code == 200
        console.bus.publish(ready("42"))
        assert service.live is not None and service.live.agent("42") is not None
    finally:
        await service.stop()
        console.backend.close()
        await console.engine.dispose()
    console.bus.publish(ready("43"))
    assert service.live.agent("43") is None  # detached from the bus on stop
    async with httpx.AsyncClient() as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(f"http://127.0.0.1:{port}/login")
