"""Database plumbing shared by every domain: the async engine, sessions, the declarative
``Base`` and Alembic migrations.

SQLite (through aiosqlite) is the default: one file under the data directory, in WAL mode
so the dialer's readers never wait for the writer, with foreign keys on and a busy timeout.
PostgreSQL (through asyncpg) is used when ``database.url`` says so; several dialer nodes can
then share one database. Every table hangs off the single :class:`Base` below, whose
naming convention gives constraints stable names so Alembic autogenerates clean diffs on
both back ends. Times are stored in UTC through :class:`UTCDateTime`.

Domains keep their tables next to their code (``dialer/models.py``, later ``acd/models.py``,
``recordings/models.py``); :func:`import_all_models` imports whichever of those exist so
that ``Base.metadata`` is complete for Alembic.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import JSON, DateTime, Dialect, MetaData, event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator, TypeEngine

__all__ = [
    "DOMAIN_MODEL_MODULES",
    "MIGRATIONS_DIR",
    "Base",
    "JSONType",
    "UTCDateTime",
    "alembic_config",
    "create_engine",
    "create_sessionmaker",
    "default_sqlite_url",
    "import_all_models",
    "is_postgresql",
    "is_sqlite",
    "migrate",
    "utcnow",
]

log = structlog.get_logger()

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# Every module that declares tables on Base. Add a domain's models module here when it
# gets one; modules that do not exist (yet) are skipped, so the list can run ahead.
DOMAIN_MODEL_MODULES: tuple[str, ...] = (
    "dialer.models",
    "dialer.web.models",
    "acd.models",
    "recordings.models",
    "ivr.models",
)

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """The one declarative base: one MetaData, one naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    """The current instant, timezone-aware UTC (for defaults only: pure code takes `now`)."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """An instant stored in UTC; always returned timezone-aware.

    PostgreSQL keeps ``timestamptz``. SQLite has no time zones, so the value is converted
    to UTC and stored naive in SQLAlchemy's fixed ISO format: string order is then time
    order and ``<=`` in SQL compares instants correctly. Naive input is refused, because
    guessing its zone is how calls end up at 3 a.m.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} given: pass a timezone-aware UTC instant")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _json_type() -> TypeEngine[Any]:
    return JSON().with_variant(JSONB(), "postgresql")


JSONType = _json_type()


def default_sqlite_url(data_dir: Path) -> str:
    return f"sqlite+aiosqlite:///{Path(data_dir).resolve() / 'dialer.db'}"


def is_sqlite(url: str | URL) -> bool:
    return make_url(str(url) if isinstance(url, URL) else url).get_backend_name() == "sqlite"


def is_postgresql(url: str | URL) -> bool:
    return make_url(str(url) if isinstance(url, URL) else url).get_backend_name() == "postgresql"


def _set_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # WAL lets readers (reports, the dialer's claim query) run while an import writes.
        cursor.execute("PRAGMA journal_mode=WAL")
        # NORMAL is durable across application crashes in WAL mode; only an OS crash can
        # lose the last commits, which is the usual trade for a 10x faster commit.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
    finally:
        cursor.close()


def create_engine(url: str, *, echo: bool = False, pool_size: int = 5) -> AsyncEngine:
    """An async engine for ``url``; SQLite files get their directory created and pragmas set."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    kwargs: dict[str, Any] = {"echo": echo}
    if backend == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        # Batched imports send IN (...) lists of varying length, each a distinct statement;
        # sqlite3's default cache of 128 prepared statements of thousands of parameters
        # each then holds on to ~100 MB.
        kwargs["connect_args"] = {"cached_statements": 16}
    elif backend == "postgresql":
        kwargs["pool_size"] = pool_size
        kwargs["pool_pre_ping"] = True
    engine = create_async_engine(url, **kwargs)
    if backend == "sqlite":
        event.listen(engine.sync_engine, "connect", _set_sqlite_pragmas)
    return engine


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions the documented way: one per task, nothing expires on commit (no lazy loads)."""
    return async_sessionmaker(engine, expire_on_commit=False)


def import_all_models(modules: Iterable[str] = DOMAIN_MODEL_MODULES) -> list[str]:
    """Import every domain models module that exists, so ``Base.metadata`` knows all tables."""
    loaded: list[str] = []
    for name in modules:
        parent, _, _ = name.rpartition(".")
        try:
            if parent and importlib.util.find_spec(parent) is None:
                continue
            if importlib.util.find_spec(name) is None:
                continue
        except ModuleNotFoundError:
            continue
        importlib.import_module(name)
        loaded.append(name)
    return loaded


def alembic_config(url: str | None = None, connection: Connection | None = None) -> Any:
    """An Alembic ``Config`` pointing at the migrations shipped inside this package."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def _upgrade(connection: Connection, revision: str) -> None:
    from alembic import command

    command.upgrade(alembic_config(connection=connection), revision)


async def migrate(engine: AsyncEngine, revision: str = "head") -> str | None:
    """Apply Alembic migrations up to ``revision`` on ``engine``; returns the new revision."""
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade, revision)
    async with engine.connect() as conn:
        current = await conn.run_sync(_current_revision)
    log.debug("database migrated", revision=current, url=engine.url.render_as_string(hide_password=True))
    return current


def _current_revision(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def run_migrations_blocking(url: str) -> str | None:
    """Synchronous wrapper for scripts: migrate the database at ``url`` and dispose."""

    async def _go() -> str | None:
        engine = create_engine(url)
        try:
            return await migrate(engine)
        finally:
            await engine.dispose()

    return asyncio.run(_go())
