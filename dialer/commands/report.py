"""`dialer report agents|campaign|leads-at-risk|queues`: the figures campaign managers steer by.

The shared ``report`` group. Campaign-side reports come from :mod:`dialer.reports` (the CDR,
leads and, for agent occupancy, the ACD queue_log); ``queues`` is the ACD's queue report
(:mod:`dialer.commands.report_acd`). Every report prints a Rich table, and writes CSV with
``--csv FILE`` (UTF-8 with BOM so Excel shows Chinese names; one header row, one row per item;
numbers unformatted: rates as fractions, durations in seconds, instants ISO 8601 UTC).
Mount it in ``dialer/cli.py`` with ``app.add_typer(report_commands.app, name="report")``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialer.commands import report_acd
from dialer.commands.config import ConfigOption, fail, run_with_db, settings_or_exit
from infra.db import utcnow

app = typer.Typer(
    help="Reports: agents' effective calls and occupancy, campaign figures, leads at risk, ACD queues.",
    no_args_is_help=True,
)

#: the reports' clock (tests set it; reports never read the time themselves)
clock: Callable[[], datetime] = utcnow

CsvOption = Annotated[
    Path | None,
    typer.Option("--csv", help="Also write the rows to this CSV file (UTF-8 with BOM, numbers unformatted)"),
]
DateOption = Annotated[
    str | None, typer.Option("--date", help="The local day, YYYY-MM-DD (default: today in the report's time zone)")
]
WithinOption = Annotated[
    float,
    typer.Option("--within", min=0.0, help="Hours ahead: leads whose reach deadline falls within this (or has passed)"),
]


# -- shared helpers -----------------------------------------------------------------------------


def parse_day(text: str | None, tz: str, now: datetime) -> date:
    if text is None:
        return now.astimezone(ZoneInfo(tz)).date()
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        fail(f"--date {text!r} is not a date; write it as YYYY-MM-DD, e.g. 2026-03-10")


def check_zone(tz: str, option: str = "--tz") -> str:
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        fail(f"{option} {tz!r} is not an IANA time zone; use e.g. Asia/Shanghai or Europe/London")
    return tz


def run_report(settings: Any, work: Callable[[async_sessionmaker[AsyncSession]], Any]) -> Any:
    """run_with_db, with report errors (unknown lead...) as one line and exit status 1."""
    from dialer.reports import ReportError

    try:
        return run_with_db(settings, work)
    except ReportError as exc:
        fail(str(exc))


def write_rows(path: Path, items: Sequence[Any], columns: Sequence[str]) -> None:
    from dialer.reports import write_csv

    try:
        count = write_csv(path, items, columns)
    except OSError as exc:
        fail(f"cannot write {path}: {exc.strerror or exc}; check the directory exists and is writable")
    typer.echo(f"wrote {count} row(s) to {path}", err=True)


def pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.1f}%"


def hms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = round(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def when(at: datetime | None, tz: str | None = None) -> str:
    if at is None:
        return "-"
    if tz is None:
        return f"{at.astimezone(UTC):%Y-%m-%d %H:%M:%S}"
    return f"{at.astimezone(ZoneInfo(tz)):%Y-%m-%d %H:%M:%S}"


def console() -> Console:
    # Reports are read in wide terminals and piped into files: never fold a table into 80 columns
    # when the output is not a terminal.
    return Console(soft_wrap=False)


# -- report agents --------------------------------------------------------------------------------


@app.command("agents")
def agents(
    date_text: DateOption = None,
    campaign: Annotated[str | None, typer.Option("--campaign", help="Only this campaign's attempts")] = None,
    csv_out: CsvOption = None,
    tz: Annotated[
        str | None, typer.Option("--tz", help="Time zone of the day (default: the site's, site.timezone in the config)")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Per agent for one local day: attempts, contacts, effective calls against the daily target, talk time, occupancy.

    Attempts: CDRs with that agent dialled that day. Contacts: a disposition flagged contact, or a
    human call bridged to the agent.

    Effective call: a human conversation bridged to the agent, talk time at or above the campaign's
    effective_call_seconds (default 15), AND a disposition flagged effective. The target is the
    campaign's daily_target (default 100), summed over the campaigns the agent worked that day.

    Occupancy: (talk + wrap-up) / (logged in, not paused) from the ACD queue_log when it has the
    agent that day; otherwise an ESTIMATE (marked ~): talk / span from the first dial to the end
    of the last call. AHT and wrap-up come from the queue_log too.
    """
    from dialer.reports import AgentDayRow, agent_day_report, columns_of

    settings = settings_or_exit(config)
    zone_name = check_zone(tz or settings.site.timezone)
    now = clock()
    day = parse_day(date_text, zone_name, now)

    async def work(sm: async_sessionmaker[AsyncSession]) -> list[AgentDayRow]:
        async with sm() as session:
            return await agent_day_report(session, day, zone_name, campaign=campaign, now=now)

    rows: list[AgentDayRow] = run_report(settings, work)
    if csv_out is not None:
        write_rows(csv_out, rows, columns_of(AgentDayRow))
    title = f"Agents {day:%Y-%m-%d} ({zone_name})" + (f", campaign {escape(campaign)}" if campaign else "")
    table = Table(title=title)
    for name in ("agent", "name"):
        table.add_column(name)
    for name in ("attempts", "contacts", "effective", "target", "of target", "successes", "talk"):
        table.add_column(name, justify="right")
    for name in ("occupancy", "AHT", "wrap-up", "staffed"):
        table.add_column(name, justify="right")
    table.add_column("campaigns")
    estimates = False
    for r in rows:
        occ = pct(r.occupancy)
        if r.occupancy_source == "estimate":
            occ, estimates = f"~{occ}", True
        table.add_row(
            escape(r.agent_id),
            escape(r.agent_name or ""),
            str(r.attempts),
            str(r.contacts),
            str(r.effective),
            str(r.daily_target),
            pct(r.target_reached),
            str(r.successes),
            hms(r.talk_s),
            occ,
            hms(r.aht_s),
            hms(r.wrap_s),
            hms(r.staffed_s),
            escape(", ".join(r.campaigns)),
        )
    out = console()
    if not rows:
        out.print(f"no agent activity on {day:%Y-%m-%d} ({zone_name})")
        return
    out.print(table)
    if estimates:
        out.print("~ occupancy estimated as talk / (first dial .. last call end): no queue_log for the agent that day")


