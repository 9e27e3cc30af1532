"""Live supervision through the ACD over real SIP on loopback: a supervisor account registers,
an agent takes a customer's call, the supervisor dials ``*22<extension>`` and switches listen ->
whisper -> barge with DTMF, then leaves with #; non-supervisors get 403; the console's
``supervise`` rings the supervisor's softphone; every session is in the queue_log.

Customer, agent and supervisor play 500, 1100 and 1750 Hz; what each phone hears is told
apart by the spectrum of its recording (helpers shared with ``test_supervision``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from acd.service import AcdServiceConfig
from acd.supervision import SupervisionRefused
from telephony.aio.supervision import SupervisionEnded, SupervisionModeChanged, SupervisionStarted
from telephony.aio.ua import Call, UAConfig, UserAgent
from telephony.media.player import tone
from telephony.sip.dialog import CallOutcome
from tests.integration.acd_harness import HOST, PASSWORD, Phone, World, agent, queue, until, world
from tests.integration.test_supervision import AMPLITUDE, FREQ, Ear, listen_all

pytestmark = pytest.mark.timeout(60)

DID = "5000"


def config(**extra: Any) -> dict[str, Any]:
    return {
        "queues": [queue("q")],
        "agents": [agent("1001", extension="101")],
        "dids": {DID: "queue:q"},
        "supervisors": [{"id": "sam", "name": "Sam Super", "password": PASSWORD}],
        # Everyone here shares 127.0.0.1, the trusted "trunk": prove supervisors by registration.
        "trusted_supervisor_calls": "registered_source",
        **extra,
    }


@dataclass
class Scene:
    w: World
    agent_phone: Phone
    supervisor: Phone
    customer: Call
    players: list[asyncio.Task[None]]

    @property
    def agent_call(self) -> Call:
        return self.agent_phone.current

    def play(self, who: str, call: Call) -> None:
        self.players.append(asyncio.create_task(call.play(tone(FREQ[who], 2.0, AMPLITUDE), loop=True)))

    async def dial(self, code: str) -> Call:
        call = await self.supervisor.ua.call(f"sip:{code}@{HOST}:{self.w.port}")
        outcome = await asyncio.wait_for(call.wait_answered(), 5)
        assert outcome.outcome is CallOutcome.ANSWERED, outcome
        return call

    async def key(self, call: Call, digit: str, kind: type) -> Any:
        before = len(self.w.of(kind))
        await call.send_dtmf(digit)
        await until(lambda: len(self.w.of(kind)) > before, what=f"{kind.__name__} after {digit!r}")
        return self.w.of(kind)[-1]


@pytest.fixture
async def scene(tmp_path: Path) -> AsyncIterator[Scene]:
    async with world(tmp_path, config()) as w:
        agent_phone = await w.phone("1001")
        supervisor = await w.phone("sam")
        await w.service.agent_login("1001")
        customer = await w.call(DID, "15551234")
        await until(lambda: bool(agent_phone.answered), what="agent answers")
        await until(lambda: w.state("1001") == "on_call", what="agent on call")
        s = Scene(w, agent_phone, supervisor, customer, [])
        s.play("customer", customer)
        s.play("agent", agent_phone.current)
        try:
            yield s
        finally:
            for task in s.players:
                task.cancel()
            await asyncio.gather(*s.players, return_exceptions=True)


async def test_supervisor_dials_listen_then_whispers_barges_and_leaves(scene: Scene) -> None:
    w = scene.w
    ears = {"customer": Ear(scene.customer), "agent": Ear(scene.agent_call)}
    sup = await scene.dial("*22101")
    scene.play("supervisor", sup)
    ears["supervisor"] = Ear(sup)
    await until(lambda: bool(w.of(SupervisionStarted)), what="supervision started")
    started = w.of(SupervisionStarted)[0]
    assert (started.supervisor, started.agent, started.call_id, started.mode) == (
        "sam",
        "1001",
        scene.customer.id,
        "listen",
    )
    await asyncio.sleep(0.2)  # the phones' jitter buffers settle on the mixed streams
    assert await listen_all(ears) == {
        "customer": {"agent"},
        "agent": {"customer"},
        "supervisor": {"customer", "agent"},
    }

    changed = await scene.key(sup, "2", SupervisionModeChanged)
    assert (changed.mode, changed.previous, changed.by) == ("whisper", "listen", "dtmf")
    await asyncio.sleep(0.2)
    heard = await listen_all(ears)
    assert heard["agent"] == {"customer", "supervisor"}  # the agent hears the coach
    assert heard["customer"] == {"agent"}  # the customer does not
    assert heard["supervisor"] == {"customer", "agent"}

    changed = await scene.key(sup, "3", SupervisionModeChanged)
    assert changed.mode == "barge"
    await asyncio.sleep(0.2)
    heard = await listen_all(ears)
    assert heard["customer"] == {"agent", "supervisor"}
    assert heard["agent"] == {"customer", "supervisor"}

    ended = await scene.key(sup, "#", SupervisionEnded)
    assert (ended.reason, ended.mode) == ("supervisor_left", "barge") and ended.duration > 1
    await asyncio.wait_for(sup.wait_ended(), 5)
    assert sup.ended_by == "remote"
    assert w.service.supervision.sessions == []
    del ears["supervisor"]
    await asyncio.sleep(0.2)
    assert await listen_all(ears) == {"customer": {"agent"}, "agent": {"customer"}}  # still talking
    assert w.state("1001") == "on_call"

    rows = [r for r in await w.rows() if r.event.startswith("SPY")]
    assert [(r.event, r.data1, r.data2) for r in rows] == [
        ("SPYSTART", "sam", "listen"),
        ("SPYMODE", "sam", "whisper"),
        ("SPYMODE", "sam", "barge"),
        ("SPYEND", "sam", "barge"),
    ]
    assert {(r.call_id, r.agent, r.queue) for r in rows} == {(scene.customer.id, "1001", "q")}
    start, whisper, _, end = rows
    assert (start.data3, start.data4) == ("phone", sup.id)
    assert (whisper.data3, whisper.data4) == ("listen", "dtmf")
    assert int(end.data3) >= 1 and end.data4 == "supervisor_left"


async def test_customer_hanging_up_ends_the_session_and_the_supervisors_call(scene: Scene) -> None:
    w = scene.w
    sup = await scene.dial("*24101")  # barge straight away
    await until(lambda: bool(w.of(SupervisionStarted)), what="supervision started")
    assert w.of(SupervisionStarted)[0].mode == "barge"
    await scene.customer.hangup()
    await asyncio.wait_for(sup.wait_ended(), 5)
    assert sup.ended_by == "remote"
    await asyncio.wait_for(scene.agent_call.wait_ended(), 5)
    ended = w.of(SupervisionEnded)
    assert len(ended) == 1 and ended[0].reason == "call_ended"
    rows = await w.rows("SPYEND")
    assert [(r.data1, r.data2, r.data4) for r in rows] == [("sam", "barge", "call_ended")]
    assert w.service.supervision.sessions == []


async def test_agent_hanging_up_ends_the_session(scene: Scene) -> None:
    w = scene.w
    sup = await scene.dial("*23101")
    await until(lambda: bool(w.of(SupervisionStarted)), what="supervision started")
    await scene.agent_call.hangup()
    await asyncio.wait_for(sup.wait_ended(), 5)
    await asyncio.wait_for(scene.customer.wait_ended(), 5)
    assert [e.reason for e in w.of(SupervisionEnded)] == ["call_ended"]


async def test_non_supervisors_get_403_and_are_logged(scene: Scene) -> None:
    w = scene.w
    # The agent's own registered phone.
    call = await scene.agent_phone.ua.call(f"sip:*22101@{HOST}:{w.port}")
    outcome = await asyncio.wait_for(call.wait_answered(), 5)
    assert (outcome.sip_status, outcome.sip_reason) == (403, "Forbidden (only supervisor accounts may supervise)")
    # Someone claiming to be the supervisor, but not from where the supervisor registered.
    impostor = UserAgent(UAConfig(host=HOST, port=0, user="sam", registrar=False, tcp=False))
    await impostor.start()
    w.callers.append(impostor)
    call = await impostor.call(f"sip:*22101@{HOST}:{w.port}")
    outcome = await asyncio.wait_for(call.wait_answered(), 5)
    assert outcome.sip_status == 403
    assert w.of(SupervisionStarted) == []
    assert await w.rows("SPYSTART") == []


async def test_unknown_extension_and_agent_not_on_a_call(tmp_path: Path) -> None:
    cfg = config(agents=[agent("1001", extension="101"), agent("1002", extension="102")])
    async with world(tmp_path, cfg) as w:
        supervisor = await w.phone("sam")
        for code, status, phrase in (
            ("*22999", 404, "Not Found (no agent has extension 999)"),
            ("*22102", 480, "Temporarily Unavailable (agent 1002 is not on a call)"),
        ):
            call = await supervisor.ua.call(f"sip:{code}@{HOST}:{w.port}")
            outcome = await asyncio.wait_for(call.wait_answered(), 5)
            assert (outcome.sip_status, outcome.sip_reason) == (status, phrase)
        with pytest.raises(SupervisionRefused, match="agent 1002 is not on a call") as info:
            await w.service.supervise("sam", "1002", "listen")
        assert info.value.kind == "not_on_call"


async def test_challenged_supervisor_is_known_by_its_digest_user(tmp_path: Path) -> None:
    # Nothing trusted: every INVITE is challenged, and auth_user names the caller.
    async with world(tmp_path, config(trusted_supervisor_calls="refuse", trusted_sources=[])) as w:
        supervisor = await w.phone("sam")
        agent_phone = await w.phone("1001")
        call = await supervisor.ua.call(f"sip:*22101@{HOST}:{w.port}", auth=("sam", PASSWORD))
        outcome = await asyncio.wait_for(call.wait_answered(), 5)
        assert outcome.sip_status == 480  # a supervisor, but the agent is not on a call
        call = await agent_phone.ua.call(f"sip:*22101@{HOST}:{w.port}", auth=("1001", PASSWORD))
        outcome = await asyncio.wait_for(call.wait_answered(), 5)
        assert outcome.sip_status == 403


async def test_trusted_sources_are_refused_by_default(tmp_path: Path) -> None:
    async with world(tmp_path, config(trusted_supervisor_calls="refuse")) as w:
        supervisor = await w.phone("sam")
        call = await supervisor.ua.call(f"sip:*22101@{HOST}:{w.port}")
        outcome = await asyncio.wait_for(call.wait_answered(), 5)
        assert outcome.sip_status == 403


async def test_console_supervise_rings_the_supervisor_and_switches_mode(scene: Scene) -> None:
    w = scene.w
    with pytest.raises(SupervisionRefused, match="'mia' has no supervisor account") as info:
        await w.service.supervise("mia", "1001", "listen")
    assert info.value.kind == "not_supervisor"
    assert await w.service.supervise("sam", "1001", "whisper") == "ringing"
    await until(lambda: bool(scene.supervisor.answered), what="the supervisor's phone answers")
    sup = scene.supervisor.current
    assert sup.headers is not None and "*23101" in (sup.headers.get("from") or "")
    scene.play("supervisor", sup)
    await until(lambda: bool(w.of(SupervisionStarted)), what="supervision started")
    assert w.of(SupervisionStarted)[0].mode == "whisper"
    ears = {"customer": Ear(scene.customer), "agent": Ear(scene.agent_call)}
    await asyncio.sleep(0.2)
    assert await listen_all(ears) == {"customer": {"agent"}, "agent": {"customer", "supervisor"}}

    assert await w.service.supervise("sam", "1001", "barge") == "switched"
    changed = w.of(SupervisionModeChanged)[-1]
    assert (changed.mode, changed.by) == ("barge", "api")
    await asyncio.sleep(0.2)
    assert (await listen_all({"customer": ears["customer"]}))["customer"] == {"agent", "supervisor"}

    await sup.hangup()  # the supervisor hangs up the phone: the call goes on without them
    await until(lambda: bool(w.of(SupervisionEnded)), what="supervision ended")
    assert w.of(SupervisionEnded)[0].reason == "supervisor_hung_up"
    rows = [r for r in await w.rows() if r.event.startswith("SPY")]
    assert [(r.event, r.data2, r.data3) for r in rows][:2] == [
        ("SPYSTART", "whisper", "console"),
        ("SPYMODE", "barge", "whisper"),
    ]
    assert rows[-1].event == "SPYEND" and rows[-1].data4 == "supervisor_hung_up"
    await asyncio.sleep(0.2)
    assert await listen_all(ears) == {"customer": {"agent"}, "agent": {"customer"}}


async def test_nailed_agent_next_customer_is_bridged_after_a_supervised_call(tmp_path: Path) -> None:
    cfg = config(queues=[queue("q", wrapup_s=0.0)], agents=[agent("1001", extension="101", mode="nailed")])
    async with world(tmp_path, cfg) as w:
        agent_phone = await w.phone("1001")
        supervisor = await w.phone("sam")
        nailed = await agent_phone.login_nailed(w.port)
        await until(lambda: w.state("1001") == "ready", what="nailed login")
        first = await w.call(DID, "15550001")
        await until(lambda: w.state("1001") == "on_call", what="first customer bridged")
        s = Scene(w, agent_phone, supervisor, first, [])
        sup = await s.dial("*22101")
        await until(lambda: bool(w.of(SupervisionStarted)), what="supervision started")
        s.play("supervisor", sup)
        ear = Ear(sup)
        s.play("customer", first)
        s.play("agent", nailed)
        await asyncio.sleep(0.2)
        assert (await listen_all({"supervisor": ear}, 0.5))["supervisor"] == {"customer", "agent"}
        await first.hangup()
        await asyncio.wait_for(sup.wait_ended(), 5)
        assert [e.reason for e in w.of(SupervisionEnded)] == ["call_ended"]
        assert not nailed.ended  # the agent's nailed leg stays up for the next customer
        await until(lambda: w.state("1001") == "ready", what="agent ready again")
        second = await w.call(DID, "15550002")
        await until(lambda: w.state("1001") == "on_call", what="second customer bridged")
        s.players.append(asyncio.create_task(second.play(tone(FREQ["customer"], 2.0, AMPLITUDE), loop=True)))
        ears = {"customer": Ear(second), "agent": Ear(nailed)}
        await asyncio.sleep(0.3)
        try:
            assert await listen_all(ears) == {"customer": {"agent"}, "agent": {"customer"}}
        finally:
            for task in s.players:
                task.cancel()
            await asyncio.gather(*s.players, return_exceptions=True)


def test_supervisor_config_is_checked() -> None:
    base = {"queues": [{"id": "q"}], "agents": [{"id": "1001", "extension": "101"}]}
    cfg = AcdServiceConfig.from_mapping({**base, "supervisors": {"sam": {"password": "pw", "name": "Sam"}}})
    assert [(s.id, s.username, s.name) for s in cfg.supervisors] == [("sam", "sam", "Sam")]
    assert "pw" not in repr(cfg.supervisors[0])
    assert cfg.supervision_codes == {"*22": "listen", "*23": "whisper", "*24": "barge"}
    assert cfg.trusted_supervisor_calls == "refuse"
    for extra, message in (
        ({"supervisors": [{"id": "1001"}]}, "SIP username '1001', which an agent has"),
        ({"supervisors": [{"id": "a"}, {"id": "b", "sip_username": "a"}]}, "defined twice"),
        ({"supervision_codes": {"*22": "spy"}}, "maps to 'spy'; use listen, whisper or barge"),
        ({"supervision_codes": {"22x": "listen"}}, "must be dialable"),
        ({"supervision_keys": {"x": "listen"}}, "'x' is not a DTMF key"),
        ({"supervision_keys": {"9": "mute"}}, "maps to 'mute'"),
        ({"trusted_supervisor_calls": "allow"}, "refuse"),
    ):
        with pytest.raises(ValueError, match=message):
            AcdServiceConfig.from_mapping({**base, **extra})
