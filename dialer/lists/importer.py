"""Importing a call list into a campaign: streaming, batched, deduplicated, DNC-suppressed.

Transactions: committed batches, invisible until the list is marked ready. A large import
is written in batches (``batch_size`` rows, one short transaction each), so it never holds
SQLite's single writer lock for longer than one batch. Nothing of an unfinished import is
visible: its leads are written with status ``pending`` and its list with status
``importing``; the final transaction flips the leads and the list to ``ready`` together
(the dialer claims only ``ready`` leads; ``leads export`` and
:func:`dialer.leads.visible_lead_counts` leave ``pending`` out). An interrupted import is
discarded and restarted, never resumed:

- failed or interrupted in-process (an exception, Ctrl-C): the importer deletes its pending
  leads, the contacts it created that no lead uses, and the list row it created;
- killed outright (SIGKILL, power cut): nothing runs, so the next import into the campaign
  cleans up the same things, once the dead import's heartbeat is older than
  :data:`STALE_IMPORT_AFTER`.

One import at a time per campaign. An import owns its list (``import_owner``, host:pid:random)
and refreshes ``heartbeat_at`` in every batch transaction. A second import into the campaign
finds the first one's list ``importing``: with a fresh heartbeat it is refused with
:class:`ImportConflictError` before writing anything; with a stale one it is discarded. The
check runs under ``pg_advisory_xact_lock`` on PostgreSQL and under SQLite's writer lock, so
two imports starting together cannot both pass it. Every batch and the final step check
that the list is still this import's; if another import discarded it meanwhile, the import
fails loudly instead of marking a half list ready. The list's ``imported`` count is the real
number of its leads.

A dry run writes nothing and takes no write lock: it looks up existing contacts, leads and
DNC entries with reads and remembers the numbers seen earlier in the file (one int per
unique number), so its counts are those of the real import.

Files that cannot be read (binary, undecodable, empty, a header without data rows, no phone
column) and bad options (``--region`` unknown to phonenumbers) are refused before the
database is touched. Rows are read, imported (a new lead), merged (the number is already a
lead of the campaign or appeared earlier in the file: the contact's missing fields are
filled in, never doubled), rejected (with the reason, into the rejects file) or
DNC-suppressed (also listed in the rejects file); ``read == imported + merged + rejected +
dnc_suppressed`` always holds. A kept row may carry warnings (an invalid alternate number
dropped, an impossible set of time zones replaced by the campaign's): they go to the same
file with a reason starting ``kept:``, and are counted in ``dropped_alternates`` and
``timezone_fallbacks``, outside the sum. Rows whose cells are all empty carry nothing and
are skipped. Importing the same file again changes nothing.

Contacts are global, keyed by their primary E.164 number; a lead is a contact in one
campaign. Speed comes from Core ``INSERT`` statements run with executemany per batch, not
ORM objects per row.
"""

from __future__ import annotations

import asyncio
import csv
import gc
import json
import math
import multiprocessing
import os
import secrets
import socket
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import IO, Any, cast

import phonenumbers
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
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from dialer.campaigns import CampaignError, campaign_settings, get_campaign
from dialer.dnc import PrefixIndex, exact_dnc_matches, in_values, load_prefix_index
from dialer.lists.fields import ColumnMapping, parse_map_options, resolve_columns
from dialer.lists.normalize import (
    DEFAULT_WINDOW_SECONDS,
    DROPPED_ALTERNATE,
    TIMEZONE_FALLBACK,
    ContactRecord,
    RowError,
    RowNormalizer,
    merge_records,
)
from dialer.lists.reader import ListFileError, TableSource, open_table
from dialer.models import CallList, Campaign, CampaignStatus, Contact, Lead, LeadStatus, ListStatus
from dialer.windows import TimeRange
from infra.db import JSONType, UTCDateTime, utcnow

__all__ = [
    "STALE_IMPORT_AFTER",
    "ImportConflictError",
    "ImportOptionError",
    "ImportSummary",
    "ProgressFn",
    "check_list_file",
    "check_region",
    "default_rejects_path",
    "import_list",
    "is_stale",
    "list_state",
]

log = structlog.get_logger()

ProgressFn = Callable[[int, int, int], None]  # (rows read, position, total)
VIP_PRIORITY = 10
_CONTACT_FIELDS = (
    "alt_phones", "name", "timezones", "country", "region", "segment", "vip", "external_id", "attributes",
)  # fmt: skip

