"""Pure RTP stream state for one leg (RFC 3550 §5.1, §6.4.1 and appendix A.1/A.3).

:class:`RtpSender` owns what goes out: a random SSRC, sequence numbers and a timestamp
timeline that stays continuous across talkspurts, sources and re-bridges (§5.1: the
timestamp advances with wall-clock time, the sequence by one per packet).

:class:`RtpReceiver` owns what comes in: extended sequence numbers and loss (A.3), the time
of the last packet for the media timeout, and symmetric RTP latching. The SDP address is
only a first guess behind NAT; like "comedia" and RFC 4961 we send to where the peer's
RTP really comes from. After latching, packets from any other address are dropped, unless
the latched source has been silent for ``relatch_after`` seconds (a NAT rebinding).
Nothing here reads a clock: every call takes ``now`` in seconds.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass
from typing import Final

from telephony.rtp.packet import HEADER

__all__ = ["DEFAULT_MEDIA_TIMEOUT", "ReceiveStats", "RtpReceiver", "RtpSender"]

DEFAULT_MEDIA_TIMEOUT: Final = 30.0
_MAX_DROPOUT: Final = 3000  # RFC 3550 A.1 MAX_DROPOUT
_V2: Final = 0x80
# First byte, sequence number and SSRC of the fixed header.
_FIRST_SEQ_SSRC: Final = struct.Struct("!BxH4xI").unpack_from

Address = tuple[str, int]


class RtpSender:
    """Header state of one outgoing RTP stream; ``packet`` builds the next datagram."""

    __slots__ = ("clock_rate", "last_time", "last_ts", "octets", "packets", "seq", "ssrc")

    def __init__(
        self,
        *,
        ssrc: int | None = None,
        seq: int | None = None,
        timestamp: int | None = None,
        clock_rate: int = 8000,
        rng: random.Random | None = None,
    ) -> None:
        rng = rng or random.Random()
        self.ssrc: int = rng.getrandbits(32) if ssrc is None else ssrc
        self.seq: int = rng.getrandbits(16) if seq is None else seq
        self.last_ts: int = rng.getrandbits(32) if timestamp is None else timestamp
        self.last_time: float | None = None
        self.clock_rate = clock_rate
        self.packets = 0
        self.octets = 0

    def timestamp_at(self, now: float) -> int:
        """The timestamp for a packet sent at ``now``: the last one plus elapsed time (§5.1)."""
        if self.last_time is None:
            return self.last_ts
        elapsed = round((now - self.last_time) * self.clock_rate)
        return (self.last_ts + max(elapsed, 0)) & 0xFFFFFFFF

    def packet(self, payload_type: int, payload: bytes, timestamp: int, now: float, *, marker: bool = False) -> bytes:
        """Next datagram of this stream, stamped with our SSRC and the next sequence number."""
        seq = self.seq
        self.seq = (seq + 1) & 0xFFFF
        self.last_ts = timestamp
        self.last_time = now
        self.packets += 1
        self.octets += len(payload)
        return HEADER.pack(_V2, payload_type | 0x80 if marker else payload_type, seq, timestamp, self.ssrc) + payload


@dataclass(frozen=True, slots=True)
class ReceiveStats:
    """Receive-side figures of RFC 3550 A.3 plus our latching counters."""

    packets: int
    expected: int
    lost: int
    foreign_dropped: int
    last_rx: float | None
    ssrc: int | None


class RtpReceiver:
    """Latching, loss accounting and the media timeout for one incoming stream."""

    __slots__ = (
        "_base",
        "_cycles",
        "_expected_before",
        "_max_seq",
        "_started",
        "expect_media",
        "foreign",
        "last_rx",
        "latched",
        "media_timeout",
        "packets",
        "relatch_after",
        "signalled",
        "ssrc",
    )

    def __init__(self, *, media_timeout: float = DEFAULT_MEDIA_TIMEOUT, relatch_after: float = 2.0) -> None:
        if media_timeout <= 0:
            raise ValueError(f"media timeout must be positive seconds, got {media_timeout}")
        self.media_timeout = media_timeout
        self.relatch_after = relatch_after
        self.signalled: Address | None = None
        self.latched: Address | None = None
        self.expect_media = False
        self.last_rx: float | None = None
        self._started = 0.0
        self.ssrc: int | None = None
        self.packets = 0
        self.foreign = 0
        self._max_seq = 0
        self._cycles = 0
        self._base = 0
        self._expected_before = 0

    def start(self, now: float, remote: Address | None, *, expect_media: bool = True) -> None:
        """(Re)arm after an offer/answer. A new remote address in the SDP drops the latch."""
        if remote != self.signalled:
            self.latched = None
            self.last_rx = None
        self.signalled = remote
        self.expect_media = expect_media
        self._started = now

    @property
    def destination(self) -> Address | None:
        """Where to send: the latched source, else the address from the SDP."""
        return self.latched or self.signalled

    def on_packet(self, addr: Address, data: bytes, now: float) -> bool:
        """Account for a datagram from ``addr``; False means drop it (foreign source or not RTP v2)."""
        # Runs for every received packet: one unpack, no calls on the in-order path.
        try:
            first, seq, ssrc = _FIRST_SEQ_SSRC(data)
        except struct.error:  # shorter than the fixed header
            return False
        if first & 0xC0 != 0x80:
            return False
        if addr != self.latched and not self._latch(addr, now):
            return False
        self.last_rx = now
        if ssrc != self.ssrc or not self.packets:
            self._resync(seq, ssrc)
        else:
            delta = ((seq - self._max_seq + 0x8000) & 0xFFFF) - 0x8000  # seq_delta(), inlined
            if 0 < delta <= _MAX_DROPOUT:
                if seq < self._max_seq:
                    self._cycles += 0x10000
                self._max_seq = seq
            elif delta > _MAX_DROPOUT or delta < -_MAX_DROPOUT:
                self._resync(seq, ssrc)
        self.packets += 1
        return True

    def _latch(self, addr: Address, now: float) -> bool:
        """A packet from an address other than the latched one: latch onto it, or count it as foreign."""
        if self.latched is not None and self.last_rx is not None and now - self.last_rx < self.relatch_after:
            self.foreign += 1
            return False
        self.latched = addr
        return True

    def _resync(self, seq: int, ssrc: int) -> None:
        # A new or restarted source opens a fresh segment; what it expected before is kept.
        if self.packets:
            self._expected_before += self._cycles + self._max_seq - self._base + 1
        self.ssrc = ssrc
        self._cycles = 0
        self._max_seq = seq
        self._base = seq

    @property
    def expected(self) -> int:
        if self.packets == 0:
            return 0
        return self._expected_before + self._cycles + self._max_seq - self._base + 1

    def stats(self) -> ReceiveStats:
        expected = self.expected
        return ReceiveStats(
            packets=self.packets,
            expected=expected,
            lost=max(expected - self.packets, 0),
            foreign_dropped=self.foreign,
            last_rx=self.last_rx,
            ssrc=self.ssrc,
        )

    def timed_out(self, now: float) -> bool:
        """True when media is expected and none arrived for ``media_timeout`` seconds."""
        if not self.expect_media:
            return False
        since = self._started if self.last_rx is None else max(self.last_rx, self._started)
        return now - since >= self.media_timeout
