"""Importing a call list into a campaign: streaming, batched, deduplicated, DNC-suppressed.

Transactions. A large import is written in batches (``batch_size`` rows, one short
transaction each), so an import never holds SQLite's single writer lock for minutes while
the dialer needs it. Nothing of an unfinished import is ever dialled: its leads are written
with status ``pending`` and its list with status ``importing``; the final transaction flips
the leads to ``ready`` and the list to ``ready`` together. If the import fails or is
interrupted (an exception, Ctrl-C), the importer deletes the pending leads, the contacts it
created that no lead uses, and the list row it created. If the process is killed outright,
the pending leads stay invisible to the dialer, and the next import into that campaign
discards them and marks the list ``failed`` before it starts. Only one import at a time
per campaign is supported. A dry run does the same work in one transaction and rolls it
back, so its counts are exact.

Files that cannot be read at all (binary, undecodable, empty, no phone column) are refused
before the database is touched. Rows are read, imported (a new lead), merged (the number is
already a lead of the campaign or appeared earlier in the file: the contact's missing fields
are filled in, never doubled), rejected (with the reason, into the rejects file) or
DNC-suppressed (also listed in the rejects file); ``read == imported + merged + rejected +
dnc_suppressed`` always holds. Rows whose cells are all empty carry nothing and are skipped.
Importing the same file again changes nothing.

Contacts are global, keyed by their primary E.164 number; a lead is a contact in one
campaign. Speed comes from Core ``INSERT`` statements run with executemany per batch, not
ORM objects per row.
"""

from __future__ import annotations

import asyncio
import csv
import json
import multiprocessing
import os
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import IO, Any, cast

