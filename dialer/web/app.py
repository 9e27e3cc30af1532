"""The console's FastAPI application: :func:`create_app` wires pages, API, WebSockets and security.

What every request goes through: security headers (a strict Content-Security-Policy: the
console loads nothing from other origins and runs no inline script), the session lookup
(:mod:`dialer.web.deps`), and error handlers that answer a page request with the login page
or an error page and an API request with JSON naming the field and the fix. The only routes
without a session are ``/login`` and ``/static``; ``/openapi.json`` needs one too.

WebSockets: ``/ws/wallboard`` (supervisors and up) streams the :class:`LiveState` snapshot
and then deltas; ``/ws/agent`` streams an agent's own entity to the agent page. Both check
the session cookie and the ``Origin`` header (a WebSocket is not covered by CORS) before
accepting.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import structlog
from fastapi import FastAPI, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocketDisconnect, WebSocketState

from dialer.web import api, pages
from dialer.web.auth import COOKIE_NAME, LoginThrottle, SessionStore, WebSession, role_allows
from dialer.web.backend import ConsoleBackend
from dialer.web.deps import CsrfFailed, Forbidden, LoginRequired, WebContext, current_session, template_context
from dialer.web.live import LiveState, WallboardClient
from dialer.web.models import Role, User
from infra.bus import EventBus
from infra.settings import Settings

__all__ = ["create_app"]

log = structlog.get_logger(__name__)

HERE = Path(__file__).resolve().parent
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
)
_SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]
# How often an idle WebSocket re-checks that its session still exists (logout, expiry).
WS_SESSION_CHECK_S = 15.0


class SecurityHeaders:
    """Pure ASGI middleware (works for streaming responses, leaves WebSockets alone)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers.extend(h for h in _SECURITY_HEADERS if h[0] not in present)
                if scope["path"] != "/static" and not scope["path"].startswith("/static/"):
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or request.url.path == "/openapi.json"


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "form", "header")]
    where = loc[0] if loc else ""
    name = ".".join(parts) or str(where)
    return f"{where} field {name!r}" if where in ("query", "path", "header") else f"field {name!r}"


def _qa_router(settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]) -> Any:
    """Recordings search, playback and QA scoring (recordings.web), behind the console's roles."""
    from dialer.web.deps import require
    from dialer.web.models import Role
    from recordings.qa import QaForms
    from recordings.web import make_router

    return make_router(
        sessionmaker,
        lambda role, write=False: require(Role(role), csrf=write),
        root=settings.recordings.root(settings.site.data_dir),
        forms=QaForms.from_config(settings.recordings.qa_forms),
        timezone=settings.site.timezone,
    )


