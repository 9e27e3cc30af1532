"""`dialer web ...`: console users, and the console alone for development.

``adduser`` and ``passwd`` prompt for the password (twice) unless ``--password-stdin`` is given,
so passwords never appear in the shell history or the process list. ``serve`` runs the web
console against the configured database with the in-process dev backend (no SIP): the same
pages and API as ``dialer run``, for working on the console or trying it out.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infra.settings import ConfigError, Settings, default_config_path, load_settings

app = typer.Typer(help="Web console: users and a standalone development server.", no_args_is_help=True)

Sessions = async_sessionmaker[AsyncSession]
ROLES = ("agent", "supervisor", "manager", "admin")
ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", help="TOML config file (see config/example.toml)")]


def _settings(config: Path | None, *, quiet: bool = True) -> Settings:
    try:
        settings = load_settings(config if config is not None else default_config_path())
    except ConfigError as exc:
        typer.echo(f"dialer web: {exc}", err=True)
        raise typer.Exit(2) from None
    if quiet:
        from infra.logging import configure_logging

        configure_logging(level="warning", stream=sys.stderr)
    return settings


def _password(password_stdin: bool) -> str:
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    if len(password) < 8:
        typer.echo("dialer web: the password is too short: use at least 8 characters", err=True)
        raise typer.Exit(2)
    return password


async def _with_db(settings: Settings, work: Callable[[Sessions], Awaitable[None]]) -> None:
    from infra.db import create_engine, create_sessionmaker, migrate

    engine = create_engine(settings.database_url)
    try:
        if settings.database.migrate_on_start:
            await migrate(engine)
        await work(create_sessionmaker(engine))
    finally:
        await engine.dispose()


@app.command()
def adduser(
    username: Annotated[str, typer.Argument(help="Login name: letters, digits and _ . @ -")],
    role: Annotated[str, typer.Option("--role", "-r", help="agent, supervisor, manager or admin")],
    agent_id: Annotated[
        str | None, typer.Option("--agent-id", help="The ACD agent this login speaks for (agents)")
    ] = None,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from stdin")] = False,
    config: ConfigOption = None,
) -> None:
    """Create a console user; the password is asked for twice."""
    import re

    from dialer.web.auth import hash_password
    from dialer.web.models import User

    if role not in ROLES:
        raise typer.BadParameter(f"--role {role!r}: use one of {', '.join(ROLES)}")
    if not re.fullmatch(r"[A-Za-z0-9_.@-]{1,64}", username):
        raise typer.BadParameter(f"{username!r}: use 1-64 letters, digits and _ . @ -")
    if role == "agent" and not agent_id:
        typer.echo("dialer web: note: an agent without --agent-id can log in but has no agent page", err=True)
    settings = _settings(config)
    password_hash = hash_password(_password(password_stdin))

    async def work(sessionmaker: Sessions) -> None:
        async with sessionmaker() as session:
            session.add(User(username=username, password_hash=password_hash, role=role, agent_id=agent_id))
            try:
                await session.commit()
            except IntegrityError:
                taken = f"user {username!r}" + (f" or agent id {agent_id!r}" if agent_id else "")
                typer.echo(f"dialer web: {taken} already exists; pick another or use `dialer web passwd`", err=True)
                raise typer.Exit(1) from None

    asyncio.run(_with_db(settings, work))
    typer.echo(f"user {username} ({role}{', agent ' + agent_id if agent_id else ''}) created")


@app.command()
def passwd(
    username: str,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from stdin")] = False,
    config: ConfigOption = None,
) -> None:
    """Set a user's password (running consoles keep existing sessions until they expire)."""
    from dialer.web.auth import hash_password
    from dialer.web.models import User

    settings = _settings(config)
    password_hash = hash_password(_password(password_stdin))

    async def work(sessionmaker: Sessions) -> None:
        async with sessionmaker() as session:
            user = (await session.execute(select(User).where(User.username == username))).scalar_one_or_none()
            if user is None:
                typer.echo(f"dialer web: no user {username!r}; see `dialer web users`", err=True)
                raise typer.Exit(1)
            user.password_hash = password_hash
            await session.commit()

    asyncio.run(_with_db(settings, work))
    typer.echo(f"password of {username} changed")


@app.command()
def users(config: ConfigOption = None) -> None:
    """List console users."""
    from dialer.web.models import User

    settings = _settings(config)

    async def work(sessionmaker: Sessions) -> None:
        async with sessionmaker() as session:
            for u in (await session.execute(select(User).order_by(User.username))).scalars():
                last = u.last_login_at.strftime("%Y-%m-%d %H:%M") if u.last_login_at else "never"
                flags = " disabled" if u.disabled else ""
                typer.echo(f"{u.username:<24} {u.role:<10} agent={u.agent_id or '-':<8} last login {last}{flags}")

    asyncio.run(_with_db(settings, work))


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Listen address (default: [http] host)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: [http] port)")] = None,
    config: ConfigOption = None,
) -> None:
    """Run the web console alone against the database, with the in-process dev backend (no SIP)."""
    settings = _settings(config, quiet=False)
    from infra.logging import configure_logging

    configure_logging(level=settings.logging.level, fmt=settings.logging.format)
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    try:
        asyncio.run(_serve(settings, host or settings.http.host, settings.http.port if port is None else port))
    except OSError as exc:
        typer.echo(f"dialer web serve: {exc.strerror or exc}", err=True)
        raise typer.Exit(1) from None


async def _serve(settings: Settings, host: str, port: int) -> None:
    from dialer.web import LocalBackend, create_app, serve_console
    from infra.bus import EventBus
    from infra.db import create_engine, create_sessionmaker, migrate

    engine = create_engine(settings.database_url)
    try:
        if settings.database.migrate_on_start:
            await migrate(engine)
        sessionmaker = create_sessionmaker(engine)
        bus = EventBus()
        backend = LocalBackend(bus, sessionmaker, wrapup_s=settings.acd.wrapup_seconds)
        app_ = create_app(settings=settings, sessionmaker=sessionmaker, bus=bus, backend=backend)
        server = await serve_console(app_, host, port)
        typer.echo(f"web console on http://{host}:{server.port}/ (dev backend; Ctrl-C stops)", err=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        waiter = asyncio.create_task(stop.wait())
        assert server.task is not None
        await asyncio.wait([waiter, server.task], return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        await server.stop()
        backend.close()
    finally:
        await engine.dispose()
