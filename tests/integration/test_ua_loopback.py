"""Two of our user agents talking over loopback: the facade's behaviour end to end.

Independent peers (sipp, baresip, pyVoIP) are in tests/interop; these tests pin down the
facade's contract (outcomes, DTMF, hold, auth, registrar routing, media timeout) quickly.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import time
from collections.abc import AsyncIterator

import numpy as np
import pytest

from telephony.aio.ua import Call, CallState, UAConfig, UserAgent
from telephony.sdp import SessionDescription, answer_offer
from telephony.sip.auth import DigestServer, InMemoryCredentials
from telephony.sip.builders import make_response
from telephony.sip.dialog import CallOutcome
from telephony.sip.message import Request, Response, parse_message
from telephony.sip.uri import Via

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


# --------------------------------------------------------------------------- a raw SIP peer on a UDP socket


class RawPeer:
    """A bare UDP socket that sends hand-written SIP and parses what comes back."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port = int(self.sock.getsockname()[1])

    async def send(self, data: bytes, port: int) -> None:
        await asyncio.get_running_loop().sock_sendto(self.sock, data, ("127.0.0.1", port))

    async def recv(self, timeout: float = 5.0) -> tuple[Request | Response, tuple[str, int]]:
        data, addr = await asyncio.wait_for(asyncio.get_running_loop().sock_recvfrom(self.sock, 65535), timeout)
        return parse_message(data), addr

    async def final(self, timeout: float = 5.0) -> Response:
        """The next final response, skipping provisional ones."""
        while True:
            msg, _ = await self.recv(timeout)
            if isinstance(msg, Response) and msg.status >= 200:
                return msg

    def close(self) -> None:
        self.sock.close()


G722_ONLY = (
    b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 40000 RTP/AVP 9\r\na=rtpmap:9 G722/8000\r\n"
)


def _invite(peer: RawPeer, ua_port: int, body: bytes, *, via_sent_by: str | None = None) -> bytes:
    sent_by = via_sent_by or f"127.0.0.1:{peer.port}"
    return (
        f"INVITE sip:bob@127.0.0.1:{ua_port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {sent_by};branch=z9hG4bK-raw{secrets.token_hex(4)};rport\r\n"
        "From: <sip:raw@127.0.0.1>;tag=r1\r\n"
        f"To: <sip:bob@127.0.0.1:{ua_port}>\r\n"
        f"Call-ID: raw-{secrets.token_hex(4)}@127.0.0.1\r\n"
        "CSeq: 1 INVITE\r\n"
        f"Contact: <sip:raw@127.0.0.1:{peer.port}>\r\n"
        "Max-Forwards: 70\r\n"
        "Content-Type: application/sdp\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def test_offer_with_only_unsupported_codecs_is_answered_488_on_the_wire(
    pair: tuple[UserAgent, UserAgent],
) -> None:
    _, b = pair
    peer = RawPeer()
    try:
        await peer.send(_invite(peer, b.port, G722_ONLY), b.port)
        resp = await peer.final()
        assert (resp.status, resp.reason) == (488, "Not Acceptable Here")
        warning = resp.headers.get("warning") or ""
        assert warning.startswith("305 ") and "G722" in warning, warning
        assert resp.to.tag  # a final response to an INVITE carries a To tag
        assert b._incoming.empty() and not b._calls  # the application never saw the call
    finally:
        peer.close()


