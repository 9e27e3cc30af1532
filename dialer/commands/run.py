"""`dialer run`: the service. Loads the config, starts everything, stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path
from typing import Annotated

import typer

from infra.settings import ConfigError, Settings, default_config_path, load_settings


def run(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="TOML config file (see config/example.toml)")
    ] = None,
) -> None:
    """Run the dialer: SIP, registrar, trunk, ACD, campaigns, MQTT, web console and storage."""
    path = config if config is not None else default_config_path()
    try:
        settings = load_settings(path)
    except ConfigError as exc:
        typer.echo(f"dialer run: {exc}", err=True)
        raise typer.Exit(2) from None
    from infra.logging import configure_logging

    configure_logging(level=settings.logging.level, fmt=settings.logging.format)
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    code = asyncio.run(_main(settings))
    raise typer.Exit(code)


async def _main(settings: Settings) -> int:
    from dialer.app import DialerApp
    from dialer.services import default_services

    app = DialerApp(settings, service_factories=default_services())
    try:
        await app.start()
    except (OSError, ValueError) as exc:
        # Typical: the SIP or MQTT port is taken, or a section is inconsistent.
        sys.stderr.write(f"dialer run: cannot start: {exc}\n")
        await app.stop()
        return 1
    try:
        await app.run_until_stopped()
    finally:
        await app.stop()
    return 0
