"""`dialer sip serve` and `dialer sip call`: trunk and phone diagnostics."""

from __future__ import annotations

import typer

app = typer.Typer(help="SIP diagnostics: a standalone UA/registrar, and one test call.", no_args_is_help=True)
