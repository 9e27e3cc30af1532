"""Fixtures of the web console tests: a migrated SQLite database, the bus, the dev backend and users."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from dialer.campaigns import CampaignSettings, create_campaign
from dialer.web import LiveState, LocalBackend, create_app
from dialer.web.auth import hash_password
from dialer.web.models import User
from infra.bus import EventBus
from infra.db import create_engine, create_sessionmaker, migrate
from infra.settings import Settings, load_settings

PASSWORD = "correct horse battery"
_PASSWORD_HASH = hash_password(PASSWORD)  # argon2 is slow on purpose: hash once per test run


class FakeClock:
    """Epoch seconds that only move when the test says so."""

    def __init__(self, start: float = 1_790_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Console:
    app: FastAPI
    bus: EventBus
    backend: LocalBackend
    live: LiveState
    sessionmaker: async_sessionmaker[AsyncSession]
    engine: AsyncEngine
    settings: Settings
    clock: Any  # FakeClock, or time.time for the browser tests
    data_dir: Path

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://console.test")

    async def add_user(self, username: str, role: str, agent_id: str | None = None) -> None:
        async with self.sessionmaker() as session:
            session.add(User(username=username, password_hash=_PASSWORD_HASH, role=role, agent_id=agent_id))
            await session.commit()

    async def add_campaign(self, name: str = "spring", **settings: object) -> int:
        async with self.sessionmaker() as session:
            campaign = await create_campaign(session, name, CampaignSettings.model_validate(settings))
            await session.commit()
            return campaign.id


async def login(client: httpx.AsyncClient, username: str, password: str = PASSWORD) -> str:
    """Log in through the JSON API; returns the CSRF token."""
    response = await client.post("/api/session", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    token: str = response.json()["csrf_token"]
    return token


async def build_console(
    tmp_path: Path, clock: Callable[[], float] | None = None, database_url: str | None = None, **http: object
) -> Console:
    """A console on a fresh database (SQLite unless ``database_url``); ``clock`` defaults to a :class:`FakeClock`."""
    clock = clock or FakeClock()
    data_dir = tmp_path / "data"
    settings = load_settings(
        None,
        site={"data_dir": data_dir, "timezone": "Asia/Shanghai"},
        database={"url": database_url},
        http={"secret_key": "test-secret-key-0123456789", **http},
    )
    engine = create_engine(settings.database_url)
    await migrate(engine)
    sessionmaker = create_sessionmaker(engine)
    bus = EventBus()
    backend = LocalBackend(bus, sessionmaker)
    live = LiveState(clock=clock)
    app = create_app(settings=settings, sessionmaker=sessionmaker, bus=bus, backend=backend, live=live, clock=clock)
    return Console(app, bus, backend, live, sessionmaker, engine, settings, clock, data_dir)


@pytest.fixture
async def console(tmp_path: Path) -> AsyncIterator[Console]:
    c = await build_console(tmp_path)
    await c.add_user("alice", "agent", agent_id="1001")
    await c.add_user("bob", "agent", agent_id="1002")
    await c.add_user("sam", "supervisor")
    await c.add_user("mia", "manager")
    await c.add_user("root", "admin")
    try:
        yield c
    finally:
        c.backend.close()
        c.live.detach()
        await c.engine.dispose()
