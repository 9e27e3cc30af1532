"""Calling windows: when a callee may be called, in the callee's own local time.

A :class:`CallingWindow` is the campaign's rule set: a default daily range (09:00-21:00),
per-weekday overrides (a day may be closed), quiet hours such as a 12:00-14:00 rest, and
the public holidays of the callee's country from the ``holidays`` package. A contact with
several candidate zones is callable only when *every* zone is inside its window, so a
number whose zone is uncertain is never called at night in any of them.

Time convention of the whole pure dialer core: instants are timezone-aware UTC
``datetime`` objects (naive ones are rejected), durations are seconds or ``timedelta``.
Local wall-clock arithmetic goes through ``zoneinfo``, so DST changes are handled by
converting instants, never by adding hours to local times.
"""

from __future__ import annotations

import bisect
import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

__all__ = [
    "CallingWindow",
    "TimeRange",
    "ensure_utc",
    "holidays_for",
    "local_seconds",
    "local_to_utc",
    "zone",
]

_DAY = 86_400
_RANGE_RE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def ensure_utc(when: datetime, what: str = "now") -> datetime:
    """Return ``when`` in UTC; refuse naive datetimes, which would silently mean 'server local time'."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(
            f"{what}={when.isoformat()} is a naive datetime; pass an aware UTC instant, "
            "e.g. datetime.now(UTC) or dt.replace(tzinfo=UTC)"
        )
    return when.astimezone(UTC)


@functools.lru_cache(maxsize=512)
def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``, cached; unknown names get an error that says what is expected."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}: use an IANA name such as 'Europe/London'") from exc


@functools.lru_cache(maxsize=1024)
def holidays_for(country: str, year: int, subdivision: str | None = None) -> holidays.HolidayBase:
    """Public holidays of ``country`` (ISO 3166-1 alpha-2) in ``year``, built once per (country, year, subdivision)."""
    try:
        return holidays.country_holidays(country.upper(), subdiv=subdivision, years=year)
    except NotImplementedError as exc:
        raise ValueError(
            f"the holidays package has no calendar for country {country!r}"
            + (f" subdivision {subdivision!r}" if subdivision else "")
            + ": use an ISO 3166-1 alpha-2 code such as 'US', 'GB', 'CN', or pass country=None to skip holidays"
        ) from exc


def local_seconds(when_utc: datetime, zone_name: str) -> tuple[date, float]:
    """The local date and seconds since local midnight (wall clock) of an instant in ``zone_name``."""
    local = when_utc.astimezone(zone(zone_name))
    secs = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
    return local.date(), secs


@dataclass(frozen=True, slots=True)
class TimeRange:
    """A half-open local wall-clock range [start, end) within one day, in seconds since midnight.

    ``end`` may be 86400 (midnight at the end of the day). Build one with :meth:`parse`.
    """

    start: int
    end: int

    def __post_init__(self) -> None:
        if not (0 <= self.start < self.end <= _DAY):
            raise ValueError(
                f"time range {self.start}s-{self.end}s is not inside one day with start < end; "
                "write it as 'HH:MM-HH:MM' with the end later than the start (24:00 is allowed as the end)"
            )

    @classmethod
    def parse(cls, text: str | TimeRange | tuple[str, str]) -> TimeRange:
        """Parse ``"09:00-21:00"`` or ``("09:00", "21:00")``; ``24:00`` is allowed as an end."""
        if isinstance(text, TimeRange):
            return text
        if isinstance(text, tuple):
            text = f"{text[0]}-{text[1]}"
        m = _RANGE_RE.match(text)
        if not m:
            raise ValueError(f"time range {text!r} is not in the form 'HH:MM-HH:MM', e.g. '09:00-21:00'")
        h1, m1, h2, m2 = (int(g) for g in m.groups())
        if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2 != 0):
            raise ValueError(
                f"time range {text!r} has an hour or minute out of range (hours 00-23, or 24:00 as the end)"
            )
        return cls(h1 * 3600 + m1 * 60, h2 * 3600 + m2 * 60)

    @classmethod
    def of(cls, start: time, end: time | None) -> TimeRange:
        """From ``datetime.time`` values; ``end=None`` means midnight at the end of the day."""
        s = start.hour * 3600 + start.minute * 60 + start.second
        e = _DAY if end is None else end.hour * 3600 + end.minute * 60 + end.second
        return cls(s, e)

    def contains(self, seconds: float) -> bool:
        return self.start <= seconds < self.end

    def __str__(self) -> str:
        return f"{_hhmm(self.start)}-{_hhmm(self.end)}"


def _hhmm(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}"


def _subtract(ranges: list[tuple[int, int]], cut: TimeRange) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for s, e in ranges:
        if cut.end <= s or cut.start >= e:
            out.append((s, e))
            continue
        if s < cut.start:
            out.append((s, cut.start))
        if cut.end < e:
            out.append((cut.end, e))
    return out


def _weekday_key(key: int | str) -> int:
    if isinstance(key, int) and 0 <= key <= 6:
        return key
    if isinstance(key, str) and key[:3].lower() in WEEKDAY_NAMES:
        return WEEKDAY_NAMES.index(key[:3].lower())
    raise ValueError(f"weekday {key!r} is not valid: use 0-6 (Monday=0) or a name such as 'sat'")


@dataclass(frozen=True)
class CallingWindow:
    """When calls may go out, evaluated in each callee zone's local time.

    - ``default``: the daily range, 09:00-21:00 unless set.
    - ``weekdays``: overrides by weekday (0=Monday or 'mon'...); ``None`` closes that day.
    - ``quiet_hours``: ranges removed from every day (e.g. '12:00-14:00' lunch rest).
    - ``observe_holidays``: no calls on the public holidays of the callee's country.
    - ``subdivisions``: optional country -> subdivision code for regional holidays.
    - ``closed_dates``: extra local dates with no calls (company-specific).
    """

    default: TimeRange = field(default_factory=lambda: TimeRange.parse("09:00-21:00"))
    weekdays: Mapping[int, TimeRange | None] = field(default_factory=dict)
    quiet_hours: tuple[TimeRange, ...] = ()
    observe_holidays: bool = True
    subdivisions: Mapping[str, str] = field(default_factory=dict)
    closed_dates: frozenset[date] = frozenset()
    #: how far :meth:`next_open` looks ahead before answering ``None``
    search_days: int = 14

    @classmethod
    def build(
        cls,
        *,
        default: str | TimeRange = "09:00-21:00",
        weekdays: Mapping[int | str, str | TimeRange | None] | None = None,
        quiet_hours: Iterable[str | TimeRange] = (),
        observe_holidays: bool = True,
        subdivisions: Mapping[str, str] | None = None,
        closed_dates: Iterable[date] = (),
        search_days: int = 14,
    ) -> CallingWindow:
        """Build from config-style values: ``CallingWindow.build(weekdays={'sun': None, 'sat': '10:00-14:00'})``."""
        wd: dict[int, TimeRange | None] = {}
        for key, value in (weekdays or {}).items():
            wd[_weekday_key(key)] = None if value is None else TimeRange.parse(value)
        return cls(
            default=TimeRange.parse(default),
            weekdays=wd,
            quiet_hours=tuple(TimeRange.parse(q) for q in quiet_hours),
            observe_holidays=observe_holidays,
            subdivisions={k.upper(): v for k, v in (subdivisions or {}).items()},
            closed_dates=frozenset(closed_dates),
            search_days=search_days,
        )

    def __post_init__(self) -> None:
        if self.search_days < 1:
            raise ValueError("search_days must be at least 1")

    # -- one zone, one local day ------------------------------------------------------------
    def is_holiday(self, local_day: date, country: str | None) -> bool:
        if local_day in self.closed_dates:
            return True
        if not self.observe_holidays or not country:
            return False
        return local_day in holidays_for(country.upper(), local_day.year, self.subdivisions.get(country.upper()))

    def open_ranges(self, local_day: date, country: str | None) -> list[tuple[int, int]]:
        """Open [start, end) ranges in seconds since local midnight on ``local_day`` (empty when closed)."""
        if self.is_holiday(local_day, country):
            return []
        weekday = local_day.weekday()
        day_range = self.weekdays.get(weekday, self.default)
        if day_range is None:
            return []
        ranges = [(day_range.start, day_range.end)]
        for q in self.quiet_hours:
            ranges = _subtract(ranges, q)
        return ranges

    def is_open_in(self, zone_name: str, country: str | None, now_utc: datetime) -> bool:
        """Whether one zone is inside its window at ``now_utc``."""
        day, secs = local_seconds(ensure_utc(now_utc), zone_name)
        return any(s <= secs < e for s, e in self.open_ranges(day, country))

    # -- all candidate zones ---------------------------------------------------------------
    def is_callable(self, zones: Sequence[str], country: str | None, now_utc: datetime) -> bool:
        """True only when EVERY candidate zone is inside its window at ``now_utc``."""
        if not zones:
            raise ValueError("a contact needs at least one time zone to check its calling window")
        now_utc = ensure_utc(now_utc)
        return all(self.is_open_in(z, country, now_utc) for z in zones)

    def next_open(self, zones: Sequence[str], country: str | None, after_utc: datetime) -> datetime | None:
        """The earliest instant >= ``after_utc`` at which every zone is open, or ``None`` within ``search_days``.

        The answer is either ``after_utc`` itself or the instant some zone's range opens, so only
        those candidates are checked.
        """
        if not zones:
            raise ValueError("a contact needs at least one time zone to find its next calling window")
        after_utc = ensure_utc(after_utc)
        if self.is_callable(zones, country, after_utc):
            return after_utc
        horizon = after_utc + timedelta(days=self.search_days)
        candidates: list[datetime] = []
        for z in zones:
            tz = zone(z)
            first_day = after_utc.astimezone(tz).date() - timedelta(days=1)
            for i in range(self.search_days + 2):
                day = first_day + timedelta(days=i)
                for start, _end in self.open_ranges(day, country):
                    at = local_to_utc(day, start, z)
                    if after_utc < at <= horizon:
                        bisect.insort(candidates, at)
        for at in candidates:
            if self.is_callable(zones, country, at):
                return at
        return None

    def describe(self) -> str:
        parts = [f"default {self.default}"]
        for d, r in sorted(self.weekdays.items()):
            parts.append(f"{WEEKDAY_NAMES[d]} {'closed' if r is None else r}")
        if self.quiet_hours:
            parts.append("quiet " + ", ".join(str(q) for q in self.quiet_hours))
        if self.observe_holidays:
            parts.append("no public holidays")
        return "; ".join(parts)


def local_to_utc(day: date, seconds: int, zone_name: str) -> datetime:
    """The first instant at which the local wall clock in ``zone_name`` reads >= ``day`` + ``seconds``.

    Inside a DST gap (e.g. 02:30 on a spring-forward night) that wall time never exists; the
    range then opens at the moment the clock jumps past it, found by bisection.
    """
    tz = zone(zone_name)
    naive = datetime.combine(day, time()) + timedelta(seconds=seconds)
    at = naive.replace(tzinfo=tz).astimezone(UTC)
    if at.astimezone(tz).replace(tzinfo=None) == naive:
        # An ambiguous (repeated) wall time resolves to its first occurrence with fold=0.
        return at
    # Bisect on whole epoch seconds: DST transitions fall on whole seconds.
    lo, hi = int(at.timestamp()) - 3 * 3600, int(at.timestamp())
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, tz).replace(tzinfo=None) >= naive:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, UTC)
