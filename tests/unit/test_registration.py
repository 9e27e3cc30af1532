"""Trunk registration core driven by a fake clock: refresh timing, 423, auth, backoff growth
and cap with jitter, Retry-After, timeouts, unregister on stop, the state table."""

from __future__ import annotations

import random

import pytest

from telephony.sip.registration import (
    TRANSITIONS,
    RegistrationAction,
    RegistrationClient,
    RegistrationError,
    RegState,
)


def client(**kw: float) -> RegistrationClient:
    return RegistrationClient(rng=random.Random(7), **kw)  # type: ignore[arg-type]


def state(c: RegistrationClient) -> RegState:
    """The current state, read through a call so mypy does not keep an earlier narrowing."""
    return c.state


def answer(
    c: RegistrationClient,
    status: int,
    now: float,
    *,
    granted: int | None = None,
    min_expires: int | None = None,
    retry_after: int | None = None,
) -> None:
    c.on_response(status, granted_expires=granted, min_expires=min_expires, retry_after=retry_after, now=now)


def send(c: RegistrationClient, now: float) -> RegistrationAction:
    action = c.poll(now)
    assert action is not None, f"expected a REGISTER due at {now} (state {c.state}, deadline {c.next_deadline()})"
    return action


def registered(c: RegistrationClient, now: float, granted: int = 3600) -> None:
    send(c, now)
    answer(c, 200, now + 0.1, granted=granted)


def test_start_sends_register_then_waits_for_the_answer() -> None:
    c = client()
    assert state(c) is RegState.UNREGISTERED and c.next_deadline() is None and c.poll(0.0) is None
    c.start(100.0)
    assert state(c) is RegState.REGISTERING and c.next_deadline() == 100.0
    action = send(c, 100.0)
    assert action == RegistrationAction("register", 3600, 1)
    assert c.poll(100.0) is None  # in flight
    assert c.next_deadline() == 140.0  # request_timeout guard
    answer(c, 180, 100.5)  # provisional: ignored
    assert state(c) is RegState.REGISTERING
    answer(c, 200, 101.0, granted=3600)
    assert state(c) is RegState.REGISTERED
    assert c.is_registered(101.0) and c.bound_until == 3701.0


@pytest.mark.parametrize(
    ("granted", "delay"),
    [(3600, 3510.0), (600, 510.0), (120, 60.0), (60, 30.0), (10, 5.0), (1, 0.5)],
)
def test_refresh_timing_rule(granted: int, delay: float) -> None:
    c = client()
    c.start(0.0)
    registered(c, 0.0, granted)
    assert c.next_deadline() == pytest.approx(0.1 + delay)
    assert c.poll(0.1 + delay - 0.01) is None
    action = send(c, 0.1 + delay)
    assert action.kind == "register" and action.expires == 3600
    assert state(c) is RegState.REGISTERING and c.is_registered(0.1 + delay)  # still bound while refreshing


def test_refresh_never_later_than_a_few_seconds_before_expiry() -> None:
    c = client(refresh_fraction=0.99, refresh_margin=0.0)
    c.start(0.0)
    registered(c, 0.0, 1000)
    assert c.next_deadline() == pytest.approx(0.1 + 995.0)


def test_granted_expires_missing_falls_back_to_requested() -> None:
    c = client(expires=900)
    c.start(0.0)
    send(c, 0.0)
    answer(c, 200, 1.0, granted=None)
    assert c.bound_until == 901.0


def test_backoff_grows_exponentially_with_jitter_and_is_capped() -> None:
    c = RegistrationClient(min_retry=5, max_retry=300, jitter=0.5, rng=random.Random(1))
    c.start(0.0)
    now = 0.0
    delays = []
    for _ in range(10):
        send(c, now)
        answer(c, 503, now)
        assert state(c) is RegState.BACKOFF
        deadline = c.next_deadline()
        assert deadline is not None
        delays.append(deadline - now)
        now = deadline
    for n, d in enumerate(delays, start=1):
        hi = min(300.0, 5.0 * 2 ** (n - 1))
        assert max(5.0, hi / 2) <= d <= hi
    assert delays[0] == 5.0  # first retry: exactly min_retry
    assert all(d >= 150.0 for d in delays[7:])  # saturated at the cap
    assert len({round(d, 6) for d in delays[7:]}) == 3  # jitter spreads nodes apart