import structlog
from sqlalchemy import (
    BigInteger,
    Integer,
    String,
    Table,
    bindparam,
    case,
    delete,
    exists,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialer.campaigns import CampaignError, campaign_settings, get_campaign
from dialer.dnc import PrefixIndex, exact_dnc_matches, in_values, load_prefix_index
from dialer.lists.fields import ColumnMapping, parse_map_options, resolve_columns
from dialer.lists.normalize import ContactRecord, RowError, RowNormalizer, merge_records
from dialer.lists.reader import ListFileError, TableSource, open_table
from dialer.models import CallList, CampaignStatus, Contact, Lead, LeadStatus, ListStatus
from infra.db import JSONType, UTCDateTime, utcnow

__all__ = ["ImportSummary", "ProgressFn", "default_rejects_path", "import_list"]

log = structlog.get_logger()

ProgressFn = Callable[[int, int, int], None]  # (rows read, position, total)
VIP_PRIORITY = 10
_CONTACT_FIELDS = (
    "alt_phones", "name", "timezones", "country", "region", "segment", "vip", "external_id", "attributes",
)  # fmt: skip


_CONTACTS: Table = cast(Table, Contact.__table__)
_LEADS: Table = cast(Table, Lead.__table__)


@dataclass
class ImportSummary:
    file: str
    campaign: str
    list_name: str
    dry_run: bool = False
    read: int = 0
    imported: int = 0
    merged: int = 0
    rejected: int = 0
    dnc_suppressed: int = 0
    contacts_created: int = 0
    contacts_updated: int = 0
    alt_numbers_dnc_removed: int = 0
    list_id: int | None = None
    rejects_file: str | None = None
    encoding: str | None = None
    delimiter: str | None = None
    columns: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def consistent(self) -> bool:
        return self.read == self.imported + self.merged + self.rejected + self.dnc_suppressed

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["rows_per_second"] = round(self.read / self.seconds) if self.seconds > 0 else None
        return data


PARALLEL_MIN_BYTES = 4 * 1024 * 1024


def auto_workers(source: TableSource) -> int:
    """Worker processes for number normalisation: none for small files (start-up costs ~1 s)."""
    # Measured on 2 cores: handing rows to one worker costs the main process about what it
    # saves (pickling both ways), so parallel normalisation pays only from 4 cores up.
    cpus = os.cpu_count() or 1
    if source.kind != "csv" or source.total < PARALLEL_MIN_BYTES or cpus < 4:
        return 0
    return min(3, cpus - 2)


def default_rejects_path(path: Path) -> Path:
    return path.with_name(path.name + ".rejects.csv")


class _RejectsWriter:
    """The rejects CSV: the original row, its line and the reason; opened on first use."""

    def __init__(self, path: Path, headers: Sequence[str]) -> None:
        self.path = path
        self.headers = list(headers)
        self.count = 0
        self._file: IO[str] | None = None
        self._writer: Any = None

    def write(self, line: int, cells: Sequence[str], reason: str) -> None:
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # utf-8-sig: Excel then shows Chinese names correctly when the manager opens it.
            self._file = self.path.open("w", encoding="utf-8-sig", newline="")
            self._writer = csv.writer(self._file)
            self._writer.writerow([*self.headers, "line", "reason"])
        cells = list(cells) + [""] * (len(self.headers) - len(cells))
        self._writer.writerow([*cells, line, reason])
        self.count += 1

    def close(self, *, discard: bool = False) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            if discard:
                self.path.unlink(missing_ok=True)


_CONTACT_INSERT_COLUMNS = (
    "phone", "alt_phones", "name", "timezones", "country", "region", "segment", "vip", "external_id",
    "attributes", "created_at", "updated_at",
)  # fmt: skip
_SQLITE_INSERT_CONTACTS = (
    f"INSERT INTO contacts ({', '.join(_CONTACT_INSERT_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in _CONTACT_INSERT_COLUMNS)}) ON CONFLICT (phone) DO NOTHING"
)


@lru_cache(maxsize=1024)
def _zones_json(zones: tuple[str, ...]) -> str:
    return json.dumps(list(zones))


def _sqlite_stamp(value: datetime) -> str:
    """The exact text UTCDateTime stores on SQLite for ``value``."""
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%d %H:%M:%S.") + f"{utc.microsecond:06d}"


@dataclass(slots=True)
class _Row:
    line: int
    cells: list[str]
    record: ContactRecord


def _dialect(session: AsyncSession) -> str:
    bind = session.bind
    assert bind is not None, "sessions come from infra.db.create_sessionmaker(engine)"
    return bind.dialect.name


def _insert(session: AsyncSession) -> Any:
    return postgresql.insert if _dialect(session) == "postgresql" else sqlite.insert


async def import_list(
    sessionmaker: async_sessionmaker[AsyncSession],
    path: Path,
    *,
    campaign: str,
    list_name: str | None = None,
    mapping: Sequence[str] = (),
    region: str | None = None,
    dry_run: bool = False,
    rejects_path: Path | None = None,
    batch_size: int = 5000,
    progress: ProgressFn | None = None,
    now: datetime | None = None,
    workers: int | None = None,
) -> ImportSummary:
    """Import ``path`` into ``campaign``; see the module docstring for the guarantees.

    Raises :class:`ListFileError` (unreadable file) or :class:`CampaignError` (no such
    campaign) before writing anything.
    """
    path = Path(path)
    started = time.perf_counter()
    stamp = now or utcnow()
    try:
        explicit = parse_map_options(mapping)
    except ValueError as exc:
        raise ListFileError(f"{path}: {exc}") from None
    source = open_table(path)
    try:
        columns = resolve_columns(path, source.first_row, explicit)
        name = list_name or path.stem
        summary = ImportSummary(
            file=str(path),
            campaign=campaign,
            list_name=name,
            dry_run=dry_run,
            encoding=source.encoding,
            delimiter=source.delimiter,
            columns=columns.describe(),
            warnings=list(columns.warnings),
        )
        rejects = _RejectsWriter(rejects_path or default_rejects_path(path), columns.headers)
        if workers is None:
            workers = auto_workers(source)
        await _run(sessionmaker, source, columns, summary, rejects, region, batch_size, progress, stamp, workers)
    finally:
        source.close()
    summary.rejects_file = str(rejects.path) if rejects.count else None
    summary.seconds = time.perf_counter() - started
    log.info("list imported", **{k: v for k, v in summary.as_dict().items() if k not in ("columns", "warnings")})
    return summary


async def _run(
    sessionmaker: async_sessionmaker[AsyncSession],
    source: TableSource,
    columns: ColumnMapping,
    summary: ImportSummary,
    rejects: _RejectsWriter,
    region: str | None,
    batch_size: int,
    progress: ProgressFn | None,
    now: datetime,
    workers: int,
) -> None:
    async with sessionmaker() as session:
        camp = await get_campaign(session, summary.campaign)
        if camp.status == CampaignStatus.ARCHIVED:
            raise CampaignError(f"campaign {camp.name!r} is archived; import into an active or paused campaign")
        settings = campaign_settings(camp)
        campaign_id = camp.id
        deadline_hours = settings.retry.reach_deadline_hours
        normalizer = RowNormalizer(columns, (region or settings.region or "").upper() or None, settings.timezone)
        prefixes = await load_prefix_index(session, campaign_id)
        await session.rollback()

    writer = _BatchWriter(
        campaign_id=campaign_id,
        now=now,
        reach_deadline=now + timedelta(hours=deadline_hours) if deadline_hours else None,
        prefixes=prefixes,
        summary=summary,
        rejects=rejects,
    )
    session = sessionmaker()
    list_id: int | None = None
    created_list = False
    try:
        if summary.dry_run:
            list_id = None
        else:
            list_id, created_list = await _begin_list(session, campaign_id, summary, now)
        writer.list_id = list_id
        summary.list_id = list_id

        rows = source.rows()
        if not columns.has_header:
            rows = _prepend((1, list(source.first_row)), rows)
        async for chunk, results in _normalized_chunks(rows, normalizer, batch_size, workers):
            summary.read += len(chunk)
            batch: list[_Row] = []
            for (line, cells), result in zip(chunk, results, strict=True):
                if isinstance(result, str):
                    summary.rejected += 1
                    rejects.write(line, cells, result)
                else:
                    batch.append(_Row(line, cells, result))
            await writer.write(session, batch)
            if not summary.dry_run:
                await session.commit()
            if progress is not None:
                progress(summary.read, source.position(), source.total)
        if summary.dry_run:
            await session.rollback()
        else:
            await _finish_list(session, list_id, summary, now)
            await session.commit()
        if progress is not None:
            progress(summary.read, source.total, source.total)
    except BaseException as exc:
        await session.rollback()
        rejects.close(discard=True)
        if list_id is not None:
            await _abandon(sessionmaker, list_id, created_list, now, exc)
        raise
    finally:
        rejects.close()
        await session.close()


def _chunks(rows: Iterator[tuple[int, list[str]]], size: int) -> Iterator[list[tuple[int, list[str]]]]:
    chunk: list[tuple[int, list[str]]] = []
    for line, cells in rows:
        if not any(c.strip() for c in cells):
            continue
        chunk.append((line, cells))
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _normalize_chunk(normalizer: RowNormalizer, chunk: list[tuple[int, list[str]]]) -> list[ContactRecord | str]:
    out: list[ContactRecord | str] = []
    for _line, cells in chunk:
        try:
            out.append(normalizer(cells))
        except RowError as exc:
            out.append(str(exc))
    return out


_worker_normalizer: RowNormalizer | None = None


def _worker_init(normalizer: RowNormalizer) -> None:
    global _worker_normalizer
    _worker_normalizer = normalizer


def _worker_normalize(chunk: list[tuple[int, list[str]]]) -> list[tuple[Any, ...] | str]:
    # Plain tuples cross the process boundary several times faster than dataclasses.
    assert _worker_normalizer is not None
    return [r if isinstance(r, str) else tuple_of(r) for r in _normalize_chunk(_worker_normalizer, chunk)]


def tuple_of(r: ContactRecord) -> tuple[Any, ...]:
    return (
        r.phone, r.alt_phones, r.name, r.timezones, r.country, r.region, r.segment, r.vip, r.external_id, r.attributes,
    )  # fmt: skip


async def _normalized_chunks(
    rows: Iterator[tuple[int, list[str]]], normalizer: RowNormalizer, size: int, workers: int
) -> AsyncIterator[tuple[list[tuple[int, list[str]]], list[ContactRecord | str]]]:
    """Chunks of rows with their records (or rejection reasons), in file order.

    With ``workers`` > 0, numbers are normalised in worker processes while this process
    writes the previous chunks: phonenumbers is the most expensive part of an import.
    At most ``workers + 1`` chunks are in flight, so memory stays flat.
    """
    if workers <= 0:
        for chunk in _chunks(rows, size):
            yield chunk, _normalize_chunk(normalizer, chunk)
        return
    loop = asyncio.get_running_loop()
    pool = ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
        initializer=_worker_init, initargs=(normalizer,),
    )  # fmt: skip
    pending: deque[tuple[list[tuple[int, list[str]]], asyncio.Future[list[tuple[Any, ...] | str]]]] = deque()
    try:
        source = _chunks(rows, size)
        exhausted = False
        while True:
            while not exhausted and len(pending) <= workers:
                chunk = next(source, [])
                if not chunk:
                    exhausted = True
                    break
                pending.append((chunk, loop.run_in_executor(pool, _worker_normalize, chunk)))
            if not pending:
                break
            chunk, future = pending.popleft()
            results = await future
            yield chunk, [r if isinstance(r, str) else ContactRecord(*r) for r in results]
    finally:
        for _chunk, future in pending:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)


