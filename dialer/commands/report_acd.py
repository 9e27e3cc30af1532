"""`dialer report queues` and `dialer report agents`: ACD figures read from the queue_log table.

The service does not need to run: the report replays the queue log of the window (see
``acd.reports`` for the definitions: service level with abandons in the denominator, ASA, AHT =
talk + hold + wrap-up, abandon rate, occupancy, longest wait). Mount on the shared ``report``
group in ``dialer/cli.py``::

    from dialer.commands import report_acd
    report_app.command("queues")(report_acd.report_queues)
    report_app.command("agents")(report_acd.report_agents)

(or ``app.add_typer(report_acd.app, name="report")`` while there is no shared group yet).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.table import Table

from dialer.commands.config import ConfigOption, fail, run_with_db, settings_or_exit

app = typer.Typer(help="Reports.", no_args_is_help=True)

SinceOption = Annotated[
    str | None,
    typer.Option("--since", help="Start of the window: YYYY-MM-DD or an ISO time (site time zone); default 24 h ago"),
]
UntilOption = Annotated[
    str | None, typer.Option("--until", help="End of the window (exclusive), same formats; default now")
]
JsonOption = Annotated[bool, typer.Option("--json", help="One JSON object per line instead of a table")]


def _moment(text: str | None, zone: ZoneInfo, default: datetime, option: str) -> datetime:
    if text is None:
        return default
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        fail(f"{option} {text!r} is not a date or time; use YYYY-MM-DD or YYYY-MM-DDTHH:MM")
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return value.astimezone(UTC)


def _window(since: str | None, until: str | None, timezone: str) -> tuple[datetime, datetime]:
    zone = ZoneInfo(timezone)
    now = datetime.now(UTC)
    end = _moment(until, zone, now, "--until")
    start = _moment(since, zone, end - timedelta(days=1), "--since")
    if start >= end:
        fail(f"--since ({start.isoformat()}) must be before --until ({end.isoformat()})")
    return start, end


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.1f}%"


def _secs(x: float | None) -> str:
    return "-" if x is None else f"{x:.0f}s"


def _emit_json(items: list[Any]) -> None:
    for item in items:
        typer.echo(json.dumps(asdict(item), sort_keys=True))


def report_queues(
    config: ConfigOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    queue: Annotated[list[str] | None, typer.Option("--queue", "-q", help="Only this queue (repeatable)")] = None,
    service_level: Annotated[
        float | None,
        typer.Option(help="Service level threshold T in seconds for all queues (default: each queue's own)"),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Per queue: offered, answered, abandoned, service level, ASA, AHT, abandon rate, occupancy."""
    from acd.reports import queue_report, service_levels

    settings = settings_or_exit(config)
    start, end = _window(since, until, settings.site.timezone)
    try:
        levels: float | dict[str, float] = (
            service_levels(settings.acd.queues) if service_level is None else service_level
        )
    except ValueError as exc:
        fail(str(exc))
    rows = run_with_db(settings, lambda sm: queue_report(sm, start, end, queues=queue or (), service_level_s=levels))
    if as_json:
        _emit_json(rows)
        return
    table = Table(title=f"Queues {start:%Y-%m-%d %H:%M} - {end:%Y-%m-%d %H:%M} UTC")
    for name in ("queue", "offered", "answered", "abandoned", "exited", "SL (T)", "ASA", "AHT"):
        table.add_column(name, justify="left" if name == "queue" else "right")
    for name in ("abandon rate", "occupancy", "longest wait", "callbacks"):
        table.add_column(name, justify="right")
    for r in rows:
        table.add_row(
            r.queue,
            str(r.offered),
            str(r.answered),
            str(r.abandoned),
            str(r.exited),
            f"{_pct(r.service_level)} ({r.service_level_s:g}s)",
            _secs(r.asa_s),
            _secs(r.aht_s),
            _pct(r.abandon_rate),
            _pct(r.occupancy),
            _secs(r.longest_wait_s),
            f"{r.callbacks_answered}/{r.callbacks_requested}",
        )
    Console().print(table if rows else "no queue activity in this window")


def report_agents(
    config: ConfigOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    agent: Annotated[list[str] | None, typer.Option("--agent", "-a", help="Only this agent (repeatable)")] = None,
    as_json: JsonOption = False,
) -> None:
    """Per agent: logged-in, paused and staffed time, calls, talk, wrap-up, AHT, occupancy, missed offers."""
    from acd.reports import agent_report

    settings = settings_or_exit(config)
    start, end = _window(since, until, settings.site.timezone)
    rows = run_with_db(settings, lambda sm: agent_report(sm, start, end, agents=agent or ()))
    if as_json:
        _emit_json(rows)
        return
    table = Table(title=f"Agents {start:%Y-%m-%d %H:%M} - {end:%Y-%m-%d %H:%M} UTC")
    for name in ("agent", "logged in", "paused", "answered", "handled", "talk", "wrap-up", "AHT", "occupancy"):
        table.add_column(name, justify="left" if name == "agent" else "right")
    table.add_column("missed", justify="right")
    table.add_column("pauses")
    for r in rows:
        table.add_row(
            r.agent,
            _secs(r.logged_in_s),
            _secs(r.paused_s),
            str(r.answered),
            str(r.handled),
            _secs(r.talk_s),
            _secs(r.wrap_s),
            _secs(r.aht_s),
            _pct(r.occupancy),
            str(r.offers_missed),
            ", ".join(f"{k}:{v}" for k, v in sorted(r.pauses.items())),
        )
    Console().print(table if rows else "no agent activity in this window")


app.command("queues")(report_queues)
app.command("agents")(report_agents)
