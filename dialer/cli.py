"""The `dialer` command line: one typer app with a sub-app per area.

Each area keeps its commands in its own module under ``dialer/commands/`` and is
mounted here, so this file stays a table of contents.
"""

from __future__ import annotations

import typer

from dialer.commands import campaign as campaign_commands
from dialer.commands import config as config_commands
from dialer.commands import db as db_commands
from dialer.commands import demo as demo_command
from dialer.commands import dnc as dnc_commands
from dialer.commands import leads as leads_commands
from dialer.commands import lists as lists_commands
from dialer.commands import recordings as recordings_commands
from dialer.commands import report as report_commands
from dialer.commands import run as run_command
from dialer.commands import simulate as simulate_commands
from dialer.commands import sip as sip_commands
from dialer.commands import web as web_commands

app = typer.Typer(
    name="dialer",
    help="An asyncio SIP dialer with ACD. Run `dialer COMMAND --help` for details.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command(name="run")(run_command.run)
app.command(name="demo")(demo_command.demo)
app.add_typer(sip_commands.app, name="sip")
app.add_typer(web_commands.app, name="web")
app.add_typer(simulate_commands.app, name="simulate")
app.add_typer(config_commands.app, name="config")
app.add_typer(db_commands.app, name="db")
app.add_typer(campaign_commands.app, name="campaign")
app.add_typer(lists_commands.app, name="lists")
app.add_typer(dnc_commands.app, name="dnc")
app.add_typer(leads_commands.app, name="leads")
app.add_typer(recordings_commands.app, name="recordings")
app.add_typer(report_commands.app, name="report")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