def _prepend(first: tuple[int, list[str]], rest: Any) -> Any:
    yield first
    yield from rest


async def _begin_list(
    session: AsyncSession, campaign_id: int, summary: ImportSummary, now: datetime
) -> tuple[int, bool]:
    """Discard leftovers of killed imports, then create (or reopen) the list as 'importing'."""
    stale = (
        await session.execute(
            select(CallList.id, CallList.name).where(
                CallList.campaign_id == campaign_id, CallList.status == ListStatus.IMPORTING
            )
        )
    ).all()
    for stale_id, stale_name in stale:
        result = await session.execute(
            delete(Lead).where(Lead.list_id == stale_id, Lead.status == LeadStatus.PENDING)
        )
        await session.execute(
            update(CallList)
            .where(CallList.id == stale_id)
            .values(status=ListStatus.FAILED, error="interrupted import; its pending leads were discarded")
        )
        log.warning(
            "discarded an interrupted import",
            list=stale_name,
            pending_leads=getattr(result, "rowcount", None),
        )
    existing = (
        await session.execute(
            select(CallList).where(CallList.campaign_id == campaign_id, CallList.name == summary.list_name)
        )
    ).scalar_one_or_none()
    if existing is None:
        call_list = CallList(
            campaign_id=campaign_id,
            name=summary.list_name,
            status=ListStatus.IMPORTING,
            source_file=summary.file,
            created_at=now,
            import_started_at=now,
        )
        session.add(call_list)
        await session.flush()
        created = True
    else:
        call_list = existing
        call_list.status = ListStatus.IMPORTING
        call_list.import_started_at = now
        call_list.source_file = summary.file
        call_list.error = None
        created = False
    await session.commit()
    return call_list.id, created


