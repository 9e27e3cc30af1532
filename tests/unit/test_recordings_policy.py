"""Recording policy decisions: all / none / on_demand / sample with a reproducible per-call draw."""

from __future__ import annotations

import pytest

from infra.settings import RecordingPolicySettings, load_settings
from recordings.service import Policy, RecordingPolicy, RecordingService, decide, sample_draw

CALL_IDS = [f"{i:08x}@dialer.example" for i in range(20_000)]


def test_all_and_none_are_absolute() -> None:
    assert all(decide(RecordingPolicy(Policy.ALL), c).record for c in CALL_IDS[:500])
    assert not any(decide(RecordingPolicy(Policy.NONE), c).record for c in CALL_IDS[:500])


def test_on_demand_waits_for_the_agent() -> None:
    d = decide(RecordingPolicy(Policy.ON_DEMAND), "abc")
    assert d.record is False and d.trigger == "on_demand"


@pytest.mark.parametrize("percent", [0.0, 5.0, 10.0, 50.0, 100.0])
def test_sample_percentage_is_measured_over_many_calls(percent: float) -> None:
    policy = RecordingPolicy(Policy.SAMPLE, percent)
    recorded = sum(decide(policy, c).record for c in CALL_IDS)
    share = 100.0 * recorded / len(CALL_IDS)
    # Binomial standard deviation for n = 20000 is at most 0.36 percentage points.
    assert abs(share - percent) < 1.2, f"sampled {share:.2f}% for a {percent}% policy"
    if percent in (0.0, 100.0):
        assert share == percent


def test_sample_decision_is_reproducible_per_call_and_seed() -> None:
    policy = RecordingPolicy(Policy.SAMPLE, 30.0)
    first = [decide(policy, c).record for c in CALL_IDS[:2000]]
    again = [decide(policy, c).record for c in CALL_IDS[:2000]]
    assert first == again
    assert sample_draw("call-1") == sample_draw("call-1")
    assert sample_draw("call-1", "site-a") != sample_draw("call-1", "site-b")
    d = decide(policy, "call-1")
    assert d.draw == sample_draw("call-1") and d.record == (d.draw < 0.30)


def test_bad_policy_is_named() -> None:
    with pytest.raises(ValueError, match="'sometimes' is unknown; use one of all, none, on_demand, sample"):
        RecordingPolicy("sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sample_percent=150"):
        RecordingPolicy(Policy.SAMPLE, 150.0)


def test_campaign_then_queue_then_default(tmp_path: object) -> None:
    service = RecordingService(
        None,
        "/nonexistent",
        default_policy=RecordingPolicy(Policy.NONE),
        queue_policies={"support": RecordingPolicy(Policy.SAMPLE, 25.0)},
    )
    campaign = RecordingPolicySettings(policy="on_demand")
    assert service.policy_for(campaign=campaign, queue="support").policy is Policy.ON_DEMAND
    assert service.policy_for(queue="support") == RecordingPolicy(Policy.SAMPLE, 25.0)
    assert service.policy_for(queue="sales").policy is Policy.NONE


def test_from_settings_reads_the_recordings_section(tmp_path: object) -> None:
    settings = load_settings(
        None,
        site={"name": "hq", "data_dir": str(tmp_path)},
        recordings={"default_policy": {"policy": "sample", "sample_percent": 20}, "queues": {"vip": {"policy": "all"}}},
    )
    service = RecordingService.from_settings(settings, None)
    assert service.root == settings.site.data_dir / "recordings"
    assert service.seed == "hq"
    assert service.policy_for(queue="vip").policy is Policy.ALL
    assert service.policy_for(queue="other") == RecordingPolicy(Policy.SAMPLE, 20.0)


def test_flush_budget_over_one_second_is_refused() -> None:
    with pytest.raises(ValueError, match="must stay under 1 s"):
        RecordingService(None, "/x", tap_flush=0.8, writer_flush=0.25)