def test_backoff_without_jitter_is_a_clean_doubling() -> None:
    c = RegistrationClient(min_retry=5, max_retry=300, jitter=0.0, rng=random.Random(1))
    c.start(0.0)
    now, delays = 0.0, []
    for _ in range(9):
        send(c, now)
        answer(c, 500, now)
        deadline = c.next_deadline()
        assert deadline is not None
        delays.append(deadline - now)
        now = deadline
    assert delays == [5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 300.0, 300.0, 300.0]
    assert c.failures == 9
    registered(c, now)
    assert c.failures == 0 and state(c) is RegState.REGISTERED


def test_retry_after_is_honoured_and_capped() -> None:
    c = client()
    c.start(0.0)
    send(c, 0.0)
    answer(c, 503, 1.0, retry_after=120)
    assert c.next_deadline() == 121.0
    send(c, 121.0)
    answer(c, 503, 122.0, retry_after=10**6)
    assert c.next_deadline() == 122.0 + 3600.0
    # Retry-After shorter than the backoff does not shorten it.
    c = RegistrationClient(jitter=0.0, rng=random.Random(1))
    c.start(0.0)
    for now in (0.0, 5.0):
        send(c, now)
        answer(c, 503, now, retry_after=1)
    assert c.next_deadline() == 15.0


def test_423_retries_at_once_with_min_expires() -> None:
    c = client(expires=60)
    c.start(0.0)
    send(c, 0.0)
    answer(c, 423, 0.2, min_expires=600)
    assert state(c) is RegState.REGISTERING and c.next_deadline() == 0.2
    action = send(c, 0.2)
    assert action.expires == 600 and action.seq == 2
    answer(c, 200, 0.3, granted=600)
    assert state(c) is RegState.REGISTERED and c.bound_until == 600.3
    # Refreshes keep asking for the raised interval.
    assert send(c, 0.3 + 510.0).expires == 600


def test_423_loops_and_useless_min_expires_fall_back_to_backoff() -> None:
    c = client(expires=60)
    c.start(0.0)
    send(c, 0.0)
    answer(c, 423, 0.0, min_expires=None)
    assert state(c) is RegState.BACKOFF
    c = client(expires=60)
    c.start(0.0)
    send(c, 0.0)
    answer(c, 423, 0.0, min_expires=30)  # not higher than what we asked: server nonsense
    assert state(c) is RegState.BACKOFF
    c = client(expires=60)
    c.start(0.0)
    for i, m in enumerate((120, 240)):
        send(c, float(i))
        answer(c, 423, float(i), min_expires=m)
        assert state(c) is RegState.REGISTERING
    send(c, 2.0)
    answer(c, 423, 2.0, min_expires=480)
    assert state(c) is RegState.BACKOFF


def test_auth_challenge_is_retried_once_then_fails_slowly() -> None:
    c = client(max_retry=300)
    c.start(0.0)
    send(c, 0.0)
    answer(c, 401, 0.1)
    assert state(c) is RegState.REGISTERING and c.next_deadline() == 0.1 and c.failures == 0
    send(c, 0.1)
    answer(c, 401, 0.2)
    assert state(c) is RegState.FAILED and c.failures == 1
    deadline = c.next_deadline()
    assert deadline is not None and 150.0 <= deadline - 0.2 <= 300.0
    # The slow retry gets its own single auth round again.
    send(c, deadline)
    answer(c, 407, deadline)
    assert state(c) is RegState.REGISTERING
    send(c, deadline)
    answer(c, 200, deadline, granted=3600)
    assert state(c) is RegState.REGISTERED


@pytest.mark.parametrize(
    ("status", "state"),
    [
        (403, "backoff"),
        (408, "backoff"),
        (500, "backoff"),
        (503, "backoff"),
        (404, "failed"),
        (400, "failed"),
        (302, "failed"),
        (603, "failed"),
    ],
)
def test_status_classification(status: int, state: str) -> None:
    c = client()
    c.start(0.0)
    send(c, 0.0)
    answer(c, status, 1.0)
    assert c.state == state and c.last_status == status
    deadline = c.next_deadline()
    assert deadline is not None and deadline > 1.0


def test_unanswered_request_times_out_into_backoff() -> None:
    c = client(request_timeout=40.0)
    c.start(0.0)
    send(c, 0.0)
    assert c.poll(39.9) is None
    assert c.poll(40.0) is None  # the timeout fires; the retry is scheduled for later
    assert state(c) is RegState.BACKOFF and c.last_status == 408
    assert c.next_deadline() == 45.0
    assert send(c, 45.0).seq == 2
    c.on_timeout(46.0)
    assert state(c) is RegState.BACKOFF


