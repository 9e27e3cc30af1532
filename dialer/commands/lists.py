"""`dialer lists import FILE --campaign NAME ...` and `dialer lists show --campaign NAME`.

The import prints a progress bar on a terminal (rows/s, ETA) and then its summary; with
``--quiet`` it prints only the summary as one JSON line, for scripts. Exit status 0 when
the import completed (rejected rows are in the summary and the rejects file), 1 when the
file, an option or the campaign is unusable, or another import into the campaign is
running (nothing was written), 2 for a bad config file. The file and the options are
checked before the database is opened, so a bad file never creates or migrates one.

``lists show`` marks a list whose import died (no batch for
:data:`dialer.lists.importer.STALE_IMPORT_AFTER`) as ``interrupted``: its leads are not
visible, and the next import into the campaign discards them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TaskProgressColumn, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialer.commands.config import ConfigOption, fail, run_with_db, settings_or_exit

app = typer.Typer(help="Call lists: import CSV/XLSX files into campaigns.", no_args_is_help=True)


class RowsPerSecond(ProgressColumn):
    def __init__(self, rows: dict[str, int]) -> None:
        super().__init__()
        self.rows = rows

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed or 0.0
        rate = self.rows["read"] / elapsed if elapsed > 0 else 0.0
        return Text(f"{self.rows['read']:,} rows  {rate:,.0f} rows/s", style="progress.data.speed")


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="CSV (any delimiter; UTF-8, UTF-8 BOM or GB18030) or XLSX file")],
    campaign: Annotated[str, typer.Option("--campaign", help="Campaign to import into")],
    list_name: Annotated[str | None, typer.Option("--list", help="List name (default: the file name)")] = None,
    map_: Annotated[
        list[str] | None, typer.Option("--map", help="COLUMN=FIELD, repeatable; FIELD also 'attributes' or 'ignore'")
    ] = None,
    region: Annotated[
        str | None, typer.Option(help="Region for numbers without +country code, e.g. CN (default: the campaign's)")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check and count everything, write nothing")] = False,
    rejects: Annotated[
        Path | None, typer.Option("--rejects", help="Rejected rows with reasons (default: FILE.rejects.csv)")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar; summary as one JSON line")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Summary as one JSON line")] = False,
    batch_size: Annotated[int, typer.Option(min=100, max=20000, help="Rows per transaction")] = 5000,
    workers: Annotated[
        int | None, typer.Option(min=0, max=16, help="Processes normalising numbers (default: auto by file size)")
    ] = None,
    config: ConfigOption = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Import a call list: numbers to E.164, duplicates merged, DNC suppressed, rejects explained."""
    from dialer.lists import import_list
    from dialer.lists.importer import check_list_file
    from dialer.lists.reader import ListFileError

    settings = settings_or_exit(config, verbose=verbose)
    try:
        check_list_file(file, mapping=map_ or [], region=region)
    except ListFileError as exc:
        fail(str(exc))
    console = Console(stderr=True)
    counts = {"read": 0}
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        RowsPerSecond(counts),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        disable=quiet or not console.is_terminal,
        transient=True,
    )

    async def work(sessionmaker: async_sessionmaker[AsyncSession]) -> Any:
        task = progress.add_task(file.name, total=None)

        def on_progress(read: int, position: int, total: int) -> None:
            counts["read"] = read
            progress.update(task, completed=position, total=total or None)

        with progress:
            return await import_list(
                sessionmaker,
                file,
                campaign=campaign,
                list_name=list_name,
                mapping=map_ or [],
                region=region,
                dry_run=dry_run,
                rejects_path=rejects,
                batch_size=batch_size,
                progress=on_progress,
                workers=workers,
            )

    summary = run_with_db(settings, work)
    if quiet or json_out:
        typer.echo(json.dumps(summary.as_dict(), ensure_ascii=False, default=str))
        return
    out = Console()
    title = "dry run, nothing written" if summary.dry_run else f"list {summary.list_name!r} of {summary.campaign!r}"
    out.print(f"[bold]{file}[/] -> {title}")
    out.print(
        f"  read {summary.read:,} = imported {summary.imported:,} + merged {summary.merged:,} "
        f"+ rejected {summary.rejected:,} + DNC-suppressed {summary.dnc_suppressed:,}"
    )
    columns = ", ".join(f"{k}<-{v}" for k, v in summary.columns.items())
    out.print(f"  columns: {columns}; encoding {summary.encoding or 'xlsx'}, delimiter {summary.delimiter!r}")
    if summary.dropped_alternates or summary.timezone_fallbacks:
        out.print(
            f"  kept with a warning: {summary.dropped_alternates:,} invalid alternate numbers dropped, "
            f"{summary.timezone_fallbacks:,} numbers given the campaign's time zone"
        )
    if summary.rejects_file:
        out.print(f"  rejected, suppressed and warned rows with reasons: {summary.rejects_file}")
    for warning in summary.warnings:
        out.print(f"  [yellow]warning:[/] {warning}")
    rate = summary.read / summary.seconds if summary.seconds else 0
    out.print(f"  {summary.seconds:.1f} s, {rate:,.0f} rows/s")


@app.command("show")
def show(
    campaign: Annotated[str, typer.Option("--campaign", help="Campaign whose lists to show")],
    json_out: Annotated[bool, typer.Option("--json", help="The lists as one JSON array")] = False,
    config: ConfigOption = None,
) -> None:
    """The campaign's lists with their status (importing, interrupted, ready, failed) and import counts."""
    from sqlalchemy import select

    from dialer.campaigns import get_campaign
    from dialer.lists.importer import list_state
    from dialer.models import CallList
    from infra.db import utcnow

    settings = settings_or_exit(config)

    async def work(sessionmaker: async_sessionmaker[AsyncSession]) -> list[CallList]:
        async with sessionmaker() as session:
            camp = await get_campaign(session, campaign)
            rows = await session.execute(select(CallList).where(CallList.campaign_id == camp.id).order_by(CallList.id))
            return list(rows.scalars())

    lists = run_with_db(settings, work)
    wall = utcnow()
    if json_out:
        rows = [
            {
                "list": item.name, "status": list_state(item, wall), "read": item.rows_read, "imported": item.imported,
                "merged": item.merged, "rejected": item.rejected, "dnc_suppressed": item.dnc_suppressed,
                "finished_at": item.import_finished_at.isoformat() if item.import_finished_at else None,
                "note": item.error,
            }
            for item in lists
        ]  # fmt: skip
        typer.echo(json.dumps(rows, ensure_ascii=False))
        return
    table = Table()
    table.add_column("list")
    table.add_column("status", no_wrap=True)
    for heading in ("read", "imported", "merged", "rejected", "dnc"):
        table.add_column(heading, justify="right")
    table.add_column("finished (UTC)")
    table.add_column("note", overflow="fold")
    for item in lists:
        table.add_row(
            item.name,
            list_state(item, wall),
            *(str(v) for v in (item.rows_read, item.imported, item.merged, item.rejected, item.dnc_suppressed)),
            item.import_finished_at.strftime("%Y-%m-%d %H:%M") if item.import_finished_at else "",
            item.error or "",
        )
    Console(file=sys.stdout).print(table)
