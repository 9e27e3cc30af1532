"""SDP parse/serialize and RFC 3264 offer/answer against real softphone offers."""

from __future__ import annotations

import pytest

from telephony.sdp import (
    MediaParams,
    SdpError,
    SdpNegotiationError,
    SessionDescription,
    accept_answer,
    answer_offer,
    build_offer,
)

LINPHONE = """v=0
o=alice 3254 1254 IN IP4 192.168.1.10
s=Talk
c=IN IP4 192.168.1.10
t=0 0
a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics
m=audio 7078 RTP/AVP 96 97 98 0 8 18 101 99 100
a=rtpmap:96 opus/48000/2
a=fmtp:96 useinbandfec=1
a=rtpmap:97 speex/16000
a=fmtp:97 vbr=on
a=rtpmap:98 speex/8000
a=fmtp:98 vbr=on
a=fmtp:18 annexb=yes
a=rtpmap:101 telephone-event/48000
a=rtpmap:99 telephone-event/16000
a=rtpmap:100 telephone-event/8000
a=rtcp-fb:* trr-int 1000
a=rtcp-fb:* ccm tmmbr
"""

BARESIP = (
    "v=0\r\n"
    "o=- 1390406733 3296283537 IN IP4 10.0.0.2\r\n"
    "s=-\r\n"
    "c=IN IP4 10.0.0.2\r\n"
    "t=0 0\r\n"
    "m=audio 10994 RTP/AVP 8 0 101\r\n"
    "b=AS:64\r\n"
    "a=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-15\r\n"
    "a=sendrecv\r\n"
    "a=label:1\r\n"
    "a=ssrc:1714151311 cname:ab3f2b3a-7d64-4a35-8a55-1b8a1b4fe7a9\r\n"
    "a=rtcp-rsize\r\n"
)

ZOIPER = """v=0
o=Z 0 0 IN IP4 192.168.0.5
s=Z
c=IN IP4 192.168.0.5
t=0 0
m=audio 8000 RTP/AVP 106 9 98 101 0 8 3
a=rtpmap:106 opus/48000/2
a=fmtp:106 sprop-maxcapturerate=16000; minptime=20; useinbandfec=1
a=rtpmap:98 telephone-event/48000
a=fmtp:98 0-16
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:30
a=sendrecv
a=rtcp-mux
m=video 0 RTP/AVP 99
a=rtpmap:99 H264/90000
"""

IPV6 = """v=0
o=- 1 1 IN IP6 2001:db8::5
s=-
c=IN IP6 2001:db8::5
t=0 0
m=audio 40000 RTP/AVP 0 101
a=rtpmap:101 telephone-event/8000
"""


def test_parse_linphone_offer_reads_codecs_and_dtmf() -> None:
    sdp = SessionDescription.parse(LINPHONE)
    assert sdp.origin.username == "alice"
    assert sdp.origin.session_version == 1254
    assert sdp.connection is not None and sdp.connection.address == "192.168.1.10"
    (audio,) = sdp.media
    assert audio.port == 7078
    assert audio.formats[:3] == ("96", "97", "98")
    assert audio.rtpmap()[100] == ("TELEPHONE-EVENT", 8000)
    assert sdp.direction_of(audio) == "sendrecv"


def test_answer_linphone_picks_pcmu_and_8k_telephone_event() -> None:
    offer = SessionDescription.parse(LINPHONE)
    answer, params = answer_offer(offer, host="127.0.0.1", port=10002, session_id=7)
    assert params == MediaParams("192.168.1.10", 7078, 0, "PCMU", 100, 20, "sendrecv")
    text = answer.to_text()
    assert "m=audio 10002 RTP/AVP 0 100\r\n" in text
    assert "a=rtpmap:100 telephone-event/8000\r\n" in text
    assert "c=IN IP4 127.0.0.1\r\n" in text
    assert text.endswith("a=sendrecv\r\n")


def test_answer_follows_offerer_preference_pcma_first() -> None:
    _, params = answer_offer(SessionDescription.parse(BARESIP), host="127.0.0.1", port=10000, session_id=1)
    assert (params.codec, params.payload_type, params.dtmf_pt) == ("PCMA", 8, 101)


def test_answer_keeps_rejected_video_with_port_zero_and_reads_ptime() -> None:
    offer = SessionDescription.parse(ZOIPER)
    answer, params = answer_offer(offer, host="127.0.0.1", port=10000, session_id=1)
    assert params.codec == "PCMU" and params.dtmf_pt == 101 and params.ptime == 30
    assert [m.port for m in answer.media] == [10000, 0]
    assert answer.media[1].media == "video"
    # The answer is itself valid SDP.
    reparsed = SessionDescription.parse(answer.to_bytes())
    assert reparsed == answer


def test_no_common_codec_is_488_naming_both_sides() -> None:
    offer = SessionDescription.parse(ZOIPER.replace("106 9 98 101 0 8 3", "106 9 98 101"))
    with pytest.raises(SdpNegotiationError) as info:
        answer_offer(offer, host="127.0.0.1", port=10000, session_id=1)
    assert info.value.status_hint == 488
    assert "OPUS/48000" in info.value.message and "G722/8000" in info.value.message
    assert "we support PCMU/8000, PCMA/8000" in info.value.message


