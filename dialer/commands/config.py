"""`dialer config check FILE`, and the helpers every database command shares.

Every command takes ``--config FILE`` (or ``$DIALER_CONFIG``, else ``./dialer.toml`` when it
exists, else defaults). A bad file stops the command with one line naming the file, the
key, the bad value and what is allowed, and exit status 2. The database is migrated to the
newest schema before a command uses it, unless ``database.migrate_on_start`` is false.
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, NoReturn, TypeVar

import typer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infra.settings import ConfigError, Settings, default_config_path, load_settings

app = typer.Typer(help="Check configuration files.", no_args_is_help=True)

T = TypeVar("T")

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Settings TOML file (default: $DIALER_CONFIG, else ./dialer.toml if present)",
        envvar="DIALER_CONFIG",
        show_envvar=False,
    ),
]

EXIT_ERROR = 1
EXIT_CONFIG = 2


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    """Print one line on stderr and exit."""
    sys.stderr.write(f"error: {message}\n")
    raise typer.Exit(code)


def settings_or_exit(path: Path | None, *, verbose: bool = False) -> Settings:
    """Load settings and configure logging; a bad file ends the command with exit status 2."""
    from infra.logging import configure_logging

    try:
        settings = load_settings(path if path is not None else default_config_path())
    except ConfigError as exc:
        fail(str(exc), EXIT_CONFIG)
    # Commands print their own results; logs on stderr only say what went wrong.
    configure_logging(level="debug" if verbose else "warning", stream=sys.stderr, fmt=settings.logging.format)
    return settings


def run_with_db(settings: Settings, work: Callable[[async_sessionmaker[AsyncSession]], Awaitable[T]]) -> T:
    """Open the database (migrating it first), run ``work``, dispose of the engine."""
    from infra.db import create_engine, create_sessionmaker, migrate

    async def _go() -> T:
        db = settings.database
        engine = create_engine(settings.database_url, echo=db.echo, pool_size=db.pool_size)
        try:
            if settings.database.migrate_on_start:
                await migrate(engine)
            return await work(create_sessionmaker(engine))
        finally:
            await engine.dispose()

    return run_handling_errors(_go, database=settings.database_url)


def run_handling_errors(coro_factory: Callable[[], Awaitable[T]], *, database: str | None = None) -> T:
    """Run a coroutine; known user errors become one line on stderr and a non-zero exit.

    Database errors (SQLAlchemy's ``DBAPIError``: locked, unreachable, not migrated) become
    one line naming the database (``database``, its URL, password hidden) and the fix,
    instead of a driver traceback.
    """
    from sqlalchemy.exc import DBAPIError

    from dialer.campaigns import CampaignError
    from dialer.lists.reader import ListFileError

    try:
        return asyncio.run(_as_coroutine(coro_factory))
    except ConfigError as exc:
        fail(str(exc), EXIT_CONFIG)
    except (CampaignError, ListFileError) as exc:
        fail(str(exc))
    except DBAPIError as exc:
        fail(database_error_message(exc, database))
    except OSError as exc:
        fail(f"{exc.filename or ''}: {exc.strerror or exc}; check the path and permissions".lstrip(": "))


def database_error_message(exc: Exception, database: str | None) -> str:
    """One line for a database error: which database, what happened, what to do."""
    where = f"database {_safe_url(database)}" if database else "the database"
    original = getattr(exc, "orig", None) or exc
    detail = " ".join(str(original).split()) or type(original).__name__
    lowered = detail.lower()
    if "database is locked" in lowered or "database table is locked" in lowered:
        return (
            f"{where} is locked by another writer; retry when it is done, "
            "or use PostgreSQL (database.url) for concurrent writers"
        )
    if re.search(r'database "[^"]*" does not exist', lowered):
        return f"{where} does not exist; create it (createdb) or fix database.url"
    if any(m in lowered for m in ("no such table", "no such column", "relation", "column")) and (
        "no such" in lowered or "does not exist" in lowered
    ):
        return f"{where}: {detail[:200]}; run `dialer db upgrade` to bring its schema up to date"
    if "readonly" in lowered or "read-only" in lowered:
        return f"{where} is read-only ({detail[:200]}); check the file's permissions"
    return f"{where}: {type(original).__name__}: {detail[:200]}; check that it is reachable and retry"


async def _as_coroutine(factory: Callable[[], Awaitable[T]]) -> T:
    return await factory()


@app.command("check")
def check(file: Annotated[Path, typer.Argument(help="The settings TOML file to validate")]) -> None:
    """Validate a settings file (every section and every [campaigns.<name>]) without starting anything."""
    from dialer.campaigns import settings_from_config
    from dialer.services import acd_config_from_settings

    try:
        settings = load_settings(file)
        campaigns = settings_from_config(settings.campaigns, str(file))
        acd_config_from_settings(settings)
    except ConfigError as exc:
        fail(str(exc), EXIT_CONFIG)
    except ValueError as exc:
        fail(f"{file}: {exc}", EXIT_CONFIG)
    names = ", ".join(sorted(campaigns)) or "none"
    typer.echo(f"ok: {file}: database {_safe_url(settings.database_url)}; campaigns: {names}")


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
