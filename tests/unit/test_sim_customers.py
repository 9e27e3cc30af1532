"""The simulated customers' model: seeded, per (number, attempt), pins, time-of-day effect. Pure."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest

from dialer.sim.customers import (
    DEFAULT_MIX,
    Behaviour,
    CustomerModel,
    CustomerModelConfig,
    Pin,
    evening_person,
    normalize_number,
)

NOON_UTC = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
NUMBERS = [f"+4420794{i:05d}" for i in range(4000)]


def test_same_seed_number_attempt_gives_the_same_decision() -> None:
    a, b = CustomerModel(seed=3), CustomerModel(seed=3)
    assert [a.decide(n, 0, NOON_UTC) for n in NUMBERS[:50]] == [b.decide(n, 0, NOON_UTC) for n in NUMBERS[:50]]


def test_other_seed_or_attempt_draws_again() -> None:
    m = CustomerModel(seed=3)
    first = [m.decide(n, 0, NOON_UTC).behaviour for n in NUMBERS[:200]]
    retry = [m.decide(n, 1, NOON_UTC).behaviour for n in NUMBERS[:200]]
    other = [CustomerModel(seed=4).decide(n, 0, NOON_UTC).behaviour for n in NUMBERS[:200]]
    assert sum(x != y for x, y in zip(first, retry, strict=True)) > 50
    assert sum(x != y for x, y in zip(first, other, strict=True)) > 50


def test_default_mix_is_respected_over_many_numbers() -> None:
    m = CustomerModel(seed=11)
    counts = Counter(m.decide(n, 0, NOON_UTC).behaviour for n in NUMBERS)
    for behaviour, p in DEFAULT_MIX.items():
        share = counts[behaviour] / len(NUMBERS)
        assert abs(share - p) < 0.03, (behaviour, share, p)


def test_ring_and_talk_times_follow_the_config() -> None:
    cfg = CustomerModelConfig(ring_median_s=6.0, talk_mean_s=30.0, talk_min_s=10.0, talk_max_s=90.0)
    ds = [CustomerModel(cfg, seed=1).decide(n, 0, NOON_UTC) for n in NUMBERS[:2000]]
    rings = sorted(d.ring_s for d in ds)
    talks = [d.talk_s for d in ds]
    assert 5.0 < rings[len(rings) // 2] < 7.0
    assert all(0 < r <= cfg.ring_max_s for r in rings)
    assert all(10.0 <= t <= 90.0 for t in talks)
    assert 27.0 < sum(talks) / len(talks) < 33.0


def test_pins_override_behaviour_and_script_retries() -> None:
    cfg = CustomerModelConfig(
        overrides={
            "+15550000001": Behaviour.BUSY,
            "+15550000002": [Behaviour.NO_ANSWER, Pin(Behaviour.ANSWER_HUMAN, ring_s=1.0, talk_s=5.0)],
            "+15550000003": "answer_machine",
        }
    )
    m = CustomerModel(cfg, seed=0)
    assert [m.decide("+15550000001", k, NOON_UTC).behaviour for k in range(3)] == [Behaviour.BUSY] * 3
    script = [m.decide("+15550000002", k, NOON_UTC) for k in range(3)]
    assert [d.behaviour for d in script] == [Behaviour.NO_ANSWER, Behaviour.ANSWER_HUMAN, Behaviour.ANSWER_HUMAN]
    assert (script[1].ring_s, script[1].talk_s, script[1].pinned) == (1.0, 5.0, True)
    assert m.decide("+15550000003", 0, NOON_UTC).behaviour is Behaviour.ANSWER_MACHINE
    assert Behaviour.BUSY.sip_status == 486 and Behaviour.ANSWER_HUMAN.sip_status is None


def test_hour_factor_uses_the_callees_local_hour() -> None:
    m = CustomerModel(CustomerModelConfig(hour_factor=evening_person), seed=5)
    london, new_york = "+442079460000", "+12125551234"
    evening_utc = datetime(2026, 3, 10, 18, 30, tzinfo=UTC)  # 18:30 London, 14:30 New York
    assert m.local_hour(london, evening_utc) == 18
    assert m.local_hour(new_york, evening_utc) == 14
    p_evening, p_work = m.probabilities(18), m.probabilities(10)
    answer = Behaviour.ANSWER_HUMAN, Behaviour.ANSWER_MACHINE
    assert sum(p_evening[b] for b in answer) > 1.5 * sum(p_work[b] for b in answer)
    assert sum(p_evening.values()) == pytest.approx(1.0) and sum(p_work.values()) == pytest.approx(1.0)
    morning = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)
    answered = {t: sum(m.decide(n, 0, t).behaviour.answers for n in NUMBERS[:2000]) for t in (morning, evening_utc)}
    assert answered[evening_utc] > 1.5 * answered[morning]


def test_bad_config_is_refused_with_the_fix() -> None:
    with pytest.raises(ValueError, match="add up to 1"):
        CustomerModelConfig(mix={Behaviour.BUSY: 0.5})
    with pytest.raises(ValueError, match=r"not E\.164"):
        CustomerModelConfig(overrides={"5550001": Behaviour.BUSY})
    with pytest.raises(ValueError, match="not a behaviour"):
        CustomerModelConfig(overrides={"+15550000001": "engaged"})
    with pytest.raises(ValueError, match="naive"):
        CustomerModel().decide("+15550000001", 0, datetime(2026, 1, 1, 12, 0))


def test_normalize_number() -> None:
    assert normalize_number("+44 20 7946-0000") == "+442079460000"
    assert normalize_number("00442079460000") == "+442079460000"
    assert normalize_number("agent1001") is None