def create_app(
    *,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    bus: EventBus,
    backend: ConsoleBackend,
    live: LiveState | None = None,
    clock: Callable[[], float] = time.time,
) -> FastAPI:
    """The console app. ``clock`` (epoch seconds) drives session expiry and wallboard times."""
    http = settings.http
    secret = http.secret_key
    if secret is None:
        secret = secrets.token_urlsafe(32)
        log.warning("console.ephemeral_secret", hint="set [http] secret_key so sessions survive a restart")
    if live is None:
        live = LiveState(clock=clock, client_queue_limit=http.wallboard_client_queue)
    live.attach(bus)
    ctx = WebContext(
        settings=settings,
        sessionmaker=sessionmaker,
        bus=bus,
        backend=backend,
        live=live,
        sessions=SessionStore(
            secret, idle_s=http.session_idle_minutes * 60.0, absolute_s=http.session_max_hours * 3600.0, clock=clock
        ),
        throttle=LoginThrottle(clock=clock),
        templates=Jinja2Templates(directory=str(HERE / "templates")),
        uploads_dir=settings.site.data_dir / "uploads",
        clock=clock,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await _load_agent_names(ctx)
        try:
            yield
        finally:
            ctx.live.detach()

    app = FastAPI(
        title="Dialer console API",
        version="1",
        description="Wallboard, supervisor actions, agent page, campaigns, call lists and reports. "
        "Log in with POST /api/session, then send the returned csrf_token as X-CSRF-Token on every change.",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.state.web = ctx
    app.add_middleware(SecurityHeaders)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.include_router(api.router)
    app.include_router(pages.router)
    app.include_router(_qa_router(settings, sessionmaker))
    _install_error_handlers(app, ctx)

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi(request: Request) -> JSONResponse:
        session = current_session(request)
        if session is None or not session.authenticated:
            raise LoginRequired()
        return JSONResponse(app.openapi())

    @app.websocket("/ws/wallboard")
    async def ws_wallboard(websocket: WebSocket) -> None:
        session = await _ws_session(ctx, websocket, Role.SUPERVISOR)
        if session is not None:
            await _stream(ctx, websocket, session, ctx.live.connect())

    @app.websocket("/ws/agent")
    async def ws_agent(websocket: WebSocket) -> None:
        session = await _ws_session(ctx, websocket, Role.AGENT)
        if session is None:
            return
        if session.agent_id is None:
            await websocket.close(code=4403, reason="this user is not linked to an agent")
            return
        await _stream(ctx, websocket, session, ctx.live.connect(only_agent=session.agent_id))

    return app


async def _load_agent_names(ctx: WebContext) -> None:
    async with ctx.sessionmaker() as session:
        rows = await session.execute(select(User.agent_id, User.username).where(User.agent_id.is_not(None)))
        ctx.live.set_agent_names({a: u for a, u in rows.all() if a is not None})


async def _ws_session(ctx: WebContext, websocket: WebSocket, role: Role) -> WebSession | None:
    origin = websocket.headers.get("origin")
    host = websocket.headers.get("host")
    if origin is not None and (host is None or origin.split("://", 1)[-1] != host):
        await websocket.close(code=4403, reason="cross-origin WebSocket refused")
        return None
    session = ctx.sessions.from_cookie(websocket.cookies.get(COOKIE_NAME))
    if session is None or not session.authenticated:
        await websocket.close(code=4401, reason="log in first")
        return None
    if not role_allows(session.role, role):
        await websocket.close(code=4403, reason=f"this needs the {role.value} role")
        return None
    return session


async def _stream(ctx: WebContext, websocket: WebSocket, session: WebSession, client: WallboardClient) -> None:
    """Send the snapshot, then batches of deltas, until the browser leaves or the session ends."""
    await websocket.accept()
    cookie = websocket.cookies.get(COOKIE_NAME)

    async def pump() -> None:
        while True:
            try:
                message = await asyncio.wait_for(client.next_message(ctx.live), WS_SESSION_CHECK_S)
            except TimeoutError:
                if ctx.sessions.from_cookie(cookie) is None:
                    await websocket.close(code=4401, reason="session ended")
                    return
                continue
            await websocket.send_text(message)

    async def drain() -> None:
        # The browser sends nothing we need; reading is how a disconnect is noticed.
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return

    tasks = [asyncio.create_task(pump()), asyncio.create_task(drain())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        ctx.live.disconnect(client)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError, OSError):
                await task
        if (
            websocket.application_state == WebSocketState.CONNECTED
            and websocket.client_state == WebSocketState.CONNECTED
        ):
            with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
                await websocket.close()


def _install_error_handlers(app: FastAPI, ctx: WebContext) -> None:
    def page_error(request: Request, status: int, title: str, message: str) -> HTMLResponse:
        session = current_session(request)
        return ctx.templates.TemplateResponse(
            request,
            "error.html",
            template_context(request, session, flashes=[], title=title, message=message),
            status_code=status,
        )

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired) -> Response:
        message = str(exc) or "log in first: POST /api/session with username and password, or open /login"
        if _wants_json(request):
            return JSONResponse({"detail": message, "message": message}, status_code=401)
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        from urllib.parse import quote

        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, exc: Forbidden) -> Response:
        session: WebSession | None = current_session(request)
        log.info("console.forbidden", path=request.url.path, username=session.username if session else None)
        if _wants_json(request):
            return JSONResponse({"detail": str(exc), "message": str(exc)}, status_code=403)
        return page_error(request, 403, "Not allowed", str(exc))

    @app.exception_handler(CsrfFailed)
    async def csrf_failed(request: Request, exc: CsrfFailed) -> Response:
        message = (
            "missing or wrong CSRF token: send the session's csrf_token as the X-CSRF-Token header (reload the page)"
        )
        if _wants_json(request):
            return JSONResponse({"detail": message, "message": message}, status_code=403)
        return page_error(
            request, 403, "Form expired", "This form was opened in an older session. Reload the page and try again."
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        errors = exc.errors()
        lines = [
            f"{_field(tuple(e.get('loc', ())))}: {str(e.get('msg', 'invalid')).removeprefix('Value error, ')}"
            for e in errors
        ]
        message = "; ".join(lines) or "invalid request"
        if _wants_json(request):
            detail = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in errors]
            return JSONResponse({"detail": detail, "message": message}, status_code=422)
        return page_error(request, 422, "Invalid form", message)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if _wants_json(request) or request.url.path.startswith("/static/"):
            return JSONResponse(
                {"detail": exc.detail, "message": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers
            )
        titles = {404: "Not found", 405: "Method not allowed"}
        return page_error(request, exc.status_code, titles.get(exc.status_code, "Error"), str(exc.detail))
