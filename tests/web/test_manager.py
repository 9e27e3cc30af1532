"""Manager and agent pages over HTTP: list upload, campaign settings, reports, dispositions, callbacks."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from acd import AgentState, AgentStateChanged, CallConnected, CallQueued
from dialer.lists.importer import import_list
from dialer.models import CallAttempt, Campaign, Contact, Lead
from tests.web.conftest import Console, build_console, login

# dialer.dnc and dialer.lists.importer still call Result.tuples(), deprecated in SQLAlchemy 2.1;
# drop this filter when they iterate the rows directly.
TUPLES_DEPRECATED = pytest.mark.filterwarnings("ignore:The Result.tuples:sqlalchemy.exc.SADeprecationWarning")

CSV = (
    "phone,name,city\n"
    "13800138000,Wang Wei,Beijing\n"
    "+86 138 0013 8001,Li Na,Shanghai\n"
    "12345,Too Short,Nowhere\n"
    "13800138000,Wang Wei,Beijing\n"
    ",,\n"
    "13900139000,Zhao Lei,Chengdu\n"
)


@TUPLES_DEPRECATED
async def test_upload_gives_the_same_summary_and_rejects_as_the_cli_importer(console: Console, tmp_path: Path) -> None:
    await console.add_campaign("spring", region="CN")
    source = tmp_path / "cli" / "leads.csv"
    source.parent.mkdir()
    source.write_text(CSV, encoding="utf-8")

    reference = await build_console(tmp_path / "reference")
    try:
        await reference.add_campaign("spring", region="CN")
        expected = await import_list(reference.sessionmaker, source, campaign="spring")
    finally:
        reference.backend.close()
        await reference.engine.dispose()

    async with console.client() as client:
        token = await login(client, "mia")
        response = await client.post(
            "/api/lists/upload",
            data={"campaign": "spring"},
            files={"file": ("leads.csv", CSV.encode(), "text/csv")},
            headers={"X-CSRF-Token": token},
        )
        assert response.status_code == 200, response.text
        got = response.json()
        for key in ("read", "imported", "merged", "rejected", "dnc_suppressed", "contacts_created", "columns"):
            assert got[key] == getattr(expected, key), key
        assert got["list_name"] == expected.list_name == "leads"
        assert got["rejected"] == 1
        rejects = await client.get(got["rejects_url"])
        assert rejects.status_code == 200
        assert expected.rejects_file is not None
        assert rejects.content == Path(expected.rejects_file).read_bytes()

        # The page shows the same counts.
        page = await client.get("/manager/lists/upload")
        form_token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert form_token is not None
        response = await client.post(
            "/manager/lists/upload",
            data={"campaign": "spring", "csrf_token": form_token.group(1), "list_name": "again"},
            files={"file": ("leads.csv", CSV.encode(), "text/csv")},
        )
        assert response.status_code == 200
        assert 'data-count="merged">4<' in response.text  # everything is already a lead of the campaign


async def test_upload_errors_are_shown_not_raised(console: Console) -> None:
    await console.add_campaign("spring", region="CN")
    async with console.client() as client:
        token = await login(client, "mia")
        response = await client.post(
            "/api/lists/upload",
            data={"campaign": "nope"},
            files={"file": ("leads.csv", CSV.encode(), "text/csv")},
            headers={"X-CSRF-Token": token},
        )
        assert response.status_code == 404
        assert "no campaign named 'nope'" in response.json()["message"]
        response = await client.post(
            "/api/lists/upload",
            data={"campaign": "spring"},
            files={"file": ("leads.csv", b"\x00\x01\x02binary", "application/octet-stream")},
            headers={"X-CSRF-Token": token},
        )
        assert response.status_code == 400
        assert response.json()["message"]
        agent = await login(client, "alice")
        response = await client.post(
            "/api/lists/upload",
            data={"campaign": "spring"},
            files={"file": ("leads.csv", CSV.encode(), "text/csv")},
            headers={"X-CSRF-Token": agent},
        )
        assert response.status_code == 403


async def test_campaign_form_shows_errors_per_field_and_saves_good_values(console: Console) -> None:
    await console.add_campaign("spring")
    async with console.client() as client:
        await login(client, "mia")
        page = await client.get("/manager/campaigns/spring")
        assert page.status_code == 200
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token is not None
        fields = dict(re.findall(r'<input id="f-[^"]+" name="([^"]+)" value="([^"]*)"', page.text))
        dispositions = re.search(r'name="dispositions"[^>]*>([^<]*)</textarea>', page.text)
        dayparts = re.search(r'name="dayparts"[^>]*>([^<]*)</textarea>', page.text)
        assert dispositions is not None and dayparts is not None
        form = {
            **fields,
            "csrf_token": token.group(1),
            "pacing.mode": "predictive",
            "recording.policy": "all",
            "window.holidays": "on",
            "dispositions": dispositions.group(1),
            "dayparts": dayparts.group(1),
        }
        bad = {**form, "pacing.max_lines": "lots", "window.default": "21:00-09:00", "pacing.ring_timeout_seconds": "5"}
        response = await client.post("/manager/campaigns/spring", data=bad)
        assert response.status_code == 422
        errors = dict(
            re.findall(
                r'data-field="([^"]+)">(?:(?!data-field).)*?<p class="field-error"[^>]*>([^<]+)</p>',
                response.text,
                re.S,
            )
        )
        assert set(errors) == {"pacing.max_lines", "window.default", "pacing.ring_timeout_seconds"}
        assert "valid integer" in errors["pacing.max_lines"]
        assert "end must be after the start" in errors["window.default"]
        assert "greater than or equal to 15" in errors["pacing.ring_timeout_seconds"]
        assert 'value="lots"' in response.text  # what the manager typed stays in the form

        good = {
            **form,
            "pacing.max_lines": "45",
            "daily_target": "120",
            "dispositions": form["dispositions"] + "\nVOICEMAIL | Left a voicemail | final",
        }
        response = await client.post("/manager/campaigns/spring", data=good)
        assert response.status_code == 303
    async with console.sessionmaker() as session:
        campaign = (await session.execute(select(Campaign).where(Campaign.name == "spring"))).scalar_one()
        assert campaign.settings["pacing"]["max_lines"] == 45
        assert campaign.settings["daily_target"] == 120
        assert [d["code"] for d in campaign.settings["dispositions"]][-1] == "VOICEMAIL"


async def test_campaign_settings_api_rejects_bad_fields_by_name(console: Console) -> None:
    await console.add_campaign("spring")
    async with console.client() as client:
        token = await login(client, "mia")
        current = (await client.get("/api/campaigns/spring")).json()["settings"]
        current["pacing"]["target_abandon_rate"] = 0.2
        response = await client.put("/api/campaigns/spring/settings", json=current, headers={"X-CSRF-Token": token})
        assert response.status_code == 422
        assert "field 'pacing.target_abandon_rate'" in response.json()["message"]
        assert "less than or equal to 0.03" in response.json()["message"]
        current["pacing"]["target_abandon_rate"] = 0.02
        response = await client.put("/api/campaigns/spring/settings", json=current, headers={"X-CSRF-Token": token})
        assert response.status_code == 200
        assert response.json()["settings"]["pacing"]["target_abandon_rate"] == 0.02


async def _seed_cdrs(console: Console) -> datetime:
    """Calls of one Shanghai day: agent 1001 makes 3 effective calls, 1002 one short call; one abandon."""
    campaign_id = await console.add_campaign("spring", daily_target=4)
    day = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
    async with console.sessionmaker() as session:
        contact = Contact(phone="+8613800138000", name="Wang Wei", timezones=["Asia/Shanghai"])
        session.add(contact)
        await session.flush()
        rows = [
            ("1001", 0, "SALE", 120.0, "completed"),
            ("1001", 10, "NOT_INTERESTED", 40.0, "completed"),
            ("1001", 20, "INTERESTED", 16.0, "completed"),
            ("1001", 30, "SALE", 5.0, "completed"),  # too short to be effective
            ("1002", 40, "WRONG_NUMBER", 30.0, "completed"),
            (None, 50, None, None, "abandoned"),
            (None, 60 * 7, None, None, "no_answer"),
        ]
        for agent, minutes, code, talk, outcome in rows:
            at = day + timedelta(minutes=minutes)
            answered = outcome in ("completed", "abandoned")
            session.add(
                CallAttempt(
                    call_id=f"c{minutes}", contact_id=contact.id, campaign_id=campaign_id, number=contact.phone,
                    dialled_at=at, answered_at=at + timedelta(seconds=5) if answered else None,
                    bridged_at=at + timedelta(seconds=6) if agent else None, ended_at=at + timedelta(minutes=3),
                    outcome=outcome, agent_id=agent, disposition=code, talk_seconds=talk,
                )
            )  # fmt: skip
        await session.commit()
    return day


async def test_agent_sees_the_customer_sets_a_disposition_and_schedules_a_callback(console: Console) -> None:
    await _seed_cdrs(console)
    async with console.sessionmaker() as session:
        contact = (await session.execute(select(Contact))).scalar_one()
        campaign = (await session.execute(select(Campaign))).scalar_one()
        lead = Lead(campaign_id=campaign.id, contact_id=contact.id, status="dialing")
        session.add(lead)
        await session.flush()
        now = datetime.now(UTC)
        session.add(
            CallAttempt(
                call_id="live-1", lead_id=lead.id, contact_id=contact.id, campaign_id=campaign.id, number=contact.phone,
                dialled_at=now, answered_at=now, bridged_at=now, agent_id="1001", outcome=None,
            )
        )  # fmt: skip
        await session.commit()
        lead_id = lead.id
    bus = console.bus
    bus.publish(AgentStateChanged(at=1.0, agent_id="1001", old=AgentState.LOGGED_OUT, new=AgentState.READY))
    bus.publish(CallQueued(at=1.0, call_id="live-1", queue="spring", position=1))
    bus.publish(
        CallConnected(
            at=2.0, call_id="live-1", queue="spring", agent_id="1001", hold_s=1, ring_s=1, original_position=1
        )
    )
    bus.publish(
        AgentStateChanged(at=2.0, agent_id="1001", old=AgentState.READY, new=AgentState.ON_CALL, call_id="live-1")
    )
    async with console.client() as client:
        token = await login(client, "alice")
        me = (await client.get("/api/agent")).json()
        assert me["agent"]["state"] == "on_call"
        customer = me["customer"]
        assert customer["name"] == "Wang Wei"
        assert customer["campaign"] == "spring"
        assert len(customer["history"]) == 7
        assert "SALE" in [d["code"] for d in customer["dispositions"]]
        page = await client.get("/agent")
        assert "Wang Wei" in page.text and 'value="SALE"' in page.text

        headers = {"X-CSRF-Token": token}
        response = await client.post(
            "/api/agent/disposition", json={"call_id": "live-1", "code": "BOGUS"}, headers=headers
        )
        assert response.status_code == 409
        assert "use one of SALE" in response.json()["message"]
        response = await client.post(
            "/api/agent/disposition",
            json={"call_id": "live-1", "code": "interested", "notes": "wants a quote"},
            headers=headers,
        )
        assert response.status_code == 200

        response = await client.post(
            "/api/agent/callback", json={"lead_id": lead_id, "at_local": "2020-01-01T10:00"}, headers=headers
        )
        assert response.status_code == 409
        assert "in the past" in response.json()["message"]
        when = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT15:30")
        response = await client.post(
            "/api/agent/callback", json={"lead_id": lead_id, "at_local": when}, headers=headers
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["timezone"] == "Asia/Shanghai" and body["owner"] == "1001"
        assert body["due_at_utc"].endswith("07:30:00Z")  # 15:30 in Shanghai
    async with console.sessionmaker() as session:
        attempt = (await session.execute(select(CallAttempt).where(CallAttempt.call_id == "live-1"))).scalar_one()
        assert (attempt.disposition, attempt.disposition_note) == ("INTERESTED", "wants a quote")
        saved = await session.get(Lead, lead_id)
        assert saved is not None
        assert (saved.status, saved.callback_owner, saved.last_disposition) == ("callback", "1001", "INTERESTED")
    assert console.live.agents["1001"].last_disposition == "INTERESTED"
