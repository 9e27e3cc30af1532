"""Two imports into one campaign at the same time, on SQLite and PostgreSQL.

The first import runs in its own thread, event loop and engine, as a second
``dialer lists import`` process would; its progress callback pauses it between two
committed batches, so the second import starts while the first is really running.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text, update

from dialer.campaigns import CampaignSettings, create_campaign
from dialer.lists import import_list
from dialer.lists.importer import STALE_IMPORT_AFTER, ImportConflictError, ImportSummary
from dialer.models import CallList, Contact, Lead, LeadStatus, ListStatus
from infra.db import create_engine, create_sessionmaker, utcnow
from tests.storage.conftest import Db

NOW = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)


def numbers_file(path: Path, start: int, rows: int) -> Path:
    with path.open("w", encoding="utf-8") as f:
        f.write("phone,name\n")
        for i in range(start, start + rows):
            f.write(f"138{i:08d},n{i}\n")
    return path


async def make_campaign(db: Db, name: str = "sales") -> int:
    async with db.sessionmaker() as s, s.begin():
        return (await create_campaign(s, name, CampaignSettings(region="CN"), now=NOW)).id


async def snapshot(db: Db) -> tuple[Any, ...]:
    async with db.sessionmaker() as s:
        contacts = sorted((await s.execute(select(Contact.phone))).scalars())
        leads = sorted((await s.execute(select(Lead.contact_id, Lead.status, Lead.list_id))).all())
        lists = sorted(
            (await s.execute(select(CallList.name, CallList.status, CallList.import_owner, CallList.error))).all(),
            key=str,
        )
    return contacts, leads, lists


class PausedImport:
    """An import in another thread that stops after ``pause_at`` rows until released."""

    def __init__(self, url: str, path: Path, pause_at: int, **kwargs: Any) -> None:
        self.url = url
        self.path = path
        self.pause_at = pause_at
        self.kwargs = kwargs
        self.paused = threading.Event()
        self.release = threading.Event()
        self.result: ImportSummary | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._main, daemon=True)

    def _progress(self, read: int, _pos: int, _total: int) -> None:
        if read == self.pause_at and not self.paused.is_set():
            self.paused.set()
            assert self.release.wait(60), "the test never released the first import"

    def _main(self) -> None:
        async def go() -> ImportSummary:
            engine = create_engine(self.url)
            try:
                return await import_list(create_sessionmaker(engine), self.path, progress=self._progress, **self.kwargs)
            finally:
                await engine.dispose()

        try:
            self.result = asyncio.run(go())
        except BaseException as exc:  # handed to the test
            self.error = exc
        finally:
            self.paused.set()

    async def start(self) -> None:
        self.thread.start()
        assert await asyncio.to_thread(self.paused.wait, 60)
        assert self.error is None, self.error

    async def finish(self) -> None:
        self.release.set()
        await asyncio.to_thread(self.thread.join, 60)
        assert not self.thread.is_alive()


async def test_second_import_is_refused_while_the_first_runs(db: Db, tmp_path: Path) -> None:
    campaign_id = await make_campaign(db)
    first = PausedImport(
        db.url, numbers_file(tmp_path / "first.csv", 0, 1000), pause_at=300,
        campaign="sales", batch_size=100, now=NOW,
    )  # fmt: skip
    await first.start()
    try:
        before = await snapshot(db)
        second = numbers_file(tmp_path / "second.csv", 5000, 200)
        for list_name in ("second", "first"):  # another list, and the very same list
            with pytest.raises(ImportConflictError) as err:
                await import_list(
                    db.sessionmaker, second, campaign="sales", list_name=list_name, batch_size=100, now=NOW
                )
            message = str(err.value)
            assert "\n" not in message
            assert "an import into campaign 'sales' is running (list 'first', started 2026-03-02 02:00 UTC" in message
            assert "if that process is dead, retry after 5 minutes" in message
            assert await snapshot(db) == before  # refused before writing anything
    finally:
        await first.finish()
    assert first.error is None, first.error
    assert first.result is not None and (first.result.imported, first.result.read) == (1000, 1000)
    async with db.sessionmaker() as s:
        the_list = (await s.execute(select(CallList))).scalar_one()
        statuses = dict(
            (
                await s.execute(
                    select(Lead.status, func.count()).where(Lead.campaign_id == campaign_id).group_by(Lead.status)
                )
            ).all()
        )
    assert (the_list.name, the_list.status, the_list.imported, the_list.import_owner) == ("first", "ready", 1000, None)
    assert statuses == {LeadStatus.READY: 1000}


async def test_import_whose_list_was_discarded_meanwhile_fails_loudly(db: Db, tmp_path: Path) -> None:
    """A first import silent for longer than STALE_IMPORT_AFTER is taken for dead and discarded;
    when it wakes up it must not mark a half list ready, nor touch the second import's rows."""
    await make_campaign(db)
    path = numbers_file(tmp_path / "calls.csv", 0, 600)
    first = PausedImport(db.url, path, pause_at=200, campaign="sales", batch_size=100, now=NOW)
    await first.start()
    try:
        async with db.sessionmaker() as s, s.begin():
            await s.execute(update(CallList).values(heartbeat_at=utcnow() - STALE_IMPORT_AFTER - timedelta(seconds=5)))
        # The same file into the same list: the second import discards the first's 200 rows.
        second = await import_list(
            db.sessionmaker, path, campaign="sales", batch_size=100, now=NOW + timedelta(minutes=6)
        )
        assert (second.imported, second.merged) == (600, 0)
    finally:
        await first.finish()
    assert isinstance(first.error, ImportConflictError)
    assert "list 'calls' of campaign 'sales' was discarded by another import while this one ran" in str(first.error)
    async with db.sessionmaker() as s:
        the_list = (await s.execute(select(CallList))).scalar_one()
        statuses = dict((await s.execute(select(Lead.status, func.count()).group_by(Lead.status))).all())
        contacts = (await s.execute(select(func.count()).select_from(Contact))).scalar_one()
    assert (the_list.status, the_list.imported, the_list.import_owner) == (ListStatus.READY, 600, None)
    assert statuses == {LeadStatus.READY: 600} and contacts == 600


