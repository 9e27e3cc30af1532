"""ACD core flows with a fake clock: agent states, wrap-up, auto-pause, sticky agent, abandon,
limits and their destinations, callbacks, forced assignment, nailed mode, join/leave rules,
announcements and the complaint SLA."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import pytest

from acd import (
    AGENT_STATE_EXITS,
    AGENT_TRANSITIONS,
    Acd,
    AcdClockError,
    AcdConfigError,
    AcdOutput,
    AcdStateError,
    AgentConfig,
    AgentPaused,
    AgentState,
    AgentStateChanged,
    AgentUnpaused,
    AssignmentError,
    BridgeCall,
    CallAbandoned,
    CallbackAtRisk,
    CallbackRequested,
    CallbackState,
    CallConnected,
    CallExitedEmpty,
    CallExitedWithKey,
    CallExitedWithTimeout,
    CallOffered,
    CallPhase,
    CallQueued,
    CallRejected,
    ConfirmCallback,
    ConnectionMode,
    Destination,
    DialCallback,
    EscalationStep,
    JoinRule,
    LeaveRule,
    OfferCall,
    PlayAnnouncement,
    QueueConfig,
    RingNoAnswer,
    SendToVoicemail,
    UnknownAgentError,
    WithdrawOffer,
    WrapupEnded,
    WrapupStarted,
)
from acd._config import AcdConfig, MaxPauseAction

T = TypeVar("T")


def of(outputs: Sequence[AcdOutput], cls: type[T]) -> list[T]:
    return [o for o in outputs if isinstance(o, cls)]


def offers(outputs: Sequence[AcdOutput]) -> list[tuple[str, str]]:
    return [(o.call_id, o.agent_id) for o in of(outputs, OfferCall)]


def simple(*agents: str, **queue: object) -> Acd:
    q = QueueConfig(id="q", **queue)  # type: ignore[arg-type]
    return Acd([q], [AgentConfig(id=a, queues={"q": 0}) for a in agents])


# -- agent state machine ----------------------------------------------------------------------


def test_transition_table_has_no_second_offer_and_every_busy_state_has_an_exit() -> None:
    for state in (AgentState.OFFERED, AgentState.ON_CALL, AgentState.WRAP_UP):
        assert AGENT_STATE_EXITS[state]
    busy = (AgentState.OFFERED, AgentState.ON_CALL, AgentState.WRAP_UP, AgentState.PAUSED)
    for state in busy:
        assert AgentState.OFFERED not in AGENT_TRANSITIONS[state].values()


def test_illegal_commands_raise_and_change_nothing() -> None:
    acd = simple("a")
    with pytest.raises(AcdStateError, match="log the agent in"):
        acd.agent_ready("a", 1)
    with pytest.raises(AcdStateError, match="cannot pause while logged_out"):
        acd.agent_pause("a", 1, "lunch")
    with pytest.raises(AcdStateError, match="cannot logout while logged_out"):
        acd.agent_logout("a", 1)
    acd.agent_login("a", 2)
    with pytest.raises(AcdStateError, match="already logged in"):
        acd.agent_login("a", 3)
    assert acd.agent_info("a").state is AgentState.READY
    with pytest.raises(UnknownAgentError, match="add_agent"):
        acd.agent_login("nobody", 3)
    with pytest.raises(AcdClockError, match="monotonic"):
        acd.tick(1)


def test_full_cycle_ready_offered_on_call_wrap_up_ready() -> None:
    acd = simple("a", wrapup_s=30)
    acd.agent_login("a", 0)
    out = acd.call_arrived("c", "q", 10)
    assert offers(out) == [("c", "a")]
    assert acd.next_deadline() == 25  # ring timeout 15 s
    out = acd.offer_answered("c", "a", 12)
    assert of(out, BridgeCall) == [BridgeCall(call_id="c", agent_id="a")]
    [conn] = of(out, CallConnected)
    assert (conn.hold_s, conn.ring_s) == (2, 2)
    assert acd.next_deadline() is None  # on_call ends with the dialog, not a timer
    out = acd.call_ended("c", 100, "agent")
    [wrap] = of(out, WrapupStarted)
    assert wrap.wrapup_s == 30
    assert acd.agent_info("a").state is AgentState.WRAP_UP
    assert acd.next_deadline() == 130
    out = acd.tick(130)
    assert of(out, WrapupEnded)[0].early is False
    assert acd.agent_info("a").state is AgentState.READY


def test_wrap_up_time_is_per_queue_and_can_end_early() -> None:
    short, long_ = QueueConfig(id="short", wrapup_s=5), QueueConfig(id="long", wrapup_s=60)
    acd = Acd([short, long_], [AgentConfig(id="a", queues={"short": 0, "long": 0})])
    acd.agent_login("a", 0)
    acd.call_arrived("c1", "short", 1)
    acd.offer_answered("c1", "a", 2)
    acd.call_ended("c1", 10, "caller")
    assert acd.next_deadline() == 15
    acd.tick(15)
    acd.call_arrived("c2", "long", 20)
    acd.offer_answered("c2", "a", 21)
    acd.call_ended("c2", 30, "caller")
    assert acd.next_deadline() == 90
    out = acd.wrapup_done("a", 40)
    assert of(out, WrapupEnded)[0].wrap_s == 10
    assert acd.agent_info("a").state is AgentState.READY
    assert acd.wrapup_done("a", 41) == []  # idempotent: a DTMF code racing the timer


def test_auto_pause_after_n_consecutive_unanswered_offers() -> None:
    q = QueueConfig(id="q", ring_timeout_s=10)
    acd = Acd([q], [AgentConfig(id="a", queues={"q": 0})], AcdConfig(max_no_answer=2))
    acd.agent_login("a", 0)
    acd.call_arrived("c1", "q", 0)
    out = acd.tick(10)
    [rna] = of(out, RingNoAnswer)
    assert (rna.reason, rna.ring_s) == ("timeout", 10)
    assert of(out, WithdrawOffer)  # the service cancels the ringing INVITE
    assert acd.agent_info("a").state is AgentState.READY
    out = acd.tick(15)  # retry_s=5: the same call is offered again
    assert offers(out) == [("c1", "a")]
    out = acd.tick(25)
    [paused] = of(out, AgentPaused)
    assert (paused.reason, paused.automatic) == ("no-answer", True)
    assert acd.agent_info("a").state is AgentState.PAUSED
    assert acd.call_info("c1").phase is CallPhase.WAITING
    # an answered offer resets the count
    acd.agent_ready("a", 30)
    acd.offer_rejected("c1", "a", 31)
    acd.tick(36)
    acd.offer_answered("c1", "a", 37)
    assert acd.agent_info("a").state is AgentState.ON_CALL


def test_pause_while_on_call_waits_for_the_call_and_its_wrap_up() -> None:
    acd = simple("a", wrapup_s=10)
    acd.agent_login("a", 0)
    acd.call_arrived("c", "q", 1)
    acd.offer_answered("c", "a", 2)
    assert acd.agent_pause("a", 3, "lunch") == []
    assert acd.agent_info("a").pending == "pause"
    acd.call_ended("c", 50, "agent")
    out = acd.tick(60)
    [p] = of(out, AgentPaused)
    assert p.reason == "lunch"
    assert acd.agent_info("a").state is AgentState.PAUSED
    out = acd.agent_ready("a", 100)
    [u] = of(out, AgentUnpaused)
    assert (u.reason, u.paused_s) == ("lunch", 40)


def test_logout_while_on_call_is_taken_after_the_call() -> None:
    acd = simple("a", wrapup_s=0)
    acd.agent_login("a", 0)
    acd.call_arrived("c", "q", 1)
    acd.offer_answered("c", "a", 2)
    acd.agent_logout("a", 3)
    assert acd.agent_info("a").state is AgentState.ON_CALL
    acd.call_ended("c", 20, "caller")
    assert acd.agent_info("a").state is AgentState.LOGGED_OUT


def test_logout_while_ringing_gives_the_call_back_its_place() -> None:
    acd = simple("a", "b")
    acd.agent_login("a", 0)
    acd.call_arrived("c", "q", 1)
    out = acd.agent_logout("a", 2)
    assert of(out, WithdrawOffer)[0].agent_id == "a"
    assert acd.call_info("c").phase is CallPhase.WAITING
    assert offers(acd.agent_login("b", 3)) == [("c", "b")]


def test_max_pause_logs_out_or_readies() -> None:
    q = QueueConfig(id="q")
    agents = [
        AgentConfig(id="out", queues={"q": 0}, max_pause_s=600),
        AgentConfig(id="back", queues={"q": 0}, max_pause_s=300, max_pause_action=MaxPauseAction.READY),
    ]
    acd = Acd([q], agents)
    acd.agent_login("out", 0, paused_reason="meeting")
    acd.agent_login("back", 0)
    acd.agent_pause("back", 10, "coffee")
    assert acd.next_deadline() == 310
    acd.tick(310)
    assert acd.agent_info("back").state is AgentState.READY
    out = acd.tick(600)
    assert acd.agent_info("out").state is AgentState.LOGGED_OUT
    assert [type(o).__name__ for o in out if not isinstance(o, AgentStateChanged)] == [
        "AgentUnpaused",
        "AgentLoggedOut",
    ]


# -- calls in line ------------------------------------------------------------------------------


def test_abandon_while_queued_reports_position_original_position_and_wait() -> None:
    acd = simple("a")
    for i, t in enumerate((0, 5, 10)):
        acd.call_arrived(f"c{i}", "q", t)
    out = acd.caller_hung_up("c1", 47)
    [ab] = of(out, CallAbandoned)
    assert (ab.position, ab.original_position, ab.wait_s) == (2, 2, 42)
    out = acd.caller_hung_up("c0", 50)
    assert of(out, CallAbandoned)[0].position == 1
    assert acd.call_info("c2").position == 1
    assert acd.call_info("c2").original_position == 3
    assert acd.caller_hung_up("c0", 51) == []  # already gone


def test_caller_hanging_up_while_ringing_withdraws_the_offer_and_frees_the_agent() -> None:
    acd = simple("a")
    acd.agent_login("a", 0)
    acd.call_arrived("c", "q", 1)
    out = acd.caller_hung_up("c", 4)
    assert of(out, WithdrawOffer)[0].reason == "caller-left"
    assert of(out, CallAbandoned)[0].wait_s == 3
    assert acd.agent_info("a").state is AgentState.READY


def test_sticky_agent_is_waited_for_then_the_call_falls_back_to_the_queue() -> None:
    acd = simple("sticky", "other", wrapup_s=0, sticky_wait_s=20)
    acd.agent_login("sticky", 0)
    acd.agent_login("other", 0)
    acd.call_arrived("first", "q", 1)  # goes to sticky (longest idle, index 0)
    acd.offer_answered("first", "sticky", 2)
    # the returning customer: sticky is busy, other is ready but must not get the call yet
    out = acd.call_arrived("back", "q", 10, sticky_agent="sticky")
    assert offers(out) == []
    assert acd.call_info("back").phase is CallPhase.STICKY
    out = acd.call_ended("first", 15, "agent")
    assert offers(out) == [("back", "sticky")]


def test_sticky_fallback_after_m_seconds() -> None:
    acd = simple("sticky", "other", wrapup_s=0, sticky_wait_s=20)
    acd.agent_login("sticky", 0)
    acd.agent_login("other", 0)
    acd.call_arrived("first", "q", 1)
    acd.offer_answered("first", "sticky", 2)
    acd.call_arrived("back", "q", 10, sticky_agent="sticky")
    assert acd.next_deadline() == 30
    assert offers(acd.tick(29)) == []
    assert offers(acd.tick(30)) == [("back", "other")]


def test_sticky_agent_logged_out_means_no_wait_and_logout_releases_waiting_calls() -> None:
    acd = simple("sticky", "other", wrapup_s=0, sticky_wait_s=20)
    acd.agent_login("other", 0)
    assert offers(acd.call_arrived("c1", "q", 1, sticky_agent="sticky")) == [("c1", "other")]
    acd.agent_login("sticky", 2)
    acd.agent_pause("sticky", 3)
    acd.call_arrived("c2", "q", 4, sticky_agent="sticky")
    assert acd.call_info("c2").phase is CallPhase.STICKY
    acd.agent_logout("sticky", 5)
    assert acd.call_info("c2").phase is CallPhase.WAITING


def test_a_late_caller_look_up_gives_a_waiting_call_its_vip_place_and_sticky_agent() -> None:
    # The service queues a call at once and feeds what the database says when it comes back.
    acd = simple("sticky", "other", wrapup_s=0, sticky_wait_s=20, vip_credit_s=60)
    acd.call_arrived("c1", "q", 1)
    acd.call_arrived("c2", "q", 2)
    acd.caller_identified("c2", 3, contact_id="k2", vip=True)
    assert [c.call_id for c in acd.calls_in_line("q")] == ["c2", "c1"]  # 60 s of credit from its arrival
    assert acd.call_info("c2").contact_id == "k2" and acd.call_info("c2").vip
    assert offers(acd.agent_login("other", 4)) == [("c2", "other")]  # the VIP first
    # sticky: the agent's reservation lasts what is left of sticky_wait_s since the call entered
    acd2 = simple("sticky", "other", wrapup_s=0, sticky_wait_s=20)
    acd2.agent_login("sticky", 0)
    acd2.agent_pause("sticky", 0)
    acd2.call_arrived("back", "q", 10)
    acd2.caller_identified("back", 12, sticky_agent="sticky")
    assert acd2.call_info("back").phase is CallPhase.STICKY and acd2.next_deadline() == 30
    acd2.agent_login("other", 13)
    assert acd2.call_info("back").phase is CallPhase.STICKY  # other is ready but must not take it
    assert offers(acd2.agent_ready("sticky", 14)) == [("back", "sticky")]
    assert acd2.audit(14) == []


def test_a_late_caller_look_up_changes_nothing_for_a_call_already_offered() -> None:
    acd = simple("a", "b", vip_credit_s=60)
    acd.agent_login("a", 0)
    assert offers(acd.call_arrived("c", "q", 1)) == [("c", "a")]
    assert acd.caller_identified("c", 2, vip=True, sticky_agent="b") == []
    assert acd.call_info("c").phase is CallPhase.OFFERED and not acd.call_info("c").vip
    assert acd.caller_identified("gone", 3, vip=True) == []
    assert acd.audit(3) == []


def test_max_wait_to_voicemail() -> None:
    acd = simple("a", max_wait_s=60)
    acd.call_arrived("c", "q", 0)
    out = acd.tick(60)
    [ex] = of(out, CallExitedWithTimeout)
    assert (ex.wait_s, ex.destination) == (60, Destination("voicemail"))
    assert of(out, SendToVoicemail) == [SendToVoicemail(call_id="c", queue="q", reason="max-wait")]
    assert "c" not in acd.call_ids


def test_max_wait_to_another_queue() -> None:
    main = QueueConfig(id="main", max_wait_s=30, max_wait_destination=Destination("queue", "overflow"))
    overflow = QueueConfig(id="overflow")
    acd = Acd([main, overflow], [AgentConfig(id="b", queues={"overflow": 0})])
    acd.agent_login("b", 0)
    acd.call_arrived("c", "main", 0)
    out = acd.tick(30)
    assert of(out, CallExitedWithTimeout)[0].queue == "main"
    assert of(out, CallQueued)[0].queue == "overflow"
    assert offers(out) == [("c", "b")]


def test_max_wait_to_callback_keeps_the_place() -> None:
    acd = simple("a", max_wait_s=30, max_wait_destination=Destination("callback"))
    acd.call_arrived("c1", "q", 0)
    acd.call_arrived("c2", "q", 10)
    out = acd.tick(30)
    assert of(out, CallExitedWithTimeout)[0].call_id == "c1"
    [req] = of(out, CallbackRequested)
    assert (req.callback_id, req.position) == ("cb-c1", 1)
    assert of(out, ConfirmCallback) == [ConfirmCallback(call_id="c1", callback_id="cb-c1", queue="q")]
    out = acd.agent_login("a", 35)
    [offer] = of(out, OfferCall)
    assert (offer.call_id, offer.callback_id) == ("c1", "cb-c1")


def test_max_wait_while_ringing_lets_the_agent_answer() -> None:
    acd = simple("a", max_wait_s=10, ring_timeout_s=15)
    acd.agent_login("a", 0)
    acd.call_arrived("c", "q", 0)
    assert acd.tick(10) == []
    out = acd.offer_answered("c", "a", 12)
    assert of(out, CallConnected)


def test_max_wait_while_ringing_exits_when_the_offer_fails() -> None:
    acd = simple("a", max_wait_s=10, ring_timeout_s=15)
    acd.agent_login("a", 0)
    acd.call_arrived("c", "q", 0)
    out = acd.tick(15)
    assert of(out, RingNoAnswer)
    assert of(out, CallExitedWithTimeout)[0].wait_s == 15
    assert of(out, SendToVoicemail)


def test_max_length_rejects_to_its_destination() -> None:
    acd = simple("a", max_len=2, full_destination=Destination("callback"))
    acd.call_arrived("c1", "q", 0)
    acd.call_arrived("c2", "q", 1)
    out = acd.call_arrived("c3", "q", 2, contact_id="ct-3")
    [rej] = of(out, CallRejected)
    assert (rej.reason, rej.destination) == ("full", Destination("callback"))
    [req] = of(out, CallbackRequested)
    assert (req.position, req.contact_id) == (3, "ct-3")  # the virtual caller joins at the back
    assert of(out, ConfirmCallback)
    # callbacks do not count against the live length: a fourth live caller is still refused
    assert of(acd.call_arrived("c4", "q", 3), CallRejected)


def test_exit_key_to_voicemail_and_callback_key() -> None:
    keys = {"0": Destination("voicemail"), "1": Destination("callback")}
    acd = simple("a", exit_keys=keys)
    acd.call_arrived("c1", "q", 0)
    acd.call_arrived("c2", "q", 5)
    out = acd.dtmf_pressed("c1", "0", 20)
    [ex] = of(out, CallExitedWithKey)
    assert (ex.key, ex.position, ex.wait_s) == ("0", 1, 20)
    assert of(out, SendToVoicemail)
    assert acd.dtmf_pressed("c2", "7", 21) == []
    out = acd.dtmf_pressed("c2", "1", 22)
    assert of(out, CallbackRequested)[0].callback_id == "cb-c2"
    assert not of(out, CallExitedWithKey)


def test_join_rule_rejects_when_nobody_is_logged_in() -> None:
    acd = simple("a", join_rule=JoinRule.REJECT_NO_AGENTS)
    out = acd.call_arrived("c1", "q", 0)
    assert of(out, CallRejected)[0].reason == "empty"
    assert of(out, SendToVoicemail)
    acd.agent_login("a", 1, paused_reason="training")
    out = acd.call_arrived("c2", "q", 2)  # logged in but paused: this rule still lets the caller join
    assert of(out, CallQueued)


def test_join_rule_unavailable_rejects_when_all_are_paused() -> None:
    acd = simple("a", join_rule=JoinRule.REJECT_UNAVAILABLE)
    acd.agent_login("a", 1, paused_reason="training")
    assert of(acd.call_arrived("c", "q", 2), CallRejected)


def test_leave_rule_sends_callers_away_when_the_last_agent_logs_out() -> None:
    acd = simple("a", "b", leave_rule=LeaveRule.LEAVE_NO_AGENTS, empty_destination=Destination("voicemail"))
    acd.agent_login("a", 0)
    acd.agent_login("b", 0, paused_reason="meeting")
    acd.call_arrived("x", "q", 1)
    acd.offer_answered("x", "a", 2)
    acd.call_arrived("c1", "q", 5)
    acd.call_arrived("c2", "q", 6)
    acd.agent_logout("b", 10)
    out = acd.agent_logout("a", 11)  # a is on a call: logout is pending, nobody leaves yet
    assert not of(out, CallExitedEmpty)
    assert not of(acd.call_ended("x", 20, "agent"), CallExitedEmpty)  # wrap-up first
    out = acd.tick(30)
    assert acd.agent_info("a").state is AgentState.LOGGED_OUT
    exits = of(out, CallExitedEmpty)
    assert [e.call_id for e in exits] == ["c1", "c2"]
    assert [e.position for e in exits] == [1, 1]
    assert len(of(out, SendToVoicemail)) == 2


def test_leave_rule_unavailable_fires_when_the_last_agent_pauses() -> None:
    acd = simple("a", leave_rule=LeaveRule.LEAVE_UNAVAILABLE, empty_destination=Destination("callback"))
    acd.agent_login("a", 0, paused_reason="x")
    acd.agent_ready("a", 1)
    acd.agent_pause("a", 2)
    acd.call_arrived("c", "q", 3)
    assert acd.call_info("c").phase is CallPhase.WAITING  # join rule is 'join'
    acd.agent_ready("a", 4)
    acd.offer_rejected("c", "a", 5)
    out = acd.agent_pause("a", 6)
    assert of(out, CallExitedEmpty)[0].destination == Destination("callback")
    assert acd.call_info("c").callback_id == "cb-c"  # callbacks stay in line


# -- callbacks ----------------------------------------------------------------------------------


def test_callback_keeps_its_place_and_is_never_dialled_twice() -> None:
    acd = simple("a", wrapup_s=0)
    acd.call_arrived("c1", "q", 0, contact_id="alice")
    acd.call_arrived("c2", "q", 10)
    out = acd.request_callback("c1", 20)
    assert of(out, ConfirmCallback)
    assert acd.call_info("c1").position == 1
    assert acd.request_callback("c1", 21) == []  # same id: nothing new
    out = acd.agent_login("a", 30)
    [offer] = of(out, OfferCall)
    assert (offer.call_id, offer.callback_id, offer.contact_id) == ("c1", "cb-c1", "alice")
    out = acd.offer_answered("c1", "a", 31)
    assert of(out, DialCallback) == [
        DialCallback(callback_id="cb-c1", call_id="c1", agent_id="a", queue="q", contact_id="alice")
    ]
    assert not of(out, BridgeCall)
    assert not of(acd.offer_answered("c1", "a", 32), DialCallback)  # duplicate answer: no second dial
    assert acd.callback_info("cb-c1").state is CallbackState.DIALING
    out = acd.callback_result("cb-c1", True, 40)
    [conn] = of(out, CallConnected)
    assert (conn.callback_id, conn.hold_s) == ("cb-c1", 31)
    assert acd.callback_result("cb-c1", True, 41) == []
    assert acd.request_callback("c1", 42, callback_id="cb-c1") == []
    out = acd.call_ended("c1", 100, "agent")
    assert acd.callback_info("cb-c1").state is CallbackState.DONE
    assert offers(out) == [("c2", "a")]  # the live caller behind it is next


def test_callback_offer_not_taken_goes_back_to_requested() -> None:
    acd = simple("a", wrapup_s=5)
    acd.call_arrived("c", "q", 0)
    acd.request_callback("c", 1)
    acd.agent_login("a", 2)
    assert acd.callback_info("cb-c").state is CallbackState.OFFERED
    acd.offer_rejected("c", "a", 3)
    assert acd.callback_info("cb-c").state is CallbackState.REQUESTED
    acd.tick(8)
    acd.offer_answered("c", "a", 9)
    out = acd.callback_result("cb-c", False, 30)
    assert acd.callback_info("cb-c").state is CallbackState.FAILED
    assert of(out, WrapupStarted)
    assert "c" not in acd.call_ids
    with pytest.raises(AcdStateError):
        acd.request_callback("c", 31, callback_id="cb-new")


def test_complaint_sla_flags_callbacks_at_risk() -> None:
    acd = simple("a", callback_sla_s=1000, callback_risk_fraction=0.8)
    out = acd.schedule_callback("cmp-1", "q", 100, contact_id="bob")
    assert of(out, CallbackRequested)[0].due_at == 1100
    assert acd.at_risk(899) == []
    assert acd.next_deadline() == 900
    out = acd.tick(900)
    assert of(out, CallbackAtRisk) == [CallbackAtRisk(at=900, callback_id="cmp-1", queue="q", due_at=1100)]
    [risky] = acd.at_risk(900)
    assert (risky.callback_id, risky.contact_id) == ("cmp-1", "bob")
    assert acd.schedule_callback("cmp-1", "q", 901) == []  # idempotent


def test_restored_callback_keeps_its_arrival_and_sla_deadline() -> None:
    """After a restart the service passes each callback's original arrival: it goes back in line
    there (ahead of a caller who came later), and its SLA runs from that arrival."""
    acd = simple("a", callback_sla_s=1000)
    acd.call_arrived("live", "q", 500)
    out = acd.schedule_callback("cb-early", "q", 600, arrived_at=100)
    assert of(out, CallbackRequested)[0].due_at == 1100
    acd.schedule_callback("cb-late", "q", 601, arrived_at=550)
    acd.schedule_callback("cb-future", "q", 602, arrived_at=5000)  # never after now
    assert [c.callback_id or c.call_id for c in acd.calls_in_line("q")] == ["cb-early", "live", "cb-late", "cb-future"]
    assert acd.call_info("cb-future").arrived_at == 602
    assert offers(acd.agent_login("a", 603)) == [("cb-early", "a")]


def test_default_complaint_sla_is_twelve_hours() -> None:
    acd = simple("a")
    out = acd.schedule_callback("cmp", "q", 0)
    assert of(out, CallbackRequested)[0].due_at == 12 * 3600
    assert [c.callback_id for c in acd.at_risk(0.8 * 12 * 3600)] == ["cmp"]


# -- supervisor, nailed, announcements ----------------------------------------------------------


def test_supervisor_forced_assignment() -> None:
    q = QueueConfig(id="q", skill="de", escalation=EscalationStep.steps((0, 9)))
    agents = [AgentConfig(id="novice", skills={"de": 1}, queues={"q": 0}), AgentConfig(id="boss")]
    acd = Acd([q], agents)
    acd.agent_login("novice", 0)
    acd.call_arrived("c", "q", 1)
    assert acd.call_info("c").phase is CallPhase.WAITING  # needs level 9
    with pytest.raises(AssignmentError, match="logged out"):
        acd.supervisor_assign("c", "boss", 2)
    acd.agent_login("boss", 3, paused_reason="admin")
    with pytest.raises(AssignmentError, match=r"paused \(admin\)"):
        acd.supervisor_assign("c", "boss", 4)
    out = acd.supervisor_assign("c", "novice", 5)
    assert of(out, CallOffered)[0].forced is True
    with pytest.raises(AssignmentError, match="ringing novice"):
        acd.supervisor_assign("c", "boss", 6)
    acd.offer_answered("c", "novice", 7)
    acd.agent_ready("boss", 8)
    acd.call_arrived("d", "q", 9)
    with pytest.raises(AssignmentError, match="on call 'c'"):
        acd.supervisor_assign("d", "novice", 10)


def test_nailed_mode_bridges_at_once_without_ringing() -> None:
    q = QueueConfig(id="q", nailed_confirm_s=3)
    acd = Acd([q], [AgentConfig(id="n", mode=ConnectionMode.NAILED, queues={"q": 0})])
    acd.agent_login("n", 0)
    out = acd.call_arrived("c", "q", 10)
    [offer] = of(out, OfferCall)
    assert (offer.mode, offer.timeout_s) == (ConnectionMode.NAILED, 3)
    out = acd.offer_answered("c", "n", 10.05)
    assert not of(out, BridgeCall)  # already bridged by the offer
    assert of(out, CallConnected)[0].ring_s == pytest.approx(0.05)
    assert acd.agent_info("n").state is AgentState.ON_CALL


def test_nailed_bridge_not_confirmed_is_caught_by_its_guard() -> None:
    q = QueueConfig(id="q", nailed_confirm_s=3)
    acd = Acd([q], [AgentConfig(id="n", mode="nailed", queues={"q": 0})])  # type: ignore[arg-type]
    acd.agent_login("n", 0)
    acd.call_arrived("c", "q", 10)
    out = acd.tick(13)
    assert of(out, RingNoAnswer)[0].reason == "timeout"
    assert of(out, WithdrawOffer)[0].reason == "not-confirmed-timeout"
    assert acd.agent_info("n").state is AgentState.READY


def test_position_and_estimated_wait_announcements() -> None:
    acd = simple("a", announce_first_s=5, announce_every_s=30, default_aht_s=120)
    acd.agent_login("a", 0)
    acd.call_arrived("busy", "q", 0)
    acd.offer_answered("busy", "a", 1)
    acd.call_arrived("c1", "q", 10)
    acd.call_arrived("c2", "q", 12)
    out = acd.tick(17)
    anns = of(out, PlayAnnouncement)
    assert [(a.call_id, a.position, a.ewt_s) for a in anns] == [("c1", 1, 120), ("c2", 2, 240)]
    assert acd.next_deadline() == 45
    acd.caller_hung_up("c1", 20)
    assert acd.tick(45) == []
    out = acd.tick(47)
    assert [(a.call_id, a.position) for a in of(out, PlayAnnouncement)] == [("c2", 1)]


def test_config_errors_say_what_to_fix() -> None:
    with pytest.raises(AcdConfigError, match="non-increasing levels"):
        QueueConfig(id="q", skill="s", escalation=EscalationStep.steps((0, 4), (30, 7)))
    with pytest.raises(AcdConfigError, match="needs a skill"):
        QueueConfig(id="q", escalation=EscalationStep.steps((0, 4), (30, 1)))
    with pytest.raises(AcdConfigError, match="strategy 'fastest' is unknown"):
        QueueConfig(id="q", strategy="fastest")  # type: ignore[arg-type]
    with pytest.raises(AcdConfigError, match="1-10"):
        AgentConfig(id="a", skills={"s": 11})
    with pytest.raises(AcdConfigError, match="add the queue first"):
        Acd([], [AgentConfig(id="a", queues={"nope": 0})])
    with pytest.raises(AcdConfigError, match="no level in its skill"):
        Acd([QueueConfig(id="q", skill="s")], [AgentConfig(id="a", queues={"q": 0})])
    with pytest.raises(AcdConfigError, match="Destination"):
        Destination("queue")
