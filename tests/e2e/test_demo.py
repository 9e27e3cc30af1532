"""`dialer demo` as a newcomer (and CI) runs it: a 30-second run of the whole product on loopback.

The checks read the run's own database and files, not its printout: at least one effective
call (a human conversation bridged to an agent, talk time at or above the campaign's threshold,
a disposition flagged effective), at least one recording whose file and metadata row both exist,
no call to the DNC number, no call outside the callee's calling window (and the contacts the
demo kept outside it never dialled), and the rejects file with every invalid row.
"""

from __future__ import annotations

import csv
import json
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dialer.campaigns import CampaignSettings

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "config" / "demo"

pytestmark = pytest.mark.timeout(150)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    data = tmp_path_factory.mktemp("demo") / "data"
    proc = subprocess.run(
        [sys.executable, "-m", "dialer.cli", "demo", "--minutes", "0.5", "--no-view", "--data-dir", str(data)],
        capture_output=True,
        text=True,
        timeout=130,
        check=False,
        cwd=REPO,
        env={**os.environ, "COLUMNS": "200"},
    )
    return proc, data


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_demo_finishes_and_prints_the_reports(demo_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    proc, data = demo_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "agents registered with digest auth and logged in nailed" in out
    assert "Wallboard: http://127.0.0.1:" in out and "supervisor" in out
    assert "Agents " in out and "occupancy" in out  # the agent report
    assert "Campaign demo" in out and "penetration" in out and "abandon today" in out  # the campaign report
    assert f"rejected import rows with reasons: {data / 'contacts.rejects.csv'}" in out
    assert f"in {data / 'recordings'}" in out
    assert "t=" in out and "placed" in out  # --no-view summary lines


def test_demo_made_an_effective_call(demo_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    _, data = demo_run
    db = sqlite3.connect(data / "dialer.db")
    settings = CampaignSettings.model_validate_json(db.execute("select settings from campaigns").fetchone()[0])
    effective = db.execute(
        """
        select a.call_id, a.talk_seconds, a.disposition, a.agent_id
        from call_attempts a
        join dispositions d on d.campaign_id = a.campaign_id and d.code = a.disposition
        where d.effective and a.outcome = 'completed' and a.bridged_at is not null and a.talk_seconds >= ?
        """,
        (settings.effective_call_seconds,),
    ).fetchall()
    assert effective, db.execute("select outcome, talk_seconds, disposition from call_attempts").fetchall()
    assert all(agent for *_, agent in effective)


def test_demo_recorded_calls_with_metadata(demo_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    _, data = demo_run
    db = sqlite3.connect(data / "dialer.db")
    rows = db.execute("select id, path, status, duration, call_id from recordings").fetchall()
    assert rows
    complete = [(rid, path, dur, call) for rid, path, status, dur, call in rows if status == "complete"]
    assert complete, rows
    for _rid, path, duration, _call in complete:
        wav = data / "recordings" / path
        assert wav.is_file() and wav.stat().st_size > 44 + 8000, wav  # a header and at least some audio
        assert duration > 0
    # Campaign calls carry their recording on the CDR.
    linked = db.execute(
        "select count(*) from call_attempts a join recordings r on r.id = a.recording_id where a.outcome = 'completed'"
    ).fetchone()[0]
    assert linked >= 1


def test_demo_never_dials_dnc_or_outside_the_window(demo_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    _, data = demo_run
    db = sqlite3.connect(data / "dialer.db")
    with (DEMO / "dnc.csv").open(encoding="utf-8") as f:
        dnc = [row["number"] for row in csv.DictReader(f)]
    assert dnc
    dialled = {n for (n,) in db.execute("select number from call_attempts")}
    assert dialled, "the demo dialled nothing"
    assert not dialled & set(dnc)

    settings = CampaignSettings.model_validate_json(db.execute("select settings from campaigns").fetchone()[0])
    window = settings.calling_window()
    attempts = db.execute(
        "select a.dialled_at, c.timezones, c.country, c.id from call_attempts a join contacts c on c.id = a.contact_id"
    ).fetchall()
    for dialled_at, zones, country, contact_id in attempts:
        assert window.is_callable(json.loads(zones), country, _utc(dialled_at)), (contact_id, zones, dialled_at)

    run = json.loads((data / "demo-run.json").read_text(encoding="utf-8"))
    outside = set(run["outside_window_contacts"])
    assert outside, "the demo keeps some contacts outside the calling window to show the rule"
    called = {cid for (cid,) in db.execute("select contact_id from call_attempts")}
    assert not outside & called


def test_demo_rejects_file_lists_the_invalid_rows(demo_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    _, data = demo_run
    rejects = data / "contacts.rejects.csv"
    assert rejects.is_file()
    with rejects.open(encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    with (DEMO / "contacts.csv").open(encoding="utf-8") as f:
        invalid = {row["id"] for row in csv.DictReader(f) if row["segment"] == "invalid"}
    assert len(invalid) >= 5
    assert invalid <= {row["id"] for row in rows}
    assert all(row["reason"] for row in rows)
    assert any(row["reason"].startswith("dnc:") for row in rows)  # the DNC contact, suppressed at import
