"""The dialer's claim query and campaign storage, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from dialer.campaigns import (
    CampaignError,
    CampaignSettings,
    DispositionCode,
    create_campaign,
    get_campaign,
    list_campaigns,
    set_campaign_status,
)
from dialer.leads import claim_leads, export_leads, release_stale_claims
from dialer.lists import import_list
from dialer.models import CampaignStatus, Disposition, Lead, LeadStatus
from tests.storage.conftest import Db

NOW = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)


async def campaign_with_leads(db: Db, tmp_path: Path, rows: int, *, active: bool = True) -> int:
    async with db.sessionmaker() as s, s.begin():
        campaign = await create_campaign(
            s,
            "sales",
            CampaignSettings(region="CN"),
            status=CampaignStatus.ACTIVE if active else CampaignStatus.PAUSED,
        )
        campaign_id = campaign.id
    path = tmp_path / "list.csv"
    path.write_text("phone,vip\n" + "".join(f"1380013{i:04d},{'yes' if i % 10 == 0 else 'no'}\n" for i in range(rows)))
    await import_list(db.sessionmaker, path, campaign="sales", now=NOW - timedelta(minutes=5))
    return campaign_id


async def test_claim_marks_dialing_and_returns_vip_first(db: Db, tmp_path: Path) -> None:
    campaign_id = await campaign_with_leads(db, tmp_path, 30)
    async with db.sessionmaker() as s, s.begin():
        first = await claim_leads(s, campaign_id, NOW, 5, node="node-a")
    assert len(first) == 5
    assert [lead.priority for lead in first[:3]] == [10, 10, 10]
    assert first[0].number.startswith("+86138") and first[0].timezones == ("Asia/Shanghai",)
    async with db.sessionmaker() as s:
        claimed = (await s.execute(select(Lead).where(Lead.id.in_([c.lead_id for c in first])))).scalars().all()
    assert {lead.status for lead in claimed} == {LeadStatus.DIALING}
    assert {lead.claimed_by for lead in claimed} == {"node-a"}
    async with db.sessionmaker() as s, s.begin():
        rest = await claim_leads(s, campaign_id, NOW, 100)
    assert len(rest) == 25
    assert not {c.lead_id for c in first} & {c.lead_id for c in rest}


async def test_not_claimed_when_paused_not_due_or_pending(db: Db, tmp_path: Path) -> None:
    campaign_id = await campaign_with_leads(db, tmp_path, 4, active=False)
    async with db.sessionmaker() as s:
        assert await claim_leads(s, campaign_id, NOW, 10) == []
    async with db.sessionmaker() as s, s.begin():
        await set_campaign_status(s, "sales", CampaignStatus.ACTIVE)
        await s.execute(update(Lead).where(Lead.id == 1).values(next_attempt_at=NOW + timedelta(hours=1)))
        await s.execute(update(Lead).where(Lead.id == 2).values(status=LeadStatus.PENDING))
    async with db.sessionmaker() as s, s.begin():
        got = await claim_leads(s, campaign_id, NOW, 10)
    assert sorted(c.lead_id for c in got) == [3, 4]


async def test_stale_claims_are_released(db: Db, tmp_path: Path) -> None:
    campaign_id = await campaign_with_leads(db, tmp_path, 3)
    async with db.sessionmaker() as s, s.begin():
        await claim_leads(s, campaign_id, NOW, 3)
    async with db.sessionmaker() as s, s.begin():
        assert await release_stale_claims(s, NOW + timedelta(minutes=1), timedelta(minutes=10)) == 0
        assert await release_stale_claims(s, NOW + timedelta(minutes=30), timedelta(minutes=10)) == 3
    async with db.sessionmaker() as s, s.begin():
        assert len(await claim_leads(s, campaign_id, NOW + timedelta(minutes=30), 10)) == 3


async def test_concurrent_claimers_never_get_the_same_lead(db: Db, tmp_path: Path) -> None:
    if db.backend != "postgresql":
        pytest.skip("SQLite has one writer; concurrency across nodes is a PostgreSQL matter")
    campaign_id = await campaign_with_leads(db, tmp_path, 400)
    got: dict[str, list[int]] = {"a": [], "b": [], "c": []}

    async def node(name: str) -> None:
        while True:
            async with db.sessionmaker() as s, s.begin():
                leads = await claim_leads(s, campaign_id, NOW, 7, node=name)
                # Hold the locks a little so the other nodes really run into them.
                await asyncio.sleep(0.001)
            if not leads:
                return
            got[name].extend(lead.lead_id for lead in leads)

    await asyncio.gather(*(node(n) for n in got))
    everything = [i for ids in got.values() for i in ids]
    assert len(everything) == 400
    assert len(set(everything)) == 400
    assert all(got.values())  # every node got work


async def test_campaign_lifecycle_and_dispositions(db: Db) -> None:
    settings = CampaignSettings(
        dispositions=[DispositionCode(code="sale", label="成交", success=True, final=True)],
    )
    async with db.sessionmaker() as s, s.begin():
        await create_campaign(s, "春季回访", settings)
        with pytest.raises(CampaignError, match="already exists"):
            await create_campaign(s, "春季回访")
    async with db.sessionmaker() as s, s.begin():
        campaign = await get_campaign(s, "春季回访")
        assert campaign.status == CampaignStatus.PAUSED
        rows = (await s.execute(select(Disposition).where(Disposition.campaign_id == campaign.id))).scalars().all()
        assert [(d.code, d.label, d.contact, d.success, d.final) for d in rows] == [("SALE", "成交", True, True, True)]
        await set_campaign_status(s, "春季回访", CampaignStatus.ACTIVE)
        await set_campaign_status(s, "春季回访", CampaignStatus.ARCHIVED)
        with pytest.raises(CampaignError, match="archived"):
            await set_campaign_status(s, "春季回访", CampaignStatus.ACTIVE)
        assert await list_campaigns(s) == []
        assert [c.name for c in await list_campaigns(s, include_archived=True)] == ["春季回访"]
        with pytest.raises(CampaignError, match="no campaign named 'nope'"):
            await get_campaign(s, "nope")


async def test_leads_export_round_trip(db: Db, tmp_path: Path) -> None:
    async with db.sessionmaker() as s, s.begin():
        await create_campaign(s, "sales", CampaignSettings(region="CN"))
        await create_campaign(s, "copy", CampaignSettings(region="CN"))
    src = tmp_path / "in.csv"
    src.write_text(
        "电话,备用电话,姓名,VIP,备注,城市\n13800138000,13900139000,张三,是,老客户,杭州\n13700137000,,李四,否,,\n"
    )
    await import_list(db.sessionmaker, src, campaign="sales", now=NOW)
    out = tmp_path / "export.csv"
    async with db.sessionmaker() as s:
        campaign = await get_campaign(s, "sales")
        assert await export_leads(s, campaign.id, out) == 2
        assert await export_leads(s, campaign.id, tmp_path / "none.csv", statuses=["done"]) == 0
    text = out.read_text(encoding="utf-8-sig")
    header, first = text.splitlines()[:2]
    contact_columns = "phone,phone2,phone3,phone4,name,timezone,region,segment,vip,external_id"
    assert header.startswith(contact_columns + ",城市,备注,lead_status")
    assert first.startswith("+8613800138000,+8613900139000,,,张三,Asia/Shanghai,,,yes,,杭州,老客户,ready,in,10,0,")
    again = await import_list(db.sessionmaker, out, campaign="copy", now=NOW)
    assert (again.imported, again.rejected) == (2, 0)
    assert "lead_status" not in again.columns.values()
