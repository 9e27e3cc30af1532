"""DNC entry syntax, prefix matching and the dnc commands (the repository side is in tests/storage)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dialer.cli import app
from dialer.dnc import DncHit, PrefixIndex, check_prefix_length, parse_dnc_entry


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


@pytest.mark.parametrize(
    ("prefix", "message"),
    [
        ("+1", "would block every +1 number (US, "),
        ("+8610", "would block every number starting +8610 (CN)"),
        ("+4420", "at least 3 more digits (e.g. +44400*)"),
        ("+9", "would block every number starting +9;"),
    ],
)
def test_short_prefixes_are_refused_with_the_reason(prefix: str, message: str) -> None:
    with pytest.raises(ValueError) as err:
        check_prefix_length(prefix)
    assert message in str(err.value) and "--force" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("prefix", ["+1800", "+86400", "+86139", "+4420712300"])
def test_country_code_plus_three_digits_is_enough(prefix: str) -> None:
    check_prefix_length(prefix)


# -- through the CLI (SQLite) ------------------------------------------------------------------

runner = CliRunner()


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DIALER_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("DIALER_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)

    def invoke(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == code, f"{args}: exit {result.exit_code}\n{result.output}"
        return result.output

    return invoke


def test_dnc_add_refuses_a_country_wide_prefix_unless_forced(cli) -> None:  # type: ignore[no-untyped-def]
    out = cli("dnc", "add", "+1*", code=1)
    assert out.startswith("error: DNC prefix '+1*' would block every +1 number") and out.count("\n") == 1
    assert "added: +1*" in cli("dnc", "add", "+1*", "--force")
    assert "added: +1800*" in cli("dnc", "add", "+1 800*")


def test_dnc_check_without_campaign_reports_campaign_lists(cli) -> None:  # type: ignore[no-untyped-def]
    cli("campaign", "create", "sales", "--region", "CN")
    cli("campaign", "create", "retention", "--region", "CN")
    cli("dnc", "add", "13700137000", "--campaign", "sales")
    cli("dnc", "add", "+86137*", "--campaign", "retention")
    out = cli("dnc", "check", "+8613700137000")
    assert out.startswith("callable: +8613700137000 is on no global DNC list, but blocked in")
    assert "campaign 'sales' (+8613700137000)" in out and "campaign 'retention' (prefix +86137*)" in out
    as_json = json.loads(cli("dnc", "check", "+8613700137000", "--json"))
    assert as_json["blocked"] is False
    assert as_json["campaign_lists"] == [
        {"campaign": "retention", "entry": "prefix +86137*"},
        {"campaign": "sales", "entry": "+8613700137000"},
    ]
    cli("dnc", "add", "+8613700137000")
    blocked = cli("dnc", "check", "+8613700137000", code=1)
    assert "blocked: +8613700137000 on the global DNC list" in blocked and "also on the DNC list of" in blocked
    assert "callable: +8613900139000 is on no DNC list" in cli("dnc", "check", "+8613900139000")


def test_dnc_import_headerless_file_starting_with_a_prefix(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "dnc.csv"
    path.write_text("+86400*,premium lines\n+8613800138000,asked\n+1*,everything\n+86400*,again\n", encoding="utf-8")
    summary = json.loads(cli("dnc", "import", str(path)))
    assert (summary["read"], summary["added"], summary["already_listed"], summary["rejected"]) == (4, 2, 1, 1)
    assert "line 3: DNC prefix '+1*' would block" in summary["errors"][0]
    assert "prefix +86400*" in cli("dnc", "check", "+864001234567", code=1)
    forced = json.loads(cli("dnc", "import", str(path), "--force"))
    assert (forced["added"], forced["already_listed"], forced["rejected"]) == (1, 3, 0)
