"""The console's reports against the CLI's on the hand-built history of tests/unit/reports_data.py.

The console calls dialer.reports, the functions behind `dialer report agents/campaign`: the API's
JSON, the page and the CLI's CSV must give managers the same figures for the same day.
"""

from __future__ import annotations

import asyncio
import csv
import re
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from typer.testing import CliRunner

from dialer.commands import report as report_commands
from recordings.qa import store_survey_answer
from tests.unit.reports_data import DAY, NOW, Seeded, local, seed
from tests.web.conftest import Console, FakeClock, build_console, login


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def history(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Console, Seeded]]:
    """A console whose clock stands at reports_data.NOW, on the hand-built history, on both back ends."""
    url = None
    if request.param == "postgresql":
        from tests.conftest import require_postgres

        server = require_postgres(request.getfixturevalue("postgres_server"))
        name = f"web_reports_{uuid.uuid4().hex[:10]}"
        conn = await asyncpg.connect(host=server.host, port=server.port, user=server.user, database="postgres")
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        url = server.url(name)
    c = await build_console(tmp_path, clock=FakeClock(NOW.timestamp()), database_url=url)
    await c.add_user("mia", "manager")
    await c.add_user("alice", "agent", agent_id="1001")
    seeded = await seed(c.sessionmaker)
    async with c.sessionmaker() as s:
        # Post-call survey: 1001 twice (satisfied, average) in spring, 1002 once (unsatisfied) in autumn;
        # one answer 40 days ago, outside the 30-day period.
        for i, (answer, agent, camp, at) in enumerate(
            [
                (1, "1001", "spring", local(10, 3)),
                (2, "1001", "spring", local(10, 12)),
                (3, "1002", "autumn", local(14, 12)),
                (1, "1002", "autumn", NOW - timedelta(days=40)),
            ]
        ):
            await store_survey_answer(s, f"sv{i}", answer, now=at, agent_id=agent, campaign=camp)
        await s.commit()
    try:
        yield c, seeded
    finally:
        c.backend.close()
        c.live.detach()
        await c.engine.dispose()


async def test_api_gives_the_cli_figures_computed_by_hand(history: tuple[Console, Seeded]) -> None:
    console, seeded = history
    async with console.client() as client:
        await login(client, "mia")
        agents = {r["agent_id"]: r for r in (await client.get("/api/reports/agents", params={"day": str(DAY)})).json()}
        assert list(agents) == ["1001", "1002", "1003", "1004", "2001"]
        a, b = agents["1001"], agents["1002"]
        # a1 effective; a2 19 s under spring's 20 s; a3 CALLBACK not flagged effective; a4 a machine.
        assert (a["attempts"], a["contacts"], a["effective"], a["successes"], a["daily_target"]) == (5, 4, 1, 1, 50)
        assert a["occupancy"] == pytest.approx(239 / 3630) and a["occupancy_source"] == "estimate"
        # Two campaigns: targets add up (50 + 100); occupancy from the ACD queue_log.
        assert (b["effective"], b["daily_target"], b["campaigns"]) == (2, 150, ["autumn", "spring"])
        assert b["occupancy"] == pytest.approx(60 / 6600) and b["occupancy_source"] == "queue_log"

        r = (await client.get("/api/reports/campaigns/spring", params={"day": str(DAY)})).json()
        assert (r["attempts"], r["contacts"], r["day_effective"], r["day_target"]) == (17, 7, 2, 200)
        assert (r["abandon_today_answered"], r["abandon_today_abandoned"]) == (6, 2)
        assert (r["abandon_24h_answered"], r["abandon_24h_abandoned"]) == (7, 3)
        assert (r["abandon_30d_answered"], r["abandon_30d_abandoned"]) == (9, 4)
        assert len(r["hours"]) == 24 and r["hours"][10] == {
            "hour": 10,
            "attempts": 3,
            "contacts": 3,
            "contact_rate": 1.0,
        }
        assert r["hours"][8]["contacts"] == 1  # the Kolkata call, at 08:00 there

        abandon = (
            await client.get("/api/reports/abandon", params={"end": str(DAY), "days": 3, "campaign": "spring"})
        ).json()
        assert [(d["human_answered"], d["abandoned"]) for d in abandon] == [(0, 0), (2, 1), (6, 2)]
        assert abandon[-1]["rate"] == pytest.approx(r["abandon_today_rate"])

        risk = (await client.get("/api/reports/campaigns/spring/leads-at-risk")).json()
        assert [x["lead_id"] for x in risk] == [seeded.leads[k] for k in ("L10", "L5", "L6")]

        missing = await client.get("/api/reports/campaigns/winter")
        assert missing.status_code == 404 and "no campaign named 'winter'" in missing.text
        assert (await client.get("/api/reports/agents", params={"campaign": "winter"})).status_code == 404


def _cells(html: str, field: str) -> list[str]:
    return [re.sub(r"<[^>]+>", "", m).split()[0] for m in re.findall(rf'data-field="{field}">(.*?)</td>', html)]


