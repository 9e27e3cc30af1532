"""`dialer lists import|show`, `leads export` and the CLI's error handling, through the CLI (SQLite)."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import pytest
import typer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from typer.testing import CliRunner

from dialer.cli import app
from dialer.commands.config import database_error_message, run_handling_errors

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


def one_error_line(out: str) -> str:
    assert out.startswith("error: ") and out.count("\n") == 1, out
    return out


def test_bad_file_or_region_on_a_fresh_data_dir_leaves_nothing_behind(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    header_only = tmp_path / "list.csv"
    header_only.write_text("姓名,手机\n\n", encoding="utf-8")
    out = one_error_line(cli("lists", "import", str(header_only), "--campaign", "sales", code=1))
    assert f"{header_only} has a header but no data rows; add rows or check the delimiter" in out
    binary = tmp_path / "bin.csv"
    binary.write_bytes(b"\x00\xff" * 50)
    one_error_line(cli("lists", "import", str(binary), "--campaign", "sales", code=1))
    good = tmp_path / "good.csv"
    good.write_text("phone\n13800138000\n", encoding="utf-8")
    out = one_error_line(cli("lists", "import", str(good), "--campaign", "sales", "--region", "XX", code=1))
    assert "--region 'XX'" in out and "such as CN, US or GB" in out
    assert not (tmp_path / "var").exists()  # no database was created, let alone migrated


def test_header_only_file_creates_no_list(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cli("campaign", "create", "sales", "--region", "CN")
    header_only = tmp_path / "list.csv"
    header_only.write_text("phone;name\n", encoding="utf-8")
    one_error_line(cli("lists", "import", str(header_only), "--campaign", "sales", code=1))
    assert json.loads(cli("lists", "show", "--campaign", "sales", "--json")) == []


def test_import_summary_counts_dropped_alternates(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cli("campaign", "create", "sales", "--region", "CN")
    src = tmp_path / "list.csv"
    src.write_text(
        "phone,phone2,name\n13800138000,12345,A\n13900139000,+1 212 555,B\n13700137000,13600136000,C\n12,,D\n",
        encoding="utf-8",
    )
    summary = json.loads(cli("lists", "import", str(src), "--campaign", "sales", "--quiet"))
    assert (summary["read"], summary["imported"], summary["rejected"], summary["dropped_alternates"]) == (4, 3, 1, 2)
    assert summary["read"] == summary["imported"] + summary["merged"] + summary["rejected"] + summary["dnc_suppressed"]
    with Path(summary["rejects_file"]).open(encoding="utf-8-sig") as f:
        reasons = {r["name"]: r["reason"] for r in csv.DictReader(f)}
    assert set(reasons) == {"A", "B", "D"}
    assert reasons["A"].startswith("kept: phone2 '12345': not a valid number") and "dropped" in reasons["A"]
    assert "too short for US (+1)" in reasons["B"] and "CN" not in reasons["B"]
    assert not reasons["D"].startswith("kept")
    human = cli("lists", "import", str(src), "--campaign", "sales")
    assert "2 invalid alternate numbers dropped" in human


def test_interrupted_list_is_shown_and_its_leads_are_not_exported(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cli("campaign", "create", "sales", "--region", "CN")
    src = tmp_path / "done.csv"
    src.write_text("phone\n13800138000\n", encoding="utf-8")
    cli("lists", "import", str(src), "--campaign", "sales", "--quiet")
    db = tmp_path / "var" / "dialer.db"
    stale = "2020-01-01 00:00:00.000000"
    with sqlite3.connect(db) as conn:  # what a SIGKILLed import leaves: an importing list, pending leads
        conn.execute(
            "INSERT INTO lists (campaign_id, name, status, rows_read, imported, merged, rejected, dnc_suppressed, "
            "created_at, import_started_at, import_owner, heartbeat_at) "
            "VALUES (1, 'killed', 'importing', 0, 0, 0, 0, 0, ?, ?, 'h:1:x', ?)",
            (stale, stale, stale),
        )
        conn.execute(
            "INSERT INTO contacts (phone, alt_phones, timezones, vip, attributes, created_at, updated_at) "
            "VALUES ('+8613900139000', '[]', '[\"Asia/Shanghai\"]', 0, '{}', ?, ?)",
            (stale, stale),
        )
        conn.execute(
            "INSERT INTO leads (campaign_id, contact_id, list_id, status, priority, attempts, number_attempts, "
            "number_index, dayparts_tried, created_at, updated_at) "
            "VALUES (1, 2, 2, 'pending', 0, 0, '[]', 0, '[]', ?, ?)",
            (stale, stale),
        )
    shown = {r["list"]: r for r in json.loads(cli("lists", "show", "--campaign", "sales", "--json"))}
    assert (shown["done"]["status"], shown["killed"]["status"]) == ("ready", "interrupted")
    assert "interrupted" in cli("lists", "show", "--campaign", "sales")
    out = tmp_path / "export.csv"
    assert "exported 1 leads" in cli("leads", "export", "--campaign", "sales", "--out", str(out))
    assert "exported 1 leads" in cli("leads", "export", "--campaign", "sales", "--status", "pending", "--out", str(out))
    # The next import discards the dead one, contact included.
    other = tmp_path / "other.csv"
    other.write_text("phone\n13700137000\n", encoding="utf-8")
    cli("lists", "import", str(other), "--campaign", "sales", "--quiet")
    shown = {r["list"]: r for r in json.loads(cli("lists", "show", "--campaign", "sales", "--json"))}
    assert shown["killed"]["status"] == "failed" and "1 pending leads and 1 new contacts" in shown["killed"]["note"]
    with sqlite3.connect(db) as conn:
        phones = {p for (p,) in conn.execute("SELECT phone FROM contacts")}
    assert phones == {"+8613800138000", "+8613700137000"}


def test_locked_database_is_one_line_naming_the_database_and_the_fix(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "dialer.db"
    holder = sqlite3.connect(path)
    holder.execute("CREATE TABLE t (x)")
    holder.commit()
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    url = f"sqlite+aiosqlite:///{path}"

    async def write() -> None:
        engine = create_async_engine(url, connect_args={"timeout": 0.1})
        try:
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO t VALUES (1)"))
        finally:
            await engine.dispose()

    try:
        with pytest.raises(typer.Exit) as exit_info:
            run_handling_errors(write, database=url)
    finally:
        holder.rollback()
        holder.close()
    assert exit_info.value.exit_code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"database {url} is locked by another writer" in err and "use PostgreSQL" in err


def test_other_database_errors_name_the_database_and_hide_the_password() -> None:
    from sqlalchemy.exc import OperationalError

    exc = OperationalError("SELECT 1", {}, Exception("no such table: leads"))
    message = database_error_message(exc, "postgresql+asyncpg://u:secret@db/dialer")
    assert "secret" not in message and "postgresql+asyncpg://u:***@db/dialer" in message
    assert "dialer db upgrade" in message
