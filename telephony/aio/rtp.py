"""asyncio UDP endpoint for RTP: bind an even port from a range, receive callback, send, close.

RFC 3550 §11 wants RTP on an even port (RTCP on the next odd one, which we do not use).
:class:`PortAllocator` hands out even ports of a configurable range in a shuffled order and
remembers which this process holds, and :func:`open_rtp_endpoint` retries on EADDRINUSE
so other programs on the host do not make a call fail. Works on IPv4 and IPv6; with uvloop
as the event loop in production, with plain asyncio in tests.

:class:`RtpEndpoint` reads its non-blocking socket itself (``loop.add_reader``, every queued
datagram per wake-up) rather than through a datagram protocol: the relay of hundreds of calls
is its per-packet path, and a transport adds a call layer and an address tuple per packet.
Once a session has latched onto its peer (symmetric RTP) it connects (:meth:`~RtpEndpoint.connect`) the
socket, so sends skip the address lookup and the kernel drops packets from any other source;
:meth:`~RtpEndpoint.disconnect` listens to every source again (the session does that when the
latch is dropped or the peer has been quiet long enough for a re-latch). While connected,
stray packets from other sources therefore never reach the receiver's ``foreign_dropped`` count.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import random
import socket
from collections.abc import Callable, Iterable, Iterator
from typing import Final

import structlog

__all__ = ["DEFAULT_PORT_RANGE", "DatagramHandler", "PortAllocator", "RtpEndpoint", "open_rtp_endpoint"]

log = structlog.get_logger()

DEFAULT_PORT_RANGE: Final = (10000, 20000)
DatagramHandler = Callable[[bytes, tuple[str, int]], None]


class PortAllocator:
    """Even ports of ``[low, high]`` in random order, skipping ports this process holds."""

    def __init__(self, port_range: tuple[int, int] = DEFAULT_PORT_RANGE, *, rng: random.Random | None = None) -> None:
        low, high = port_range
        if not 1024 <= low <= high <= 65535:
            raise ValueError(f"RTP port range {low}-{high} must lie within 1024-65535 with low <= high")
        first = low + (low & 1)
        self.ports = list(range(first, high, 2))
        if not self.ports:
            raise ValueError(f"RTP port range {low}-{high} holds no even port with a free odd neighbour")
        self._rng = rng or random.Random()
        self.in_use: set[int] = set()

    def candidates(self, limit: int = 64) -> Iterator[int]:
        """Up to ``limit`` distinct free ports in random order, produced lazily.

        Sampling, not shuffling the whole range: at hundreds of calls per second a full
        shuffle of 5,000 ports per call cost more than the SIP handling itself, and the
        first candidate nearly always binds.
        """
        ports, in_use, rng = self.ports, self.in_use, self._rng
        tried: set[int] = set()
        for _ in range(limit * 4):
            p = ports[rng.randrange(len(ports))]
            if p not in in_use and p not in tried:
                tried.add(p)
                yield p
                if len(tried) >= limit:
                    return
        free = [p for p in ports if p not in in_use and p not in tried]
        rng.shuffle(free)
        yield from free[: limit - len(tried)]

    def release(self, port: int) -> None:
        self.in_use.discard(port)


_ALLOCATORS: dict[tuple[int, int], PortAllocator] = {}


def _allocator_for(port_range: tuple[int, int]) -> PortAllocator:
    allocator = _ALLOCATORS.get(port_range)
    if allocator is None:
        allocator = _ALLOCATORS[port_range] = PortAllocator(port_range)
    return allocator


def _ignore(data: bytes, addr: tuple[str, int]) -> None:
    return None


_RECV_SIZE: Final = 2048  # an RTP audio packet is a few hundred bytes; nothing larger fits a path MTU


def _libc_disconnect() -> Callable[[int], int] | None:
    """``connect(fd, AF_UNSPEC)``, which dissolves a UDP socket's association (Linux, BSDs):
    Python's socket module has no way to spell it."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        connect = libc.connect
    except (OSError, AttributeError):
        return None
    unspec = ctypes.create_string_buffer(16)  # a zeroed sockaddr: sa_family 0 = AF_UNSPEC
    return lambda fd: int(connect(fd, unspec, 16))


_disconnect = _libc_disconnect()


