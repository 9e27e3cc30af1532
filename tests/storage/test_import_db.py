"""List import into a real database, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from dialer.campaigns import CampaignSettings, create_campaign, set_campaign_status
from dialer.dnc import add_dnc, import_dnc
from dialer.leads import claim_leads, export_leads, visible_lead_counts
from dialer.lists import ListFileError, import_list
from dialer.lists.importer import STALE_IMPORT_AFTER, ImportConflictError, ImportOptionError, list_state
from dialer.models import CallList, CampaignStatus, Contact, DncEntry, Lead, LeadStatus, ListStatus
from infra.db import utcnow
from tests.storage.conftest import Db

DATA = Path(__file__).resolve().parent.parent / "data"
NOW = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)


async def make_campaign(db: Db, name: str = "sales", **settings: Any) -> int:
    async with db.sessionmaker() as s, s.begin():
        campaign = await create_campaign(s, name, CampaignSettings(region="CN", **settings), now=NOW)
        return campaign.id


async def snapshot(db: Db) -> dict[str, Any]:
    """Everything an import may touch, to compare before and after."""
    async with db.sessionmaker() as s:
        contacts = (await s.execute(select(Contact.phone, Contact.name, Contact.alt_phones, Contact.attributes))).all()
        leads = (await s.execute(select(Lead.campaign_id, Lead.contact_id, Lead.status, Lead.list_id))).all()
        lists = (await s.execute(select(CallList.name, CallList.status))).all()
    return {"contacts": sorted(map(tuple, contacts), key=str), "leads": sorted(leads), "lists": sorted(lists)}


def rejects_of(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


async def test_mixed_good_and_bad_rows(db: Db, tmp_path: Path) -> None:
    await make_campaign(db)
    rejects = tmp_path / "rejects.csv"
    summary = await import_list(
        db.sessionmaker, DATA / "mixed_rows.csv", campaign="sales", rejects_path=rejects, now=NOW
    )
    # 8 data rows (the all-empty row carries nothing and is not a row).
    assert summary.read == 8
    assert (summary.imported, summary.merged, summary.rejected, summary.dnc_suppressed) == (3, 1, 4, 0)
    assert summary.consistent
    reasons = {r["name"]: r["reason"] for r in rejects_of(rejects)}
    assert set(reasons) == {"Bob", "Dave", "Eve", "Frank"}
    assert "12345" in reasons["Bob"] and "not a valid number" in reasons["Bob"]
    assert "Mars/Olympus" in reasons["Eve"]
    assert "vip" in reasons["Frank"]
    assert rejects_of(rejects)[0]["notes"] in {"too short", "", "bad zone", "bad vip"}  # original row kept
    async with db.sessionmaker() as s:
        alice = (await s.execute(select(Contact).where(Contact.phone == "+442079460958"))).scalar_one()
        carol = (await s.execute(select(Contact).where(Contact.phone == "+12125550123"))).scalar_one()
        grace = (await s.execute(select(Contact).where(Contact.phone == "+81332249999"))).scalar_one()
    assert alice.name == "Alice" and alice.vip and alice.attributes == {"notes": "good"}
    assert alice.timezones == ["Europe/London"] and alice.country == "GB"
    assert carol.alt_phones == ["+14155550199"] and carol.segment == "B"
    assert grace.timezones == ["Etc/GMT-9"]
    assert alice.created_at == NOW


async def test_gb18030_and_bom_files_with_chinese_headers(db: Db, tmp_path: Path) -> None:
    await make_campaign(db)
    rejects = tmp_path / "rejects.csv"
    one = await import_list(
        db.sessionmaker, DATA / "gb18030_chinese.csv", campaign="sales", now=NOW, rejects_path=rejects
    )
    two = await import_list(
        db.sessionmaker, DATA / "utf8_bom_semicolon.csv", campaign="sales", now=NOW, rejects_path=rejects
    )
    assert (one.imported, one.encoding) == (3, "gb18030")
    assert (two.imported, two.encoding, two.delimiter) == (2, "utf-8-sig", ";")
    async with db.sessionmaker() as s:
        zhang = (await s.execute(select(Contact).where(Contact.phone == "+8613800138001"))).scalar_one()
        liu = (await s.execute(select(Contact).where(Contact.phone == "+8613800138011"))).scalar_one()
    assert zhang.name == "张伟" and zhang.region == "北京"
    assert zhang.attributes == {"备注": "老客户，喜欢下午联系"}
    assert zhang.timezones == ["Asia/Shanghai"]
    assert liu.vip and liu.external_id == "C-1"


async def test_duplicates_merge_within_file_and_against_campaign(db: Db, tmp_path: Path) -> None:
    await make_campaign(db)
    first = tmp_path / "first.csv"
    rows = "13800138000,张三,\n138-0013-8000,,第二行\n+86 13800138000,张三丰,\n"
    first.write_text("电话,姓名,备注\n" + rows, encoding="utf-8")
    summary = await import_list(db.sessionmaker, first, campaign="sales", now=NOW, batch_size=2)
    assert (summary.read, summary.imported, summary.merged) == (3, 1, 2)
    second = tmp_path / "second.csv"
    second.write_text("phone,phone2,segment\n13800138000,13900139000,gold\n", encoding="utf-8")
    summary2 = await import_list(db.sessionmaker, second, campaign="sales", now=NOW)
    assert (summary2.imported, summary2.merged) == (0, 1)
    async with db.sessionmaker() as s:
        contacts = (await s.execute(select(Contact))).scalars().all()
        leads = (await s.execute(select(func.count()).select_from(Lead))).scalar_one()
    assert leads == 1
    [c] = contacts
    assert c.name == "张三"  # first known value wins
    assert c.attributes == {"备注": "第二行"}
    assert c.alt_phones == ["+8613900139000"] and c.segment == "gold"


async def test_reimport_is_idempotent(db: Db, tmp_path: Path) -> None:
    await make_campaign(db)
    rejects = tmp_path / "rejects.csv"
    mixed = DATA / "mixed_rows.csv"
    first = await import_list(db.sessionmaker, mixed, campaign="sales", now=NOW, rejects_path=rejects)
    before = await snapshot(db)
    again = await import_list(db.sessionmaker, mixed, campaign="sales", now=NOW, rejects_path=rejects)
    assert await snapshot(db) == before
    assert again.imported == 0
    assert again.merged == first.imported + first.merged
    assert again.rejected == first.rejected
    assert again.contacts_updated == 0


async def test_dnc_rows_are_suppressed_global_campaign_and_prefix(db: Db, tmp_path: Path) -> None:
    sales = await make_campaign(db)
    await make_campaign(db, "other")
    async with db.sessionmaker() as s, s.begin():
        await add_dnc(s, "+8613800138000")  # global number
        await add_dnc(s, "+86139*")  # global prefix
        await add_dnc(s, "15000150000", campaign_id=sales, region="CN")  # this campaign only
    path = tmp_path / "list.csv"
    path.write_text(
        "phone,phone2\n13800138000,\n13900139000,\n15000150000,\n18600186000,13900139111\n", encoding="utf-8"
    )
    rejects = tmp_path / "rej.csv"
    summary = await import_list(db.sessionmaker, path, campaign="sales", rejects_path=rejects, now=NOW)
    assert (summary.read, summary.imported, summary.dnc_suppressed) == (4, 1, 3)
    assert summary.alt_numbers_dnc_removed == 1
    reasons = [r["reason"] for r in rejects_of(rejects)]
    assert any("global DNC" in r and "+86139*" in r for r in reasons)
    assert any("campaign DNC" in r and "+8615000150000" in r for r in reasons)
    other = await import_list(db.sessionmaker, path, campaign="other", now=NOW, rejects_path=rejects)
    assert (other.imported, other.dnc_suppressed) == (2, 2)  # the campaign entry does not apply here


async def test_xlsx_import(db: Db, tmp_path: Path) -> None:
    from openpyxl import Workbook

    await make_campaign(db)
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(["客户姓名", "手机号码", "分组", "备注"])
    for i in range(25):
        ws.append([f"客户{i}", 13800138000 + i, "A", f"备注{i}"])
    ws.append(["坏号码", 123, "A", ""])
    path = tmp_path / "名单.xlsx"
    wb.save(path)
    summary = await import_list(db.sessionmaker, path, campaign="sales", now=NOW)
    assert (summary.read, summary.imported, summary.rejected) == (26, 25, 1)
    assert summary.list_name == "名单"
    async with db.sessionmaker() as s:
        c = (await s.execute(select(Contact).where(Contact.phone == "+8613800138005"))).scalar_one()
    assert (c.name, c.segment, c.attributes) == ("客户5", "A", {"备注": "备注5"})


@pytest.mark.parametrize(
    "content", [b"", b"\x00\x01\x02binary\xff" * 50, "姓名,备注\n张三,x\n".encode(), b"phone,name\n,\n\n"]
)
async def test_unreadable_file_leaves_database_unchanged(db: Db, tmp_path: Path, content: bytes) -> None:
    await make_campaign(db)
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    before = await snapshot(db)
    with pytest.raises(ListFileError) as err:
        await import_list(db.sessionmaker, path, campaign="sales", now=NOW)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    assert await snapshot(db) == before
    assert not (tmp_path / "bad.csv.rejects.csv").exists()


async def test_unknown_region_is_refused_before_anything_is_written(db: Db, tmp_path: Path) -> None:
    await make_campaign(db)
    path = tmp_path / "list.csv"
    path.write_text("phone\n13800138000\n", encoding="utf-8")
    before = await snapshot(db)
    with pytest.raises(ImportOptionError, match=r"--region 'XX': not a region phonenumbers knows; use .* CN, US"):
        await import_list(db.sessionmaker, path, campaign="sales", region="XX", now=NOW)
    assert await snapshot(db) == before
    assert (await import_list(db.sessionmaker, path, campaign="sales", region="cn", now=NOW)).imported == 1


async def test_kept_rows_with_warnings_are_reported_and_counts_add_up(db: Db, tmp_path: Path) -> None:
    async with db.sessionmaker() as s, s.begin():
        await create_campaign(s, "us", CampaignSettings(region="US", timezone="America/Chicago"), now=NOW)
    path = tmp_path / "us.csv"
    path.write_text(
        "phone,phone2,name\n"
        "800 234 5678,,TollFree\n"  # candidate zones from Guam to Pago Pago: never all open
        "212 555 0123,555,BadAlt\n"  # the alternate is invalid, the main number fine
        "212 555 0124,,Plain\n",
        encoding="utf-8",
    )
    rejects = tmp_path / "rej.csv"
    summary = await import_list(db.sessionmaker, path, campaign="us", rejects_path=rejects, now=NOW)
    assert (summary.read, summary.imported, summary.rejected) == (3, 3, 0) and summary.consistent
    assert (summary.timezone_fallbacks, summary.dropped_alternates) == (1, 1)
    reasons = {r["name"]: r["reason"] for r in rejects_of(rejects)}
    assert set(reasons) == {"TollFree", "BadAlt"}
    assert reasons["TollFree"].startswith("kept: ") and "America/Chicago" in reasons["TollFree"]
    assert reasons["BadAlt"].startswith("kept: phone2 '555'")
    async with db.sessionmaker() as s:
        toll = (await s.execute(select(Contact).where(Contact.phone == "+18002345678"))).scalar_one()
        bad_alt = (await s.execute(select(Contact).where(Contact.phone == "+12125550123"))).scalar_one()
    assert toll.timezones == ["America/Chicago"]
    assert bad_alt.alt_phones == []


def big_list(path: Path, rows: int) -> Path:
    with path.open("w", encoding="utf-8") as f:
        f.write("phone,name\n")
        for i in range(rows):
            f.write(f"1380013{i:04d},n{i}\n")
    return path


async def test_interrupted_import_leaves_no_half_visible_list(db: Db, tmp_path: Path) -> None:
    campaign_id = await make_campaign(db)
    async with db.sessionmaker() as s, s.begin():
        await set_campaign_status(s, "sales", CampaignStatus.ACTIVE)
    path = big_list(tmp_path / "big.csv", 1000)
    seen: list[int] = []

    def explode(read: int, _pos: int, _total: int) -> None:
        seen.append(read)
        if read >= 400:
            raise KeyboardInterrupt  # Ctrl-C in the middle

    before = await snapshot(db)
    with pytest.raises(KeyboardInterrupt):
        await import_list(db.sessionmaker, path, campaign="sales", batch_size=100, progress=explode, now=NOW)
    assert seen[-1] == 400  # four batches had been committed when it stopped
    assert await snapshot(db) == before
    async with db.sessionmaker() as s:
        assert await claim_leads(s, campaign_id, NOW, 10_000) == []

    # The same import, complete, works afterwards and counts exactly.
    summary = await import_list(db.sessionmaker, path, campaign="sales", batch_size=100, now=NOW)
    assert (summary.read, summary.imported) == (1000, 1000)


async def age_heartbeats(db: Db, by: timedelta) -> None:
    """As if the importing process had died ``by`` ago (it stops beating when it dies)."""
    async with db.sessionmaker() as s, s.begin():
        await s.execute(
            update(CallList).where(CallList.status == ListStatus.IMPORTING).values(heartbeat_at=utcnow() - by)
        )


async def test_killed_import_is_invisible_and_discarded_next_time(db: Db, tmp_path: Path) -> None:
    """A process killed outright cannot clean up: its pending leads must never be dialled."""
    campaign_id = await make_campaign(db)
    async with db.sessionmaker() as s, s.begin():
        await set_campaign_status(s, "sales", CampaignStatus.ACTIVE)
    # A contact the killed import merges into: it must survive the clean-up.
    old = tmp_path / "old.csv"
    old.write_text("phone,name\n13800130005,Old\n", encoding="utf-8")
    await import_list(db.sessionmaker, old, campaign="sales", now=NOW - timedelta(days=1))
    path = big_list(tmp_path / "big.csv", 300)

    import dialer.lists.importer as importer

    async def no_cleanup(*_args: Any) -> None:  # as if SIGKILLed: nothing runs after the crash
        return None

    original = importer._abandon
    importer._abandon = no_cleanup  # type: ignore[assignment]
    try:

        def crash(read: int, _pos: int, _total: int) -> None:
            if read >= 200:
                raise RuntimeError("power cut")

        with pytest.raises(RuntimeError):
            await import_list(db.sessionmaker, path, campaign="sales", batch_size=100, progress=crash, now=NOW)
    finally:
        importer._abandon = original  # type: ignore[assignment]
    async with db.sessionmaker() as s:
        statuses = dict((await s.execute(select(Lead.status, func.count()).group_by(Lead.status))).all())
        big = (await s.execute(select(CallList).where(CallList.name == "big"))).scalar_one()
        assert statuses == {LeadStatus.READY: 1, LeadStatus.PENDING: 199}
        assert (await s.execute(select(func.count()).select_from(Contact))).scalar_one() == 200
        assert big.status == ListStatus.IMPORTING and big.import_owner and big.heartbeat_at is not None
        assert list_state(big, utcnow()) == "importing"  # its heartbeat is fresh: it may still be running
        assert list_state(big, utcnow() + STALE_IMPORT_AFTER + timedelta(seconds=1)) == "interrupted"
        claimed = await claim_leads(s, campaign_id, NOW, 10_000)
        assert [c.numbers for c in claimed] == [("+8613800130005",)]  # pending leads are never claimed
        await s.rollback()
        # Counts and exports leave the unfinished import out.
        assert await visible_lead_counts(s, campaign_id) == {LeadStatus.READY: 1}
        out = tmp_path / "export.csv"
        visible = [st.value for st in LeadStatus if st != LeadStatus.PENDING]
        assert await export_leads(s, campaign_id, out, statuses=visible) == 1

    # Right after the crash nobody can tell it from a slow import: refused, nothing written.
    other = tmp_path / "other.csv"
    other.write_text("phone\n" + "".join(f"1390013{i:04d}\n" for i in range(50)), encoding="utf-8")
    before = await snapshot(db)
    with pytest.raises(
        ImportConflictError, match=r"an import into campaign 'sales' is running \(list 'big'.*retry after 5 minutes"
    ):
        await import_list(db.sessionmaker, other, campaign="sales", now=NOW + timedelta(minutes=1))
    assert await snapshot(db) == before

    # Minutes later the dead import is discarded: its pending leads and the contacts only it used.
    await age_heartbeats(db, STALE_IMPORT_AFTER + timedelta(minutes=1))
    summary = await import_list(db.sessionmaker, other, campaign="sales", now=NOW + timedelta(minutes=10))
    assert (summary.imported, summary.merged) == (50, 0)
    async with db.sessionmaker() as s:
        statuses = dict((await s.execute(select(Lead.status, func.count()).group_by(Lead.status))).all())
        phones = set((await s.execute(select(Contact.phone))).scalars())
        big = (await s.execute(select(CallList).where(CallList.name == "big"))).scalar_one()
    assert statuses == {LeadStatus.READY: 51}  # 50 new + the old one (its claim was rolled back)
    assert len(phones) == 51 and "+8613800130005" in phones  # 199 orphans gone, the merged one kept
    assert big.status == ListStatus.FAILED and big.import_owner is None
    assert big.error is not None and "199 pending leads and 199 new contacts were discarded" in big.error

    # The killed file imported again, complete, counts exactly.
    again = await import_list(db.sessionmaker, path, campaign="sales", batch_size=100, now=NOW + timedelta(hours=1))
    assert (again.imported, again.merged) == (299, 1)
    async with db.sessionmaker() as s:
        big = (await s.execute(select(CallList).where(CallList.name == "big"))).scalar_one()
        assert (big.status, big.imported) == (ListStatus.READY, 299)
        assert len(await claim_leads(s, campaign_id, NOW + timedelta(hours=1), 10_000)) == 350


async def test_dry_run_counts_exactly_and_writes_nothing(db: Db, tmp_path: Path) -> None:
    await make_campaign(db)
    before = await snapshot(db)
    summary = await import_list(
        db.sessionmaker, DATA / "mixed_rows.csv", campaign="sales", dry_run=True, now=NOW,
        rejects_path=tmp_path / "r.csv",
    )  # fmt: skip
    assert (summary.imported, summary.merged, summary.rejected) == (3, 1, 4)
    assert summary.list_id is None
    assert await snapshot(db) == before


async def test_dry_run_counts_what_the_real_import_then_does(db: Db, tmp_path: Path) -> None:
    """Duplicates across batches, numbers already in the campaign, existing contacts, DNC."""
    await make_campaign(db)
    await make_campaign(db, "other")
    async with db.sessionmaker() as s, s.begin():
        await add_dnc(s, "+8613900139007")
    known = tmp_path / "known.csv"
    known.write_text("phone\n13800138001\n13800138002\n", encoding="utf-8")
    await import_list(db.sessionmaker, known, campaign="sales", now=NOW)  # leads of the campaign
    elsewhere = tmp_path / "elsewhere.csv"
    elsewhere.write_text("phone,name\n13800138003,\n", encoding="utf-8")
    await import_list(db.sessionmaker, elsewhere, campaign="other", now=NOW)  # a contact, no lead here
    path = tmp_path / "list.csv"
    phones = ["13800138001", "13800138003", "13800138004", "13800138005", "13800138004", "139 0013 9007",
              "13800138006", "13800138005", "13800138001", "123"]  # fmt: skip
    path.write_text("phone,name\n" + "".join(f"{p},n{i}\n" for i, p in enumerate(phones)), encoding="utf-8")
    before = await snapshot(db)
    dry = await import_list(db.sessionmaker, path, campaign="sales", dry_run=True, batch_size=2, now=NOW)
    assert await snapshot(db) == before
    real = await import_list(db.sessionmaker, path, campaign="sales", batch_size=2, now=NOW)
    counts = ("read", "imported", "merged", "rejected", "dnc_suppressed", "contacts_created")
    assert {k: getattr(dry, k) for k in counts} == {k: getattr(real, k) for k in counts}
    assert (real.read, real.imported, real.merged, real.rejected, real.dnc_suppressed) == (10, 4, 4, 1, 1)
    assert dry.consistent and real.consistent


async def test_dry_run_takes_no_write_lock(tmp_path: Path) -> None:
    """A dialer or `dnc add` writing during a dry run must not get 'database is locked'."""
    import sqlite3

    from infra.db import create_engine, create_sessionmaker, migrate

    db_path = tmp_path / "dialer.db"
    engine = create_engine(f"sqlite+aiosqlite:///{db_path}")
    await migrate(engine)
    sm = create_sessionmaker(engine)
    try:
        async with sm() as s, s.begin():
            await create_campaign(s, "sales", CampaignSettings(region="CN"), now=NOW)
        writes: list[int] = []

        def write_meanwhile(read: int, _pos: int, _total: int) -> None:
            other = sqlite3.connect(db_path, timeout=0.2)  # a writer that does not wait long
            try:
                other.execute(
                    "INSERT INTO dnc (number, is_prefix, created_at) VALUES (?, 0, '2026-03-02 02:00:00.000000')",
                    (f"+86137001370{len(writes):02d}",),
                )
                other.commit()
                writes.append(read)
            finally:
                other.close()

        path = big_list(tmp_path / "big.csv", 500)
        summary = await import_list(sm, path, campaign="sales", dry_run=True, batch_size=100, progress=write_meanwhile)
        assert summary.imported == 500
        assert writes == [100, 200, 300, 400, 500, 500]
        async with sm() as s:
            assert (await s.execute(select(func.count()).select_from(Contact))).scalar_one() == 0
    finally:
        await engine.dispose()


async def test_dnc_import_file(db: Db, tmp_path: Path) -> None:
    sales = await make_campaign(db)
    summary = await import_dnc(db.sessionmaker, DATA / "dnc_numbers.txt", region="CN")
    assert (summary.read, summary.added, summary.rejected) == (3, 3, 0)
    again = await import_dnc(db.sessionmaker, DATA / "dnc_numbers.txt", region="CN")
    assert (again.added, again.already_listed) == (0, 3)
    path = tmp_path / "list.csv"
    path.write_text("phone\n13800138001\n4008123123\n13900139002\n13700137000\n", encoding="utf-8")
    result = await import_list(db.sessionmaker, path, campaign="sales", now=NOW)
    assert (result.imported, result.dnc_suppressed) == (1, 3)
    assert sales > 0


async def test_dnc_import_inserts_in_batches(db: Db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy import event

    import dialer.dnc as dnc

    monkeypatch.setattr(dnc, "DNC_BATCH", 5)
    path = tmp_path / "dnc.txt"
    path.write_text("".join(f"+86138001380{i:02d}\n" for i in range(12)) + "+8613800138000\n", encoding="utf-8")
    inserts: list[int] = []

    def count(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, executemany: bool) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO DNC"):
            inserts.append(len(parameters) if executemany else 1)

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    try:
        summary = await import_dnc(db.sessionmaker, path, reason="bulk")
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", count)
    assert (summary.read, summary.added, summary.already_listed) == (13, 12, 1)
    assert 1 <= len(inserts) <= 3  # one statement per batch of 5, not one per row
    async with db.sessionmaker() as s:
        reasons = set((await s.execute(select(DncEntry.reason))).scalars())
        assert (await s.execute(select(func.count()).select_from(DncEntry))).scalar_one() == 12
    assert reasons == {"bulk"}


async def test_dnc_add_refuses_short_prefix_unless_forced(db: Db) -> None:
    async with db.sessionmaker() as s, s.begin():
        with pytest.raises(ValueError, match=r"'\+1\*' would block every \+1 number"):
            await add_dnc(s, "+1*")
        entry, created = await add_dnc(s, "+1*", force=True)
        assert created and (entry.number, entry.is_prefix) == ("+1", True)
