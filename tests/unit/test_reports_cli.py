"""`dialer report agents|campaign|leads-at-risk` and `dialer leads show` through typer's CliRunner (SQLite)."""

from __future__ import annotations

import asyncio
import csv
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from dialer.commands import leads_show
from dialer.commands import report as report_commands
from infra.db import create_engine, create_sessionmaker, migrate
from tests.unit.reports_data import NOW, Seeded, seed

runner = CliRunner()

# The groups as dialer/cli.py mounts them (report) and as leads.py registers `show`.
app = typer.Typer()
app.add_typer(report_commands.app, name="report")
leads_app = typer.Typer(no_args_is_help=True)
leads_app.command("show")(leads_show.show)


@leads_app.command("export")
def _export_placeholder() -> None:
    """Stands in for the real `leads export` so `leads` stays a group."""


app.add_typer(leads_app, name="leads")

Invoke = Callable[..., str]


@pytest.fixture
def seeded_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Invoke, Seeded]:
    data = tmp_path / "var"
    monkeypatch.setenv("DIALER_DATA_DIR", str(data))
    monkeypatch.setenv("DIALER_SITE__TIMEZONE", "Asia/Shanghai")
    monkeypatch.delenv("DIALER_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(report_commands, "clock", lambda: NOW)
    monkeypatch.setattr(leads_show, "clock", lambda: NOW)

    async def prepare() -> Seeded:
        engine = create_engine(f"sqlite+aiosqlite:///{data / 'dialer.db'}")
        try:
            await migrate(engine)
            return await seed(create_sessionmaker(engine))
        finally:
            await engine.dispose()

    seeded = asyncio.run(prepare())

    def invoke(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, list(args), env={"COLUMNS": "250"})
        assert result.exit_code == code, f"{args}: exit {result.exit_code}\n{result.output}"
        return result.output

    return invoke, seeded


def read_csv(path: Path) -> list[dict[str, str]]:
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def test_report_agents_table_and_csv(seeded_cli: tuple[Invoke, Seeded], tmp_path: Path) -> None:
    cli, _ = seeded_cli
    out = cli("report", "agents", "--date", "2026-03-10", "--csv", str(tmp_path / "agents.csv"))
    assert "Agents 2026-03-10 (Asia/Shanghai)" in out
    assert "张伟" in out
    assert "~6.6%" in out  # 1001's estimated occupancy, marked
    assert "0.9%" in out and "~0.9%" not in out  # 1002 from the queue_log: 60 / 6600
    assert "occupancy estimated" in out
    rows = read_csv(tmp_path / "agents.csv")
    assert [r["agent_id"] for r in rows] == ["1001", "1002", "1003", "1004", "2001"]
    assert [(r["effective"], r["daily_target"]) for r in rows[:2]] == [("1", "50"), ("2", "150")]
    assert rows[0]["occupancy_source"] == "estimate" and rows[1]["occupancy_source"] == "queue_log"

    only = cli("report", "agents", "--date", "2026-03-10", "--campaign", "autumn")
    assert "1002" in only and "1001" not in only
    assert "no agent activity on 2026-03-01" in cli("report", "agents", "--date", "2026-03-01")
    # The day in another zone: 2026-03-10 in London starts at 08:00 Shanghai, so 1003's midnight call is out.
    london = cli("report", "agents", "--date", "2026-03-10", "--tz", "Europe/London")
    assert "1003" not in london and "1001" in london


def test_report_bad_input(seeded_cli: tuple[Invoke, Seeded]) -> None:
    cli, _ = seeded_cli
    assert "--date '10/03/2026' is not a date; write it as YYYY-MM-DD" in cli(
        "report", "agents", "--date", "10/03/2026", code=1
    )
    assert "is not an IANA time zone" in cli("report", "agents", "--tz", "Mars/Olympus", code=1)
    assert "no campaign named 'winter'" in cli("report", "campaign", "winter", code=1)
    assert "no campaign named 'winter'" in cli("report", "leads-at-risk", "winter", code=1)


def test_report_campaign(seeded_cli: tuple[Invoke, Seeded], tmp_path: Path) -> None:
    cli, _ = seeded_cli
    out = cli(
        "report", "campaign", "spring", "--date", "2026-03-10",
        "--csv", str(tmp_path / "c.csv"), "--hours-csv", str(tmp_path / "h.csv"),
    )  # fmt: skip
    assert "Campaign spring: 2026-03-10 (Asia/Shanghai)" in out
    assert "66.7%" in out and "6 of 9 leads attempted" in out
    assert "2 / 200" in out  # effective today vs target
    assert "2 / 6 human-answered" in out  # abandon today
    assert "abandon rate over the 3.0% cap" in out
    assert "Attempts by the callee's local hour" in out
    (row,) = read_csv(tmp_path / "c.csv")
    assert (row["campaign"], row["leads_total"], row["day_effective"], row["leads_exhausted"]) == (
        "spring",
        "9",
        "2",
        "1",
    )
    assert row["abandon_today_rate"] == repr(2 / 6)  # unformatted
    hours = read_csv(tmp_path / "h.csv")
    assert len(hours) == 24 and hours[10] == {"hour": "10", "attempts": "3", "contacts": "3", "contact_rate": "1.0"}


def test_report_leads_at_risk(seeded_cli: tuple[Invoke, Seeded], tmp_path: Path) -> None:
    cli, seeded = seeded_cli
    out = cli("report", "leads-at-risk", "spring", "--csv", str(tmp_path / "risk.csv"))
    assert "3 lead(s) at risk" in out
    assert "刘洋" in out and "-8.0 overdue" in out
    rows = read_csv(tmp_path / "risk.csv")
    assert [int(r["lead_id"]) for r in rows] == [seeded.leads[k] for k in ("L10", "L5", "L6")]
    assert rows[1]["name"] == "刘洋" and rows[1]["hours_left"] == "2.0"
    wide = cli("report", "leads-at-risk", "spring", "--within", "72")
    assert "4 lead(s) at risk" in wide and "[VIP] 黄丽" in wide  # names are not Rich markup
    assert "1 lead(s) at risk" in cli("report", "leads-at-risk", "spring", "--within", "0.5")  # overdue L10
    assert "no lead of 'autumn' at risk" in cli("report", "leads-at-risk", "autumn")


def test_leads_show(seeded_cli: tuple[Invoke, Seeded]) -> None:
    cli, seeded = seeded_cli
    out = cli("leads", "show", "+919812345678", "--campaign", "spring")
    assert f"lead {seeded.leads['L4']} of 'spring': Asha" in out
    assert "2026-03-10 02:30:00" in out and "2026-03-10 08:00:00" in out  # UTC and Kolkata
    assert "machine" in out and "200 OK" in out and "NOT_INTERESTED" in out and "1001" in out
    assert "next attempt: 2026-03-10 04:30:47 UTC = 2026-03-10 10:00:47 local" in out
    assert "why: machine in no day-part; next untried day-part morning" in out

    cb = cli("leads", "show", str(seeded.leads["L3"]), "--campaign", "spring")
    assert "why: callback agreed for Wed 2026-03-11 16:30 local (Asia/Shanghai); offered to agent 1001 first" in cb
    assert cb.count("no_answer") == 2

    data = json.loads(cli("leads", "show", "13800138005", "--campaign", "spring", "--json"))
    assert data["name"] == "刘洋" and data["attempts"] == [] and "first attempt" in data["next_reason"]

    missing = cli("leads", "show", "+8613800138099", "--campaign", "spring", code=1)
    assert "no lead '+8613800138099' in campaign 'spring'" in missing
