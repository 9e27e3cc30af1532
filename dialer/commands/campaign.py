"""`dialer campaign create|show|list|pause|resume|archive`.

Settings of a new campaign: the defaults (documented in ``config/campaign.example.toml``),
then the ``[campaigns.<name>]`` table of the app config if it has one, then ``--settings
FILE``, then the flags. A new campaign is paused until ``dialer campaign resume`` (or
``create --active``), so its lists can be imported and checked first. Archiving is final.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialer.commands.config import EXIT_CONFIG, ConfigOption, fail, run_with_db, settings_or_exit
from dialer.models import CampaignStatus

app = typer.Typer(help="Campaigns: create, inspect, pause, resume, archive.", no_args_is_help=True)

NameArg = Annotated[str, typer.Argument(help="Campaign name")]


def _pairs(values: list[str] | None, flag: str, example: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values or []:
        key, sep, rest = value.partition("=")
        if not sep or not key.strip() or not rest.strip():
            fail(f"{flag} {value!r}: write KEY=VALUE, e.g. {flag} {example}", EXIT_CONFIG)
        out[key.strip()] = rest.strip()
    return out


def _dispositions(values: list[str]) -> list[dict[str, Any]]:
    flags = ("contact", "effective", "success", "callback", "dnc", "final")
    out = []
    for value in values:
        head, _, flag_text = value.partition(":")
        code, _, label = head.partition("=")
        entry: dict[str, Any] = {"code": code.strip(), "label": (label or code).strip()}
        for flag in filter(None, (f.strip().lower() for f in flag_text.split(","))):
            if flag not in flags:
                fail(f"--disposition {value!r}: unknown flag {flag!r}; flags are {', '.join(flags)}", EXIT_CONFIG)
            entry[flag] = True
        out.append(entry)
    return out


def _retry(values: list[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for outcome, minutes in _pairs(values, "--retry", "busy=10").items():
        if not minutes.isdigit():
            fail(f"--retry {outcome}={minutes}: give the minimum delay in whole minutes, e.g. busy=10", EXIT_CONFIG)
        out[outcome] = {"min_delay_minutes": int(minutes)}
    return out


@app.command("create")
def create(
    name: NameArg,
    settings_file: Annotated[
        Path | None, typer.Option("--settings", help="Campaign TOML (see config/campaign.example.toml)")
    ] = None,
    description: Annotated[str | None, typer.Option(help="Free text")] = None,
    region: Annotated[str | None, typer.Option(help="Default region of numbers, e.g. CN")] = None,
    timezone: Annotated[str | None, typer.Option(help="Zone when neither file nor number gives one")] = None,
    window: Annotated[
        str | None, typer.Option(help="Daily calling window, callee's local time, e.g. 09:00-21:00")
    ] = None,
    weekday: Annotated[
        list[str] | None, typer.Option(help="Per-weekday window: sat=10:00-18:00 or sun=closed (repeatable)")
    ] = None,
    quiet_hours: Annotated[
        list[str] | None, typer.Option("--quiet-hours", help="No calls in this range, e.g. 12:00-14:00; 'none'")
    ] = None,
    holidays: Annotated[
        bool | None, typer.Option("--holidays/--no-holidays", help="No calls on public holidays")
    ] = None,
    daypart: Annotated[
        list[str] | None, typer.Option(help="Day-part NAME=HH:MM-HH:MM (repeatable; replaces the defaults)")
    ] = None,
    retry: Annotated[list[str] | None, typer.Option(help="OUTCOME=MINUTES minimum retry delay (repeatable)")] = None,
    max_attempts: Annotated[int | None, typer.Option(help="Attempts per lead")] = None,
    max_attempts_per_number: Annotated[int | None, typer.Option(help="Attempts per number")] = None,
    reach_deadline_hours: Annotated[int | None, typer.Option(help="Give a lead up after this many hours")] = None,
    pacing: Annotated[
        str | None, typer.Option(help="preview, progressive, power, predictive or vicidial_adapt")
    ] = None,
    abandon_rate: Annotated[float | None, typer.Option(help="Target abandon rate, at most 0.03")] = None,
    max_lines: Annotated[int | None, typer.Option(help="Concurrent outbound calls at most")] = None,
    cps: Annotated[float | None, typer.Option(help="New calls per second at most")] = None,
    ring_timeout: Annotated[int | None, typer.Option(help="Seconds an unanswered call rings (>= 15)")] = None,
    caller_id: Annotated[str | None, typer.Option(help="Presented number, E.164")] = None,
    trunk: Annotated[str | None, typer.Option(help="Trunk name")] = None,
    company_name: Annotated[
        str | None, typer.Option("--company-name", help="Said in the abandon message: who called")
    ] = None,
    callback_number: Annotated[
        str | None, typer.Option("--callback-number", help="Said in the abandon message: number to call back, E.164")
    ] = None,
    amd: Annotated[bool | None, typer.Option("--amd/--no-amd", help="Answering-machine detection")] = None,
    on_machine: Annotated[str | None, typer.Option("--on-machine", help="hangup, or message (after the beep)")] = None,
    effective_seconds: Annotated[int | None, typer.Option(help="Talk seconds for an effective call")] = None,
    daily_target: Annotated[int | None, typer.Option(help="Effective calls per day")] = None,
    queue: Annotated[str | None, typer.Option(help="ACD queue answering the calls")] = None,
    disposition: Annotated[
        list[str] | None,
        typer.Option(help="CODE=Label:flag,flag (flags contact, effective, success, callback, dnc, final); replaces"),
    ] = None,
    recording: Annotated[str | None, typer.Option(help="all, none, on_demand or sample")] = None,
    active: Annotated[bool, typer.Option("--active", help="Start dialling at once instead of paused")] = False,
    config: ConfigOption = None,
) -> None:
    """Create a campaign from defaults, the config's [campaigns.NAME], --settings FILE and flags."""
    from dialer.campaigns import (
        create_campaign,
        load_campaign_file,
        merge_settings,
        validate_campaign_settings,
    )
    from infra.settings import ConfigError

    settings = settings_or_exit(config)
    raw: dict[str, Any] = dict(settings.campaigns.get(name, {}))
    source = "config"
    try:
        if settings_file is not None:
            raw = merge_settings(raw, load_campaign_file(settings_file, name))
            source = str(settings_file)
    except ConfigError as exc:
        fail(str(exc), EXIT_CONFIG)
    flags: dict[str, Any] = {}
    window_flags: dict[str, Any] = {}
    if window is not None:
        window_flags["default"] = window
    if weekday:
        window_flags["weekdays"] = _pairs(weekday, "--weekday", "sun=closed")
    if quiet_hours is not None:
        window_flags["quiet_hours"] = [q for q in quiet_hours if q.lower() != "none"]
    if holidays is not None:
        window_flags["holidays"] = holidays
    if window_flags:
        flags["window"] = window_flags
    if daypart:
        flags["dayparts"] = _pairs(daypart, "--daypart", "morning=09:00-12:00")
    retry_flags: dict[str, Any] = {}
    if retry:
        retry_flags["outcomes"] = _retry(retry)
    for key, value in (
        ("max_attempts", max_attempts),
        ("max_attempts_per_number", max_attempts_per_number),
        ("reach_deadline_hours", reach_deadline_hours),
    ):
        if value is not None:
            retry_flags[key] = value
    if retry_flags:
        flags["retry"] = retry_flags
    pacing_flags = {
        k: v
        for k, v in (
            ("mode", pacing),
            ("target_abandon_rate", abandon_rate),
            ("max_lines", max_lines),
            ("calls_per_second", cps),
            ("ring_timeout_seconds", ring_timeout),
        )
        if v is not None
    }
    if pacing_flags:
        flags["pacing"] = pacing_flags
    plain: tuple[tuple[str, object], ...] = (
        ("description", description),
        ("region", region),
        ("timezone", timezone),
        ("caller_id", caller_id),
        ("trunk", trunk),
        ("company_name", company_name),
        ("callback_number", callback_number),
        ("amd", amd),
        ("on_machine", on_machine),
        ("effective_call_seconds", effective_seconds),
        ("daily_target", daily_target),
        ("queue", queue),
    )
    for key, item in plain:
        if item is not None:
            flags[key] = item
    if recording is not None:
        flags["recording"] = {"policy": recording}
    if disposition:
        flags["dispositions"] = _dispositions(disposition)
    if flags:
        raw = merge_settings(raw, flags)
        source = f"{source} + command-line flags" if source != "config" else "command-line flags"
    try:
        campaign_settings = validate_campaign_settings(raw, source, name)
    except ConfigError as exc:
        fail(str(exc), EXIT_CONFIG)

    async def work(sm: async_sessionmaker[AsyncSession]) -> int:
        async with sm() as session, session.begin():
            campaign = await create_campaign(
                session,
                name,
                campaign_settings,
                status=CampaignStatus.ACTIVE if active else CampaignStatus.PAUSED,
            )
            return campaign.id

    if active and campaign_settings.caller_id is None:
        fail(_no_caller_id(name), EXIT_CONFIG)
    campaign_id = run_with_db(settings, work)
    state = "active" if active else "paused (start it with `dialer campaign resume " + name + "`)"
    typer.echo(f"created campaign {name!r} (id {campaign_id}), {state}")
    if campaign_settings.company_name:
        _company_prompt(settings.site.data_dir / "prompts", campaign_settings.company_name)
    if campaign_settings.caller_id is None:
        typer.echo(f"note: {_no_caller_id(name)}", err=True)


