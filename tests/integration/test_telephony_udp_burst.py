"""A burst of SIP datagrams larger than Linux's default UDP receive buffer arrives whole."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from telephony.aio.transport import UDP_RECEIVE_BUFFER, SipTransport

INVITE = (
    "INVITE sip:4000@127.0.0.1 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-{n}\r\n"
    "From: <sip:+8613800000000@carrier.example>;tag={n}\r\n"
    "To: <sip:4000@127.0.0.1>\r\n"
    "Call-ID: burst-{n}@carrier.example\r\n"
    "CSeq: 1 INVITE\r\n"
    "Contact: <sip:+8613800000000@127.0.0.1:5099>\r\n"
    "Max-Forwards: 70\r\n"
    "Content-Type: application/sdp\r\n"
    "Content-Length: 0\r\n\r\n"
)


def _rmem_max() -> int:
    try:
        return int(Path("/proc/sys/net/core/rmem_max").read_text())
    except (OSError, ValueError):
        return UDP_RECEIVE_BUFFER


async def test_a_burst_of_invites_beyond_the_default_buffer_is_not_dropped() -> None:
    received: list[bytes] = []
    transport = SipTransport(lambda data, peer: received.append(data))
    await transport.start("127.0.0.1", 0, tcp=False)
    try:
        assert transport._udp is not None and transport._udp.transport is not None
        sock = transport._udp.transport.get_extra_info("socket")
        granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        # Linux reports twice the size it grants; the grant is capped at net.core.rmem_max.
        assert granted >= 2 * min(UDP_RECEIVE_BUFFER, _rmem_max())

        # 600 INVITEs (~300 KB, ~1.4 MB of kernel buffer) while the loop does not read: the
        # default 208 KiB buffer holds about 90 of them. Only meaningful where rmem_max allows.
        count = 600 if _rmem_max() >= 2 * 1024 * 1024 else 60
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
            for n in range(count):
                peer.sendto(INVITE.format(n=n).encode(), ("127.0.0.1", transport.port))
        for _ in range(200):
            if len(received) >= count:
                break
            await asyncio.sleep(0.01)
        assert len(received) == count, f"{count - len(received)} of {count} datagrams dropped"
    finally:
        await transport.close()
