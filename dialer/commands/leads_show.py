"""`dialer leads show ID|PHONE --campaign NAME`: one lead's attempts and its next attempt, with why.

Every attempt with its times in UTC and in the callee's local time, the day-part it fell in,
ring and talk time, outcome, SIP status, agent and disposition; then the next attempt and the
reason (the runner's own words when it stored them, else rebuilt: see
:func:`dialer.reports.explain_next_attempt`). Register on the ``leads`` group with
``app.command("show")(leads_show.show)`` in ``dialer/commands/leads.py``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialer.commands.config import ConfigOption, settings_or_exit
from dialer.commands.report import console, hms, run_report, when
from infra.db import utcnow

#: the command's clock (tests set it)
clock: Callable[[], datetime] = utcnow


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def show(
    lead: Annotated[str, typer.Argument(help="The lead id, or a phone number of the lead (E.164, or national)")],
    campaign: Annotated[str, typer.Option("--campaign", help="The lead's campaign")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object instead of tables")] = False,
    config: ConfigOption = None,
) -> None:
    """One lead's history: every attempt, then the next attempt and why.

    Each attempt shows its times in UTC and in the callee's local time, day-part, ring and talk
    time, outcome, SIP status, agent and disposition.
    """
    from dialer.reports import LeadHistory, lead_history

    settings = settings_or_exit(config)
    now = clock()

    async def work(sm: async_sessionmaker[AsyncSession]) -> LeadHistory:
        async with sm() as session:
            return await lead_history(session, campaign, lead, now=now, site_tz=settings.site.timezone)

    h: LeadHistory = run_report(settings, work)
    if as_json:
        typer.echo(json.dumps(asdict(h), default=_json_default, ensure_ascii=False, sort_keys=True))
        return
    out = console()
    numbers = ", ".join(h.numbers)
    typer.echo(f"lead {h.lead_id} of {h.campaign!r}: {h.name or '(no name)'}  {numbers}")
    typer.echo(
        f"status {h.status}; {len(h.attempts)} attempt(s); priority {h.priority}; "
        f"time zone {h.timezone}{' (' + h.country + ')' if h.country else ''}; "
        f"day-parts tried: {', '.join(h.dayparts_tried) or 'none'}"
    )
    if h.reach_deadline_at is not None:
        typer.echo(f"reach deadline {when(h.reach_deadline_at)} UTC = {when(h.reach_deadline_at, h.timezone)} local")
    if h.attempts:
        table = Table(title=f"Attempts (local = {h.timezone})")
        for col in ("#", "dialled UTC", "dialled local", "day-part", "number", "ring", "talk", "outcome", "SIP"):
            table.add_column(col, justify="right" if col in ("#", "ring", "talk") else "left")
        for col in ("agent", "disposition", "answered / bridged / ended (local)"):
            table.add_column(col)
        for i, a in enumerate(h.attempts, 1):
            sip = f"{a.sip_status} {a.sip_reason or ''}".strip() if a.sip_status is not None else "-"
            outcome = (a.outcome or "in progress") + (
                " (AMD machine)" if a.amd_result == "machine" and a.outcome != "machine" else ""
            )
            marks = " / ".join(
                when(t, h.timezone)[11:] if t else "-" for t in (a.answered_at, a.bridged_at, a.ended_at)
            )
            table.add_row(
                str(i),
                when(a.dialled_at),
                when(a.dialled_at, h.timezone),
                a.daypart or "-",
                a.number + (f" (#{a.number_index + 1})" if a.number_index else ""),
                f"{a.ring_s:.0f}s" if a.ring_s is not None else "-",
                hms(a.talk_s) if a.talk_s is not None else "-",
                escape(outcome),
                escape(sip),
                escape(a.agent_id or "-"),
                escape(a.disposition or "-"),
                marks,
            )
        out.print(table)
    else:
        typer.echo("no attempts yet")
    if h.next_attempt_at is not None:
        typer.echo(f"next attempt: {when(h.next_attempt_at)} UTC = {when(h.next_attempt_at, h.timezone)} local")
    else:
        typer.echo("next attempt: none")
    typer.echo(f"why: {h.next_reason}")