# -- report campaign --------------------------------------------------------------------------------


@app.command("campaign")
def campaign(
    name: Annotated[str, typer.Argument(help="The campaign")],
    csv_out: CsvOption = None,
    hours_csv: Annotated[
        Path | None, typer.Option("--hours-csv", help="Write attempts and contact rate per local hour (chart data)")
    ] = None,
    date_text: DateOption = None,
    within: WithinOption = 12.0,
    config: ConfigOption = None,
) -> None:
    """Penetration, contact rate, abandon rate, effective calls vs target, leads exhausted and at risk.

    Lifetime figures count up to now, or the end of --date. Penetration: leads attempted at least
    once / leads. Contact rate: contacts / attempts, and leads contacted / leads. Contacts: a
    disposition flagged contact, or a human call bridged to an agent.

    Abandon rate = abandoned / human-answered (answered by a person: outcome completed or abandoned,
    not a machine). Abandoned: no agent connected within 2 s (outcome abandoned, or bridged later
    than 2 s after the answer when no AMD ran). Counted by answer time over the campaign's local
    day, the last 24 h and the rolling 30 days; the cap is the campaign's target (default 3%).

    Effective calls of the day (human, bridged, talk >= effective_call_seconds, disposition flagged
    effective) against daily_target x agents who made attempts in the campaign that day.

    At risk: open leads not yet contacted whose reach deadline is within --within hours (or past).
    Attempts by hour of the callee's local day, with the contact rate per hour, close the report.
    """
    from dialer.reports import CampaignReport, HourRow, campaign_report, columns_of

    if within < 0:
        fail("--within must be 0 or more hours")
    settings = settings_or_exit(config)
    now = clock()
    day: date | None = None
    if date_text is not None:
        day = parse_day(date_text, "UTC", now)

    async def work(sm: async_sessionmaker[AsyncSession]) -> CampaignReport:
        async with sm() as session:
            return await campaign_report(
                session,
                name,
                now=now,
                site_tz=settings.site.timezone,
                day=day,
                at_risk_within=timedelta(hours=within),
            )

    r: CampaignReport = run_report(settings, work)
    if csv_out is not None:
        row = r.csv_row()
        write_rows(csv_out, [row], list(row))
    if hours_csv is not None:
        write_rows(hours_csv, r.hours, columns_of(HourRow))
    out = console()
    summary = Table(title=f"Campaign {escape(r.campaign)}: {r.day:%Y-%m-%d} ({r.timezone}), as of {when(r.as_of)} UTC")
    summary.add_column("figure")
    summary.add_column("value", justify="right")
    summary.add_column("detail")
    statuses = ", ".join(f"{k} {v}" for k, v in sorted(r.leads_by_status.items()))
    lines: list[tuple[str, str, str]] = [
        ("leads", str(r.leads_total), statuses),
        ("penetration", pct(r.penetration), f"{r.leads_attempted} of {r.leads_total} leads attempted"),
        ("contact rate", pct(r.contact_rate), f"{r.contacts} contacts / {r.attempts} attempts"),
        ("leads contacted", pct(r.lead_contact_rate), f"{r.leads_contacted} of {r.leads_total} leads"),
        ("attempts today", str(r.day_attempts), f"{r.day_contacts} contacts, {r.day_agents} agent(s)"),
        ("effective today", f"{r.day_effective} / {r.day_target}", f"target {r.daily_target} per agent"),
        ("successes today", str(r.day_successes), ""),
        (
            "abandon today",
            pct(r.abandon_today_rate),
            f"{r.abandon_today_abandoned} / {r.abandon_today_answered} human-answered",
        ),
        ("abandon 24 h", pct(r.abandon_24h_rate), f"{r.abandon_24h_abandoned} / {r.abandon_24h_answered}"),
        (
            "abandon 30 d",
            pct(r.abandon_30d_rate),
            f"{r.abandon_30d_abandoned} / {r.abandon_30d_answered} (cap {pct(r.abandon_target)})",
        ),
        ("leads exhausted", str(r.leads_exhausted), ""),
        ("leads at risk", str(r.leads_at_risk), f"reach deadline within {r.at_risk_within_hours:g} h or past"),
    ]
    for figure, value, detail in lines:
        summary.add_row(figure, value, detail)
    out.print(summary)
    over = [
        w
        for w, rate in (("today", r.abandon_today_rate), ("30 d", r.abandon_30d_rate))
        if (rate or 0) > r.abandon_target
    ]
    if over:
        out.print(f"[bold red]abandon rate over the {pct(r.abandon_target)} cap ({', '.join(over)})[/]")
    hours = Table(title="Attempts by the callee's local hour")
    for col in ("hour", "attempts", "contacts", "contact rate"):
        hours.add_column(col, justify="right")
    hours.add_column("")
    for h in r.hours:
        if h.attempts:
            bar = "█" * round((h.contact_rate or 0.0) * 20)
            hours.add_row(f"{h.hour:02d}", str(h.attempts), str(h.contacts), pct(h.contact_rate), bar)
    if any(h.attempts for h in r.hours):
        out.print(hours)


