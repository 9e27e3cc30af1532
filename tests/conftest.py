"""Shared fixtures for the whole suite. Keep this file small and generic.

``postgres_server``: a throw-away PostgreSQL cluster for the session (initdb into a temp
dir, ``pg_ctl start`` on 127.0.0.1 at a free port, trust auth, fsync off). As root it runs
as the ``postgres`` OS user, since PostgreSQL refuses to run as root. When it cannot start,
tests that need it FAIL with the reason if ``$CI`` is set, and are skipped with the reason
otherwise: they never pass silently. Use :func:`require_postgres` to get its URL.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class PostgresServer:
    """A running cluster (``url`` set) or why there is none (``error`` set)."""

    host: str = "127.0.0.1"
    port: int = 0
    user: str = "postgres"
    error: str | None = None

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+asyncpg://{self.user}@{self.host}:{self.port}/{database}"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pg_bin() -> Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    bindir = _pg_bin()
    if bindir is None:
        yield PostgresServer(error="PostgreSQL binaries not found: apt-get install postgresql (scripts/setup --test)")
        return
    prefix: list[str] = []
    workdir = Path(tempfile.mkdtemp(prefix="dialer-pg-"))
    if os.geteuid() == 0:
        try:
            pg_user = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(workdir, ignore_errors=True)
            yield PostgresServer(error="running as root and there is no 'postgres' OS user to run the server as")
            return
        os.chown(workdir, pg_user.pw_uid, pg_user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    data = workdir / "data"
    log = workdir / "server.log"
    port = _free_port()
    server = PostgresServer(port=port)
    started = False
    try:
        subprocess.run(
            [*prefix, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
             "--locale=C", "--no-sync"],
            check=True, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        options = (
            f"-h 127.0.0.1 -p {port} -k {workdir} -F -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=50"
        )
        subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log), "-w", "-t", "60",
             "start"],
            check=True, capture_output=True, text=True, timeout=90,
        )  # fmt: skip
        started = True
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        detail = getattr(exc, "stderr", None) or ""
        if log.exists():
            detail += " " + log.read_text(errors="replace")[-500:]
        server.error = f"could not start a throw-away PostgreSQL in {workdir}: {exc} {detail.strip()}"[:1500]
    try:
        yield server
    finally:
        if started:
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                subprocess.run(
                    [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                    check=False, capture_output=True, timeout=60,
                )  # fmt: skip
        shutil.rmtree(workdir, ignore_errors=True)


def require_postgres(server: PostgresServer) -> PostgresServer:
    """Fail (under CI) or skip (elsewhere) with the reason when there is no server."""
    if server.error is not None:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required under CI: {server.error}")
        pytest.skip(f"PostgreSQL unavailable: {server.error}")
    return server


TEMPLATE = "dialer_template"


async def _admin(server: PostgresServer, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(host=server.host, port=server.port, user=server.user, database="postgres")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _template_exists(server: PostgresServer) -> bool:
    import asyncpg

    conn = await asyncpg.connect(host=server.host, port=server.port, user=server.user, database="postgres")
    try:
        return bool(await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", TEMPLATE))
    finally:
        await conn.close()


def _in_thread(fn, *args):  # type: ignore[no-untyped-def]
    # Session fixtures may be first requested from inside a running event loop (an async
    # fixture), where asyncio.run() is refused: run the work on a thread of its own.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(fn, *args).result()


@pytest.fixture(scope="session")
def postgres_template(postgres_server: PostgresServer) -> Iterator[PostgresServer]:
    """The server with one migrated template database for the whole session (every test
    directory shares it; tests copy it with CREATE DATABASE ... TEMPLATE)."""
    import asyncio

    from infra.db import run_migrations_blocking

    if postgres_server.error is None:
        try:
            if not _in_thread(asyncio.run, _template_exists(postgres_server)):
                _in_thread(asyncio.run, _admin(postgres_server, f'CREATE DATABASE "{TEMPLATE}"'))
            _in_thread(run_migrations_blocking, postgres_server.url(TEMPLATE))
        except Exception as exc:  # any failure here means: no usable PostgreSQL
            postgres_server.error = f"could not prepare the template database: {type(exc).__name__}: {exc}"
    yield postgres_server
