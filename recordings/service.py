"""The recording service: which calls are recorded, recording them, their metadata rows, retention.

Policy. A campaign (``dialer.campaigns.RecordingSettings``) or a queue (``[recordings.queues.<q>]``,
else ``[recordings.default_policy]``) says ``all``, ``none``, ``on_demand`` or ``sample``. A sample
decision draws from an RNG seeded with the call id (and an optional site seed), so the same call
is always decided the same way: on every node, after a restart, and in tests.

Recording. :meth:`RecordingService.start` puts a :class:`~telephony.media.tap.Tap` (flushing every
``tap_flush`` seconds) in front of a :class:`~recordings.recorder.StereoWavRecorder` (writing every
``writer_flush`` seconds), customer left and agent right: on the bridge when the call is bridged
(the tap then follows a supervisor's conference too), on the customer's leg alone (left what it
receives, right what we send it), or on two unbridged legs (each one's received audio). A row is
inserted at start (``status = "recording"``) and completed at stop with duration, size, sha256 and
the pause gaps, so a crash leaves a playable file and a row that says it was never finished.

Retention. :meth:`RecordingService.run_retention` deletes files from UTC days older than N days,
logs each deletion and sets ``deleted_at`` on the row (rows of files already gone too).
:class:`RecordingsRunner` is what ``dialer run`` starts: retention every ``retention_check_minutes``
and, on stop, every recording still open is finished and written.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Final, Protocol

import structlog
from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infra.bus import EventBus
from infra.db import utcnow
from infra.settings import Settings
from recordings.models import Recording, RecordingStatus
from recordings.recorder import RecordingInfo, StereoWavRecorder
from recordings.storage import delete_expired, recording_path
from telephony.aio.media_session import MediaSession
from telephony.media.bridge import Bridge
from telephony.media.tap import LEFT, RIGHT, Tap

__all__ = [
    "AmbiguousRecording",
    "Check",
    "CheckResult",
    "Policy",
    "PolicyDecision",
    "RecordingDeleted",
    "RecordingHandle",
    "RecordingMeta",
    "RecordingPaused",
    "RecordingPolicy",
    "RecordingQuery",
    "RecordingResumed",
    "RecordingService",
    "RecordingStarted",
    "RecordingStopped",
    "RecordingsRunner",
    "RetentionReport",
    "adopt",
    "check_file",
    "decide",
    "find_recording",
    "orphan_files",
    "recordings_runner_factory",
    "sample_draw",
    "search_recordings",
    "wav_seconds",
]

log = structlog.get_logger(__name__)


# == policy =======================================================================================


class Policy(StrEnum):
    ALL = "all"
    NONE = "none"
    ON_DEMAND = "on_demand"
    SAMPLE = "sample"


class _HasPolicy(Protocol):
    @property
    def policy(self) -> str: ...

    @property
    def sample_percent(self) -> float: ...


@dataclass(frozen=True, slots=True)
class RecordingPolicy:
    """A campaign's or a queue's rule; ``sample_percent`` only counts for ``sample``."""

    policy: Policy = Policy.ALL
    sample_percent: float = 10.0

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "policy", Policy(self.policy))
        except ValueError:
            raise ValueError(
                f"recording policy {self.policy!r} is unknown; use one of {', '.join(p.value for p in Policy)}"
            ) from None
        if not 0.0 <= self.sample_percent <= 100.0:
            raise ValueError(f"sample_percent={self.sample_percent} must be between 0 and 100")

    @classmethod
    def of(cls, settings: _HasPolicy | RecordingPolicy) -> RecordingPolicy:
        """From any object with ``policy`` and ``sample_percent`` (campaign or [recordings] settings)."""
        if isinstance(settings, RecordingPolicy):
            return settings
        return cls(Policy(settings.policy), float(settings.sample_percent))


@dataclass(frozen=True, slots=True)
class PolicyDecision:
    record: bool
    trigger: str
    """Why: ``all``, ``sample``, ``on_demand`` (wait for the agent) or ``none``."""
    draw: float | None = None
    """The call's sample draw in [0, 1) for ``sample``: recorded when below sample_percent / 100."""


