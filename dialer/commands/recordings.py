"""`dialer recordings list|export|verify|retention`: call recordings from the command line.

``list`` finds recordings by agent, campaign, day and outcome. ``export`` copies files (by id, or
every recording of the filters) into a directory, keeping the date layout, with ``manifest.csv``
describing each file; a copy whose hash differs from the metadata fails the export. ``verify``
re-hashes files against their rows and reports mismatches, missing files, recordings never
finished (the process stopped during the call) and, with ``--all``, files without metadata;
any of those gives exit status 1. ``retention`` deletes recordings older than
``[recordings] retention_days`` (``--dry-run`` lists them). Days are in the site's time zone.
Mount in ``dialer/cli.py`` with ``app.add_typer(recordings_commands.app, name="recordings")``.
"""

from __future__ import annotations

import asyncio
import csv
import json
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialer.commands.config import ConfigOption, fail, run_with_db, settings_or_exit
from infra.settings import Settings
from recordings.models import Recording
from recordings.recorder import sha256_file
from recordings.service import (
    AmbiguousRecording,
    Check,
    CheckResult,
    RecordingQuery,
    RecordingService,
    adopt,
    check_file,
    find_recording,
    orphan_files,
    search_recordings,
)

app = typer.Typer(help="Call recordings: list, export, verify hashes, apply retention.", no_args_is_help=True)

AgentOption = Annotated[str | None, typer.Option("--agent", help="Only this agent's recordings")]
CampaignOption = Annotated[str | None, typer.Option("--campaign", help="Only this campaign (name or id)")]
DateOption = Annotated[
    str | None, typer.Option("--date", help="Only this day, YYYY-MM-DD in the site's time zone (or FROM..TO)")
]
OutcomeOption = Annotated[str | None, typer.Option("--outcome", help="Only calls with this outcome")]

MANIFEST_FIELDS = (
    "id",
    "call_id",
    "agent_id",
    "campaign",
    "queue",
    "started_at",
    "duration",
    "size",
    "sha256",
    "outcome",
    "gaps",
    "file",
)


def _days(text: str | None, timezone: str) -> tuple[datetime | None, datetime | None]:
    """``YYYY-MM-DD`` or ``FROM..TO`` (inclusive days) in the site zone -> a UTC [since, until)."""
    if text is None:
        return None, None
    first, _, last = text.partition("..")
    try:
        start = date.fromisoformat(first.strip())
        end = date.fromisoformat(last.strip()) if last else start
    except ValueError:
        fail(f"--date {text!r}: write YYYY-MM-DD, or FROM..TO such as 2026-03-01..2026-03-07")
    if end < start:
        fail(f"--date {text!r}: the last day is before the first")
    zone = ZoneInfo(timezone)
    since = datetime(start.year, start.month, start.day, tzinfo=zone).astimezone(UTC)
    until_day = end + timedelta(days=1)
    until = datetime(until_day.year, until_day.month, until_day.day, tzinfo=zone).astimezone(UTC)
    return since, until


def _root(settings: Settings) -> Path:
    return settings.recordings.root(settings.site.data_dir)


def _query(
    settings: Settings,
    agent: str | None,
    campaign: str | None,
    day: str | None,
    outcome: str | None,
    *,
    limit: int | None,
    include_deleted: bool = False,
) -> RecordingQuery:
    since, until = _days(day, settings.site.timezone)
    return RecordingQuery(
        agent_id=agent,
        campaign=campaign,
        outcome=outcome,
        since=since,
        until=until,
        include_deleted=include_deleted,
        limit=limit,
    )


def _local(moment: datetime | None, zone: ZoneInfo) -> str:
    return "" if moment is None else moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")


def _row_json(row: Recording) -> dict[str, Any]:
    return {
        "id": row.id,
        "call_id": row.call_id,
        "agent_id": row.agent_id,
        "campaign_id": row.campaign_id,
        "campaign": row.campaign,
        "queue": row.queue,
        "started_at": row.started_at.isoformat(),
        "duration": row.duration,
        "size": row.size,
        "sha256": row.sha256,
        "path": row.path,
        "gaps": row.gaps,
        "trigger": row.trigger,
        "outcome": row.outcome,
        "status": row.status,
        "deleted_at": row.deleted_at.isoformat() if row.deleted_at else None,
    }


