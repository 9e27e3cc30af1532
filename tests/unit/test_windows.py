"""Calling windows: local time per zone, weekdays, quiet hours, holidays, DST, multi-zone overlap."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dialer.windows import CallingWindow, TimeRange

NY = "America/New_York"
LON = "Europe/London"
SH = "Asia/Shanghai"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def local(zone: str, *args: int) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(zone)).astimezone(UTC)  # type: ignore[misc]


def test_default_window_is_nine_to_nine_local() -> None:
    w = CallingWindow()
    assert w.is_callable([LON], None, local(LON, 2026, 3, 2, 9, 0))
    assert w.is_callable([LON], None, local(LON, 2026, 3, 2, 20, 59, 59))
    assert not w.is_callable([LON], None, local(LON, 2026, 3, 2, 21, 0))
    assert not w.is_callable([LON], None, local(LON, 2026, 3, 2, 8, 59, 59))
    # 14:00 UTC is 09:00 in New York (EST) but 22:00 in Shanghai
    assert w.is_callable([NY], None, utc(2026, 3, 2, 14, 0))
    assert not w.is_callable([SH], None, utc(2026, 3, 2, 14, 0))


def test_naive_datetime_is_refused_with_a_hint() -> None:
    with pytest.raises(ValueError, match="naive"):
        CallingWindow().is_callable([LON], None, datetime(2026, 3, 2, 12))


def test_unknown_zone_and_country_are_explained() -> None:
    with pytest.raises(ValueError, match="IANA"):
        CallingWindow().is_callable(["Mars/Olympus"], None, utc(2026, 3, 2, 12))
    with pytest.raises(ValueError, match="ISO 3166"):
        CallingWindow().is_callable([LON], "XX", utc(2026, 3, 2, 12))


def test_bad_range_text_names_the_format() -> None:
    with pytest.raises(ValueError, match="HH:MM-HH:MM"):
        TimeRange.parse("9-21")
    with pytest.raises(ValueError, match="start < end"):
        TimeRange.parse("21:00-09:00")
    assert TimeRange.parse("18:00-24:00").end == 86_400


def test_weekday_overrides_and_closed_days() -> None:
    w = CallingWindow.build(weekdays={"sat": "10:00-14:00", "sun": None})
    sat = date(2026, 3, 7)
    assert sat.weekday() == 5
    assert not w.is_callable([LON], None, local(LON, 2026, 3, 7, 9, 30))
    assert w.is_callable([LON], None, local(LON, 2026, 3, 7, 13, 59))
    assert not w.is_callable([LON], None, local(LON, 2026, 3, 7, 14, 0))
    assert not w.is_callable([LON], None, local(LON, 2026, 3, 8, 12, 0))  # Sunday closed
    # next_open from Saturday evening skips the closed Sunday to Monday 09:00
    assert w.next_open([LON], None, local(LON, 2026, 3, 7, 15, 0)) == local(LON, 2026, 3, 9, 9, 0)


def test_quiet_hours_are_removed() -> None:
    w = CallingWindow.build(quiet_hours=["12:00-14:00"])
    assert w.is_callable([SH], None, local(SH, 2026, 3, 3, 11, 59))
    assert not w.is_callable([SH], None, local(SH, 2026, 3, 3, 12, 0))
    assert not w.is_callable([SH], None, local(SH, 2026, 3, 3, 13, 59))
    assert w.is_callable([SH], None, local(SH, 2026, 3, 3, 14, 0))
    assert w.next_open([SH], None, local(SH, 2026, 3, 3, 12, 30)) == local(SH, 2026, 3, 3, 14, 0)


def test_us_christmas_2026_is_closed() -> None:
    w = CallingWindow()
    noon = local(NY, 2026, 12, 25, 12, 0)
    assert not w.is_callable([NY], "US", noon)
    assert w.is_callable([NY], None, noon)  # no country: no holiday calendar
    assert w.is_callable([NY], "US", local(NY, 2026, 12, 24, 12, 0))
    assert w.next_open([NY], "US", noon) == local(NY, 2026, 12, 26, 9, 0)


def test_chinese_spring_festival_2026_is_closed() -> None:
    w = CallingWindow()
    for day in (17, 18, 19):
        assert not w.is_callable([SH], "CN", local(SH, 2026, 2, day, 10, 0))
    assert w.is_callable([SH], "CN", local(SH, 2026, 2, 13, 10, 0))
    opening = w.next_open([SH], "CN", local(SH, 2026, 2, 17, 10, 0))
    assert opening is not None
    assert opening.astimezone(ZoneInfo(SH)).date() > date(2026, 2, 19)
    assert w.is_callable([SH], "CN", opening)


def test_holidays_can_be_ignored() -> None:
    w = CallingWindow(observe_holidays=False)
    assert w.is_callable([NY], "US", local(NY, 2026, 12, 25, 12, 0))


def test_dst_spring_forward_keeps_local_hours() -> None:
    w = CallingWindow()
    # New York springs forward on 2026-03-08: 09:00 local is 14:00 UTC before, 13:00 UTC after.
    assert w.next_open([NY], None, utc(2026, 3, 7, 2, 0)) == utc(2026, 3, 7, 14, 0)
    assert w.next_open([NY], None, utc(2026, 3, 8, 2, 0)) == utc(2026, 3, 8, 13, 0)
    assert w.is_callable([NY], None, utc(2026, 3, 9, 0, 59))  # 20:59 EDT
    assert not w.is_callable([NY], None, utc(2026, 3, 9, 1, 0))  # 21:00 EDT


def test_dst_fall_back_and_gap_window_start() -> None:
    # London falls back on 2026-10-25; 09:00 local = 09:00 UTC after, 08:00 UTC before.
    w = CallingWindow()
    assert w.next_open([LON], None, utc(2026, 10, 24, 3)) == utc(2026, 10, 24, 8)
    assert w.next_open([LON], None, utc(2026, 10, 25, 3)) == utc(2026, 10, 25, 9)
    # A window opening inside the spring-forward gap opens when the clock jumps (01:00 UTC).
    gap = CallingWindow.build(default="01:30-05:00")
    opening = gap.next_open([LON], None, utc(2026, 3, 29, 0, 45))
    assert opening == utc(2026, 3, 29, 1, 0)
    assert gap.is_callable([LON], None, opening)
    assert not gap.is_callable([LON], None, opening - timedelta(seconds=1))


def test_multi_zone_needs_every_zone_open() -> None:
    w = CallingWindow()
    zones = [NY, "America/Los_Angeles"]
    # 16:00 UTC: 11:00 in New York, 08:00 in Los Angeles -> not yet
    assert not w.is_callable(zones, None, utc(2026, 3, 3, 16, 0))
    assert w.next_open(zones, None, utc(2026, 3, 3, 16, 0)) == utc(2026, 3, 3, 17, 0)
    # 02:30 UTC: 21:30 in New York (closed) while Los Angeles is at 18:30 (open)
    assert not w.is_callable(zones, None, utc(2026, 3, 4, 2, 30))
    assert w.is_callable(["America/Los_Angeles"], None, utc(2026, 3, 4, 2, 30))


def test_disjoint_zones_never_open() -> None:
    w = CallingWindow.build(default="09:00-12:00", search_days=3)
    assert w.next_open([LON, "Pacific/Auckland"], None, utc(2026, 3, 3)) is None


zone_names = st.sampled_from(
    [
        "UTC", NY, LON, SH, "America/Los_Angeles", "Asia/Kolkata", "Australia/Lord_Howe", "Pacific/Chatham",
        "America/Santiago", "Asia/Kathmandu", "Europe/Berlin", "America/St_Johns", "Pacific/Kiritimati",
    ]
)  # fmt: skip
instants = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31)).map(
    lambda d: d.replace(tzinfo=UTC)
)
windows = st.builds(
    lambda start, length, quiet, closed: CallingWindow.build(
        default=f"{start:02d}:00-{min(24, start + length):02d}:00",
        quiet_hours=["12:00-14:00"] if quiet else [],
        weekdays={closed: None} if closed is not None else {},
    ),
    st.integers(0, 20),
    st.integers(1, 12),
    st.booleans(),
    st.one_of(st.none(), st.integers(0, 6)),
)


@settings(max_examples=150, deadline=None)
@given(zones=st.lists(zone_names, min_size=1, max_size=3, unique=True), now=instants, window=windows,
       country=st.sampled_from([None, "US", "GB", "CN"]))  # fmt: skip
def test_no_dial_outside_window_property(
    zones: list[str], now: datetime, window: CallingWindow, country: str | None
) -> None:
    """Whatever the zones and clock, a callable instant is inside every zone's local window, and
    next_open never lands outside it nor skips an earlier open quarter-hour."""
    if window.is_callable(zones, country, now):
        for z in zones:
            loc = now.astimezone(ZoneInfo(z))
            secs = loc.hour * 3600 + loc.minute * 60 + loc.second
            assert any(s <= secs < e for s, e in window.open_ranges(loc.date(), country))
    opening = window.next_open(zones, country, now)
    if opening is not None:
        assert opening >= now
        assert window.is_callable(zones, country, opening)
        probe = now + timedelta(minutes=15)
        while probe < min(opening, now + timedelta(days=3)):
            assert not window.is_callable(zones, country, probe), f"open at {probe} before next_open {opening}"
            probe += timedelta(minutes=15)
