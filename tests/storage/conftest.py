"""Repository tests run twice: on SQLite (a temp file) and on the throw-away PostgreSQL.

Each test gets a fresh, fully migrated database: on PostgreSQL a ``CREATE DATABASE ...
TEMPLATE`` copy of one migrated template (fast), on SQLite a new file.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from infra.db import create_engine, create_sessionmaker, migrate
from tests.conftest import TEMPLATE, _admin, _in_thread, postgres_template, require_postgres  # noqa: F401 - re-exported

_counter = itertools.count(1)


@dataclass
class Db:
    backend: str
    url: str
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]


@pytest.fixture(params=["sqlite", "postgresql"])
async def db(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[Db]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'dialer.db'}"
        engine = create_engine(url)
        await migrate(engine)
    else:
        server = require_postgres(request.getfixturevalue("postgres_template"))
        name = f"t{next(_counter)}_{abs(hash(request.node.nodeid)) % 10**8}"
        await _admin(server, f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
        url = server.url(name)
        engine = create_engine(url)
    try:
        yield Db(request.param, url, engine, create_sessionmaker(engine))
    finally:
        await engine.dispose()
