"""The ACD's database side: the batched queue_log writer, caller look-ups and callback records.

Nothing here is on a call's critical path. :class:`QueueLogWriter` only appends to a bounded
buffer when an event happens; a background task writes the buffer in one INSERT every
``flush_interval`` seconds (about 200 ms), so a slow or locked database delays the log, never a
call. :class:`SqlCallerLookup` answers "is this caller a VIP, and who was their last agent?" from
the dialer's ``contacts`` and ``call_attempts`` tables when they exist (the ACD must not import
the dialer, so it reads them by name with SQL text) and from queue_log itself: an ENTERQUEUE row
carries the caller's number (Asterisk's callerid field) and the COMPLETE row of the same call
names the agent and the talk time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import TextClause, bindparam, insert, select, text, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from acd.models import AgentRow, CallbackRow, QueueLogRow, QueueMemberRow, QueueRow

__all__ = [
    "CallerInfo",
    "CallerLookup",
    "LogLine",
    "QueueLogWriter",
    "SqlCallerLookup",
    "StoredAgent",
    "insert_callback",
    "load_agents",
    "load_open_callbacks",
    "store_agents",
    "update_callback",
]

log = structlog.get_logger(__name__)

_COMPLETE = ("COMPLETEAGENT", "COMPLETECALLER")


@dataclass(frozen=True, slots=True)
class LogLine:
    """One queue_log row ready to insert: UTC time and up to five data fields."""

    time: datetime
    call_id: str
    queue: str
    agent: str
    event: str
    data: tuple[str, ...] = ()

    def as_row(self) -> dict[str, Any]:
        data = list(self.data[:5])
        if len(self.data) > 5:  # keep the overflow rather than lose it
            data[4] = "|".join(self.data[4:])
        data += [""] * (5 - len(data))
        row: dict[str, Any] = {
            "time": self.time,
            "call_id": self.call_id[:128],
            "queue": self.queue[:64],
            "agent": self.agent[:64],
            "event": self.event[:32],
        }
        for i, value in enumerate(data, 1):
            row[f"data{i}"] = value[:255]
        return row


class QueueLogWriter:
    """Buffers queue_log rows and inserts them in batches from a background task.

    ``add`` never blocks. ``max_buffer`` bounds memory while the database is unavailable: the
    oldest rows are dropped and counted in ``dropped``. ``stop`` writes everything left.
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        flush_interval: float = 0.2,
        max_buffer: int = 100_000,
        batch: int = 1000,
    ) -> None:
        if flush_interval <= 0:
            raise ValueError(f"flush_interval={flush_interval} must be > 0 seconds (0.2 is usual)")
        self.sessionmaker = sessionmaker
        self.flush_interval = flush_interval
        self.batch = batch
        self._buffer: deque[LogLine] = deque(maxlen=max_buffer)
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.written = 0
        self.dropped = 0
        self.failures = 0

    def add(self, line: LogLine) -> None:
        if len(self._buffer) == self._buffer.maxlen:
            self.dropped += 1
        self._buffer.append(line)

    def __len__(self) -> int:
        return len(self._buffer)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="acd-queue-log-writer")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval)
            await self.flush()

    async def flush(self) -> int:
        """Write what is buffered now; returns the number of rows written. Failures keep the rows."""
        async with self._lock:
            total = 0
            while self._buffer:
                chunk = [self._buffer.popleft() for _ in range(min(self.batch, len(self._buffer)))]
                try:
                    async with self.sessionmaker() as session, session.begin():
                        await session.execute(insert(QueueLogRow), [line.as_row() for line in chunk])
                except SQLAlchemyError as exc:
                    self.failures += 1
                    self._buffer.extendleft(reversed(chunk))
                    error = str(exc).splitlines()[0]
                    log.warning("acd.queue_log_write_failed", error=error, buffered=len(self._buffer))
                    break
                total += len(chunk)
            self.written += total
            return total

    async def stop(self) -> None:
        """End the background task and write every buffered row (one retry on failure)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()
        if self._buffer:
            await asyncio.sleep(self.flush_interval)
            await self.flush()
        if self._buffer:
            log.error("acd.queue_log_lost", rows=len(self._buffer))


@dataclass(frozen=True, slots=True)
class CallerInfo:
    """What the ACD knows about a caller before queueing them."""

    contact_id: str | None = None
    vip: bool = False
    last_agent: str | None = None
    last_agent_at: datetime | None = None


CallerLookup = Callable[[str], Awaitable[CallerInfo]]


class SqlCallerLookup:
    """Contact (VIP flag) and last effective agent of a number, within ``sticky_days``.

    An effective call is one with at least ``min_talk_s`` seconds of conversation. Tables that
    do not exist (a database without the dialer's schema) simply give no answer.
    """

    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], *, sticky_days: float = 7.0, min_talk_s: float = 10.0
    ) -> None:
        self.sessionmaker = sessionmaker
        self.sticky_days = sticky_days
        self.min_talk_s = min_talk_s
        # Optional tables found missing once are not asked again (each miss is a failed
        # statement and a rollback, on every call).
        self._missing: set[str] = set()

    async def __call__(self, number: str) -> CallerInfo:
        if not number:
            return CallerInfo()
        since = datetime.now(UTC) - timedelta(days=self.sticky_days)
        contact_id: str | None = None
        vip = False
        best: tuple[datetime, str] | None = None
        async with self.sessionmaker() as session:
            row = await self._optional(session, "contacts", _CONTACT_SQL, n=number)
            if row:
                contact_id, vip = str(row[0][0]), bool(row[0][1])
            attempts = await self._optional(session, "call_attempts", _ATTEMPTS_SQL, n=number)
            for agent, at, talk in attempts:
                when = _utc(at)
                if when is not None and when >= since and (talk is None or float(talk) >= self.min_talk_s):
                    best = (when, str(agent))
                    break
            try:
                rows = (await session.execute(_STICKY_SELECT, {"number": number, "since": since})).all()
                for agent, at, call_s in rows:
                    if _number(call_s) >= self.min_talk_s:
                        if best is None or at > best[0]:
                            best = (at, agent)
                        break
            except SQLAlchemyError as exc:
                log.debug("acd.sticky_lookup_failed", error=str(exc).splitlines()[0])
        return CallerInfo(
            contact_id=contact_id,
            vip=vip,
            last_agent=best[1] if best else None,
            last_agent_at=best[0] if best else None,
        )

    async def _optional(self, session: AsyncSession, table: str, sql: TextClause, **params: Any) -> list[Any]:
        if table in self._missing:
            return []
        try:
            return list((await session.execute(sql, params)).all())
        except SQLAlchemyError as exc:
            await session.rollback()
            if "no such table" in str(exc) or "does not exist" in str(exc):
                self._missing.add(table)
            log.debug("acd.optional_lookup_failed", table=table, error=str(exc).splitlines()[0])
            return []


# Built once: SQLAlchemy statements are objects, and building them per call made garbage
# (columns, aliases) that only a full collection frees, besides the compile-cache misses.
_CONTACT_SQL = text("SELECT id, vip FROM contacts WHERE phone = :n")
_ATTEMPTS_SQL = text(
    "SELECT agent_id, bridged_at, talk_seconds FROM call_attempts WHERE number = :n "
    "AND agent_id IS NOT NULL AND bridged_at IS NOT NULL ORDER BY bridged_at DESC LIMIT 5"
)
_ENTERED = QueueLogRow.__table__.alias("entered")
_STICKY_SELECT = (
    select(QueueLogRow.agent, QueueLogRow.time, QueueLogRow.data2)
    .join(_ENTERED, _ENTERED.c.call_id == QueueLogRow.call_id)
    .where(
        _ENTERED.c.event == "ENTERQUEUE",
        _ENTERED.c.data2 == bindparam("number"),
        QueueLogRow.event.in_(_COMPLETE),
        QueueLogRow.time >= bindparam("since", type_=QueueLogRow.__table__.c.time.type),
    )
    .order_by(QueueLogRow.time.desc())
    .limit(10)
)


def _utc(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            parsed = datetime.fromisoformat(value)
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _number(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        return 0.0


# -- agents ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredAgent:
    """An agent as the database has it: HA1 hashes, never a password."""

    id: str
    name: str
    extension: str | None
    sip_username: str
    realm: str
    ha1: dict[str, str]
    mode: str
    skills: dict[str, int]
    queues: dict[str, int]


async def load_agents(sessionmaker: async_sessionmaker[AsyncSession]) -> list[StoredAgent]:
    """Every enabled agent with its memberships."""
    async with sessionmaker() as session:
        agents = (await session.execute(select(AgentRow).where(AgentRow.enabled.is_(True)))).scalars().all()
        members = (await session.execute(select(QueueMemberRow))).scalars().all()
    by_agent: dict[str, dict[str, int]] = {}
    for m in members:
        by_agent.setdefault(m.agent_id, {})[m.queue_id] = m.penalty
    out: list[StoredAgent] = []
    for a in agents:
        ha1 = {
            algo: value
            for algo, value in (("MD5", a.ha1_md5), ("SHA-256", a.ha1_sha256), ("SHA-512-256", a.ha1_sha512_256))
            if value
        }
        out.append(
            StoredAgent(
                id=a.id,
                name=a.name,
                extension=a.extension,
                sip_username=a.sip_username,
                realm=a.realm,
                ha1=ha1,
                mode=a.mode,
                skills=dict(a.skills or {}),
                queues=by_agent.get(a.id, {}),
            )
        )
    return out


async def store_agents(
    sessionmaker: async_sessionmaker[AsyncSession],
    agents: Iterable[StoredAgent],
    queues: Iterable[tuple[str, dict[str, Any]]],
) -> None:
    """Upsert agents (HA1 only), queues and memberships from the configuration."""
    now = datetime.now(UTC)
    async with sessionmaker() as session, session.begin():
        for qid, settings in queues:
            row = await session.get(QueueRow, qid)
            if row is None:
                session.add(QueueRow(id=qid, settings=settings, created_at=now, updated_at=now))
            else:
                row.settings, row.updated_at = settings, now
        await session.flush()
        for a in agents:
            row_a = await session.get(AgentRow, a.id)
            if row_a is None:
                row_a = AgentRow(id=a.id, created_at=now)
                session.add(row_a)
            row_a.name, row_a.extension, row_a.sip_username, row_a.realm = a.name, a.extension, a.sip_username, a.realm
            if a.ha1:
                row_a.ha1_md5 = a.ha1.get("MD5")
                row_a.ha1_sha256 = a.ha1.get("SHA-256")
                row_a.ha1_sha512_256 = a.ha1.get("SHA-512-256")
            row_a.mode, row_a.skills, row_a.enabled, row_a.updated_at = a.mode, dict(a.skills), True, now
            await session.flush()
            existing = (
                (await session.execute(select(QueueMemberRow).where(QueueMemberRow.agent_id == a.id))).scalars().all()
            )
            for m in existing:
                if m.queue_id not in a.queues:
                    await session.delete(m)
                else:
                    m.penalty = a.queues[m.queue_id]
            have = {m.queue_id for m in existing}
            for qid, penalty in a.queues.items():
                if qid not in have:
                    session.add(QueueMemberRow(agent_id=a.id, queue_id=qid, penalty=penalty))


# -- callbacks ------------------------------------------------------------------------------------


async def insert_callback(sessionmaker: async_sessionmaker[AsyncSession], **values: Any) -> None:
    async with sessionmaker() as session, session.begin():
        if await session.get(CallbackRow, values["id"]) is None:
            session.add(CallbackRow(**values))


async def update_callback(sessionmaker: async_sessionmaker[AsyncSession], callback_id: str, **values: Any) -> None:
    async with sessionmaker() as session, session.begin():
        await session.execute(update(CallbackRow).where(CallbackRow.id == callback_id).values(**values))


async def load_open_callbacks(sessionmaker: async_sessionmaker[AsyncSession]) -> list[CallbackRow]:
    """Callbacks to restore after a restart. One that was being dialled when the process stopped
    is marked failed, never dialled again (a callback is fired at most once)."""
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(CallbackRow)
            .where(CallbackRow.state == "dialing")
            .values(state="failed", note="interrupted by a restart while dialling", finished_at=datetime.now(UTC))
        )
        open_states = ("requested", "offered", "scheduled")
        rows = (await session.execute(select(CallbackRow).where(CallbackRow.state.in_(open_states)))).scalars().all()
    return list(rows)