# An 'importing' list whose heartbeat is older than this belongs to a dead process: the next
# import into the campaign discards it. A live import commits a batch every few seconds at
# most (5,000 rows at >= 1,000 rows/s even on a busy machine), so five minutes never mistakes
# a slow import for a dead one, and a manager waits at most that long after a crash.
STALE_IMPORT_AFTER = timedelta(minutes=5)
# pg_advisory_xact_lock(key1, key2) namespace: ("LIST", campaign id).
_PG_LOCK_NAMESPACE = 0x4C495354

_CONTACTS: Table = cast(Table, Contact.__table__)
_LEADS: Table = cast(Table, Lead.__table__)


class ImportOptionError(ListFileError):
    """A bad import option (``--region``), refused before anything is read or written."""


class ImportConflictError(CampaignError):
    """Another import is running into the campaign, or took this import's list over."""


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
    # Kept rows that were changed (see dialer.lists.normalize); outside the read = ... sum.
    dropped_alternates: int = 0
    timezone_fallbacks: int = 0
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


def import_owner_id() -> str:
    """Who runs this import: host, process and a random part (a pid is reused after a reboot)."""
    return f"{socket.gethostname()[:80]}:{os.getpid()}:{secrets.token_hex(4)}"


def is_stale(call_list: CallList, wall_now: datetime) -> bool:
    """Is this 'importing' list left by a dead import (no batch for STALE_IMPORT_AFTER)?"""
    return _last_sign_of_life(call_list) < wall_now - STALE_IMPORT_AFTER


def list_state(call_list: CallList, wall_now: datetime) -> str:
    """The list's status for people: 'importing' lists of dead imports show as 'interrupted'."""
    if call_list.status == ListStatus.IMPORTING and is_stale(call_list, wall_now):
        return "interrupted"
    return str(call_list.status)


def _last_sign_of_life(call_list: CallList) -> datetime:
    beat = call_list.heartbeat_at or call_list.import_started_at or call_list.created_at
    return beat if beat is not None else datetime.min.replace(tzinfo=UTC)


def check_region(region: str | None, what: str = "--region") -> str | None:
    """``region`` upper-cased if phonenumbers knows it; :class:`ImportOptionError` if not."""
    if region is None or not region.strip():
        return None
    upper = region.strip().upper()
    if upper not in phonenumbers.SUPPORTED_REGIONS:
        raise ImportOptionError(
            f"{what} {region!r}: not a region phonenumbers knows; use an ISO 3166 code such as CN, US or GB"
        )
    return upper


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


# json.dumps(value, ensure_ascii=False) builds an encoder per call; this is the same encoder, built once.
_dumps_unicode = json.JSONEncoder(ensure_ascii=False).encode
# What that encoder writes for a str (the C function it uses itself).
_quote = json.encoder.encode_basestring


def _attributes_json(attributes: dict[str, Any]) -> str:
    """``json.dumps(attributes, ensure_ascii=False)``, without the encoder for text-only dicts.

    Attributes read from a file are text, so the JSON is the quoted keys and values joined
    the way json.dumps joins them (", " and ": "); anything else goes through the encoder.
    """
    if not attributes:
        return "{}"
    parts = []
    for key, value in attributes.items():
        if type(key) is not str or type(value) is not str:
            return _dumps_unicode(attributes)
        parts.append(_quote(key) + ": " + _quote(value))
    return "{" + ", ".join(parts) + "}"


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


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


Rows = Iterator[tuple[int, list[str]]]


def _open_checked(path: Path, explicit: dict[str, str]) -> tuple[TableSource, ColumnMapping, Rows]:
    """Open the file, map its columns and find its first data row; ListFileError if unusable."""
    source = open_table(path)
    try:
        columns = resolve_columns(path, source.first_row, explicit)
        rows = source.rows()
        if not columns.has_header:
            return source, columns, _prepend((1, list(source.first_row)), rows)
        for line, cells in rows:
            if any(c.strip() for c in cells):
                return source, columns, _prepend((line, cells), rows)
        raise ListFileError(f"{path} has a header but no data rows; add rows or check the delimiter")
    except BaseException:
        source.close()
        raise


def _explicit(path: Path, mapping: Sequence[str]) -> dict[str, str]:
    try:
        return parse_map_options(mapping)
    except ValueError as exc:
        raise ListFileError(f"{path}: {exc}") from None


