"""The live answer probability over real SIP: every finished dial is learned (busy and no answer
too, not only answers), keyed by the lead's list and the callee's local hour; the pacing snapshot
reads the probability of the leads about to be dialled; history warm-up carries list and hour.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import update

from dialer import runner_store as store
from dialer.campaigns import set_campaign_status
from dialer.models import CallList, CampaignStatus, Lead
from dialer.runner import default_node
from dialer.simulator import PacingEstimators
from tests.integration.test_runner_calls import World, _finished, until, world

pytestmark = pytest.mark.timeout(90)

PRIOR = PacingEstimators().answers.probability()  # what a runner knows before any call


async def _list(w: World, campaign_id: int, name: str) -> int:
    async with w.sm() as session, session.begin():
        row = CallList(campaign_id=campaign_id, name=name, status="ready")
        session.add(row)
        await session.flush()
        return int(row.id)


async def _into_list(w: World, lead_ids: list[int], list_id: int) -> None:
    async with w.sm() as session, session.begin():
        await session.execute(update(Lead).where(Lead.id.in_(lead_ids)).values(list_id=list_id))


async def test_busy_and_no_answer_lower_the_estimate_and_each_list_learns_its_own_rate(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        cold = [f"+4420712302{i:02d}" for i in range(6)]
        silent = "+442071230299"
        warm = [f"+4420712303{i:02d}" for i in range(4)]
        w.customers.behaviour = {**dict.fromkeys(cold, "busy"), silent: "ring_forever", **dict.fromkeys(warm, "answer")}
        w.customers.talk_s = 0.3
        # The campaign's own zone is Shanghai (18:00 there): the hour learned must be the CALLEE's (10:00 London).
        cid = await w.campaign(timezone="Asia/Shanghai", pacing={"mode": "progressive", "ring_timeout_seconds": 15})
        list_cold, list_warm = await _list(w, cid, "cold"), await _list(w, cid, "warm")
        cold_leads = await w.leads(cid, [*cold, silent])
        warm_leads = await w.leads(cid, warm)
        await _into_list(w, cold_leads, list_cold)
        await _into_list(w, warm_leads, list_warm)
        pool = await w.pool({f"a{i}": "answer" for i in range(4)})
        runner = await w.runner(cid, pool)
        await until(lambda: _finished(w, cold_leads + warm_leads), 40, "every lead to be dialled once")
        outcomes = sorted(r.outcome or "" for r in await w.cdrs())
        assert outcomes == ["busy"] * 6 + ["completed"] * 4 + ["no_answer"], outcomes

        answers = runner.estimators.answers
        # The 6 busy and the 1 unanswered dial were learned (they used to be dropped).
        assert answers.attempts(list_cold) == pytest.approx(7, abs=0.1)
        assert answers.attempts(list_warm) == pytest.approx(4, abs=0.1)
        p_cold, p_warm = answers.probability(list_cold, 10), answers.probability(list_warm, 10)
        assert p_cold < answers.probability(list_cold) < PRIOR < answers.probability(list_warm) < p_warm
        # Keyed by the callee's hour (10:00 London), not the campaign zone's (18:00 Shanghai).
        assert answers.probability(list_cold, 18) == pytest.approx(answers.probability(list_cold))

        # The pacing snapshot uses the leads about to be dialled: pause, then queue cold leads only ...
        async with w.sm() as session, session.begin():
            await set_campaign_status(session, "c1", CampaignStatus.PAUSED)
        await until(lambda: runner.status == CampaignStatus.PAUSED, 3, "the pause")
        more_cold = await w.leads(cid, [f"+4420712304{i:02d}" for i in range(3)])
        await _into_list(w, more_cold, list_cold)
        await runner.refresh_due_mix()
        now = w.clock()
        hour = now.astimezone(ZoneInfo("Europe/London")).hour
        only_cold = runner.snapshot(now).answer_probability
        assert only_cold == pytest.approx(answers.probability(list_cold, hour))
        # ... then as many warm ones: the mean of both lists' rates.
        more_warm = await w.leads(cid, [f"+4420712305{i:02d}" for i in range(3)])
        await _into_list(w, more_warm, list_warm)
        await runner.refresh_due_mix()
        mixed = runner.snapshot(now).answer_probability
        expected = (answers.probability(list_cold, hour) + answers.probability(list_warm, hour)) / 2
        assert mixed == pytest.approx(expected) and only_cold < mixed

        # History warm-up carries the list and the callee's local hour, so a restarted runner starts warm.
        rows = await store.recent_attempts(w.sm, cid, default_zone="Asia/Shanghai")
        assert len(rows) == 11 and {r["local_hour"] for r in rows} == {10}
        assert {r["list_id"] for r in rows} == {list_cold, list_warm}
        warmed = PacingEstimators.from_history(rows).answers
        # (equal up to the exponential decay, which depends on the order attempts ended in)
        assert warmed.probability(list_cold, 10) == pytest.approx(p_cold, rel=1e-3)
        assert warmed.probability(list_warm, 10) == pytest.approx(p_warm, rel=1e-3)


async def test_start_up_releases_only_dead_claims(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        cid = await w.campaign()
        async with w.sm() as session, session.begin():
            await set_campaign_status(session, "c1", CampaignStatus.PAUSED)  # nothing is dialled here
        mine, other_live, other_dead, idle = await w.leads(cid, [f"+4420712306{i:02d}" for i in range(4)])
        now = w.clock()
        async with w.sm() as session, session.begin():
            for lead_id, node, claimed_at in (
                (mine, "node-a", now - timedelta(minutes=1)),  # this node id's own: a crashed earlier run
                (other_live, "node-b", now - timedelta(minutes=3)),  # another live process's call in progress
                (other_dead, "node-b", now - timedelta(hours=5)),  # older than any call lasts (15 s ring + 4 h)
            ):
                await session.execute(
                    update(Lead)
                    .where(Lead.id == lead_id)
                    .values(status="dialing", claimed_by=node, claimed_at=claimed_at)
                )
        pool = await w.pool({"a1": "answer"})
        await w.runner(cid, pool, node="node-a")
        states = {i: ((await w.lead(i)).status, (await w.lead(i)).claimed_by) for i in (mine, other_live, other_dead)}
        assert states == {mine: ("ready", None), other_live: ("dialing", "node-b"), other_dead: ("ready", None)}
        assert (await w.lead(idle)).status == "ready"
        # The store call itself, with no staleness given: only this node's own claims.
        assert await store.release_node_claims(w.sm, "node-b", now, campaign_id=cid) == 1
        assert (await w.lead(other_live)).status == "ready"


def test_node_ids_are_unique_per_process_and_fit_the_column() -> None:
    import os
    import socket

    a, b = default_node("site"), default_node("site")
    assert a != b, "a random part keeps two runs (or a recycled pid) apart"
    assert f":{os.getpid()}:" in a and socket.gethostname()[:20] in a and a.startswith("site:")
    assert len(default_node("x" * 100)) <= 64
