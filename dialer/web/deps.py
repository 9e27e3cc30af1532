"""Request plumbing shared by the console's routes: the app context, sessions, roles and CSRF.

Routes declare what they need as FastAPI dependencies: ``Depends(require(Role.SUPERVISOR))``
for a page, ``Depends(require(Role.SUPERVISOR, csrf=True))`` for anything that changes
state. Failures raise :class:`LoginRequired`, :class:`Forbidden` or :class:`CsrfFailed`;
the app turns them into a redirect to the login page (pages), or a 401/403 JSON body (API).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Request, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialer.web.auth import COOKIE_NAME, CSRF_FIELD, CSRF_HEADER, LoginThrottle, SessionStore, WebSession, role_allows
from dialer.web.backend import ConsoleBackend
from dialer.web.live import LiveState
from dialer.web.models import Role
from infra.bus import EventBus
from infra.settings import Settings

__all__ = [
    "CsrfFailed",
    "Forbidden",
    "LoginRequired",
    "WebContext",
    "current_session",
    "get_context",
    "require",
    "set_session_cookie",
]

_UNSET: Any = object()
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class LoginRequired(Exception):
    """No live session: log in first."""


class Forbidden(Exception):
    """Logged in, but the role does not allow this."""


class CsrfFailed(Exception):
    """A state-changing request without the session's CSRF token."""


@dataclass
class WebContext:
    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]
    bus: EventBus
    backend: ConsoleBackend
    live: LiveState
    sessions: SessionStore
    throttle: LoginThrottle
    templates: Jinja2Templates
    uploads_dir: Path
    clock: Callable[[], float]

    def cookie_secure(self, request: Request) -> bool:
        mode = self.settings.http.secure_cookies
        if mode == "always":
            return True
        if mode == "never":
            return False
        return request.url.scheme in ("https", "wss")


def get_context(request: Request) -> WebContext:
    ctx: WebContext = request.app.state.web
    return ctx


def current_session(request: Request) -> WebSession | None:
    """The request's live session (cached on the request), or None."""
    cached = getattr(request.state, "session", _UNSET)
    if cached is not _UNSET:
        return cached  # type: ignore[no-any-return]
    session = get_context(request).sessions.from_cookie(request.cookies.get(COOKIE_NAME))
    request.state.session = session
    return session


def set_session_cookie(response: Response, request: Request, session: WebSession) -> None:
    ctx = get_context(request)
    response.set_cookie(
        COOKIE_NAME,
        ctx.sessions.cookie_value(session),
        max_age=int(ctx.sessions.absolute_s),
        httponly=True,
        samesite="lax",
        secure=ctx.cookie_secure(request),
        path="/",
    )


async def _csrf_token_of(request: Request) -> str | None:
    token = request.headers.get(CSRF_HEADER)
    if token:
        return token
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        # Starlette caches the parsed form, so the route reads it again for free.
        form = await request.form(max_part_size=1024 * 1024)
        value = form.get(CSRF_FIELD)
        return value if isinstance(value, str) else None
    return None


async def check_csrf(request: Request, session: WebSession) -> None:
    if request.method in _UNSAFE and not session.csrf_ok(await _csrf_token_of(request)):
        raise CsrfFailed()


def require(role: Role, *, csrf: bool = False) -> Callable[[Request], Awaitable[WebSession]]:
    """A dependency: the session of a user with at least ``role`` (and a valid CSRF token)."""

    async def dependency(request: Request) -> WebSession:
        session = current_session(request)
        if session is None or not session.authenticated:
            raise LoginRequired()
        if not role_allows(session.role, role):
            raise Forbidden(f"this needs the {role.value} role; you are logged in as {session.role}")
        if csrf:
            await check_csrf(request, session)
        return session

    dependency.__name__ = f"require_{role.value}{'_csrf' if csrf else ''}"
    return dependency


def may_act_for_agent(session: WebSession, agent_id: str) -> bool:
    """Agents act for themselves only; supervisors and above for anyone."""
    if role_allows(session.role, Role.SUPERVISOR):
        return True
    return session.agent_id is not None and session.agent_id == agent_id


def template_context(request: Request, session: WebSession | None, **values: Any) -> dict[str, Any]:
    return {
        "request": request,
        "session": session,
        "csrf_token": session.csrf if session is not None else "",
        "is_supervisor": session is not None and role_allows(session.role, Role.SUPERVISOR),
        "is_manager": session is not None and role_allows(session.role, Role.MANAGER),
        "is_admin": session is not None and role_allows(session.role, Role.ADMIN),
        **values,
    }
