"""The dialer's tables: contacts, lists, campaigns, leads, DNC, call attempts (CDR) and
disposition codes, as typed SQLAlchemy 2 models on :class:`infra.db.Base`.

A *contact* is a person known by a primary E.164 number (unique across the database) plus
up to three alternates, with the IANA time zone candidates of that number. A *lead* is a
contact inside one campaign (unique per campaign); it carries everything the dialer needs
to decide the next attempt. A lead's ``status`` is ``pending`` while the import that
created it runs: only ``ready`` and ``callback`` leads are ever claimed, so a half-finished
import is never dialled. All instants are UTC (:class:`infra.db.UTCDateTime`).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from infra.db import Base, JSONType, UTCDateTime, utcnow

__all__ = [
    "CallAttempt",
    "CallList",
    "Campaign",
    "CampaignStatus",
    "Contact",
    "Disposition",
    "DncEntry",
    "Lead",
    "LeadStatus",
    "ListStatus",
]

# Integer primary keys that are BIGINT on PostgreSQL (a busy site passes 2**31 CDRs) and
# INTEGER on SQLite, where only "INTEGER PRIMARY KEY" aliases the fast rowid.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class CampaignStatus(StrEnum):
    PAUSED = "paused"
    ACTIVE = "active"
    ARCHIVED = "archived"


class ListStatus(StrEnum):
    IMPORTING = "importing"
    READY = "ready"
    FAILED = "failed"


class LeadStatus(StrEnum):
    PENDING = "pending"  # written by an import still running: invisible to the dialer
    READY = "ready"  # may be claimed once next_attempt_at has passed
    CALLBACK = "callback"  # an agent promised a call at callback_at
    DIALING = "dialing"  # claimed by a dialer node
    DONE = "done"  # a final disposition was set
    DNC = "dnc"  # found on a DNC list at dial time
    EXHAUSTED = "exhausted"  # attempts or the reach deadline ran out


CLAIMABLE_LEAD_STATUSES: tuple[str, ...] = (LeadStatus.READY, LeadStatus.CALLBACK)


class Contact(Base):
    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    phone: Mapped[str] = mapped_column(String(20), unique=True)
    alt_phones: Mapped[list[str]] = mapped_column(JSONType, default=list)
    name: Mapped[str | None] = mapped_column(String(200))
    timezones: Mapped[list[str]] = mapped_column(JSONType, default=list)
    country: Mapped[str | None] = mapped_column(String(2))
    region: Mapped[str | None] = mapped_column(String(100))
    segment: Mapped[str | None] = mapped_column(String(100))
    vip: Mapped[bool] = mapped_column(Boolean, default=False)
    external_id: Mapped[str | None] = mapped_column(String(100), index=True)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def numbers(self) -> list[str]:
        """Primary number first, then the alternates: index into this with Lead.number_index."""
        return [self.phone, *self.alt_phones]


class Campaign(Base):
    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    status: Mapped[str] = mapped_column(String(16), default=CampaignStatus.PAUSED)
    # Validated JSON of dialer.campaigns.CampaignSettings.
    settings: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CallList(Base):
    """One named list of a campaign; each import run writes into exactly one list."""

    __tablename__ = "lists"
    __table_args__ = (UniqueConstraint("campaign_id", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default=ListStatus.IMPORTING)
    source_file: Mapped[str | None] = mapped_column(Text)
    rows_read: Mapped[int] = mapped_column(Integer, default=0)
    imported: Mapped[int] = mapped_column(Integer, default=0)
    merged: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    dnc_suppressed: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    import_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    import_finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The import writing into the list while it is 'importing' ("host:pid:random"), and when
    # it last committed a batch: a list whose heartbeat is older than
    # dialer.lists.importer.STALE_IMPORT_AFTER belongs to a dead process.
    import_owner: Mapped[str | None] = mapped_column(String(128))
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Lead(Base):
    __tablename__ = "leads"
    __table_args__ = (
        UniqueConstraint("campaign_id", "contact_id"),
        # The dialer's claim query: WHERE campaign_id=? AND status IN (...) AND next_attempt_at <= now.
        Index("ix_leads_claim", "campaign_id", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    list_id: Mapped[int | None] = mapped_column(ForeignKey("lists.id", ondelete="SET NULL"), index=True)
    status: Mapped[str] = mapped_column(String(16), default=LeadStatus.READY)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Attempts per number, parallel to Contact.numbers (max attempts per number).
    number_attempts: Mapped[list[int]] = mapped_column(JSONType, default=list)
    number_index: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    dayparts_tried: Mapped[list[str]] = mapped_column(JSONType, default=list)
    last_outcome: Mapped[str | None] = mapped_column(String(32))
    last_disposition: Mapped[str | None] = mapped_column(String(32))
    callback_owner: Mapped[str | None] = mapped_column(String(64))
    callback_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The customer asked for callback_at: it may fall outside the calling window.
    callback_customer_requested: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    # Why the lead is called at next_attempt_at, or why it is not called again (shown per lead).
    next_attempt_reason: Mapped[str | None] = mapped_column(Text)
    reach_deadline_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DncEntry(Base):
    """A number (or a number prefix) never to be called: globally, or in one campaign."""

    __tablename__ = "dnc"
    __table_args__ = (
        # NULL campaign_id means global; NULLs are distinct in UNIQUE, hence two partial indexes.
        Index(
            "uq_dnc_global_number",
            "number",
            "is_prefix",
            unique=True,
            sqlite_where=text("campaign_id IS NULL"),
            postgresql_where=text("campaign_id IS NULL"),
        ),
        Index(
            "uq_dnc_campaign_number",
            "campaign_id",
            "number",
            "is_prefix",
            unique=True,
            sqlite_where=text("campaign_id IS NOT NULL"),
            postgresql_where=text("campaign_id IS NOT NULL"),
        ),
        Index("ix_dnc_number", "number"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # "+8613800138000", or a prefix such as "+86400" when is_prefix.
    number: Mapped[str] = mapped_column(String(20))
    is_prefix: Mapped[bool] = mapped_column(Boolean, default=False)
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    reason: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CallAttempt(Base):
    """One dialled call: the CDR. Every timestamp the call went through, and how it ended."""

    __tablename__ = "call_attempts"
    __table_args__ = (Index("ix_call_attempts_campaign_dialled", "campaign_id", "dialled_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    call_id: Mapped[str | None] = mapped_column(String(128), index=True)
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id", ondelete="SET NULL"), index=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"), index=True)
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id", ondelete="SET NULL"))
    number: Mapped[str] = mapped_column(String(20))
    number_index: Mapped[int] = mapped_column(Integer, default=0)
    node: Mapped[str | None] = mapped_column(String(64))
    dialled_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ringing_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    bridged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sip_status: Mapped[int | None] = mapped_column(Integer)
    sip_reason: Mapped[str | None] = mapped_column(String(200))
    # busy | no_answer | rejected | failed | machine | abandoned | completed
    outcome: Mapped[str | None] = mapped_column(String(32))
    amd_result: Mapped[str | None] = mapped_column(String(32))
    agent_id: Mapped[str | None] = mapped_column(String(64), index=True)
    queue: Mapped[str | None] = mapped_column(String(64))
    recording_id: Mapped[str | None] = mapped_column(String(64))
    recording_path: Mapped[str | None] = mapped_column(Text)
    disposition: Mapped[str | None] = mapped_column(String(32))
    disposition_note: Mapped[str | None] = mapped_column(Text)
    talk_seconds: Mapped[float | None] = mapped_column()


class Disposition(Base):
    """A campaign's disposition codes and what each one means for reports and retries.

    Kept in sync with the ``dispositions`` of the campaign's settings, so reports can join
    CDRs on it (effective, success) without parsing JSON.
    """

    __tablename__ = "dispositions"
    __table_args__ = (UniqueConstraint("campaign_id", "code"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(32))
    label: Mapped[str] = mapped_column(String(200))
    contact: Mapped[bool] = mapped_column(Boolean, default=False)
    effective: Mapped[bool] = mapped_column(Boolean, default=False)
    success: Mapped[bool] = mapped_column(Boolean, default=False)
    callback: Mapped[bool] = mapped_column(Boolean, default=False)
    dnc: Mapped[bool] = mapped_column(Boolean, default=False)
    final: Mapped[bool] = mapped_column(Boolean, default=False)
