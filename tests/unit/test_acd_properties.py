"""Hypothesis state machine over the ACD core: random interleavings of logins, pauses, arrivals,
answers, rejections, hang-ups, DTMF, callbacks, supervisor assignments and clock jumps.

Invariants checked after every step:
- no call is ever offered to an agent that was not ready (from the event stream itself: each
  OfferCall follows that agent's ready -> offered transition for that very call);
- the agent states replayed from AgentStateChanged events equal the core's states;
- an agent is never on two calls, and every agent state either needs no exit or has a live
  deadline or dialog that ends it (``Acd.audit``), and none has outstayed its exit;
- at the end, after ending all calls and running every deadline, no agent is offered or wrapping up.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from acd import (
    Acd,
    AcdConfig,
    AcdOutput,
    AcdStateError,
    AgentConfig,
    AgentState,
    AgentStateChanged,
    AssignmentError,
    CallPhase,
    ConnectionMode,
    Destination,
    EscalationStep,
    JoinRule,
    LeaveRule,
    OfferCall,
    QueueConfig,
    Strategy,
)

AGENTS = ("a0", "a1", "a2", "a3", "a4")
RING_S, NAILED_S = 15.0, 4.0
DESTINATIONS = (Destination("voicemail"), Destination("callback"), Destination("queue", "B"))


class AcdMachine(RuleBasedStateMachine):
    acd: Acd

    @initialize(
        strategies=st.tuples(st.sampled_from(list(Strategy)), st.sampled_from(list(Strategy))),
        wrapup=st.sampled_from([0.0, 5.0, 30.0]),
        max_no_answer=st.integers(0, 3),
        nailed=st.lists(st.booleans(), min_size=len(AGENTS), max_size=len(AGENTS)),
        levels=st.lists(st.integers(1, 10), min_size=len(AGENTS), max_size=len(AGENTS)),
        max_wait=st.sampled_from([None, 40.0, 90.0]),
        dest=st.sampled_from(DESTINATIONS),
        join=st.sampled_from(list(JoinRule)),
        leave=st.sampled_from(list(LeaveRule)),
        max_len=st.sampled_from([None, 3]),
        seed=st.integers(0, 2**16),
    )
    def setup(
        self,
        strategies: tuple[Strategy, Strategy],
        wrapup: float,
        max_no_answer: int,
        nailed: list[bool],
        levels: list[int],
        max_wait: float | None,
        dest: Destination,
        join: JoinRule,
        leave: LeaveRule,
        max_len: int | None,
        seed: int,
    ) -> None:
        qa = QueueConfig(
            id="A",
            skill="s",
            strategy=strategies[0],
            escalation=EscalationStep.steps((0, 7), (20, 3), (45, 1)),
            wrapup_s=wrapup,
            ring_timeout_s=RING_S,
            nailed_confirm_s=NAILED_S,
            max_wait_s=max_wait,
            max_wait_destination=dest,
            max_len=max_len,
            full_destination=dest,
            join_rule=join,
            leave_rule=leave,
            empty_destination=dest,
            announce_every_s=25,
            exit_keys={"1": Destination("callback"), "0": Destination("voicemail"), "2": Destination("queue", "B")},
            callback_sla_s=300,
            sticky_wait_s=10,
        )
        qb = QueueConfig(
            id="B",
            strategy=strategies[1],
            wrapup_s=wrapup / 2,
            ring_timeout_s=RING_S,
            nailed_confirm_s=NAILED_S,
            weight=2.0,
            max_wait_s=120,
            max_wait_destination=Destination("queue", "A"),
        )
        members = [{"A": 0, "B": 0}, {"A": 0}, {"B": 0}, {"A": 1, "B": 1}, {}]
        agents = [
            AgentConfig(
                id=aid,
                mode=ConnectionMode.NAILED if nailed[i] else ConnectionMode.RING,
                skills={"s": levels[i]},
                queues=members[i],
                max_pause_s=200 if i == 0 else None,
            )
            for i, aid in enumerate(AGENTS)
        ]
        self.wrap_max = wrapup
        self.acd = Acd([qa, qb], agents, AcdConfig(max_no_answer=max_no_answer), rng=random.Random(seed))
        self.now = 0.0
        self.n = 0
        self.shadow = dict.fromkeys(AGENTS, AgentState.LOGGED_OUT)
        self.last: dict[str, AgentStateChanged] = {}

    # -- plumbing ------------------------------------------------------------------------------

    def apply(self, out: Sequence[AcdOutput]) -> None:
        for o in out:
            if isinstance(o, AgentStateChanged):
                assert self.shadow[o.agent_id] is o.old, (o, self.shadow[o.agent_id])
                self.shadow[o.agent_id] = o.new
                self.last[o.agent_id] = o
            elif isinstance(o, OfferCall):
                last = self.last.get(o.agent_id)
                assert last is not None and last.old is AgentState.READY and last.new is AgentState.OFFERED, last
                assert last.call_id == o.call_id

    def step(self, fn_name: str, *args: object, **kwargs: object) -> None:
        try:
            out = getattr(self.acd, fn_name)(*args, **kwargs)
        except (AcdStateError, AssignmentError):
            return  # illegal commands change nothing; pending outputs come with the next input
        self.apply(out)

    def calls(self, *phases: CallPhase) -> list[str]:
        return [c for c in self.acd.call_ids if self.acd.call_info(c).phase in phases]

    def agents_in(self, state: AgentState) -> list[str]:
        return [a for a in AGENTS if self.acd.agent_info(a).state is state]

    # -- rules ---------------------------------------------------------------------------------

    @rule(agent=st.sampled_from(AGENTS), paused=st.booleans())
    def login(self, agent: str, paused: bool) -> None:
        self.step("agent_login", agent, self.now, paused_reason="start" if paused else None)

    @rule(agent=st.sampled_from(AGENTS))
    def logout(self, agent: str) -> None:
        self.step("agent_logout", agent, self.now)

    @rule(agent=st.sampled_from(AGENTS), reason=st.sampled_from(["break", "lunch"]))
    def pause(self, agent: str, reason: str) -> None:
        self.step("agent_pause", agent, self.now, reason)

    @rule(agent=st.sampled_from(AGENTS))
    def ready(self, agent: str) -> None:
        self.step("agent_ready", agent, self.now)

    @rule(agent=st.sampled_from(AGENTS))
    def wrapup_done(self, agent: str) -> None:
        self.step("wrapup_done", agent, self.now)

    @rule(
        queue=st.sampled_from(["A", "B"]),
        vip=st.booleans(),
        priority=st.integers(0, 2),
        sticky=st.none() | st.sampled_from(AGENTS),
    )
    def arrive(self, queue: str, vip: bool, priority: int, sticky: str | None) -> None:
        self.n += 1
        self.step("call_arrived", f"c{self.n}", queue, self.now, vip=vip, priority=priority, sticky_agent=sticky)

    @rule(data=st.data())
    def answer(self, data: st.DataObject) -> None:
        offered = self.agents_in(AgentState.OFFERED)
        if offered:
            agent = data.draw(st.sampled_from(offered))
            self.step("offer_answered", self.acd.agent_info(agent).offered_call, agent, self.now)

    @rule(data=st.data(), reason=st.sampled_from(["rejected", "failed"]))
    def reject(self, data: st.DataObject, reason: str) -> None:
        offered = self.agents_in(AgentState.OFFERED)
        if offered:
            agent = data.draw(st.sampled_from(offered))
            self.step("offer_rejected", self.acd.agent_info(agent).offered_call, agent, self.now, reason)

    @rule(data=st.data(), agent=st.sampled_from(AGENTS))
    def stale_answer(self, data: st.DataObject, agent: str) -> None:
        call = data.draw(st.sampled_from([*self.acd.call_ids, "gone"]))
        self.step("offer_answered", call, agent, self.now)

    @rule(data=st.data())
    def caller_hangs_up(self, data: st.DataObject) -> None:
        if self.acd.call_ids:
            self.step("caller_hung_up", data.draw(st.sampled_from(self.acd.call_ids)), self.now)

    @rule(data=st.data(), by=st.sampled_from(["agent", "caller"]), hold=st.sampled_from([0.0, 5.0]))
    def call_ends(self, data: st.DataObject, by: str, hold: float) -> None:
        connected = self.calls(CallPhase.CONNECTED, CallPhase.DIALING)
        if connected:
            self.step("call_ended", data.draw(st.sampled_from(connected)), self.now, by, on_hold_s=hold)

    @rule(data=st.data(), digit=st.sampled_from(["0", "1", "2", "5"]))
    def dtmf(self, data: st.DataObject, digit: str) -> None:
        if self.acd.call_ids:
            self.step("dtmf_pressed", data.draw(st.sampled_from(self.acd.call_ids)), digit, self.now)

    @rule(data=st.data())
    def request_callback(self, data: st.DataObject) -> None:
        if self.acd.call_ids:
            self.step("request_callback", data.draw(st.sampled_from(self.acd.call_ids)), self.now)

    @rule(data=st.data(), reached=st.booleans())
    def callback_result(self, data: st.DataObject, reached: bool) -> None:
        dialing = self.calls(CallPhase.DIALING)
        if dialing:
            cb = self.acd.call_info(data.draw(st.sampled_from(dialing))).callback_id
            self.step("callback_result", cb, reached, self.now)

    @rule(data=st.data(), agent=st.sampled_from(AGENTS))
    def supervisor_assign(self, data: st.DataObject, agent: str) -> None:
        if self.acd.call_ids:
            self.step("supervisor_assign", data.draw(st.sampled_from(self.acd.call_ids)), agent, self.now)

    @rule(dt=st.sampled_from([0.5, 3.0, 10.0, 16.0, 45.0, 250.0]))
    def advance(self, dt: float) -> None:
        self.now += dt
        self.apply(self.acd.tick(self.now))

    @rule()
    def advance_to_deadline(self) -> None:
        deadline = self.acd.next_deadline()
        if deadline is not None:
            self.now = max(self.now, deadline)
            self.apply(self.acd.tick(self.now))

    # -- invariants ----------------------------------------------------------------------------

    @invariant()
    def sound(self) -> None:
        if not hasattr(self, "acd"):
            return
        assert self.acd.audit(self.now) == []
        for aid in AGENTS:
            info = self.acd.agent_info(aid)
            assert info.state is self.shadow[aid], (aid, info.state, self.shadow[aid])
            if info.state is AgentState.OFFERED:
                assert self.now - info.since <= max(RING_S, NAILED_S)
            if info.state is AgentState.WRAP_UP:
                assert self.now - info.since <= self.wrap_max

    def teardown(self) -> None:
        if not hasattr(self, "acd"):
            return
        acd = self.acd
        for _ in range(2000):
            acted = False
            for cid in acd.call_ids:
                info = acd.call_info(cid)
                acted = acted or (info.phase is not CallPhase.WAITING and info.phase is not CallPhase.STICKY)
                if info.phase is CallPhase.CONNECTED:
                    self.apply(acd.call_ended(cid, self.now, "agent"))
                elif info.phase is CallPhase.DIALING:
                    self.apply(acd.callback_result(info.callback_id or "", False, self.now))
                elif info.callback_id is None:
                    acted = True
                    self.apply(acd.caller_hung_up(cid, self.now))
                elif info.phase is CallPhase.OFFERED:
                    self.apply(acd.offer_answered(cid, info.offered_to[0], self.now))
            deadline = acd.next_deadline()
            if deadline is None and not acted:
                break
            if deadline is not None:
                self.now = max(self.now, deadline)
                self.apply(acd.tick(self.now))
        assert acd.next_deadline() is None
        assert acd.audit(self.now) == []
        for aid in AGENTS:
            assert acd.agent_info(aid).state not in (AgentState.OFFERED, AgentState.WRAP_UP, AgentState.ON_CALL)
        assert all(acd.call_info(c).phase in (CallPhase.WAITING, CallPhase.STICKY) for c in acd.call_ids)


AcdMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestAcdStateMachine = AcdMachine.TestCase