def sample_draw(call_id: str, seed: str = "") -> float:
    """The call's reproducible uniform draw in [0, 1): an RNG seeded by a hash of the call id."""
    digest = hashlib.sha256(f"{seed}\x00{call_id}".encode()).digest()
    return random.Random(int.from_bytes(digest[:16], "big")).random()


def decide(policy: RecordingPolicy, call_id: str, *, seed: str = "") -> PolicyDecision:
    """Whether the call is recorded from the start under ``policy`` (pure)."""
    match policy.policy:
        case Policy.ALL:
            return PolicyDecision(True, Policy.ALL)
        case Policy.NONE:
            return PolicyDecision(False, Policy.NONE)
        case Policy.ON_DEMAND:
            return PolicyDecision(False, Policy.ON_DEMAND)
        case _:
            draw = sample_draw(call_id, seed)
            return PolicyDecision(draw < policy.sample_percent / 100.0, Policy.SAMPLE, draw)


# == events =======================================================================================


@dataclass(frozen=True, slots=True)
class RecordingStarted:
    __topic__: ClassVar[str] = "calls/{call_id}/events"
    call_id: str
    recording_id: str
    agent_id: str | None
    trigger: str
    path: str


@dataclass(frozen=True, slots=True)
class RecordingPaused:
    __topic__: ClassVar[str] = "calls/{call_id}/events"
    call_id: str
    recording_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class RecordingResumed:
    __topic__: ClassVar[str] = "calls/{call_id}/events"
    call_id: str
    recording_id: str


@dataclass(frozen=True, slots=True)
class RecordingStopped:
    __topic__: ClassVar[str] = "calls/{call_id}/events"
    call_id: str
    recording_id: str
    duration: float
    size: int
    sha256: str
    gaps: int


@dataclass(frozen=True, slots=True)
class RecordingDeleted:
    __topic__: ClassVar[str] = "calls/{call_id}/events"
    call_id: str
    recording_id: str
    path: str
    reason: str


# == recording ====================================================================================


@dataclass(frozen=True, slots=True)
class RecordingMeta:
    """Who and what the call was about: copied into the metadata row."""

    agent_id: str | None = None
    campaign_id: int | None = None
    campaign: str | None = None
    queue: str | None = None
    outcome: str | None = None


class _LegTap(Tap):
    """One unbridged leg's *received* audio, put on ``channel`` of a shared tap.

    ``MediaSession`` feeds its taps with what it receives (left) and sends (right); with the
    customer and the agent on two unbridged legs, what each one *receives* is its party's voice.
    """

    def __init__(self, target: Tap, channel: int, now: float) -> None:
        super().__init__(_discard, now=now, flush_interval=target.flush_interval, first_flush=float("inf"))
        self._target = target
        self._channel = channel

    def feed(self, channel: int, timestamp: int, ssrc: int, payload: bytes, codec: str, now: float) -> None:
        if channel == LEFT:
            self._target.feed(self._channel, timestamp, ssrc, payload, codec, now)

    def flush(self, now: float) -> None:
        self._target.flush(now)

    def close(self, now: float) -> None:
        self.closed = True  # the shared tap is closed by the recording handle


def _discard(left: Any, right: Any) -> None:
    return None


def _gap_json(info: RecordingInfo) -> list[dict[str, Any]]:
    return [
        {
            "start": g.start,
            "end": g.end,
            "start_s": round(g.start_seconds, 3),
            "end_s": round(g.end_seconds, 3),
            "reason": g.reason,
        }
        for g in info.gaps
    ]


@dataclass(frozen=True, slots=True)
class RecordingSummary:
    """What :meth:`RecordingHandle.stop` returns: the row's id and path, and the file's facts."""

    id: str
    call_id: str
    path: str
    """Relative to the recordings root."""
    info: RecordingInfo
    saved: bool
    """Whether the metadata row was written (False: the database failed, see the log)."""


