"""`dialer demo`: the whole product on embedded defaults, on loopback, in a few minutes.

SQLite in a data directory, the embedded MQTT broker, the SIP stack, the ACD with an IVR, the
predictive campaign runner, recordings and the web console, all real; only the people (agents,
customers) and the carrier are simulated (:mod:`dialer.sim`). See :mod:`dialer.demo.run` for
the order of a run. At the end the agent and campaign reports are printed by the same code as
``dialer report agents`` and ``dialer report campaign``, from the run's database.

Exit status: 0 after a run (1 with ``--check`` when it made no effective call or no
recording), 1 when the demo cannot start, 2 for a bad demo file.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console


def demo(
    minutes: Annotated[float, typer.Option("--minutes", "-m", help="How long the campaign runs", min=0.05)] = 3.0,
    agents: Annotated[int, typer.Option("--agents", "-a", help="Simulated agents (nailed softphones)", min=1)] = 8,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Where the database, recordings and rejects go (default: a new temp dir)"),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the simulated people's choices")] = 1,
    no_view: Annotated[
        bool, typer.Option("--no-view", help="One summary line every few seconds instead of the live view (CI logs)")
    ] = False,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 unless the run made an effective call and a recording (CI)")
    ] = False,
    config: Annotated[Path | None, typer.Option("--config", help="Demo file (default: config/demo/demo.toml)")] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Logs on stderr instead of DATA_DIR/demo.log")
    ] = False,
) -> None:
    """Run the dialer on loopback with simulated agents, customers and carrier, then print the reports."""
    from dialer.demo.config import DEFAULT_DEMO_FILE
    from dialer.demo.run import DemoError, DemoOptions, run_demo
    from infra.settings import ConfigError

    if not sys.stdout.isatty():
        # Piped into a log: keep the report tables whole instead of folding them into 80 columns.
        os.environ.setdefault("COLUMNS", "160")
    console = Console()
    options = DemoOptions(
        minutes=minutes,
        agents=agents,
        data_dir=data_dir,
        seed=seed,
        view=not no_view and console.is_terminal,
        config_path=config or DEFAULT_DEMO_FILE,
        verbose=verbose,
    )
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    try:
        result = asyncio.run(run_demo(options, console))
    except ConfigError as exc:
        typer.echo(f"dialer demo: {exc}", err=True)
        raise typer.Exit(2) from None
    except DemoError as exc:
        typer.echo(f"dialer demo: {exc}", err=True)
        raise typer.Exit(1) from None

    from dialer.commands import report

    console.rule("Reports")
    report.agents(date_text=None, campaign=None, csv_out=None, tz=None, config=result.config_file)
    report.campaign(
        result.campaign, csv_out=None, hours_csv=None, date_text=None, within=12.0, config=result.config_file
    )
    console.rule("Where things are")
    wavs = result.recordings
    console.print(f"recordings: {wavs} WAV file(s) (stereo: customer left, agent right) in {result.recordings_dir}")
    console.print(f"rejected import rows with reasons: {result.rejects_file or '(none)'}")
    console.print(f"database: {result.settings.database_url}")
    console.print(f"log: {result.log_file}")
    console.print(
        f"more: dialer report agents --config {result.config_file}  |  "
        f"dialer recordings list --config {result.config_file}"
    )
    if result.interrupted:
        console.print("[yellow]ended early by Ctrl-C[/]")
    if result.effective == 0 or wavs == 0:
        console.print(
            f"[yellow]note:[/] this run made {result.effective} effective call(s) and {wavs} recording(s); "
            "a longer run (--minutes 3) makes more"
        )
        if check:
            raise typer.Exit(1)