async def test_reports_page_shows_the_same_figures(history: tuple[Console, Seeded]) -> None:
    console, _ = history
    async with console.client() as client:
        await login(client, "mia")
        page = await client.get("/manager/reports", params={"day": str(DAY), "days": 30, "campaign": "spring"})
        assert page.status_code == 200
        html = page.text
        assert html.count("<svg") == 3
        assert "daily target 50" in html  # spring only: every agent answers to spring's target
        assert _cells(html, "effective")[:2] == ["1", "1"]  # 1001; 1002's spring call only
        assert _cells(html, "abandon_today") == ["33.3%"] and _cells(html, "abandon_30d") == ["44.4%"]
        assert _cells(html, "leads_at_risk") == ["3"]
        assert 'id="report-at-risk"' in html and "刘洋" in html
        # Survey of spring in the last 30 days: 1001's two answers, one satisfied.
        assert _cells(html, "csat") == ["50.0%", "50.0%"]

        everything = (await client.get("/manager/reports", params={"day": str(DAY)})).text
        # Targets differ (1002 answers to 150): the chart compares each agent with its own target.
        assert "of target" in everything and "daily target 100%" in everything
        assert _cells(everything, "day_effective") == ["1", "2"]  # autumn, spring
        # By agent: 1001 1 of 2 satisfied, 1002 0 of 1 (the answer 40 days ago is outside); by campaign alike.
        assert _cells(everything, "csat") == ["50.0%", "0.0%", "0.0%", "50.0%"]
        assert 'id="report-at-risk"' not in everything

        bad = await client.get("/manager/reports", params={"campaign": "winter"})
        assert bad.status_code == 200 and "no campaign named &#39;winter&#39;" in bad.text


async def test_the_page_and_api_match_the_cli_csv(
    history: tuple[Console, Seeded], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`dialer report agents/campaign --csv` against the console's JSON, column by column."""
    console, _ = history
    if console.settings.database_url.startswith("postgresql"):
        pytest.skip("the CLI reads the site's SQLite file here; PostgreSQL is covered by the other tests")
    monkeypatch.setenv("DIALER_DATA_DIR", str(console.data_dir))
    monkeypatch.setenv("DIALER_SITE__TIMEZONE", "Asia/Shanghai")
    monkeypatch.delenv("DIALER_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(report_commands, "clock", lambda: NOW)

    def cli(*args: str) -> None:
        result = CliRunner().invoke(report_commands.app, list(args), env={"COLUMNS": "250"})
        assert result.exit_code == 0, result.output

    await asyncio.to_thread(cli, "agents", "--date", str(DAY), "--csv", str(tmp_path / "agents.csv"))
    await asyncio.to_thread(
        cli, "campaign", "spring", "--date", str(DAY), "--csv", str(tmp_path / "c.csv"),
        "--hours-csv", str(tmp_path / "h.csv"),
    )  # fmt: skip
    async with console.client() as client:
        await login(client, "mia")
        agents = (await client.get("/api/reports/agents", params={"day": str(DAY)})).json()
        report = (await client.get("/api/reports/campaigns/spring", params={"day": str(DAY)})).json()
    cli_agents = _read(tmp_path / "agents.csv")
    assert [r["agent_id"] for r in cli_agents] == [r["agent_id"] for r in agents]
    for row, api in zip(cli_agents, agents, strict=True):
        for column in ("attempts", "contacts", "effective", "daily_target", "successes", "talk_s", "occupancy"):
            assert _num(row[column]) == pytest.approx(_num(api[column])), (row["agent_id"], column)
    (row,) = _read(tmp_path / "c.csv")
    for column, value in report.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            assert _num(row[column]) == pytest.approx(value), column
    hours = _read(tmp_path / "h.csv")
    assert [(int(h["attempts"]), int(h["contacts"])) for h in hours] == [
        (h["attempts"], h["contacts"]) for h in report["hours"]
    ]


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def _num(value: Any) -> float | None:
    if value in ("", None):
        return None
    return float(value)


async def test_qa_page_is_in_the_nav_of_supervisors_and_managers_only(history: tuple[Console, Seeded]) -> None:
    console, _ = history
    await console.add_user("sam", "supervisor")
    for user, status, linked in (("sam", 200, True), ("mia", 200, True), ("alice", 403, False)):
        async with console.client() as client:
            await login(client, user)
            home = await client.get(
                "/manager/reports" if user == "mia" else "/agent" if user == "alice" else "/wallboard"
            )
            assert ('href="/qa"' in home.text) is linked, user
            page = await client.get("/qa")
            assert page.status_code == status, user
            if status == 200:
                # The console's CSP allows no inline script: everything comes from /static.
                assert re.findall(r"<script(?![^>]*\bsrc=)", page.text) == []
                assert '<script src="/static/qa.js">' in page.text and 'data-search-url="/api/recordings"' in page.text
