"""The campaign, lists, DNC, leads and db commands end to end through the CLI (SQLite)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dialer.cli import app

runner = CliRunner()


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DIALER_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("DIALER_CONFIG", raising=False)
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.chdir(tmp_path)

    def invoke(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == code, f"{args}: exit {result.exit_code}\n{result.output}"
        return result.output

    return invoke


def test_campaign_round_trip(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert "at revision" in cli("db", "upgrade")
    out = cli(
        "campaign", "create", "春季", "--region", "CN", "--window", "09:30-20:00", "--weekday", "sun=closed",
        "--quiet-hours", "none", "--daypart", "day=09:30-15:00", "--daypart", "late=15:00-20:00",
        "--retry", "busy=5", "--max-attempts", "4", "--pacing", "power", "--abandon-rate", "0.02",
        "--caller-id", "+86 10 1234 5678", "--trunk", "carrier-a", "--effective-seconds", "20",
        "--daily-target", "50", "--disposition", "SALE=成交:success,final", "--disposition", "CB=回电:callback",
    )  # fmt: skip
    assert "created campaign '春季'" in out and "paused" in out
    shown = json.loads(cli("campaign", "show", "春季", "--json"))
    s = shown["settings"]
    assert shown["status"] == "paused"
    assert s["window"] == {"default": "09:30-20:00", "weekdays": {"sun": "closed"}, "quiet_hours": [], "holidays": True}
    assert s["dayparts"] == {"day": "09:30-15:00", "late": "15:00-20:00"}
    assert s["retry"]["max_attempts"] == 4 and s["retry"]["outcomes"]["busy"]["min_delay_minutes"] == 5
    assert s["pacing"]["mode"] == "power" and s["pacing"]["target_abandon_rate"] == 0.02
    assert (s["caller_id"], s["trunk"], s["effective_call_seconds"], s["daily_target"]) == (
        "+861012345678", "carrier-a", 20, 50,
    )  # fmt: skip
    assert [(d["code"], d["success"], d["callback"]) for d in s["dispositions"]] == [
        ("SALE", True, False),
        ("CB", False, True),
    ]
    assert "calling window: 09:30-20:00 (sun closed)" in cli("campaign", "show", "春季")
    cli("campaign", "create", "春季", code=1)
    listed = json.loads(cli("campaign", "list", "--json"))
    assert [(c["name"], c["status"]) for c in listed] == [("春季", "paused")]
    assert "active" in cli("campaign", "resume", "春季")
    assert "paused" in cli("campaign", "pause", "春季")
    assert "archived" in cli("campaign", "archive", "春季")
    assert json.loads(cli("campaign", "list", "--json")) == []
    assert json.loads(cli("campaign", "list", "--all", "--json"))[0]["status"] == "archived"
    err = cli("campaign", "resume", "春季", code=1)
    assert "archived" in err


def test_campaign_create_bad_flag_and_settings_file(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = cli("campaign", "create", "x", "--ring-timeout", "10", code=2)
    assert "ring_timeout_seconds = 10" in out and "greater than or equal to 15" in out
    settings = tmp_path / "c.toml"
    settings.write_text('[campaigns.x]\nregion = "US"\n[campaigns.x.pacing]\nmode = "preview"\n')
    cli("campaign", "create", "x", "--settings", str(settings), "--max-lines", "7")
    shown = json.loads(cli("campaign", "show", "x", "--json"))["settings"]
    assert (shown["region"], shown["pacing"]["mode"], shown["pacing"]["max_lines"]) == ("US", "preview", 7)


def test_lists_import_dnc_and_export_through_the_cli(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cli("campaign", "create", "sales", "--region", "CN")
    assert "added: +86139*" in cli("dnc", "add", "+86 139*")
    assert "added: +8613700137000 (campaign 'sales')" in cli("dnc", "add", "13700137000", "--campaign", "sales")
    blocked = cli("dnc", "check", "13900139000", "--region", "CN", code=1)
    assert "blocked" in blocked and "prefix +86139*" in blocked
    assert "callable" in cli("dnc", "check", "+8613700137000")  # only blocked for the campaign
    assert "campaign" in cli("dnc", "check", "13700137000", "--campaign", "sales", code=1)
    src = tmp_path / "名单.csv"
    src.write_text("姓名,手机\n张三,13800138000\n李四,13900139000\n王五,13700137000\n坏,123\n", encoding="utf-8")
    summary = json.loads(cli("lists", "import", str(src), "--campaign", "sales", "--quiet"))
    assert (summary["read"], summary["imported"], summary["rejected"], summary["dnc_suppressed"]) == (4, 1, 1, 2)
    with (tmp_path / "名单.csv.rejects.csv").open(encoding="utf-8-sig") as f:
        rejects = list(csv.DictReader(f))
    assert {r["姓名"] for r in rejects} == {"李四", "王五", "坏"}
    again = json.loads(cli("lists", "import", str(src), "--campaign", "sales", "--json"))
    assert (again["imported"], again["merged"]) == (0, 1)
    human = cli("lists", "import", str(src), "--campaign", "sales", "--dry-run")
    assert "read 4 = imported 0 + merged 1 + rejected 1 + DNC-suppressed 2" in human
    assert "ready" in cli("lists", "show", "--campaign", "sales")
    out = tmp_path / "export.csv"
    assert "exported 1 leads" in cli("leads", "export", "--campaign", "sales", "--out", str(out))
    with out.open(encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    assert [(r["phone"], r["name"], r["lead_status"]) for r in rows] == [("+8613800138000", "张三", "ready")]
    cli("leads", "export", "--campaign", "sales", "--status", "nope", "--out", str(out), code=1)
    assert "removed" in cli("dnc", "remove", "+86139*")
    cli("dnc", "remove", "+86139*", code=1)
    dnc_file = tmp_path / "dnc.csv"
    dnc_file.write_text("号码\n13600136000\n+86400*\nxyz\n", encoding="utf-8")
    loaded = json.loads(cli("dnc", "import", str(dnc_file), "--region", "CN"))
    assert (loaded["added"], loaded["rejected"]) == (2, 1)


def test_unreadable_files_end_with_one_line_and_non_zero_exit(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cli("campaign", "create", "sales", "--region", "CN")
    binary = tmp_path / "list.csv"
    binary.write_bytes(b"\x00\xff" * 100)
    out = cli("lists", "import", str(binary), "--campaign", "sales", code=1)
    assert out.count("\n") == 1 and out.startswith("error: ") and str(binary) in out
    missing = cli("lists", "import", str(tmp_path / "none.csv"), "--campaign", "sales", code=1)
    assert "no such file" in missing
    no_campaign = tmp_path / "ok.csv"
    no_campaign.write_text("phone\n+8613800138000\n")
    assert "no campaign named 'nope'" in cli("lists", "import", str(no_campaign), "--campaign", "nope", code=1)


def test_caller_id_is_required_to_dial_and_the_abandon_message_settings(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path
) -> None:
    import shutil

    from ivr.prompts import company_prompt_name

    bad = cli("campaign", "create", "x", "--caller-id", "12345", code=2)
    assert "caller_id" in bad and "E.164" in bad
    no_cid = cli("campaign", "create", "x", "--active", code=2)
    assert "caller_id" in no_cid and "--caller-id" in no_cid
    assert "caller_id" in cli("campaign", "create", "x")  # paused: created, with a note
    refused = cli("campaign", "resume", "x", code=1)
    assert "has no caller_id" in refused
    assert json.loads(cli("campaign", "show", "x", "--json"))["status"] == "paused"

    cli(
        "campaign", "create", "y", "--caller-id", "+442079460000", "--company-name", "Acme  Insurance",
        "--callback-number", "+44 20 7946 0001", "--amd", "--on-machine", "message",
    )  # fmt: skip
    s = json.loads(cli("campaign", "show", "y", "--json"))["settings"]
    assert (s["company_name"], s["callback_number"], s["on_machine"]) == (
        "Acme Insurance", "+442079460001", "message",
    )  # fmt: skip
    assert s["amd_thresholds"]["greeting_max_ms"] == 2300
    assert "active" in cli("campaign", "resume", "y")
    if shutil.which("espeak-ng") and shutil.which("sox"):
        # Spoken at create time: no TTS is needed while dialling.
        assert (tmp_path / "var" / "prompts" / f"{company_prompt_name('Acme Insurance')}.wav").stat().st_size > 1000
    assert "on_machine" in cli("campaign", "create", "z", "--on-machine", "voicemail", code=2)