class RecordingHandle:
    """One call being recorded: ``pause(reason)`` / ``resume()`` / ``await stop()``."""

    def __init__(
        self,
        service: RecordingService,
        *,
        recording_id: str,
        call_id: str,
        path: Path,
        relpath: str,
        started_at: datetime,
        meta: RecordingMeta,
        trigger: str,
        recorder: StereoWavRecorder,
        tap: Tap,
        loop_time: Callable[[], float],
    ) -> None:
        self.id = recording_id
        self.call_id = call_id
        self.path = path
        self.relpath = relpath
        self.started_at = started_at
        self.meta = meta
        self.trigger = trigger
        self.outcome = meta.outcome
        self.recorder = recorder
        self.tap = tap
        self._service = service
        self._time = loop_time
        self._detach: list[Callable[[], None]] = []
        self._bridge: Bridge | None = None
        self._stopping: asyncio.Task[RecordingSummary] | None = None
        self._log = log.bind(call_id=call_id, recording_id=recording_id)

    # -- wiring ----------------------------------------------------------------------------------
    def _on_session(self, media: MediaSession, tap: Tap) -> None:
        media.add_tap(tap)
        self._detach.append(lambda: media.remove_tap(tap))

    def follow(self, bridge: Bridge) -> None:
        """Record from ``bridge`` from now on (the call was re-bridged, e.g. after hold)."""
        if self._bridge is not None and self._bridge.tap is self.tap:
            self._bridge.attach_tap(None)
        bridge.attach_tap(self.tap)
        self._bridge = bridge

    # -- control ---------------------------------------------------------------------------------
    @property
    def paused(self) -> bool:
        return self.recorder.paused

    @property
    def stopped(self) -> bool:
        return self._stopping is not None

    def pause(self, reason: str) -> None:
        """Silence from now on (e.g. while a card number is read); marked as a gap in the row."""
        if self._stopping is not None or self.recorder.paused:
            return
        self.recorder.pause(reason)
        self._service._publish(RecordingPaused(self.call_id, self.id, reason))

    def resume(self) -> None:
        if self._stopping is not None or not self.recorder.paused:
            return
        self.recorder.resume()
        self._service._publish(RecordingResumed(self.call_id, self.id))

    def set_outcome(self, outcome: str | None) -> None:
        """The call's outcome or disposition, written with the row at stop."""
        self.outcome = outcome

    async def stop(self, outcome: str | None = None) -> RecordingSummary:
        """Finish the file and complete the metadata row; calling it again returns the same result."""
        if outcome is not None:
            self.outcome = outcome
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop())
        return await asyncio.shield(self._stopping)

    async def _stop(self) -> RecordingSummary:
        now = self._time()
        for detach in self._detach:
            detach()
        if self._bridge is not None and self._bridge.tap is self.tap:
            self._bridge.attach_tap(None)
        self.tap.close(now)
        ended_at = self._service.clock()
        info = await self.recorder.aclose()
        saved = await self._service._complete_row(self, info, ended_at)
        self._service._forget(self)
        self._service._publish(
            RecordingStopped(self.call_id, self.id, info.duration, info.size, info.sha256, len(info.gaps))
        )
        return RecordingSummary(self.id, self.call_id, self.relpath, info, saved)


@dataclass(frozen=True, slots=True)
class RetentionReport:
    deleted: tuple[str, ...]
    """Relative paths of the files deleted (or that would be, with ``dry_run``)."""
    rows_marked: int
    """Rows given ``deleted_at`` (including rows whose file was already gone)."""


