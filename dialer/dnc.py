"""Do-not-call lists: global and per campaign, whole numbers and number prefixes.

An entry is an E.164 number ("+8613800138000") or a prefix written with a trailing ``*``
("+86400*" blocks every +86 400 number). A number in national form needs a region
(``--region CN``); its trunk prefix 0 is dropped, as in E.164. A prefix must hold the
country code and at least :data:`MIN_PREFIX_NATIONAL_DIGITS` more digits: ``+1*`` would block
all of North America, so shorter prefixes are refused unless ``force`` (``--force``). Global
entries apply to every campaign. The list is applied twice: at import (rows are suppressed
and counted) and by the dialer just before each dial (:func:`dnc_match`), so a number added
after the import is still never called.

:func:`import_dnc` reads a CSV/XLSX with a phone column (and an optional reason column), or
a headerless file of entries, one per line, optionally followed by a reason
(``+86400*,premium lines``). It checks every row, then inserts new entries in batches
(executemany), all in one transaction: a DNC list is never half loaded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import phonenumbers
from sqlalchemy import ARRAY, ColumnElement, String, any_, cast, delete, func, insert, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import QueryableAttribute

from dialer.lists.fields import ALIASES, normalise_header, parse_map_options, resolve_columns
from dialer.lists.normalize import RowError, normalize_number
from dialer.lists.reader import ListFileError, open_table
from dialer.models import DncEntry
from infra.db import utcnow

__all__ = [
    "MIN_PREFIX_NATIONAL_DIGITS",
    "DncHit",
    "DncImportSummary",
    "PrefixIndex",
    "add_dnc",
    "check_prefix_length",
    "dnc_match",
    "exact_dnc_matches",
    "import_dnc",
    "load_prefix_index",
    "parse_dnc_entry",
    "remove_dnc",
]


MIN_PREFIX_NATIONAL_DIGITS = 3
DNC_BATCH = 5000


@dataclass(frozen=True, slots=True)
class DncHit:
    """Why a number is blocked: the entry that matched and its scope."""

    number: str
    entry: str
    is_prefix: bool
    campaign_id: int | None

    @property
    def describe(self) -> str:
        scope = "global" if self.campaign_id is None else "campaign"
        kind = f"prefix {self.entry}*" if self.is_prefix else self.entry
        return f"on the {scope} DNC list ({kind})"


def parse_dnc_entry(text: str, region: str | None = None) -> tuple[str, bool]:
    """'+86 400*' -> ('+86400', True); '138 0013 8000' with CN -> ('+8613800138000', False)."""
    raw = text.strip()
    if raw.endswith("*"):
        digits = "".join(ch for ch in raw[:-1] if ch.isdigit())
        if not digits:
            raise ValueError(f"DNC prefix {text!r}: no digits before the *; write e.g. +86400*")
        if raw.lstrip().startswith("+"):
            return "+" + digits, True
        if raw.startswith("00"):
            return "+" + digits[2:], True
        if region is None:
            raise ValueError(f"DNC prefix {text!r}: write it with +country code (e.g. +86400*) or pass --region")
        code = phonenumbers.country_code_for_region(region.upper())
        if code == 0:
            raise ValueError(f"region {region!r} is unknown; use an ISO code such as CN or US")
        metadata = phonenumbers.PhoneMetadata.metadata_for_region(region.upper())
        trunk = metadata.national_prefix if metadata is not None else None
        if trunk and digits.startswith(trunk):
            digits = digits[len(trunk) :]
        return f"+{code}{digits}", True
    try:
        info = normalize_number(raw, region.upper() if region else None, what="number")
    except RowError as exc:
        # DNC must also accept numbers phonenumbers does not know yet: keep possible ones.
        try:
            parsed = phonenumbers.parse(raw, region.upper() if region else None)
        except phonenumbers.NumberParseException:
            raise ValueError(str(exc)) from None
        if not phonenumbers.is_possible_number(parsed):
            raise ValueError(str(exc)) from None
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164), False
    return info.e164, False


def _country_code(digits: str) -> str | None:
    for size in (1, 2, 3):
        if len(digits) >= size and int(digits[:size]) in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            return digits[:size]
    return None


def check_prefix_length(prefix: str, text: str | None = None) -> None:
    """ValueError unless the E.164 ``prefix`` ('+86400') is a country code plus 3 or more digits."""
    digits = prefix.lstrip("+")
    code = _country_code(digits)
    national = digits[len(code) :] if code else ""
    if code is not None and len(national) >= MIN_PREFIX_NATIONAL_DIGITS:
        return
    shown = text if text is not None else prefix + "*"
    if code is None:
        what = f"every number starting +{digits}" if digits else "every number"
    else:
        regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(int(code), ())
        names = ", ".join(regions[:4]) + (", ..." if len(regions) > 4 else "")
        what = f"every number starting +{digits} ({names})" if national else f"every +{code} number ({names})"
    example = f"+{code}400*" if code else "+86400*"
    raise ValueError(
        f"DNC prefix {shown!r} would block {what}; a prefix needs the country code and at least "
        f"{MIN_PREFIX_NATIONAL_DIGITS} more digits (e.g. {example}), or pass --force to add it anyway"
    )


async def add_dnc(
    session: AsyncSession,
    text: str,
    *,
    campaign_id: int | None = None,
    region: str | None = None,
    reason: str | None = None,
    source: str | None = None,
    now: datetime | None = None,
    force: bool = False,
) -> tuple[DncEntry, bool]:
    """Add an entry (idempotent). Returns the entry and whether it was new.

    A prefix shorter than the country code plus 3 digits is a ValueError unless ``force``.
    """
    number, is_prefix = parse_dnc_entry(text, region)
    if is_prefix and not force:
        check_prefix_length(number, text)
    existing = await _find(session, number, is_prefix, campaign_id)
    if existing is not None:
        return existing, False
    entry = DncEntry(
        number=number,
        is_prefix=is_prefix,
        campaign_id=campaign_id,
        reason=reason,
        source=source,
        created_at=now or utcnow(),
    )
    session.add(entry)
    await session.flush()
    return entry, True


async def _find(session: AsyncSession, number: str, is_prefix: bool, campaign_id: int | None) -> DncEntry | None:
    scope = DncEntry.campaign_id.is_(None) if campaign_id is None else DncEntry.campaign_id == campaign_id
    stmt = select(DncEntry).where(DncEntry.number == number, DncEntry.is_prefix == is_prefix, scope)
    return (await session.execute(stmt)).scalar_one_or_none()


async def remove_dnc(
    session: AsyncSession, text: str, *, campaign_id: int | None = None, region: str | None = None
) -> int:
    """Remove the entry in exactly this scope; returns how many rows went (0 or 1)."""
    number, is_prefix = parse_dnc_entry(text, region)
    scope = DncEntry.campaign_id.is_(None) if campaign_id is None else DncEntry.campaign_id == campaign_id
    result = await session.execute(
        delete(DncEntry).where(DncEntry.number == number, DncEntry.is_prefix == is_prefix, scope)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def _prefixes(number: str) -> list[str]:
    return [number[:k] for k in range(2, len(number) + 1)]


async def dnc_match(
    session: AsyncSession, number: str, campaign_id: int | None = None, *, all_campaigns: bool = False
) -> list[DncHit]:
    """Every entry blocking ``number`` (E.164) for ``campaign_id``: global ones and the campaign's.

    Prefix entries are found with an indexed ``number IN (all prefixes of the number)``.
    The dialer calls this just before dialling; an empty list means the number may be called.
    With ``all_campaigns``, entries of every campaign's list are returned too (``dnc check``
    without ``--campaign``).
    """
    scope: ColumnElement[bool] = DncEntry.campaign_id.is_(None)
    if all_campaigns:
        scope = true()
    elif campaign_id is not None:
        scope = or_(scope, DncEntry.campaign_id == campaign_id)
    stmt = select(DncEntry.number, DncEntry.is_prefix, DncEntry.campaign_id).where(
        scope,
        or_(
            (DncEntry.number == number) & DncEntry.is_prefix.is_(False),
            DncEntry.number.in_(_prefixes(number)) & DncEntry.is_prefix.is_(True),
        ),
    )
    rows = await session.execute(stmt)
    return [DncHit(number, entry, bool(is_prefix), cid) for entry, is_prefix, cid in rows]


def in_values(
    session: AsyncSession, column: ColumnElement[str] | QueryableAttribute[str], values: list[str]
) -> ColumnElement[bool]:
    """``column IN values`` for thousands of values, with ONE bound parameter.

    A plain IN renders one parameter per value, so every batch of an import compiles a new
    statement of thousands of parameters; SQLite reads the list from one JSON text with
    json_each and PostgreSQL from one array.
    """
    bind = session.bind
    dialect = bind.dialect.name if bind is not None else ""
    if dialect == "sqlite":
        each = func.json_each(json.dumps(values)).table_valued("value")
        return column.in_(select(each.c.value))
    if dialect == "postgresql":
        return column == any_(cast(values, ARRAY(String)))
    return column.in_(values)


@dataclass(frozen=True)
class PrefixIndex:
    """All prefix entries that apply to one campaign, held in memory for the import loop."""

    prefixes: Mapping[str, int | None]  # prefix -> campaign_id (None: global)
    # The lengths (>= 2) the entries have, shortest first: only those prefixes of a number
    # can be entries, so match() looks up one or two slices instead of one per digit.
    lengths: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "lengths", tuple(sorted({len(p) for p in self.prefixes if len(p) >= 2})))

    def match(self, number: str) -> DncHit | None:
        """The shortest entry that ``number`` starts with (at least 2 characters), if any."""
        if not self.prefixes:
            return None
        size = len(number)
        for k in self.lengths:
            if k > size:
                break
            prefix = number[:k]
            if prefix in self.prefixes:
                return DncHit(number, prefix, True, self.prefixes[prefix])
        return None


async def load_prefix_index(session: AsyncSession, campaign_id: int | None) -> PrefixIndex:
    scope: ColumnElement[bool] = DncEntry.campaign_id.is_(None)
    if campaign_id is not None:
        scope = or_(scope, DncEntry.campaign_id == campaign_id)
    rows = await session.execute(
        select(DncEntry.number, DncEntry.campaign_id).where(scope, DncEntry.is_prefix.is_(True))
    )
    prefixes: dict[str, int | None] = {}
    for number, cid in rows:
        # A campaign entry and a global one for the same prefix: report the campaign's.
        if number not in prefixes or cid is not None:
            prefixes[number] = cid
    return PrefixIndex(prefixes)


async def exact_dnc_matches(
    session: AsyncSession, numbers: Iterable[str], campaign_id: int | None
) -> dict[str, int | None]:
    """Which of ``numbers`` are exact DNC entries (number -> campaign_id, None for global)."""
    wanted = list(dict.fromkeys(numbers))
    if not wanted:
        return {}
    scope: ColumnElement[bool] = DncEntry.campaign_id.is_(None)
    if campaign_id is not None:
        scope = or_(scope, DncEntry.campaign_id == campaign_id)
    found: dict[str, int | None] = {}
    for start in range(0, len(wanted), 5000):
        chunk = wanted[start : start + 5000]
        rows = await session.execute(
            select(DncEntry.number, DncEntry.campaign_id).where(
                scope, DncEntry.is_prefix.is_(False), in_values(session, DncEntry.number, chunk)
            )
        )
        for number, cid in rows:
            if number not in found or cid is not None:
                found[number] = cid
    return found


@dataclass
class DncImportSummary:
    file: str
    read: int = 0
    added: int = 0
    already_listed: int = 0
    rejected: int = 0
    errors: list[str] | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "read": self.read,
            "added": self.added,
            "already_listed": self.already_listed,
            "rejected": self.rejected,
            "errors": (self.errors or [])[:20],
        }


async def import_dnc(
    sessionmaker: async_sessionmaker[AsyncSession],
    path: Path,
    *,
    campaign_id: int | None = None,
    region: str | None = None,
    mapping: list[str] | None = None,
    reason: str | None = None,
    now: datetime | None = None,
    force: bool = False,
) -> DncImportSummary:
    """Load numbers and prefixes from a CSV/XLSX/text file (a phone column, or one per line).

    One transaction: DNC files are small next to call lists, and a DNC list must never be
    half-loaded. New entries are inserted ``DNC_BATCH`` at a time with one executemany;
    entries already listed (in the database or earlier in the file) are counted, not doubled.
    Short prefixes (see :func:`check_prefix_length`) are rejected rows unless ``force``.
    """
    stamp = now or utcnow()
    summary = DncImportSummary(file=str(path), errors=[])
    with open_table(path) as source:
        try:
            explicit = parse_map_options(mapping or [])
        except ValueError as exc:
            raise ListFileError(f"{path}: {exc}") from None
        phone_index, reason_index, has_header = _dnc_layout(path, source.first_row, explicit)
        rows: Iterable[tuple[int, list[str]]] = source.rows()
        if not has_header:
            rows = _chain([(1, list(source.first_row))], rows)
        async with sessionmaker() as session, session.begin():
            batch: list[_DncRow] = []
            for line, cells in rows:
                if not any(c.strip() for c in cells):
                    continue
                summary.read += 1
                raw = cells[phone_index].strip() if phone_index < len(cells) else ""
                try:
                    if not raw:
                        raise ValueError("number is empty")
                    number, is_prefix = parse_dnc_entry(raw, region)
                    if is_prefix and not force:
                        check_prefix_length(number, raw)
                except ValueError as exc:
                    summary.rejected += 1
                    assert summary.errors is not None
                    summary.errors.append(f"line {line}: {exc}")
                    continue
                has_reason = reason_index is not None and reason_index < len(cells)
                row_reason = cells[reason_index].strip() if reason_index is not None and has_reason else ""
                batch.append(_DncRow(number, is_prefix, row_reason or reason))
                if len(batch) >= DNC_BATCH:
                    await _insert_dnc_batch(session, batch, campaign_id, path.name, stamp, summary)
                    batch = []
            if batch:
                await _insert_dnc_batch(session, batch, campaign_id, path.name, stamp, summary)
    return summary


@dataclass(slots=True)
class _DncRow:
    number: str
    is_prefix: bool
    reason: str | None


async def _insert_dnc_batch(
    session: AsyncSession,
    batch: list[_DncRow],
    campaign_id: int | None,
    source: str,
    now: datetime,
    summary: DncImportSummary,
) -> None:
    """Insert the batch's new entries with one executemany; earlier batches are visible (same transaction)."""
    scope = DncEntry.campaign_id.is_(None) if campaign_id is None else DncEntry.campaign_id == campaign_id
    numbers = list(dict.fromkeys(row.number for row in batch))
    listed = {
        (number, bool(is_prefix))
        for number, is_prefix in await session.execute(
            select(DncEntry.number, DncEntry.is_prefix).where(scope, in_values(session, DncEntry.number, numbers))
        )
    }
    values = []
    for row in batch:
        key = (row.number, row.is_prefix)
        if key in listed:
            summary.already_listed += 1
            continue
        listed.add(key)
        values.append(
            {
                "number": row.number,
                "is_prefix": row.is_prefix,
                "campaign_id": campaign_id,
                "reason": row.reason,
                "source": source,
                "created_at": now,
            }
        )
    if values:
        await session.execute(insert(DncEntry), values)
        summary.added += len(values)


