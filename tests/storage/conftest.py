"""Repository tests run twice: on SQLite (a temp file) and on the throw-away PostgreSQL.

Each test gets a fresh, fully migrated database: on PostgreSQL a ``CREATE DATABASE ...
TEMPLATE`` copy of one migrated template (fast), on SQLite a new file.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from infra.db import create_engine, create_sessionmaker, migrate, run_migrations_blocking
from tests.conftest import PostgresServer, require_postgres

TEMPLATE = "dialer_template"
_counter = itertools.count(1)


@dataclass
class Db:
    backend: str
    url: str
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]


async def _admin(server: PostgresServer, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(host=server.host, port=server.port, user=server.user, database="postgres")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _in_thread(fn, *args):  # type: ignore[no-untyped-def]
    # Session fixtures may be first requested from inside a running event loop (an async
    # fixture), where asyncio.run() is refused: run the work on a thread of its own.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(fn, *args).result()


@pytest.fixture(scope="session")
def postgres_template(postgres_server: PostgresServer) -> Iterator[PostgresServer]:
    """The server with a migrated template database, created once per session."""
    if postgres_server.error is None:
        try:
            _in_thread(asyncio.run, _admin(postgres_server, f'CREATE DATABASE "{TEMPLATE}"'))
            _in_thread(run_migrations_blocking, postgres_server.url(TEMPLATE))
        except Exception as exc:  # any failure here means: no usable PostgreSQL
            postgres_server.error = f"could not prepare the template database: {type(exc).__name__}: {exc}"
    yield postgres_server


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
