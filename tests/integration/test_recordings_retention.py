"""Retention through the service: only recordings of days older than N are deleted, each deletion is
logged and its row marked; the runner for `dialer run` applies it periodically and finishes open
recordings when it stops."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from structlog.testing import capture_logs

from infra.bus import EventBus
from infra.db import create_engine, create_sessionmaker, migrate
from recordings.models import Recording, RecordingStatus
from recordings.service import RecordingDeleted, RecordingMeta, RecordingService, RecordingsRunner
from telephony.media.bridge import Bridge
from tests.integration.test_recordings_cli import StandInLeg, at, record

pytestmark = pytest.mark.timeout(60)
NOW = datetime(2026, 4, 10, 3, 0, tzinfo=UTC)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'dialer.db'}")
    await migrate(engine)
    try:
        yield create_sessionmaker(engine)
    finally:
        await engine.dispose()


async def rows(db: async_sessionmaker[AsyncSession]) -> dict[str, Recording]:
    async with db() as session:
        return {r.call_id: r for r in (await session.execute(select(Recording))).scalars()}


async def test_retention_deletes_only_old_days_and_logs_each(
    db: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    root = tmp_path / "rec"
    made = {}
    for call_id, when in [
        ("day-40", "2026-03-01T12:00:00"),
        ("day-31", "2026-03-10T00:00:01"),  # the first day older than 30 full days
        ("day-30", "2026-03-11T00:00:00"),  # kept: 30 days are kept whole
        ("today", "2026-04-10T01:00:00"),
    ]:
        made[call_id] = await record(RecordingService(db, root, clock=at(when)), call_id, RecordingMeta("a1"))
    bus = EventBus()
    deleted_events = bus.subscribe(types=RecordingDeleted)
    service = RecordingService(db, root, retention_days=30, bus=bus)

    with capture_logs() as logs:
        dry = await service.run_retention(NOW, dry_run=True)
    assert sorted(dry.deleted) == sorted([made["day-40"].path, made["day-31"].path])
    assert all((root / made[c].path).exists() for c in made)
    assert [e["path"] for e in logs if e["event"] == "recording.would_delete"] == [
        str(root / made["day-40"].path),
        str(root / made["day-31"].path),
    ]
    assert all(r.deleted_at is None for r in (await rows(db)).values())

    with capture_logs() as logs:
        report = await service.run_retention(NOW)
    assert report.rows_marked == 2
    assert not (root / made["day-40"].path).exists() and not (root / made["day-31"].path).exists()
    assert (root / made["day-30"].path).exists() and (root / made["today"].path).exists()
    file_logs = [e for e in logs if e["event"] == "recording.deleted"]
    row_logs = {e["call_id"]: e for e in logs if e["event"] == "recording.row_deleted"}
    assert sorted(e["path"] for e in file_logs) == sorted(str(root / made[c].path) for c in ("day-40", "day-31"))
    assert set(row_logs) == {"day-40", "day-31"} and row_logs["day-40"]["recording_id"] == made["day-40"].id
    after = await rows(db)
    assert after["day-40"].deleted_at == NOW and after["day-31"].deleted_at == NOW
    assert after["day-30"].deleted_at is None and after["today"].deleted_at is None
    events = [await asyncio.wait_for(deleted_events.__anext__(), 1) for _ in range(2)]
    assert {e.recording_id for e in events} == {made["day-40"].id, made["day-31"].id}
    assert not (root / "2026" / "03" / "01").exists()  # emptied day directories go too

    # A second run finds nothing; a row whose file vanished by hand is marked once its day expires.
    (root / made["day-30"].path).unlink()
    with capture_logs() as logs:
        again = await service.run_retention(NOW)
    assert again.deleted == () and again.rows_marked == 0
    later = await service.run_retention(datetime(2026, 4, 11, 3, 0, tzinfo=UTC))
    assert later.rows_marked == 1 and (await rows(db))["day-30"].deleted_at is not None


async def test_runner_applies_retention_and_finishes_open_recordings(
    db: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    root = tmp_path / "rec"
    old = await record(RecordingService(db, root, clock=at("2025-01-01T00:00:00")), "ancient", RecordingMeta())
    service = RecordingService(db, root, retention_days=30)
    a, b = StandInLeg(), StandInLeg()
    handle = await service.start("open-call", a, Bridge(a, b), RecordingMeta("a5"))  # type: ignore[arg-type]
    runner = RecordingsRunner(service, interval=3600)
    await runner.start()
    for _ in range(100):
        if not (root / old.path).exists():
            break
        await asyncio.sleep(0.02)
    assert not (root / old.path).exists()
    await runner.stop()
    assert handle.stopped and service.active_count == 0
    state = await rows(db)
    assert state["open-call"].status == RecordingStatus.COMPLETE and state["open-call"].sha256 is not None
    assert state["ancient"].deleted_at is not None
