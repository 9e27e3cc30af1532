"""Console access: argon2 passwords, server-side sessions in signed cookies, CSRF tokens, roles.

Passwords are hashed with argon2id (argon2-cffi's defaults, RFC 9106) and checked off the
event loop, since one check costs tens of milliseconds. A session lives on the server
(:class:`SessionStore`); the browser holds only its random id, signed with itsdangerous so a
forged or truncated cookie is refused before any lookup. A session ends after an idle period,
at an absolute age, or at logout, whichever comes first; logging in always starts a new
session id (no session fixation). Every session, even the anonymous one that shows the login
form, carries a synchronizer token: state-changing requests must send it back in the
``X-CSRF-Token`` header or the ``csrf_token`` form field.

Sessions are kept in memory: a restart logs everybody out, and several console nodes behind
one address need sticky sessions.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from itsdangerous import BadSignature, URLSafeSerializer

from dialer.web.models import ROLE_RANK, Role

__all__ = [
    "COOKIE_NAME",
    "CSRF_FIELD",
    "CSRF_HEADER",
    "LoginThrottle",
    "SessionStore",
    "WebSession",
    "hash_password",
    "role_allows",
    "verify_password",
]

COOKIE_NAME = "dialer_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"

_hasher = argon2.PasswordHasher()
# Verified when the username is unknown, so a failed login takes as long either way.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    if len(password) < 8:
        raise ValueError("the password is too short: use at least 8 characters")
    return _hasher.hash(password)


def _verify_blocking(password_hash: str | None, password: str) -> tuple[bool, bool]:
    try:
        _hasher.verify(password_hash or _DUMMY_HASH, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False, False
    if password_hash is None:
        return False, False
    return True, _hasher.check_needs_rehash(password_hash)


async def verify_password(password_hash: str | None, password: str) -> tuple[bool, bool]:
    """(matches, needs rehash); ``None`` hash (unknown user) always fails after the same work."""
    return await asyncio.to_thread(_verify_blocking, password_hash, password)


def role_allows(role: str | None, needed: Role) -> bool:
    if role is None:
        return False
    try:
        return ROLE_RANK[Role(role)] >= ROLE_RANK[needed]
    except ValueError:
        return False


@dataclass(slots=True)
class WebSession:
    sid: str
    csrf: str
    created: float
    last_seen: float
    user_id: int | None = None
    username: str | None = None
    role: str | None = None
    agent_id: str | None = None
    flash: list[str] = field(default_factory=list)

    @property
    def authenticated(self) -> bool:
        return self.user_id is not None

    def csrf_ok(self, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(token.encode(), self.csrf.encode())


class SessionStore:
    """Server-side sessions with idle and absolute expiry, on an injectable clock."""

    def __init__(
        self,
        secret: str,
        *,
        idle_s: float,
        absolute_s: float,
        clock: Callable[[], float] = time.time,
        max_sessions: int = 100_000,
    ) -> None:
        self.idle_s = idle_s
        self.absolute_s = absolute_s
        self.clock = clock
        self.max_sessions = max_sessions
        self._serializer = URLSafeSerializer(secret, salt="dialer.web.session")
        self._sessions: dict[str, WebSession] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def cookie_value(self, session: WebSession) -> str:
        return str(self._serializer.dumps(session.sid))

    def _expired(self, s: WebSession, now: float) -> bool:
        return now - s.last_seen > self.idle_s or now - s.created > self.absolute_s

    def create(self) -> WebSession:
        now = self.clock()
        if len(self._sessions) >= self.max_sessions:
            self.prune()
            if len(self._sessions) >= self.max_sessions:
                # Anonymous sessions are the cheap ones to lose: drop the oldest of them.
                anonymous = sorted(
                    (s for s in self._sessions.values() if not s.authenticated), key=lambda s: s.last_seen
                )
                for s in anonymous[: max(1, len(anonymous) // 2)]:
                    self._sessions.pop(s.sid, None)
        session = WebSession(sid=secrets.token_urlsafe(32), csrf=secrets.token_urlsafe(32), created=now, last_seen=now)
        self._sessions[session.sid] = session
        return session

    def from_cookie(self, cookie: str | None) -> WebSession | None:
        """The live session for a cookie value (touching it), or None if absent, forged or expired."""
        if not cookie:
            return None
        try:
            sid = self._serializer.loads(cookie)
        except BadSignature:
            return None
        if not isinstance(sid, str):
            return None
        session = self._sessions.get(sid)
        if session is None:
            return None
        now = self.clock()
        if self._expired(session, now):
            del self._sessions[sid]
            return None
        session.last_seen = now
        return session

    def login(
        self, old: WebSession | None, *, user_id: int, username: str, role: str, agent_id: str | None
    ) -> WebSession:
        """A fresh session (new id and CSRF token) for the user; the old one ends."""
        if old is not None:
            self._sessions.pop(old.sid, None)
        session = self.create()
        session.user_id, session.username, session.role, session.agent_id = user_id, username, role, agent_id
        return session

    def end(self, session: WebSession) -> None:
        self._sessions.pop(session.sid, None)

    def end_user(self, user_id: int) -> int:
        """End every session of a user (password changed, account disabled)."""
        sids = [s.sid for s in self._sessions.values() if s.user_id == user_id]
        for sid in sids:
            del self._sessions[sid]
        return len(sids)

    def prune(self) -> int:
        now = self.clock()
        dead = [sid for sid, s in self._sessions.items() if self._expired(s, now)]
        for sid in dead:
            del self._sessions[sid]
        return len(dead)


class LoginThrottle:
    """Slows password guessing: after ``limit`` failures for a username, refuse it for ``lock_s``."""

    def __init__(
        self, *, limit: int = 5, window_s: float = 300.0, lock_s: float = 300.0, clock: Callable[[], float]
    ) -> None:
        self.limit, self.window_s, self.lock_s, self.clock = limit, window_s, lock_s, clock
        self._failures: dict[str, list[float]] = {}

    def locked_for(self, username: str) -> float:
        """Seconds the username stays locked, 0 if it may try."""
        now = self.clock()
        recent = [t for t in self._failures.get(username.lower(), []) if now - t < self.window_s + self.lock_s]
        if len(recent) >= self.limit:
            return max(0.0, recent[-1] + self.lock_s - now)
        return 0.0

    def failed(self, username: str) -> None:
        now = self.clock()
        key = username.lower()
        self._failures[key] = [*[t for t in self._failures.get(key, []) if now - t < self.window_s][-self.limit :], now]
        if len(self._failures) > 10_000:
            self._failures.pop(next(iter(self._failures)))

    def succeeded(self, username: str) -> None:
        self._failures.pop(username.lower(), None)
