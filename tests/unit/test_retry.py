"""Retry scheduling: day-part rotation, minimum delays, attempt limits, alternates, deadlines, callbacks."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dialer.retry import (
    Attempt,
    Callback,
    CallbackRules,
    DayPart,
    Exhausted,
    LeadState,
    NextAttempt,
    RetryPolicy,
)
from dialer.windows import CallingWindow

LON = "Europe/London"
NY = "America/New_York"
WINDOW = CallingWindow.build(quiet_hours=["12:00-14:00"])
POLICY = RetryPolicy()


def local(zone: str, *args: int) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(zone)).astimezone(UTC)  # type: ignore[misc]


def lead(*attempts: Attempt, numbers: int = 1, **kw: object) -> LeadState:
    return LeadState(attempts=tuple(attempts), numbers=numbers, **kw)  # type: ignore[arg-type]


def test_no_answer_in_the_morning_goes_to_an_untried_daypart() -> None:
    at = local(LON, 2026, 3, 3, 10, 0)
    nxt = POLICY.schedule_next(lead(Attempt(at, "no_answer")), "no_answer", at, [LON], "GB", WINDOW)
    assert isinstance(nxt, NextAttempt)
    # afternoon starts at 12:00 but quiet hours run to 14:00, and no_answer waits at least 1 h
    assert nxt.daypart == "afternoon"
    assert nxt.at_utc == local(LON, 2026, 3, 3, 14, 0)
    assert nxt.reason.startswith("no_answer in morning; next untried day-part afternoon at Tue 14:00 local")
    assert WINDOW.is_callable([LON], "GB", nxt.at_utc)


def test_after_morning_and_afternoon_the_evening_is_next_then_cycle() -> None:
    a1 = Attempt(local(LON, 2026, 3, 3, 10, 0), "no_answer")
    a2 = Attempt(local(LON, 2026, 3, 3, 15, 0), "no_answer")
    nxt = POLICY.schedule_next(lead(a1, a2), "no_answer", a2.dialled_at, [LON], "GB", WINDOW)
    assert isinstance(nxt, NextAttempt)
    assert nxt.daypart == "evening"
    assert nxt.at_utc == local(LON, 2026, 3, 3, 17, 0)
    a3 = Attempt(nxt.at_utc, "busy")
    # all three tried: the cycle restarts, and the earliest day-part after the 10 min busy delay is evening again
    nxt2 = POLICY.schedule_next(lead(a1, a2, a3), "busy", a3.dialled_at, [LON], "GB", WINDOW)
    assert isinstance(nxt2, NextAttempt)
    assert nxt2.at_utc == local(LON, 2026, 3, 3, 17, 10)
    assert "minimum delay" in nxt2.reason


def test_busy_min_delay_respected_when_daypart_rotation_is_off() -> None:
    rules = dict(POLICY.rules)
    from dialer.retry import OutcomeRule

    rules["busy"] = OutcomeRule(timedelta(minutes=10), rotate_daypart=False)
    policy = RetryPolicy(rules=rules)
    at = local(LON, 2026, 3, 3, 10, 0)
    nxt = policy.schedule_next(lead(Attempt(at, "busy")), "busy", at, [LON], "GB", WINDOW)
    assert isinstance(nxt, NextAttempt)
    assert nxt.at_utc == at + timedelta(minutes=10)
    assert nxt.daypart == "morning"


def test_abandoned_waits_72h_unless_agent_reserved() -> None:
    at = local(LON, 2026, 3, 3, 10, 0)
    nxt = POLICY.schedule_next(lead(Attempt(at, "abandoned")), "abandoned", at, [LON], "GB", WINDOW)
    assert isinstance(nxt, NextAttempt)
    assert nxt.at_utc >= at + timedelta(hours=72)
    assert "72 h" in nxt.reason
    reserved = POLICY.schedule_next(
        lead(Attempt(at, "abandoned"), agent_reserved=True), "abandoned", at, [LON], "GB", WINDOW
    )
    assert isinstance(reserved, NextAttempt)
    assert reserved.at_utc < at + timedelta(hours=12)


def test_max_attempts_and_alternates_in_order() -> None:
    policy = RetryPolicy(max_attempts=5, max_attempts_per_number=2)
    t = local(LON, 2026, 3, 3, 10, 0)
    attempts = [Attempt(t, "no_answer", 0), Attempt(t, "no_answer", 0)]
    nxt = policy.schedule_next(lead(*attempts, numbers=3), "no_answer", t, [LON], None, WINDOW)
    assert isinstance(nxt, NextAttempt)
    assert nxt.number_index == 1
    assert "number 2 of 3" in nxt.reason
    attempts += [Attempt(t, "not_found", 1)]
    nxt = policy.schedule_next(lead(*attempts, numbers=3), "not_found", t, [LON], None, WINDOW)
    assert isinstance(nxt, NextAttempt)
    assert nxt.number_index == 2  # number 2 is dead after 404
    attempts += [Attempt(t, "busy", 2), Attempt(t, "busy", 2)]
    done = policy.schedule_next(lead(*attempts, numbers=3), "busy", t, [LON], None, WINDOW)
    assert isinstance(done, Exhausted)
    assert "5 attempts" in done.reason


def test_every_number_used_up() -> None:
    policy = RetryPolicy(max_attempts=10, max_attempts_per_number=1)
    t = local(LON, 2026, 3, 3, 10, 0)
    done = policy.schedule_next(lead(Attempt(t, "no_answer")), "no_answer", t, [LON], None, WINDOW)
    assert isinstance(done, Exhausted)
    assert "limit of 1" in done.reason


def test_completed_is_final_and_inputs_are_checked() -> None:
    t = local(LON, 2026, 3, 3, 10, 0)
    assert isinstance(POLICY.schedule_next(lead(Attempt(t, "completed")), "completed", t, [LON], None, WINDOW),
                      Exhausted)  # fmt: skip
    with pytest.raises(ValueError, match="append the finished attempt"):
        POLICY.schedule_next(lead(Attempt(t, "busy")), "no_answer", t, [LON], None, WINDOW)
    with pytest.raises(ValueError, match="known outcomes"):
        POLICY.schedule_next(lead(Attempt(t, "weird")), "weird", t, [LON], None, WINDOW)


def test_reach_deadline_raises_priority_and_pulls_the_attempt_forward() -> None:
    created = local(LON, 2026, 3, 2, 9, 0)
    state0 = lead(Attempt(created, "no_answer"), created_at=created)
    p_early = POLICY.priority(state0, created + timedelta(hours=1))
    p_late = POLICY.priority(state0, created + timedelta(hours=70))
    assert p_early < p_late <= POLICY.deadline_boost
    assert POLICY.priority(state0, created + timedelta(hours=80)) == POLICY.deadline_boost
    assert POLICY.at_risk(state0, created + timedelta(hours=62))
    assert not POLICY.at_risk(state0, created + timedelta(hours=30))
    # Morning tried; the untried evening would start after the 16:00 deadline, so the earliest
    # open slot before the deadline is taken instead.
    policy = RetryPolicy(dayparts=(DayPart("morning", time(9), time(12)), DayPart("evening", time(17), time(21))))
    t = local(LON, 2026, 3, 4, 10, 0)
    state = lead(Attempt(t, "no_answer"), created_at=created, reach_deadline=local(LON, 2026, 3, 4, 16, 0))
    nxt = policy.schedule_next(state, "no_answer", t, [LON], None, CallingWindow())
    assert isinstance(nxt, NextAttempt)
    assert nxt.at_utc == t + timedelta(hours=1)
    assert "deadline" in nxt.reason


def test_callback_outside_window_only_when_customer_requested() -> None:
    rules = CallbackRules(grace=timedelta(minutes=5))
    late = datetime(2026, 3, 3, 22, 30)  # local wall clock, outside 09-21
    cb = Callback(late, NY, customer_requested=False, owner_agent="a1")
    at = rules.dial_at(cb, [NY], "US", WINDOW)
    assert at == local(NY, 2026, 3, 4, 9, 0)
    asked = Callback(late, NY, customer_requested=True, owner_agent="a1")
    assert rules.dial_at(asked, [NY], "US", WINDOW) == local(NY, 2026, 3, 3, 22, 30)
    assert rules.may_dial(asked, local(NY, 2026, 3, 3, 22, 31), [NY], "US", WINDOW)
    assert not rules.may_dial(cb, local(NY, 2026, 3, 3, 22, 31), [NY], "US", WINDOW)
    # offered to the owner first, to anyone after the grace period
    assert rules.offered_to(asked, local(NY, 2026, 3, 3, 22, 20), [NY], "US", WINDOW) == "not_due"
    assert rules.offered_to(asked, local(NY, 2026, 3, 3, 22, 32), [NY], "US", WINDOW) == "owner"
    assert rules.offered_to(asked, local(NY, 2026, 3, 3, 22, 36), [NY], "US", WINDOW) == "anyone"
    shared = Callback(late, NY, customer_requested=True)
    assert rules.offered_to(shared, local(NY, 2026, 3, 3, 22, 31), [NY], "US", WINDOW) == "anyone"


def test_retry_across_dst_keeps_local_daypart() -> None:
    # no answer Saturday evening before New York springs forward: Sunday morning 09:00 EDT = 13:00 UTC
    t = local(NY, 2026, 3, 7, 18, 0)
    a0 = Attempt(local(NY, 2026, 3, 7, 14, 0), "no_answer")
    a1 = Attempt(t, "no_answer")
    nxt = POLICY.schedule_next(lead(a0, a1), "no_answer", t, [NY], None, CallingWindow())
    assert isinstance(nxt, NextAttempt)
    assert nxt.daypart == "morning"
    assert nxt.at_utc == datetime(2026, 3, 8, 13, 0, tzinfo=UTC)


zones_st = st.sampled_from([LON, NY, "Asia/Shanghai", "Australia/Sydney", "America/Los_Angeles", "Asia/Kolkata"])
outcomes_st = st.sampled_from(["no_answer", "busy", "machine", "failed"])


@settings(max_examples=60, deadline=None)
@given(
    zone=zones_st,
    start=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 1)).map(
        lambda d: d.replace(tzinfo=UTC)
    ),
    outcomes=st.lists(outcomes_st, min_size=3, max_size=6),
    country=st.sampled_from([None, "US", "GB", "CN"]),
)
def test_attempts_rotate_through_dayparts_property(
    zone: str, start: datetime, outcomes: list[str], country: str | None
) -> None:
    """Following the scheduler's own choices: each attempt is inside the window, never before the
    outcome's minimum delay, and every cycle of three attempts covers three different day-parts."""
    policy = RetryPolicy(max_attempts=20, max_attempts_per_number=20, reach_deadline=None)
    window = CallingWindow.build(quiet_hours=["12:00-14:00"])
    first = window.next_open([zone], country, start)
    assume_ok = first is not None
    if not assume_ok:
        return
    assert first is not None
    attempts: list[Attempt] = [Attempt(first, outcomes[0])]
    now = first
    for outcome in [*outcomes[1:], "no_answer"]:
        nxt = policy.schedule_next(lead(*attempts), attempts[-1].outcome, now, [zone], country, window)
        assert isinstance(nxt, NextAttempt)
        assert window.is_callable([zone], country, nxt.at_utc)
        assert nxt.at_utc >= now + policy.rules[attempts[-1].outcome].min_delay
        assert nxt.daypart is not None
        attempts.append(Attempt(nxt.at_utc, outcome, daypart=nxt.daypart))
        now = nxt.at_utc
    parts = [policy._daypart_of(a, zone) for a in attempts]
    scheduled = parts[1:]
    first_part = parts[0]
    # the first cycle: the first attempt plus the next ones until all three are covered
    cycle = [first_part] if first_part is not None else []
    for p in scheduled:
        assert p not in cycle, f"day-part {p} repeated within a cycle: {parts}"
        cycle.append(p)
        if len(cycle) == 3:
            cycle = []


