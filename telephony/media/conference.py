"""The three-party mixing path for live supervision (listen, whisper, barge).

When a supervisor joins a bridged call, :class:`Conference` takes over the three legs'
received RTP from the plain :class:`~telephony.media.bridge.Bridge`. Each participant's
G.711 audio goes into its own small jitter buffer, indexed by the packet's RTP timestamp
(RFC 3550 §5.1), so a lost packet becomes silence at its place and a reordered one still
lands where it belongs. Every 20 ms one timer per conference, armed with ``call_at`` at
``start + n * 0.02`` so it never drifts, takes one 160-sample frame from each buffer, decodes
all three with one table lookup, mixes every listener at once with the
:func:`~telephony.media.mixer.gain_matrix` of the current mode (one 3x3 matrix product,
saturated to int16), encodes and sends one packet per leg. Each outgoing stream keeps the
leg's SSRC and sequence numbers and a timestamp that advances exactly 160 per frame, so a
mode switch changes nothing a phone can see but the audio; the switch itself is a 20 ms
linear cross-fade, so a voice joining or leaving the mix does not click.

RFC 4733 telephone-events are not audio: the leg (``MediaSession``) reports them to its DTMF
receiver before the handler runs, and the conference relays the customer's and the agent's
events to each other (stamped onto the outgoing stream at the frame then due), as the bridge
did. The supervisor's digits are control, not relayed. Pure except for the injected
``clock`` (an asyncio event loop in production, a fake one in tests).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Protocol

import numpy as np
import structlog

from telephony.media.leg import MediaLeg
from telephony.media.mixer import PARTICIPANTS, Participant, SupervisionMode, gain_matrix
from telephony.media.tap import LEFT, RIGHT, Tap
from telephony.rtp.g711 import ALAW_DECODE, ALAW_ENCODE, SILENCE_BYTE, ULAW_DECODE, ULAW_ENCODE
from telephony.rtp.packet import HEADER, RtpError, payload_offset
from telephony.sdp import MediaParams

__all__ = ["FRAME_SAMPLES", "FRAME_SECONDS", "Clock", "Conference", "TimerHandle"]

log = structlog.get_logger(__name__)

FRAME_SAMPLES: Final = 160
FRAME_SECONDS: Final = 0.02
_MASK32: Final = 0xFFFFFFFF
#: Silence put ahead of a freshly synchronised source: it absorbs 20-40 ms of jitter.
_MARGIN: Final = FRAME_SAMPLES
#: More than this queued means a sender runs fast or arrived in a burst: trim to _TARGET.
_MAX_DEPTH: Final = 8 * FRAME_SAMPLES
_TARGET: Final = 2 * FRAME_SAMPLES
#: A queue that stays above _TARGET this many frames gives back one frame of latency.
_SHRINK_AFTER: Final = 50
#: A timestamp jump beyond this (1 s) is a restarted source, not loss: resynchronise.
_MAX_GAP: Final = 8000
#: After a stalled loop, at most this many late frames go out at once; older ones are skipped.
_MAX_BURST: Final = 5

# Decode/encode tables of both codecs stacked, so one fancy-index converts three legs
# whatever codec each negotiated: decode index = code + 256 * is_alaw. The encode tables are
# indexed by the *unclipped* mix (sample + _SPAN, rounded), their ends saturated: a listener
# hears at most _MAX_SOURCES others, so no separate clip pass is needed.
_DECODE2: Final = np.concatenate([ULAW_DECODE, ALAW_DECODE]).astype(np.float32)
_MAX_SOURCES: Final = int(max(gain_matrix(mode).sum(axis=1).max() for mode in SupervisionMode))
_SPAN: Final = 32768 * max(_MAX_SOURCES, 1)
_SATURATED: Final = np.clip(np.arange(-_SPAN, _SPAN + 1), -32768, 32767).astype(np.int16).view(np.uint16)
_ENCODE_WIDE: Final = np.concatenate([ULAW_ENCODE[_SATURATED], ALAW_ENCODE[_SATURATED]])
_WIDE_ROW: Final = 2 * _SPAN + 1
_CODEC_ROW: Final = {"PCMU": 0, "PCMA": 1}
_SILENCE: Final = {codec: bytes([code]) * _MAX_GAP for codec, code in SILENCE_BYTE.items()}
_RAMP: Final = (np.arange(1, FRAME_SAMPLES + 1, dtype=np.float32) / FRAME_SAMPLES)[np.newaxis, :]


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """What the conference needs of an event loop: its clock and ``call_at``."""

    def time(self) -> float: ...

    def call_at(self, when: float, callback: Callable[[], object]) -> TimerHandle: ...


class _Party:
    """One participant: its leg, its jitter buffer and its outgoing stream position."""

    __slots__ = (
        "buf",
        "codec",
        "dtmf_in",
        "dtmf_out",
        "event_ts_in",
        "event_ts_out",
        "full_frames",
        "late",
        "leg",
        "marker",
        "name",
        "out_ts",
        "params",
        "pt_in",
        "pt_out",
        "read_ts",
        "received",
        "resyncs",
        "row",
        "silence",
        "silent_frame",
        "ssrc",
        "trimmed",
        "underruns",
    )

    def __init__(self, name: Participant, leg: MediaLeg) -> None:
        self.name = name
        self.leg = leg
        self.params: MediaParams | None = None
        self.pt_in = -1
        self.pt_out = -1
        self.dtmf_in = -1
        self.dtmf_out: int | None = None
        self.codec = "PCMU"
        self.row = 0
        self.silence = _SILENCE["PCMU"]
        self.silent_frame = self.silence[:FRAME_SAMPLES]
        # receive side: buf holds the codes from RTP timestamp read_ts on (sender's clock)
        self.ssrc: int | None = None
        self.read_ts = 0
        self.buf = bytearray()
        self.full_frames = 0
        self.event_ts_in: int | None = None
        self.event_ts_out = 0
        # send side
        self.out_ts = 0
        self.marker = True
        self.received = self.late = self.underruns = self.resyncs = self.trimmed = 0

    def configure(self) -> None:
        params = self.leg.params
        self.params = params
        if params is None:
            self.pt_in = self.dtmf_in = -1
            return
        self.pt_in = self.pt_out = params.payload_type
        self.dtmf_in = params.dtmf_pt if params.dtmf_pt is not None else -1
        self.dtmf_out = params.dtmf_pt
        if params.codec != self.codec:
            # Queued codes are in the old codec; a re-INVITE that changes codec starts afresh.
            self.buf.clear()
            self.ssrc = None
        self.codec = params.codec
        self.row = _CODEC_ROW[params.codec]
        self.silence = _SILENCE[params.codec]
        self.silent_frame = self.silence[:FRAME_SAMPLES]

    # -- receive ---------------------------------------------------------------------------

    def put(self, ts: int, ssrc: int, payload: bytes) -> None:
        """Place one payload at its timestamp in the jitter buffer."""
        self.received += 1
        buf = self.buf
        if ssrc != self.ssrc:
            self._sync(ts, ssrc, payload)
            return
        off = ((ts - self.read_ts + 0x80000000) & _MASK32) - 0x80000000
        n = len(buf)
        if off == n:  # the usual case: the next packet in order
            buf += payload
        elif off > n:
            if off > _MAX_GAP:
                self._sync(ts, ssrc, payload)
                return
            buf += self.silence[: off - n]  # lost packets become silence at their place
            buf += payload
        elif off >= 0:  # reordered into a gap, or a duplicate: overwrite in place
            end = min(off + len(payload), n)
            buf[off:end] = payload[: end - off]
            buf += payload[end - off :]
        elif n == 0 or off < -_MAX_GAP:
            # Later than its frame and nothing queued: the source fell behind our read
            # position (a delay spike or a slower clock). Follow it with fresh margin.
            self._sync(ts, ssrc, payload)
            return
        else:
            # Partly or wholly older than the read position: keep only what is still to come.
            self.late += 1
            tail = payload[-off:]
            if not tail:
                return
            end = min(len(tail), n)
            buf[:end] = tail[:end]
            buf += tail[end:]
        if len(buf) > _MAX_DEPTH:
            self._trim(len(buf) - _TARGET)

    def _sync(self, ts: int, ssrc: int, payload: bytes) -> None:
        self.ssrc = ssrc
        self.resyncs += 1
        self.read_ts = (ts - _MARGIN) & _MASK32
        self.buf[:] = self.silence[:_MARGIN]
        self.buf += payload
        self.full_frames = 0

    def _trim(self, samples: int) -> None:
        del self.buf[:samples]
        self.read_ts = (self.read_ts + samples) & _MASK32
        self.trimmed += samples

    def pop(self) -> bytes | None:
        """The codes of the next 20 ms, or None for silence (nothing received in time)."""
        if self.ssrc is None:
            return None
        self.read_ts = (self.read_ts + FRAME_SAMPLES) & _MASK32
        buf = self.buf
        n = len(buf)
        if n >= FRAME_SAMPLES:
            frame = bytes(buf[:FRAME_SAMPLES])
            del buf[:FRAME_SAMPLES]
            if n - FRAME_SAMPLES > _TARGET:
                # Steadily more queued than the margin needs: the extra is latency, drop a frame.
                self.full_frames += 1
                if self.full_frames >= _SHRINK_AFTER:
                    self.full_frames = 0
                    self._trim(FRAME_SAMPLES)
            else:
                self.full_frames = 0
            return frame
        self.underruns += 1
        self.full_frames = 0
        if n == 0:
            return None
        frame = bytes(buf) + self.silence[: FRAME_SAMPLES - n]
        buf.clear()
        return frame


class Conference:
    """Mixes ``customer``, ``agent`` and ``supervisor`` legs per :data:`~telephony.media.mixer.HEARS`.

    Create, then :meth:`start` (after stopping the legs' bridge); :meth:`set_mode` at any
    time; :meth:`stop` gives the legs back (restart the bridge after it). ``tap`` (the
    call's recording) gets what the customer says on the left and what the customer hears
    on the right, so a barge is recorded and a whisper is not.
    """

    def __init__(
        self,
        customer: MediaLeg,
        agent: MediaLeg,
        supervisor: MediaLeg,
        *,
        mode: SupervisionMode | str = SupervisionMode.LISTEN,
        clock: Clock | None = None,
        tap: Tap | None = None,
        relay_dtmf: bool = True,
    ) -> None:
        legs = (customer, agent, supervisor)
        if len({id(leg) for leg in legs}) != 3:
            raise ValueError("a conference needs three different legs: customer, agent and supervisor")
        self._mode = _as_mode(mode)
        self._gains = gain_matrix(self._mode)
        self._last_gains = self._gains
        if clock is None:
            import asyncio

            clock = asyncio.get_running_loop()
        self._clock = clock
        self.tap = tap
        self.relay_dtmf = relay_dtmf
        self._parties = tuple(_Party(name, leg) for name, leg in zip(PARTICIPANTS, legs, strict=True))
        self.customer, self.agent, self.supervisor = self._parties
        self._handlers = (self._from_customer, self._from_agent, self._from_supervisor)
        self._codec_rows = (-1, -1, -1)
        self._decode_offset = np.zeros((3, 1), dtype=np.intp)
        self._encode_offset = np.zeros((3, 1), dtype=np.float32)
        self._timer: TimerHandle | None = None
        self._start = 0.0
        self._n = 0  # index of the next frame to produce
        self.frames = 0
        self.skipped = 0
        self.active = False

    @property
    def mode(self) -> SupervisionMode:
        return self._mode

    def start(self) -> None:
        """Take over the three legs' received RTP and start the 20 ms frame clock."""
        if self.active:
            return
        now = self._clock.time()
        for party, handler in zip(self._parties, self._handlers, strict=True):
            party.configure()
            party.ssrc = None
            party.buf.clear()
            party.event_ts_in = None
            party.marker = True
            # Continue each leg's outgoing timeline where the bridge (or silence) left it.
            party.out_ts = party.leg.sender.timestamp_at(now)
            party.leg.set_rtp_handler(handler)
        self._start = now
        self._n = 0
        self.active = True
        self._arm()
        log.debug("conference.start", mode=self._mode.value)

    def stop(self) -> None:
        """Stop mixing and release the legs; safe to call twice."""
        if not self.active:
            return
        self.active = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for party in self._parties:
            party.leg.set_rtp_handler(None)
        log.debug("conference.stop", **self.stats())

    def set_mode(self, mode: SupervisionMode | str) -> None:
        """Switch who hears whom from the next frame on (cross-faded over that frame)."""
        new = _as_mode(mode)
        if new is not self._mode:
            self._mode = new
            self._gains = gain_matrix(new)

    def stats(self) -> dict[str, int]:
        out: dict[str, int] = {"frames": self.frames, "skipped": self.skipped}
        for p in self._parties:
            out[f"{p.name}_received"] = p.received
            out[f"{p.name}_underruns"] = p.underruns
            out[f"{p.name}_late"] = p.late
            out[f"{p.name}_resyncs"] = p.resyncs
            out[f"{p.name}_trimmed"] = p.trimmed
        return out

    # -- receive path ------------------------------------------------------------------------

    def _from_customer(self, data: bytes, now: float) -> None:
        self._receive(self.customer, data, now)

    def _from_agent(self, data: bytes, now: float) -> None:
        self._receive(self.agent, data, now)

    def _from_supervisor(self, data: bytes, now: float) -> None:
        self._receive(self.supervisor, data, now)

    def _receive(self, p: _Party, data: bytes, now: float) -> None:
        if p.leg.params is not p.params:
            p.configure()
        first, second, _, ts, ssrc = HEADER.unpack_from(data)
        pt = second & 0x7F
        if pt != p.pt_in:
            if pt == p.dtmf_in and self.relay_dtmf:
                self._relay_event(p, data, second, ts)
            return
        if first == 0x80:
            payload = data[12:]
        else:
            payload_ = _payload(data)
            if payload_ is None:
                return
            payload = payload_
        if p is self.customer and self.tap is not None:
            self.tap.feed(LEFT, ts, ssrc, payload, p.codec, now)
        p.put(ts, ssrc, payload)

    def _relay_event(self, src: _Party, data: bytes, second: int, ts: int) -> None:
        if src is self.customer:
            dst = self.agent
        elif src is self.agent:
            dst = self.customer
        else:
            return
        if dst.params is None or dst.dtmf_out is None:
            return
        payload = _payload(data)
        if payload is None:
            return
        if ts != src.event_ts_in:
            # RFC 4733 §2.5.1.2: every packet of one event carries the event's start time.
            src.event_ts_in = ts
            src.event_ts_out = dst.out_ts
        sender = dst.leg.sender
        seq = sender.seq
        sender.seq = (seq + 1) & 0xFFFF
        sender.packets += 1
        sender.octets += len(payload)
        # last_ts/last_time stay with the audio frames: they anchor the bridge's restart.
        dst.leg.send_rtp(
            HEADER.pack(0x80, dst.dtmf_out | (second & 0x80), seq, src.event_ts_out, sender.ssrc) + payload
        )

    # -- the frame clock -----------------------------------------------------------------------

    def _arm(self) -> None:
        self._timer = self._clock.call_at(self._start + self._n * FRAME_SECONDS, self._on_tick)

    def _on_tick(self) -> None:
        if not self.active:
            return
        now = self._clock.time()
        # The last frame due by now; at least the one this timer was armed for, since a loop
        # may run a timer a clock tick early (asyncio rounds by its clock resolution).
        due = max(int((now - self._start) / FRAME_SECONDS + 1e-6), self._n)
        try:
            if due - self._n >= _MAX_BURST:
                self._skip(due - self._n - _MAX_BURST + 1)
            while self._n <= due:
                self._mix_frame(self._start + self._n * FRAME_SECONDS)
                self._n += 1
        finally:
            if self.active:
                self._arm()

    def _skip(self, frames: int) -> None:
        """The loop stalled: drop ``frames`` frames so the audio stays near real time."""
        self.skipped += frames
        self._n += frames
        for p in self._parties:
            for _ in range(frames):
                p.pop()
            p.out_ts = (p.out_ts + frames * FRAME_SAMPLES) & _MASK32
            p.marker = True

    def _mix_frame(self, at: float) -> None:
        parties = self._parties
        rows: list[bytes] = []
        for p in parties:
            if p.leg.params is not p.params:
                p.configure()
            frame = p.pop()
            rows.append(frame if frame is not None else p.silent_frame)
        codes = np.frombuffer(b"".join(rows), dtype=np.uint8).reshape(3, FRAME_SAMPLES)
        codec_rows = (parties[0].row, parties[1].row, parties[2].row)
        if codec_rows != self._codec_rows:
            self._codec_rows = codec_rows
            self._decode_offset = np.array([[256 * r] for r in codec_rows], dtype=np.intp)
            # +0.5 makes the truncating cast below round to nearest (indices are >= 0).
            self._encode_offset = np.array([[_SPAN + 0.5 + _WIDE_ROW * r] for r in codec_rows], dtype=np.float32)
        pcm = _DECODE2[codes + self._decode_offset] if any(codec_rows) else _DECODE2[codes]
        gains = self._gains
        mixed = gains @ pcm
        if gains is not self._last_gains:
            # Fade the changed paths in (or out) across this frame instead of switching at a sample.
            old = self._last_gains @ pcm
            mixed = old + (mixed - old) * _RAMP
            self._last_gains = gains
        mixed += self._encode_offset
        encoded = _ENCODE_WIDE[mixed.astype(np.intp)].tobytes()
        self.frames += 1
        for i, p in enumerate(parties):
            if p.params is None:
                continue
            payload = encoded[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES]
            sender = p.leg.sender
            p.leg.send_rtp(sender.packet(p.pt_out, payload, p.out_ts, at, marker=p.marker))
            if p is self.customer and self.tap is not None:
                self.tap.feed(RIGHT, p.out_ts, sender.ssrc, payload, p.codec, at)
            p.marker = False
            p.out_ts = (p.out_ts + FRAME_SAMPLES) & _MASK32


def _as_mode(mode: SupervisionMode | str) -> SupervisionMode:
    try:
        return SupervisionMode(mode)
    except ValueError:
        raise ValueError(f"supervision mode {mode!r} is not one of listen, whisper, barge") from None


def _payload(data: bytes) -> bytes | None:
    try:
        start = payload_offset(data)
    except RtpError:
        return None
    end = len(data) - data[-1] if data[0] & 0x20 else len(data)
    return data[start:end] if end >= start else None
