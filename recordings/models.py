"""The recordings domain's tables: recording metadata, QA scores and post-call survey answers.

A ``recordings`` row is inserted when a recording starts (``status = "recording"``) and completed
when it stops (duration, size, sha256, gaps; ``status = "complete"``), so a process that dies
during a call leaves a row that says which call the playable file belongs to and that its hash
was never taken. ``path`` is relative to the recordings root (``<YYYY>/<MM>/<DD>/<call>.wav``),
so the root can move. Retention sets ``deleted_at`` and keeps the row for the QA history.
Campaigns are referred to by id *and* name without a foreign key: recordings outlive campaigns,
and this package sits below ``dialer`` (it cannot import its models). All instants are UTC.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, Float, ForeignKey, Index, Integer, SmallInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from infra.db import Base, JSONType, UTCDateTime, utcnow

__all__ = ["QaScore", "Recording", "RecordingStatus", "SurveyAnswerRow"]

BigId = BigInteger().with_variant(Integer(), "sqlite")


class RecordingStatus(StrEnum):
    RECORDING = "recording"  # started; no hash yet (a crash leaves it so)
    COMPLETE = "complete"  # stopped cleanly: duration, size and sha256 describe the file
    RECOVERED = "recovered"  # unfinished, then adopted by `dialer recordings verify --adopt`


class Recording(Base):
    __tablename__ = "recordings"
    __table_args__ = (
        Index("ix_recordings_agent_started", "agent_id", "started_at"),
        Index("ix_recordings_campaign_started", "campaign", "started_at"),
    )

    # A uuid4 hex: made before the row is written, so the file, the CDR and the log agree on it.
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    call_id: Mapped[str] = mapped_column(String(128), index=True)
    agent_id: Mapped[str | None] = mapped_column(String(64))
    campaign_id: Mapped[int | None] = mapped_column(BigInteger)
    campaign: Mapped[str | None] = mapped_column(String(100))
    queue: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    duration: Mapped[float | None] = mapped_column(Float)
    size: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(Text)
    # [{"start": samples, "end": samples, "start_s": s, "end_s": s, "reason": "..."}]
    gaps: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    # Why it was recorded: all | sample | on_demand.
    trigger: Mapped[str] = mapped_column(String(16), default="all")
    outcome: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default=RecordingStatus.RECORDING)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class QaScore(Base):
    __tablename__ = "qa_scores"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    recording_id: Mapped[str] = mapped_column(ForeignKey("recordings.id", ondelete="CASCADE"), index=True)
    # Denormalised from the recording, so per-agent reports need no join and survive retention.
    agent_id: Mapped[str | None] = mapped_column(String(64), index=True)
    campaign: Mapped[str | None] = mapped_column(String(100))
    form: Mapped[str] = mapped_column(String(100))
    scorer: Mapped[str] = mapped_column(String(64))
    scores: Mapped[dict[str, float]] = mapped_column(JSONType, default=dict)
    # Weighted score, 0-100 % of the form's scale.
    total: Mapped[float] = mapped_column(Float)
    comments: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SurveyAnswerRow(Base):
    __tablename__ = "survey_answers"
    __table_args__ = (CheckConstraint("answer IN (1, 2, 3)", name="answer"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    call_id: Mapped[str] = mapped_column(String(128), index=True)
    agent_id: Mapped[str | None] = mapped_column(String(64), index=True)
    campaign_id: Mapped[int | None] = mapped_column(BigInteger)
    campaign: Mapped[str | None] = mapped_column(String(100), index=True)
    queue: Mapped[str | None] = mapped_column(String(64))
    # 1 satisfied, 2 average, 3 unsatisfied (ivr.survey.SurveyAnswer).
    answer: Mapped[int] = mapped_column(SmallInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
