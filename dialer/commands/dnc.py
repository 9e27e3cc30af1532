"""`dialer dnc import|add|remove|check`: the do-not-call lists.

Without ``--campaign`` an entry is global (every campaign); with it, it applies to that
campaign only. A trailing ``*`` makes a prefix entry (``+86400*``); a prefix needs the
country code and at least 3 more digits unless ``--force`` (``+1*`` would block North
America). ``check`` exits 0 when the number may be called and 1 when it is blocked, printing
every matching entry: with ``--campaign``, blocked means on the global list or that
campaign's; without it, on the global list, and the campaigns whose own lists hold the
number are reported too (the number is callable elsewhere, exit 0).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialer.commands.config import ConfigOption, fail, run_with_db, settings_or_exit

app = typer.Typer(
    help="Do-not-call lists: global or per campaign, numbers or prefixes (+86400*).", no_args_is_help=True
)

CampaignOption = Annotated[str | None, typer.Option("--campaign", help="Only this campaign (default: the global list)")]
RegionOption = Annotated[str | None, typer.Option(help="Region for numbers without +country code, e.g. CN")]
ForceOption = Annotated[
    bool, typer.Option("--force", help="Allow prefixes shorter than the country code plus 3 digits (e.g. +1*)")
]


async def _campaign_id(session: AsyncSession, name: str | None) -> int | None:
    from dialer.campaigns import get_campaign

    return None if name is None else (await get_campaign(session, name)).id


async def _region(session: AsyncSession, name: str | None, region: str | None) -> str | None:
    if region is not None or name is None:
        return region
    from dialer.campaigns import campaign_settings, get_campaign

    return campaign_settings(await get_campaign(session, name)).region


@app.command("add")
def add(
    number: Annotated[str, typer.Argument(help="Number (+8613800138000) or prefix (+86400*)")],
    campaign: CampaignOption = None,
    region: RegionOption = None,
    reason: Annotated[str | None, typer.Option(help="Why (kept with the entry)")] = None,
    force: ForceOption = False,
    config: ConfigOption = None,
) -> None:
    """Add a number or prefix to a DNC list."""
    from dialer.dnc import add_dnc

    settings = settings_or_exit(config)

    async def work(sm: async_sessionmaker[AsyncSession]) -> tuple[str, bool]:
        async with sm() as session, session.begin():
            cid = await _campaign_id(session, campaign)
            entry, created = await add_dnc(
                session, number, campaign_id=cid, region=await _region(session, campaign, region), reason=reason,
                source="cli", force=force,
            )  # fmt: skip
            return entry.number + ("*" if entry.is_prefix else ""), created

    try:
        entry, created = run_with_db(settings, work)
    except ValueError as exc:
        fail(str(exc))
    scope = f"campaign {campaign!r}" if campaign else "global"
    typer.echo(f"{'added' if created else 'already listed'}: {entry} ({scope})")


@app.command("remove")
def remove(
    number: Annotated[str, typer.Argument(help="Number or prefix, as added")],
    campaign: CampaignOption = None,
    region: RegionOption = None,
    config: ConfigOption = None,
) -> None:
    """Remove a number or prefix from one DNC list (the global one unless --campaign)."""
    from dialer.dnc import remove_dnc

    settings = settings_or_exit(config)

    async def work(sm: async_sessionmaker[AsyncSession]) -> int:
        async with sm() as session, session.begin():
            cid = await _campaign_id(session, campaign)
            return await remove_dnc(session, number, campaign_id=cid, region=await _region(session, campaign, region))

    try:
        removed = run_with_db(settings, work)
    except ValueError as exc:
        fail(str(exc))
    scope = f"campaign {campaign!r}" if campaign else "global"
    if not removed:
        fail(f"{number} is not on the {scope} DNC list; see `dialer dnc check {number}`")
    typer.echo(f"removed: {number} ({scope})")


def _entry_text(entry: str, is_prefix: bool) -> str:
    return f"prefix {entry}*" if is_prefix else entry


@app.command("check")
def check(
    number: Annotated[str, typer.Argument(help="Number to check")],
    campaign: CampaignOption = None,
    region: RegionOption = None,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON line")] = False,
    config: ConfigOption = None,
) -> None:
    """Is this number blocked (globally, or for --campaign)? Exit 0: may be called; 1: blocked."""
    from sqlalchemy import select

    from dialer.dnc import dnc_match, parse_dnc_entry
    from dialer.models import Campaign

    settings = settings_or_exit(config)

    async def work(sm: async_sessionmaker[AsyncSession]) -> tuple[str, list[str], list[tuple[str, str]]]:
        async with sm() as session:
            cid = await _campaign_id(session, campaign)
            e164, _ = parse_dnc_entry(number, await _region(session, campaign, region))
            if cid is not None:
                return e164, [hit.describe for hit in await dnc_match(session, e164, cid)], []
            hits = await dnc_match(session, e164, all_campaigns=True)
            ids = {hit.campaign_id for hit in hits if hit.campaign_id is not None}
            names = dict((await session.execute(select(Campaign.id, Campaign.name).where(Campaign.id.in_(ids)))).all())
            elsewhere = [
                (names.get(hit.campaign_id, str(hit.campaign_id)), _entry_text(hit.entry, hit.is_prefix))
                for hit in hits
                if hit.campaign_id is not None
            ]
            return e164, [hit.describe for hit in hits if hit.campaign_id is None], sorted(elsewhere)

    try:
        e164, hits, elsewhere = run_with_db(settings, work)
    except ValueError as exc:
        fail(str(exc))
    if json_out:
        campaign_lists = [{"campaign": name, "entry": entry} for name, entry in elsewhere]
        result = {"number": e164, "blocked": bool(hits), "matches": hits, "campaign_lists": campaign_lists}
        typer.echo(json.dumps(result, ensure_ascii=False))
        raise typer.Exit(1 if hits else 0)
    also = "; ".join(f"campaign {name!r} ({entry})" for name, entry in elsewhere)
    if hits:
        typer.echo(f"blocked: {e164} " + "; ".join(hits) + (f"; also on the DNC list of {also}" if also else ""))
    elif elsewhere:
        typer.echo(f"callable: {e164} is on no global DNC list, but blocked in {also}")
    else:
        typer.echo(f"callable: {e164} is on no DNC list" + (f" for campaign {campaign!r}" if campaign else ""))
    raise typer.Exit(1 if hits else 0)


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="CSV/XLSX with a phone column, or one number/prefix per line")],
    campaign: CampaignOption = None,
    region: RegionOption = None,
    map_: Annotated[
        list[str] | None, typer.Option("--map", help="COLUMN=phone if the column is not recognised")
    ] = None,
    reason: Annotated[str | None, typer.Option(help="Reason stored with entries that have none")] = None,
    force: ForceOption = False,
    config: ConfigOption = None,
) -> None:
    """Load a DNC file in one transaction (all or nothing); prints a JSON summary."""
    from dialer.dnc import DncImportSummary, import_dnc

    settings = settings_or_exit(config)

    async def work(sm: async_sessionmaker[AsyncSession]) -> DncImportSummary:
        async with sm() as session:
            cid = await _campaign_id(session, campaign)
            reg = await _region(session, campaign, region)
        return await import_dnc(sm, file, campaign_id=cid, region=reg, mapping=map_ or [], reason=reason, force=force)

    summary = run_with_db(settings, work)
    typer.echo(json.dumps(summary.as_dict(), ensure_ascii=False))
