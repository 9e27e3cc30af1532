"""The `dialer` command line: one typer app with a sub-app per area.

Each area keeps its commands in its own module under ``dialer/commands/`` and is
mounted here, so this file stays a table of contents.
"""

from __future__ import annotations

import typer

from dialer.commands import demo as demo_command
from dialer.commands import run as run_command
from dialer.commands import simulate as simulate_commands
from dialer.commands import sip as sip_commands

app = typer.Typer(
    name="dialer",
    help="An asyncio SIP dialer with ACD. Run `dialer COMMAND --help` for details.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command(name="run")(run_command.run)
app.command(name="demo")(demo_command.demo)
app.add_typer(sip_commands.app, name="sip")
app.add_typer(simulate_commands.app, name="simulate")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