async def test_rport_and_received_are_stamped_and_the_response_goes_to_the_source(
    pair: tuple[UserAgent, UserAgent],
) -> None:
    """RFC 3581 §4: a request whose Via names another address (a phone behind NAT) gets
    received=<source IP> and rport=<source port>, and the response goes to that source."""
    a, _ = pair
    peer = RawPeer()
    try:
        options = (
            f"OPTIONS sip:alice@127.0.0.1:{a.port} SIP/2.0\r\n"
            "Via: SIP/2.0/UDP 10.1.2.3:5999;branch=z9hG4bK-nat1;rport\r\n"
            "From: <sip:raw@10.1.2.3>;tag=n1\r\n"
            f"To: <sip:alice@127.0.0.1:{a.port}>\r\n"
            "Call-ID: nat-1@10.1.2.3\r\n"
            "CSeq: 1 OPTIONS\r\n"
            "Max-Forwards: 70\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode()
        await peer.send(options, a.port)
        resp, addr = await peer.recv()  # it reached us, not 10.1.2.3:5999
        assert isinstance(resp, Response) and resp.status == 200
        assert addr == ("127.0.0.1", a.port)
        via = Via.parse(resp.headers.get_all("via")[0])
        assert (via.host, via.port) == ("10.1.2.3", 5999)
        assert via.params.get("received") == "127.0.0.1"
        assert via.params.get("rport") == str(peer.port)
    finally:
        peer.close()


@pytest.mark.parametrize("status", [486, 603])
async def test_every_reason_header_is_kept_in_the_outcome(pair: tuple[UserAgent, UserAgent], status: int) -> None:
    a, b = pair
    out = await a.call(f"sip:bob@127.0.0.1:{b.port}")
    inc = await next_call(b)
    reasons = [("Reason", 'Q.850;cause=17;text="User busy"'), ("Reason", "SIP;cause=600")]
    await inc.reject(status, headers=reasons)
    outcome = await asyncio.wait_for(out.wait_answered(), 5)
    assert outcome.sip_status == status
    assert outcome.outcome is (CallOutcome.BUSY if status == 486 else CallOutcome.REJECTED)
    assert outcome.reason_header == 'Q.850;cause=17;text="User busy", SIP;cause=600'
    assert inc.outcome is not None and inc.outcome.reason_header == outcome.reason_header


async def test_invite_challenged_with_407_is_retried_with_proxy_authorization() -> None:
    """A proxy (a raw peer here) answers the first INVITE 407 with Proxy-Authenticate; the
    UA ACKs it, re-sends the INVITE with Proxy-Authorization and a higher CSeq, and the
    call is answered."""
    ua = UserAgent(UAConfig(host="127.0.0.1", port=0, user="dialer", registrar=False))
    await ua.start()
    proxy = RawPeer()
    realm = "carrier"
    digest = DigestServer(
        realm, InMemoryCredentials.from_passwords(realm, {"trunk1": "pw"}), secret=secrets.token_bytes(32)
    )
    try:
        call = await ua.call(f"sip:5551234@127.0.0.1:{proxy.port}", auth=("trunk1", "pw"))
        first, _ = await proxy.recv()
        assert isinstance(first, Request) and first.method == "INVITE"
        assert "proxy-authorization" not in first.headers
        challenge = [("Proxy-Authenticate", c) for c in digest.challenge(time.time())]
        await proxy.send(make_response(first.headers, 407, to_tag="p1", extra=challenge).to_bytes(), ua.port)
        ack, _ = await proxy.recv()
        assert isinstance(ack, Request) and ack.method == "ACK" and ack.cseq.seq == first.cseq.seq
        second, _ = await proxy.recv()
        assert isinstance(second, Request) and second.method == "INVITE"
        assert second.cseq.seq == first.cseq.seq + 1 and second.call_id == first.call_id
        assert "authorization" not in second.headers
        result = digest.verify(
            second.headers.get("proxy-authorization"), method="INVITE", source="127.0.0.1", now=time.time()
        )
        assert (result.outcome, result.username) == ("ok", "trunk1")
        offer = SessionDescription.parse(second.body)
        answer, _ = answer_offer(offer, host="127.0.0.1", port=40002, session_id=1)
        ok = make_response(
            second.headers,
            200,
            to_tag="p2",
            extra=[("Contact", f"<sip:5551234@127.0.0.1:{proxy.port}>")],
            body=answer.to_bytes(),
            content_type="application/sdp",
        )
        await proxy.send(ok.to_bytes(), ua.port)
        outcome = await asyncio.wait_for(call.wait_answered(), 5)
        assert (outcome.outcome, outcome.sip_status) == (CallOutcome.ANSWERED, 200)
        ack2, _ = await proxy.recv()
        assert isinstance(ack2, Request) and ack2.method == "ACK" and ack2.cseq.seq == second.cseq.seq
    finally:
        await ua.close()
        proxy.close()


# --------------------------------------------------------------------------- hold and the dialog probe


async def until(predicate: object, timeout: float = 5.0) -> None:
    """Wait for a condition (polled; a wait, not a timing assertion)."""
    assert callable(predicate)
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def _direction(call: Call) -> str | None:
    return call.media.params.direction if call.media is not None and call.media.params is not None else None


async def test_inactive_hold_and_unhold(pair: tuple[UserAgent, UserAgent]) -> None:
    a, b = pair
    out = await a.call(f"sip:bob@127.0.0.1:{b.port}")
    inc = await next_call(b)
    await inc.answer()
    await out.wait_answered()
    assert out.media_expected and inc.media_expected
    await out.hold("inactive")
    await until(lambda: _direction(inc) == "inactive" and _direction(out) == "inactive")
    assert not out.media_expected and not inc.media_expected
    assert inc.media is not None and not inc.media._can_send  # nothing is sent while inactive
    await out.unhold()
    await until(lambda: _direction(inc) == "sendrecv" and _direction(out) == "sendrecv")
    assert inc.media._can_send
    with pytest.raises(ValueError, match="sendonly' or 'inactive"):
        await out.hold("recvonly")  # type: ignore[arg-type]
    await out.hangup()
    await asyncio.wait_for(inc.wait_ended(), 5)


@pytest.fixture
async def probing_pair() -> AsyncIterator[tuple[UserAgent, UserAgent]]:
    a = UserAgent(UAConfig(host="127.0.0.1", port=0, user="alice", registrar=False, dialog_probe_interval=0.2))
    b = UserAgent(UAConfig(host="127.0.0.1", port=0, user="bob", registrar=False, dialog_probe_interval=0))
    await a.start()
    await b.start()
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


def _count_options(ua: UserAgent) -> list[int]:
    """Statuses of the in-dialog OPTIONS ``ua`` answers (wraps its responder)."""
    seen: list[int] = []
    respond = ua._respond

    def spy(tx: object, resp: Response) -> None:
        if getattr(tx, "request", None) is not None and tx.request.method == "OPTIONS":  # type: ignore[attr-defined]
            seen.append(resp.status)
        respond(tx, resp)  # type: ignore[arg-type]

    ua._respond = spy  # type: ignore[method-assign]
    return seen


@pytest.mark.parametrize("held_by", ["near", "far"])
async def test_call_on_hold_ends_when_the_far_side_forgets_the_dialog(
    probing_pair: tuple[UserAgent, UserAgent], held_by: str
) -> None:
    """A lost BYE during hold: the far side has dropped the dialog without telling us. The
    near side's in-dialog OPTIONS gets 481 and the call ends as dialog_lost, within about
    one probe interval (0.2 s here)."""
    a, b = probing_pair
    answered = _count_options(b)
    out = await a.call(f"sip:bob@127.0.0.1:{b.port}")
    inc = await next_call(b)
    await inc.answer()
    await out.wait_answered()
    await (out.hold("inactive") if held_by == "near" else inc.hold())
    await until(lambda: not out.media_expected)
    await until(lambda: answered.count(200) >= 2)  # probes while the dialog is alive: 200, call stays up
    assert not out.ended
    assert inc.dialog is not None
    b._dialogs.pop(inc.dialog.id)  # b forgets the dialog silently (its BYE was lost)
    started = asyncio.get_running_loop().time()
    await asyncio.wait_for(out.wait_ended(), 3)
    assert asyncio.get_running_loop().time() - started < 1.5  # next probe (0.2 s) + one round trip, loosely
    assert 481 in answered
    assert out.ended_by == "dialog_lost"
    assert out.outcome is not None and out.outcome.outcome is CallOutcome.ANSWERED
    assert out.outcome.detail is not None and out.outcome.detail.startswith("dialog lost: 481")


async def test_probe_times_out_with_timer_f_and_ends_the_call(probing_pair: tuple[UserAgent, UserAgent]) -> None:
    """The far side stops answering altogether: the probe's Timer F ends the call (here the
    transaction layer is stepped to Timer F's deadline instead of waiting 32 s)."""
    a, b = probing_pair
    out = await a.call(f"sip:bob@127.0.0.1:{b.port}")
    inc = await next_call(b)
    await inc.answer()
    await out.wait_answered()
    on_request = b._on_request

    def deaf_to_options(req: Request, tx: object) -> None:
        if req.method != "OPTIONS":
            on_request(req, tx)  # type: ignore[arg-type]

    b._on_request = deaf_to_options  # type: ignore[method-assign,assignment]
    await out.hold()
    await until(lambda: out._probe_tx is not None)
    tx = out._probe_tx
    assert tx is not None and tx.request.method == "OPTIONS" and tx.request.to.tag
    a._layer.handle_timer(tx.timers["F"])
    a._drain()
    await asyncio.wait_for(out.wait_ended(), 3)
    assert out.ended_by == "dialog_lost"
    assert out.outcome is not None and out.outcome.detail == "dialog lost: no response to in-dialog OPTIONS (Timer F)"


async def test_no_probe_while_media_flows_or_when_disabled(probing_pair: tuple[UserAgent, UserAgent]) -> None:
    a, b = probing_pair
    answered = _count_options(b)
    out = await a.call(f"sip:bob@127.0.0.1:{b.port}")
    inc = await next_call(b)
    await inc.answer()
    await out.wait_answered()
    await asyncio.sleep(0.6)  # three probe intervals with media flowing: no probe
    assert answered == [] and out._probe_timer is None
    await out.hold()
    await until(lambda: len(answered) >= 1)
    await out.unhold()
    await until(lambda: out.media_expected)
    assert out._probe_timer is None
    assert inc._probe_timer is None  # b has dialog_probe_interval=0


async def test_in_dialog_options_is_answered_200_or_481(pair: tuple[UserAgent, UserAgent]) -> None:
    a, b = pair
    out = await a.call(f"sip:bob@127.0.0.1:{b.port}")
    inc = await next_call(b)
    await inc.answer()
    await out.wait_answered()
    answered = _count_options(b)
    a._send_in_dialog(out, "OPTIONS")
    await until(lambda: answered == [200])
    assert out.dialog is not None
    out.dialog.remote_tag = "not-the-tag"  # an in-dialog OPTIONS for a dialog b does not have
    a._send_in_dialog(out, "OPTIONS")
    await until(lambda: answered == [200, 481])
    assert not out.ended  # only the probe's 481 ends a call
