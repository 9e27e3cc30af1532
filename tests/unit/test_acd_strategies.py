"""ACD routing strategies, penalty tiers, escalation steps, VIP credit and cross-queue fairness (fake clock)."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence

import pytest

from acd import (
    Acd,
    AcdOutput,
    AgentConfig,
    AgentState,
    CallPhase,
    CallQueued,
    EscalationStep,
    OfferCall,
    OfferWithdrawn,
    QueueConfig,
    Strategy,
    WithdrawOffer,
)


def offers(outputs: Sequence[AcdOutput]) -> list[tuple[str, str]]:
    return [(o.call_id, o.agent_id) for o in outputs if isinstance(o, OfferCall)]


def team(strategy: Strategy, n: int = 3, **queue: object) -> Acd:
    q = QueueConfig(id="q", skill="s", strategy=strategy, wrapup_s=0, **queue)  # type: ignore[arg-type]
    agents = [AgentConfig(id=f"a{i}", skills={"s": 5}, queues={"q": 0}) for i in range(n)]
    return Acd([q], agents, rng=random.Random(7))


def login_all(acd: Acd, ids: Sequence[str], start: float = 0.0) -> None:
    for i, aid in enumerate(ids):
        acd.agent_login(aid, start + i)


def handle(acd: Acd, call_id: str, t: float, talk: float = 10.0) -> str:
    """Arrive, answer by whoever is offered, talk and hang up; returns the agent."""
    out = acd.call_arrived(call_id, "q", t)
    [(_, agent)] = offers(out)
    acd.offer_answered(call_id, agent, t + 1)
    acd.call_ended(call_id, t + 1 + talk, "agent")
    return agent


def test_longest_idle_takes_the_agent_ready_the_longest() -> None:
    acd = team(Strategy.LONGEST_IDLE)
    login_all(acd, ["a2", "a0", "a1"])  # a2 ready first
    assert handle(acd, "c1", 10) == "a2"
    assert handle(acd, "c2", 30) == "a0"  # a2 became ready again at 21, a0 idle since 1
    assert handle(acd, "c3", 50) == "a1"
    assert handle(acd, "c4", 70) == "a2"


def test_fewest_calls_prefers_the_agent_with_fewer_calls() -> None:
    acd = team(Strategy.FEWEST_CALLS)
    login_all(acd, ["a0", "a1", "a2"])
    assert handle(acd, "c1", 10) == "a0"
    assert handle(acd, "c2", 30) == "a1"
    assert handle(acd, "c3", 50) == "a2"
    # one call each: the tie goes to the longest idle (a0 since 21)
    assert handle(acd, "c4", 70) == "a0"
    # a0 has 2 calls now; a1 and a2 have 1, a1 idle since 41 beats a2 since 61
    assert handle(acd, "c5", 90) == "a1"


def test_least_talk_time_prefers_the_agent_who_talked_least() -> None:
    acd = team(Strategy.LEAST_TALK_TIME)
    login_all(acd, ["a0", "a1", "a2"])
    assert handle(acd, "c1", 10, talk=300) == "a0"
    assert handle(acd, "c2", 400, talk=5) == "a1"
    assert handle(acd, "c3", 420, talk=100) == "a2"
    # talk so far: a0 300, a1 5, a2 100 -> a1, although a0 has been idle longer
    assert handle(acd, "c4", 600) == "a1"


def test_round_robin_remembers_its_place_per_queue() -> None:
    acd = team(Strategy.ROUND_ROBIN, n=4)
    login_all(acd, ["a3", "a2", "a1", "a0"])  # login order must not matter
    picked = [handle(acd, f"c{i}", 10 + 20 * i) for i in range(6)]
    assert picked == ["a0", "a1", "a2", "a3", "a0", "a1"]
    # x1 goes to the next after a1 (a2) and stays connected; x2 goes on to a3
    acd.call_arrived("x1", "q", 200)
    acd.offer_answered("x1", "a2", 201)
    assert handle(acd, "x2", 210) == "a3"


def test_top_down_always_tries_the_list_in_order() -> None:
    q = QueueConfig(id="q", strategy=Strategy.TOP_DOWN, agent_order=("c", "a", "b"), wrapup_s=0)
    acd = Acd([q], [AgentConfig(id=x, queues={"q": 0}) for x in "abc"])
    login_all(acd, ["a", "b", "c"])
    assert offers(acd.call_arrived("1", "q", 10)) == [("1", "c")]
    assert offers(acd.call_arrived("2", "q", 11)) == [("2", "a")]
    assert offers(acd.call_arrived("3", "q", 12)) == [("3", "b")]
    acd.offer_rejected("1", "c", 13)
    # c declined call 1, which goes back in line; c is skipped for it for retry_s
    assert acd.call_info("1").phase is CallPhase.WAITING
    out = acd.tick(13 + q.retry_s)
    assert offers(out) == [("1", "c")]


def test_ring_all_offers_everyone_and_the_first_answer_wins() -> None:
    acd = team(Strategy.RING_ALL, n=3)
    login_all(acd, ["a0", "a1", "a2"])
    out = acd.call_arrived("c1", "q", 10)
    assert sorted(offers(out)) == [("c1", "a0"), ("c1", "a1"), ("c1", "a2")]
    out = acd.offer_answered("c1", "a1", 12)
    withdrawn = sorted(o.agent_id for o in out if isinstance(o, WithdrawOffer))
    assert withdrawn == ["a0", "a2"]
    assert all(o.reason == "answered-elsewhere" for o in out if isinstance(o, OfferWithdrawn))
    assert acd.agent_info("a1").state is AgentState.ON_CALL
    for aid in ("a0", "a2"):
        info = acd.agent_info(aid)
        assert info.state is AgentState.READY
        assert info.idle_since == pytest.approx(int(aid[1]))  # a withdrawn offer keeps the idle time
    # a late answer from a loser is told to hang up its leg
    late = acd.offer_answered("c1", "a0", 12.2)
    assert [type(o).__name__ for o in late] == ["ReleaseAgentLeg"]
    assert acd.agent_info("a0").state is AgentState.READY


def test_ring_all_call_waits_again_when_everyone_declines() -> None:
    acd = team(Strategy.RING_ALL, n=2)
    login_all(acd, ["a0", "a1"])
    acd.call_arrived("c1", "q", 10)
    acd.offer_rejected("c1", "a0", 11)
    assert acd.call_info("c1").phase is CallPhase.OFFERED  # a1 still rings
    acd.offer_rejected("c1", "a1", 12)
    assert acd.call_info("c1").phase is CallPhase.WAITING
    # retry_s=5: a0 may take it again from 16, a1 from 17; the call rings whoever is allowed
    out = acd.tick(17)
    assert offers(out) == [("c1", "a0")]
    assert acd.call_info("c1").offered_to == ("a0",)


def test_random_uses_the_injected_generator() -> None:
    def run(seed: int) -> list[str]:
        q = QueueConfig(id="q", strategy=Strategy.RANDOM, wrapup_s=0)
        acd = Acd([q], [AgentConfig(id=f"a{i}", queues={"q": 0}) for i in range(4)], rng=random.Random(seed))
        login_all(acd, [f"a{i}" for i in range(4)])
        return [handle(acd, f"c{i}", 10 + 20 * i) for i in range(40)]

    first = run(1)
    assert first == run(1)
    assert first != run(2)
    assert set(Counter(first)) == {"a0", "a1", "a2", "a3"}


def test_skill_weighted_prefers_the_higher_level_then_longest_idle() -> None:
    q = QueueConfig(id="q", skill="fr", strategy=Strategy.SKILL_WEIGHTED, wrapup_s=0)
    agents = [
        AgentConfig(id="low", skills={"fr": 3}, queues={"q": 0}),
        AgentConfig(id="high1", skills={"fr": 9}, queues={"q": 0}),
        AgentConfig(id="high2", skills={"fr": 9}, queues={"q": 0}),
    ]
    acd = Acd([q], agents)
    login_all(acd, ["low", "high2", "high1"])
    assert offers(acd.call_arrived("1", "q", 10)) == [("1", "high2")]
    assert offers(acd.call_arrived("2", "q", 11)) == [("2", "high1")]
    assert offers(acd.call_arrived("3", "q", 12)) == [("3", "low")]


def test_lower_penalty_tier_is_used_first() -> None:
    q = QueueConfig(id="q", wrapup_s=0)
    agents = [AgentConfig(id="backup", queues={"q": 1}), AgentConfig(id="main", queues={"q": 0})]
    acd = Acd([q], agents)
    login_all(acd, ["backup", "main"])  # backup idle longer, but in the higher tier
    assert offers(acd.call_arrived("1", "q", 10)) == [("1", "main")]
    assert offers(acd.call_arrived("2", "q", 11)) == [("2", "backup")]


def test_escalation_widens_exactly_at_each_step() -> None:
    q = QueueConfig(id="q", skill="s", escalation=EscalationStep.steps((0, 7), (30, 4), (60, 1)), wrapup_s=0)
    assert q.escalation[1] == EscalationStep(30, 4)
    agents = [
        AgentConfig(id="l5", skills={"s": 5}, queues={"q": 0}),
        AgentConfig(id="l2", skills={"s": 2}, queues={"q": 0}),
    ]
    acd = Acd([q], agents)
    login_all(acd, ["l2", "l5"])
    assert offers(acd.call_arrived("c1", "q", 100)) == []
    assert acd.next_deadline() == 130  # the call is re-evaluated exactly when it widens
    assert offers(acd.tick(129.9)) == []
    assert offers(acd.tick(130)) == [("c1", "l5")]
    acd.offer_answered("c1", "l5", 131)
    assert offers(acd.call_arrived("c2", "q", 140)) == []
    assert offers(acd.tick(170)) == []  # 30 s into c2: level 4 needed, l2 has 2
    assert offers(acd.tick(200)) == [("c2", "l2")]  # 60 s: anyone with the skill
    assert acd.call_info("c2").escalation_step == 2


def test_an_agent_becoming_ready_only_takes_calls_its_level_allows() -> None:
    q = QueueConfig(id="q", skill="s", escalation=EscalationStep.steps((0, 7), (30, 1)), wrapup_s=0)
    acd = Acd([q], [AgentConfig(id="junior", skills={"s": 2}, queues={"q": 0})])
    acd.call_arrived("young", "q", 0)
    acd.call_arrived("second", "q", 5)
    out = acd.agent_login("junior", 20)
    assert offers(out) == []
    out = acd.tick(30)
    assert offers(out) == [("young", "junior")]


def test_vip_credit_puts_a_vip_ahead_of_earlier_callers() -> None:
    q = QueueConfig(id="q", vip_credit_s=60, wrapup_s=0)
    acd = Acd([q], [AgentConfig(id="a", queues={"q": 0})])
    acd.call_arrived("normal", "q", 0)
    out = acd.call_arrived("vip", "q", 30, vip=True)
    assert acd.call_info("vip").position == 1
    assert acd.call_info("normal").position == 2
    assert [o.position for o in out if isinstance(o, CallQueued)] == [1]
    assert offers(acd.agent_login("a", 40)) == [("vip", "a")]


def test_priority_credit_and_more_wait_beat_priority() -> None:
    q = QueueConfig(id="q", priority_credit_s=10, wrapup_s=0)
    acd = Acd([q], [AgentConfig(id="a", queues={"q": 0})])
    acd.call_arrived("early", "q", 0)
    acd.call_arrived("prio2", "q", 15, priority=2)  # credit 20 s -> effective arrival -5
    assert [c.call_id for c in acd.calls_in_line("q")] == ["prio2", "early"]


def test_cross_queue_agent_takes_the_longest_waiting_caller() -> None:
    qa, qb = QueueConfig(id="A", wrapup_s=0), QueueConfig(id="B", wrapup_s=0)
    acd = Acd([qa, qb], [AgentConfig(id="x", queues={"A": 0, "B": 0})])
    acd.call_arrived("b-old", "B", 0)
    acd.call_arrived("a-new", "A", 10)
    assert offers(acd.agent_login("x", 20)) == [("b-old", "x")]


def test_cross_queue_weight_multiplies_the_wait() -> None:
    qa, qb = QueueConfig(id="A", wrapup_s=0), QueueConfig(id="B", weight=2.0, wrapup_s=0)
    acd = Acd([qa, qb], [AgentConfig(id="x", queues={"A": 0, "B": 0})])
    acd.call_arrived("a-old", "A", 0)  # waits 30 s -> score 30
    acd.call_arrived("b-new", "B", 10)  # waits 20 s, weight 2 -> score 40
    assert offers(acd.agent_login("x", 30)) == [("b-new", "x")]
    acd.offer_answered("b-new", "x", 31)
    assert offers(acd.call_ended("b-new", 40, "agent")) == [("a-old", "x")]


def test_routing_decision_is_global_not_per_queue_first_come() -> None:
    """An agent in three queues, each with callers: the one decision picks the longest credited wait."""
    queues = [QueueConfig(id=f"q{i}", vip_credit_s=100, wrapup_s=0) for i in range(3)]
    acd = Acd(queues, [AgentConfig(id="x", queues={f"q{i}": 0 for i in range(3)})])
    acd.call_arrived("q0-a", "q0", 0)
    acd.call_arrived("q1-a", "q1", 10)
    acd.call_arrived("q2-vip", "q2", 50, vip=True)  # effective arrival -50
    assert offers(acd.agent_login("x", 60)) == [("q2-vip", "x")]


def test_escalation_boundary_survives_float_rounding() -> None:
    """(entered + 30) - entered < 30 for some floats; the step timer must still move the call on."""
    entered = 2.8000000000000003
    assert (entered + 30) - entered < 30
    q = QueueConfig(id="q", skill="s", escalation=EscalationStep.steps((0, 7), (30, 1)), wrapup_s=0)
    acd = Acd([q], [AgentConfig(id="low", skills={"s": 1}, queues={"q": 0})])
    acd.agent_login("low", 0)
    acd.call_arrived("c", "q", entered)
    deadline = acd.next_deadline()
    assert deadline == entered + 30
    assert offers(acd.tick(deadline)) == [("c", "low")]
    assert acd.next_deadline() == deadline + q.ring_timeout_s