# -- report leads-at-risk -----------------------------------------------------------------------------


@app.command("leads-at-risk")
def leads_at_risk(
    name: Annotated[str, typer.Argument(help="The campaign")],
    within: WithinOption = 12.0,
    csv_out: CsvOption = None,
    config: ConfigOption = None,
) -> None:
    """Leads that may miss their reach deadline, soonest first.

    Open leads (ready, callback, dialing) never contacted whose deadline falls within --within
    hours or has passed (negative hours left = overdue).
    The deadline is the lead's own reach_deadline_at, else its creation + the campaign's
    retry.reach_deadline_hours (default 72).
    """
    from dialer.reports import LeadAtRisk, columns_of
    from dialer.reports import leads_at_risk as query

    settings = settings_or_exit(config)
    now = clock()

    async def work(sm: async_sessionmaker[AsyncSession]) -> list[LeadAtRisk]:
        async with sm() as session:
            return await query(session, name, now=now, within=timedelta(hours=within), site_tz=settings.site.timezone)

    rows: list[LeadAtRisk] = run_report(settings, work)
    if csv_out is not None:
        write_rows(csv_out, rows, columns_of(LeadAtRisk))
    out = console()
    if not rows:
        out.print(
            f"no lead of {escape(repr(name))} at risk: none open and uncontacted with a deadline within {within:g} h"
        )
        return
    table = Table(
        title=f"{escape(name)}: {len(rows)} lead(s) at risk of missing the reach deadline (within {within:g} h)"
    )
    for col in ("lead", "phone", "name", "status", "attempts", "last outcome", "next attempt (local)"):
        table.add_column(col, justify="right" if col in ("lead", "attempts") else "left")
    table.add_column("deadline (local)")
    table.add_column("hours left", justify="right")
    table.add_column("day-parts tried")
    for r in rows:
        left = f"{r.hours_left:.1f}" if r.hours_left >= 0 else f"[red]{r.hours_left:.1f} overdue[/]"
        table.add_row(
            str(r.lead_id),
            r.phone,
            escape(r.name or ""),
            r.status,
            str(r.attempts),
            escape(r.last_outcome or "-"),
            when(r.next_attempt_at, r.timezone),
            f"{r.deadline_local} {r.timezone}",
            left,
            escape(r.dayparts_tried or "-"),
        )
    out.print(table)


# The ACD's queue report joins this group (its own `agents` is superseded by the one above,
# which carries the queue_log occupancy, AHT and wrap-up columns).
app.command("queues")(report_acd.report_queues)
