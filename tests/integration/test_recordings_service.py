"""The service around the recorder: recording by policy, surviving a database outage, and the
post-call survey's answer going from the IVR into the reports."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from structlog.testing import capture_logs

from infra.db import create_engine, create_sessionmaker, migrate
from ivr.survey import run_survey
from ivr.testing import FakeCall, FakePrompts
from recordings.models import Recording
from recordings.qa import save_survey_answer, survey_report
from recordings.recorder import sha256_file
from recordings.service import Policy, RecordingMeta, RecordingPolicy, RecordingService, sample_draw
from telephony.aio.media_session import MediaSession
from telephony.media.bridge import Bridge
from tests.integration.test_recordings_cli import StandInLeg, record

pytestmark = pytest.mark.timeout(60)
NOW = datetime(2026, 5, 4, 15, 0, tzinfo=UTC)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'svc.db'}")
    await migrate(engine)
    try:
        yield create_sessionmaker(engine)
    finally:
        await engine.dispose()


async def test_record_by_policy(db: async_sessionmaker[AsyncSession], tmp_path: Path) -> None:
    service = RecordingService(db, tmp_path / "rec", seed="site")
    a, b = StandInLeg(), StandInLeg()
    bridge = Bridge(a, b)
    leg = cast(MediaSession, a)
    assert await service.record_by_policy("p-1", leg, bridge, RecordingMeta(), RecordingPolicy(Policy.NONE)) is None
    assert (
        await service.record_by_policy("p-1", leg, bridge, RecordingMeta(), RecordingPolicy(Policy.ON_DEMAND)) is None
    )
    assert bridge.tap is None and service.active_count == 0
    # Two calls on either side of a 50 % sample, chosen by their reproducible draws.
    ids = [f"s-{i}" for i in range(50)]
    inside = next(i for i in ids if sample_draw(i, "site") < 0.5)
    outside = next(i for i in ids if sample_draw(i, "site") >= 0.5)
    half = RecordingPolicy(Policy.SAMPLE, 50.0)
    assert await service.record_by_policy(outside, leg, bridge, RecordingMeta(), half) is None
    handle = await service.record_by_policy(inside, leg, bridge, RecordingMeta(agent_id="a3"), half)
    assert handle is not None and handle.trigger == "sample" and bridge.tap is handle.tap
    summary = await handle.stop()
    assert bridge.tap is None and summary.saved
    assert (await handle.stop()) == summary  # a second stop returns the same result
    assert await service.set_outcome(handle.id, "SALE") and not await service.set_outcome("nope", "SALE")
    async with db() as session:
        row = await session.get(Recording, handle.id)
    assert row is not None and row.outcome == "SALE"
    with pytest.raises(ValueError, match="first leg must be the customer's"):
        await service.start("wrong-way", cast(MediaSession, b), bridge)


async def test_database_outage_does_not_stop_the_recording(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")  # never migrated: no tables
    try:
        service = RecordingService(create_sessionmaker(engine), tmp_path / "rec")
        with capture_logs() as logs:
            summary = await record(service, "db-down", RecordingMeta("a4"), seconds=0.5)
    finally:
        await engine.dispose()
    assert not summary.saved
    assert sha256_file(tmp_path / "rec" / summary.path) == summary.info.sha256
    failures = [e for e in logs if e["event"] == "recording.metadata_failed"]
    assert [e["stage"] for e in failures] == ["start", "stop"]
    assert "dialer recordings verify --all --adopt" in failures[1]["fix"] and failures[1]["sha256"]


async def test_survey_answer_from_the_ivr_is_reported(db: async_sessionmaker[AsyncSession]) -> None:
    prompts = FakePrompts()
    meta: dict[str, Any] = {"agent_id": "a8", "campaign_id": 3, "campaign": "winter", "queue": "sales"}
    for call_id, digit in [("v-1", "2"), ("v-2", "1")]:
        call = FakeCall(prompts, id=call_id, reactions={"survey_question": [digit]}, durations={"survey_question": 1})
        answer = await asyncio.wait_for(run_survey(call, prompts), 5)
        assert await save_survey_answer(db, call_id, answer, now=NOW, **meta)
    silent = FakeCall(prompts, id="v-3", reactions={}, durations={"survey_question": 0.01})
    nothing = await asyncio.wait_for(run_survey(silent, prompts, attempts=1, timeout=0.01), 5)
    assert nothing is None and not await save_survey_answer(db, "v-3", nothing, now=NOW, **meta)
    async with db() as session:
        (agent,) = await survey_report(session, by="agent")
        (campaign,) = await survey_report(session, by="campaign")
    assert (agent.key, agent.answers, agent.satisfied, agent.average) == ("a8", 2, 1, 1)
    assert (campaign.key, campaign.answers) == ("winter", 2)
