"""The recordings router mounted on a bare FastAPI app with a stand-in for the console's roles:
search, range requests on the audio, QA scores (422 naming the field), reports and the QA page."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, HTTPException, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infra.db import create_engine, create_sessionmaker, migrate
from recordings.qa import QaForms, store_survey_answer
from recordings.service import RecordingMeta, RecordingService, RecordingSummary
from recordings.web import make_router
from tests.integration.test_recordings_cli import at, record

pytestmark = pytest.mark.timeout(60)
RANK = {"agent": 0, "supervisor": 1, "manager": 2, "admin": 3}
FORMS = QaForms.from_config(
    {
        "spring": {
            "scale_min": 0,
            "scale_max": 4,
            "criteria": [
                {"name": "greeting", "label": "Greeting", "weight": 1},
                {"name": "compliance", "label": "Compliance", "weight": 3},
            ],
        }
    }
)


@dataclass
class User:
    username: str
    role: str
    csrf: str = "tok"


def require_role(role: str, /, *, write: bool = False) -> Callable[..., Any]:
    """What the console provides: a dependency per role, checking CSRF on writes."""

    async def dependency(request: Request) -> User:
        name, user_role = request.headers.get("x-user"), request.headers.get("x-role")
        if not name or not user_role:
            raise HTTPException(401, "log in first")
        if RANK[user_role] < RANK[role]:
            raise HTTPException(403, f"this needs the {role} role")
        if write and request.headers.get("x-csrf-token") != "tok":
            raise HTTPException(403, "CSRF token missing")
        return User(name, user_role)

    return dependency


@dataclass
class Site:
    client: httpx.AsyncClient
    db: async_sessionmaker[AsyncSession]
    root: Path
    made: dict[str, RecordingSummary]


QA = {"x-user": "qa1", "x-role": "supervisor", "x-csrf-token": "tok"}


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'web.db'}")
    await migrate(engine)
    db = create_sessionmaker(engine)
    root = tmp_path / "rec"
    made = {}
    for name, when, meta in [
        ("s1", "2026-03-01T10:00:00", RecordingMeta("a1", 7, "spring", None, "completed")),
        ("s2", "2026-03-02T10:00:00", RecordingMeta("a1", 7, "spring", None, "busy")),
        ("s3", "2026-03-02T11:00:00", RecordingMeta("a2", 7, "spring", None, "completed")),
        ("q1", "2026-03-03T09:00:00", RecordingMeta("a2", None, None, "support", "completed")),
    ]:
        made[name] = await record(RecordingService(db, root, clock=at(when)), f"call-{name}", meta, seconds=1.0)
    app = FastAPI()
    app.include_router(
        make_router(db, require_role, root=root, forms=FORMS, clock=at("2026-03-05T12:00:00"), prefix="/rec")
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console") as client:
        yield Site(client, db, root, made)
    await engine.dispose()


async def test_search_by_agent_campaign_dates_and_outcome(site: Site) -> None:
    c = site.client
    assert (await c.get("/rec/api/recordings")).status_code == 401
    assert (await c.get("/rec/api/recordings", headers={"x-user": "ag", "x-role": "agent"})).status_code == 403
    everything = (await c.get("/rec/api/recordings", headers=QA)).json()
    assert [r["call_id"] for r in everything] == ["call-q1", "call-s3", "call-s2", "call-s1"]
    assert everything[0]["audio_url"] == f"http://console/rec/api/recordings/{site.made['q1'].id}/audio"

    async def ids(**params: str) -> list[str]:
        response = await c.get("/rec/api/recordings", params=params, headers=QA)
        assert response.status_code == 200, response.text
        return [r["call_id"] for r in response.json()]

    assert await ids(agent="a1") == ["call-s2", "call-s1"]
    assert await ids(campaign="spring", outcome="completed") == ["call-s3", "call-s1"]
    assert await ids(since="2026-03-02", until="2026-03-02") == ["call-s3", "call-s2"]
    assert await ids(since="2026-03-03") == ["call-q1"]
    bad = await c.get("/rec/api/recordings", params={"since": "2026-03-05", "until": "2026-03-01"}, headers=QA)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "until"]


async def test_audio_supports_range_requests(site: Site) -> None:
    summary = site.made["s1"]
    data = (site.root / summary.path).read_bytes()
    url = f"/rec/api/recordings/{summary.id}/audio"
    full = await site.client.get(url, headers=QA)
    assert full.status_code == 200 and full.content == data
    assert full.headers["content-type"] == "audio/wav" and full.headers["accept-ranges"] == "bytes"
    head = await site.client.get(url, headers={**QA, "range": "bytes=0-43"})
    assert head.status_code == 206 and head.content == data[:44] and head.content.startswith(b"RIFF")
    assert head.headers["content-range"] == f"bytes 0-43/{len(data)}"
    middle = await site.client.get(url, headers={**QA, "range": "bytes=8000-8999"})
    assert middle.status_code == 206 and middle.content == data[8000:9000]
    assert middle.headers["content-length"] == "1000"
    tail = await site.client.get(url, headers={**QA, "range": "bytes=-100"})
    assert tail.status_code == 206 and tail.content == data[-100:]
    beyond = await site.client.get(url, headers={**QA, "range": f"bytes={len(data) + 10}-"})
    assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{len(data)}"
    assert (await site.client.get("/rec/api/recordings/nope/audio", headers=QA)).status_code == 404
    (site.root / summary.path).unlink()
    missing = await site.client.get(url, headers=QA)
    assert missing.status_code == 404 and "dialer recordings verify" in missing.json()["detail"]


async def test_qa_scores_are_validated_stored_and_reported(site: Site) -> None:
    c = site.client
    s1, s2, s3 = (site.made[k].id for k in ("s1", "s2", "s3"))
    form = (await c.get("/rec/api/qa/form", params={"campaign": "spring"}, headers=QA)).json()
    assert form["name"] == "spring" and [x["name"] for x in form["criteria"]] == ["greeting", "compliance"]
    assert (await c.get("/rec/api/qa/form", headers=QA)).json()["name"] == "default"

    unknown = await c.post(f"/rec/api/recordings/{s1}/qa", json={"scores": {"greeting": 1, "smile": 2}}, headers=QA)
    assert unknown.status_code == 422
    detail = unknown.json()["detail"][0]
    assert detail["loc"] == ["body", "scores", "smile"] and detail["msg"].startswith("scores.smile: unknown criterion")
    out_of_scale = await c.post(
        f"/rec/api/recordings/{s1}/qa", json={"scores": {"greeting": 7, "compliance": 2}}, headers=QA
    )
    assert out_of_scale.status_code == 422
    assert out_of_scale.json()["detail"][0]["msg"] == "scores.greeting: 7 is outside the scale; use 0 to 4"
    not_json = await c.post(f"/rec/api/recordings/{s1}/qa", json={"score": {}}, headers=QA)
    assert not_json.status_code == 422 and not_json.json()["detail"][0]["loc"] == ["body", "scores"]
    no_csrf = {k: v for k, v in QA.items() if k != "x-csrf-token"}
    forbidden = await c.post(f"/rec/api/recordings/{s1}/qa", json={"scores": {}}, headers=no_csrf)
    assert forbidden.status_code == 403
    unknown_recording = await c.post("/rec/api/recordings/zz/qa", json={"scores": {}}, headers=QA)
    assert unknown_recording.status_code == 404

    for rid, scores in [
        (s1, {"greeting": 4, "compliance": 2}),  # (4 + 6) / 16 = 62.5 %
        (s2, {"greeting": 2, "compliance": 4}),  # (2 + 12) / 16 = 87.5 %
        (s3, {"greeting": 1, "compliance": 1}),  # (1 + 3) / 16 = 25 %
    ]:
        created = await c.post(f"/rec/api/recordings/{rid}/qa", json={"scores": scores, "comments": "ok"}, headers=QA)
        assert created.status_code == 201, created.text
    assert created.json()["total"] == 25.0 and created.json()["scorer"] == "qa1"
    report = (await c.get("/rec/api/qa/report", headers=QA)).json()
    assert report == [
        {"agent_id": "a1", "count": 2, "average": 75.0, "lowest": 62.5, "highest": 87.5},
        {"agent_id": "a2", "count": 1, "average": 25.0, "lowest": 25.0, "highest": 25.0},
    ]
    detail_of_s1 = (await c.get(f"/rec/api/recordings/{s1}", headers=QA)).json()
    assert [s["total"] for s in detail_of_s1["scores"]] == [62.5]


async def test_survey_report_per_agent_and_campaign(site: Site) -> None:
    now = datetime(2026, 3, 2, 12, tzinfo=UTC)
    async with site.db() as session, session.begin():
        for call_id, answer, agent, campaign in [
            ("c1", 1, "a1", "spring"),
            ("c2", 3, "a1", "spring"),
            ("c3", 2, "a2", "summer"),
        ]:
            await store_survey_answer(session, call_id, answer, now=now, agent_id=agent, campaign=campaign)
    per_agent = (await site.client.get("/rec/api/surveys/report", headers=QA)).json()
    assert [(r["key"], r["answers"], r["satisfied"], r["unsatisfied"]) for r in per_agent] == [
        ("a1", 2, 1, 1),
        ("a2", 1, 0, 0),
    ]
    assert per_agent[0]["satisfied_rate"] == 0.5 and per_agent[0]["mean"] == 2.0
    per_campaign = (await site.client.get("/rec/api/surveys/report", params={"by": "campaign"}, headers=QA)).json()
    assert [(r["key"], r["answers"]) for r in per_campaign] == [("spring", 2), ("summer", 1)]
    assert (await site.client.get("/rec/api/surveys/report", params={"by": "x"}, headers=QA)).status_code == 422


async def test_qa_page_and_openapi(site: Site) -> None:
    page = await site.client.get("/rec/qa", headers=QA)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    html = page.text
    assert "<audio" in html and 'data-search-url="http://console/rec/api/recordings"' in html
    assert '<meta name="csrf-token" content="tok">' in html and "qa1" in html
    assert (await site.client.get("/rec/qa")).status_code == 401
    schema = (await site.client.get("/openapi.json")).json()
    assert {
        "/rec/api/recordings",
        "/rec/api/recordings/{recording_id}/audio",
        "/rec/api/recordings/{recording_id}/qa",
        "/rec/api/qa/report",
        "/rec/api/surveys/report",
    } <= set(schema["paths"])
