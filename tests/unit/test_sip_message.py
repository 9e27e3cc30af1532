"""SIP message parsing and serialization (RFC 3261 §7, §20, §25), including a fuzz test."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telephony.sip.builders import make_response
from telephony.sip.framing import KeepAlivePing, StreamFramer
from telephony.sip.message import MAX_MESSAGE_SIZE, RemoteProtocolError, Request, Response, parse_message
from telephony.sip.uri import Address, SipSyntaxError, SipURI, Via

INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"v: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds;rport,"
    b" SIP/2.0/TCP [2001:db8::1]:5061;branch=z9hG4bKx\r\n"
    b"Max-Forwards: 70\r\n"
    b"t: Bob <sip:bob@biloxi.example.com>\r\n"
    b'f: "Alice, A" <sip:alice@atlanta.example.com>;tag=1928301774\r\n'
    b"i: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"m: <sip:alice@pc33.atlanta.example.com>;expires=60, <sip:alice@10.0.0.1:5070;transport=tcp>;q=0.5\r\n"
    b"Subject: folded\r\n  across lines\r\n"
    b'WWW-Authenticate: Digest realm="a,b", nonce="x"\r\n'
    b"c: application/sdp\r\n"
    b"l: 4\r\n\r\nv=0\r\nEXTRA"
)


def test_parses_compact_folded_and_multi_value_headers() -> None:
    msg = parse_message(INVITE)
    assert isinstance(msg, Request)
    assert msg.method == "INVITE" and msg.uri.user == "bob"
    assert [v.transport for v in msg.vias] == ["UDP", "TCP"]
    assert msg.vias[1].host == "2001:db8::1" and msg.vias[1].port == 5061
    assert "rport" in msg.top_via.params and msg.top_via.params["rport"] is None
    assert msg.from_.display_name == "Alice, A" and msg.from_.tag == "1928301774"
    assert msg.to.tag is None
    assert msg.call_id == "a84b4c76e66710@pc33.atlanta.example.com"
    assert (msg.cseq.seq, msg.cseq.method) == (314159, "INVITE")
    assert [c.uri.port for c in msg.contacts] == [None, 5070]
    assert msg.contacts[0].params["expires"] == "60" and msg.contacts[1].params["q"] == "0.5"
    assert msg.headers.get("subject") == "folded across lines"
    assert msg.headers.get_all("www-authenticate") == ['Digest realm="a,b", nonce="x"']
    assert msg.body == b"v=0\r"  # UDP: the body is cut at Content-Length (§18.3)


def test_serialize_round_trip_uses_long_forms_and_recomputes_content_length() -> None:
    msg = parse_message(INVITE)
    msg.body = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n"
    out = msg.to_bytes()
    again = parse_message(out)
    assert b"Call-ID: a84b4c76e66710" in out and b"\r\ni:" not in out
    assert again.body == msg.body
    assert again.headers.get("content-length") == str(len(msg.body))
    assert [str(v) for v in again.vias] == [str(v) for v in msg.vias]


def test_response_parsing_and_building() -> None:
    req = parse_message(INVITE)
    resp = make_response(req.headers, 180, to_tag="abc")
    parsed = parse_message(resp.to_bytes())
    assert isinstance(parsed, Response) and parsed.status == 180 and parsed.reason == "Ringing"
    assert parsed.to.tag == "abc" and parsed.cseq.method == "INVITE"
    assert len(parsed.vias) == 2


@pytest.mark.parametrize(
    ("data", "fragment", "status"),
    [
        (INVITE.replace(b"CSeq: 314159 INVITE", b"CSeq: x INVITE"), "CSeq", 400),
        (INVITE.replace(b"CSeq: 314159 INVITE", b"CSeq: 1 BYE"), "does not match", 400),
        (INVITE.replace(b"i: a84b4c76e66710@pc33.atlanta.example.com\r\n", b""), "Call-ID", 400),
        (INVITE.replace(b"SIP/2.0\r\nv:", b"SIP/3.0\r\nv:"), "version", 505),
        (INVITE.replace(b"l: 4", b"l: 400"), "Content-Length 400", 400),
        (INVITE.replace(b"Max-Forwards: 70", b"Max-Forwards 70"), "no 'Name:'", 400),
        (INVITE.replace(b"sip:bob@biloxi.example.com SIP", b"http://x SIP"), "Request-URI", 416),
        (INVITE.replace(b";branch=z9hG4bK776asdhds", b""), "branch", 400),
    ],
)
def test_malformed_requests_carry_status_and_salvaged_headers(data: bytes, fragment: str, status: int) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_message(data)
    assert fragment in info.value.message
    assert info.value.status_hint == status
    assert info.value.is_request


def test_salvaged_headers_allow_a_400_reply() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_message(INVITE.replace(b"CSeq: 314159 INVITE", b"CSeq: 1 BYE"))
    assert info.value.headers is not None
    resp = make_response(info.value.headers, 400, "Bad Request (CSeq)")
    assert parse_message(resp.to_bytes()).call_id == "a84b4c76e66710@pc33.atlanta.example.com"


def test_oversized_message_is_rejected() -> None:
    big = INVITE.replace(b"l: 4\r\n\r\nv=0\r\nEXTRA", b"l: 70000\r\n\r\n" + b"a" * 70000)
    with pytest.raises(RemoteProtocolError) as info:
        parse_message(big)
    assert info.value.status_hint == 513 and str(MAX_MESSAGE_SIZE) in info.value.message


def test_uri_and_address_grammar() -> None:
    u = SipURI.parse("sips:al%20ice:pw@[::1]:5061;transport=tcp;lr?subject=hi")
    assert (u.scheme, u.user, u.password, u.host, u.port) == ("sips", "al ice", "pw", "::1", 5061)
    assert u.params == {"transport": "tcp", "lr": None} and u.headers == {"subject": "hi"}
    assert str(SipURI.parse(str(u))) == str(u)
    assert SipURI.parse("tel:+15551234567;phone-context=x").user == "+15551234567"
    a = Address.parse("sip:bob@host;tag=xyz")  # addr-spec: params belong to the header
    assert a.tag == "xyz" and a.uri.params == {}
    assert Address.parse("*").wildcard
    assert Via.parse("SIP/2.0/UDP 1.2.3.4;branch=z9hG4bK1;received=5.6.7.8").params["received"] == "5.6.7.8"
    for bad in ("bob@host", "sip:", "sip:user@", "sip:host:99999", "sip:[::1"):
        with pytest.raises(SipSyntaxError):
            SipURI.parse(bad)


def test_tcp_framer_cuts_by_content_length_and_answers_keepalives() -> None:
    framer = StreamFramer()
    msg = parse_message(INVITE).to_bytes()
    out = framer.feed(b"\r\n\r\n" + msg[:50])
    assert out == [KeepAlivePing()]
    out = framer.feed(msg[50:] + msg)
    assert out == [msg, msg]
    with pytest.raises(RemoteProtocolError):
        StreamFramer().feed(b"INVITE sip:x SIP/2.0\r\nContent-Length: 99999999\r\n\r\n")


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=2048))
def test_fuzz_arbitrary_bytes_raise_only_the_documented_error(data: bytes) -> None:
    try:
        msg = parse_message(data)
    except RemoteProtocolError:
        return
    msg.to_bytes()


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                b"Via: SIP/2.0/UDP h;branch=z9hG4bKa",
                b"Via: garbage",
                b"From: <sip:a@h>;tag=1",
                b"From: <sip:a@h",
                b"To: sip:b@h",
                b"Call-ID: x",
                b"CSeq: 1 INVITE",
                b"CSeq: 99999999999 INVITE",
                b"Content-Length: 5",
                b"Content-Length: -1",
                b"Contact: *",
                b"m: <sip:[::1]:5060>",
                b": novalue",
                b" folded",
            ]
        ),
        max_size=12,
    ),
    st.sampled_from([b"INVITE sip:b@h SIP/2.0", b"SIP/2.0 200 OK", b"BYE tel:123 SIP/2.0", b"X"]),
)
def test_fuzz_structured_messages(lines: list[bytes], start: bytes) -> None:
    data = b"\r\n".join([start, *lines]) + b"\r\n\r\nbody!"
    try:
        msg = parse_message(data)
    except RemoteProtocolError:
        return
    msg.to_bytes()