class RecordingService:
    """Records calls by policy and keeps their metadata; see the module docstring."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession] | None,
        root: str | Path,
        *,
        retention_days: int = 90,
        tap_flush: float = 0.5,
        tap_delay: float = 0.2,
        writer_flush: float = 0.25,
        fsync: bool = False,
        default_policy: RecordingPolicy | None = None,
        queue_policies: Mapping[str, RecordingPolicy] | None = None,
        bus: EventBus | None = None,
        clock: Callable[[], datetime] = utcnow,
        seed: str = "",
    ) -> None:
        if tap_flush + tap_delay + writer_flush >= 1.0:
            raise ValueError(
                f"tap_flush={tap_flush} + tap_delay={tap_delay} + writer_flush={writer_flush} must stay under 1 s: "
                "a crash loses that much audio at most"
            )
        self.sessionmaker = sessionmaker
        self.root = Path(root)
        self.retention_days = retention_days
        self.tap_flush = tap_flush
        self.tap_delay = tap_delay
        self.writer_flush = writer_flush
        self.fsync = fsync
        self.default_policy = default_policy or RecordingPolicy()
        self.queue_policies = dict(queue_policies or {})
        self.bus = bus
        self.clock = clock
        self.seed = seed
        self._active: dict[str, RecordingHandle] = {}
        self._ticker: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession] | None,
        *,
        bus: EventBus | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> RecordingService:
        r = settings.recordings
        return cls(
            sessionmaker,
            r.root(settings.site.data_dir),
            retention_days=r.retention_days,
            tap_flush=r.tap_flush_seconds,
            writer_flush=r.writer_flush_seconds,
            fsync=r.fsync,
            default_policy=RecordingPolicy.of(r.default_policy),
            queue_policies={q: RecordingPolicy.of(p) for q, p in r.queues.items()},
            bus=bus,
            clock=clock,
            seed=settings.site.name,
        )

    # -- policy ----------------------------------------------------------------------------------
    def policy_for(
        self, *, campaign: _HasPolicy | RecordingPolicy | None = None, queue: str | None = None
    ) -> RecordingPolicy:
        """The campaign's policy if the call has a campaign, else the queue's, else the default."""
        if campaign is not None:
            return RecordingPolicy.of(campaign)
        if queue is not None and queue in self.queue_policies:
            return self.queue_policies[queue]
        return self.default_policy

    def decide(self, call_id: str, policy: RecordingPolicy) -> PolicyDecision:
        return decide(policy, call_id, seed=self.seed)

    # -- recording -------------------------------------------------------------------------------
    def active(self, call_id: str) -> RecordingHandle | None:
        """The recording running for ``call_id``, if any."""
        return self._active.get(call_id)

    @property
    def active_count(self) -> int:
        return len(self._active)

    async def record_by_policy(
        self,
        call_id: str,
        customer: MediaSession,
        agent: MediaSession | Bridge | None,
        meta: RecordingMeta,
        policy: RecordingPolicy,
    ) -> RecordingHandle | None:
        """Start recording if ``policy`` records this call from the start; None otherwise."""
        decision = self.decide(call_id, policy)
        log.debug("recording.policy", call_id=call_id, policy=policy.policy.value, record=decision.record)
        if not decision.record:
            return None
        return await self.start(call_id, customer, agent, meta, trigger=decision.trigger)

    async def start_on_demand(
        self, call_id: str, customer: MediaSession, agent: MediaSession | Bridge | None, meta: RecordingMeta
    ) -> RecordingHandle:
        """The agent asked to record (DTMF code or API): start, or return the running recording."""
        running = self._active.get(call_id)
        if running is not None:
            return running
        return await self.start(call_id, customer, agent, meta, trigger=Policy.ON_DEMAND)

    async def start(
        self,
        call_id: str,
        customer: MediaSession,
        agent: MediaSession | Bridge | None = None,
        meta: RecordingMeta | None = None,
        *,
        trigger: str = Policy.ALL,
    ) -> RecordingHandle:
        """Record ``call_id`` now: ``agent`` is the bridge joining the legs, the agent's unbridged
        leg, or None (the customer's leg alone: left is what it receives, right what we send it).

        Raises :class:`~recordings.recorder.RecorderError` if the file cannot be created, and
        ``ValueError`` if the call is already being recorded (stop that recording first).
        """
        meta = meta or RecordingMeta()
        if call_id in self._active:
            running = self._active[call_id].id
            raise ValueError(f"call {call_id!r} is already being recorded ({running}); stop it before starting again")
        if isinstance(agent, Bridge) and agent.a is not customer:
            raise ValueError("the bridge's first leg must be the customer's (it is the left channel)")
        loop = asyncio.get_running_loop()
        started_at = self.clock()
        recording_id = uuid.uuid4().hex
        path = recording_path(self.root, call_id, started_at)
        if path.exists():  # recorded before (on demand twice): never overwrite
            path = path.with_name(f"{path.stem}-{recording_id[:8]}.wav")
        recorder = StereoWavRecorder(
            path,
            flush_interval=self.writer_flush,
            max_lag=self.writer_flush / 2,
            fsync=self.fsync,
        )
        # The recorder first, so that the tap's timeline starts with the file's.
        tap = Tap(recorder, now=loop.time(), flush_interval=self.tap_flush, delay=self.tap_delay)
        relpath = path.relative_to(self.root).as_posix()
        handle = RecordingHandle(
            self,
            recording_id=recording_id,
            call_id=call_id,
            path=path,
            relpath=relpath,
            started_at=started_at,
            meta=meta,
            trigger=str(trigger),
            recorder=recorder,
            tap=tap,
            loop_time=loop.time,
        )
        try:
            if isinstance(agent, Bridge):
                handle.follow(agent)
            elif agent is None:
                handle._on_session(customer, tap)
            else:
                now = loop.time()
                handle._on_session(customer, _LegTap(tap, LEFT, now))
                handle._on_session(agent, _LegTap(tap, RIGHT, now))
        except BaseException:
            for detach in handle._detach:
                detach()
            recorder.close()
            path.unlink(missing_ok=True)  # nothing was recorded: leave no file without a row
            raise
        self._active[call_id] = handle
        self._ensure_ticker()
        handle._log.info("recording.started", path=relpath, trigger=handle.trigger, agent_id=meta.agent_id)
        self._publish(RecordingStarted(call_id, recording_id, meta.agent_id, handle.trigger, relpath))
        await self._insert_row(handle)
        return handle

    async def stop_all(self) -> list[RecordingSummary]:
        """Finish every open recording (service shutdown)."""
        handles = list(self._active.values())
        return list(await asyncio.gather(*(h.stop() for h in handles)))

    def _forget(self, handle: RecordingHandle) -> None:
        if self._active.get(handle.call_id) is handle:
            del self._active[handle.call_id]

    def _ensure_ticker(self) -> None:
        if self._ticker is None or self._ticker.done():
            self._ticker = asyncio.ensure_future(self._tick())

    async def _tick(self) -> None:
        """Flush every open tap on time, so silence and hold reach the file too."""
        loop = asyncio.get_running_loop()
        while self._active:
            await asyncio.sleep(self.tap_flush)
            now = loop.time()
            for handle in list(self._active.values()):
                if not handle.tap.closed:
                    handle.tap.flush(now)

    def _publish(self, event: Any) -> None:
        if self.bus is not None:
            self.bus.publish(event)

    # -- metadata rows ---------------------------------------------------------------------------
    async def _insert_row(self, handle: RecordingHandle) -> None:
        if self.sessionmaker is None:
            return
        m = handle.meta
        try:
            async with self.sessionmaker() as session, session.begin():
                session.add(
                    Recording(
                        id=handle.id,
                        call_id=handle.call_id,
                        agent_id=m.agent_id,
                        campaign_id=m.campaign_id,
                        campaign=m.campaign,
                        queue=m.queue,
                        started_at=handle.started_at,
                        path=handle.relpath,
                        gaps=[],
                        trigger=handle.trigger,
                        outcome=m.outcome,
                        status=RecordingStatus.RECORDING,
                    )
                )
        except SQLAlchemyError as exc:
            # The call goes on and so does the recording; stop() writes the row again.
            handle._log.error("recording.metadata_failed", stage="start", error=str(exc), fix="check the database")

    async def _complete_row(self, handle: RecordingHandle, info: RecordingInfo, ended_at: datetime) -> bool:
        if self.sessionmaker is None:
            return False
        m = handle.meta
        values: dict[str, Any] = {
            "ended_at": ended_at,
            "duration": info.duration,
            "size": info.size,
            "sha256": info.sha256,
            "gaps": _gap_json(info),
            "outcome": handle.outcome,
            "status": RecordingStatus.COMPLETE,
        }
        try:
            async with self.sessionmaker() as session, session.begin():
                row = await session.get(Recording, handle.id)
                if row is None:
                    row = Recording(
                        id=handle.id,
                        call_id=handle.call_id,
                        agent_id=m.agent_id,
                        campaign_id=m.campaign_id,
                        campaign=m.campaign,
                        queue=m.queue,
                        started_at=handle.started_at,
                        path=handle.relpath,
                        trigger=handle.trigger,
                    )
                    session.add(row)
                for key, value in values.items():
                    setattr(row, key, value)
        except SQLAlchemyError as exc:
            handle._log.error(
                "recording.metadata_failed",
                stage="stop",
                error=str(exc),
                sha256=info.sha256,
                fix="the file is complete; `dialer recordings verify --all --adopt` records it later",
            )
            return False
        handle._log.info(
            "recording.saved", duration=info.duration, size=info.size, sha256=info.sha256, gaps=len(info.gaps)
        )
        return True

    async def set_outcome(self, recording_id: str, outcome: str | None) -> bool:
        """Record the call's outcome or disposition after the recording stopped (e.g. after wrap-up)."""
        if self.sessionmaker is None:
            return False
        async with self.sessionmaker() as session, session.begin():
            result = await session.execute(
                update(Recording).where(Recording.id == recording_id).values(outcome=outcome)
            )
        return bool(getattr(result, "rowcount", 0))

    # -- retention -------------------------------------------------------------------------------
    async def run_retention(self, now: datetime, *, days: int | None = None, dry_run: bool = False) -> RetentionReport:
        """Delete recordings from UTC days before ``now - days`` (default ``retention_days``).

        Each deleted file is logged (``recording.deleted``) and its row gets ``deleted_at = now``;
        rows of such days whose file is already gone are marked too. ``days = 0`` deletes every
        day before today; the runner treats a configured 0 as "keep for ever" and never calls this.
        """
        days = self.retention_days if days is None else days
        if days < 0:
            raise ValueError(f"retention days={days}: use 0 or more")
        now = now.astimezone(UTC)
        deleted = await asyncio.to_thread(delete_expired, self.root, days, now, dry_run=dry_run)
        relpaths = tuple(p.relative_to(self.root).as_posix() for p in deleted)
        cutoff_day = (now - timedelta(days=days)).date()
        cutoff = datetime(cutoff_day.year, cutoff_day.month, cutoff_day.day, tzinfo=UTC)
        marked = 0
        if self.sessionmaker is not None:
            marked = await self._mark_deleted(relpaths, cutoff, now, dry_run=dry_run)
        log.info("recording.retention", days=days, files=len(relpaths), rows=marked, dry_run=dry_run)
        return RetentionReport(relpaths, marked)

    async def _mark_deleted(self, relpaths: Iterable[str], cutoff: datetime, now: datetime, *, dry_run: bool) -> int:
        assert self.sessionmaker is not None
        wanted = set(relpaths)
        async with self.sessionmaker() as session, session.begin():
            rows = list(
                (
                    await session.execute(
                        select(Recording).where(
                            Recording.deleted_at.is_(None),
                            (Recording.started_at < cutoff) | Recording.path.in_(wanted or {""}),
                        )
                    )
                ).scalars()
            )
            marked: list[Recording] = []
            for row in rows:
                file_deleted = row.path in wanted
                if not file_deleted and (self.root / row.path).exists():
                    # Started before the cutoff day by the clock but filed under a later day
                    # (clock skew): the file decides, as it did for the deletion.
                    continue
                log.info(
                    "recording.row_would_delete" if dry_run else "recording.row_deleted",
                    recording_id=row.id,
                    call_id=row.call_id,
                    path=row.path,
                    file="deleted" if file_deleted else "already missing",
                )
                marked.append(row)
            if not dry_run and marked:
                await session.execute(
                    update(Recording).where(Recording.id.in_([r.id for r in marked])).values(deleted_at=now)
                )
        if not dry_run:
            for row in marked:
                reason = "retention" if row.path in wanted else "retention, file already missing"
                self._publish(RecordingDeleted(row.call_id, row.id, row.path, reason))
        return len(marked)


# == finding and checking recordings ==============================================================


@dataclass(frozen=True, slots=True)
class RecordingQuery:
    """Search filters; instants are UTC, ``until`` exclusive."""

    agent_id: str | None = None
    campaign: str | None = None
    """A campaign name, or its numeric id."""
    queue: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    include_deleted: bool = False
    limit: int | None = 200
    offset: int = 0


async def search_recordings(session: AsyncSession, query: RecordingQuery) -> list[Recording]:
    """Recordings matching ``query``, newest first."""
    stmt = select(Recording)
    if query.agent_id is not None:
        stmt = stmt.where(Recording.agent_id == query.agent_id)
    if query.campaign is not None:
        if query.campaign.isdigit():
            stmt = stmt.where((Recording.campaign == query.campaign) | (Recording.campaign_id == int(query.campaign)))
        else:
            stmt = stmt.where(Recording.campaign == query.campaign)
    if query.queue is not None:
        stmt = stmt.where(Recording.queue == query.queue)
    if query.outcome is not None:
        stmt = stmt.where(Recording.outcome == query.outcome)
    if query.since is not None:
        stmt = stmt.where(Recording.started_at >= query.since)
    if query.until is not None:
        stmt = stmt.where(Recording.started_at < query.until)
    if not query.include_deleted:
        stmt = stmt.where(Recording.deleted_at.is_(None))
    stmt = stmt.order_by(Recording.started_at.desc(), Recording.id).offset(query.offset)
    if query.limit is not None:
        stmt = stmt.limit(query.limit)
    return list((await session.execute(stmt)).scalars())


class AmbiguousRecording(LookupError):
    """An id prefix that matches no recording, or several."""


async def find_recording(session: AsyncSession, id_or_prefix: str) -> Recording:
    """A recording by full id or by a unique prefix of at least 6 characters."""
    key = id_or_prefix.strip().lower()
    row = await session.get(Recording, key)
    if row is not None:
        return row
    if len(key) >= 6:
        rows = list(
            (
                await session.execute(select(Recording).where(Recording.id.startswith(key, autoescape=True)).limit(2))
            ).scalars()
        )
        if len(rows) == 1:
            return rows[0]
        if rows:
            raise AmbiguousRecording(f"recording id {id_or_prefix!r} matches several recordings; give more characters")
    raise AmbiguousRecording(
        f"no recording {id_or_prefix!r}; see `dialer recordings list` (ids may be shortened to 6+ characters)"
    )


class Check(StrEnum):
    OK = "ok"
    MISMATCH = "mismatch"  # the file changed since it was closed
    MISSING = "missing"  # the row says it exists; the file is gone
    UNFINISHED = "unfinished"  # the process stopped during the call: no hash was ever taken
    NO_METADATA = "no_metadata"  # a file in the tree that no row describes


@dataclass(frozen=True, slots=True)
class CheckResult:
    check: Check
    path: str
    """Relative to the recordings root."""
    recording_id: str | None
    detail: str

    @property
    def ok(self) -> bool:
        return self.check is Check.OK


def wav_seconds(path: Path) -> float | None:
    """Playable length of a PCM WAV from its header, or None if it is not a readable WAV."""
    import wave

    try:
        with wave.open(str(path)) as w:
            return float(w.getnframes()) / float(w.getframerate())
    except (wave.Error, EOFError, OSError):
        return None


def check_file(root: Path, row: Recording) -> CheckResult:
    """Re-hash one recording's file against its row (blocking: run in a thread)."""
    from recordings.recorder import sha256_file

    path = root / row.path
    if not path.is_file():
        return CheckResult(Check.MISSING, row.path, row.id, "the file is gone; restore it from backup")
    if row.sha256 is None:
        seconds = wav_seconds(path)
        playable = f"playable, {seconds:.1f} s" if seconds is not None else "not a readable WAV"
        return CheckResult(
            Check.UNFINISHED,
            row.path,
            row.id,
            f"never finished (the process stopped during the call); the file is {playable}; "
            "`verify --adopt` records its hash",
        )
    actual = sha256_file(path)
    if actual != row.sha256:
        return CheckResult(
            Check.MISMATCH, row.path, row.id, f"sha256 {actual[:16]}... differs from {row.sha256[:16]}... recorded"
        )
    return CheckResult(Check.OK, row.path, row.id, f"{row.duration or 0:.1f} s")


def orphan_files(root: Path, known: set[str]) -> list[CheckResult]:
    """WAV files under ``root`` that no row describes (blocking)."""
    out: list[CheckResult] = []
    if not root.is_dir():
        return out
    for path in sorted(root.glob("[0-9]*/[0-9]*/[0-9]*/*.wav")):
        rel = path.relative_to(root).as_posix()
        if rel in known:
            continue
        seconds = wav_seconds(path)
        playable = f"playable, {seconds:.1f} s" if seconds is not None else "not a readable WAV"
        out.append(
            CheckResult(
                Check.NO_METADATA,
                rel,
                None,
                f"no metadata row ({playable}): written by a process that could not reach the database, "
                "or copied in by hand",
            )
        )
    return out


async def adopt(session: AsyncSession, root: Path, row: Recording, now: datetime) -> Recording:
    """Give an unfinished recording the duration, size and hash of the file it left (caller commits)."""
    from recordings.recorder import sha256_file

    path = root / row.path
    seconds = await asyncio.to_thread(wav_seconds, path)
    row.duration = seconds
    row.size = path.stat().st_size
    row.sha256 = await asyncio.to_thread(sha256_file, path)
    row.ended_at = row.ended_at or now
    row.status = RecordingStatus.RECOVERED
    log.info("recording.adopted", recording_id=row.id, path=row.path, duration=seconds, sha256=row.sha256)
    return row


# == the `dialer run` service =====================================================================


class _AppLike(Protocol):
    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession] | None
    bus: EventBus


class RecordingsRunner:
    """The service ``dialer run`` starts: periodic retention; on stop, open recordings are finished."""

    name = "recordings"

    def __init__(self, service: RecordingService, *, interval: float = 3600.0) -> None:
        self.service = service
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.service.retention_days > 0:
            self._task = asyncio.ensure_future(self._retention_loop())
        else:
            log.info("recording.retention_off", fix="set [recordings] retention_days to delete old recordings")

    async def _retention_loop(self) -> None:
        while True:
            try:
                await self.service.run_retention(self.service.clock())
            except (SQLAlchemyError, OSError) as exc:
                log.error("recording.retention_failed", error=str(exc), retry_in=self.interval)
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.service.stop_all()


_MINUTE: Final = 60.0


async def recordings_runner_factory(app: _AppLike) -> RecordingsRunner:
    """For ``dialer.services.default_services()``: the recording service on the app's database and bus."""
    service = RecordingService.from_settings(app.settings, app.sessionmaker, bus=app.bus)
    return RecordingsRunner(service, interval=app.settings.recordings.retention_check_minutes * _MINUTE)