# -- the campaign defaults (dialer.campaigns): busy and failed rotate like the other unreached outcomes --
def _campaign_policy() -> tuple[RetryPolicy, CallingWindow]:
    from dialer.campaigns import CampaignSettings

    settings = CampaignSettings()
    return settings.retry_policy(), settings.calling_window()


@pytest.mark.parametrize("outcome", ["busy", "failed", "unavailable", "no_answer", "machine", "rejected"])
def test_campaign_defaults_move_every_unreached_outcome_to_an_untried_daypart(outcome: str) -> None:
    policy, window = _campaign_policy()
    at = local(LON, 2026, 3, 3, 10, 20)  # a Tuesday morning
    nxt = policy.schedule_next(lead(Attempt(at, outcome)), outcome, at, [LON], "GB", window)
    assert isinstance(nxt, NextAttempt)
    assert nxt.daypart == "afternoon", nxt.reason
    # The afternoon opens at 14:00 (the 12:00-14:00 quiet hours); no morning redial.
    assert nxt.at_utc == local(LON, 2026, 3, 3, 14, 0)
    assert "next untried day-part afternoon" in nxt.reason


def test_campaign_busy_keeps_its_minutes_delay_when_the_untried_daypart_starts_sooner() -> None:
    policy, window = _campaign_policy()
    morning = Attempt(local(LON, 2026, 3, 3, 10, 0), "no_answer")
    busy_at = local(LON, 2026, 3, 3, 16, 55)
    nxt = policy.schedule_next(lead(morning, Attempt(busy_at, "busy")), "busy", busy_at, [LON], "GB", window)
    assert isinstance(nxt, NextAttempt)
    # max(16:55 + 10 min, 17:00 evening start) = 17:05 in the evening, the one day-part not tried yet.
    assert (nxt.daypart, nxt.at_utc) == ("evening", local(LON, 2026, 3, 3, 17, 5))
    assert "10 min minimum delay" in nxt.reason
    failed_at = local(LON, 2026, 3, 3, 16, 55)
    nxt = policy.schedule_next(lead(morning, Attempt(failed_at, "failed")), "failed", failed_at, [LON], "GB", window)
    assert isinstance(nxt, NextAttempt)
    assert (nxt.daypart, nxt.at_utc) == ("evening", local(LON, 2026, 3, 3, 17, 25)), "failed: 30 min"


def test_a_campaign_may_still_redial_busy_in_the_same_daypart() -> None:
    from dialer.campaigns import CampaignSettings

    settings = CampaignSettings.model_validate({"retry": {"outcomes": {"busy": {"rotate_daypart": False}}}})
    assert settings.retry.outcomes["busy"].min_delay_minutes == 10, "the other keys keep their defaults"
    at = local(LON, 2026, 3, 3, 10, 0)
    nxt = settings.retry_policy().schedule_next(
        lead(Attempt(at, "busy")), "busy", at, [LON], "GB", settings.calling_window()
    )
    assert isinstance(nxt, NextAttempt) and nxt.at_utc == local(LON, 2026, 3, 3, 10, 10)