def _no_caller_id(name: str) -> str:
    return (
        f"campaign {name!r} has no caller_id, and every campaign call presents one: "
        "give --caller-id +861012345678 (E.164) or caller_id in its settings file"
    )


def _company_prompt(directory: Path, company: str) -> None:
    """Speak the company name for the abandon message now (TTS is not available while dialling)."""
    from ivr.prompts import PromptError, company_prompt_name, ensure_company_prompt

    try:
        path = ensure_company_prompt(directory, company)
    except (PromptError, OSError) as exc:
        path = None
        typer.echo(f"note: could not speak the company name: {exc}", err=True)
    if path is None:
        typer.echo(
            f"note: the abandon message will leave out the company name until {directory}/"
            f"{company_prompt_name(company)}.wav exists (install espeak-ng and sox and create the campaign "
            "again, or record that file: 8 kHz mono WAV)",
            err=True,
        )


@app.command("show")
def show(
    name: NameArg,
    json_out: Annotated[bool, typer.Option("--json", help="Everything as one JSON object")] = False,
    config: ConfigOption = None,
) -> None:
    """A campaign's status, settings and lead counts."""
    from dialer.campaigns import campaign_settings, describe, get_campaign, lead_counts

    settings = settings_or_exit(config)

    async def work(sm: async_sessionmaker[AsyncSession]) -> dict[str, Any]:
        async with sm() as session:
            campaign = await get_campaign(session, name)
            return {
                "id": campaign.id,
                "name": campaign.name,
                "status": campaign.status,
                "created_at": campaign.created_at.isoformat(),
                "leads": await lead_counts(session, campaign.id),
                "settings": campaign_settings(campaign),
            }

    info = run_with_db(settings, work)
    campaign_settings_obj = info.pop("settings")
    if json_out:
        info["settings"] = campaign_settings_obj.model_dump(mode="json")
        typer.echo(json.dumps(info, ensure_ascii=False))
        return
    console = Console()
    console.print(f"[bold]{info['name']}[/] (id {info['id']}): {info['status']}")
    leads = info["leads"]
    counts = ", ".join(f"{k} {v}" for k, v in sorted(leads.items())) or "none"
    console.print(f"  leads: {sum(leads.values())} ({counts})")
    for label, text in describe(campaign_settings_obj):
        console.print(f"  {label}: {text}")


