"""`dialer dnc import|add|remove|check`: the do-not-call lists.

Without ``--campaign`` an entry is global (every campaign); with it, it applies to that
campaign only. A trailing ``*`` makes a prefix entry (``+86400*``). ``check`` exits 0 when
the number may be called and 1 when it is blocked, printing every matching entry.
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

CampaignOption = Annotated[
    str | None, typer.Option("--campaign", help="Only this campaign (default: the global list)")
]
RegionOption = Annotated[str | None, typer.Option(help="Region for numbers without +country code, e.g. CN")]


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
                source="cli",
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


@app.command("check")
def check(
    number: Annotated[str, typer.Argument(help="Number to check")],
    campaign: CampaignOption = None,
    region: RegionOption = None,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON line")] = False,
    config: ConfigOption = None,
) -> None:
    """Is this number blocked (globally, or for --campaign)? Exit 0: may be called; 1: blocked."""
    from dialer.dnc import dnc_match, parse_dnc_entry

    settings = settings_or_exit(config)

    async def work(sm: async_sessionmaker[AsyncSession]) -> tuple[str, list[str]]:
        async with sm() as session:
            cid = await _campaign_id(session, campaign)
            e164, _ = parse_dnc_entry(number, await _region(session, campaign, region))
            return e164, [hit.describe for hit in await dnc_match(session, e164, cid)]

    try:
        e164, hits = run_with_db(settings, work)
    except ValueError as exc:
        fail(str(exc))
    if json_out:
        typer.echo(json.dumps({"number": e164, "blocked": bool(hits), "matches": hits}, ensure_ascii=False))
    elif hits:
        typer.echo(f"blocked: {e164} " + "; ".join(hits))
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
    config: ConfigOption = None,
) -> None:
    """Load a DNC file in one transaction (all or nothing); prints a JSON summary."""
    from dialer.dnc import DncImportSummary, import_dnc

    settings = settings_or_exit(config)

    async def work(sm: async_sessionmaker[AsyncSession]) -> DncImportSummary:
        async with sm() as session:
            cid = await _campaign_id(session, campaign)
            reg = await _region(session, campaign, region)
        return await import_dnc(sm, file, campaign_id=cid, region=reg, mapping=map_ or [], reason=reason)

    summary = run_with_db(settings, work)
    typer.echo(json.dumps(summary.as_dict(), ensure_ascii=False))
