"""A small fixed-depth jitter buffer: reorder by sequence number, drop duplicates and late packets.

Like aiortc's ``jitterbuffer.py`` it is pure (no clock, no I/O) and keyed on the 16-bit RTP
sequence number with wrap-around arithmetic (RFC 3550 A.1). It holds at most ``depth``
packets while waiting for a missing one; when it is full the hole is declared lost and
playout skips ahead. A jump of more than ``max_jump`` either way is taken as a restarted
source (a new SSRC or a re-INVITE) and resynchronises instead of discarding everything.

Where reordering happens in the live receive path (so this class is deliberately *not*
in it): received RTP enters ``MediaSession._on_datagram`` (telephony/aio/media_session.py),
which accounts for it (``RtpReceiver``) and reports RFC 4733 events, then hands it on,
unreordered, to exactly one of:

- a :class:`~telephony.media.bridge.Bridge` (a packet relay; the far phone's own jitter
  buffer reorders, and holding packets here would only add delay);
- a :class:`~telephony.media.conference.Conference` (listen/whisper/barge), whose
  per-participant buffer ``_Party.put`` writes each payload at its RTP timestamp, so a
  reordered packet lands in its place and a lost one stays silence;
- echo (a relay again, with the timestamps kept) and every
  :class:`~telephony.media.tap.Tap` -- recording (``record_to``, recordings/), answering
  machine detection and supervision -- which also places each payload at its RTP
  timestamp and emits PCM only ``delay`` behind arrival (200 ms by default, 60 ms for
  AMD in dialer/runner.py), so packets reordered within that window come out in sender
  order (tests/unit/test_telephony_reorder.py).

DTMF needs no reordering: ``DtmfReceiver`` keys events on their RTP timestamp. Both
timestamp-indexed buffers also absorb duplicates, which a sequence-number buffer in front
of them would only delay. This buffer remains for a consumer that needs whole packets in
sequence order (e.g. a per-packet decoder feeding a codec with state).
"""

from __future__ import annotations

from typing import Final, Generic, TypeVar

from telephony.rtp.packet import seq_delta

__all__ = ["JitterBuffer"]

T = TypeVar("T")
_MAX_JUMP: Final = 1000


class JitterBuffer(Generic[T]):
    """Reorders items by RTP sequence number; ``push`` returns what may be played now."""

    def __init__(self, depth: int = 3, *, max_jump: int = _MAX_JUMP) -> None:
        if depth < 1:
            raise ValueError(f"jitter buffer depth must be at least 1 packet, got {depth}")
        self.depth = depth
        self.max_jump = max_jump
        self._next: int | None = None
        self._pending: dict[int, T] = {}
        self.lost = 0
        self.late = 0
        self.duplicates = 0

    def __len__(self) -> int:
        return len(self._pending)

    def push(self, seq: int, item: T) -> list[T]:
        """Add a packet; returns the items now playable, in sequence order."""
        seq &= 0xFFFF
        out: list[T] = []
        if self._next is None:
            self._next = seq
        delta = seq_delta(seq, self._next)
        if delta < -self.max_jump or delta > self.max_jump:
            out.extend(self.flush())
            self._next = seq
        elif delta < 0:
            self.late += 1
            return out
        if seq in self._pending:
            self.duplicates += 1
            return out
        self._pending[seq] = item
        self._release(out)
        return out

    def _release(self, out: list[T]) -> None:
        assert self._next is not None
        pending = self._pending
        while True:
            nxt = self._next
            while nxt in pending:
                out.append(pending.pop(nxt))
                nxt = (nxt + 1) & 0xFFFF
            self._next = nxt
            if len(pending) < self.depth:
                return
            # Full while waiting for a hole: give up on it and skip to the oldest held packet.
            oldest = min(pending, key=lambda s: seq_delta(s, nxt))
            self.lost += seq_delta(oldest, nxt)
            self._next = oldest

    def flush(self) -> list[T]:
        """Everything still held, in order (end of stream or resynchronisation)."""
        if self._next is None or not self._pending:
            return []
        start = self._next
        order = sorted(self._pending, key=lambda s: seq_delta(s, start))
        items = [self._pending[s] for s in order]
        self._next = (order[-1] + 1) & 0xFFFF
        self._pending.clear()
        return items
