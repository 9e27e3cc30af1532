"""DNC entry syntax and prefix matching (the database side is in tests/storage)."""

from __future__ import annotations

import pytest

from dialer.dnc import DncHit, PrefixIndex, parse_dnc_entry


@pytest.mark.parametrize(
    ("text", "region", "expected"),
    [
        ("+86 400*", None, ("+86400", True)),
        ("0086400*", None, ("+86400", True)),
        ("010*", "CN", ("+8610", True)),  # the trunk prefix 0 is not part of E.164
        ("400*", "cn", ("+86400", True)),
        ("138 0013 8000", "CN", ("+8613800138000", False)),
        ("+1 (212) 555-0123", None, ("+12125550123", False)),
    ],
)
def test_entries_are_normalised(text: str, region: str | None, expected: tuple[str, bool]) -> None:
    assert parse_dnc_entry(text, region) == expected


@pytest.mark.parametrize(
    ("text", "region", "message"),
    [
        ("400*", None, "with \\+country code"),
        ("*", None, "no digits"),
        ("13800138000", None, "no country code"),
        ("hello", "CN", "not a phone number"),
    ],
)
def test_bad_entries_say_how_to_write_them(text: str, region: str | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_dnc_entry(text, region)


def test_prefix_index_prefers_campaign_scope_and_matches_longest_first_found() -> None:
    index = PrefixIndex({"+86400": None, "+861": 3})
    assert index.match("+864001234567") == DncHit("+864001234567", "+86400", True, None)
    hit = index.match("+8613800138000")
    assert hit is not None and hit.campaign_id == 3 and "campaign DNC list (prefix +861*)" in hit.describe
    assert index.match("+12125550123") is None
    assert PrefixIndex({}).match("+8613800138000") is None
