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
from acd.reports import DEFAULT_SERVICE_LEVEL_S, service_levels, summarise
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


def test_service_levels_come_from_each_queue_s_config() -> None:
    assert service_levels({"q": {"service_level_s": 35}, "sales": {}, "vip": {"service_level_s": 10.5}}) == {
        "q": 35.0,
        "sales": DEFAULT_SERVICE_LEVEL_S,
        "vip": 10.5,
    }
    with pytest.raises(ValueError, match=r"\[acd.queues.q\] service_level_s = 'soon'"):
        service_levels({"q": {"service_level_s": "soon"}})
    (q,), _ = summarise(ROWS, since=T0, until=at(3600), service_level_s={"q": 35.0})
    assert (q.service_level_s, q.answered_within_sl) == (35.0, 2)
    (other,), _ = summarise(ROWS, since=T0, until=at(3600), service_level_s={"elsewhere": 99.0})
    assert (other.service_level_s, other.answered_within_sl) == (DEFAULT_SERVICE_LEVEL_S, 1)


def _seed(url: str) -> None:
    async def seed() -> None:
        engine = create_engine(url)
        await migrate(engine)
        async with create_sessionmaker(engine)() as session, session.begin():
            for r in ROWS:
                session.add(QueueLogRow(**vars(r)))
        await engine.dispose()

    asyncio.run(seed())


def test_cli_uses_each_queue_s_threshold_and_the_flag_overrides_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'd.db'}"
    _seed(url)
    config = tmp_path / "dialer.toml"
    config.write_text(f'[database]\nurl = "{url}"\n\n[acd.queues.q]\nservice_level_s = 35\n', encoding="utf-8")
    monkeypatch.delenv("DIALER_CONFIG", raising=False)
    monkeypatch.delenv("DIALER_DATABASE__URL", raising=False)
    runner = CliRunner()
    window = ["--config", str(config), "--since", "2026-11-20T10:00", "--until", "2026-11-20T11:00"]
    out = runner.invoke(report_acd.app, ["queues", *window, "--json"])
    assert out.exit_code == 0, out.output
    (q,) = [json.loads(line) for line in out.output.splitlines()]
    assert (q["service_level_s"], q["answered_within_sl"], q["service_level"]) == (35.0, 2, pytest.approx(0.5))
    out = runner.invoke(report_acd.app, ["queues", *window, "--json", "--service-level", "20"])
    assert out.exit_code == 0, out.output
    (q,) = [json.loads(line) for line in out.output.splitlines()]
    assert (q["service_level_s"], q["service_level"]) == (20.0, pytest.approx(0.25))
    monkeypatch.setenv("COLUMNS", "200")  # one table row per queue
    out = runner.invoke(report_acd.app, ["queues", *window])
    assert out.exit_code == 0 and "50.0% (35s)" in out.output


async def test_api_queue_report_has_per_queue_sl_occupancy_and_longest_wait(tmp_path: Path) -> None:
    import httpx

    from dialer.web import LiveState, LocalBackend, create_app
    from dialer.web.models import User
    from infra.bus import EventBus
    from infra.settings import load_settings
    from tests.web.conftest import _PASSWORD_HASH, login

    url = f"sqlite+aiosqlite:///{tmp_path / 'd.db'}"
    engine = create_engine(url)
    await migrate(engine)
    sessionmaker = create_sessionmaker(engine)
    async with sessionmaker() as session, session.begin():
        for r in ROWS:
            session.add(QueueLogRow(**vars(r)))
        session.add(User(username="mia", password_hash=_PASSWORD_HASH, role="manager"))
        session.add(User(username="sam", password_hash=_PASSWORD_HASH, role="supervisor"))
    settings = load_settings(
        None,
        site={"data_dir": tmp_path / "data"},
        database={"url": url},
        http={"secret_key": "test-secret-key-0123456789"},
        acd={"queues": {"q": {"service_level_s": 35}}},
    )
    bus = EventBus()
    backend, live = LocalBackend(bus, sessionmaker), LiveState()
    app = create_app(settings=settings, sessionmaker=sessionmaker, bus=bus, backend=backend, live=live)
    window = {"since": "2026-11-20T10:00:00+00:00", "until": "2026-11-20T11:00:00+00:00"}
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            await login(client, "mia")
            response = await client.get("/api/reports/queues", params=window)
            assert response.status_code == 200, response.text
            (q,) = response.json()
            assert (q["queue"], q["service_level_s"], q["service_level"]) == ("q", 35.0, pytest.approx(0.5))
            assert q["occupancy"] == pytest.approx(180 / 2700)
            assert q["longest_wait_s"] == 40
            assert q["aht_s"] == pytest.approx(90.0)
            response = await client.get("/api/reports/queues", params={**window, "service_level_s": 20})
            assert response.json()[0]["service_level"] == pytest.approx(0.25)
            response = await client.get("/api/reports/queues", params={**window, "queue": "other"})
            assert response.json() == []
            bad = await client.get("/api/reports/queues", params={"since": window["until"], "until": window["since"]})
            assert bad.status_code == 422 and "must be before" in bad.json()["message"]
            schema = (await client.get("/openapi.json")).json()
            assert "/api/reports/queues" in schema["paths"]
            await login(client, "sam")
            assert (await client.get("/api/reports/queues", params=window)).status_code == 403  # managers only
    finally:
        backend.close()
        live.detach()
        await engine.dispose()
