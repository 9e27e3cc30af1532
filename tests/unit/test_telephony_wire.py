"""Bad input on the wire: the UA's datagram entry point and the TCP framer (RFC 3261 §18.3, §21.4.1, §21.5.14).

The UA here is never started: its transport's ``send`` is replaced by a list, so each
test sees exactly what would go on the wire and no socket is opened.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from telephony.aio.ua import UAConfig, UserAgent
from telephony.sip.framing import KeepAlivePing, StreamFramer
from telephony.sip.message import MAX_MESSAGE_SIZE, RemoteProtocolError, Response, parse_message
from telephony.sip.transaction import Destination

SRC = Destination("udp", "192.0.2.7", 5062)

HEAD = (
    "Via: SIP/2.0/UDP 192.0.2.7:5062;branch=z9hG4bK-abc;rport\r\n"
    "From: <sip:alice@192.0.2.7>;tag=f1\r\n"
    "To: <sip:bob@127.0.0.1>\r\n"
    "Call-ID: wire-1@192.0.2.7\r\n"
)


def _ua(sent: list[tuple[bytes, Destination]]) -> UserAgent:
    ua = UserAgent(UAConfig(host="127.0.0.1", port=0, user="bob"))
    ua._transport.send = lambda data, dest: sent.append((data, dest))  # type: ignore[method-assign]
    return ua


def _status_line(data: bytes) -> tuple[int, str, dict[str, str]]:
    """Status, reason and headers of a response we sent, read without our parser: a 400
    echoes the broken header it complains about, so it need not parse as a whole."""
    head, sep, _ = data.partition(b"\r\n\r\n")
    assert sep, data
    start, *lines = head.decode("utf-8").split("\r\n")
    assert re.fullmatch(r"SIP/2\.0 [1-6]\d\d [^\r\n]+", start), start
    headers = {}
    for line in lines:
        name, colon, value = line.partition(":")
        assert colon and re.fullmatch(r"[A-Za-z0-9.!%*_+`'~-]+", name), line
        headers.setdefault(name.lower(), value.strip())
    return int(start[8:11]), start[12:], headers


async def test_400_reason_says_what_is_wrong() -> None:
    sent: list[tuple[bytes, Destination]] = []
    ua = _ua(sent)
    bad = f"OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\n{HEAD}CSeq: abc OPTIONS\r\nContent-Length: 0\r\n\r\n"
    ua._on_datagram(bad.encode(), SRC)
    [(data, _)] = sent
    status, reason, headers = _status_line(data)
    assert status == 400
    assert reason.startswith("Bad Request (cseq 'abc OPTIONS' must be a number")
    assert headers["call-id"] == "wire-1@192.0.2.7"
    assert sent[0][1] == SRC
    assert ua.stats["malformed"] == 1


async def test_missing_header_is_named_in_the_reason() -> None:
    sent: list[tuple[bytes, Destination]] = []
    ua = _ua(sent)
    head = HEAD.replace("To: <sip:bob@127.0.0.1>\r\n", "")
    ua._on_datagram(f"OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\n{head}CSeq: 1 OPTIONS\r\n\r\n".encode(), SRC)
    [(data, _)] = sent
    status, reason, _headers = _status_line(data)
    assert (status, reason) == (400, "Bad Request (missing to header)")  # names lower-cased for sipp


def _oversize(head: str, *, total: int = MAX_MESSAGE_SIZE + 1000) -> bytes:
    start = f"MESSAGE sip:bob@127.0.0.1 SIP/2.0\r\n{head}CSeq: 9 MESSAGE\r\nContent-Type: text/plain\r\n"
    body_len = total - len(start) - len("Content-Length: 00000\r\n\r\n")
    return (start + f"Content-Length: {body_len:05d}\r\n\r\n").encode() + b"x" * body_len


async def test_oversize_udp_request_gets_513_from_salvaged_headers() -> None:
    sent: list[tuple[bytes, Destination]] = []
    ua = _ua(sent)
    data = _oversize(HEAD)
    assert len(data) > MAX_MESSAGE_SIZE
    ua._on_datagram(data, SRC)
    [(data, _)] = sent
    resp = parse_message(data)
    assert isinstance(resp, Response)
    assert resp.status == 513 and resp.reason.startswith("Message Too Large (message of")
    assert resp.call_id == "wire-1@192.0.2.7" and resp.cseq.seq == 9 and resp.cseq.method == "MESSAGE"
    assert resp.top_via.branch == "z9hG4bK-abc"
    assert resp.top_via.params.get("received") is None or resp.top_via.params["received"] == SRC.host
    assert sent[0][1] == SRC


async def test_oversize_request_without_a_whole_head_is_not_answered() -> None:
    sent: list[tuple[bytes, Destination]] = []
    ua = _ua(sent)
    ua._on_datagram(_oversize(HEAD.replace("Call-ID: wire-1@192.0.2.7\r\n", "")), SRC)
    assert sent == [] and ua.stats["malformed"] == 1


async def test_oversize_response_is_dropped() -> None:
    sent: list[tuple[bytes, Destination]] = []
    ua = _ua(sent)
    data = b"SIP/2.0 200 OK\r\n" + HEAD.encode() + b"CSeq: 1 OPTIONS\r\n\r\n" + b"x" * MAX_MESSAGE_SIZE
    ua._on_datagram(data, SRC)
    assert sent == [] and ua.stats["malformed"] == 1


# --------------------------------------------------------------------------- framer


def test_framer_error_carries_salvaged_headers_for_the_answer() -> None:
    framer = StreamFramer()
    head = f"INVITE sip:bob@127.0.0.1 SIP/2.0\r\n{HEAD}CSeq: 1 INVITE\r\nContent-Length: 100000\r\n\r\n"
    with pytest.raises(RemoteProtocolError) as info:
        framer.feed(head.encode())
    exc = info.value
    assert exc.status_hint == 513 and exc.is_request and exc.headers is not None
    assert exc.headers.get("call-id") == "wire-1@192.0.2.7" and exc.headers.get("cseq") == "1 INVITE"
    with pytest.raises(RemoteProtocolError) as info2:
        StreamFramer().feed(head.replace("100000", "ten").encode())
    assert info2.value.status_hint == 400 and info2.value.headers is not None
    assert "via" in info2.value.headers


def test_framer_header_section_over_the_limit_salvages_only_whole_lines() -> None:
    framer = StreamFramer(max_size=300)
    data = f"OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\n{HEAD}CSeq: 1 OPTIONS\r\nX-Pad: {'p' * 400}".encode()
    with pytest.raises(RemoteProtocolError) as info:
        framer.feed(data)
    headers = info.value.headers
    assert info.value.status_hint == 513 and headers is not None
    assert headers.get("cseq") == "1 OPTIONS" and headers.get("call-id") == "wire-1@192.0.2.7"


_MSG = st.builds(
    lambda body, method: (
        (
            f"{method} sip:bob@127.0.0.1 SIP/2.0\r\n{HEAD}CSeq: 1 {method}\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        + body
    ),
    st.binary(max_size=200),
    st.sampled_from(["OPTIONS", "INVITE", "BYE", "INFO"]),
)


@given(st.lists(_MSG, min_size=1, max_size=4), st.lists(st.integers(min_value=1, max_value=300), max_size=20))
def test_framer_cuts_messages_the_same_whatever_the_segmenting(messages: list[bytes], cuts: list[int]) -> None:
    stream = b"\r\n\r\n".join(messages)  # keep-alives between messages
    framer = StreamFramer()
    got: list[bytes] = []
    pos = 0
    for n in [*cuts, len(stream)]:
        for chunk in framer.feed(stream[pos : pos + n]):
            if not isinstance(chunk, KeepAlivePing):
                got.append(chunk)
        pos += n
        if pos >= len(stream):
            break
    assert got == messages


@given(st.lists(st.binary(max_size=400), max_size=8), st.integers(min_value=64, max_value=2048))
def test_framer_fuzz_raises_only_the_documented_error(chunks: list[bytes], limit: int) -> None:
    framer = StreamFramer(max_size=limit)
    for chunk in chunks:
        try:
            out = framer.feed(chunk)
        except RemoteProtocolError as exc:
            assert exc.status_hint in (400, 513)
            return  # the connection is closed after this: nothing more is fed
        for item in out:
            assert isinstance(item, KeepAlivePing) or (isinstance(item, bytes) and len(item) <= limit)


# --------------------------------------------------------------------------- UA entry point fuzz

_METHODS = ["INVITE", "OPTIONS", "BYE", "CANCEL", "ACK", "REGISTER", "INFO", "FROBNICATE"]
_VIAS = ["SIP/2.0/UDP 192.0.2.7:5062;branch=z9hG4bK-fz;rport", "SIP/2.0/TCP [::1]:5062;branch=z9hG4bK-fz2",
         "SIP/2.0/UDP 192.0.2.7;branch=z9hG4bK-fz3;received=10.0.0.1"]  # fmt: skip
_FROMS = ["<sip:alice@192.0.2.7>;tag=f1", '"A" <sip:alice@192.0.2.7>', "sip:alice@192.0.2.7;tag=f2"]
_TOS = ["<sip:bob@127.0.0.1>", "<sip:bob@127.0.0.1>;tag=t9"]
_EXTRA = [
    "Contact: <sip:alice@192.0.2.7:5062>", "Contact: *", "Max-Forwards: 70", "Max-Forwards: 300",
    "Content-Type: application/sdp", "Content-Type: application/dtmf-relay", "Expires: 60",
    'Authorization: Digest username="bob", realm="dialer", nonce="n", uri="sip:x", response="r"',
    "Reason: Q.850;cause=16", "Record-Route: <sip:192.0.2.9;lr>", "i: other-call", "l: 3",
]  # fmt: skip
_SDP = (
    b"v=0\r\no=- 1 1 IN IP4 192.0.2.7\r\ns=-\r\nc=IN IP4 192.0.2.7\r\nt=0 0\r\n"
    b"m=audio 4000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"
)


@st.composite
def _sipish(draw: st.DrawFn) -> bytes:
    """A SIP message that is mostly well-formed, with a few things wrong or odd."""
    method = draw(st.sampled_from(_METHODS))
    if draw(st.booleans()):
        start = f"{method} sip:bob@127.0.0.1 SIP/2.0"
    else:
        status = draw(st.sampled_from(["100 Trying", "180 Ringing", "200 OK", "401 Unauthorized", "486 Busy Here"]))
        start = f"SIP/2.0 {status}"
    body = draw(st.sampled_from([b"", b"Signal=5\r\nDuration=160\r\n", _SDP]) | st.binary(max_size=40))
    seq = draw(st.sampled_from(["1", "2", "0", "4294967296", "x"]))
    cseq_method = draw(st.sampled_from([method, method, "INVITE", "BYE"]))
    lines = [
        f"Via: {draw(st.sampled_from(_VIAS))}",
        f"From: {draw(st.sampled_from(_FROMS))}",
        f"To: {draw(st.sampled_from(_TOS))}",
        f"Call-ID: {draw(st.sampled_from(['fuzz@192.0.2.7', 'fuzz2', '']))}",
        f"CSeq: {seq} {cseq_method}",
        f"Content-Length: {draw(st.sampled_from([len(body), len(body), 0, len(body) + 5]))}",
        *draw(st.lists(st.sampled_from(_EXTRA), max_size=4)),
    ]
    lines = draw(st.permutations(lines))
    drop = draw(st.lists(st.integers(0, len(lines) - 1), max_size=2))
    lines = [ln for i, ln in enumerate(lines) if i not in drop or draw(st.booleans())]
    if draw(st.integers(0, 4)) == 0:
        lines.append(draw(st.text(max_size=30)))
    eol = draw(st.sampled_from(["\r\n", "\r\n", "\n"]))
    return eol.join([start, *lines]).encode() + (eol * 2).encode() + body


_SIPISH = _sipish()


@pytest.fixture
def runner() -> Iterator[asyncio.Runner]:
    with asyncio.Runner() as r:
        yield r


def test_datagram_entry_point_fuzz_nothing_escapes(runner: asyncio.Runner) -> None:
    """Arbitrary bytes and SIP-shaped garbage, on UDP and as a TCP-framed message: the
    entry point never raises, never falls back to its last-line-of-defence handler
    (``sip.handler_error``), and everything it sends back has a well-formed status line
    and header lines."""
    sent: list[tuple[bytes, Destination]] = []
    ua = runner.run(_make_ua(sent))

    async def feed(data: bytes, source: Destination) -> None:
        ua._on_datagram(data, source)
        await asyncio.sleep(0)

    @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.binary(max_size=600) | _SIPISH, st.booleans())
    def check(data: bytes, tcp: bool) -> None:
        source = Destination("tcp", "192.0.2.7", 5062) if tcp else SRC
        sent.clear()
        with capture_logs() as logs:
            runner.run(feed(data, source))
        assert not [e for e in logs if e.get("event") == "sip.handler_error"], logs
        for out, _dest in sent:
            _status_line(out)

    check()


async def _make_ua(sent: list[tuple[bytes, Destination]]) -> UserAgent:
    return _ua(sent)