_REASON_HEADERS = {"reason", "原因", "备注", "note", "notes", "说明"}
_ENTRY_LIKE = re.compile(r"^(?:\+|00)?[\d\s().\-]{2,20}\*?$")


def _looks_like_entry(cell: str) -> bool:
    text = cell.strip()
    return bool(_ENTRY_LIKE.match(text)) and sum(ch.isdigit() for ch in text) >= 2


def _dnc_layout(path: Path, first: list[str], explicit: dict[str, str]) -> tuple[int, int | None, bool]:
    """(entry column, reason column or None, has a header row) for a DNC file.

    A first row with a known header (or ``--map``) is a header; a first row holding a
    number or a prefix (``+86400*``, which the call-list mapping does not see as a phone
    number) starts a headerless file: the entry is its first such cell, and in a file of
    two columns the other one is the reason.
    """
    known = any(ALIASES.get(normalise_header(c)) for c in first)
    entries = [i for i, c in enumerate(first) if _looks_like_entry(c)]
    if explicit or known or not entries:
        columns = resolve_columns(path, first, explicit)
        reason_index = next((i for i, key in columns.attributes if key.strip().lower() in _REASON_HEADERS), None)
        return columns.fields["phone"], reason_index, columns.has_header
    phone_index = entries[0]
    reason_index = 1 - phone_index if len(first) == 2 else None
    return phone_index, reason_index, False


def _chain(head: list[tuple[int, list[str]]], tail: Iterable[tuple[int, list[str]]]) -> Iterator[tuple[int, list[str]]]:
    yield from head
    yield from tail
