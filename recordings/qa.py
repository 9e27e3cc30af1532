"""Quality assurance: scoring forms per campaign, validated scores, per-agent reports, survey answers.

A form comes from ``[recordings.qa_forms.<campaign>]`` (``default`` for campaigns without one, a
built-in form when there is none at all)::

    [recordings.qa_forms.spring]
    scale_min = 0
    scale_max = 5
    criteria = [
      {name = "greeting", label = "Greeting and identification", weight = 1},
      {name = "compliance", label = "Read the mandatory statements", weight = 3},
    ]

A score gives every criterion a value on the scale. Its total is the weighted mean placed on the
scale as a percentage: ``100 * sum(w * (s - min)) / (sum(w) * (max - min))``, so totals of forms
with different scales compare. Survey answers (1 satisfied, 2 average, 3 unsatisfied, from
``ivr.survey``) are stored per call and counted per agent and per campaign.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql.elements import ColumnElement

from infra.settings import format_validation_error
from recordings.models import QaScore, Recording, SurveyAnswerRow

__all__ = [
    "DEFAULT_FORM",
    "AgentQaReport",
    "QaCriterion",
    "QaError",
    "QaForm",
    "QaForms",
    "ScoreError",
    "SurveyReportRow",
    "qa_report",
    "save_survey_answer",
    "store_survey_answer",
    "submit_score",
    "survey_report",
    "validate_scores",
    "weighted_total",
]

log = structlog.get_logger(__name__)


class QaError(Exception):
    """A QA operation that cannot be done (unknown or deleted recording), phrased with the fix."""


class ScoreError(ValueError):
    """A score that does not fit its form; ``field`` names the offending input (``scores.greeting``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class QaCriterion(_Model):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    label: str = Field(min_length=1, max_length=200)
    weight: float = Field(default=1.0, gt=0.0, le=1000.0)
    description: str = ""


class QaForm(_Model):
    scale_min: int = Field(default=0, ge=0, le=100)
    scale_max: int = Field(default=5, ge=1, le=100)
    criteria: tuple[QaCriterion, ...] = Field(min_length=1)

    @field_validator("criteria")
    @classmethod
    def _unique(cls, value: tuple[QaCriterion, ...]) -> tuple[QaCriterion, ...]:
        seen: set[str] = set()
        for c in value:
            if c.name in seen:
                raise ValueError(f"criterion {c.name!r} is listed twice; names must be unique")
            seen.add(c.name)
        return value

    @model_validator(mode="after")
    def _scale(self) -> QaForm:
        if self.scale_min >= self.scale_max:
            raise ValueError(f"scale_min={self.scale_min} must be below scale_max={self.scale_max}")
        return self

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.criteria)


DEFAULT_FORM = QaForm(
    criteria=(
        QaCriterion(name="greeting", label="Greeting and identification"),
        QaCriterion(name="needs", label="Understood the customer's need", weight=2),
        QaCriterion(name="resolution", label="Resolution or clear next step", weight=3),
        QaCriterion(name="compliance", label="Mandatory statements and data protection", weight=3),
        QaCriterion(name="courtesy", label="Courtesy and tone"),
    )
)


class QaForms:
    """The configured forms: a campaign's own, else ``default``, else :data:`DEFAULT_FORM`."""

    def __init__(self, forms: Mapping[str, QaForm] | None = None) -> None:
        self.forms = dict(forms or {})

    @classmethod
    def from_config(cls, tables: Mapping[str, Mapping[str, Any]], source: str = "config") -> QaForms:
        """Validate ``[recordings.qa_forms.<name>]`` tables; a problem is one :class:`ConfigError` line."""
        forms: dict[str, QaForm] = {}
        for name, table in tables.items():
            try:
                forms[name] = QaForm.model_validate(dict(table))
            except ValidationError as exc:
                raise format_validation_error(
                    exc, source, prefix=("recordings", "qa_forms", name), model=QaForm, env_prefix=None
                ) from None
        return cls(forms)

    def form_name(self, campaign: str | None) -> str:
        if campaign is not None and campaign in self.forms:
            return campaign
        return "default"

    def form_for(self, campaign: str | None) -> QaForm:
        return self.forms.get(self.form_name(campaign), DEFAULT_FORM)


def validate_scores(form: QaForm, scores: Mapping[str, Any]) -> dict[str, float]:
    """Every criterion scored once, on the scale; raises :class:`ScoreError` naming the field."""
    known = form.names
    for name in scores:
        if name not in known:
            raise ScoreError(f"scores.{name}", f"unknown criterion; this form scores {', '.join(known)}")
    out: dict[str, float] = {}
    for name in known:
        if name not in scores:
            raise ScoreError(f"scores.{name}", "missing; every criterion of the form needs a score")
        value = scores[name]
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ScoreError(f"scores.{name}", f"{value!r} is not a number")
        if not form.scale_min <= value <= form.scale_max:
            raise ScoreError(
                f"scores.{name}", f"{value:g} is outside the scale; use {form.scale_min} to {form.scale_max}"
            )
        out[name] = float(value)
    return out


def weighted_total(form: QaForm, scores: Mapping[str, float]) -> float:
    """The weighted score as a percentage of the scale (0-100), rounded to 0.01."""
    span = form.scale_max - form.scale_min
    weights = sum(c.weight for c in form.criteria)
    points = sum(c.weight * (scores[c.name] - form.scale_min) for c in form.criteria)
    return round(100.0 * points / (weights * span), 2)


