"""Retry scheduling across day-parts, attempt limits, reach deadlines and callback timing.

A customer not reached in the morning may answer in the evening, so after every unreached
outcome (no answer, busy, machine, abandoned, failed) the next attempt goes into a day-part
of the callee's local day that this lead has not tried yet in the current cycle; once all
day-parts have been tried the cycle starts again. Every outcome also has a minimum delay,
the calling window always applies, an abandoned number waits 72 h unless an agent is
reserved, and leads nearing their reach deadline ("every member called within 3 days") get
a higher priority. Every decision carries a human-readable ``reason`` that the product shows
per lead. Callbacks are dialled at the customer-agreed local time, outside the calling
window only when the customer asked for that time.

Pure: instants are aware UTC datetimes (see :mod:`dialer.windows`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from enum import StrEnum
from typing import Literal

from dialer.abandon import redial_not_before
from dialer.windows import CallingWindow, TimeRange, ensure_utc, local_seconds, local_to_utc, zone

__all__ = [
    "DEFAULT_DAYPARTS",
    "Attempt",
    "AttemptOutcome",
    "Callback",
    "CallbackRules",
    "DayPart",
    "Exhausted",
    "LeadState",
    "NextAttempt",
    "OutcomeRule",
    "RetryPolicy",
]


class AttemptOutcome(StrEnum):
    """How one dial attempt ended, from the dialer's point of view (plain strings compare equal)."""

    BUSY = "busy"
    NO_ANSWER = "no_answer"
    MACHINE = "machine"
    ABANDONED = "abandoned"
    FAILED = "failed"
    REJECTED = "rejected"
    UNAVAILABLE = "unavailable"
    NOT_FOUND = "not_found"
    COMPLETED = "completed"


@dataclass(frozen=True, slots=True)
class DayPart:
    """A named part of the callee's local day, e.g. ``DayPart('evening', time(17), time(21))``."""

    name: str
    start: time
    end: time | None  # None = midnight at the end of the day

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a day-part needs a name such as 'morning'")
        TimeRange.of(self.start, self.end)  # validates start < end

    @property
    def range(self) -> TimeRange:
        return TimeRange.of(self.start, self.end)

    @classmethod
    def parse(cls, name: str, text: str) -> DayPart:
        """``DayPart.parse('morning', '09:00-12:00')``."""
        r = TimeRange.parse(text)
        return cls(name, _time_of(r.start), None if r.end == 86_400 else _time_of(r.end))