class RtpEndpoint:
    """One bound RTP socket, read straight from the event loop (``loop.add_reader``).

    ``on_datagram(data, addr)`` gets every received datagram and may be replaced at any time.
    :meth:`connect` ties the socket to the peer once its address is known (symmetric RTP,
    RFC 4961): the kernel then drops datagrams from anyone else, and sending and receiving
    skip the per-packet address conversion, the largest single cost of relaying a packet
    besides the system calls. :meth:`disconnect` listens to every source again.

    Reading the socket ourselves rather than through a ``DatagramTransport`` saves a read
    that fails with EAGAIN after every packet (RTP arrives one packet per socket per 20 ms)
    and the transport's address handling; it also keeps an exception in the handler from
    closing the transport. An ``OSError`` raised by the handler (the send of a relayed packet
    failed: the peer is gone, or the socket buffer is full) drops that packet, as a network would.
    """

    def __init__(self, sock: socket.socket, local_host: str, local_port: int, allocator: PortAllocator | None) -> None:
        self.local_host = local_host
        self.local_port = local_port
        self._sock: socket.socket | None = sock
        self._fd = sock.fileno()
        self._ipv6 = sock.family == socket.AF_INET6
        self._recv = sock.recv
        self._recvfrom = sock.recvfrom
        self._sendto = sock.sendto
        self._on_datagram: DatagramHandler = _ignore
        self._allocator = allocator
        self._loop: asyncio.AbstractEventLoop | None = None
        self.peer: tuple[str, int] | None = None
        #: Send to the connected peer; raises OSError (use from inside ``on_datagram``, or catch it).
        self.send_to_peer: Callable[[bytes], object] = sock.send
        self.errors = 0

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        loop.add_reader(self._fd, self._readable)

    @property
    def on_datagram(self) -> DatagramHandler:
        return self._on_datagram

    @on_datagram.setter
    def on_datagram(self, handler: DatagramHandler) -> None:
        self._on_datagram = handler

    def _readable(self) -> None:
        # Every received packet of every call starts here: one system call, one handler call.
        peer = self.peer
        try:
            if peer is not None:
                data = self._recv(_RECV_SIZE)
                addr = peer
            else:
                data, source = self._recvfrom(_RECV_SIZE)
                addr = (source[0], source[1]) if self._ipv6 else source
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # an ICMP error for an earlier send (the peer's port is closed)
            self._error("rtp.receive_error", exc)
            return
        try:
            self._on_datagram(data, addr)
        except OSError as exc:
            self._error("rtp.send_error", exc)

    def _error(self, event: str, exc: OSError) -> None:
        self.errors += 1
        # Expected after the peer hung up, and possibly at 50 packets a second: debug only.
        log.debug(event, port=self.local_port, error=str(exc))

    def connect(self, peer: tuple[str, int]) -> None:
        """Receive only from ``peer`` (host, port) and send there by default."""
        sock = self._sock
        if sock is None or peer == self.peer:
            return
        try:
            sock.connect(peer)
        except OSError as exc:
            self._error("rtp.connect_failed", exc)
            return
        self.peer = peer

    def disconnect(self) -> bool:
        """Receive from every source again; False if the system cannot (the socket stays tied)."""
        if self.peer is None or self._sock is None:
            return True
        if _disconnect is None or _disconnect(self._fd) != 0:
            log.warning("rtp.disconnect_failed", port=self.local_port, errno=ctypes.get_errno())
            return False
        self.peer = None
        return True

    def send(self, data: bytes, addr: tuple[str, int]) -> None:
        """Send one datagram to ``addr``; failures are counted and logged at debug level, never raised."""
        try:
            if addr == self.peer:
                self.send_to_peer(data)
            elif self._sock is not None:
                self._sendto(data, addr)
        except OSError as exc:
            self._error("rtp.send_error", exc)

    @property
    def closed(self) -> bool:
        return self._sock is None

    def close(self) -> None:
        sock = self._sock
        if sock is None:
            return
        self._sock = None
        self.peer = None
        self.send_to_peer = _drop
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._fd)
        sock.close()
        if self._allocator is not None:
            self._allocator.release(self.local_port)


def _drop(data: bytes) -> None:
    return None


async def open_rtp_endpoint(
    host: str,
    *,
    port_range: tuple[int, int] = DEFAULT_PORT_RANGE,
    port: int | None = None,
    allocator: PortAllocator | None = None,
    on_datagram: DatagramHandler | None = None,
    max_attempts: int = 64,
) -> RtpEndpoint:
    """Bind an RTP socket on ``host`` (IPv4 or IPv6 literal) at ``port`` or an even port of the range."""
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if port is not None:
        candidates: Iterable[int] = [port]
        allocator = None
    else:
        allocator = allocator or _allocator_for(port_range)
        candidates = allocator.candidates(max_attempts)  # lazy
    last_error: OSError | None = None
    attempts = 0
    for candidate in candidates:
        attempts += 1
        # Bind the socket ourselves: create_datagram_endpoint(local_addr=...) goes through
        # address resolution, which cost more per call than the SIP handling at 500 calls/s.
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.bind((host, candidate))
        except OSError as exc:
            sock.close()
            if exc.errno != errno.EADDRINUSE:
                raise OSError(exc.errno, f"cannot bind RTP socket on {host}:{candidate}: {exc.strerror}") from exc
            last_error = exc
            continue
        endpoint = RtpEndpoint(sock, host, candidate, allocator)
        if on_datagram is not None:
            endpoint.on_datagram = on_datagram
        endpoint._start(loop)
        if allocator is not None:
            allocator.in_use.add(candidate)
        return endpoint
    raise OSError(
        errno.EADDRINUSE,
        f"no free even RTP port on {host} in {port_range[0]}-{port_range[1]} after {attempts} attempts "
        f"({last_error}); widen media.port_range or free ports",
    )