async def submit_score(
    session: AsyncSession,
    recording_id: str,
    *,
    scorer: str,
    scores: Mapping[str, Any],
    forms: QaForms,
    now: datetime,
    comments: str | None = None,
) -> QaScore:
    """Validate and store a score of a recording (the caller commits)."""
    recording = await session.get(Recording, recording_id)
    if recording is None:
        raise QaError(f"no recording {recording_id!r}; find it with the search or `dialer recordings list`")
    if not scorer.strip():
        raise ScoreError("scorer", "empty; the scorer's user name is stored with the score")
    form = forms.form_for(recording.campaign)
    checked = validate_scores(form, scores)
    row = QaScore(
        recording_id=recording.id,
        agent_id=recording.agent_id,
        campaign=recording.campaign,
        form=forms.form_name(recording.campaign),
        scorer=scorer,
        scores=checked,
        total=weighted_total(form, checked),
        comments=(comments or "").strip() or None,
        created_at=now,
    )
    session.add(row)
    await session.flush()
    log.info("qa.scored", recording_id=recording.id, agent_id=recording.agent_id, scorer=scorer, total=row.total)
    return row


@dataclass(frozen=True, slots=True)
class AgentQaReport:
    agent_id: str | None
    count: int
    average: float
    """Mean of the scores' totals, % of the scale."""
    lowest: float
    highest: float


def _window(column: Any, since: datetime | None, until: datetime | None) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if since is not None:
        where.append(column >= since)
    if until is not None:
        where.append(column < until)
    return where


async def qa_report(
    session: AsyncSession,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    campaign: str | None = None,
    agent_id: str | None = None,
) -> list[AgentQaReport]:
    """Per agent: how many scores and their average total (scores created in ``[since, until)``)."""
    where = _window(QaScore.created_at, since, until)
    if campaign is not None:
        where.append(QaScore.campaign == campaign)
    if agent_id is not None:
        where.append(QaScore.agent_id == agent_id)
    stmt = (
        select(
            QaScore.agent_id, func.count(), func.avg(QaScore.total), func.min(QaScore.total), func.max(QaScore.total)
        )
        .where(*where)
        .group_by(QaScore.agent_id)
        .order_by(QaScore.agent_id)
    )
    rows = (await session.execute(stmt)).all()
    return [AgentQaReport(agent, int(n), round(float(avg), 2), float(lo), float(hi)) for agent, n, avg, lo, hi in rows]


# == survey =======================================================================================


async def store_survey_answer(
    session: AsyncSession,
    call_id: str,
    answer: int,
    *,
    now: datetime,
    agent_id: str | None = None,
    campaign_id: int | None = None,
    campaign: str | None = None,
    queue: str | None = None,
) -> SurveyAnswerRow:
    """Store a post-call survey answer (``ivr.survey.run_survey``'s result); the caller commits."""
    if isinstance(answer, bool) or answer not in (1, 2, 3):
        raise ValueError(f"survey answer {answer!r} for call {call_id!r}: must be 1, 2 or 3")
    row = SurveyAnswerRow(
        call_id=call_id,
        agent_id=agent_id,
        campaign_id=campaign_id,
        campaign=campaign,
        queue=queue,
        answer=int(answer),
        created_at=now,
    )
    session.add(row)
    await session.flush()
    log.info("survey.stored", call_id=call_id, agent_id=agent_id, campaign=campaign, answer=int(answer))
    return row


async def save_survey_answer(
    sessionmaker: async_sessionmaker[AsyncSession],
    call_id: str,
    answer: int | None,
    *,
    now: datetime,
    agent_id: str | None = None,
    campaign_id: int | None = None,
    campaign: str | None = None,
    queue: str | None = None,
) -> bool:
    """After ``ivr.survey.run_survey``: store its answer in its own transaction; None (no answer) stores
    nothing. Returns whether a row was written."""
    if answer is None:
        log.info("survey.no_answer", call_id=call_id, agent_id=agent_id)
        return False
    async with sessionmaker() as session, session.begin():
        await store_survey_answer(
            session,
            call_id,
            answer,
            now=now,
            agent_id=agent_id,
            campaign_id=campaign_id,
            campaign=campaign,
            queue=queue,
        )
    return True


@dataclass(frozen=True, slots=True)
class SurveyReportRow:
    key: str | None
    """The agent id or the campaign name (None: calls without one)."""
    answers: int
    satisfied: int
    average: int
    unsatisfied: int

    @property
    def satisfied_rate(self) -> float:
        """Share of satisfied answers (CSAT), 0-1."""
        return self.satisfied / self.answers if self.answers else 0.0

    @property
    def mean(self) -> float:
        """Mean answer, 1 (satisfied) to 3 (unsatisfied)."""
        if not self.answers:
            return 0.0
        return (self.satisfied + 2 * self.average + 3 * self.unsatisfied) / self.answers


async def survey_report(
    session: AsyncSession,
    *,
    by: Literal["agent", "campaign"] = "agent",
    since: datetime | None = None,
    until: datetime | None = None,
    campaign: str | None = None,
) -> list[SurveyReportRow]:
    """Survey answers counted per agent or per campaign (answers created in ``[since, until)``)."""
    key = SurveyAnswerRow.agent_id if by == "agent" else SurveyAnswerRow.campaign
    where = _window(SurveyAnswerRow.created_at, since, until)
    if campaign is not None:
        where.append(SurveyAnswerRow.campaign == campaign)

    def count(value: int) -> Any:
        return func.sum(case((SurveyAnswerRow.answer == value, 1), else_=0))

    stmt = select(key, func.count(), count(1), count(2), count(3)).where(*where).group_by(key).order_by(key)
    rows = (await session.execute(stmt)).all()
    return [SurveyReportRow(k, int(n), int(s or 0), int(a or 0), int(u or 0)) for k, n, s, a, u in rows]
