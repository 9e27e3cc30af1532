"""DTMF as RTP telephone-events (RFC 4733 §2.3, events 0-16 of §3.2).

The payload is 4 bytes: event, E(nd) bit + R + volume, duration in timestamp units.
A sender repeats packets while a key is held and sends the final (E=1) packet three times
(§2.5.1.4), all carrying the RTP timestamp of the event's start; so :class:`DtmfReceiver`
keys events on that timestamp and reports each key press exactly once, as soon as its
first packet arrives (an IVR should not wait for key release). :class:`DtmfSender` plans
the packet sequence for a digit string: marker on the first packet of each event (§2.5.1.2),
one update per packet interval with growing duration, three end packets.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass
from typing import Final

__all__ = [
    "DTMF_EVENTS",
    "DtmfError",
    "DtmfPacket",
    "DtmfReceiver",
    "DtmfSender",
    "TelephoneEvent",
    "digit_to_event",
    "event_to_digit",
]

_PAYLOAD: Final = struct.Struct("!BBH")
#: Event codes of RFC 4733 §3.2: 0-9, * (10), # (11), A-D (12-15), flash (16, shown as "!").
DTMF_EVENTS: Final = "0123456789*#ABCD!"
_EVENT_OF: Final[dict[str, int]] = {c: i for i, c in enumerate(DTMF_EVENTS)}
END_RETRANSMISSIONS: Final = 3


class DtmfError(ValueError):
    """A bad telephone-event payload or digit."""


def digit_to_event(digit: str) -> int:
    event = _EVENT_OF.get(digit.upper())
    if event is None:
        raise DtmfError(f"{digit!r} is not a DTMF digit; use 0-9, *, #, A-D (or ! for flash)")
    return event


def event_to_digit(event: int) -> str:
    if not 0 <= event < len(DTMF_EVENTS):
        raise DtmfError(f"telephone-event {event} is not a DTMF event (0-16)")
    return DTMF_EVENTS[event]


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """One telephone-event payload (RFC 4733 §2.3)."""

    event: int
    end: bool = False
    volume: int = 10  # -dBm0, 0-63
    duration: int = 0  # in RTP timestamp units

    def __post_init__(self) -> None:
        if not 0 <= self.event <= 255:
            raise DtmfError(f"event code {self.event} is outside 0-255")
        if not 0 <= self.volume <= 63:
            raise DtmfError(f"volume {self.volume} is outside 0-63 (-dBm0)")
        if not 0 <= self.duration <= 0xFFFF:
            raise DtmfError(f"duration {self.duration} is outside 0-65535 timestamp units")

    @classmethod
    def parse(cls, payload: bytes) -> TelephoneEvent:
        if len(payload) < 4:
            raise DtmfError(f"telephone-event payload of {len(payload)} bytes; RFC 4733 §2.3 needs 4")
        event, flags, duration = _PAYLOAD.unpack_from(payload)
        return cls(event=event, end=bool(flags & 0x80), volume=flags & 0x3F, duration=duration)

    def to_bytes(self) -> bytes:
        return _PAYLOAD.pack(self.event, (0x80 if self.end else 0) | self.volume, self.duration)

    @property
    def digit(self) -> str:
        return event_to_digit(self.event)


class DtmfReceiver:
    """Turns a stream of telephone-event packets into digits, each reported once.

    Feed every packet of the negotiated telephone-event payload type. A new RTP timestamp
    starts a new event; repeats and the three end packets of that timestamp are ignored.
    The one exception is a long-duration event (§2.5.1.5) whose next segment carries a
    new timestamp equal to the previous one plus its duration: that is still the same
    key press.
    """

    def __init__(self, *, memory: int = 16) -> None:
        self._seen: deque[int] = deque(maxlen=memory)
        self._last: tuple[int, int, int, bool] | None = None  # (timestamp, event, duration, ended)

    def feed(self, timestamp: int, payload: bytes) -> str | None:
        """The digit if this packet starts a new key press, else None."""
        event = TelephoneEvent.parse(payload)
        if event.event >= len(DTMF_EVENTS):
            return None  # tones/other events of RFC 4734 are not digits
        last = self._last
        if last is not None and last[0] == timestamp:
            self._last = (timestamp, event.event, max(last[2], event.duration), last[3] or event.end)
            return None
        if timestamp in self._seen:
            return None
        self._seen.append(timestamp)
        continuation = (
            last is not None
            and not last[3]
            and last[1] == event.event
            and (last[0] + last[2]) & 0xFFFFFFFF == timestamp
            and last[2] >= 0xFFFF - 1600
        )
        self._last = (timestamp, event.event, event.duration, event.end)
        return None if continuation else event.digit


@dataclass(frozen=True, slots=True)
class DtmfPacket:
    """One packet to send ``at`` seconds after the first, with this RTP timestamp offset.

    Packet k of an event covers the k-th packet interval and reports the duration up to
    its end; ``timestamp_offset`` is the event's start in samples after the first event.
    """

    at: float
    timestamp_offset: int  # samples after the first event's timestamp
    marker: bool
    payload: bytes


class DtmfSender:
    """Plans the RFC 4733 packet sequence for a digit string (pure; the caller paces it)."""

    def __init__(self, *, clock_rate: int = 8000, packet_ms: int = 20, volume: int = 10) -> None:
        if packet_ms <= 0:
            raise DtmfError(f"packet interval must be positive, got {packet_ms} ms")
        self.clock_rate = clock_rate
        self.packet_ms = packet_ms
        self.volume = volume

    def plan(self, digits: str, *, duration_ms: int = 100, gap_ms: int = 100) -> list[DtmfPacket]:
        if not 40 <= duration_ms <= 5000:
            raise DtmfError(f"DTMF duration {duration_ms} ms is outside 40-5000 ms")
        if gap_ms < 0:
            raise DtmfError(f"gap between digits must not be negative, got {gap_ms} ms")
        events = [digit_to_event(d) for d in digits]
        step = self.clock_rate * self.packet_ms // 1000
        full = self.clock_rate * duration_ms // 1000
        packets: list[DtmfPacket] = []
        start_ms = 0
        for event in events:
            ts_offset = start_ms * self.clock_rate // 1000
            updates = max(1, -(-full // step))
            for k in range(updates):
                duration = min((k + 1) * step, full)
                last = k == updates - 1
                payload = TelephoneEvent(event, end=last, volume=self.volume, duration=duration).to_bytes()
                at = (start_ms + k * self.packet_ms) / 1000
                # The end packet goes out three times, one interval apart, to survive a burst loss.
                for r in range(END_RETRANSMISSIONS if last else 1):
                    packets.append(
                        DtmfPacket(
                            at=at + r * self.packet_ms / 1000,
                            timestamp_offset=ts_offset,
                            marker=k == 0 and r == 0,
                            payload=payload,
                        )
                    )
            start_ms += duration_ms + gap_ms
        return packets