@app.command("list")
def list_(
    agent: AgentOption = None,
    campaign: CampaignOption = None,
    day: DateOption = None,
    outcome: OutcomeOption = None,
    deleted: Annotated[bool, typer.Option("--deleted", help="Include recordings removed by retention")] = False,
    limit: Annotated[int, typer.Option(min=1, max=100_000, help="At most this many, newest first")] = 200,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object per line")] = False,
    config: ConfigOption = None,
) -> None:
    """List recordings, newest first."""
    settings = settings_or_exit(config)
    query = _query(settings, agent, campaign, day, outcome, limit=limit, include_deleted=deleted)

    async def work(db: async_sessionmaker[AsyncSession]) -> list[Recording]:
        async with db() as session:
            return await search_recordings(session, query)

    rows = run_with_db(settings, work)
    if json_out:
        for row in rows:
            typer.echo(json.dumps(_row_json(row), sort_keys=True))
        return
    zone = ZoneInfo(settings.site.timezone)
    table = Table(title=f"{len(rows)} recording(s)" + (f" (limit {limit})" if len(rows) == limit else ""))
    for column in ("id", "started", "duration", "agent", "campaign/queue", "outcome", "call id", "state"):
        table.add_column(column, overflow="fold")
    for row in rows:
        state = "deleted" if row.deleted_at else row.status
        if row.gaps:
            state += f", {len(row.gaps)} gap(s)"
        table.add_row(
            row.id[:12],
            _local(row.started_at, zone),
            "" if row.duration is None else f"{row.duration:.1f}s",
            row.agent_id or "",
            row.campaign or row.queue or "",
            row.outcome or "",
            row.call_id,
            state,
        )
    Console(width=160).print(table)


@app.command("export")
def export(
    ids: Annotated[list[str] | None, typer.Argument(help="Recording ids (or 6+ character prefixes)")] = None,
    out: Annotated[Path, typer.Option("--out", help="Directory to copy the files and manifest.csv into")] = Path(
        "recordings-export"
    ),
    agent: AgentOption = None,
    campaign: CampaignOption = None,
    day: DateOption = None,
    outcome: OutcomeOption = None,
    config: ConfigOption = None,
) -> None:
    """Copy recordings and a CSV manifest into a directory (by id, or every match of the filters)."""
    if not ids and not (agent or campaign or day or outcome):
        fail("name recordings by id, or filter with --date/--agent/--campaign/--outcome")
    settings = settings_or_exit(config)
    root = _root(settings)
    query = _query(settings, agent, campaign, day, outcome, limit=None)

    async def work(db: async_sessionmaker[AsyncSession]) -> list[Recording]:
        async with db() as session:
            if ids:
                try:
                    return [await find_recording(session, i) for i in ids]
                except AmbiguousRecording as exc:
                    fail(str(exc))
            return await search_recordings(session, query)

    rows = run_with_db(settings, work)
    if not rows:
        fail("no recordings match; see `dialer recordings list` with the same filters")
    out.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    copied = 0
    manifest_path = out / "manifest.csv"
    with manifest_path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=MANIFEST_FIELDS)
        writer.writeheader()
        for row in rows:
            source = root / row.path
            if row.deleted_at is not None:
                problems.append(f"{row.id}: deleted by retention on {row.deleted_at.date()}")
                continue
            if not source.is_file():
                problems.append(f"{row.id}: file {source} is missing; run `dialer recordings verify`")
                continue
            target = out / row.path
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
            if row.sha256 is not None and sha256_file(target) != row.sha256:
                problems.append(
                    f"{row.id}: the copy's sha256 differs from the metadata; run `dialer recordings verify`"
                )
            copied += 1
            writer.writerow(
                {
                    "id": row.id,
                    "call_id": row.call_id,
                    "agent_id": row.agent_id or "",
                    "campaign": row.campaign or "",
                    "queue": row.queue or "",
                    "started_at": row.started_at.isoformat(),
                    "duration": "" if row.duration is None else f"{row.duration:.3f}",
                    "size": "" if row.size is None else row.size,
                    "sha256": row.sha256 or "",
                    "outcome": row.outcome or "",
                    "gaps": json.dumps(row.gaps),
                    "file": row.path,
                }
            )
    typer.echo(f"exported {copied} recording(s) to {out} (manifest: {manifest_path})")
    for problem in problems:
        typer.echo(f"error: {problem}", err=True)
    if problems:
        raise typer.Exit(1)


