"""Queue and agent metrics on a hand-computed example, and the queue_log rows of the same run."""

from __future__ import annotations

import pytest

from acd import (
    Acd,
    AcdEvent,
    AcdOutput,
    AgentConfig,
    QueueConfig,
    QueueLogRecord,
    queue_log_record,
)
from acd.queue_log import VERBS, verb_of


def run_example() -> tuple[Acd, list[AcdOutput]]:
    """Two agents, four calls. Timeline (seconds):

    c1 arrives 100 -> a1, answered 104 (hold 4, ring 4); ends 164 by agent with 10 s on hold; wrap 164-174
    c2 arrives 101 -> a2 rings out at 116 (RINGNOANSWER), re-offered at 121, answered 131 (hold 30, ring 10);
       ends 191 by caller; a2 ends wrap-up early at 195
    c3 arrives 105, abandons 115 (position 2, original 2, wait 10)
    c4 arrives 125, waits for a1 (ready 174), answered 176 (hold 51, ring 2); ends 236 by caller; wrap 236-246
    """
    q = QueueConfig(id="q", service_level_s=20, wrapup_s=10, ring_timeout_s=15, retry_s=5)
    acd = Acd([q], [AgentConfig(id="a1", queues={"q": 0}), AgentConfig(id="a2", queues={"q": 0})])
    out: list[AcdOutput] = []
    out += acd.agent_login("a1", 0)
    out += acd.agent_login("a2", 0)
    out += acd.call_arrived("c1", "q", 100)
    out += acd.call_arrived("c2", "q", 101)
    out += acd.offer_answered("c1", "a1", 104)
    out += acd.call_arrived("c3", "q", 105)
    out += acd.caller_hung_up("c3", 115)
    out += acd.tick(121)  # c2 rings out at 116 and is offered again when a2's retry pause ends at 121
    out += acd.call_arrived("c4", "q", 125)
    out += acd.offer_answered("c2", "a2", 131)
    out += acd.call_ended("c1", 164, "agent", on_hold_s=10)
    out += acd.tick(174)  # a1's wrap-up ends; c4 is offered to a1
    out += acd.offer_answered("c4", "a1", 176)
    out += acd.call_ended("c2", 191, "caller")
    out += acd.agent_ready("a2", 195)
    out += acd.call_ended("c4", 236, "caller")
    out += acd.tick(300)
    return acd, out


def test_queue_metrics_standard_definitions() -> None:
    acd, _ = run_example()
    s = acd.queue_stats("q", 300)
    assert (s.entered, s.offered, s.answered, s.abandoned) == (4, 4, 3, 1)
    assert s.answered_within_sl == 1  # only c1 (4 s) is within 20 s
    assert s.service_level == pytest.approx(1 / 4)  # abandons count in the denominator
    assert s.asa_s == pytest.approx((4 + 30 + 51) / 3)
    assert s.abandon_rate == pytest.approx(1 / 4)
    assert (s.talk_s, s.on_hold_s, s.wrap_s) == (50 + 60 + 60, 10, 10 + 4 + 10)
    assert s.aht_s == pytest.approx((170 + 10 + 24) / 3)
    assert s.occupancy == pytest.approx(204 / (300 + 300))
    assert (s.longest_wait_s, s.waiting) == (0, 0)


def test_agent_metrics_and_occupancy() -> None:
    acd, _ = run_example()
    a1 = acd.agent_stats("a1", 300)
    assert (a1.offers, a1.answered, a1.no_answers, a1.handled) == (2, 2, 0, 2)
    assert (a1.talk_s, a1.on_hold_s, a1.wrap_s) == (50 + 60, 10, 20)
    assert a1.aht_s == pytest.approx(140 / 2)
    assert (a1.staffed_s, a1.busy_s) == (300, 140)  # on_call 104-164, 176-236; wrap 164-174, 236-246
    assert a1.occupancy == pytest.approx(140 / 300)
    a2 = acd.agent_stats("a2", 300)
    assert (a2.offers, a2.answered, a2.no_answers) == (2, 1, 1)
    assert a2.busy_s == 64 and a2.occupancy == pytest.approx(64 / 300)
    acd.mark_effective("a2")
    assert acd.agent_stats("a2", 300).effective_calls == 1


def test_paused_time_is_not_staffed_time() -> None:
    acd = Acd([QueueConfig(id="q")], [AgentConfig(id="a", queues={"q": 0})])
    acd.agent_login("a", 0)
    acd.agent_pause("a", 100, "lunch")
    acd.agent_ready("a", 400)
    s = acd.agent_stats("a", 500)
    assert (s.logged_in_s, s.staffed_s, s.paused_s) == (500, 200, 300)
    assert s.occupancy == 0


def test_longest_waiting_call_counts_live_callers_only() -> None:
    acd2 = Acd([QueueConfig(id="q")], [AgentConfig(id="a", queues={"q": 0})])
    acd2.schedule_callback("cb", "q", 0)
    acd2.call_arrived("w1", "q", 10)
    acd2.call_arrived("w2", "q", 20)
    s = acd2.queue_stats("q", 50)
    assert (s.longest_wait_s, s.waiting, s.oldest_callback_s) == (40, 2, 50)


def test_queue_log_rows_follow_asterisk_fields() -> None:
    _, out = run_example()
    rows = [r for o in out if isinstance(o, AcdEvent) and (r := queue_log_record(o)) is not None]
    verbs = [r.verb for r in rows]
    assert verbs[:2] == ["LOGIN", "LOGIN"]
    assert verbs.count("ENTERQUEUE") == 4
    assert verbs.count("CONNECT") == 3
    assert verbs.count("COMPLETEAGENT") == 1 and verbs.count("COMPLETECALLER") == 2
    assert verbs.count("WRAPUPSTART") == 3
    by = {(r.verb, r.call_id): r for r in rows}
    assert by["CONNECT", "c2"].data == ("30", "", "10")
    assert by["ABANDON", "c3"].data == ("2", "2", "10")
    assert by["COMPLETEAGENT", "c1"].data == ("4", "60", "1")
    assert by["RINGNOANSWER", "c2"].data == ("15000", "timeout")
    assert by["ENTERQUEUE", "c4"].data[2] == "2"
    assert by["CONNECT", "c4"].to_line() == "176|c4|q|a1|CONNECT|51||2"
    for r in rows:
        assert r.verb in VERBS
        assert len(r.data) == len(VERBS[r.verb][0])


def test_events_without_a_verb_make_no_row() -> None:
    _, out = run_example()
    unlogged = {type(o).__name__ for o in out if isinstance(o, AcdEvent) and verb_of(o) is None}
    assert unlogged == {"AgentStateChanged", "CallOffered"}
    assert isinstance(QueueLogRecord(1.9, "c", "q", "a", "X", ()).to_line(), str)
