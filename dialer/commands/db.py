"""`dialer db upgrade`: apply the Alembic migrations shipped with the program."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy.engine import make_url

from dialer.commands.config import ConfigOption, run_handling_errors, settings_or_exit

app = typer.Typer(help="Database schema.", no_args_is_help=True)


@app.command("upgrade")
def upgrade(
    config: ConfigOption = None,
    revision: Annotated[str, typer.Option(help="Target revision")] = "head",
) -> None:
    """Migrate the database (SQLite file or PostgreSQL from database.url) to the newest schema."""
    from infra.db import create_engine, migrate

    settings = settings_or_exit(config)
    url = settings.database_url

    async def _go() -> str | None:
        engine = create_engine(url)
        try:
            return await migrate(engine, revision)
        finally:
            await engine.dispose()

    current = run_handling_errors(_go)
    typer.echo(f"database {make_url(url).render_as_string(hide_password=True)} at revision {current}")
