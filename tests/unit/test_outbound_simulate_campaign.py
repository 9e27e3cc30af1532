"""`dialer simulate --campaign NAME`: the scenario fitted from the campaign's CDRs in the database
(answer probability, ring, talk and wrap-up times, its abandon target and ring timeout, its lists
and callee zones), and the estimators warmed with the same rows."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from acd.models import QueueLogRow
from dialer.campaigns import CampaignSettings, create_campaign
from dialer.commands import simulate as simulate_cmd
from dialer.models import CallAttempt, CallList, Contact, Lead, LeadStatus
from dialer.simulator import fit_from_history
from infra.db import create_engine, create_sessionmaker, migrate
from infra.settings import load_settings

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


async def _seed(url: str) -> dict[str, int]:
    engine = create_engine(url)
    await migrate(engine)
    sm = create_sessionmaker(engine)
    rng = random.Random(5)
    ids: dict[str, int] = {}
    async with sm() as session, session.begin():
        settings = CampaignSettings.model_validate(
            {
                "timezone": "Europe/London",
                "caller_id": "+442079460000",
                "pacing": {"target_abandon_rate": 0.02, "ring_timeout_seconds": 20, "max_lines": 40},
            }
        )
        campaign = await create_campaign(session, "renewals", settings, now=T0)
        for name, zone, answer_rate in (("uk", "Europe/London", 0.6), ("ny", "America/New_York", 0.2)):
            lst = CallList(campaign_id=campaign.id, name=name, status="ready")
            session.add(lst)
            await session.flush()
            ids[name] = lst.id
            for i in range(30):
                contact = Contact(phone=f"+44207946{ids[name]:02d}{i:02d}", timezones=[zone])
                session.add(contact)
                await session.flush()
                lead = Lead(
                    campaign_id=campaign.id, contact_id=contact.id, list_id=lst.id,
                    status=LeadStatus.READY if i % 3 else LeadStatus.DONE, next_attempt_at=T0, created_at=T0,
                )  # fmt: skip
                session.add(lead)
                await session.flush()
                dialled = T0 + timedelta(minutes=i)
                call_id = f"call-{name}-{i}"
                if i < 30 * answer_rate:
                    ring, talk = rng.uniform(3, 9), rng.lognormvariate(4.5, 0.5)
                    answered = dialled + timedelta(seconds=ring)
                    row = CallAttempt(
                        call_id=call_id, lead_id=lead.id, contact_id=contact.id, campaign_id=campaign.id,
                        number=contact.phone, dialled_at=dialled, answered_at=answered, bridged_at=answered,
                        ended_at=answered + timedelta(seconds=talk), outcome="completed", sip_status=200,
                        talk_seconds=talk, agent_id="a1",
                    )  # fmt: skip
                    session.add(
                        QueueLogRow(time=dialled, call_id=call_id, queue="sales", agent="a1", event="WRAPUPEND",
                                    data1="12.0", data2="0")
                    )  # fmt: skip
                elif i % 2:
                    row = CallAttempt(
                        call_id=call_id, lead_id=lead.id, contact_id=contact.id, campaign_id=campaign.id,
                        number=contact.phone, dialled_at=dialled, ended_at=dialled + timedelta(seconds=20),
                        outcome="no_answer", sip_status=487,
                    )  # fmt: skip
                else:
                    row = CallAttempt(
                        call_id=call_id, lead_id=lead.id, contact_id=contact.id, campaign_id=campaign.id,
                        number=contact.phone, dialled_at=dialled, ended_at=dialled + timedelta(seconds=1),
                        outcome="busy", sip_status=486,
                    )  # fmt: skip
                session.add(row)
        ids["campaign"] = campaign.id
    await engine.dispose()
    return ids


@pytest.fixture
def seeded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    monkeypatch.setenv("DIALER_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("DIALER_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    return asyncio.run(_seed(load_settings(None).database_url))


def test_the_scenario_is_fitted_from_the_campaigns_cdrs(seeded: dict[str, int]) -> None:
    rows, fixed = simulate_cmd._campaign_history("renewals", None, days=0)
    assert len(rows) == 60
    assert {r["list_id"] for r in rows} == {seeded["uk"], seeded["ny"]}
    assert {r["local_hour"] for r in rows if r["list_id"] == seeded["ny"]} == {4}, "09:00 UTC is 04:00 in New York"
    params = fit_from_history(rows, agents=4, hours=0.25, **fixed)
    assert params.answer_prob == pytest.approx(24 / 60)
    assert params.wrapup_s == pytest.approx(12.0), "wrap-up from the ACD's WRAPUPEND rows"
    assert 3 <= params.ring_mean_s <= 9 and len(params.ring_samples) == 24
    assert params.talk_mean_s == pytest.approx(2.718**4.62, rel=0.25)
    assert (params.target_abandon_rate, params.ring_timeout_s, params.max_lines) == (0.02, 20.0, 40)
    # Who is dialled: the campaign's lists and callee zones, in proportion to the leads left.
    assert set(params.lead_mix) == {(seeded["uk"], "Europe/London"), (seeded["ny"], "America/New_York")}


def test_an_unknown_campaign_is_one_line(seeded: dict[str, int]) -> None:
    res = CliRunner().invoke(simulate_cmd.app, ["--campaign", "nope", "--json"])
    assert res.exit_code == 1 and "no campaign named 'nope'" in res.output


def test_dialer_simulate_campaign_starts_the_estimators_warm(
    seeded: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}
    real = simulate_cmd.compare

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.update(kwargs)
        seen["params"] = args[0]
        return real(*args, **kwargs)

    monkeypatch.setattr(simulate_cmd, "compare", spy)
    res = CliRunner().invoke(
        simulate_cmd.app,
        ["--campaign", "renewals", "--days", "0", "--agents", "4", "--hours", "0.25", "--seeds", "1",
         "--algorithms", "progressive,predictive", "--json"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    figures = json.loads(res.stdout)
    assert set(figures) == {"progressive", "predictive"} and figures["progressive"]["answered_human"] > 0
    history = seen["history"]
    assert history is not None and len(history) == 60, "the fitted rows warm every run's estimators"
    assert seen["params"].target_abandon_rate == 0.02
    from dialer.simulator import PacingEstimators

    warm = PacingEstimators.from_history(history).answers
    assert warm.probability(seeded["uk"], 9) > warm.probability(seeded["ny"], 4), "per list and callee hour"
    both = CliRunner().invoke(
        simulate_cmd.app, ["--campaign", "renewals", "--history", "x.csv"], env={"COLUMNS": "200"}
    )
    assert both.exit_code != 0 and "not both" in both.output