@app.command("list")
def list_(
    all_: Annotated[bool, typer.Option("--all", help="Include archived campaigns")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON array")] = False,
    config: ConfigOption = None,
) -> None:
    """All campaigns with their status and lead counts."""
    from dialer.campaigns import lead_counts, list_campaigns

    settings = settings_or_exit(config)

    async def work(sm: async_sessionmaker[AsyncSession]) -> list[dict[str, Any]]:
        async with sm() as session:
            return [
                {"id": c.id, "name": c.name, "status": c.status, "leads": await lead_counts(session, c.id)}
                for c in await list_campaigns(session, include_archived=all_)
            ]

    rows = run_with_db(settings, work)
    if json_out:
        typer.echo(json.dumps(rows, ensure_ascii=False))
        return
    table = Table("id", "name", "status", "leads", "ready")
    for row in rows:
        table.add_row(
            str(row["id"]),
            row["name"],
            row["status"],
            str(sum(row["leads"].values())),
            str(row["leads"].get("ready", 0)),
        )
    Console().print(table)


def _move(name: str, status: CampaignStatus, config: Path | None) -> None:
    from dialer.campaigns import set_campaign_status

    settings = settings_or_exit(config)

    async def work(sm: async_sessionmaker[AsyncSession]) -> str:
        from dialer.campaigns import CampaignError, campaign_settings, get_campaign

        async with sm() as session, session.begin():
            if status == CampaignStatus.ACTIVE:
                current = await get_campaign(session, name)
                if campaign_settings(current).caller_id is None:
                    raise CampaignError(_no_caller_id(name))
            campaign = await set_campaign_status(session, name, status)
            return campaign.status

    typer.echo(f"campaign {name!r}: {run_with_db(settings, work)}")


@app.command("pause")
def pause(name: NameArg, config: ConfigOption = None) -> None:
    """Stop dialling new calls (calls in progress finish)."""
    _move(name, CampaignStatus.PAUSED, config)


@app.command("resume")
def resume(name: NameArg, config: ConfigOption = None) -> None:
    """Start (or restart) dialling."""
    _move(name, CampaignStatus.ACTIVE, config)


@app.command("archive")
def archive(name: NameArg, config: ConfigOption = None) -> None:
    """Stop the campaign for good; its data stays for reports and export."""
    _move(name, CampaignStatus.ARCHIVED, config)
