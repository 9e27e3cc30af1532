"""Pacing models on hand-made snapshots, estimators, and the abandon guard's hysteresis."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dialer.pacing import (
    AbandonGuard,
    AnswerStats,
    DurationStats,
    Empirical,
    Lognormal,
    PacingSnapshot,
    PowerPacing,
    PredictivePacing,
    PreviewPacing,
    ProgressivePacing,
    VicidialAdaptPacing,
    make_pacing,
)

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
RING = Lognormal.from_mean(8.0, 0.6)
TALK = Lognormal.from_mean(120.0, 0.8)


def snap(**kw: object) -> PacingSnapshot:
    base: dict[str, object] = {
        "agents_ready": 0,
        "talk_so_far_s": (),
        "wrapup_remaining_s": (),
        "ringing_s": (),
        "answer_probability": 0.3,
        "ring_time": RING,
        "handle_time": TALK,
        "wrapup_s": 10.0,
        "answered_today": 500,
        "answered_30d": 5000,
    }
    base.update(kw)
    return PacingSnapshot(**base)  # type: ignore[arg-type]


def test_lognormal_and_empirical_distributions() -> None:
    d = Lognormal.from_mean(120.0, 0.8)
    assert d.mean == pytest.approx(120.0)
    median = np.exp(d.mu)
    assert d.cdf(np.array([median]))[0] == pytest.approx(0.5, abs=1e-6)
    fitted = Lognormal.fit(np.random.default_rng(1).lognormal(d.mu, d.sigma, 20_000))
    assert fitted.mean == pytest.approx(120.0, rel=0.03)
    e = Empirical.of([1.0, 2.0, 3.0, 4.0])
    assert list(e.cdf(np.array([0.5, 2.0, 4.0]))) == [0.0, 0.5, 1.0]
    blended = Empirical.of([1.0, 2.0], prior=Lognormal.from_mean(100.0), prior_weight=2.0)
    assert 0.4 < blended.cdf(np.array([5.0]))[0] < 0.6
    with pytest.raises(ValueError, match="samples or a prior"):
        Empirical.of([])


def test_answer_stats_learns_per_list_and_hour_with_shrinkage() -> None:
    stats = AnswerStats(prior_p=0.25, prior_weight=20)
    assert stats.probability("L1", 10) == pytest.approx(0.25)
    for i in range(400):
        stats.record(i % 10 < 2, "L1", 10)  # 20% in the morning
        stats.record(i % 10 < 5, "L1", 19)  # 50% in the evening
    assert stats.probability("L1", 10) == pytest.approx(0.2, abs=0.03)
    assert stats.probability("L1", 19) == pytest.approx(0.5, abs=0.03)
    # a never-seen hour starts at the list's rate, a never-seen list at the campaign's
    assert stats.probability("L1", 3) == pytest.approx(0.35, abs=0.03)
    assert stats.probability("L2", 3) == pytest.approx(0.35, abs=0.04)


def test_duration_stats_converge_from_the_prior() -> None:
    ring = DurationStats(Lognormal.from_mean(10.0), prior_weight=20, kind="empirical")
    assert ring.distribution().mean == pytest.approx(10.0, rel=0.01)
    for x in np.random.default_rng(2).lognormal(RING.mu, RING.sigma, 2000):
        ring.record(float(x))
    assert ring.distribution().mean == pytest.approx(8.0, rel=0.05)
    talk = DurationStats(Lognormal.from_mean(180.0, 0.9), kind="lognormal")
    for x in np.random.default_rng(3).lognormal(TALK.mu, TALK.sigma, 2000):
        talk.record(float(x))
    assert talk.distribution().mean == pytest.approx(120.0, rel=0.06)
    with pytest.raises(ValueError, match="non-negative"):
        talk.record(-1.0)


def test_snapshot_validates() -> None:
    with pytest.raises(ValueError, match="answer_probability"):
        snap(answer_probability=1.5)
    with pytest.raises(ValueError, match="negative"):
        snap(agents_ready=-1)
    s = snap(agents_ready=2, talk_so_far_s=(5.0,), ringing_s=(1.0, 2.0), calls_waiting=1, max_lines=5)
    assert s.lines_in_use == 4
    assert s.free_lines == 1


def test_preview_never_dials() -> None:
    assert PreviewPacing().lines_to_dial(snap(agents_ready=10), NOW) == 0


def test_progressive_one_line_per_idle_agent_minus_ringing() -> None:
    m = ProgressivePacing()
    assert m.lines_to_dial(snap(agents_ready=5, ringing_s=(3.0, 4.0)), NOW) == 3
    assert m.lines_to_dial(snap(agents_ready=1, ringing_s=(3.0, 4.0)), NOW) == 0
    assert m.lines_to_dial(snap(agents_ready=5, max_lines=2), NOW) == 2


def test_power_ratio_and_guard_fallback() -> None:
    m = PowerPacing(ratio=2.0)
    assert m.lines_to_dial(snap(agents_ready=3, ringing_s=(1.0,)), NOW) == 5
    tripped = snap(agents_ready=3, abandon_rate_today=0.04)
    assert m.lines_to_dial(tripped, NOW) == 3  # progressive while over the cap
    assert m.lines_to_dial(snap(agents_ready=3, abandon_rate_today=0.027), NOW) == 3  # hysteresis: still tripped
    assert m.lines_to_dial(snap(agents_ready=3, abandon_rate_today=0.02), NOW) == 6  # recovered
    with pytest.raises(ValueError, match="between 1 and 10"):
        PowerPacing(ratio=0.5)


def test_guard_slows_down_near_the_cap() -> None:
    g = AbandonGuard(slow_from=0.8, trip_at=1.0, recover_at=0.85, min_scale=0.2)
    assert g.scale(snap(abandon_rate_today=0.01)) == 1.0
    mid = g.scale(snap(abandon_rate_today=0.027))
    assert mid is not None and 0.2 < mid < 1.0
    assert g.scale(snap(abandon_rate_30d=0.031)) is None  # the 30-day rate counts too
    assert g.tripped
    # too few answers today to trust a bad rate for slowing down, but a trip is kept
    assert g.scale(snap(abandon_rate_today=0.0, answered_today=5, answered_30d=5)) is None
    assert AbandonGuard().scale(snap(abandon_rate_today=0.5, answered_today=5, answered_30d=5)) == 1.0


def test_guard_trips_on_the_30_day_rate_early_in_the_day() -> None:
    """FTC TSR counts 30 days: a campaign over its cap does not get a fresh start each morning."""
    over = snap(abandon_rate_today=0.0, answered_today=0, abandon_rate_30d=0.06, answered_30d=400, agents_ready=10)
    assert AbandonGuard().scale(over) is None
    assert PredictivePacing().lines_to_dial(over, NOW) == 10  # progressive: one line per idle agent
    # A 30-day rate that rests on a handful of answers is no more trusted than today's.
    thin = snap(abandon_rate_today=0.0, answered_today=0, abandon_rate_30d=0.5, answered_30d=4)
    assert AbandonGuard().scale(thin) == 1.0


def test_predictive_dials_for_ready_agents_and_overdials_for_low_answer_rate() -> None:
    m = PredictivePacing()
    n = m.lines_to_dial(snap(agents_ready=5), NOW)
    assert n >= 5  # at least progressive
    assert n > 5  # with p = 0.3 it dials more than one line per idle agent
    assert n <= 5 / 0.3 + 3  # but not wildly more than idle agents / p
    assert m.last.mode == "predictive"
    assert m.last.expected_abandons <= 0.03 * m.last.expected_answers + 1e-9


def test_predictive_counts_agents_about_to_finish() -> None:
    m = PredictivePacing()
    busy_long = snap(talk_so_far_s=(30.0,) * 10)  # all talking, nobody in wrap-up
    finishing = snap(talk_so_far_s=(30.0,) * 5, wrapup_remaining_s=(1.0, 2.0, 3.0, 4.0, 5.0))
    assert m.lines_to_dial(busy_long, NOW) < m.lines_to_dial(finishing, NOW)
    # lines already ringing (recently dialled, likely to answer) reduce the new lines
    ringing = replace(finishing, ringing_s=(1.0, 1.0, 2.0, 2.0, 3.0, 3.0))
    assert m.lines_to_dial(ringing, NOW) < m.lines_to_dial(finishing, NOW)
    # lines that rang 24 s are unlikely to answer and barely count
    stale = replace(finishing, ringing_s=(24.0,) * 6)
    assert m.lines_to_dial(stale, NOW) >= m.lines_to_dial(ringing, NOW)


def test_predictive_is_more_careful_with_a_lower_target() -> None:
    s = snap(talk_so_far_s=(60.0,) * 15, wrapup_remaining_s=(2.0, 6.0), agents_ready=1)
    loose = PredictivePacing().lines_to_dial(replace(s, target_abandon_rate=0.10), NOW)
    strict = PredictivePacing().lines_to_dial(replace(s, target_abandon_rate=0.01), NOW)
    assert strict <= loose
    assert loose > 1


def test_predictive_falls_back_to_progressive_with_hysteresis() -> None:
    m = PredictivePacing()
    base = snap(agents_ready=4, wrapup_remaining_s=(3.0,) * 4, talk_so_far_s=(50.0,) * 12)
    normal = m.lines_to_dial(base, NOW)
    assert normal > 4
    assert m.lines_to_dial(replace(base, abandon_rate_today=0.035), NOW) == 4
    assert m.last.mode == "progressive-fallback"
    assert m.lines_to_dial(replace(base, abandon_rate_today=0.028), NOW) == 4  # not yet recovered
    assert m.lines_to_dial(replace(base, abandon_rate_today=0.02), NOW) == normal
    # near the cap it dials less than far from it
    near = m.lines_to_dial(replace(base, abandon_rate_today=0.0295), NOW)
    assert 4 <= near <= normal


def test_predictive_respects_max_lines_and_no_agents() -> None:
    m = PredictivePacing()
    assert m.lines_to_dial(snap(agents_ready=10, max_lines=3), NOW) == 3
    assert m.lines_to_dial(snap(), NOW) == 0


def test_vicidial_adapt_level_follows_the_documented_formula() -> None:
    m = VicidialAdaptPacing(level=1.0, max_level=3.0, intensity=0.0)
    s = snap(agents_ready=5, talk_so_far_s=(30.0,) * 15)
    t = NOW
    for _ in range(16):
        m.lines_to_dial(s, t)
        t += timedelta(seconds=1)
    # differential = 5 ready - 0 waiting over 20 agents = 25% -> level 1.25
    assert m.level == pytest.approx(1.25)
    # lines = round(1.25 * (5 + 15)) - 15 active calls = 10
    assert m.lines_to_dial(s, t) == 10
    # positive intensity amplifies: 25% * (1 + 0.2) = 30%
    hot = VicidialAdaptPacing(intensity=20.0)
    t = NOW
    for _ in range(16):
        hot.lines_to_dial(s, t)
        t += timedelta(seconds=1)
    assert hot.level == pytest.approx(1.30)


def test_vicidial_adapt_halves_when_drops_exceed_target_and_clamps() -> None:
    m = VicidialAdaptPacing(level=2.8, max_level=3.0)
    s = snap(agents_ready=10, talk_so_far_s=(30.0,) * 10)
    t = NOW
    for _ in range(16):
        m.lines_to_dial(s, t)
        t += timedelta(seconds=1)
    assert m.level == pytest.approx(3.0)  # clamped at the maximum
    over = replace(s, abandon_rate_today=0.05, answered_today=100)
    for _ in range(15):
        m.lines_to_dial(over, t)
        t += timedelta(seconds=1)
    assert m.level == pytest.approx(1.5)  # min(3, 3 * 1.5) halved
    # waiting calls make the differential negative: the level falls, never below 1
    jam = snap(agents_ready=0, calls_waiting=6, talk_so_far_s=(30.0,) * 20)
    for _ in range(60):
        m.lines_to_dial(jam, t)
        t += timedelta(seconds=1)
    assert m.level == 1.0


def test_make_pacing_names() -> None:
    assert make_pacing("progressive").name == "progressive"
    assert isinstance(make_pacing("power", ratio=2.0), PowerPacing)
    with pytest.raises(ValueError, match="choose one of"):
        make_pacing("turbo")


durations = st.floats(min_value=0.0, max_value=600.0, allow_nan=False)


@settings(max_examples=120, deadline=None)
@given(
    ready=st.integers(0, 30),
    talk=st.lists(durations, max_size=30),
    wrap=st.lists(st.floats(0.0, 10.0), max_size=10),
    ringing=st.lists(st.floats(0.0, 30.0), max_size=40),
    waiting=st.integers(0, 3),
    p=st.floats(0.01, 1.0),
    max_lines=st.integers(0, 120),
    rate=st.floats(0.0, 0.1),
)
def test_every_model_stays_within_lines_property(
    ready: int, talk: list[float], wrap: list[float], ringing: list[float], waiting: int, p: float,
    max_lines: int, rate: float,
) -> None:  # fmt: skip
    s = snap(agents_ready=ready, talk_so_far_s=tuple(talk), wrapup_remaining_s=tuple(wrap),
             ringing_s=tuple(ringing), calls_waiting=waiting, answer_probability=p, max_lines=max_lines,
             abandon_rate_today=rate)  # fmt: skip
    progressive = ProgressivePacing().lines_to_dial(s, NOW)
    for model in (PreviewPacing(), ProgressivePacing(), PowerPacing(ratio=2.0), PredictivePacing(),
                  VicidialAdaptPacing()):  # fmt: skip
        n = model.lines_to_dial(s, NOW)
        assert 0 <= n <= s.free_lines, model.name
        if isinstance(model, PredictivePacing):
            assert n >= progressive  # idle agents are never left without a line
            if s.agents_logged_in == 0:
                assert n == 0
