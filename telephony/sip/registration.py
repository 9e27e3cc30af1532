"""Our registration to a carrier trunk (the UAC side of RFC 3261 §10.2), as a pure clocked core.

It decides when to send REGISTER, with which expiry, and what to do with the answer:
refresh before the binding lapses (§10.2.4), retry at once with the server's Min-Expires
after 423 (§10.2.8, §10.3 step 7), back off exponentially with jitter on transient errors
while honouring Retry-After (§20.33), and unregister with ``Expires: 0`` on stop (§10.2.2).
Digest challenges are answered by the caller (see :mod:`telephony.sip.auth`); a 401/407
reaching this core counts as a failure only when it repeats. No I/O, no clock: the caller
feeds ``now`` and arms a timer at :meth:`RegistrationClient.next_deadline`.

Theory of operation (h11 style): ``state`` changes only through :data:`TRANSITIONS`,
a table of (state, input) -> state. An input that has no row is a bug in the caller and
raises :class:`RegistrationError`. Every state has an exit: a scheduled attempt, or a
request in flight guarded by ``request_timeout``.

Refresh rule: a binding granted for ``g`` seconds is refreshed after
``max(g * refresh_fraction, g - refresh_margin)`` seconds (defaults 0.5 and 90 s: 3600 s
refreshes 90 s before expiry, leaving room for Timer F and one retry; 60 s refreshes at
30 s), and never later than ``g - min(5, g / 2)``.

Backoff rule: after the n-th consecutive failure the next attempt waits a uniformly random
time in ``[max(min_retry, hi * (1 - jitter)), hi]`` with ``hi = min(max_retry,
min_retry * 2 ** (n - 1))``, and at least Retry-After (capped at ``retry_after_cap``).
Errors that need an operator (credentials refused, 404, other 4xx, 3xx, 6xx) go to
``failed`` and retry every ~``max_retry`` so the trunk recovers by itself once fixed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Literal

__all__ = [
    "TRANSITIONS",
    "RegState",
    "RegistrationAction",
    "RegistrationClient",
    "RegistrationError",
    "RegistrationEvent",
]


class RegistrationError(RuntimeError):
    """The caller drove the registration core in a way its state table does not allow."""


class RegState(StrEnum):
    UNREGISTERED = "unregistered"  # nothing bound, nothing scheduled
    REGISTERING = "registering"  # a REGISTER is due now or in flight (first one or a refresh)
    REGISTERED = "registered"  # bound; a refresh is scheduled
    BACKOFF = "backoff"  # the last attempt failed transiently; a retry is scheduled
    FAILED = "failed"  # the last attempt needs an operator's look; a slow retry is scheduled
    UNREGISTERING = "unregistering"  # Expires: 0 in flight after stop()


class _In(StrEnum):
    START = "start"
    DUE = "due"  # the scheduled attempt's time came
    OK = "ok"  # 2xx
    AGAIN = "again"  # resend at once: 423 with a usable Min-Expires, or a first 401/407
    TRANSIENT = "transient"  # 5xx, 408, 403, timeouts
    PERMANENT = "permanent"  # other 3xx-6xx, repeated 401/407
    STOP = "stop"  # stop() while bound or in flight: send Expires: 0
    STOP_IDLE = "stop_idle"  # stop() with nothing to undo
    DONE = "done"  # the unregister got its answer (or timed out)


S = RegState
TRANSITIONS: Final[dict[RegState, dict[_In, RegState]]] = {
    S.UNREGISTERED: {_In.START: S.REGISTERING, _In.STOP_IDLE: S.UNREGISTERED},
    S.REGISTERING: {
        _In.DUE: S.REGISTERING,
        _In.OK: S.REGISTERED,
        _In.AGAIN: S.REGISTERING,
        _In.TRANSIENT: S.BACKOFF,
        _In.PERMANENT: S.FAILED,
        _In.START: S.REGISTERING,
        _In.STOP: S.UNREGISTERING,
        _In.STOP_IDLE: S.UNREGISTERED,
    },
    S.REGISTERED: {
        _In.DUE: S.REGISTERING,
        _In.START: S.REGISTERED,
        _In.STOP: S.UNREGISTERING,
        _In.STOP_IDLE: S.UNREGISTERED,  # the binding ran out before anyone polled
    },
    S.BACKOFF: {_In.DUE: S.REGISTERING, _In.START: S.BACKOFF, _In.STOP: S.UNREGISTERING, _In.STOP_IDLE: S.UNREGISTERED},
    S.FAILED: {_In.DUE: S.REGISTERING, _In.START: S.FAILED, _In.STOP: S.UNREGISTERING, _In.STOP_IDLE: S.UNREGISTERED},
    S.UNREGISTERING: {_In.DUE: S.UNREGISTERING, _In.AGAIN: S.UNREGISTERING, _In.DONE: S.UNREGISTERED},
}
del S


@dataclass(frozen=True)
class RegistrationAction:
    """Send a REGISTER now. ``expires`` goes in the Expires header (0 for ``unregister``).

    Pass ``seq`` back to :meth:`RegistrationClient.on_response` so a late answer to an
    older request cannot be mistaken for this one. Reuse one Call-ID and raise CSeq for
    every REGISTER of the same registration (RFC 3261 §10.2.4).
    """

    kind: Literal["register", "unregister"]
    expires: int
    seq: int


@dataclass(frozen=True)
class RegistrationEvent:
    """A state change, for logs and the event bus. ``cause`` is human-readable."""

    at: float
    old: RegState
    new: RegState
    cause: str
    status: int | None = None
    next_attempt: float | None = None
    bound_until: float | None = None


class RegistrationClient:
    """Keeps one binding at a registrar alive. See the module docstring for the rules."""

    def __init__(
        self,
        expires: int = 3600,
        *,
        refresh_fraction: float = 0.5,
        refresh_margin: float = 90.0,
        min_retry: float = 5.0,
        max_retry: float = 300.0,
        jitter: float = 0.5,
        retry_after_cap: float = 3600.0,
        request_timeout: float = 40.0,
        max_auth_retries: int = 1,
        max_interval_retries: int = 2,
        rng: random.Random | None = None,
    ) -> None:
        if expires <= 0:
            raise ValueError(f"expires={expires}: a registration needs a positive expiry (3600 is usual)")
        if not 0 < min_retry <= max_retry:
            raise ValueError(f"need 0 < min_retry ({min_retry}) <= max_retry ({max_retry})")
        if not 0 < refresh_fraction < 1:
            raise ValueError(f"refresh_fraction={refresh_fraction} must be between 0 and 1")
        if not 0 <= jitter < 1:
            raise ValueError(f"jitter={jitter} must be in [0, 1)")
        self.requested_expires = expires
        self.refresh_fraction = refresh_fraction
        self.refresh_margin = refresh_margin
        self.min_retry = min_retry
        self.max_retry = max_retry
        self.jitter = jitter
        self.retry_after_cap = retry_after_cap
        self.request_timeout = request_timeout
        self.max_auth_retries = max_auth_retries
        self.max_interval_retries = max_interval_retries
        self._rng = rng if rng is not None else random.Random()

        self.state = RegState.UNREGISTERED
        self.expires = expires  # what the next REGISTER asks for (raised by 423)
        self.bound_until: float | None = None
        self.failures = 0  # consecutive failed attempts, for the backoff
        self.last_status: int | None = None
        self._auth_challenges = 0
        self._interval_retries = 0
        self._due: float | None = None
        self._in_flight: int | None = None  # seq of the outstanding request
        self._sent_at = 0.0
        self._seq = 0
        self._events: list[RegistrationEvent] = []

    # -- state table --------------------------------------------------------------------
    def _fire(self, inp: _In, now: float, cause: str, status: int | None = None) -> None:
        try:
            new = TRANSITIONS[self.state][inp]
        except KeyError:
            raise RegistrationError(f"cannot {inp.value} while {self.state.value}") from None
        if new != self.state or inp not in (_In.DUE, _In.START):
            self._events.append(
                RegistrationEvent(
                    at=now,
                    old=self.state,
                    new=new,
                    cause=cause,
                    status=status,
                    next_attempt=self._due,
                    bound_until=self.bound_until,
                )
            )
        self.state = new

    def events(self) -> list[RegistrationEvent]:
        """State changes since the last call (oldest first)."""
        out, self._events = self._events, []
        return out

    # -- inputs -------------------------------------------------------------------------
    def start(self, now: float) -> None:
        """Begin registering; the first REGISTER is due at once (poll it)."""
        if self.state is RegState.UNREGISTERED:
            self.expires = self.requested_expires
        if self.state in (RegState.UNREGISTERED, RegState.BACKOFF, RegState.FAILED):
            self._due = now  # an operator's restart skips the remaining backoff
        self._fire(_In.START, now, "start")

    def is_registered(self, now: float) -> bool:
        """Whether the registrar holds our binding now (also during a refresh or backoff)."""
        return self.bound_until is not None and now < self.bound_until

    def next_deadline(self) -> float | None:
        """When :meth:`poll` has something to do: an attempt, or a request's timeout."""
        candidates = [self._due]
        if self._in_flight is not None:
            candidates = [self._sent_at + self.request_timeout]
        if self.bound_until is not None:
            candidates.append(self.bound_until)  # to report the lapse of a binding we failed to refresh
        times = [t for t in candidates if t is not None]
        return min(times) if times else None

    def poll(self, now: float) -> RegistrationAction | None:
        """The REGISTER to send now, if one is due. Also expires an unanswered request."""
        if self.bound_until is not None and now >= self.bound_until:
            self.bound_until = None
            self._events.append(RegistrationEvent(now, self.state, self.state, "binding lapsed"))
        if self._in_flight is not None:
            if now >= self._sent_at + self.request_timeout:
                self.on_timeout(now)
            else:
                return None
        if self._due is None or now < self._due:
            return None
        self._due = None
        self._seq += 1
        self._in_flight = self._seq
        self._sent_at = now
        if self.state is RegState.UNREGISTERING:
            self._fire(_In.DUE, now, "unregister sent")
            return RegistrationAction("unregister", 0, self._seq)
        refresh = self.is_registered(now)
        self._fire(_In.DUE, now, f"{'refresh' if refresh else 'register'} sent (expires={self.expires})")
        return RegistrationAction("register", self.expires, self._seq)

    def stop(self, now: float) -> RegistrationAction | None:
        """Stop keeping the binding; returns the unregister to send, if anything is bound.

        An unregister is sent also when a REGISTER is still unanswered, since the
        registrar may have accepted it.
        """
        if self.state is RegState.UNREGISTERING:
            return None
        if self.is_registered(now) or self._in_flight is not None:
            self._due = None
            self._seq += 1
            self._in_flight = self._seq
            self._sent_at = now
            self._fire(_In.STOP, now, "stop: unregister sent")
            return RegistrationAction("unregister", 0, self._seq)
        self._due = None
        self.bound_until = None
        self._fire(_In.STOP_IDLE, now, "stop")
        return None

    def on_timeout(self, now: float, *, seq: int | None = None) -> None:
        """The REGISTER got no final answer (Timer F fired, or ``request_timeout`` passed)."""
        self.on_response(408, granted_expires=None, min_expires=None, retry_after=None, now=now, seq=seq)

    def on_response(
        self,
        status: int,
        *,
        granted_expires: int | None,
        min_expires: int | None,
        retry_after: int | None,
        now: float,
        seq: int | None = None,
    ) -> None:
        """Feed the final response to the outstanding REGISTER.

        ``granted_expires`` is the expires the 2xx gave our Contact (or its Expires header);
        ``min_expires`` the 423's Min-Expires; ``retry_after`` the Retry-After seconds.
        Provisional responses and answers to older requests are ignored.
        """
        if status < 200 or self._in_flight is None or (seq is not None and seq != self._in_flight):
            return
        self._in_flight = None
        self.last_status = status
        if self.state is RegState.UNREGISTERING:
            self._on_unregister_answer(status, now)
            return
        if 200 <= status < 300:
            granted = granted_expires if granted_expires is not None else self.expires
            if granted <= 0:
                self._fail(_In.TRANSIENT, now, status, "2xx granted no expiry (our contact missing)", retry_after)
                return
            self.bound_until = now + granted
            self._due = now + self._refresh_delay(granted)
            self.failures = 0
            self._auth_challenges = 0
            self._interval_retries = 0
            self._fire(_In.OK, now, f"{status} registered for {granted}s", status)
            return
        if status in (401, 407):
            self._auth_challenges += 1
            if self._auth_challenges <= self.max_auth_retries:
                self._due = now
                self._fire(_In.AGAIN, now, f"{status} challenge: resend with credentials", status)
                return
            self._fail(_In.PERMANENT, now, status, f"{status}: credentials refused", retry_after)
            return
        if status == 423:
            usable = min_expires is not None and min_expires > self.expires
            if usable and self._interval_retries < self.max_interval_retries:
                assert min_expires is not None
                self._interval_retries += 1
                self.expires = min_expires
                self._due = now
                self._fire(_In.AGAIN, now, f"423: retry with Min-Expires {min_expires}", status)
                return
            self._fail(_In.TRANSIENT, now, status, f"423 with unusable Min-Expires {min_expires}", retry_after)
            return
        if status in (403, 408) or 500 <= status < 600:
            self._fail(_In.TRANSIENT, now, status, _describe(status), retry_after)
            return
        self._fail(_In.PERMANENT, now, status, _describe(status), retry_after)

    # -- helpers ------------------------------------------------------------------------
    def _on_unregister_answer(self, status: int, now: float) -> None:
        if status in (401, 407):
            self._auth_challenges += 1
            if self._auth_challenges <= self.max_auth_retries:
                self._due = now
                self._fire(_In.AGAIN, now, f"{status} challenge: resend unregister with credentials", status)
                return
        self.bound_until = None
        self._due = None
        self._auth_challenges = 0
        outcome = "unregistered" if 200 <= status < 300 else f"unregister answered {status}; giving up"
        self._fire(_In.DONE, now, outcome, status)

    def _refresh_delay(self, granted: int) -> float:
        delay = max(granted * self.refresh_fraction, granted - self.refresh_margin)
        return min(delay, granted - min(5.0, granted / 2))

    def _backoff_delay(self) -> float:
        hi = min(self.max_retry, self.min_retry * 2.0 ** min(self.failures - 1, 62))
        lo = max(self.min_retry, hi * (1 - self.jitter))
        return self._rng.uniform(lo, hi)

    def _fail(self, inp: _In, now: float, status: int, cause: str, retry_after: int | None) -> None:
        self.failures += 1
        self._auth_challenges = 0
        self._interval_retries = 0
        if inp is _In.PERMANENT:
            delay = self._rng.uniform(self.max_retry * (1 - self.jitter), self.max_retry)
        else:
            delay = self._backoff_delay()
        if retry_after is not None and retry_after > 0:
            delay = max(delay, min(float(retry_after), self.retry_after_cap))
        self._due = now + delay
        self._fire(inp, now, f"{cause}; retry in {delay:.1f}s", status)


def _describe(status: int) -> str:
    if status == 408:
        return "408 timeout"
    if status == 403:
        return "403 forbidden (check the trunk's account and allowed IPs)"
    if status == 404:
        return "404 not found (check the trunk username)"
    if 500 <= status < 600:
        return f"{status} server error"
    return f"{status} refused"
