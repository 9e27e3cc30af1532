"""One row to a contact record: invalid alternates, impossible time-zone sets, error wording."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from dialer.lists.fields import resolve_columns
from dialer.lists.importer import tuple_of
from dialer.lists.normalize import (
    DROPPED_ALTERNATE,
    TIMEZONE_FALLBACK,
    ContactRecord,
    RowError,
    RowNormalizer,
    normalize_number,
    zone_span_seconds,
)

HEADERS = ["phone", "phone2", "phone3", "name"]


def normalizer(region: str | None = "CN", timezone: str | None = None, window: int = 12 * 3600) -> RowNormalizer:
    return RowNormalizer(resolve_columns(Path("x.csv"), HEADERS, {}), region, timezone, window_seconds=window)


def test_invalid_alternate_is_dropped_and_the_row_kept() -> None:
    record = normalizer()(["13800138000", "12345", "13900139000", "张三"])
    assert record.phone == "+8613800138000"
    assert record.alt_phones == ["+8613900139000"]
    [(kind, message)] = record.warnings
    assert kind == DROPPED_ALTERNATE
    assert message.startswith("phone2 '12345': not a valid number") and "dropped" in message


def test_invalid_main_number_still_rejects_the_row() -> None:
    with pytest.raises(RowError, match="phone '12345'"):
        normalizer()(["12345", "13900139000", "", ""])


def test_a_bad_plus_one_number_names_the_region_of_its_country_code() -> None:
    with pytest.raises(RowError) as err:
        normalize_number("+1 212 555", "CN")
    assert "too short for US (+1)" in str(err.value) and "CN" not in str(err.value)
    with pytest.raises(RowError, match=r"not a valid number for CN \(\+86\)"):
        normalize_number("1380013", "CN")  # no +: the campaign's region is the right one to name


def test_toll_free_number_gets_the_campaign_zone_with_a_warning() -> None:
    info = normalize_number("+1 800 234 5678", None)
    assert len(info.timezones) > 40 and zone_span_seconds(tuple(info.timezones)) > 12 * 3600
    record = normalizer(region="US", timezone="America/New_York")(["+1 800 234 5678", "", "", "x"])
    assert record.timezones == ["America/New_York"]
    [(kind, message)] = record.warnings
    assert kind == TIMEZONE_FALLBACK and "America/New_York" in message and "21 h" in message


def test_toll_free_number_without_a_campaign_zone_is_rejected_with_the_fix() -> None:
    with pytest.raises(RowError, match="add a timezone column or set the campaign's timezone"):
        normalizer(region="US")(["8002345678", "", "", "x"])


def test_zones_that_overlap_are_all_kept() -> None:
    zones = ["America/New_York", "America/Los_Angeles"]
    assert zone_span_seconds(tuple(zones)) == 3 * 3600
    kept = ContactRecord("+1", timezones=list(zones))
    normalizer(window=4 * 3600)._check_overlap("x", kept)  # 3 h apart, 4 h window: overlaps
    assert kept.timezones == zones and kept.warnings == []
    with pytest.raises(RowError, match="span 3 h, more than the 3 h calling window"):
        normalizer(window=3 * 3600)._check_overlap("x", ContactRecord("+1", timezones=list(zones)))


def test_warnings_survive_the_trip_to_worker_processes() -> None:
    record = normalizer()(["13800138000", "12345", "", ""])
    again = ContactRecord(*pickle.loads(pickle.dumps(tuple_of(record))))
    assert again == record and again.warnings
