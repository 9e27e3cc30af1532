"""The recordings tables, search, retention marking and the QA/survey reports on PostgreSQL
(JSONB gaps, numeric averages, timestamptz), migrated by infra.db.migrate like SQLite."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infra.db import create_engine, create_sessionmaker, migrate
from recordings.qa import QaForms, qa_report, save_survey_answer, submit_score, survey_report
from recordings.service import RecordingMeta, RecordingQuery, RecordingService, search_recordings
from telephony.aio.media_session import MediaSession
from telephony.media.bridge import Bridge
from tests.conftest import PostgresServer, require_postgres
from tests.integration.test_recordings_cli import StandInLeg, at, record

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]


@pytest.fixture
async def pg(postgres_server: PostgresServer) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    server = require_postgres(postgres_server)
    import asyncpg

    name = f"rec_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(host=server.host, port=server.port, user=server.user, database="postgres")
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    engine = create_engine(server.url(name))
    await migrate(engine)
    try:
        yield create_sessionmaker(engine)
    finally:
        await engine.dispose()


async def test_recordings_on_postgresql(pg: async_sessionmaker[AsyncSession], tmp_path: Path) -> None:
    root = tmp_path / "rec"
    old = await record(
        RecordingService(pg, root, clock=at("2026-01-01T10:00:00")), "pg-old", RecordingMeta("a1", 1, "spring")
    )
    service = RecordingService(pg, root, clock=at("2026-03-01T10:00:00"), retention_days=30)
    handle = await service.start("pg-new", *_legs(), RecordingMeta("a2", 1, "spring", None, "completed"))
    handle.pause("card")
    handle.resume()
    await handle.stop()
    async with pg() as session:
        rows = await search_recordings(session, RecordingQuery(campaign="1"))
        assert [r.call_id for r in rows] == ["pg-new", "pg-old"]
        assert rows[0].gaps[0]["reason"] == "card" and rows[0].started_at.tzinfo is not None
    report = await service.run_retention(datetime(2026, 3, 1, 12, tzinfo=UTC))
    assert report.deleted == (old.path,) and report.rows_marked == 1
    async with pg() as session, session.begin():
        await submit_score(
            session,
            handle.id,
            scorer="qa",
            scores=dict.fromkeys(("greeting", "needs", "resolution", "compliance", "courtesy"), 4),
            forms=QaForms(),
            now=datetime(2026, 3, 2, tzinfo=UTC),
        )
        assert [r.call_id for r in await search_recordings(session, RecordingQuery())] == ["pg-new"]
    assert await save_survey_answer(pg, "pg-new", 1, now=datetime(2026, 3, 2, tzinfo=UTC), agent_id="a2")
    async with pg() as session:
        (qa,) = await qa_report(session)
        (survey,) = await survey_report(session)
    assert (qa.agent_id, qa.count, qa.average) == ("a2", 1, 80.0) and isinstance(qa.average, float)
    assert (survey.key, survey.answers, survey.satisfied) == ("a2", 1, 1)


def _legs() -> tuple[MediaSession, Bridge]:
    a, b = StandInLeg(), StandInLeg()
    return cast(MediaSession, a), Bridge(a, b)
