"""Relaying RTP between two legs (a back-to-back media bridge), with optional recording tap.

Each direction rewrites the header onto the *outgoing* leg's own stream: its SSRC, a
sequence number offset and a timestamp offset fixed per incoming source (RFC 3550 §5.1,
§7.2: a translator that changes SSRC must keep each output stream continuous). When the
source changes (the peer restarts, or the leg is re-bridged to someone else) the offsets
are recomputed from the outgoing leg's clock and the marker bit is set, so phones see one
continuous stream with a new talkspurt rather than a jump. Gaps in the input sequence are
kept, so the far end's loss concealment still sees losses.

Payloads pass untouched when both legs negotiated the same codec; PCMU <-> PCMA is
transcoded with a 256-byte ``bytes.translate`` table. RFC 4733 telephone-events are
relayed with the payload type the outgoing leg negotiated (dropped if it has none).
Comfort noise and unknown payload types are dropped. Pure: the legs do the I/O.
"""

from __future__ import annotations

from typing import Final

from telephony.media.leg import MediaLeg
from telephony.media.tap import Tap
from telephony.rtp.g711 import ALAW_TO_ULAW, ULAW_TO_ALAW
from telephony.rtp.packet import HEADER, RtpError, payload_offset
from telephony.sdp import MediaParams

__all__ = ["Bridge", "BridgeStats"]

_MASK32: Final = 0xFFFFFFFF
_unpack_header: Final = HEADER.unpack_from
_pack_header: Final = HEADER.pack


class _Direction:
    """Rewrite state for packets flowing from ``src`` to ``dst``; :meth:`relay` is ``src``'s RTP handler."""

    __slots__ = (
        "channel",
        "dropped",
        "dst",
        "dst_params",
        "dtmf_in",
        "dtmf_out",
        "in_codec",
        "pt_in",
        "pt_out",
        "relayed",
        "sender",
        "seq_offset",
        "source_ssrc",
        "src",
        "src_params",
        "table",
        "tap",
        "ts_offset",
    )

    def __init__(self, src: MediaLeg, dst: MediaLeg, channel: int, tap: Tap | None) -> None:
        self.src = src
        self.dst = dst
        self.channel = channel
        self.tap = tap
        self.src_params: MediaParams | None = None
        self.dst_params: MediaParams | None = None
        self.pt_in = -1
        self.pt_out = -1
        self.dtmf_in = -1
        self.dtmf_out: int | None = None
        self.in_codec = "PCMU"
        self.table: bytes | None = None
        self.source_ssrc: int | None = None
        self.seq_offset = 0
        self.ts_offset = 0
        self.relayed = 0
        self.dropped = 0
        self.sender = dst.sender

    def configure(self) -> bool:
        """Refresh codec routing from the legs' current params; False if not negotiated yet."""
        sp, dp = self.src.params, self.dst.params
        self.src_params, self.dst_params = sp, dp
        self.sender = self.dst.sender
        if sp is None or dp is None:
            self.pt_in = -1
            return False
        self.pt_in, self.pt_out = sp.payload_type, dp.payload_type
        self.in_codec = sp.codec
        self.dtmf_in = sp.dtmf_pt if sp.dtmf_pt is not None else -1
        self.dtmf_out = dp.dtmf_pt
        if sp.codec == dp.codec:
            self.table = None
        else:
            self.table = ULAW_TO_ALAW if sp.codec == "PCMU" else ALAW_TO_ULAW
        return True

    def relay(self, data: bytes, now: float) -> None:
        """One received packet of ``src``: rewrite it onto ``dst``'s stream and send it.

        The per-packet path of every bridged call: one header unpack, one payload slice shared by
        the tap and the outgoing packet, one pack, no logging and no object besides the datagram.
        """
        if self.src_params is not self.src.params or self.dst_params is not self.dst.params:
            self.configure()
        first, second, seq, ts, ssrc = _unpack_header(data)
        pt = second & 0x7F
        if pt == self.pt_in:
            if first == 0x80:  # no CSRC, extension or padding: the payload follows the fixed header
                payload = data[12:]
            else:
                extracted = _payload(data)
                if extracted is None:
                    self.dropped += 1
                    return
                payload = extracted
            out_pt = self.pt_out
            tap = self.tap
            if tap is not None:
                tap.feed(self.channel, ts, ssrc, payload, self.in_codec, now)
            if self.table is not None:
                payload = payload.translate(self.table)
        elif pt == self.dtmf_in and self.dtmf_out is not None:
            extracted = data[12:] if first == 0x80 else _payload(data)
            if extracted is None:
                self.dropped += 1
                return
            payload = extracted
            out_pt = self.dtmf_out
        else:
            self.dropped += 1
            return
        sender = self.sender
        if ssrc != self.source_ssrc:
            # New source: continue the outgoing stream where it is, as a new talkspurt.
            self.source_ssrc = ssrc
            self.seq_offset = (sender.seq - seq) & 0xFFFF
            self.ts_offset = (sender.timestamp_at(now) - ts) & _MASK32
            marker = 0x80
        else:
            marker = second & 0x80
        out_seq = (seq + self.seq_offset) & 0xFFFF
        out_ts = (ts + self.ts_offset) & _MASK32
        if ((out_seq - sender.seq) & 0xFFFF) < 0x8000:
            sender.seq = (out_seq + 1) & 0xFFFF
        sender.last_ts = out_ts
        sender.last_time = now
        sender.packets += 1
        sender.octets += len(payload)
        self.relayed += 1
        self.dst.rtp_out(_pack_header(0x80, out_pt | marker, out_seq, out_ts, sender.ssrc) + payload)


def _payload(data: bytes) -> bytes | None:
    """The payload of a packet with CSRCs, a header extension or padding; None if malformed."""
    try:
        start = payload_offset(data)
    except RtpError:
        return None
    end = len(data) - data[-1] if data[0] & 0x20 else len(data)
    return data[start:end]


class BridgeStats(dict[str, int]):
    """Per-direction relayed/dropped packet counts (``a_to_b_relayed`` ...)."""


class Bridge:
    """Joins legs ``a`` and ``b``; ``a`` is the tap's left channel (customer), ``b`` the right."""

    def __init__(self, a: MediaLeg, b: MediaLeg, *, tap: Tap | None = None) -> None:
        self.a = a
        self.b = b
        self._ab = _Direction(a, b, 0, tap)
        self._ba = _Direction(b, a, 1, tap)
        self.active = False
        self.start()

    @property
    def tap(self) -> Tap | None:
        return self._ab.tap

    @tap.setter
    def tap(self, tap: Tap | None) -> None:
        self._ab.tap = self._ba.tap = tap

    def start(self) -> None:
        """Take over both legs' received RTP (again, after :meth:`stop`)."""
        self._ab.source_ssrc = self._ba.source_ssrc = None  # a fresh talkspurt on each side
        self._ab.configure()
        self._ba.configure()
        self.a.set_rtp_handler(self._ab.relay)
        self.b.set_rtp_handler(self._ba.relay)
        self.active = True

    def stop(self) -> None:
        """Give both legs back their own processing; safe to call twice."""
        if self.active:
            self.a.set_rtp_handler(None)
            self.b.set_rtp_handler(None)
            self.active = False

    def attach_tap(self, tap: Tap | None) -> None:
        self.tap = tap

    def stats(self) -> BridgeStats:
        return BridgeStats(
            a_to_b_relayed=self._ab.relayed,
            a_to_b_dropped=self._ab.dropped,
            b_to_a_relayed=self._ba.relayed,
            b_to_a_dropped=self._ba.dropped,
        )
