"""Caller ID and trunk per campaign under the runner service: a campaign dials through the trunk its
``trunk`` setting names and always presents its caller ID; a campaign without a caller ID or
naming an unknown trunk is not started, with an error naming the setting to fix.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import update

from dialer.models import Campaign
from dialer.runner import CampaignRunner, RunnerConfigError, RunnerService, TrunkLines, TrunkRoute
from tests.integration.test_runner_calls import FAST, HOST, World, _finished, until, world

pytestmark = pytest.mark.timeout(60)


def _service(w: World, pool: object, trunks: dict[str, TrunkRoute] | None = None, **kw: object) -> RunnerService:
    return RunnerService(
        sessionmaker=w.sm,
        ua=pool.ua,  # type: ignore[attr-defined]
        pool_for=lambda _row: pool,  # type: ignore[arg-type,return-value]
        trunks=trunks,
        node="node-a",
        clock=w.clock,
        timers=FAST,
        **kw,  # type: ignore[arg-type]
    )


async def test_each_campaign_dials_through_its_trunk_and_bad_settings_are_refused(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        number = "+442071230080"
        w.customers.behaviour = {number: "busy"}
        good = await w.campaign("good", trunk="carrier-b")
        unknown = await w.campaign("unknown-trunk", trunk="carrier-z")
        no_cid = await w.campaign("no-caller-id", trunk="carrier-b")
        async with w.sm() as session, session.begin():
            await session.execute(
                update(Campaign)
                .where(Campaign.id == no_cid)
                .values(settings={"timezone": "Europe/London", "trunk": "carrier-b"})
            )
        (lead,) = await w.leads(good, [number])
        idle_a = await w.leads(unknown, ["+442071230081"])
        idle_b = await w.leads(no_cid, ["+442071230082"])
        pool = await w.pool({"a1": "answer"})
        # carrier-a points nowhere: a call through it would never reach the customers' UA.
        trunks = {
            "carrier-a": TrunkRoute(f"sip:{{number}}@{HOST}:9", TrunkLines(5)),
            "carrier-b": TrunkRoute(f"sip:{{number}}@{HOST}:{w.customers.ua.port}", TrunkLines(5), "carrier-b.example"),
        }
        service = _service(w, pool, trunks)
        await service.start()
        try:
            await until(lambda: _finished(w, [lead]), 15, "the good campaign's call")
            assert set(service.runners) == {good}
            assert len(w.customers.calls) == 1
            invite = w.customers.calls[0].headers
            assert invite is not None and "+442071230000" in (invite.get("from") or "")
            assert "<sip:+442071230000@carrier-b.example>" in (invite.get("p-asserted-identity") or "")
            assert service.runners[good].trunk is trunks["carrier-b"].lines
            why_trunk = service.refused[unknown][1]
            assert "trunk = 'carrier-z'" in why_trunk and "'carrier-a', 'carrier-b'" in why_trunk
            assert "caller_id" in service.refused[no_cid][1] and "E.164" in service.refused[no_cid][1]
            assert {(await w.lead(i)).status for i in (*idle_a, *idle_b)} == {"ready"}, "never dialled"
        finally:
            await service.stop()


async def test_one_trunk_an_unknown_name_is_a_config_error_and_no_fallback_caller_id(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        cid = await w.campaign("elsewhere", trunk="carrier-x")
        pool = await w.pool({"a1": "answer"})
        service = _service(w, pool, trunk_uri=f"sip:{{number}}@{HOST}:{w.customers.ua.port}")
        await service.start()
        try:
            why = service.refused[cid][1]
            assert "one trunk, 'default'" in why and "set the campaign's trunk to 'default'" in why
            assert cid not in service.runners
        finally:
            await service.stop()
        # The runner on its own refuses to start without a caller ID: it never falls back to the UA's user.
        async with w.sm() as session, session.begin():
            await session.execute(update(Campaign).where(Campaign.id == cid).values(settings={}))
        runner = CampaignRunner(
            cid, sessionmaker=w.sm, ua=pool.ua, agents=pool, trunk_uri="sip:{number}@127.0.0.1:9", clock=w.clock
        )
        with pytest.raises(RunnerConfigError, match="has no caller_id"):
            await runner.start()
