"""`dialer leads export --campaign NAME [--status S] --out FILE.csv`: a campaign's data, back out.

Without ``--status`` every lead is exported except ``pending`` ones: those belong to an
import still running (or one that died), are not part of the campaign yet and are never
dialled. ``--status pending`` exports them explicitly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialer.commands.config import ConfigOption, fail, run_with_db, settings_or_exit

app = typer.Typer(help="Leads: a campaign's contacts and their calling state.", no_args_is_help=True)


@app.command("export")
def export(
    campaign: Annotated[str, typer.Option("--campaign", help="Campaign to export")],
    out: Annotated[Path, typer.Option("--out", help="CSV file to write (UTF-8 with BOM, opens in Excel)")],
    status: Annotated[
        list[str] | None,
        typer.Option(
            help="Only leads in this status (repeatable): ready, callback, dialing, done, dnc, exhausted, "
            "pending (default: all but pending)"
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Export the campaign's leads; the file can be imported again with `dialer lists import`."""
    from dialer.campaigns import get_campaign
    from dialer.leads import export_leads
    from dialer.models import LeadStatus

    known = {s.value for s in LeadStatus}
    for s in status or []:
        if s not in known:
            fail(f"--status {s!r}: unknown status; use one of {', '.join(sorted(known))}")
    settings = settings_or_exit(config)
    wanted = status or [s.value for s in LeadStatus if s != LeadStatus.PENDING]

    async def work(sm: async_sessionmaker[AsyncSession]) -> int:
        async with sm() as session:
            camp = await get_campaign(session, campaign)
            return await export_leads(session, camp.id, out, statuses=wanted)

    count = run_with_db(settings, work)
    typer.echo(f"exported {count} leads of {campaign!r} to {out}")


from dialer.commands import leads_show  # noqa: E402 - registered last, after the group exists

app.command("show")(leads_show.show)