def _time_of(seconds: int) -> time:
    return time(seconds // 3600, seconds % 3600 // 60, seconds % 60)


DEFAULT_DAYPARTS: tuple[DayPart, ...] = (
    DayPart("morning", time(9), time(12)),
    DayPart("afternoon", time(12), time(17)),
    DayPart("evening", time(17), time(21)),
)


@dataclass(frozen=True, slots=True)
class OutcomeRule:
    """What an outcome means for the next attempt.

    ``min_delay``: never earlier than this after the attempt. ``rotate_daypart``: the next
    attempt goes into an untried day-part. ``final``: no retry at all. ``number_dead``: the
    number is not tried again (e.g. 404 Not Found), alternates still are.
    """

    min_delay: timedelta
    rotate_daypart: bool = True
    final: bool = False
    number_dead: bool = False


DEFAULT_RULES: Mapping[str, OutcomeRule] = {
    AttemptOutcome.BUSY: OutcomeRule(timedelta(minutes=10)),
    AttemptOutcome.NO_ANSWER: OutcomeRule(timedelta(hours=1)),
    AttemptOutcome.MACHINE: OutcomeRule(timedelta(hours=2)),
    # The 72 h embargo of an abandoned number is added on top unless an agent is reserved.
    AttemptOutcome.ABANDONED: OutcomeRule(timedelta(hours=1)),
    AttemptOutcome.FAILED: OutcomeRule(timedelta(minutes=30)),
    AttemptOutcome.REJECTED: OutcomeRule(timedelta(hours=1)),
    AttemptOutcome.UNAVAILABLE: OutcomeRule(timedelta(minutes=30)),
    AttemptOutcome.NOT_FOUND: OutcomeRule(timedelta(minutes=1), number_dead=True),
    AttemptOutcome.COMPLETED: OutcomeRule(timedelta(0), final=True),
}


@dataclass(frozen=True, slots=True)
class Attempt:
    """One finished attempt. ``daypart`` is the day-part it was scheduled into, if known."""

    dialled_at: datetime
    outcome: str
    number_index: int = 0
    daypart: str | None = None


@dataclass(frozen=True, slots=True)
class LeadState:
    """What the scheduler needs to know about a lead: every finished attempt, oldest first (the
    one that just ended last), how many numbers it has (primary first, then alternates in order),
    when it entered the campaign and whether an agent is reserved for it."""

    attempts: tuple[Attempt, ...]
    numbers: int = 1
    created_at: datetime | None = None
    reach_deadline: datetime | None = None
    agent_reserved: bool = False
    base_priority: int = 0


@dataclass(frozen=True, slots=True)
class NextAttempt:
    at_utc: datetime
    daypart: str | None
    number_index: int
    priority: int
    reason: str


@dataclass(frozen=True, slots=True)
class Exhausted:
    reason: str


@dataclass(frozen=True)
class RetryPolicy:
    """A campaign's retry rules. Defaults follow the issue: three day-parts, 72 h reach deadline."""

    dayparts: tuple[DayPart, ...] = DEFAULT_DAYPARTS
    rules: Mapping[str, OutcomeRule] = field(default_factory=lambda: dict(DEFAULT_RULES))
    max_attempts: int = 9
    max_attempts_per_number: int = 6
    #: every lead should be reached within this long after ``created_at`` (None: no deadline)
    reach_deadline: timedelta | None = timedelta(hours=72)
    #: priority added as the deadline nears: linear from 0 at creation to this at the deadline
    deadline_boost: int = 10
    search_days: int = 14

    def __post_init__(self) -> None:
        if not self.dayparts:
            raise ValueError("a retry policy needs at least one day-part")
        names = [d.name for d in self.dayparts]
        if len(set(names)) != len(names):
            raise ValueError(f"day-part names must be unique, got {names}")
        if self.max_attempts < 1 or self.max_attempts_per_number < 1:
            raise ValueError("max_attempts and max_attempts_per_number must be at least 1")

    # -- day-parts ---------------------------------------------------------------------------
    def daypart_at(self, when_utc: datetime, zone_name: str) -> DayPart | None:
        """The day-part containing ``when_utc`` in the callee's local time, if any."""
        _, secs = local_seconds(ensure_utc(when_utc, "when_utc"), zone_name)
        for dp in self.dayparts:
            if dp.range.contains(secs):
                return dp
        return None

    def _daypart_of(self, attempt: Attempt, zone_name: str) -> str | None:
        if attempt.daypart is not None:
            return attempt.daypart
        dp = self.daypart_at(attempt.dialled_at, zone_name)
        return dp.name if dp else None

    def untried_dayparts(self, lead: LeadState, zone_name: str) -> list[DayPart]:
        """Day-parts not yet tried in the current cycle; a cycle ends once every day-part was tried."""
        all_names = {d.name for d in self.dayparts}
        tried: set[str] = set()
        for a in lead.attempts:
            name = self._daypart_of(a, zone_name)
            if name in all_names:
                tried.add(name)
                if tried == all_names:
                    tried = set()
        return [d for d in self.dayparts if d.name not in tried]

    def _first_in_daypart(
        self, dp: DayPart, earliest: datetime, zones: Sequence[str], country: str | None, window: CallingWindow
    ) -> datetime | None:
        """The earliest instant >= ``earliest`` inside ``dp`` (primary zone's local time) and callable."""
        primary = zones[0]
        tz = zone(primary)
        day0 = earliest.astimezone(tz).date()
        for i in range(self.search_days + 1):
            day = day0 + timedelta(days=i)
            start = local_to_utc(day, dp.range.start, primary)
            end = local_to_utc(day, dp.range.end, primary)
            if end <= earliest:
                continue
            at = window.next_open(zones, country, max(start, earliest))
            if at is not None and at < end:
                return at
        return None

    # -- priority and deadline ------------------------------------------------------------------
    def deadline_of(self, lead: LeadState) -> datetime | None:
        if lead.reach_deadline is not None:
            return ensure_utc(lead.reach_deadline, "reach_deadline")
        if lead.created_at is not None and self.reach_deadline is not None:
            return ensure_utc(lead.created_at, "created_at") + self.reach_deadline
        return None

    def priority(self, lead: LeadState, at_utc: datetime) -> int:
        """Base priority plus a boost growing linearly to ``deadline_boost`` as the reach deadline nears."""
        deadline = self.deadline_of(lead)
        if deadline is None:
            return lead.base_priority
        span = (
            deadline - ensure_utc(lead.created_at, "created_at")
            if lead.created_at is not None
            else (self.reach_deadline or timedelta(hours=72))
        )
        left = deadline - ensure_utc(at_utc, "at_utc")
        if span <= timedelta(0) or left <= timedelta(0):
            return lead.base_priority + self.deadline_boost
        frac = min(1.0, max(0.0, 1.0 - left / span))
        return lead.base_priority + round(self.deadline_boost * frac)

    def at_risk(self, lead: LeadState, now_utc: datetime, within: timedelta = timedelta(hours=12)) -> bool:
        """Whether an unreached lead's deadline falls within ``within`` of now (for the at-risk report)."""
        deadline = self.deadline_of(lead)
        if deadline is None:
            return False
        reached = any(a.outcome == AttemptOutcome.COMPLETED for a in lead.attempts)
        return not reached and deadline - ensure_utc(now_utc) <= within

    # -- numbers -----------------------------------------------------------------------------------
    def _next_number(self, lead: LeadState) -> tuple[int | None, str]:
        used = [0] * lead.numbers
        dead = [False] * lead.numbers
        for a in lead.attempts:
            if not 0 <= a.number_index < lead.numbers:
                raise ValueError(
                    f"attempt number_index {a.number_index} is outside the lead's {lead.numbers} number(s); "
                    "set LeadState.numbers to the count of primary + alternate numbers"
                )
            used[a.number_index] += 1
            if self.rule_for(a.outcome).number_dead:
                dead[a.number_index] = True
        for i in range(lead.numbers):
            if not dead[i] and used[i] < self.max_attempts_per_number:
                return i, ""
        if all(dead):
            return None, "every number is dead (not found)"
        return None, f"every number reached its limit of {self.max_attempts_per_number} attempts"

    def rule_for(self, outcome: str) -> OutcomeRule:
        try:
            return self.rules[outcome]
        except KeyError:
            known = ", ".join(sorted(str(k) for k in self.rules))
            raise ValueError(f"no retry rule for outcome {outcome!r}; known outcomes: {known}") from None

    # -- the decision ----------------------------------------------------------------------------
    def schedule_next(
        self,
        lead_state: LeadState,
        outcome: str,
        now_utc: datetime,
        zones: Sequence[str],
        country: str | None,
        window: CallingWindow,
    ) -> NextAttempt | Exhausted:
        """When, on which number and why to call this lead next, or why not at all.

        ``lead_state.attempts`` must already include the attempt that just ended with ``outcome``.
        """
        now_utc = ensure_utc(now_utc)
        if not zones:
            raise ValueError("a lead needs at least one time zone to schedule its next attempt")
        if not lead_state.attempts:
            raise ValueError("record the attempt that just ended in lead_state.attempts before scheduling the next one")
        if lead_state.attempts[-1].outcome != outcome:
            raise ValueError(
                f"outcome {outcome!r} differs from the last recorded attempt's {lead_state.attempts[-1].outcome!r}; "
                "append the finished attempt to lead_state.attempts first"
            )
        rule = self.rule_for(outcome)
        if rule.final:
            return Exhausted(f"{outcome}: lead reached, no further attempt")
        if len(lead_state.attempts) >= self.max_attempts:
            return Exhausted(f"{outcome}; all {self.max_attempts} attempts used")
        number, why_not = self._next_number(lead_state)
        if number is None:
            return Exhausted(f"{outcome}; {why_not}")

        primary = zones[0]
        last = lead_state.attempts[-1]
        last_dp = self._daypart_of(last, primary)
        earliest = now_utc + rule.min_delay
        notes: list[str] = []
        if outcome == AttemptOutcome.ABANDONED:
            embargo = redial_not_before(now_utc, lead_state.agent_reserved)
            if embargo is not None and embargo > earliest:
                earliest = embargo
                notes.append("72 h no-redial after an abandoned call")
            elif embargo is None:
                notes.append("agent reserved, so no 72 h embargo")

        chosen: tuple[datetime, DayPart | None] | None = None
        how = ""
        if rule.rotate_daypart:
            for part in self.untried_dayparts(lead_state, primary):
                found = self._first_in_daypart(part, earliest, zones, country, window)
                if found is not None and (chosen is None or found < chosen[0]):
                    chosen = (found, part)
            how = "next untried day-part"
        if chosen is None:
            opening = window.next_open(zones, country, earliest)
            if opening is None:
                return Exhausted(
                    f"{outcome}; no calling window open for {', '.join(zones)} in the next {window.search_days} days"
                )
            chosen = (opening, self.daypart_at(opening, primary))
            how = "next open window" if not rule.rotate_daypart else "no untried day-part reachable; next open window"

        deadline = self.deadline_of(lead_state)
        if deadline is not None and chosen[0] > deadline > earliest:
            sooner = window.next_open(zones, country, earliest)
            if sooner is not None and sooner < chosen[0] and sooner <= deadline:
                chosen = (sooner, self.daypart_at(sooner, primary))
                how = "reach deadline near; earliest open window"

        at, dp = chosen
        local = at.astimezone(zone(primary))
        parts = [f"{outcome} in {last_dp or 'no day-part'}; {how}"]
        parts[0] += f" {dp.name}" if dp is not None and how.endswith("day-part") else ""
        parts[0] += f" at {local:%a %H:%M} local ({primary})"
        if number != last.number_index:
            parts.append(f"number {number + 1} of {lead_state.numbers}")
        if rule.min_delay and earliest == now_utc + rule.min_delay and at == earliest:
            parts.append(f"after the {_fmt_delay(rule.min_delay)} minimum delay")
        parts.extend(notes)
        return NextAttempt(
            at_utc=at,
            daypart=dp.name if dp is not None else None,
            number_index=number,
            priority=self.priority(lead_state, at),
            reason="; ".join(parts),
        )


def _fmt_delay(d: timedelta) -> str:
    mins = int(d.total_seconds() // 60)
    if mins % 60 == 0 and mins >= 60:
        return f"{mins // 60} h"
    return f"{mins} min"


# -- callbacks ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Callback:
    """A callback agreed with the customer for ``due_local`` (wall clock) in the customer's ``zone``.

    ``owner_agent`` None means shared. ``customer_requested`` allows a time outside the window.
    """

    due_local: datetime
    zone: str
    customer_requested: bool = False
    owner_agent: str | None = None

    def due_utc(self) -> datetime:
        if self.due_local.tzinfo is not None:
            return ensure_utc(self.due_local, "due_local")
        secs = self.due_local.hour * 3600 + self.due_local.minute * 60 + self.due_local.second
        return local_to_utc(self.due_local.date(), secs, self.zone)


@dataclass(frozen=True, slots=True)
class CallbackRules:
    """Callback timing: offered to the owning agent first, to anyone after ``grace``."""

    grace: timedelta = timedelta(minutes=5)

    def dial_at(
        self, cb: Callback, zones: Sequence[str], country: str | None, window: CallingWindow
    ) -> datetime | None:
        """When the callback may go out: the agreed time, or the next window opening if the time is
        outside the window and the customer did not ask for it specifically (None: no window soon)."""
        due = cb.due_utc()
        if cb.customer_requested:
            return due
        return window.next_open(zones or (cb.zone,), country, due)

    def may_dial(
        self, cb: Callback, now_utc: datetime, zones: Sequence[str], country: str | None, window: CallingWindow
    ) -> bool:
        now_utc = ensure_utc(now_utc)
        at = self.dial_at(cb, zones, country, window)
        if at is None or now_utc < at:
            return False
        return cb.customer_requested or window.is_callable(zones or (cb.zone,), country, now_utc)

    def offered_to(
        self, cb: Callback, now_utc: datetime, zones: Sequence[str], country: str | None, window: CallingWindow
    ) -> Literal["owner", "anyone", "not_due"]:
        at = self.dial_at(cb, zones, country, window)
        now_utc = ensure_utc(now_utc)
        if at is None or now_utc < at:
            return "not_due"
        if cb.owner_agent is None or now_utc >= at + self.grace:
            return "anyone"
        return "owner"
