"""Running the console inside the dialer's own event loop, next to the SIP stack.

:func:`serve_console` binds the listening socket itself (so a taken port is an ``OSError`` with
a clear message at start, and port 0 works for tests), then runs ``uvicorn.Server.serve`` as a
task on the running loop. uvicorn's own signal handling is switched off: the application owns
SIGTERM and stops the console through :meth:`ConsoleServer.stop`. :class:`ConsoleService` is
the :class:`dialer.app.Service` that ``dialer run`` starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable, Generator
from typing import TYPE_CHECKING

import structlog
import uvicorn
from fastapi import FastAPI

from dialer.web.backend import ConsoleBackend, LocalBackend
from dialer.web.live import LiveState

if TYPE_CHECKING:
    from dialer.app import DialerApp

__all__ = ["ConsoleServer", "ConsoleService", "console_service_factory", "serve_console"]

log = structlog.get_logger(__name__)


class ConsoleServer(uvicorn.Server):
    """A uvicorn server that leaves signals to the application and knows its task and port."""

    task: asyncio.Task[None] | None = None
    port: int = 0

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # the dialer app owns SIGINT/SIGTERM and calls stop()

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, close connections (WebSockets get a close frame), run the app's shutdown."""
        self.should_exit = True
        task = self.task
        if task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            self.force_exit = True
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        log.info("console.stopped", port=self.port)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise OSError(
            exc.errno, f"web console cannot listen on {host}:{port} ({exc.strerror}); set [http] port to a free port"
        ) from None
    sock.setblocking(False)
    return sock


async def serve_console(app: FastAPI, host: str, port: int, *, startup_timeout: float = 10.0) -> ConsoleServer:
    """Start serving ``app`` on ``host:port`` as a task of the running loop; returns once it listens."""
    sock = _bind(host, port)
    config = uvicorn.Config(
        app,
        lifespan="on",
        log_config=None,
        access_log=False,
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
        timeout_graceful_shutdown=5,
        proxy_headers=False,
        server_header=False,
    )
    server = ConsoleServer(config)
    server.port = sock.getsockname()[1]

    async def run() -> None:
        try:
            await server.serve(sockets=[sock])
        except SystemExit:
            # uvicorn exits the process when the app's startup fails; here that is an error of the task.
            log.error("console.startup_failed", port=server.port)
        finally:
            sock.close()

    server.task = asyncio.create_task(run(), name="web-console")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + startup_timeout
    while not server.started:
        if server.task.done():
            raise RuntimeError("the web console failed to start; see the log above for the reason")
        if loop.time() > deadline:
            await server.stop()
            raise RuntimeError(f"the web console did not start within {startup_timeout:g} s")
        await asyncio.sleep(0.01)
    log.info("console.listening", url=f"http://{host}:{server.port}/")
    return server


class ConsoleService:
    """The web console as a :class:`dialer.app.Service` of ``dialer run``."""

    name = "web"

    def __init__(self, dialer: DialerApp, backend: ConsoleBackend) -> None:
        self.dialer = dialer
        self.backend = backend
        self.live: LiveState | None = None
        self.server: ConsoleServer | None = None

    async def start(self) -> None:
        from dialer.web.app import create_app

        d = self.dialer
        assert d.sessionmaker is not None, "the console starts after the database"
        http = d.settings.http
        self.live = LiveState(client_queue_limit=http.wallboard_client_queue)
        app = create_app(
            settings=d.settings, sessionmaker=d.sessionmaker, bus=d.bus, backend=self.backend, live=self.live
        )
        self.server = await serve_console(app, http.host, http.port)

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
            self.server = None
        if self.live is not None:
            self.live.detach()


def console_service_factory(
    backend_factory: Callable[[DialerApp], ConsoleBackend] | None = None,
) -> Callable[[DialerApp], Awaitable[ConsoleService | None]]:
    """A ``ServiceFactory`` for ``dialer.services``; without a backend factory it uses :class:`LocalBackend`."""

    async def factory(d: DialerApp) -> ConsoleService | None:
        if not d.settings.http.enabled:
            return None
        assert d.sessionmaker is not None
        backend = backend_factory(d) if backend_factory is not None else LocalBackend(d.bus, d.sessionmaker)
        return ConsoleService(d, backend)

    return factory
