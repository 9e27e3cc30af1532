"""`dialer simulate`: try pacing settings on a virtual clock before a campaign goes live.

The scenario comes from the flags, from a ``--history`` file of past calls, or (``--campaign
NAME``) from that campaign's CDRs in the database of ``--config``: answer probability, ring
and handle times and wrap-up are fitted from its calls, its abandon target and ring timeout are
its settings, simulated leads come from its lists and callee zones, and the estimators start
warm from the same rows, per list and per callee hour, as a live runner's would.

Mount in ``dialer/cli.py`` with::

    from dialer.commands import simulate as simulate_commands
    app.add_typer(simulate_commands.app, name="simulate")
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from dialer.commands.config import ConfigOption, fail, run_with_db, settings_or_exit
from dialer.simulator import ALGORITHMS, SimulationParams, compare, fit_from_history

app = typer.Typer(
    help="Simulate a campaign day on a virtual clock and compare pacing algorithms side by side.",
    no_args_is_help=False,
)


def _load_history(path: Path) -> list[dict[str, Any]]:
    """CDR-like rows from a CSV (header row) or a JSON file (a list of objects, or one object per line)."""
    if not path.exists():
        raise typer.BadParameter(f"history file {path} does not exist", param_hint="--history")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".csv":
        rows: list[dict[str, Any]] = list(csv.DictReader(text.splitlines()))
        for row in rows:
            row["answered"] = str(row.get("answered", "")).strip().lower() in ("1", "true", "yes", "y", "t")
        return rows
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        try:
            data = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as exc:
            raise typer.BadParameter(
                f"history file {path} is neither CSV nor JSON: line {exc.lineno}: {exc.msg}", param_hint="--history"
            ) from exc
    if not isinstance(data, list):
        raise typer.BadParameter("a JSON history must be a list of call records", param_hint="--history")
    return data


def _campaign_history(name: str, config: Path | None, days: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(history rows, fixed parameters) of a campaign from the database."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from dialer import runner_store as store
    from dialer.campaigns import campaign_settings, get_campaign

    settings = settings_or_exit(config)

    async def work(sm: async_sessionmaker[AsyncSession]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        async with sm() as session:
            campaign = await get_campaign(session, name)
            cs = campaign_settings(campaign)
        since = datetime.now(UTC) - timedelta(days=days) if days > 0 else None
        rows = await store.campaign_history(sm, campaign.id, since=since, default_zone=cs.timezone)
        mix = await store.lead_mix(sm, campaign.id, default_zone=cs.timezone)
        fixed: dict[str, Any] = {
            "target_abandon_rate": cs.pacing.target_abandon_rate,
            "ring_timeout_s": float(cs.pacing.ring_timeout_seconds),
            "max_lines": cs.pacing.max_lines,
            "lead_mix": mix,
        }
        return rows, fixed

    return run_with_db(settings, work)


@app.callback(invoke_without_command=True)
def simulate(
    agents: Annotated[int, typer.Option(help="Agents logged in.")] = 20,
    answer_prob: Annotated[float, typer.Option("--answer-prob", help="Share of dials a person answers.")] = 0.3,
    ring_mean: Annotated[float, typer.Option("--ring-mean", help="Mean ring-to-answer seconds.")] = 8.0,
    talk_mean: Annotated[float, typer.Option("--talk-mean", help="Mean talk seconds (lognormal).")] = 120.0,
    talk_sigma: Annotated[float, typer.Option("--talk-sigma", help="Log-sd of talk time.")] = 0.8,
    wrapup: Annotated[float, typer.Option("--wrapup", help="Wrap-up seconds after each call.")] = 10.0,
    ring_timeout: Annotated[float, typer.Option("--ring-timeout", help="Seconds an unanswered call rings.")] = 25.0,
    hours: Annotated[float, typer.Option(help="Simulated hours per seed.")] = 8.0,
    seeds: Annotated[int, typer.Option(help="Number of seeds (0..N-1) to average over.")] = 5,
    algorithms: Annotated[
        str, typer.Option(help="Comma-separated: preview, progressive, power, vicidial_adapt, predictive.")
    ] = ",".join(ALGORITHMS),
    target: Annotated[float, typer.Option(help="Abandon-rate target (fraction).")] = 0.03,
    power_ratio: Annotated[float, typer.Option("--power-ratio", help="Lines per idle agent in power mode.")] = 1.5,
    history: Annotated[
        Path | None,
        typer.Option(help="CSV/JSON of past calls (answered, ring_seconds, talk_seconds) to fit the scenario from."),
    ] = None,
    campaign: Annotated[
        str | None,
        typer.Option(help="Fit the scenario from this campaign's calls in the database (see --config)."),
    ] = None,
    days: Annotated[int, typer.Option(help="With --campaign: the last DAYS days of calls (0: all).")] = 30,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object keyed by algorithm.")] = False,
    config: ConfigOption = None,
) -> None:
    """Run the scenario for every algorithm and print occupancy, abandon rate, wait and calls per agent-hour."""
    names = [a.strip() for a in algorithms.split(",") if a.strip()]
    known = ("preview", *ALGORITHMS)
    unknown = [a for a in names if a not in known]
    if unknown or not names:
        raise typer.BadParameter(
            f"unknown algorithm(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(known)}",
            param_hint="--algorithms",
        )
    if seeds < 1:
        raise typer.BadParameter("at least one seed is needed", param_hint="--seeds")
    if history is not None and campaign is not None:
        raise typer.BadParameter("give --history FILE or --campaign NAME, not both", param_hint="--campaign")
    history_rows: list[dict[str, Any]] | None = None
    try:
        if campaign is not None:
            history_rows, fixed = _campaign_history(campaign, config, days)
            target = fixed["target_abandon_rate"]
            try:
                params = fit_from_history(history_rows, agents=agents, hours=hours, **fixed)
            except ValueError as exc:
                fail(f"campaign {campaign!r}: {exc}; let it dial longer, or give the scenario with flags")
        elif history is not None:
            history_rows = _load_history(history)
            params = fit_from_history(history_rows, agents=agents, hours=hours, target_abandon_rate=target)
        else:
            params = SimulationParams(
                agents=agents, answer_prob=answer_prob, ring_mean_s=ring_mean, talk_mean_s=talk_mean,
                talk_sigma=talk_sigma, wrapup_s=wrapup, ring_timeout_s=ring_timeout, hours=hours,
                target_abandon_rate=target,
            )  # fmt: skip
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    figures = compare(
        params, names, seeds=range(seeds), model_options={"power": {"ratio": power_ratio}}, history=history_rows
    )
    if as_json:
        typer.echo(json.dumps(figures))
        return
    table = Table(title=f"{params.agents} agents, {params.hours:g} h x {seeds} seed(s), abandon target {target:.1%}")
    table.add_column("metric")
    for name in figures:
        table.add_column(name, justify="right")
    rows = [
        ("occupancy", "occupancy", "{:.1%}"),
        ("abandon rate", "abandon_rate", "{:.2%}"),
        ("abandon rate, worst seed", "abandon_rate_max_seed", "{:.2%}"),
        ("mean customer wait (s)", "mean_wait_s", "{:.2f}"),
        ("calls per agent-hour", "calls_per_agent_hour", "{:.1f}"),
        ("dial attempts", "dial_attempts", "{:.0f}"),
    ]
    for label, key, fmt in rows:
        table.add_row(label, *(fmt.format(f[key]) for f in figures.values()))
    Console().print(table)
