"""A SIP/TCP stream that cannot be framed is answered, then closed (RFC 3261 §18.3, §21.5.14).

A raw client socket talks to a started UA on loopback, on asyncio's default loop and on
uvloop (what `dialer sip serve` runs on).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
import uvloop

from telephony.aio.ua import UAConfig, UserAgent

pytestmark = pytest.mark.timeout(60)

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}


def _request(content_length: str) -> bytes:
    return (
        "INVITE sip:bob@127.0.0.1 SIP/2.0\r\n"
        "Via: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bK-tcp1;rport\r\n"
        "From: <sip:alice@127.0.0.1>;tag=a1\r\n"
        "To: <sip:bob@127.0.0.1>\r\n"
        "Call-ID: tcp-framing@127.0.0.1\r\n"
        "CSeq: 7 INVITE\r\n"
        "Max-Forwards: 70\r\n"
        f"Content-Length: {content_length}\r\n\r\n"
    ).encode()


async def _exchange(data: bytes) -> bytes:
    ua = UserAgent(UAConfig(host="127.0.0.1", port=0, user="bob", registrar=False))
    await ua.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", ua.port)
        writer.write(data)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 5)  # read() returns at EOF: the UA closed
        writer.close()
        return answer
    finally:
        await ua.close()


@pytest.mark.parametrize("loop", sorted(LOOPS))
@pytest.mark.parametrize(
    ("content_length", "status", "phrase"),
    [
        ("100000", 513, "Message Too Large (message of 100"),
        ("ten", 400, "Bad Request (content-length 'ten' is not a number)"),
    ],
)
def test_unframeable_stream_is_answered_then_closed(loop: str, content_length: str, status: int, phrase: str) -> None:
    with asyncio.Runner(loop_factory=LOOPS[loop]) as runner:
        answer = runner.run(_exchange(_request(content_length)))
    text = answer.decode()
    assert text.startswith(f"SIP/2.0 {status} {phrase}"), text
    assert "Call-ID: tcp-framing@127.0.0.1\r\n" in text and "CSeq: 7 INVITE\r\n" in text
    assert text.count("\r\n\r\n") == 1 and text.endswith("\r\n\r\n")  # one response, then EOF