async def _finish_list(session: AsyncSession, list_id: int | None, summary: ImportSummary, now: datetime) -> None:
    await session.execute(
        update(Lead)
        .where(Lead.list_id == list_id, Lead.status == LeadStatus.PENDING)
        .values(status=LeadStatus.READY)
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        update(CallList)
        .where(CallList.id == list_id)
        .values(
            status=ListStatus.READY,
            rows_read=CallList.rows_read + summary.read,
            imported=CallList.imported + summary.imported,
            merged=CallList.merged + summary.merged,
            rejected=CallList.rejected + summary.rejected,
            dnc_suppressed=CallList.dnc_suppressed + summary.dnc_suppressed,
            import_finished_at=now,
            error=None,
        )
        .execution_options(synchronize_session=False)
    )


async def _abandon(
    sessionmaker: async_sessionmaker[AsyncSession], list_id: int, created: bool, now: datetime, exc: BaseException
) -> None:
    """Undo what the failed import wrote; runs in its own transaction."""
    async with sessionmaker() as session, session.begin():
        await session.execute(delete(Lead).where(Lead.list_id == list_id, Lead.status == LeadStatus.PENDING))
        # Contacts this run created and no lead uses (created_at is this run's stamp).
        await session.execute(
            delete(Contact).where(
                Contact.created_at == now,
                ~exists().where(Lead.contact_id == Contact.id),
            )
        )
        if created:
            await session.execute(delete(CallList).where(CallList.id == list_id))
        else:
            await session.execute(
                update(CallList)
                .where(CallList.id == list_id)
                .values(status=ListStatus.READY, error=f"last import failed: {type(exc).__name__}: {exc}"[:500])
            )
    log.warning("import failed and was rolled back", list_id=list_id, error=f"{type(exc).__name__}: {exc}")


