"""Abandoned-call accounting: the rate regulators cap, per campaign.

A call answered by a person is *abandoned* when no agent is connected within 2 seconds of
the answer (Ofcom's persistent-misuse policy and the FTC Telemarketing Sales Rule,
16 CFR 310.4(b)(4)(i), use the same 2-second rule). The rate is abandoned calls divided by
human-answered calls: Ofcom measures it per campaign per day, the TSR over a rolling 30 days,
and both cap it at 3%. An abandoned number is not called again for 72 hours unless an agent
is reserved for the call (Ofcom). :class:`AbandonLedger` keeps both rates; it is pure and
takes aware UTC instants, so the live runner and the simulator feed it the same way.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from dialer.windows import ensure_utc, zone

__all__ = [
    "ABANDON_GRACE_S",
    "NO_REDIAL_AFTER_ABANDON",
    "AbandonLedger",
    "LedgerCounts",
    "is_abandoned",
    "redial_allowed_after_abandon",
    "redial_not_before",
]

#: seconds between a human answer and the agent connection after which the call counts as abandoned
ABANDON_GRACE_S = 2.0
#: an abandoned number is left alone this long unless an agent is reserved for the redial
NO_REDIAL_AFTER_ABANDON = timedelta(hours=72)
_ROLLING = timedelta(days=30)


def is_abandoned(answered_at: datetime, agent_connected_at: datetime | None, grace_s: float = ABANDON_GRACE_S) -> bool:
    """Whether a human-answered call is abandoned: no agent, or the agent came more than ``grace_s`` late."""
    if agent_connected_at is None:
        return True
    wait = ensure_utc(agent_connected_at, "agent_connected_at") - ensure_utc(answered_at, "answered_at")
    return wait.total_seconds() > grace_s


def redial_not_before(abandoned_at: datetime, agent_reserved: bool) -> datetime | None:
    """The earliest redial instant after an abandoned call; ``None`` when an agent is reserved (no embargo)."""
    if agent_reserved:
        return None
    return ensure_utc(abandoned_at, "abandoned_at") + NO_REDIAL_AFTER_ABANDON


def redial_allowed_after_abandon(abandoned_at: datetime, now_utc: datetime, agent_reserved: bool) -> bool:
    """The 72-hour no-redial rule for abandoned numbers."""
    limit = redial_not_before(abandoned_at, agent_reserved)
    return limit is None or ensure_utc(now_utc) >= limit


@dataclass(frozen=True, slots=True)
class LedgerCounts:
    answered_human: int
    abandoned: int

    @property
    def rate(self) -> float:
        return self.abandoned / self.answered_human if self.answered_human else 0.0


class AbandonLedger:
    """Abandoned / human-answered counts for one campaign, per local day and over a rolling 30 days.

    ``day_zone`` is the zone whose calendar day Ofcom's daily figure uses (the campaign's). Every
    human-answered call is recorded exactly once, when its fate is known (bridged or abandoned),
    under its answer instant. Out-of-order records are accepted.
    """

    def __init__(self, target: float = 0.03, day_zone: str = "UTC") -> None:
        if not 0.0 < target < 1.0:
            raise ValueError(f"abandon target {target!r} must be a fraction between 0 and 1, e.g. 0.03 for 3%")
        self.target = target
        self.day_zone = day_zone
        self._tz = zone(day_zone)
        self._daily: dict[date, list[int]] = defaultdict(lambda: [0, 0])
        # Rolling window: answer instants (sorted) and whether each was abandoned, with running sums
        # from index ``_head``; entries before ``_head`` have left the 30-day window.
        self._times: list[datetime] = []
        self._flags: list[bool] = []
        self._head = 0
        self._roll_answered = 0
        self._roll_abandoned = 0
        self._latest: datetime | None = None

    def record(self, answered_human_at: datetime, abandoned: bool) -> None:
        """Count one human-answered call; ``abandoned`` when no agent was connected within 2 s."""
        at = ensure_utc(answered_human_at, "answered_human_at")
        day = self._daily[at.astimezone(self._tz).date()]
        day[0] += 1
        day[1] += int(abandoned)
        if self._latest is None or at >= self._latest:
            self._times.append(at)
            self._flags.append(abandoned)
            self._latest = at
        else:
            if self._head > 0 and at <= self._times[self._head - 1]:
                # Already outside the 30-day window: it counts for its day only.
                return
            i = bisect.bisect_right(self._times, at, lo=self._head)
            self._times.insert(i, at)
            self._flags.insert(i, abandoned)
        self._roll_answered += 1
        self._roll_abandoned += int(abandoned)

    def _prune(self, now: datetime) -> None:
        cutoff = now - _ROLLING
        while self._head < len(self._times) and self._times[self._head] <= cutoff:
            self._roll_answered -= 1
            self._roll_abandoned -= int(self._flags[self._head])
            self._head += 1
        if self._head > 4096 and self._head * 2 > len(self._times):
            del self._times[: self._head]
            del self._flags[: self._head]
            self._head = 0

    def counts_today(self, now: datetime) -> LedgerCounts:
        day = self._daily.get(ensure_utc(now).astimezone(self._tz).date())
        return LedgerCounts(day[0], day[1]) if day else LedgerCounts(0, 0)

    def counts_30d(self, now: datetime) -> LedgerCounts:
        """Counts over (now - 30 days, now]; calls recorded with a later answer instant are included too."""
        self._prune(ensure_utc(now))
        return LedgerCounts(self._roll_answered, self._roll_abandoned)

    def counts_24h(self, now: datetime) -> LedgerCounts:
        """Counts over the rolling 24 hours (now - 24 h, now], for the wallboard's "24 h" figure."""
        at = ensure_utc(now)
        self._prune(at)
        lo = bisect.bisect_right(self._times, at - timedelta(hours=24), lo=self._head)
        hi = bisect.bisect_right(self._times, at, lo=lo)
        return LedgerCounts(hi - lo, sum(self._flags[lo:hi]))

    def rate_today(self, now: datetime) -> float:
        """Abandoned / human-answered on the campaign's local day containing ``now`` (Ofcom)."""
        return self.counts_today(now).rate

    def rate_30d(self, now: datetime) -> float:
        """Abandoned / human-answered over the rolling 30 days ending at ``now`` (FTC TSR)."""
        return self.counts_30d(now).rate

    def over_target(self, now: datetime) -> bool:
        return max(self.rate_today(now), self.rate_30d(now)) > self.target