async def _hold_import_lock(db: Db, campaign_id: int) -> tuple[Callable[[], Any], Any]:
    """Hold what an import's begin step needs: PostgreSQL's advisory lock, SQLite's writer lock."""
    if db.backend == "postgresql":
        conn = await db.engine.connect()
        await conn.begin()
        await conn.execute(text("SELECT pg_advisory_xact_lock(:a, :b)"), {"a": 0x4C495354, "b": campaign_id})

        async def release_pg() -> None:
            await conn.rollback()
            await conn.close()

        return release_pg, None
    path = db.url.split("///", 1)[1]
    raw = sqlite3.connect(path, timeout=0.1)
    raw.execute("BEGIN IMMEDIATE")

    async def release_sqlite() -> None:
        raw.rollback()
        raw.close()

    return release_sqlite, raw


async def test_begin_step_is_serialised_per_campaign(db: Db, tmp_path: Path) -> None:
    """Two imports starting together cannot both find the campaign free: the begin step
    waits for the lock (pg_advisory_xact_lock on PostgreSQL, the writer lock on SQLite)."""
    campaign_id = await make_campaign(db)
    release, _raw = await _hold_import_lock(db, campaign_id)
    task = asyncio.create_task(
        import_list(db.sessionmaker, numbers_file(tmp_path / "a.csv", 0, 50), campaign="sales", now=NOW)
    )
    try:
        await asyncio.sleep(1.0)
        assert not task.done()
        async with db.sessionmaker() as s:
            assert (await s.execute(select(func.count()).select_from(CallList))).scalar_one() == 0
    finally:
        await release()
    summary = await asyncio.wait_for(task, 30)
    assert summary.imported == 50
