"""asyncio UDP endpoint for RTP: bind an even port from a range, receive callback, send, close.

RFC 3550 §11 wants RTP on an even port (RTCP on the next odd one, which we do not use).
:class:`PortAllocator` hands out even ports of a configurable range in a shuffled order and
remembers which this process holds, and :func:`open_rtp_endpoint` retries on EADDRINUSE
so other programs on the host do not make a call fail. Works on IPv4 and IPv6; with uvloop
as the event loop in production, with plain asyncio in tests.
"""

from __future__ import annotations

import asyncio
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


class _RtpProtocol(asyncio.DatagramProtocol):
    def __init__(self, endpoint: RtpEndpoint) -> None:
        self.endpoint = endpoint
        self.bind(endpoint.on_datagram, ipv6=":" in endpoint.local_host)

    def bind(self, handler: DatagramHandler, *, ipv6: bool) -> None:
        # The event loop looks datagram_received up on the instance for every packet, so an
        # IPv4 socket calls the handler directly: one Python frame less per packet.
        if ipv6:
            self.datagram_received = lambda data, addr: handler(data, (addr[0], addr[1]))  # type: ignore[method-assign]
        else:
            self.datagram_received = handler  # type: ignore[method-assign,assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # replaced by bind()
        self.endpoint.on_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable after the peer hung up: expected, not worth more than debug.
        log.debug("rtp.icmp_error", port=self.endpoint.local_port, error=str(exc))


def _ignore(data: bytes, addr: tuple[str, int]) -> None:
    return None


class RtpEndpoint:
    """One bound RTP socket. ``on_datagram`` may be replaced at any time."""

    def __init__(self, local_host: str, local_port: int, allocator: PortAllocator | None) -> None:
        self.local_host = local_host
        self.local_port = local_port
        self._on_datagram: DatagramHandler = _ignore
        self._allocator = allocator
        self._transport: asyncio.DatagramTransport | None = None
        self._protocol: _RtpProtocol | None = None
        self._sendto: Callable[[bytes, tuple[str, int]], None] | None = None

    @property
    def on_datagram(self) -> DatagramHandler:
        return self._on_datagram

    @on_datagram.setter
    def on_datagram(self, handler: DatagramHandler) -> None:
        self._on_datagram = handler
        if self._protocol is not None:
            self._protocol.bind(handler, ipv6=":" in self.local_host)

    def send(self, data: bytes, addr: tuple[str, int]) -> None:
        sendto = self._sendto
        if sendto is not None:
            sendto(data, addr)

    @property
    def closed(self) -> bool:
        return self._transport is None

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
            self._sendto = None
            if self._allocator is not None:
                self._allocator.release(self.local_port)


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
        endpoint = RtpEndpoint(host, candidate, allocator)
        if on_datagram is not None:
            endpoint.on_datagram = on_datagram
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
        transport, protocol = await loop.create_datagram_endpoint(
            lambda endpoint=endpoint: _RtpProtocol(endpoint),  # type: ignore[misc]
            sock=sock,
        )
        endpoint._transport = transport
        endpoint._sendto = transport.sendto
        endpoint._protocol = protocol
        if allocator is not None:
            allocator.in_use.add(candidate)
        return endpoint
    raise OSError(
        errno.EADDRINUSE,
        f"no free even RTP port on {host} in {port_range[0]}-{port_range[1]} after {attempts} attempts "
        f"({last_error}); widen media.port_range or free ports",
    )