def check_list_file(path: Path, *, mapping: Sequence[str] = (), region: str | None = None) -> None:
    """Everything :func:`import_list` checks before touching the database, without a database.

    The CLI runs this before it opens (and perhaps creates and migrates) the database, so a
    file that cannot be imported leaves nothing behind, not even an empty database file.
    """
    path = Path(path)
    check_region(region)
    source, _columns, _rows = _open_checked(path, _explicit(path, mapping))
    source.close()


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

    Raises before writing anything: :class:`ListFileError` (unreadable file, or
    :class:`ImportOptionError` for a bad option), :class:`CampaignError` (no such campaign),
    :class:`ImportConflictError` (another import into the campaign is running). Raises
    :class:`ImportConflictError` after writing, and undoes this run's writes, when another
    import discarded this one's list meanwhile.
    """
    path = Path(path)
    started = time.perf_counter()
    stamp = now or utcnow()
    region = check_region(region)
    explicit = _explicit(path, mapping)
    source, columns, rows = _open_checked(path, explicit)
    try:
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
        with _heap_frozen():
            await _run(
                sessionmaker, source, rows, columns, summary, rejects, region, batch_size, progress, stamp, workers
            )
    finally:
        source.close()
    summary.rejects_file = str(rejects.path) if rejects.count else None
    kept = summary.dropped_alternates + summary.timezone_fallbacks
    if kept:
        summary.warnings.append(
            f"{kept} kept rows were changed ({summary.dropped_alternates} invalid alternate numbers dropped, "
            f"{summary.timezone_fallbacks} numbers given the campaign's time zone); see {rejects.path}"
        )
    summary.seconds = time.perf_counter() - started
    log.info("list imported", **{k: v for k, v in summary.as_dict().items() if k not in ("columns", "warnings")})
    return summary


def _window_seconds(window: str) -> int:
    try:
        rng = TimeRange.parse(window)
    except ValueError:
        return DEFAULT_WINDOW_SECONDS
    return rng.end - rng.start


_gc_lock = threading.Lock()
_gc_imports = 0


@contextmanager
def _heap_frozen() -> Iterator[None]:
    """While imports run, leave the heap that existed before them out of garbage collection.

    An import allocates a few container objects per row that live for a batch, so the
    collector's full passes keep coming, and each one walks every object of the process
    (the phonenumbers metadata, SQLAlchemy, the rest of the service): a third of an import's
    CPU time. ``gc.freeze()`` moves the objects that exist now out of those passes;
    ``gc.unfreeze()`` puts them back when the last running import ends, so cyclic garbage
    among them is collected as usual afterwards. Rows and batches are collected as before.
    """
    global _gc_imports
    with _gc_lock:
        if _gc_imports == 0:
            gc.freeze()
        _gc_imports += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_imports -= 1
            if _gc_imports == 0:
                gc.unfreeze()


# The SQLite connection of an import (pragmas are per connection; see _import_session):
# a page cache that holds the contacts' phone index of a million-row list (random inserts
# into a B-tree that outgrows SQLite's 2 MB default cache slow each batch down), and a
# checkpoint every 64 MB of WAL instead of every 4 MB, so each hot index page is copied into
# the database file (and fsynced) a few times per import rather than every other batch.
_SQLITE_IMPORT_PRAGMAS = {"cache_size": -65536, "wal_autocheckpoint": 16384}


@asynccontextmanager
async def _import_session(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """The session the import writes with.

    On SQLite it keeps one connection for the whole import (a session bound to the engine
    takes a pooled connection per transaction), tuned with :data:`_SQLITE_IMPORT_PRAGMAS`.
    At the end the import checkpoints the WAL it wrote (its own cost, not the next writer's)
    and gives the connection back to the pool with its settings as they were.
    """
    probe = sessionmaker()
    bind = probe.bind
    await probe.close()
    if not isinstance(bind, AsyncEngine) or bind.dialect.name != "sqlite":
        async with sessionmaker() as session:
            yield session
        return
    connection = await bind.connect()
    try:
        before: dict[str, int] = {}
        for name, value in _SQLITE_IMPORT_PRAGMAS.items():
            before[name] = int((await connection.exec_driver_sql(f"PRAGMA {name}")).scalar_one())
            await connection.exec_driver_sql(f"PRAGMA {name}={int(value)}")
        await connection.commit()  # end the autobegun transaction: the session runs its own
        try:
            async with sessionmaker(bind=connection) as session:
                yield session
        finally:
            try:
                await connection.rollback()
                await connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
                for name, value in before.items():
                    await connection.exec_driver_sql(f"PRAGMA {name}={value}")
                await connection.commit()
            except BaseException:
                await connection.invalidate()  # never hand a tuned connection to anyone else
                raise
    finally:
        await connection.close()


async def _run(
    sessionmaker: async_sessionmaker[AsyncSession],
    source: TableSource,
    rows: Rows,
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
        if region is None and settings.region:
            try:
                region = check_region(settings.region)
            except ImportOptionError:
                raise CampaignError(
                    f"campaign {camp.name!r} has region {settings.region!r}, which phonenumbers does not know; "
                    f"pass --region with an ISO 3166 code such as CN, US or GB, or fix the campaign's region"
                ) from None
        deadline_hours = settings.retry.reach_deadline_hours
        normalizer = RowNormalizer(
            columns, region, settings.timezone, window_seconds=_window_seconds(settings.window.default)
        )
        prefixes = await load_prefix_index(session, campaign_id)
        await session.rollback()

    owner = import_owner_id()
    writer = _BatchWriter(
        campaign_id=campaign_id,
        now=now,
        reach_deadline=now + timedelta(hours=deadline_hours) if deadline_hours else None,
        prefixes=prefixes,
        summary=summary,
        rejects=rejects,
        dry_run=summary.dry_run,
    )
    async with _import_session(sessionmaker) as session:
        list_id: int | None = None
        created_list = False
        try:
            if not summary.dry_run:
                list_id, created_list = await _begin_list(session, campaign_id, summary, now, owner)
            writer.list_id = list_id
            summary.list_id = list_id

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
                if summary.dry_run:
                    await session.rollback()  # reads only; ends the read transaction
                else:
                    assert list_id is not None
                    await _heartbeat(session, list_id, owner, summary)
                    await session.commit()
                if progress is not None:
                    progress(summary.read, source.position(), source.total)
            if not summary.dry_run:
                assert list_id is not None
                await _finish_list(session, list_id, owner, summary, now)
                await session.commit()
            if progress is not None:
                progress(summary.read, source.total, source.total)
        except BaseException as exc:
            rejects.close(discard=True)
            try:
                await session.rollback()
                if list_id is not None:
                    await _abandon(sessionmaker, list_id, owner, created_list, now, exc)
            except Exception as cleanup:  # the original error matters more; the next import cleans up
                log.error(
                    "could not undo the failed import; the next import into the campaign discards it",
                    list_id=list_id,
                    error=f"{type(cleanup).__name__}: {cleanup}",
                )
            raise
        finally:
            rejects.close()


def _chunks(rows: Iterator[tuple[int, list[str]]], size: int) -> Iterator[list[tuple[int, list[str]]]]:
    chunk: list[tuple[int, list[str]]] = []
    for line, cells in rows:
        if not "".join(cells).strip():  # all cells blank: same as not any(c.strip() ...), faster
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
        r.warnings,
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


def _prepend(first: tuple[int, list[str]], rest: Rows) -> Rows:
    yield first
    yield from rest


async def _lock_campaign_imports(session: AsyncSession, campaign_id: int) -> None:
    """Serialise the begin steps of imports into one campaign, until this transaction ends."""
    if _dialect(session) == "postgresql":
        await session.execute(
            select(func.pg_advisory_xact_lock(literal(_PG_LOCK_NAMESPACE, Integer()), literal(campaign_id % 2**31)))
        )
    else:
        # SQLite has one writer: a (no-op) write as the first statement takes the writer lock
        # before the reads below, so a second import waits here and then sees the first's list.
        await session.execute(update(Campaign).where(Campaign.id == campaign_id).values(updated_at=Campaign.updated_at))


def _running_message(campaign: str, running: CallList, wall_now: datetime) -> str:
    beat = _last_sign_of_life(running)
    retry_at = beat + STALE_IMPORT_AFTER
    minutes = max(1, math.ceil((retry_at - wall_now).total_seconds() / 60))
    started = running.import_started_at or running.created_at
    return (
        f"an import into campaign {campaign!r} is running (list {running.name!r}, started "
        f"{started:%Y-%m-%d %H:%M} UTC, last batch {max(0, int((wall_now - beat).total_seconds()))} s ago, "
        f"by {running.import_owner or 'an older version'}); wait for it to finish, or if that process is dead, "
        f"retry after {minutes} minutes"
    )


async def _discard_import(session: AsyncSession, stale: CallList, reason: str) -> None:
    """Remove what an import that will never finish wrote: its pending leads and new contacts."""
    leads = await session.execute(
        delete(Lead)
        .where(Lead.list_id == stale.id, Lead.status == LeadStatus.PENDING)
        .execution_options(synchronize_session=False)
    )
    contacts = 0
    if stale.import_started_at is not None:
        # The import stamped the contacts it created with its start instant.
        result = await session.execute(
            delete(Contact)
            .where(Contact.created_at == stale.import_started_at, ~exists().where(Lead.contact_id == Contact.id))
            .execution_options(synchronize_session=False)
        )
        contacts = _rowcount(result)
    remaining = (await session.execute(select(func.count()).where(Lead.list_id == stale.id))).scalar_one()
    await session.execute(
        update(CallList)
        .where(CallList.id == stale.id)
        .values(
            # A list that had leads from earlier imports keeps them, and stays usable.
            status=ListStatus.READY if remaining else ListStatus.FAILED,
            import_owner=None,
            error=f"{reason}; its {_rowcount(leads)} pending leads and {contacts} new contacts were discarded"[:500],
        )
        .execution_options(synchronize_session=False)
    )
    log.warning("discarded an interrupted import", list=stale.name, pending_leads=_rowcount(leads), contacts=contacts)


async def _begin_list(
    session: AsyncSession, campaign_id: int, summary: ImportSummary, now: datetime, owner: str
) -> tuple[int, bool]:
    """Refuse if another import is running; discard dead ones; create (or reopen) the list as 'importing'."""
    await _lock_campaign_imports(session, campaign_id)
    wall = utcnow()
    unfinished = (
        (
            await session.execute(
                select(CallList).where(CallList.campaign_id == campaign_id, CallList.status == ListStatus.IMPORTING)
            )
        )
        .scalars()
        .all()
    )
    for running in unfinished:
        if not is_stale(running, wall):
            raise ImportConflictError(_running_message(summary.campaign, running, wall))
    for stale in unfinished:
        beat = _last_sign_of_life(stale)
        await _discard_import(session, stale, f"interrupted import (no progress since {beat:%Y-%m-%d %H:%M} UTC)")
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
            import_owner=owner,
            heartbeat_at=wall,
        )
        session.add(call_list)
        await session.flush()
        created = True
    else:
        await session.refresh(existing)  # _discard_import may have changed it behind the ORM
        call_list = existing
        call_list.status = ListStatus.IMPORTING
        call_list.import_started_at = now
        call_list.source_file = summary.file
        call_list.error = None
        call_list.import_owner = owner
        call_list.heartbeat_at = wall
        created = False
    await session.commit()
    return call_list.id, created


def _lost_message(summary: ImportSummary) -> str:
    return (
        f"list {summary.list_name!r} of campaign {summary.campaign!r} was discarded by another import while "
        "this one ran; nothing of this run is visible; run the import again when no other import is running"
    )


async def _heartbeat(session: AsyncSession, list_id: int, owner: str, summary: ImportSummary) -> None:
    """In the batch transaction: the list is still ours (else raise), and we are alive."""
    result = await session.execute(
        update(CallList)
        .where(CallList.id == list_id, CallList.status == ListStatus.IMPORTING, CallList.import_owner == owner)
        .values(heartbeat_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if _rowcount(result) != 1:
        raise ImportConflictError(_lost_message(summary))


async def _finish_list(session: AsyncSession, list_id: int, owner: str, summary: ImportSummary, now: datetime) -> None:
    await _heartbeat(session, list_id, owner, summary)  # locks the list row; fails if it is not ours
    flipped = await session.execute(
        update(Lead)
        .where(Lead.list_id == list_id, Lead.status == LeadStatus.PENDING)
        .values(status=LeadStatus.READY)
        .execution_options(synchronize_session=False)
    )
    if _rowcount(flipped) != summary.imported:
        message = (
            f"this run counted {summary.imported} new leads but the list holds {_rowcount(flipped)}; "
            "the list's imported count is the real one"
        )
        summary.warnings.append(message)
        log.warning("import count differs from the database", list_id=list_id, detail=message)
    real = (await session.execute(select(func.count()).where(Lead.list_id == list_id))).scalar_one()
    await session.execute(
        update(CallList)
        .where(CallList.id == list_id)
        .values(
            status=ListStatus.READY,
            rows_read=CallList.rows_read + summary.read,
            imported=int(real),
            merged=CallList.merged + summary.merged,
            rejected=CallList.rejected + summary.rejected,
            dnc_suppressed=CallList.dnc_suppressed + summary.dnc_suppressed,
            import_finished_at=now,
            import_owner=None,
            error=None,
        )
        .execution_options(synchronize_session=False)
    )


async def _abandon(
    sessionmaker: async_sessionmaker[AsyncSession],
    list_id: int,
    owner: str,
    created: bool,
    now: datetime,
    exc: BaseException,
) -> None:
    """Undo what the failed import wrote; runs in its own transaction.

    The list and its pending leads are touched only while the list is still this import's:
    if another import discarded and reopened it, those pending leads are the other's.
    """
    async with sessionmaker() as session, session.begin():
        ours = await session.execute(
            update(CallList)
            .where(CallList.id == list_id, CallList.status == ListStatus.IMPORTING, CallList.import_owner == owner)
            .values(import_owner=None)
            .execution_options(synchronize_session=False)
        )
        if _rowcount(ours) == 1:
            await session.execute(delete(Lead).where(Lead.list_id == list_id, Lead.status == LeadStatus.PENDING))
        # Contacts this run created and no lead uses (created_at is this run's stamp).
        await session.execute(
            delete(Contact).where(
                Contact.created_at == now,
                ~exists().where(Lead.contact_id == Contact.id),
            )
        )
        if _rowcount(ours) == 1:
            remaining = (await session.execute(select(func.count()).where(Lead.list_id == list_id))).scalar_one()
            if created and not remaining:
                await session.execute(delete(CallList).where(CallList.id == list_id))
            else:
                await session.execute(
                    update(CallList)
                    .where(CallList.id == list_id)
                    .values(
                        status=ListStatus.READY if remaining else ListStatus.FAILED,
                        error=f"last import failed: {type(exc).__name__}: {exc}"[:500],
                    )
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
    dry_run: bool = False
    # Dry run: the numbers of earlier batches (as ints, ~50 bytes each), which a real
    # import would have written by now and would merge into.
    seen: set[int] = field(default_factory=set)

    async def write(self, session: AsyncSession, rows: list[_Row]) -> None:
        rows = await self._suppress_dnc(session, rows)
        if not rows:
            return
        self._report_warnings(rows)
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
        if self.dry_run:
            await self._count(session, unique)
            return

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

    def _report_warnings(self, rows: list[_Row]) -> None:
        for row in rows:
            for kind, message in row.record.warnings:
                if kind == DROPPED_ALTERNATE:
                    self.summary.dropped_alternates += 1
                elif kind == TIMEZONE_FALLBACK:
                    self.summary.timezone_fallbacks += 1
                self.rejects.write(row.line, row.cells, f"kept: {message}")

    async def _count(self, session: AsyncSession, unique: dict[str, ContactRecord]) -> None:
        """Dry run: what :meth:`write` would count, from reads only."""
        fresh = [p for p in unique if int(p[1:]) not in self.seen]
        self.summary.merged += len(unique) - len(fresh)  # written by an earlier batch by now
        self.seen.update(int(p[1:]) for p in fresh)
        if not fresh:
            return
        existing = await self._existing_contacts(session, fresh)
        leads = self._leads_in_campaign(session, fresh)
        in_campaign = {phone for (phone,) in await session.execute(leads)}
        imported = sum(1 for p in fresh if p not in in_campaign)
        self.summary.imported += imported
        self.summary.merged += len(fresh) - imported
        self.summary.contacts_created += len(fresh) - len(existing)
        self.summary.contacts_updated += sum(
            1 for phone, (_cid, old) in existing.items() if merge_records(old, unique[phone]) != old
        )

    def _leads_in_campaign(self, session: AsyncSession, phones: list[str]) -> Any:
        c = _CONTACTS.c
        return (
            select(c.phone)
            .join(_LEADS, _LEADS.c.contact_id == c.id)
            .where(_LEADS.c.campaign_id == self.campaign_id, in_values(session, c.phone, phones))
        )

    async def _suppress_dnc(self, session: AsyncSession, rows: list[_Row]) -> list[_Row]:
        numbers: list[str] = []
        for row in rows:
            numbers.append(row.record.phone)
            if row.record.alt_phones:
                numbers.extend(row.record.alt_phones)
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
            attributes_json = _attributes_json
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
                    attributes_json(r.attributes),
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
        source = (
            select(
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
            )
            .where(in_values(session, contacts.phone, phones), ~already)
            .order_by(contacts.id)
        )  # leads in file order
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