@app.command("verify")
def verify(
    ids: Annotated[list[str] | None, typer.Argument(help="Recording ids to check (default: the last 24 h)")] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Every recording, and files on disk that have no metadata")
    ] = False,
    day: DateOption = None,
    adopt_unfinished: Annotated[
        bool, typer.Option("--adopt", help="Record the hash of unfinished recordings' files (after a crash)")
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object per line")] = False,
    config: ConfigOption = None,
) -> None:
    """Re-check recordings' sha256; exit status 1 on any mismatch, missing, unfinished or unknown file."""
    settings = settings_or_exit(config)
    root = _root(settings)
    if all_:
        query = RecordingQuery(limit=None)
    elif day is not None:
        query = _query(settings, None, None, day, None, limit=None)
    else:
        query = RecordingQuery(since=datetime.now(UTC) - timedelta(days=1), limit=None)

    async def work(db: async_sessionmaker[AsyncSession]) -> tuple[list[CheckResult], int]:
        adopted = 0
        async with db() as session:
            if ids:
                try:
                    rows = [await find_recording(session, i) for i in ids]
                except AmbiguousRecording as exc:
                    fail(str(exc))
            else:
                rows = await search_recordings(session, query)
            rows = [r for r in rows if r.deleted_at is None]
            results = [await asyncio.to_thread(check_file, root, row) for row in rows]
            if all_:
                known = set((await session.execute(select(Recording.path))).scalars())
                results.extend(await asyncio.to_thread(orphan_files, root, known))
            if adopt_unfinished:
                by_id = {r.id: r for r in rows}
                for i, result in enumerate(results):
                    if result.check is Check.UNFINISHED and result.recording_id is not None:
                        row = await adopt(session, root, by_id[result.recording_id], datetime.now(UTC))
                        results[i] = CheckResult(Check.OK, row.path, row.id, f"adopted: {row.duration or 0:.1f} s")
                        adopted += 1
                await session.commit()
        return results, adopted

    results, adopted = run_with_db(settings, work)
    bad = [r for r in results if not r.ok]
    if json_out:
        for r in results:
            typer.echo(json.dumps({"check": r.check.value, "id": r.recording_id, "path": r.path, "detail": r.detail}))
    else:
        for r in bad:
            typer.echo(f"{r.check.value.upper().replace('_', ' ')}: {r.path} ({r.recording_id or 'no id'}): {r.detail}")
        summary = f"verified {len(results)} recording(s): {len(results) - len(bad)} ok, {len(bad)} with problems"
        if adopted:
            summary += f"; adopted {adopted} unfinished"
        typer.echo(summary)
    if bad:
        raise typer.Exit(1)


@app.command("retention")
def retention(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would be deleted; delete nothing")] = False,
    days: Annotated[
        int | None, typer.Option("--days", min=0, help="Keep this many days (default: [recordings] retention_days)")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Delete recordings older than the retention period; each deletion is logged."""
    settings = settings_or_exit(config)
    keep = settings.recordings.retention_days if days is None else days
    if days is None and keep == 0:
        typer.echo("retention is off ([recordings] retention_days = 0); pass --days N to delete anyway")
        return

    async def work(db: async_sessionmaker[AsyncSession]) -> tuple[tuple[str, ...], int]:
        service = RecordingService.from_settings(settings, db)
        report = await service.run_retention(datetime.now(UTC), days=keep, dry_run=dry_run)
        return report.deleted, report.rows_marked

    deleted, marked = run_with_db(settings, work)
    verb = "would delete" if dry_run else "deleted"
    for path in deleted:
        typer.echo(f"{verb} {path}")
    rows = f"{marked} row(s) {'would be ' if dry_run else ''}marked deleted"
    typer.echo(f"{verb} {len(deleted)} file(s) older than {keep} day(s); {rows}")