def test_supported_restricts_answer() -> None:
    offer = SessionDescription.parse(BARESIP)
    _, params = answer_offer(offer, host="127.0.0.1", port=10000, session_id=1, supported=("PCMU",))
    assert params.codec == "PCMU"


@pytest.mark.parametrize(
    ("offered", "answered"),
    [("sendonly", "recvonly"), ("recvonly", "sendonly"), ("inactive", "inactive"), ("sendrecv", "sendrecv")],
)
def test_answer_direction_mirrors_offer(offered: str, answered: str) -> None:
    offer = SessionDescription.parse(BARESIP.replace("a=sendrecv", f"a={offered}"))
    answer, params = answer_offer(offer, host="127.0.0.1", port=10000, session_id=1)
    assert params.direction == answered
    assert answer.direction_of(answer.media[0]) == answered


def test_session_level_direction_applies_to_media() -> None:
    text = BARESIP.replace("a=sendrecv\r\n", "").replace("t=0 0\r\n", "t=0 0\r\na=sendonly\r\n")
    _, params = answer_offer(SessionDescription.parse(text), host="127.0.0.1", port=10000, session_id=1)
    assert params.direction == "recvonly"


def test_legacy_hold_with_zero_address_means_we_must_not_send() -> None:
    offer = SessionDescription.parse(BARESIP.replace("c=IN IP4 10.0.0.2", "c=IN IP4 0.0.0.0"))
    _, params = answer_offer(offer, host="127.0.0.1", port=10000, session_id=1)
    assert params.remote_host == "0.0.0.0"
    assert not params.sends and params.receives


def test_our_direction_is_intersected() -> None:
    offer = SessionDescription.parse(BARESIP)
    _, params = answer_offer(offer, host="127.0.0.1", port=10000, session_id=1, direction="sendonly")
    assert params.direction == "sendonly"


def test_ipv6_offer_and_answer() -> None:
    offer = SessionDescription.parse(IPV6)
    answer, params = answer_offer(offer, host="::1", port=10000, session_id=1)
    assert params.remote_host == "2001:db8::5"
    assert "c=IN IP6 ::1\r\n" in answer.to_text()
    assert "o=- 1 0 IN IP6 ::1\r\n" in answer.to_text()


def test_offer_roundtrip_and_accept_answer() -> None:
    offer = build_offer(host="127.0.0.1", port=10000, session_id=42, codecs=("PCMA", "PCMU"))
    text = offer.to_text()
    assert "m=audio 10000 RTP/AVP 8 0 101\r\n" in text
    assert "a=fmtp:101 0-16\r\n" in text and "a=ptime:20\r\n" in text
    assert SessionDescription.parse(text) == offer
    # The peer answers PCMU, puts us on hold (sendonly from its side = we only receive).
    peer_answer = SessionDescription.parse(BARESIP.replace("8 0 101", "0 101").replace("a=sendrecv", "a=sendonly"))
    params = accept_answer(offer, peer_answer)
    assert params == MediaParams("10.0.0.2", 10994, 0, "PCMU", 101, 20, "recvonly")


def test_accept_answer_with_rejected_audio_raises_488() -> None:
    offer = build_offer(host="127.0.0.1", port=10000, session_id=1)
    rejected = SessionDescription.parse(BARESIP.replace("m=audio 10994", "m=audio 0"))
    with pytest.raises(SdpNegotiationError, match="accepted none"):
        accept_answer(offer, rejected)


def test_accept_answer_with_wrong_stream_count() -> None:
    offer = build_offer(host="127.0.0.1", port=10000, session_id=1)
    with pytest.raises(SdpError, match="m= lines"):
        accept_answer(offer, SessionDescription.parse(ZOIPER))


def test_hold_offer_and_version_bump() -> None:
    offer = build_offer(host="::1", port=10000, session_id=1, session_version=3, direction="sendonly")
    assert "a=sendonly" in offer.to_text()
    assert offer.with_version(4).origin.session_version == 4


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        ("o=- 1 1 IN IP4 1.2.3.4\r\n", "v=0"),
        ("v=1\r\n", "version"),
        ("v=0\r\ns=-\r\n", "o="),
        ("v=0\r\no=- x 1 IN IP4 1.2.3.4\r\n", "numbers"),
        ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nc=IN IP9 1.2.3.4\r\n", "IN IP4"),
        ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio abc RTP/AVP 0\r\nc=IN IP4 1.2.3.4\r\n", "port"),
        ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 0\r\n", "no c= line"),
        ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ngarbage\r\n", "<type>=<value>"),
        ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nq=what\r\n", "unknown type"),
    ],
)
def test_malformed_sdp_is_a_400_naming_the_problem(text: str, fragment: str) -> None:
    with pytest.raises(SdpError, match=fragment) as info:
        SessionDescription.parse(text)
    assert info.value.status_hint == 400
    assert not isinstance(info.value, SdpNegotiationError)


def test_build_offer_rejects_bad_arguments() -> None:
    with pytest.raises(SdpError, match="not an IP address"):
        build_offer(host="example.com", port=1, session_id=1)
    with pytest.raises(ValueError, match="not supported"):
        build_offer(host="127.0.0.1", port=1, session_id=1, codecs=("G729",))
    with pytest.raises(ValueError, match="dynamic"):
        build_offer(host="127.0.0.1", port=1, session_id=1, dtmf_pt=13)
