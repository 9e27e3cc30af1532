"""QA forms from config, score validation, weighted totals and per-agent reports; survey answers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infra.db import create_engine, create_sessionmaker, migrate
from infra.settings import ConfigError
from recordings.models import QaScore, Recording, RecordingStatus
from recordings.qa import (
    DEFAULT_FORM,
    QaError,
    QaForms,
    ScoreError,
    qa_report,
    store_survey_answer,
    submit_score,
    survey_report,
    validate_scores,
    weighted_total,
)

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
FORMS = QaForms.from_config(
    {
        "spring": {
            "scale_min": 0,
            "scale_max": 4,
            "criteria": [
                {"name": "greeting", "label": "Greeting", "weight": 1},
                {"name": "compliance", "label": "Compliance", "weight": 3},
            ],
        }
    }
)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'qa.db'}")
    await migrate(engine)
    try:
        yield create_sessionmaker(engine)
    finally:
        await engine.dispose()


async def add_recording(db: async_sessionmaker[AsyncSession], rid: str, agent: str, campaign: str | None) -> None:
    async with db() as session, session.begin():
        session.add(
            Recording(
                id=rid,
                call_id=f"call-{rid}",
                agent_id=agent,
                campaign=campaign,
                started_at=NOW,
                path=f"2026/03/02/{rid}.wav",
                gaps=[],
                status=RecordingStatus.COMPLETE,
            )
        )


def test_form_lookup_falls_back_to_default_then_builtin() -> None:
    assert FORMS.form_for("spring").names == ("greeting", "compliance")
    assert FORMS.form_for("autumn") is DEFAULT_FORM and FORMS.form_name("autumn") == "default"
    custom_default = QaForms.from_config({"default": {"criteria": [{"name": "x", "label": "X"}]}})
    assert custom_default.form_for("anything").names == ("x",)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"criteria": []}, "[recordings.qa_forms.bad] criteria"),
        ({"criteria": [{"name": "a", "label": "A"}, {"name": "a", "label": "B"}]}, "'a' is listed twice"),
        ({"scale_min": 5, "scale_max": 5, "criteria": [{"name": "a", "label": "A"}]}, "must be below scale_max=5"),
        ({"criteria": [{"name": "a", "label": "A", "weight": 0}]}, "weight = 0"),
        ({"criteria": [{"name": "a", "label": "A"}], "colour": "red"}, "colour"),
    ],
)
def test_bad_forms_fail_with_one_line_naming_the_key(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        QaForms.from_config({"bad": table}, "site.toml")
    assert str(err.value).startswith("site.toml: ") and message in str(err.value)


def test_score_validation_names_the_field() -> None:
    form = FORMS.form_for("spring")
    with pytest.raises(ScoreError) as err:
        validate_scores(form, {"greeting": 1, "compliance": 2, "smile": 3})
    assert err.value.field == "scores.smile" and "unknown criterion; this form scores greeting, compliance" in str(
        err.value
    )
    with pytest.raises(ScoreError) as err:
        validate_scores(form, {"greeting": 5, "compliance": 2})
    assert err.value.field == "scores.greeting" and "5 is outside the scale; use 0 to 4" in str(err.value)
    with pytest.raises(ScoreError, match=r"scores.compliance: missing"):
        validate_scores(form, {"greeting": 1})
    with pytest.raises(ScoreError, match=r"scores.greeting: 'good' is not a number"):
        validate_scores(form, {"greeting": "good", "compliance": 1})
    with pytest.raises(ScoreError, match=r"scores.greeting: True is not a number"):
        validate_scores(form, {"greeting": True, "compliance": 1})


def test_weighted_total_by_hand() -> None:
    form = FORMS.form_for("spring")
    # (1 * 4 + 3 * 2) / ((1 + 3) * 4) = 10 / 16
    assert weighted_total(form, {"greeting": 4, "compliance": 2}) == 62.5
    assert weighted_total(form, {"greeting": 0, "compliance": 4}) == 75.0
    assert weighted_total(DEFAULT_FORM, dict.fromkeys(DEFAULT_FORM.names, 5.0)) == 100.0


async def test_scores_stored_and_reported_per_agent(db: async_sessionmaker[AsyncSession]) -> None:
    await add_recording(db, "r1", "a1", "spring")
    await add_recording(db, "r2", "a1", "spring")
    await add_recording(db, "r3", "a2", "spring")
    await add_recording(db, "r4", "a2", "autumn")
    async with db() as session, session.begin():
        s1 = await submit_score(
            session, "r1", scorer="qa1", scores={"greeting": 4, "compliance": 2}, forms=FORMS, now=NOW
        )
        await submit_score(session, "r2", scorer="qa1", scores={"greeting": 2, "compliance": 4}, forms=FORMS, now=NOW)
        await submit_score(session, "r3", scorer="qa2", scores={"greeting": 0, "compliance": 0}, forms=FORMS, now=NOW)
        # The autumn campaign has no form of its own: the built-in default, scale 0-5.
        await submit_score(
            session,
            "r4",
            scorer="qa2",
            scores={"greeting": 5, "needs": 5, "resolution": 5, "compliance": 5, "courtesy": 0},
            forms=FORMS,
            now=NOW + timedelta(days=1),
            comments="  rude at the end ",
        )
    assert s1.total == 62.5 and s1.agent_id == "a1" and s1.form == "spring"
    async with db() as session:
        report = {r.agent_id: r for r in await qa_report(session)}
        stored = await session.get(QaScore, s1.id)
        autumn_rows = await qa_report(session, campaign="autumn")
        first_day = await qa_report(session, until=NOW + timedelta(hours=1))
    assert stored is not None and stored.scores == {"greeting": 4.0, "compliance": 2.0}
    # a1: (62.5 + 87.5) / 2; a2: (0 + 90) / 2, the default form's weights are 1+2+3+3+1 = 10.
    assert (report["a1"].count, report["a1"].average, report["a1"].lowest, report["a1"].highest) == (
        2,
        75.0,
        62.5,
        87.5,
    )
    assert (report["a2"].count, report["a2"].average) == (2, 45.0)
    assert [(r.agent_id, r.count, r.average) for r in autumn_rows] == [("a2", 1, 90.0)]
    assert {r.agent_id: r.count for r in first_day} == {"a1": 2, "a2": 1}


async def test_score_of_unknown_recording_and_bad_values_store_nothing(db: async_sessionmaker[AsyncSession]) -> None:
    await add_recording(db, "r1", "a1", "spring")
    async with db() as session, session.begin():
        with pytest.raises(QaError, match="no recording 'nope'"):
            await submit_score(session, "nope", scorer="qa", scores={}, forms=FORMS, now=NOW)
        with pytest.raises(ScoreError, match=r"scores\.compliance: 9 is outside"):
            await submit_score(
                session, "r1", scorer="qa", scores={"greeting": 1, "compliance": 9}, forms=FORMS, now=NOW
            )
    async with db() as session:
        assert await qa_report(session) == []


async def test_survey_answers_reported_per_agent_and_campaign(db: async_sessionmaker[AsyncSession]) -> None:
    answers = [
        ("c1", 1, "a1", "spring"),
        ("c2", 1, "a1", "spring"),
        ("c3", 3, "a1", "autumn"),
        ("c4", 2, "a2", "spring"),
        ("c5", 1, "a2", None),
    ]
    async with db() as session, session.begin():
        for call_id, answer, agent, campaign in answers:
            await store_survey_answer(session, call_id, answer, now=NOW, agent_id=agent, campaign=campaign)
        with pytest.raises(ValueError, match="must be 1, 2 or 3"):
            await store_survey_answer(session, "c6", 4, now=NOW)
    async with db() as session:
        by_agent = {r.key: r for r in await survey_report(session, by="agent")}
        by_campaign = {r.key: r for r in await survey_report(session, by="campaign")}
        spring_agents = await survey_report(session, by="agent", campaign="spring")
    a1 = by_agent["a1"]
    assert (a1.answers, a1.satisfied, a1.average, a1.unsatisfied) == (3, 2, 0, 1)
    assert a1.satisfied_rate == pytest.approx(2 / 3) and a1.mean == pytest.approx(5 / 3)
    assert (by_agent["a2"].answers, by_agent["a2"].satisfied, by_agent["a2"].average) == (2, 1, 1)
    spring = by_campaign["spring"]
    assert (spring.answers, spring.satisfied, spring.average, spring.unsatisfied) == (3, 2, 1, 0)
    assert by_campaign[None].answers == 1 and by_campaign["autumn"].unsatisfied == 1
    assert [(r.key, r.answers) for r in spring_agents] == [("a1", 2), ("a2", 1)]