def test_failed_refresh_keeps_binding_until_it_lapses() -> None:
    c = RegistrationClient(jitter=0.0, rng=random.Random(1))
    c.start(0.0)
    send(c, 0.0)
    answer(c, 200, 0.0, granted=120)
    assert send(c, 60.0).kind == "register"
    answer(c, 503, 60.0)
    assert state(c) is RegState.BACKOFF and c.is_registered(60.0)
    c.events()
    now = 60.0
    while c.is_registered(now) or now < 120.0:
        deadline = c.next_deadline()
        assert deadline is not None
        now = deadline
        if c.poll(now) is not None:
            answer(c, 503, now)
    assert not c.is_registered(120.0) and c.bound_until is None
    assert "binding lapsed" in [e.cause for e in c.events()]


def test_stop_unregisters_a_bound_registration() -> None:
    c = client()
    c.start(0.0)
    registered(c, 0.0)
    action = c.stop(10.0)
    assert action is not None and action.kind == "unregister" and action.expires == 0
    assert state(c) is RegState.UNREGISTERING
    assert c.stop(10.5) is None  # idempotent
    answer(c, 200, 11.0, granted=0)
    assert state(c) is RegState.UNREGISTERED
    assert not c.is_registered(11.0) and c.next_deadline() is None


def test_stop_with_auth_challenge_resends_unregister_once() -> None:
    c = client()
    c.start(0.0)
    registered(c, 0.0)
    assert c.stop(10.0) is not None
    answer(c, 401, 10.1)
    assert state(c) is RegState.UNREGISTERING
    again = send(c, 10.1)
    assert again.kind == "unregister"
    answer(c, 401, 10.2)
    assert state(c) is RegState.UNREGISTERED


def test_stop_while_register_in_flight_or_idle() -> None:
    c = client()
    c.start(0.0)
    send(c, 0.0)
    action = c.stop(1.0)
    assert action is not None and action.kind == "unregister" and action.seq == 2
    # The answer to the earlier REGISTER is not taken for the unregister's.
    c.on_response(200, granted_expires=3600, min_expires=None, retry_after=None, now=1.1, seq=1)
    assert state(c) is RegState.UNREGISTERING
    c.on_timeout(41.0, seq=2)
    assert state(c) is RegState.UNREGISTERED
    idle = client()
    idle.start(0.0)
    send(idle, 0.0)
    answer(idle, 503, 0.0)
    assert idle.stop(1.0) is None and state(idle) is RegState.UNREGISTERED and idle.next_deadline() is None


def test_restart_skips_remaining_backoff_and_start_while_unregistering_is_refused() -> None:
    c = client()
    c.start(0.0)
    send(c, 0.0)
    answer(c, 404, 0.0)
    assert state(c) is RegState.FAILED
    c.start(1.0)
    assert c.next_deadline() == 1.0
    registered(c, 1.0)
    c.stop(2.0)
    with pytest.raises(RegistrationError, match="cannot start while unregistering"):
        c.start(3.0)


def test_events_describe_every_state_change() -> None:
    c = client()
    c.start(0.0)
    send(c, 0.0)
    answer(c, 401, 0.1)
    send(c, 0.1)
    answer(c, 200, 0.2, granted=600)
    events = c.events()
    assert [(e.old.value, e.new.value) for e in events] == [
        ("unregistered", "registering"),
        ("registering", "registering"),
        ("registering", "registered"),
    ]
    assert events[1].cause == "401 challenge: resend with credentials" and events[1].status == 401
    assert events[2].cause == "200 registered for 600s"
    assert events[2].bound_until == 600.2 and events[2].next_attempt == pytest.approx(0.2 + 510.0)
    assert c.events() == []


def test_state_table_gives_every_state_an_exit() -> None:
    assert set(TRANSITIONS) == set(RegState)
    for state, row in TRANSITIONS.items():
        assert any(target is not state for target in row.values()), state
        if state is not RegState.UNREGISTERED:
            assert any(target is RegState.UNREGISTERED or target is RegState.UNREGISTERING for target in row.values())


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="positive expiry"):
        RegistrationClient(expires=0)
    with pytest.raises(ValueError, match="min_retry"):
        RegistrationClient(min_retry=10, max_retry=5)


def test_stop_after_an_unpolled_lapse_needs_no_unregister() -> None:
    c = client()
    c.start(0.0)
    registered(c, 0.0, 60)
    assert c.stop(1000.0) is None
    assert state(c) is RegState.UNREGISTERED and c.next_deadline() is None
