"""Queue and agent reports from queue_log rows: a hand-computed window, and the `dialer report` CLI
reading a real SQLite queue_log."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from acd.models import QueueLogRow
from acd.reports import summarise
from dialer.commands import report_acd
from infra.db import create_engine, create_sessionmaker, migrate

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


@dataclass
class Row:
    time: datetime
    call_id: str
    queue: str
    agent: str
    event: str
    data1: str = ""
    data2: str = ""
    data3: str = ""
    data4: str = ""
    data5: str = ""


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


ROWS = [
    Row(at(-3600), "NONE", "NONE", "a", "LOGIN", "ring"),
    Row(at(0), "c1", "q", "NONE", "ENTERQUEUE", "", "111", "1"),
    Row(at(10), "c1", "q", "a", "CONNECT", "10", "", "2"),
    Row(at(110), "c1", "q", "a", "COMPLETECALLER", "10", "100", "1"),
    Row(at(110), "c1", "q", "a", "WRAPUPSTART", "20"),
    Row(at(130), "c1", "q", "a", "WRAPUPEND", "20", "0"),
    Row(at(600), "NONE", "NONE", "a", "PAUSE", "lunch", "0"),
    Row(at(1200), "NONE", "NONE", "a", "UNPAUSE", "lunch", "600"),
    Row(at(1800), "c2", "q", "NONE", "ENTERQUEUE", "", "222", "1"),
    Row(at(1840), "c2", "q", "NONE", "ABANDON", "1", "1", "40"),
    Row(at(2400), "c3", "q", "NONE", "ENTERQUEUE", "", "333", "1"),
    Row(at(2401), "c3", "q", "a", "RINGNOANSWER", "2000", "timeout"),
    Row(at(2430), "c3", "q", "a", "CONNECT", "30", "", "2"),
    Row(at(2490), "c3", "q", "a", "COMPLETEAGENT", "30", "60", "1"),
    Row(at(3000), "c4", "q", "NONE", "ENTERQUEUE", "", "444", "1"),
    Row(at(3005), "c4", "q", "NONE", "CALLBACKREQUEST", "cb-c4", "1", "0", ""),
    Row(at(3300), "NONE", "NONE", "a", "LOGOFF", "4800", "agent"),
    Row(at(3700), "c9", "q", "NONE", "ENTERQUEUE", "", "999", "1"),  # after the window
]


def test_hand_computed_window() -> None:
    (q,), (a,) = summarise(ROWS, since=T0, until=at(3600))
    assert (q.entered, q.answered, q.abandoned, q.callbacks_requested, q.offered) == (4, 2, 1, 1, 4)
    assert q.answered_within_sl == 1 and q.service_level == pytest.approx(0.25)
    assert q.asa_s == pytest.approx(20.0)
    assert q.aht_s == pytest.approx((100 + 60 + 20) / 2)
    assert q.abandon_rate == pytest.approx(0.25)
    assert q.longest_wait_s == 40
    assert (a.logged_in_s, a.paused_s, a.staffed_s) == (3300, 600, 2700)
    assert a.occupancy == pytest.approx(180 / 2700) and q.occupancy == pytest.approx(180 / 2700)
    assert (a.answered, a.handled, a.offers_missed, a.pauses) == (2, 2, 1, {"lunch": 1})


def test_service_level_threshold_and_callback_connections() -> None:
    rows = [
        *ROWS[:16],
        Row(at(3100), "c4", "q", "a", "CONNECT", "100", "", "1"),  # the callback is answered: not in SL
    ]
    (q,), _ = summarise(rows, since=T0, until=at(3600), service_level_s=35.0)
    assert (q.answered, q.callbacks_answered, q.answered_within_sl) == (2, 1, 2)


def test_cli_reports_from_the_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'd.db'}"

    async def seed() -> None:
        engine = create_engine(url)
        await migrate(engine)
        async with create_sessionmaker(engine)() as session, session.begin():
            for r in ROWS:
                session.add(QueueLogRow(**vars(r)))
        await engine.dispose()

    asyncio.run(seed())
    monkeypatch.setenv("DIALER_DATABASE__URL", url)
    monkeypatch.delenv("DIALER_CONFIG", raising=False)
    runner = CliRunner()
    window = ["--since", "2026-11-20T10:00", "--until", "2026-11-20T11:00"]
    out = runner.invoke(report_acd.app, ["queues", *window, "--json"])
    assert out.exit_code == 0, out.output
    (q,) = [json.loads(line) for line in out.output.splitlines()]
    assert q["queue"] == "q" and q["offered"] == 4 and q["service_level"] == pytest.approx(0.25)
    out = runner.invoke(report_acd.app, ["agents", *window])
    assert out.exit_code == 0 and "a" in out.output and "6.7%" in out.output
    bad = runner.invoke(report_acd.app, ["queues", "--since", "yesterday"])
    assert bad.exit_code != 0 and "--since 'yesterday' is not a date" in bad.output