@dataclass
class _BatchWriter:
    campaign_id: int
    now: datetime
    reach_deadline: datetime | None
    prefixes: PrefixIndex
    summary: ImportSummary
    rejects: _RejectsWriter
    list_id: int | None = None

    async def write(self, session: AsyncSession, rows: list[_Row]) -> None:
        rows = await self._suppress_dnc(session, rows)
        if not rows:
            return
        # Within the batch: first occurrence wins, later duplicates merge into it.
        unique: dict[str, ContactRecord] = {}
        duplicates = 0
        for row in rows:
            record = row.record
            known = unique.get(record.phone)
            if known is None:
                unique[record.phone] = record
            else:
                unique[record.phone] = merge_records(known, record)
                duplicates += 1
        self.summary.merged += duplicates

        phones = list(unique)
        existing = await self._existing_contacts(session, phones)
        new_records = [r for p, r in unique.items() if p not in existing]
        if new_records:
            await self._insert_contacts(session, new_records)
        updates = []
        for phone, (cid, old) in existing.items():
            merged = merge_records(old, unique[phone])
            if merged != old:
                updates.append({"b_id": cid, **{f"b_{k}": getattr(merged, k) for k in _CONTACT_FIELDS}})
        if updates:
            await self._update_contacts(session, updates)
        imported = await self._insert_leads(session, phones)
        self.summary.imported += imported
        self.summary.merged += len(phones) - imported

    async def _suppress_dnc(self, session: AsyncSession, rows: list[_Row]) -> list[_Row]:
        numbers = [n for row in rows for n in row.record.numbers]
        exact = await exact_dnc_matches(session, numbers, self.campaign_id)
        kept: list[_Row] = []
        for row in rows:
            record = row.record
            hit = self._hit(record.phone, exact)
            if hit is not None:
                self.summary.dnc_suppressed += 1
                self.rejects.write(row.line, row.cells, f"dnc: {hit}")
                continue
            if record.alt_phones:
                allowed = [n for n in record.alt_phones if self._hit(n, exact) is None]
                self.summary.alt_numbers_dnc_removed += len(record.alt_phones) - len(allowed)
                record.alt_phones = allowed
            kept.append(row)
        return kept

    def _hit(self, number: str, exact: dict[str, int | None]) -> str | None:
        if number in exact:
            scope = "global" if exact[number] is None else "campaign"
            return f"{number} is on the {scope} DNC list"
        prefix = self.prefixes.match(number)
        if prefix is not None:
            scope = "global" if prefix.campaign_id is None else "campaign"
            return f"{number} matches {prefix.entry}* on the {scope} DNC list"
        return None

    async def _existing_contacts(
        self, session: AsyncSession, phones: list[str]
    ) -> dict[str, tuple[int, ContactRecord]]:
        c = _CONTACTS.c
        result = await session.execute(
            select(c.id, c.phone, *(c[k] for k in _CONTACT_FIELDS)).where(in_values(session, c.phone, phones))
        )
        out: dict[str, tuple[int, ContactRecord]] = {}
        for row in result:
            cid, phone, alt, name, zones, country, region, segment, vip, external_id, attributes = row
            out[phone] = (
                cid,
                ContactRecord(
                    phone=phone,
                    alt_phones=list(alt or []),
                    name=name,
                    timezones=list(zones or []),
                    country=country,
                    region=region,
                    segment=segment,
                    vip=bool(vip),
                    external_id=external_id,
                    attributes=dict(attributes or {}),
                ),
            )
        return out

    async def _insert_contacts(self, session: AsyncSession, records: list[ContactRecord]) -> None:
        # No RETURNING: plain executemany is several times faster; leads find their
        # contacts by number in the INSERT ... SELECT below. A contact inserted meanwhile
        # by a concurrent import is simply used.
        if _dialect(session) == "sqlite":
            # The hot path of a big SQLite import: values pre-serialised once per row
            # (JSON text, the UTC timestamp text UTCDateTime stores) and handed to the
            # driver's executemany, which is 5x faster than typed Core parameters.
            stamp = _sqlite_stamp(self.now)
            dumps = json.dumps
            zones = _zones_json
            rows = [
                (
                    r.phone,
                    dumps(r.alt_phones) if r.alt_phones else "[]",
                    r.name,
                    zones(tuple(r.timezones)),
                    r.country,
                    r.region,
                    r.segment,
                    1 if r.vip else 0,
                    r.external_id,
                    dumps(r.attributes, ensure_ascii=False) if r.attributes else "{}",
                    stamp,
                    stamp,
                )
                for r in records
            ]
            connection = await session.connection()
            await connection.exec_driver_sql(_SQLITE_INSERT_CONTACTS, rows)
            self.summary.contacts_created += len(rows)
            return
        values = [
            {
                "phone": r.phone,
                "alt_phones": r.alt_phones,
                "name": r.name,
                "timezones": r.timezones,
                "country": r.country,
                "region": r.region,
                "segment": r.segment,
                "vip": r.vip,
                "external_id": r.external_id,
                "attributes": r.attributes,
                "created_at": self.now,
                "updated_at": self.now,
            }
            for r in records
        ]
        stmt = postgresql.insert(_CONTACTS).on_conflict_do_nothing(index_elements=["phone"])
        await session.execute(stmt, values)
        self.summary.contacts_created += len(values)

    async def _update_contacts(self, session: AsyncSession, updates: list[dict[str, Any]]) -> None:
        table = _CONTACTS
        stmt = (
            table.update()
            .where(table.c.id == bindparam("b_id"))
            .values({**{k: bindparam(f"b_{k}") for k in _CONTACT_FIELDS}, "updated_at": self.now})
        )
        await session.execute(stmt, updates)
        self.summary.contacts_updated += len(updates)

    async def _insert_leads(self, session: AsyncSession, phones: list[str]) -> int:
        """One INSERT ... SELECT for the batch: a lead for every contact not yet in the campaign."""
        contacts = _CONTACTS.c
        leads = _LEADS
        already = (
            select(leads.c.id)
            .where(leads.c.campaign_id == self.campaign_id, leads.c.contact_id == contacts.id)
            .exists()
        )
        source = select(
            literal(self.campaign_id, BigInteger()),
            contacts.id,
            literal(self.list_id, BigInteger()),
            literal(LeadStatus.PENDING.value, String()),
            case((contacts.vip.is_(True), VIP_PRIORITY), else_=0),
            literal(0, Integer()),
            literal([], JSONType),
            literal(0, Integer()),
            literal(self.now, UTCDateTime()),
            literal([], JSONType),
            literal(self.reach_deadline, UTCDateTime()),
            literal(self.now, UTCDateTime()),
            literal(self.now, UTCDateTime()),
        ).where(in_values(session, contacts.phone, phones), ~already).order_by(contacts.id)  # leads in file order
        stmt = insert(leads).from_select(
            [
                "campaign_id",
                "contact_id",
                "list_id",
                "status",
                "priority",
                "attempts",
                "number_attempts",
                "number_index",
                "next_attempt_at",
                "dayparts_tried",
                "reach_deadline_at",
                "created_at",
                "updated_at",
            ],
            source,
        )
        result = await session.execute(stmt)
        return int(getattr(result, "rowcount", 0) or 0)
