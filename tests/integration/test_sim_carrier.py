"""The simulated carrier, customers and agents over real SIP and RTP on loopback.

Our own UserAgent plays "the dialer": it dials numbers pinned to each behaviour and checks
the outcome it sees, the answering-machine verdict on the audio it receives, and that the
carrier's ground-truth log agrees. Agents register with Digest to a UserAgent with accounts
and take calls in ring and nailed mode. Needs espeak-ng and sox (the clips are cached per run).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import numpy as np
import pytest

from dialer.amd import AmdVerdict, classify, detect_beep
from dialer.sim.agents import AgentBehaviour, AgentLoginError, AgentMode, AgentSimState, SimulatedAgent
from dialer.sim.audio import SimAudio, SimAudioError, Voice
from dialer.sim.carrier import CarrierConfig, CarrierResult, InboundBehaviour, SimulatedCarrier
from dialer.sim.customers import Behaviour, CustomerModel, CustomerModelConfig, Override, Pin
from telephony.aio.ua import Call, UAConfig, UserAgent
from telephony.media.bridge import Bridge
from telephony.media.player import tone
from telephony.media.wav import read_wav
from telephony.sip.dialog import CallOutcome

pytestmark = pytest.mark.timeout(90)

HUMAN, MACHINE, BUSY, NO_ANSWER = "+15550000001", "+15550000002", "+15550000003", "+15550000004"
REJECT, UNAVAILABLE, NOT_FOUND, RETRY = "+15550000005", "+15550000006", "+15550000007", "+15550000008"
SILENT, CHATTY, BRIDGED = "+15550000009", "+15550000010", "+15550000011"
PINS: dict[str, Override] = {
    HUMAN: Pin(Behaviour.ANSWER_HUMAN, ring_s=0.3, talk_s=30.0),
    MACHINE: Pin(Behaviour.ANSWER_MACHINE, ring_s=0.3),
    BUSY: Behaviour.BUSY,
    NO_ANSWER: Behaviour.NO_ANSWER,
    REJECT: Pin(Behaviour.REJECT, ring_s=0.3),
    UNAVAILABLE: Behaviour.UNAVAILABLE,
    NOT_FOUND: Behaviour.NOT_FOUND,
    RETRY: [Behaviour.BUSY, Pin(Behaviour.ANSWER_HUMAN, ring_s=0.2, talk_s=30.0)],
    SILENT: Pin(Behaviour.ANSWER_HUMAN, ring_s=0.2, talk_s=30.0, silence_patience_s=1.0),
    CHATTY: Pin(Behaviour.ANSWER_HUMAN, ring_s=0.2, talk_s=2.5, hangs_up_first=True),
    BRIDGED: Pin(Behaviour.ANSWER_HUMAN, ring_s=0.2, talk_s=7.0, hangs_up_first=True),
}
CALLER_ID = "+442079460000"


def pinned(number: str) -> Behaviour:
    pin = PINS[number]
    assert isinstance(pin, Behaviour | Pin)
    return pin if isinstance(pin, Behaviour) else pin.behaviour


@pytest.fixture(scope="module")
def audio(tmp_path_factory: pytest.TempPathFactory) -> SimAudio:
    lib = SimAudio(
        tmp_path_factory.mktemp("sim-audio"),
        voices=[Voice("en-us", 165), Voice("en-gb+f3", 150)],
        customer_voices=2,
    )
    lib.prepare(["Anna"])
    return lib


def model() -> CustomerModel:
    return CustomerModel(CustomerModelConfig(overrides=PINS, post_dial_delay_s=(0.02, 0.1)), seed=1)


@pytest.fixture
async def dialer() -> AsyncIterator[UserAgent]:
    ua = UserAgent(UAConfig(host="127.0.0.1", port=0, user="dialer", registrar=False))
    await ua.start()
    try:
        yield ua
    finally:
        await ua.close()


@pytest.fixture
async def carrier(audio: SimAudio, tmp_path: Path) -> AsyncIterator[SimulatedCarrier]:
    sim = SimulatedCarrier(model(), audio, CarrierConfig(record_dir=tmp_path / "carrier", no_answer_timeout_s=20))
    await sim.start()
    try:
        yield sim
    finally:
        await sim.close()


async def dial(
    ua: UserAgent,
    carrier: SimulatedCarrier,
    number: str,
    *,
    ring_timeout: float | None = None,
    auth: tuple[str, str] | None = None,
) -> Call:
    return await ua.call(carrier.number_uri(number), from_user=CALLER_ID, ring_timeout=ring_timeout, auth=auth)


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), timeout)


async def test_each_behaviour_gives_its_outcome_and_the_log_agrees(
    dialer: UserAgent, carrier: SimulatedCarrier
) -> None:
    expected = {
        BUSY: (CallOutcome.BUSY, 486, CarrierResult.BUSY),
        NO_ANSWER: (CallOutcome.NO_ANSWER, 487, CarrierResult.CANCELLED),
        REJECT: (CallOutcome.REJECTED, 603, CarrierResult.REJECTED),
        UNAVAILABLE: (CallOutcome.UNAVAILABLE, 480, CarrierResult.UNAVAILABLE),
        NOT_FOUND: (CallOutcome.NOT_FOUND, 404, CarrierResult.NOT_FOUND),
    }
    calls = {n: await dial(dialer, carrier, n, ring_timeout=1.0) for n in expected}
    outcomes = dict(zip(calls, await asyncio.gather(*(c.wait_answered() for c in calls.values())), strict=True))
    for number, (outcome, status, _) in expected.items():
        assert (outcomes[number].outcome, outcomes[number].sip_status) == (outcome, status), number
        await calls[number].wait_ended()
    await until(lambda: len(carrier.log) == len(expected) and all(r.ended_at for r in carrier.log))
    for number, (_, status, result) in expected.items():
        [rec] = carrier.records_for(number)
        assert (rec.result, rec.sip_status, rec.behaviour, rec.attempt) == (result, status, pinned(number), 0)
        assert rec.caller_id == CALLER_ID and rec.call_id == calls[number].id
    cancelled = carrier.records_for(NO_ANSWER)[0]
    assert cancelled.ended_by == "dialer" and cancelled.ringing_at is not None
    # The dialer gave up after its 1 s ring timeout, not the carrier after its 20 s.
    assert cancelled.ended_at is not None and cancelled.ended_at - cancelled.invited_at < 3.0
    assert carrier.active_calls == 0


async def test_machine_and_human_answers_are_told_apart_by_amd(
    dialer: UserAgent, carrier: SimulatedCarrier, tmp_path: Path
) -> None:
    calls = {n: await dial(dialer, carrier, n) for n in (HUMAN, MACHINE)}
    for number, call in calls.items():
        assert call.media is not None
        call.media.record_to(tmp_path / f"{number}.wav")
    answers = await asyncio.gather(*(c.wait_answered() for c in calls.values()))
    assert all(a.outcome is CallOutcome.ANSWERED for a in answers)
    # The human says hello and waits; the machine's whole greeting and beep last about 8 s.
    await asyncio.sleep(9.0)
    for call in calls.values():
        await call.hangup()
    human = read_wav(tmp_path / f"{HUMAN}.wav")
    machine = read_wav(tmp_path / f"{MACHINE}.wav")
    first_seconds = 5 * 8000
    assert classify(human[:first_seconds].tobytes()).verdict is AmdVerdict.HUMAN
    assert classify(machine[:first_seconds].tobytes()).verdict is AmdVerdict.MACHINE
    assert detect_beep(machine.tobytes()) is not None
    assert detect_beep(human.tobytes()) is None
    await until(lambda: all(r.ended_at for r in carrier.log) and len(carrier.log) == 2)
    for number, behaviour in ((HUMAN, Behaviour.ANSWER_HUMAN), (MACHINE, Behaviour.ANSWER_MACHINE)):
        [rec] = carrier.records_for(number)
        assert (rec.result, rec.behaviour, rec.ended_by) == (CarrierResult.ANSWERED, behaviour, "dialer")
        assert rec.answered_at is not None and rec.spoken_s > 0.3
        assert rec.recording is not None and rec.recording.exists()
        assert abs(rec.answered_at - (calls[number].answered_at or 0)) < 0.5


async def test_a_retry_of_the_same_number_behaves_differently(dialer: UserAgent, carrier: SimulatedCarrier) -> None:
    first = await dial(dialer, carrier, RETRY)
    assert (await first.wait_answered()).outcome is CallOutcome.BUSY
    second = await dial(dialer, carrier, RETRY)
    assert (await second.wait_answered()).outcome is CallOutcome.ANSWERED
    await second.hangup()
    await until(lambda: len(carrier.records_for(RETRY)) == 2 and all(r.ended_at for r in carrier.log))
    assert [(r.attempt, r.result) for r in carrier.records_for(RETRY)] == [
        (0, CarrierResult.BUSY),
        (1, CarrierResult.ANSWERED),
    ]


async def test_customer_hangs_up_after_talk_time_or_on_silence(dialer: UserAgent, carrier: SimulatedCarrier) -> None:
    chatty = await dial(dialer, carrier, CHATTY)
    silent = await dial(dialer, carrier, SILENT)
    await asyncio.gather(chatty.wait_answered(), silent.wait_answered())
    # The dialer speaks to the chatty customer only; the silent call is an "abandoned" one.
    speech = np.concatenate([tone(300, 0.4, 0.3), np.zeros(800, dtype=np.int16)] * 8)
    await asyncio.wait_for(asyncio.gather(chatty.play(speech), chatty.wait_ended(), silent.wait_ended()), 15)
    assert chatty.ended_by == "remote" and silent.ended_by == "remote"
    await until(lambda: all(r.ended_at for r in carrier.log) and len(carrier.log) == 2)
    [talked] = carrier.records_for(CHATTY)
    [gave_up] = carrier.records_for(SILENT)
    assert talked.ended_by == "customer" and talked.heard_s > 0.5
    assert 2.0 < talked.talk_s < 4.0
    assert gave_up.ended_by == "customer" and gave_up.detail.startswith("silence") and gave_up.heard_s == 0


async def test_bad_number_and_overflow(dialer: UserAgent, audio: SimAudio) -> None:
    async with SimulatedCarrier(model(), audio, CarrierConfig(max_calls=1)) as sim:
        bad = await dialer.call(f"sip:sales@127.0.0.1:{sim.port}")
        assert ((await bad.wait_answered()).outcome, bad.outcome and bad.outcome.sip_status) == (
            CallOutcome.NOT_FOUND,
            404,
        )
        first = await dial(dialer, sim, HUMAN)
        await first.wait_answered()
        second = await dial(dialer, sim, HUMAN)
        assert (await second.wait_answered()).sip_status == 503
        await first.hangup()
        await until(lambda: all(r.ended_at for r in sim.log) and len(sim.log) == 3)
        assert [r.result for r in sim.log] == [CarrierResult.NOT_FOUND, CarrierResult.ANSWERED, CarrierResult.OVERFLOW]


async def test_network_ring_timeout_and_clean_shutdown(dialer: UserAgent, audio: SimAudio) -> None:
    answering: set[asyncio.Task[None]] = set()
    dialer.on_incoming = lambda call: answering.add(asyncio.get_running_loop().create_task(call.answer()))
    sim = SimulatedCarrier(model(), audio, CarrierConfig(no_answer_timeout_s=0.5))
    await sim.start()
    try:
        ringing = await dial(dialer, sim, NO_ANSWER, ring_timeout=10)
        assert (await ringing.wait_answered()).sip_status == 480  # the network gave up before the dialer
        talking = await dial(dialer, sim, HUMAN)
        await talking.wait_answered()
        queued = await sim.place_inbound(f"sip:+442071234567@127.0.0.1:{dialer.port}", "+442079460003")
        await until(lambda: queued.record.answered_at is not None)
    finally:
        await sim.close()
    await asyncio.wait_for(talking.wait_ended(), 5)
    assert talking.ended_by == "remote"
    inbound = await asyncio.wait_for(queued.wait(), 5)
    assert (inbound.result, inbound.ended_by, inbound.detail) == (
        CarrierResult.ANSWERED,
        "network",
        "carrier shut down",
    )
    assert [(r.result, r.ended_by) for r in sim.records_for(NO_ANSWER) + sim.records_for(HUMAN)] == [
        (CarrierResult.RING_TIMEOUT, "network"),
        (CarrierResult.ANSWERED, "network"),
    ]
    assert all(r.ended_at is not None for r in sim.log) and sim.active_calls == 0


async def test_trunk_auth_and_registration_required(dialer: UserAgent, audio: SimAudio) -> None:
    cfg = CarrierConfig(trunk_user="trunk1", trunk_password="s3cret", challenge_invites=True, require_registration=True)
    async with SimulatedCarrier(model(), audio, cfg) as sim:
        unauth = await dial(dialer, sim, BUSY)
        assert (await unauth.wait_answered()).sip_status == 401  # no credentials: the challenge stands
        unregistered = await dial(dialer, sim, BUSY, auth=("trunk1", "s3cret"))
        assert (await unregistered.wait_answered()).sip_status == 403
        wrong = await dialer.register(sim.uri, "trunk1", "guess", expires=60)
        assert wrong is not None and wrong.status in (401, 403)
        ok = await dialer.register(sim.uri, "trunk1", "s3cret", expires=60)
        assert ok is not None and ok.status == 200
        registered = await dial(dialer, sim, BUSY, auth=("trunk1", "s3cret"))
        assert (await registered.wait_answered()).sip_status == 486
        # A DID call given as a bare number goes to the registered trunk, like a carrier's.
        got: list[Call] = []
        dialer.on_incoming = got.append
        await sim.place_inbound("+442071234567", "+442079460004", InboundBehaviour(patience_s=0.5))
        await until(lambda: bool(got))
        assert got[0].headers is not None and "+442071234567@" in (got[0].headers.get("to") or "")
        await got[0].reject(486)
        await until(lambda: len(sim.log) == 3 and all(r.ended_at for r in sim.log))
        assert [r.result for r in sim.log] == [CarrierResult.FORBIDDEN, CarrierResult.BUSY, CarrierResult.FAILED]
        assert sim.log[2].sip_status == 486


async def test_inbound_customer_presses_ivr_digit_waits_and_talks(dialer: UserAgent, carrier: SimulatedCarrier) -> None:
    got: list[Call] = []
    dialer.on_incoming = got.append
    did = f"sip:+442071234567@127.0.0.1:{dialer.port}"
    handle = await carrier.place_inbound(
        did, "+442079460001", InboundBehaviour(dtmf="1", dtmf_after_s=0.3, patience_s=10, talk_s=1.5)
    )
    await until(lambda: bool(got))
    inbound = got[0]
    assert inbound.id == handle.call_id and "+442079460001" in inbound.remote
    await inbound.answer()
    digits = inbound.dtmf()
    assert await asyncio.wait_for(anext(digits), 5) == "1"
    await asyncio.sleep(0.5)  # "in the queue"
    assert carrier.mark_connected(inbound.id)
    record = await asyncio.wait_for(handle.wait(), 10)
    assert (record.result, record.ended_by, record.dtmf_sent) == (CarrierResult.ANSWERED, "customer", "1")
    assert record.connected_at is not None and record.spoken_s > 0.3
    await asyncio.wait_for(inbound.wait_ended(), 5)
    assert inbound.ended_by == "remote"


async def test_inbound_customer_abandons_after_patience(dialer: UserAgent, carrier: SimulatedCarrier) -> None:
    answering: set[asyncio.Task[None]] = set()

    def answer(call: Call) -> None:
        answering.add(asyncio.get_running_loop().create_task(call.answer()))

    dialer.on_incoming = answer
    handle = await carrier.place_inbound(
        f"sip:+442071234567@127.0.0.1:{dialer.port}", "+442079460002", InboundBehaviour(patience_s=0.8)
    )
    record = await asyncio.wait_for(handle.wait(), 10)
    assert (record.result, record.ended_by, record.connected_at) == (CarrierResult.ABANDONED, "customer", None)
    assert 0.7 < record.talk_s < 2.5


async def test_missing_espeak_names_the_debian_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(SimAudioError, match="apt-get install espeak-ng sox"):
        SimAudio(tmp_path / "cache").customer_voices()


# -- agents -------------------------------------------------------------------------------------
@pytest.fixture
async def pbx() -> AsyncIterator[UserAgent]:
    ua = UserAgent(UAConfig(host="127.0.0.1", port=0, user="pbx", accounts={"agent1001": "pw1001"}))
    await ua.start()
    try:
        yield ua
    finally:
        await ua.close()


QUICK = AgentBehaviour(answer_delay_s=(0.2, 0.2), talk_s=(1.0, 1.0), listen_s=(0.3, 0.3), wrap_up_s=(0.3, 0.3))


async def test_ring_mode_agent_registers_with_digest_answers_and_keys_disposition(
    pbx: UserAgent, audio: SimAudio, tmp_path: Path
) -> None:
    agent = SimulatedAgent(
        "agent1001", "pw1001", f"sip:127.0.0.1:{pbx.port}", audio=audio, name="Anna", behaviour=QUICK, seed=2
    )
    await agent.start()
    try:
        assert agent.registered and pbx.registered("agent1001")
        digits: list[str] = []
        call = await pbx.call("sip:agent1001@127.0.0.1")
        call.on_dtmf = digits.append
        assert call.media is not None
        call.media.record_to(tmp_path / "agent.wav")
        assert (await asyncio.wait_for(call.wait_answered(), 5)).outcome is CallOutcome.ANSWERED
        await asyncio.wait_for(call.wait_ended(), 20)
        assert call.ended_by == "remote"  # the agent hung up after keying the disposition
        [conv] = agent.conversations
        assert conv.ended_by == "agent" and conv.disposition in QUICK.dispositions and conv.disposition_keyed
        assert "".join(digits) == f"*5{conv.disposition}#"
        heard = read_wav(tmp_path / "agent.wav").astype(np.float64)
        voiced = np.sqrt(np.mean(heard[: len(heard) // 160 * 160].reshape(-1, 160) ** 2, axis=1)) > 300
        assert voiced.sum() * 0.02 > 2.0  # the purpose statement alone is longer than 2 s
        assert agent.state is AgentSimState.IDLE
    finally:
        await agent.stop()


async def test_agent_with_a_wrong_password_cannot_log_in(pbx: UserAgent, audio: SimAudio) -> None:
    agent = SimulatedAgent("agent1001", "nope", f"sip:127.0.0.1:{pbx.port}", audio=audio, name="Anna")
    with pytest.raises(AgentLoginError, match="username and password"):
        await agent.start(timeout=1.5)
    await agent.stop()
    assert not pbx.registered("agent1001")


async def test_nailed_agent_hears_the_connect_tone_talks_and_keys_codes(pbx: UserAgent, audio: SimAudio) -> None:
    nailed: list[Call] = []
    pbx.on_incoming = nailed.append
    agent = SimulatedAgent(
        "agent1001",
        "pw1001",
        f"sip:127.0.0.1:{pbx.port}",
        audio=audio,
        name="Anna",
        mode=AgentMode.NAILED,
        behaviour=QUICK,
        seed=3,
    )
    start = asyncio.get_running_loop().create_task(agent.start())
    await until(lambda: bool(nailed))
    leg = nailed[0]
    assert leg.headers is not None and "*55@" in (leg.headers.get("to") or "")
    digits: list[str] = []
    leg.on_dtmf = digits.append
    await leg.answer()
    await asyncio.wait_for(start, 5)
    try:
        assert agent.state == AgentSimState.IDLE
        await asyncio.sleep(0.5)
        await leg.play(tone(1000.0, 0.3, 0.3))  # "a customer is connected"
        await until(lambda: agent.state is AgentSimState.TALKING, 3)
        await until(lambda: agent.state is AgentSimState.IDLE and len(digits) >= 4, 15)
        [conv] = agent.conversations
        assert conv.ended_by == "agent" and conv.spoken_s > 2.0
        assert "".join(digits) == f"*0*5{conv.disposition}#"
        assert not leg.ended  # the nailed line stays up
        # The test, not a tone, can say a customer connected and left.
        assert agent.customer_connected("customer-2")
        agent.customer_disconnected()
        await until(lambda: len(agent.conversations) == 2 and agent.state is AgentSimState.IDLE, 5)
        assert agent.conversations[1].ended_by == "customer"
    finally:
        await agent.stop()


async def test_customer_and_agent_converse_through_a_bridge(
    dialer: UserAgent, carrier: SimulatedCarrier, pbx: UserAgent, audio: SimAudio
) -> None:
    """What the demo does: the dialer reaches a person, rings an agent and bridges the two."""
    talker = AgentBehaviour(answer_delay_s=(0.1, 0.1), talk_s=(30.0, 30.0), wrap_up_s=(0.2, 0.2))
    agent = SimulatedAgent(
        "agent1001", "pw1001", f"sip:127.0.0.1:{pbx.port}", audio=audio, name="Anna", behaviour=talker, seed=4
    )
    await agent.start()
    try:
        customer = await dial(dialer, carrier, BRIDGED)
        assert (await customer.wait_answered()).outcome is CallOutcome.ANSWERED
        agent_leg = await pbx.call("sip:agent1001@127.0.0.1")
        assert (await agent_leg.wait_answered()).outcome is CallOutcome.ANSWERED
        assert customer.media is not None and agent_leg.media is not None
        bridge = Bridge(customer.media, agent_leg.media)
        bridge.start()
        await asyncio.wait_for(customer.wait_ended(), 15)  # the customer hangs up after 7 s of talk
        bridge.stop()
        await agent_leg.hangup()
        await until(lambda: agent.state is AgentSimState.IDLE and len(agent.conversations) == 1, 5)
        await until(lambda: bool(carrier.log) and carrier.log[0].ended_at is not None)
        [rec] = carrier.log
        assert (rec.ended_by, rec.result) == ("customer", CarrierResult.ANSWERED)
        assert rec.heard_s > 2.0  # the agent's purpose statement reached the customer
        assert rec.spoken_s > 1.5  # greeting plus at least one answer
        [conv] = agent.conversations
        assert conv.ended_by == "customer" and conv.spoken_s > 2.0 and conv.disposition is not None
    finally:
        await agent.stop()
