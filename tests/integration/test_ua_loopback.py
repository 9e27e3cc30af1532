"""Two of our user agents talking over loopback: the facade's behaviour end to end.

Independent peers (sipp, baresip, pyVoIP) are in tests/interop; these tests pin down the
facade's contract (outcomes, DTMF, hold, auth, registrar routing, media timeout) quickly.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest

from telephony.aio.ua import Call, CallState, UAConfig, UserAgent
from telephony.sip.dialog import CallOutcome

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def pair() -> AsyncIterator[tuple[UserAgent, UserAgent]]:
    a = UserAgent(UAConfig(host="127.0.0.1", port=0, user="alice", registrar=False))
    b = UserAgent(UAConfig(host="127.0.0.1", port=0, user="bob"))
    await a.start()
    await b.start()
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


async def next_call(ua: UserAgent) -> Call:
    it = ua.incoming()
    return await asyncio.wait_for(it.__anext__(), 5)


async def test_answer_dtmf_and_bye(pair: tuple[UserAgent, UserAgent]) -> None:
    a, b = pair
    out = await a.call(f"sip:bob@127.0.0.1:{b.port}")
    inc = await next_call(b)
    await inc.ring()
    await inc.answer()
    outcome = await asyncio.wait_for(out.wait_answered(), 5)
    assert outcome.outcome is CallOutcome.ANSWERED and outcome.sip_status == 200
    assert out.ringing_at is not None and out.answered_at is not None
    await out.send_dtmf("12#")
    got = []
    async for d in inc.dtmf():
        got.append(d)
        if len(got) == 3:
            break
    assert "".join(got) == "12#"
    await out.hangup()
    await asyncio.wait_for(inc.wait_ended(), 5)
    assert inc.ended_by == "remote" and out.ended_by == "local"
    assert out.state is CallState.ENDED


async def test_busy_maps_to_busy_with_status(pair: tuple[UserAgent, UserAgent]) -> None:
    a, b = pair
    out = await a.call(f"sip:bob@127.0.0.1:{b.port}")
    inc = await next_call(b)
    await inc.reject(486)
    outcome = await asyncio.wait_for(out.wait_answered(), 5)
    assert (outcome.outcome, outcome.sip_status) == (CallOutcome.BUSY, 486)


async def test_ring_timeout_cancels_as_no_answer(pair: tuple[UserAgent, UserAgent]) -> None:
    a, b = pair
    out = await a.call(f"sip:bob@127.0.0.1:{b.port}", ring_timeout=0.5)
    inc = await next_call(b)
    await inc.ring()
    outcome = await asyncio.wait_for(out.wait_answered(), 5)
    assert (outcome.outcome, outcome.sip_status) == (CallOutcome.NO_ANSWER, 487)
    await asyncio.wait_for(inc.wait_ended(), 5)
    assert inc.outcome is not None and inc.outcome.outcome is CallOutcome.CANCELLED


async def test_explicit_cancel(pair: tuple[UserAgent, UserAgent]) -> None:
    a, b = pair
    out = await a.call(f"sip:bob@127.0.0.1:{b.port}")
    inc = await next_call(b)
    await inc.ring()
    await asyncio.sleep(0.05)
    await out.cancel()
    outcome = await asyncio.wait_for(out.wait_answered(), 5)
    assert outcome.outcome is CallOutcome.CANCELLED


async def test_hold_and_unhold_reinvite(pair: tuple[UserAgent, UserAgent]) -> None:
    a, b = pair
    out = await a.call(f"sip:bob@127.0.0.1:{b.port}")
    inc = await next_call(b)
    await inc.answer()
    await out.wait_answered()
    await out.hold()
    await asyncio.sleep(0.2)
    assert inc.media is not None and inc.media.params is not None and inc.media.params.direction == "recvonly"
    await out.unhold()
    await asyncio.sleep(0.2)
    assert inc.media.params is not None and inc.media.params.direction == "sendrecv"
    await out.hangup()


async def test_digest_challenge_and_registrar_routing() -> None:
    server = UserAgent(UAConfig(host="127.0.0.1", port=0, user="pbx", accounts={"agent1": "s3cret"}))
    agent = UserAgent(UAConfig(host="127.0.0.1", port=0, user="agent1", registrar=False))
    caller = UserAgent(UAConfig(host="127.0.0.1", port=0, user="caller", registrar=False))
    for ua in (server, agent, caller):
        await ua.start()
    try:
        ok = await agent.register(f"sip:127.0.0.1:{server.port}", "agent1", "s3cret", expires=300)
        assert ok is not None and ok.status == 200
        assert server.registered("agent1")
        bad = await caller.register(f"sip:127.0.0.1:{server.port}", "agent1", "wrong", expires=300)
        assert bad is not None and bad.status == 401
        # The server calls the agent through its binding.
        out = await server.call("sip:agent1@127.0.0.1")
        inc = await next_call(agent)
        await inc.answer()
        assert (await out.wait_answered()).outcome is CallOutcome.ANSWERED
        await out.hangup()
        # An INVITE to the server is challenged and succeeds with credentials.
        c = await caller.call(f"sip:pbx@127.0.0.1:{server.port}", auth=("agent1", "s3cret"))
        inc2 = await next_call(server)
        assert inc2.auth_user == "agent1" and inc2.request_uri is not None and inc2.request_uri.user == "pbx"
        assert inc2.source is not None and inc2.source.port == caller.port
        await inc2.answer()
        assert (await c.wait_answered()).outcome is CallOutcome.ANSWERED
        await c.hangup()
        # Without credentials: a 401 is our configuration's failure, not the callee's rejection.
        d = await caller.call(f"sip:pbx@127.0.0.1:{server.port}")
        res = await asyncio.wait_for(d.wait_answered(), 5)
        assert res.sip_status == 401 and res.outcome is CallOutcome.FAILED
    finally:
        for ua in (server, agent, caller):
            await ua.close()


async def test_media_timeout_ends_the_call() -> None:
    a = UserAgent(UAConfig(host="127.0.0.1", port=0, user="a", registrar=False, media_timeout=1.0))
    b = UserAgent(UAConfig(host="127.0.0.1", port=0, user="b", registrar=False, media_timeout=60.0))
    await a.start()
    await b.start()
    try:
        out = await a.call(f"sip:b@127.0.0.1:{b.port}")
        inc = await next_call(b)
        await inc.answer()
        await out.wait_answered()
        # b sends no RTP at all (nobody plays), so a's media timeout ends the call with a BYE.
        await asyncio.wait_for(out.wait_ended(), 6)
        assert out.ended_by == "media_timeout"
        await asyncio.wait_for(inc.wait_ended(), 5)
        assert inc.ended_by == "remote"
    finally:
        await a.close()
        await b.close()


async def test_play_reaches_the_other_side(pair: tuple[UserAgent, UserAgent], tmp_path: object) -> None:
    a, b = pair
    out = await a.call(f"sip:bob@127.0.0.1:{b.port}")
    inc = await next_call(b)
    await inc.answer()
    await out.wait_answered()
    t = np.arange(8000) / 8000.0
    tone = (np.sin(2 * np.pi * 1000 * t) * 8000).astype(np.int16)
    assert inc.media is not None
    path = __import__("pathlib").Path(str(tmp_path)) / "rx.wav"
    inc.media.record_to(path)
    await out.play(tone)
    await asyncio.sleep(0.2)
    await out.hangup()
    await inc.wait_ended()
    import wave

    with wave.open(str(path)) as w:
        frames = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    assert len(frames) > 4000
    spectrum = np.abs(np.fft.rfft(frames.astype(float)))
    peak = np.argmax(spectrum) * 8000 / len(frames)
    assert abs(peak - 1000) < 20


async def test_trunk_registration_refreshes_and_unregisters() -> None:
    """Our registration to a 'carrier' (another UA acting as registrar) refreshes before
    expiry with the same Call-ID, and unregisters on stop. (Backoff timing is unit-tested
    on the pure RegistrationClient with a fake clock.)"""
    carrier = UserAgent(UAConfig(host="127.0.0.1", port=0, user="carrier", accounts={"trunk1": "pw"}))
    dialer = UserAgent(UAConfig(host="127.0.0.1", port=0, user="trunk1", registrar=False))
    await carrier.start()
    await dialer.start()
    assert carrier.registrar is not None
    carrier.registrar.min_expires = 1
    try:
        reg = dialer.keep_registered(
            f"sip:127.0.0.1:{carrier.port}", "trunk1", "pw", expires=2, refresh_margin=1.0, min_retry=0.2, max_retry=0.5
        )
        for _ in range(50):
            if reg.registered:
                break
            await asyncio.sleep(0.05)
        assert reg.registered and carrier.registered("trunk1")
        first_seq = reg._dialog.cseq
        await asyncio.sleep(2.5)  # past the first expiry: a refresh must have kept us bound
        assert reg.registered and carrier.registered("trunk1")
        assert reg._dialog.cseq > first_seq  # same Call-ID, rising CSeq
        await reg.stop()
        assert not carrier.registered("trunk1")  # unregistered with Expires: 0
    finally:
        await dialer.close()
        await carrier.close()


@pytest.mark.parametrize(("host", "transport"), [("127.0.0.1", "tcp"), ("::1", "udp"), ("::1", "tcp")])
async def test_calls_over_tcp_and_ipv6(host: str, transport: str) -> None:
    a = UserAgent(UAConfig(host=host, port=0, user="a", registrar=False))
    b = UserAgent(UAConfig(host=host, port=0, user="b", registrar=False))
    await a.start()
    await b.start()
    try:
        h = f"[{host}]" if ":" in host else host
        out = await a.call(f"sip:b@{h}:{b.port};transport={transport}")
        inc = await next_call(b)
        await inc.answer()
        outcome = await asyncio.wait_for(out.wait_answered(), 5)
        assert outcome.outcome is CallOutcome.ANSWERED
        assert inc.headers is not None and f"SIP/2.0/{transport.upper()}" in (inc.headers.get("via") or "")
        await out.hangup()
        await asyncio.wait_for(inc.wait_ended(), 5)
        assert inc.ended_by == "remote"
    finally:
        await a.close()
        await b.close()


async def test_options_ping(pair: tuple[UserAgent, UserAgent]) -> None:
    a, b = pair
    resp = await a.options(f"sip:bob@127.0.0.1:{b.port}")
    assert resp is not None and resp.status == 200 and "INVITE" in (resp.headers.get("allow") or "")
    silent = await a.options("sip:nobody@127.0.0.1:9", timeout=0.5)
    assert silent is None


async def test_options_keepalive_tracks_peer(pair: tuple[UserAgent, UserAgent]) -> None:
    a, b = pair
    ka = a.keepalive(f"sip:bob@127.0.0.1:{b.port}", interval=0.1, timeout=0.3)
    for _ in range(40):
        if ka.up:
            break
        await asyncio.sleep(0.05)
    assert ka.up is True and ka.last_status == 200
    await b.close()
    for _ in range(40):
        if ka.up is False:
            break
        await asyncio.sleep(0.05)
    assert ka.up is False
    ka.stop()


async def test_a_reader_that_stops_does_not_swallow_the_next_digit(pair: tuple[UserAgent, UserAgent]) -> None:
    a, b = pair
    out = await a.call(f"sip:bob@127.0.0.1:{b.port}")
    inc = await next_call(b)
    await inc.answer()
    await out.wait_answered()

    async def first_digit() -> str:
        async for d in inc.dtmf():
            return d
        return ""

    reader = asyncio.ensure_future(first_digit())
    await asyncio.sleep(0.05)
    reader.cancel()  # an IVR stage ends while waiting
    await out.send_dtmf("7")
    assert await asyncio.wait_for(first_digit(), 5) == "7"
    await out.hangup()


async def test_not_accepting_answers_503_with_retry_after(pair: tuple[UserAgent, UserAgent]) -> None:
    a, b = pair
    b.accepting = False
    out = await a.call(f"sip:bob@127.0.0.1:{b.port}")
    res = await asyncio.wait_for(out.wait_answered(), 5)
    assert res.sip_status == 503 and res.outcome is CallOutcome.UNAVAILABLE
    ping = await a.options(f"sip:bob@127.0.0.1:{b.port}")
    assert ping is not None and ping.status == 200  # still reachable for monitoring
    b.accepting = True


async def test_ack_for_2xx_stops_retransmissions(pair: tuple[UserAgent, UserAgent]) -> None:
    """Our UAC's ACK has a new branch (RFC 3261 17.1.1.3); the UAS must still stop resending its
    200 OK, or Timer L would hang the call up after 32 s."""
    a, b = pair
    out = await a.call(f"sip:bob@127.0.0.1:{b.port}")
    inc = await next_call(b)
    await inc.answer()
    await out.wait_answered()
    await asyncio.sleep(0.2)
    sent = b.stats["sent"]
    await asyncio.sleep(1.8)  # G2xx would have fired at 0.5 s and 1.5 s after the 200
    assert b.stats["sent"] == sent, "the 200 OK was retransmitted after the ACK"
    assert not b._layer._accepted or all(not t.timers.get("G2xx") for t in b._layer._accepted.values())
    await out.hangup()
