"""SIP over UDP and TCP on one port, IPv4 or IPv6 (RFC 3261 §18, RFC 5626 keep-alives).

The only module of the SIP stack that owns sockets. It hands each received message to a
callback as ``(bytes, Destination)`` and sends bytes to a :class:`Destination`. TCP
responses go back over the connection the request came in on (§18.2.2), keyed by the
peer's address; outbound TCP connections are opened on demand and reused.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import cast

import structlog

from telephony.sip.framing import KeepAlivePing, StreamFramer
from telephony.sip.message import RemoteProtocolError
from telephony.sip.transaction import Destination

__all__ = ["SipTransport"]

log = structlog.get_logger(__name__)

OnMessage = Callable[[bytes, Destination], None]
# A stream that cannot be framed any more (RemoteProtocolError with salvaged headers):
# the owner answers it (400/513) through ``send`` before the connection is closed.
OnStreamError = Callable[[RemoteProtocolError, Destination], None]


_PEERS_CACHED = 4096  # distinct UDP sources whose Destination is reused (phones, trunks)


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, on_message: OnMessage) -> None:
        self.on_message = on_message
        self.transport: asyncio.DatagramTransport | None = None
        # One Destination per source address, not one per datagram: peers send many.
        self._peers: dict[tuple[str | int, ...], Destination] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # CPython 3.11's selector transport does not subclass DatagramTransport: cast, don't assert.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if len(data) <= 4 and data in (b"\r\n\r\n", b"\r\n", b"\x00\x00\x00\x00"):
            return  # NAT keep-alive pings on UDP carry no message
        peer = self._peers.get(addr)
        if peer is None:
            if len(self._peers) >= _PEERS_CACHED:
                self._peers.clear()
            peer = self._peers[addr] = Destination("udp", str(addr[0]), int(addr[1]))
        self.on_message(data, peer)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable etc.: transactions time out on their own (§18.4).
        log.debug("sip.udp_error", error=str(exc))


class _Tcp(asyncio.Protocol):
    def __init__(self, owner: SipTransport) -> None:
        self.owner = owner
        self.framer = StreamFramer()
        self.transport: asyncio.Transport | None = None
        self.peer: Destination | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCPTransport does not subclass asyncio.Transport either: cast, don't assert.
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        host, port = transport.get_extra_info("peername")[:2]
        self.peer = Destination("tcp", str(host), int(port))
        self.owner._tcp[(self.peer.host, self.peer.port)] = self

    def data_received(self, data: bytes) -> None:
        assert self.peer is not None and self.transport is not None
        try:
            chunks = self.framer.feed(data)
        except RemoteProtocolError as exc:
            log.warning("sip.tcp_framing_error", peer=f"{self.peer.host}:{self.peer.port}", error=exc.message)
            if self.owner.on_stream_error is not None:
                try:
                    self.owner.on_stream_error(exc, self.peer)
                except Exception:  # the answer is a courtesy: the connection closes either way
                    log.exception("sip.tcp_error_answer_failed", peer=f"{self.peer.host}:{self.peer.port}")
            self.transport.close()  # flushes the answer first (asyncio and uvloop)
            return
        for chunk in chunks:
            if isinstance(chunk, KeepAlivePing):
                self.transport.write(b"\r\n")
            else:
                self.owner.on_message(chunk, self.peer)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None and self.owner._tcp.get((self.peer.host, self.peer.port)) is self:
            del self.owner._tcp[(self.peer.host, self.peer.port)]


UDP_RECEIVE_BUFFER = 4 * 1024 * 1024
"""Asked for on the SIP UDP socket. Linux's default (208 KiB) holds about 90 datagrams, and a
trunk delivering a hundred INVITEs at once (plus the agents' 100 Trying and 180 for each)
overflows it: dropped requests come back only on Timer A, 0.5 s later (bench/acd_sip's burst
series dropped 56-246 datagrams a run). The kernel caps the size at net.core.rmem_max."""


def _grow_receive_buffer(sock: socket.socket | None) -> None:
    if sock is None:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER)
        granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    except OSError as exc:
        log.warning("sip.udp_receive_buffer", error=str(exc))
        return
    if granted < 2 * UDP_RECEIVE_BUFFER:  # Linux reports twice what it grants (its bookkeeping)
        log.info(
            "sip.udp_receive_buffer",
            bytes=granted,
            detail="capped by net.core.rmem_max; raise it (sysctl) if bursts of calls get retransmitted",
        )


class SipTransport:
    """UDP and TCP listeners on the same host and port."""

    def __init__(self, on_message: OnMessage, on_stream_error: OnStreamError | None = None) -> None:
        self.on_message = on_message
        self.on_stream_error = on_stream_error
        self._udp: _Udp | None = None
        self._server: asyncio.Server | None = None
        self._tcp: dict[tuple[str, int], _Tcp] = {}
        self._pending: dict[tuple[str, int], list[bytes]] = {}
        self.host = ""
        self.port = 0

    async def start(self, host: str, port: int, *, tcp: bool = True) -> None:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        for _attempt in range(20):
            udp_transport, proto = await loop.create_datagram_endpoint(
                lambda: _Udp(self.on_message), local_addr=(host, port), family=family
            )
            bound = int(udp_transport.get_extra_info("sockname")[1])
            _grow_receive_buffer(udp_transport.get_extra_info("socket"))
            if not tcp:
                break
            try:
                self._server = await loop.create_server(
                    lambda: _Tcp(self), host=host, port=bound, family=family, reuse_address=True
                )
                break
            except OSError:
                udp_transport.close()
                if port != 0:
                    raise
        else:
            raise OSError(f"could not bind UDP and TCP on the same port at {host}")
        self._udp = proto
        self.host, self.port = host, bound
        log.info("sip.listening", host=host, port=bound, tcp=tcp)

    def send(self, data: bytes, dest: Destination) -> None:
        if dest.transport == "udp":
            if self._udp is not None and self._udp.transport is not None:
                self._udp.transport.sendto(data, (dest.host, dest.port))
            return
        conn = self._tcp.get((dest.host, dest.port))
        if conn is not None and conn.transport is not None and not conn.transport.is_closing():
            conn.transport.write(data)
            return
        queue = self._pending.get((dest.host, dest.port))
        if queue is not None:
            queue.append(data)
            return
        self._pending[(dest.host, dest.port)] = [data]
        asyncio.get_running_loop().create_task(self._connect(dest))

    async def _connect(self, dest: Destination) -> None:
        loop = asyncio.get_running_loop()
        key = (dest.host, dest.port)
        try:
            transport, _ = await loop.create_connection(lambda: _Tcp(self), dest.host, dest.port)
        except OSError as exc:
            log.warning("sip.tcp_connect_failed", dest=f"{dest.host}:{dest.port}", error=str(exc))
            self._pending.pop(key, None)
            return
        for data in self._pending.pop(key, []):
            transport.write(data)

    async def close(self) -> None:
        if self._udp is not None and self._udp.transport is not None:
            self._udp.transport.close()
        for conn in list(self._tcp.values()):
            if conn.transport is not None:
                conn.transport.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
