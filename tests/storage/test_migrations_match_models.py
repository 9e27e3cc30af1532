"""The Alembic migrations build exactly the tables the typed models declare (no drift), on SQLite.

Alembic's autogenerate comparison runs against a database migrated to head: any column, table,
index or type that a model has and no migration creates (or the other way round) shows up as a
difference, and the test names it.
"""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from infra.db import Base, create_engine, import_all_models, migrate


async def test_head_migration_matches_the_models(tmp_path: Path) -> None:
    import_all_models()
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")
    try:
        head = await migrate(engine)
        assert head is not None
        async with engine.connect() as conn:
            diffs = await conn.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(sync, opts={"compare_type": True}), Base.metadata
                )
            )
            mode = (await conn.execute(text("PRAGMA journal_mode"))).scalar_one()
    finally:
        await engine.dispose()
    assert diffs == [], f"models and migrations differ: {diffs}"
    assert str(mode).lower() == "wal"  # the SQLite file runs in WAL mode
