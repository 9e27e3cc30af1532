"""The discrete-event simulator: determinism, ledger agreement, history fitting, the CLI."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dialer.abandon import AbandonLedger
from dialer.commands.simulate import app
from dialer.pacing import PacingModel, PacingSnapshot, PredictivePacing
from dialer.simulator import SIM_START, PacingEstimators, SimulationParams, compare, fit_from_history, simulate

SHORT = SimulationParams(agents=8, hours=0.5)


def test_deterministic_for_a_seed() -> None:
    a = simulate(SHORT, "predictive", seed=7)
    b = simulate(SHORT, "predictive", seed=7)
    c = simulate(SHORT, "predictive", seed=8)
    assert a.as_dict() == b.as_dict()
    assert a.as_dict() != c.as_dict()


def test_abandon_accounting_matches_the_ledger() -> None:
    ledger = AbandonLedger(target=0.03)
    # an aggressive model so that abandons actually happen
    r = simulate(SHORT, PredictivePacing(target_margin=0.0), seed=3, ledger=ledger)
    counts = ledger.counts_today(SIM_START)
    assert counts.answered_human == r.answered_human
    assert counts.abandoned == r.abandoned
    assert r.ledger_abandon_rate == pytest.approx(r.abandon_rate)
    assert r.connected + r.abandoned == r.answered_human


class _Greedy(PacingModel):
    """Dials three lines per idle agent regardless: must produce abandons."""

    name = "greedy"

    def lines_to_dial(self, snapshot: PacingSnapshot, now: object) -> int:  # type: ignore[override]
        return max(0, min(3 * snapshot.agents_ready + 5 - len(snapshot.ringing_s), snapshot.free_lines))


def test_two_second_rule_and_metrics_with_a_greedy_model() -> None:
    r = simulate(SHORT, _Greedy(), seed=1)
    assert r.abandoned > 0
    assert r.mean_wait_s <= 2.0  # nobody is connected later than the grace
    assert 0.0 < r.occupancy <= 1.0
    assert r.talk_share < r.occupancy
    assert r.dial_attempts > r.answered_human


def test_progressive_never_abandons_and_predictive_is_busier() -> None:
    params = SimulationParams(agents=10, hours=1.0)
    prog = simulate(params, "progressive", seed=0)
    pred = simulate(params, "predictive", seed=0)
    assert prog.abandoned == 0
    assert pred.occupancy > prog.occupancy
    assert pred.abandon_rate <= 0.05


def test_model_learns_only_from_observed_calls() -> None:
    est = PacingEstimators()
    simulate(SimulationParams(agents=10, hours=1.0, answer_prob=0.5), "progressive", seed=0, estimators=est)
    assert est.answers.probability(None, None) == pytest.approx(0.5, abs=0.06)
    assert est.handle.distribution().mean == pytest.approx(120.0, rel=0.2)


def _history(n: int = 400) -> list[dict[str, object]]:
    rng = random.Random(5)
    rows: list[dict[str, object]] = []
    for _ in range(n):
        answered = rng.random() < 0.4
        rows.append(
            {
                "answered": answered,
                "ring_seconds": rng.uniform(3, 12) if answered else 25.0,
                "talk_seconds": rng.lognormvariate(4.5, 0.6) if answered else 0,
                "wrapup_seconds": 15,
            }
        )
    return rows


def test_fit_from_history() -> None:
    params = fit_from_history(_history(), agents=12)
    assert params.agents == 12
    assert params.answer_prob == pytest.approx(0.4, abs=0.06)
    assert 3 <= params.ring_mean_s <= 12
    assert params.wrapup_s == 15
    assert params.talk_mean_s == pytest.approx(2.718**4.68, rel=0.15)
    r = simulate(params, "progressive", seed=0)
    assert r.connected > 0
    with pytest.raises(ValueError, match="'answered'"):
        fit_from_history([{"ring_seconds": 3}] * 20)
    with pytest.raises(ValueError, match="at least 10 rows"):
        fit_from_history(_history(5))


def test_bad_params_are_explained() -> None:
    with pytest.raises(ValueError, match="agents must be at least 1"):
        SimulationParams(agents=0)
    with pytest.raises(ValueError, match="at least 15 s"):
        SimulationParams(ring_timeout_s=10, ring_mean_s=5)


def test_compare_reports_every_algorithm() -> None:
    out = compare(SimulationParams(agents=5, hours=0.25), ["progressive", "predictive"], seeds=[0, 1])
    assert set(out) == {"progressive", "predictive"}
    assert out["progressive"]["abandon_rate"] == 0.0
    assert out["predictive"]["seeds"] == 2


def test_cli_json_and_table(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["--agents", "5", "--hours", "0.25", "--seeds", "1",
                              "--algorithms", "progressive,predictive", "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert set(data) == {"progressive", "predictive"}
    assert 0 < data["predictive"]["occupancy"] <= 1
    res = runner.invoke(app, ["--agents", "5", "--hours", "0.25", "--seeds", "1", "--algorithms", "progressive"])
    assert res.exit_code == 0, res.output
    assert "occupancy" in res.stdout
    bad = runner.invoke(app, ["--algorithms", "turbo"])
    assert bad.exit_code != 0
    assert "turbo" in bad.output
    hist = tmp_path / "history.json"
    hist.write_text(json.dumps(_history()), encoding="utf-8")
    res = runner.invoke(app, ["--history", str(hist), "--agents", "4", "--hours", "0.25", "--seeds", "1",
                              "--algorithms", "progressive", "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["progressive"]["answered_human"] > 0


def test_simulated_leads_carry_a_list_and_the_callee_hour() -> None:
    # 09:00 UTC at the start: 09:00 in London, 17:00 in Shanghai.
    params = SimulationParams(agents=5, hours=0.25, lead_mix=((1, "Europe/London"), (2, "Asia/Shanghai")))
    est = PacingEstimators()
    r = simulate(params, "progressive", seed=1, estimators=est)
    answers = est.answers
    assert answers.attempts(1) + answers.attempts(2) == pytest.approx(r.dial_attempts, abs=len(params.lead_mix) * 5)
    assert answers.attempts(1) > 10 and answers.attempts(2) > 10
    assert answers.attempts(None) == 0, "no dial is keyed to 'no list'"
    # Only the callee's hour has data: the other hour falls back to the list's rate.
    assert answers.probability(2, 17) != answers.probability(2, 9) == answers.probability(2)
    assert answers.probability(1, 9) != answers.probability(1, 17) == answers.probability(1)
    with pytest.raises(ValueError, match="IANA"):
        SimulationParams(lead_mix=((1, "Mars/Olympus"),))


def test_history_rows_warm_the_estimate_per_list_and_hour() -> None:
    rows = [{"answered": i % 2 == 0, "ring_seconds": 5, "list_id": 7, "local_hour": 11} for i in range(40)]
    rows += [{"answered": False, "ring_seconds": 0, "list_id": 8, "local_hour": 11} for _ in range(40)]
    est = PacingEstimators.from_history(rows)
    assert est.answers.probability(7, 11) > 0.4 > 0.1 > est.answers.probability(8, 11)
    assert est.answers.probability(8, 11) < est.answers.probability(8, 20), "hour 11 learned its own rate"
