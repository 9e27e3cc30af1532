"""The ACD's tables: agents (SIP account as HA1 hashes, skills, connection mode), queues, queue
memberships, the queue_log event table and callback requests, as typed SQLAlchemy 2 models.

Agents never have a plain password stored: ``ha1_md5`` / ``ha1_sha256`` / ``ha1_sha512_256`` are
``H(username:realm:password)`` (RFC 7616 §3.4.2) for the realm in ``realm``; the registrar
verifies digest answers against them. ``queue_log`` follows Asterisk's queue_log layout
(``time|callid|queue|agent|event|data1..data5``) with the time in UTC, so reports read it even
when the service is not running. ``callback_requests`` keeps every callback's state so that a
restart neither loses one nor dials one twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from infra.db import Base, JSONType, UTCDateTime, utcnow

__all__ = ["AgentRow", "CallbackRow", "QueueLogRow", "QueueMemberRow", "QueueRow"]

BigId = BigInteger().with_variant(Integer(), "sqlite")


class AgentRow(Base):
    """One agent. ``skills`` maps skill name to level 1-10; ``mode`` is ``ring`` or ``nailed``."""

    __tablename__ = "agents"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    extension: Mapped[str | None] = mapped_column(String(32), unique=True)
    sip_username: Mapped[str] = mapped_column(String(64), unique=True)
    realm: Mapped[str] = mapped_column(String(128), default="dialer")
    ha1_md5: Mapped[str | None] = mapped_column(String(32))
    ha1_sha256: Mapped[str | None] = mapped_column(String(64))
    ha1_sha512_256: Mapped[str | None] = mapped_column(String(64))
    mode: Mapped[str] = mapped_column(String(16), default="ring")
    skills: Mapped[dict[str, int]] = mapped_column(JSONType, default=dict)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class QueueRow(Base):
    """One queue; ``settings`` holds the queue's configuration (strategy, timers, destinations)."""

    __tablename__ = "queues"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    settings: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class QueueMemberRow(Base):
    """An agent's membership of a queue; the lower the penalty, the earlier the agent is tried."""

    __tablename__ = "queue_members"

    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True)
    queue_id: Mapped[str] = mapped_column(ForeignKey("queues.id", ondelete="CASCADE"), primary_key=True, index=True)
    penalty: Mapped[int] = mapped_column(Integer, default=0)


class QueueLogRow(Base):
    """One queue_log line: ``time`` (UTC), ``call_id``, ``queue``, ``agent``, ``event`` and data1..data5.

    Verbs and data fields are Asterisk's (see ``acd.queue_log.VERBS``); agent-only rows have
    queue ``NONE``, queue-only rows agent ``NONE``.
    """

    __tablename__ = "queue_log"
    __table_args__ = (
        Index("ix_queue_log_queue_time", "queue", "time"),
        Index("ix_queue_log_agent_time", "agent", "time"),
        Index("ix_queue_log_event_time", "event", "time"),
        # Sticky-agent look-ups find a caller's ENTERQUEUE rows by number (data2, the callerid).
        Index("ix_queue_log_event_data2", "event", "data2"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    time: Mapped[datetime] = mapped_column(UTCDateTime)
    call_id: Mapped[str] = mapped_column(String(128), index=True)
    queue: Mapped[str] = mapped_column(String(64))
    agent: Mapped[str] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(32))
    data1: Mapped[str] = mapped_column(String(255), default="")
    data2: Mapped[str] = mapped_column(String(255), default="")
    data3: Mapped[str] = mapped_column(String(255), default="")
    data4: Mapped[str] = mapped_column(String(255), default="")
    data5: Mapped[str] = mapped_column(String(255), default="")


class CallbackRow(Base):
    """A callback request: from a waiting caller, a menu (complaints), or an agent's schedule.

    ``state``: requested -> offered -> dialing -> done | failed (``acd.CallbackState``), plus
    ``scheduled`` for an agent's callback not due yet. ``due_at`` is the SLA deadline;
    ``scheduled_for`` the earliest time to call (agent-scheduled callbacks). ``arrived_at`` is
    when the request took its place in line (the caller's arrival for a waiting caller's
    request), so a callback restored after a restart keeps that place.
    """

    __tablename__ = "callback_requests"
    __table_args__ = (Index("ix_callback_requests_state_due", "state", "due_at"),)

    id: Mapped[str] = mapped_column(String(160), primary_key=True)
    call_id: Mapped[str] = mapped_column(String(160))
    queue: Mapped[str] = mapped_column(String(64))
    number: Mapped[str | None] = mapped_column(String(64))
    contact_id: Mapped[str | None] = mapped_column(String(64))
    complaint: Mapped[bool] = mapped_column(Boolean, default=False)
    state: Mapped[str] = mapped_column(String(16), default="requested")
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    arrived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    scheduled_for: Mapped[datetime | None] = mapped_column(UTCDateTime)
    owner_agent: Mapped[str | None] = mapped_column(String(64))
    agent_id: Mapped[str | None] = mapped_column(String(64))
    at_risk: Mapped[bool] = mapped_column(Boolean, default=False)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    note: Mapped[str | None] = mapped_column(Text)
