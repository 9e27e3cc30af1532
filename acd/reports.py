"""Queue and agent reports from the queue_log table, so figures are there without the service running.

The definitions are those of :mod:`acd.metrics` (the live figures), applied to a time window of
queue_log rows:

- *offered* = answered + abandoned + exited (EXITWITHTIMEOUT, EXITWITHKEY, EXITEMPTY) + callbacks
  requested by callers who were waiting live; FULL/JOINEMPTY rows are ``rejected``, not offered.
- *service level* = answered with hold <= T / offered (abandons included), T being each queue's
  own ``service_level_s`` ([acd.queues.<id>], see :func:`service_levels`), 20 s by default.
- *ASA* = total hold of answered calls / answered. *AHT* = (talk + wrap-up) / handled calls, talk
  being COMPLETE*'s connected time (which includes any on-hold time).
- *abandon rate* = abandoned / offered. *longest wait* = the longest hold, abandon or exit wait.
- *occupancy* (agent) = (talk + wrap-up) / staffed time (logged in and not paused); per queue, the
  queue's handle time over the staffed time of the agents who answered its calls.

Callback connections (CONNECT of a call that requested a callback) are ``callbacks_answered``
and not in the service level, as live. queue_log times and durations are whole seconds.
:func:`summarise` is pure (rows in, reports out); :func:`queue_report` and :func:`agent_report`
load the rows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from acd.models import QueueLogRow
from acd.queue_log import NO_QUEUE

__all__ = [
    "DEFAULT_SERVICE_LEVEL_S",
    "AgentReport",
    "QueueReport",
    "agent_report",
    "load_rows",
    "queue_report",
    "service_levels",
    "summarise",
]

#: T of the service level when a queue does not set its own (``acd.service.QueueSettings``).
DEFAULT_SERVICE_LEVEL_S: Final = 20.0

_EXITS = ("EXITWITHTIMEOUT", "EXITWITHKEY", "EXITEMPTY")
_AGENT_STATE = ("LOGIN", "LOGOFF", "PAUSE", "UNPAUSE")


class LogRow(Protocol):
    time: datetime
    call_id: str
    queue: str
    agent: str
    event: str
    data1: str
    data2: str
    data3: str
    data4: str
    data5: str


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueReport:
    queue: str
    entered: int
    offered: int
    answered: int
    answered_within_sl: int
    abandoned: int
    exited: int
    rejected: int
    callbacks_requested: int
    callbacks_answered: int
    service_level_s: float
    service_level: float | None
    asa_s: float | None
    aht_s: float | None
    abandon_rate: float | None
    occupancy: float | None
    longest_wait_s: float
    handled: int
    talk_s: float
    wrap_s: float


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentReport:
    agent: str
    logged_in_s: float
    paused_s: float
    staffed_s: float
    offers_missed: int
    answered: int
    handled: int
    talk_s: float
    wrap_s: float
    aht_s: float | None
    occupancy: float | None
    pauses: dict[str, int]


@dataclass(slots=True)
class _Q:
    entered: int = 0
    answered: int = 0
    within: int = 0
    hold: float = 0.0
    abandoned: int = 0
    exited: int = 0
    rejected: int = 0
    cb_requested: int = 0
    cb_live: int = 0
    cb_answered: int = 0
    handled: int = 0
    talk: float = 0.0
    wrap: float = 0.0
    longest: float = 0.0
    agents: set[str] = field(default_factory=set)


@dataclass(slots=True)
class _A:
    login_at: datetime | None = None
    pause_at: datetime | None = None
    logged_in: float = 0.0
    paused: float = 0.0
    missed: int = 0
    answered: int = 0
    handled: int = 0
    talk: float = 0.0
    wrap: float = 0.0
    pauses: dict[str, int] = field(default_factory=lambda: defaultdict(int))


def service_levels(queues: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """Each configured queue's service-level threshold T, from the ``[acd.queues.<id>]`` tables
    (``service_level_s``; :data:`DEFAULT_SERVICE_LEVEL_S` when a queue sets none)."""
    levels: dict[str, float] = {}
    for qid, table in queues.items():
        value = table.get("service_level_s", DEFAULT_SERVICE_LEVEL_S)
        try:
            level = float(value)
        except (TypeError, ValueError):
            raise ValueError(
                f"[acd.queues.{qid}] service_level_s = {value!r}: give the threshold in seconds, e.g. 20"
            ) from None
        if isinstance(value, bool) or not level >= 0:
            raise ValueError(f"[acd.queues.{qid}] service_level_s = {value!r}: give a number of seconds >= 0, e.g. 20")
        levels[qid] = level
    return levels


def _num(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return 0.0


def _span(start: datetime, end: datetime, since: datetime) -> float:
    return max(0.0, (end - max(start, since)).total_seconds())


def summarise(
    rows: Iterable[LogRow],
    *,
    since: datetime,
    until: datetime,
    service_level_s: float | Mapping[str, float] = DEFAULT_SERVICE_LEVEL_S,
) -> tuple[list[QueueReport], list[AgentReport]]:
    """Queue and agent reports for ``[since, until)`` from rows in time order.

    ``service_level_s`` is one threshold T for every queue, or T per queue (others get
    :data:`DEFAULT_SERVICE_LEVEL_S`). Rows before ``since`` only set agents' state (logged in,
    paused) at the window's start.
    """
    queues: dict[str, _Q] = defaultdict(_Q)
    agents: dict[str, _A] = defaultdict(_A)
    entered_at: dict[str, datetime] = {}
    waiting_live: set[str] = set()
    callback_calls: set[str] = set()

    def sl(queue: str) -> float:
        if isinstance(service_level_s, Mapping):
            return service_level_s.get(queue, DEFAULT_SERVICE_LEVEL_S)
        return service_level_s

    for r in rows:
        if r.time >= until:
            break
        inside = r.time >= since
        if r.event in _AGENT_STATE:
            a = agents[r.agent]
            if r.event == "LOGIN":
                a.login_at = r.time
            elif r.event == "LOGOFF" and a.login_at is not None:
                a.logged_in += _span(a.login_at, r.time, since)
                a.login_at = None
            elif r.event == "PAUSE":
                a.pause_at = a.pause_at or r.time
                if inside:
                    a.pauses[r.data1 or "pause"] += 1
            elif r.event == "UNPAUSE" and a.pause_at is not None:
                a.paused += _span(a.pause_at, r.time, since)
                a.pause_at = None
            continue
        if not inside:
            continue
        q = queues[r.queue] if r.queue != NO_QUEUE else None
        if r.event == "ENTERQUEUE" and q is not None:
            q.entered += 1
            entered_at[r.call_id] = r.time
            waiting_live.add(r.call_id)
        elif r.event == "CALLBACKREQUEST" and q is not None:
            q.cb_requested += 1
            callback_calls.add(r.call_id)
            if r.call_id in waiting_live and entered_at.get(r.call_id) != r.time:
                q.cb_live += 1  # a live caller asked for it while waiting
            waiting_live.discard(r.call_id)
        elif r.event == "CONNECT" and q is not None:
            hold = _num(r.data1)
            waiting_live.discard(r.call_id)
            q.agents.add(r.agent)
            agents[r.agent].answered += 1
            if r.call_id in callback_calls:
                q.cb_answered += 1
            else:
                q.answered += 1
                q.hold += hold
                q.within += hold <= sl(r.queue)
                q.longest = max(q.longest, hold)
        elif r.event in ("COMPLETEAGENT", "COMPLETECALLER") and q is not None:
            talk = _num(r.data2)
            q.handled += 1
            q.talk += talk
            a = agents[r.agent]
            a.handled += 1
            a.talk += talk
        elif r.event == "WRAPUPEND" and q is not None:
            wrap = _num(r.data1)
            q.wrap += wrap
            agents[r.agent].wrap += wrap
        elif r.event == "ABANDON" and q is not None:
            q.abandoned += 1
            q.longest = max(q.longest, _num(r.data3))
            waiting_live.discard(r.call_id)
        elif r.event in _EXITS and q is not None:
            q.exited += 1
            q.longest = max(q.longest, _num(r.data4 if r.event == "EXITWITHKEY" else r.data3))
            waiting_live.discard(r.call_id)
        elif r.event in ("FULL", "JOINEMPTY") and q is not None:
            q.rejected += 1
        elif r.event == "RINGNOANSWER":
            agents[r.agent].missed += 1

    agent_reports: list[AgentReport] = []
    staffed_by_agent: dict[str, float] = {}
    for aid, a in sorted(agents.items()):
        if aid == NO_QUEUE:
            continue
        logged_in = a.logged_in + (_span(a.login_at, until, since) if a.login_at is not None else 0.0)
        paused = a.paused + (_span(a.pause_at, until, since) if a.pause_at is not None else 0.0)
        staffed = max(0.0, logged_in - paused)
        staffed_by_agent[aid] = staffed
        busy = a.talk + a.wrap
        agent_reports.append(
            AgentReport(
                agent=aid,
                logged_in_s=logged_in,
                paused_s=paused,
                staffed_s=staffed,
                offers_missed=a.missed,
                answered=a.answered,
                handled=a.handled,
                talk_s=a.talk,
                wrap_s=a.wrap,
                aht_s=busy / a.handled if a.handled else None,
                occupancy=busy / staffed if staffed > 0 else None,
                pauses=dict(a.pauses),
            )
        )
    queue_reports: list[QueueReport] = []
    for qid, q in sorted(queues.items()):
        offered = q.answered + q.abandoned + q.exited + q.cb_live
        handle = q.talk + q.wrap
        staffed = sum(staffed_by_agent.get(a, 0.0) for a in q.agents)
        queue_reports.append(
            QueueReport(
                queue=qid,
                entered=q.entered,
                offered=offered,
                answered=q.answered,
                answered_within_sl=q.within,
                abandoned=q.abandoned,
                exited=q.exited,
                rejected=q.rejected,
                callbacks_requested=q.cb_requested,
                callbacks_answered=q.cb_answered,
                service_level_s=sl(qid),
                service_level=q.within / offered if offered else None,
                asa_s=q.hold / q.answered if q.answered else None,
                aht_s=handle / q.handled if q.handled else None,
                abandon_rate=q.abandoned / offered if offered else None,
                occupancy=handle / staffed if staffed > 0 else None,
                longest_wait_s=q.longest,
                handled=q.handled,
                talk_s=q.talk,
                wrap_s=q.wrap,
            )
        )
    return queue_reports, agent_reports


async def load_rows(
    sessionmaker: async_sessionmaker[AsyncSession],
    since: datetime,
    until: datetime,
    *,
    lookback: timedelta = timedelta(days=1),
) -> list[QueueLogRow]:
    """Rows of the window, plus agent state rows from ``lookback`` before it (who was logged in)."""
    async with sessionmaker() as session:
        before = select(QueueLogRow).where(
            QueueLogRow.time >= since - lookback, QueueLogRow.time < since, QueueLogRow.event.in_(_AGENT_STATE)
        )
        window = select(QueueLogRow).where(QueueLogRow.time >= since, QueueLogRow.time < until)
        rows = list((await session.execute(before)).scalars().all())
        rows += (await session.execute(window)).scalars().all()
    rows.sort(key=lambda r: (r.time, r.id))
    return rows


async def queue_report(
    sessionmaker: async_sessionmaker[AsyncSession],
    since: datetime,
    until: datetime,
    *,
    queues: Sequence[str] = (),
    service_level_s: float | Mapping[str, float] = DEFAULT_SERVICE_LEVEL_S,
) -> list[QueueReport]:
    rows = await load_rows(sessionmaker, since, until)
    reports, _ = summarise(rows, since=since, until=until, service_level_s=service_level_s)
    return [r for r in reports if not queues or r.queue in queues]


async def agent_report(
    sessionmaker: async_sessionmaker[AsyncSession],
    since: datetime,
    until: datetime,
    *,
    agents: Sequence[str] = (),
) -> list[AgentReport]:
    rows = await load_rows(sessionmaker, since, until)
    _, reports = summarise(rows, since=since, until=until)
    return [r for r in reports if not agents or r.agent in agents]
