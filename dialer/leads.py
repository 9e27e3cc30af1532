"""Leads in the database: the dialer's claim query and the campaign manager's export.

:func:`claim_leads` hands a dialer node the next leads to dial and marks them ``dialing``
in the same statement, so no two nodes ever dial one lead. On PostgreSQL the candidate rows
are picked with ``SELECT ... FOR UPDATE SKIP LOCKED`` inside the UPDATE: a second node
skips the rows the first one is claiming instead of waiting for them. On SQLite the same
``UPDATE ... WHERE id IN (SELECT ... LIMIT n) RETURNING`` is atomic because SQLite has one
writer at a time. Only ``ready`` and ``callback`` leads of an ``active`` campaign whose
``next_attempt_at`` has passed are claimed: leads of an import still running are
``pending`` and never dialled.

:func:`export_leads` streams a campaign's leads to CSV in a shape ``dialer lists import``
reads back (contact columns first, attributes as their own columns, lead state as
``lead_*`` columns, which the importer ignores).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from dialer.models import CLAIMABLE_LEAD_STATUSES, CallList, Campaign, CampaignStatus, Contact, Lead, LeadStatus

__all__ = ["ClaimedLead", "claim_leads", "export_leads", "release_stale_claims", "visible_lead_counts"]


@dataclass(frozen=True, slots=True)
class ClaimedLead:
    """A lead this node now owns, with what is needed to dial it."""

    lead_id: int
    contact_id: int
    campaign_id: int
    numbers: tuple[str, ...]
    number_index: int
    timezones: tuple[str, ...]
    country: str | None
    attempts: int
    priority: int
    dayparts_tried: tuple[str, ...]
    callback_owner: str | None
    callback_at: datetime | None
    reach_deadline_at: datetime | None

    @property
    def number(self) -> str:
        """The number to dial now."""
        return self.numbers[min(self.number_index, len(self.numbers) - 1)]


async def claim_leads(
    session: AsyncSession, campaign_id: int, now: datetime, limit: int, *, node: str | None = None
) -> list[ClaimedLead]:
    """Atomically move up to ``limit`` due leads to ``dialing`` and return them, best first.

    The caller commits; until then, on PostgreSQL, the claimed rows stay locked to this
    transaction and other claimers skip them.
    """
    if limit <= 0:
        return []
    active = select(Campaign.id).where(Campaign.id == campaign_id, Campaign.status == CampaignStatus.ACTIVE)
    candidates = (
        select(Lead.id)
        .where(
            Lead.campaign_id == campaign_id,
            Lead.campaign_id.in_(active.scalar_subquery()),
            Lead.status.in_(CLAIMABLE_LEAD_STATUSES),
            Lead.next_attempt_at <= now,
        )
        .order_by(Lead.priority.desc(), Lead.next_attempt_at, Lead.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    stmt = (
        update(Lead)
        .where(Lead.id.in_(candidates.scalar_subquery()), Lead.status.in_(CLAIMABLE_LEAD_STATUSES))
        .values(status=LeadStatus.DIALING, claimed_at=now, claimed_by=node, updated_at=now)
        .returning(
            Lead.id,
            Lead.contact_id,
            Lead.number_index,
            Lead.attempts,
            Lead.priority,
            Lead.dayparts_tried,
            Lead.callback_owner,
            Lead.callback_at,
            Lead.reach_deadline_at,
            Lead.next_attempt_at,
        )
        .execution_options(synchronize_session=False)
    )
    claimed = (await session.execute(stmt)).all()
    if not claimed:
        return []
    contacts = {
        row.id: row
        for row in (
            await session.execute(
                select(Contact.id, Contact.phone, Contact.alt_phones, Contact.timezones, Contact.country).where(
                    Contact.id.in_([c.contact_id for c in claimed])
                )
            )
        ).all()
    }
    out = []
    for c in claimed:
        contact = contacts[c.contact_id]
        out.append(
            ClaimedLead(
                lead_id=c.id,
                contact_id=c.contact_id,
                campaign_id=campaign_id,
                numbers=(contact.phone, *(contact.alt_phones or [])),
                number_index=c.number_index,
                timezones=tuple(contact.timezones or ()),
                country=contact.country,
                attempts=c.attempts,
                priority=c.priority,
                dayparts_tried=tuple(c.dayparts_tried or ()),
                callback_owner=c.callback_owner,
                callback_at=c.callback_at,
                reach_deadline_at=c.reach_deadline_at,
            )
        )
    # RETURNING order is unspecified; keep the claim order.
    out.sort(key=lambda lead: (-lead.priority, lead.lead_id))
    return out


async def release_stale_claims(session: AsyncSession, now: datetime, older_than: timedelta) -> int:
    """Give back leads claimed by a node that died before finishing them (status -> ready)."""
    result = await session.execute(
        update(Lead)
        .where(Lead.status == LeadStatus.DIALING, Lead.claimed_at < now - older_than)
        .values(status=LeadStatus.READY, claimed_by=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def visible_lead_counts(session: AsyncSession, campaign_id: int) -> dict[str, int]:
    """Leads per status in the campaign, without ``pending`` ones (an import not finished yet).

    For ``campaign show``/``list`` and the console: a running or dead import's leads are not
    part of the campaign until its list is ready.
    """
    rows = await session.execute(
        select(Lead.status, func.count())
        .where(Lead.campaign_id == campaign_id, Lead.status != LeadStatus.PENDING)
        .group_by(Lead.status)
    )
    return {str(status): int(count) for status, count in rows}


CONTACT_COLUMNS = ("phone", "phone2", "phone3", "phone4", "name", "timezone", "region", "segment", "vip", "external_id")
LEAD_COLUMNS = (
    "lead_status",
    "lead_list",
    "lead_priority",
    "lead_attempts",
    "lead_next_attempt_at",
    "lead_last_attempt_at",
    "lead_last_outcome",
    "lead_last_disposition",
    "lead_dayparts_tried",
    "lead_callback_owner",
    "lead_callback_at",
    "lead_reach_deadline_at",
    "lead_created_at",
)


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value is not None else ""


async def export_leads(
    session: AsyncSession,
    campaign_id: int,
    out: Path,
    *,
    statuses: Sequence[str] = (),
    encoding: str = "utf-8-sig",
) -> int:
    """Write the campaign's leads (optionally only some statuses) to ``out``; returns the count.

    Two streaming passes: the first collects the attribute keys (the columns), the second
    writes rows, so memory does not grow with the campaign. UTF-8 with BOM by default so
    Excel shows Chinese text correctly. Times are UTC, ISO 8601.
    """
    where = [Lead.campaign_id == campaign_id]
    if statuses:
        where.append(Lead.status.in_(list(statuses)))
    keys: dict[str, None] = {}
    attr_stream = await session.stream(
        select(Contact.attributes)
        .join(Lead, Lead.contact_id == Contact.id)
        .where(*where)
        .execution_options(yield_per=2000)
    )
    async for (attrs,) in attr_stream:
        for key in attrs or {}:
            keys.setdefault(key, None)
    # Sorted: PostgreSQL's JSONB does not keep key order, and both back ends must agree.
    attribute_keys = sorted(k for k in keys if k not in CONTACT_COLUMNS and k not in LEAD_COLUMNS)

    stmt = (
        select(Lead, Contact, CallList.name)
        .join(Contact, Lead.contact_id == Contact.id)
        .outerjoin(CallList, Lead.list_id == CallList.id)
        .where(*where)
        .order_by(Lead.id)
        .execution_options(yield_per=2000)
    )
    count = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    with tmp.open("w", encoding=encoding, newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*CONTACT_COLUMNS, *attribute_keys, *LEAD_COLUMNS])
        result = await session.stream(stmt)
        async for lead, contact, list_name in result:
            alts = [*contact.alt_phones, "", "", ""][:3]
            attributes: dict[str, Any] = contact.attributes or {}
            writer.writerow(
                [
                    contact.phone,
                    *alts,
                    contact.name or "",
                    " ".join(contact.timezones or []),
                    contact.region or "",
                    contact.segment or "",
                    "yes" if contact.vip else "no",
                    contact.external_id or "",
                    *(attributes.get(k, "") for k in attribute_keys),
                    lead.status,
                    list_name or "",
                    lead.priority,
                    lead.attempts,
                    _iso(lead.next_attempt_at),
                    _iso(lead.last_attempt_at),
                    lead.last_outcome or "",
                    lead.last_disposition or "",
                    " ".join(lead.dayparts_tried or []),
                    lead.callback_owner or "",
                    _iso(lead.callback_at),
                    _iso(lead.reach_deadline_at),
                    _iso(lead.created_at),
                ]
            )
            count += 1
    # Only a complete file takes the requested name.
    tmp.replace(out)
    return count
