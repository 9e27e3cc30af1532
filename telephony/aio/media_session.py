"""The media of one call: an RTP socket plus negotiation, playback, DTMF, echo, recording and timeout.

:class:`MediaSession` is what a SIP ``Call`` holds. Life cycle::

    media = await MediaSession.open("192.0.2.5")          # binds an even port
    sdp = media.offer(session_id)                          # or media.answer(remote_offer, session_id)
    params = media.accept(remote_answer)                   # UAC side; the UAS side has media.negotiated
    media.start(params)                                    # again on every re-INVITE (hold/unhold)
    await media.play("prompt.wav"); await media.send_dtmf("123#")
    async for digit in media.dtmf(): ...                   # or media.on_dtmf = callback
    await media.close()

It implements :class:`telephony.media.leg.MediaLeg`, so ``Bridge(customer.media, agent.media)``
relays two calls. Received RTP goes through symmetric latching and loss accounting
(:class:`~telephony.rtp.stream.RtpReceiver`) and telephone-events are reported even while
bridged; audio is then handed to the bridge if there is one, else to echo and taps. The
media timeout (no RTP for ``media_timeout`` seconds while media flows both ways, i.e. not
on hold) calls ``on_timeout`` once per :meth:`start`.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Final

import structlog

from telephony.aio.rtp import DEFAULT_PORT_RANGE, RtpEndpoint, open_rtp_endpoint
from telephony.media.leg import RtpHandler
from telephony.media.player import AudioSource, Playout, dtmf_tone, load_source
from telephony.media.tap import LEFT, RIGHT, Tap
from telephony.media.wav import WavSink
from telephony.rtp.dtmf import DtmfReceiver, DtmfSender, digit_to_event
from telephony.rtp.packet import HEADER, RtpError, payload_offset
from telephony.rtp.stream import RtpReceiver, RtpSender
from telephony.sdp import (
    Direction,
    MediaParams,
    SessionDescription,
    accept_answer,
    answer_offer,
    build_offer,
)

__all__ = ["MediaSession", "MediaSessionError"]

log = structlog.get_logger()

_DTMF_QUEUE_SIZE: Final = 64


# SSRCs, sequence numbers and timestamps need to be unpredictable across calls, not
# secret: one generator seeded once beats seeding a new one (from os.urandom) per call.
_SHARED_RNG = random.Random()


class MediaSessionError(RuntimeError):
    """Using a media session in a state that does not allow it (not started, closed)."""


class MediaSession:
    """One call's media. Create with :meth:`open`; see the module docstring for the life cycle."""

    def __init__(self, endpoint: RtpEndpoint, *, media_timeout: float, rng: random.Random | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._time = self._loop.time
        self._endpoint = endpoint
        self.local_host = endpoint.local_host
        self.local_port = endpoint.local_port
        self._rng = rng or _SHARED_RNG
        self._sender = RtpSender(rng=self._rng)
        self._receiver = RtpReceiver(media_timeout=media_timeout)
        self._accept = self._receiver.on_packet
        self._send = endpoint.send
        self._peer: tuple[str, int] | None = None  # the address the socket is connected to
        # MediaLeg's params and sender, as plain attributes: the bridge reads both per packet.
        # Read-only for everyone else; start() sets params.
        self.params: MediaParams | None = None
        self.sender: RtpSender = self._sender
        # MediaLeg.rtp_out: the connected socket's send while the peer is latched, else send_rtp.
        self.rtp_out: Callable[[bytes], object] = self.send_rtp
        self.negotiated: MediaParams | None = None  # from answer(), until start()
        self._last_offer: SessionDescription | None = None
        self._sdp_version = 0
        self._last_sdp_body: str | None = None
        self._pt = -1
        self._dtmf_pt = -1
        self._can_send = False
        self._handler: RtpHandler | None = None
        self._dtmf_rx = DtmfReceiver()
        self._dtmf_q: asyncio.Queue[str] | None = None  # made on the first digit or reader
        self._dtmf_sending = False
        self._playout: Playout | None = None
        self._echo = False
        self._echo_ssrc: int | None = None
        self._echo_offset = 0
        self._taps: list[Tap] = []
        self._recording: tuple[Tap, WavSink] | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self._timed_out = False
        self._closed = False
        self.on_dtmf: Callable[[str], None] | None = None
        self.on_timeout: Callable[[], None] | None = None
        endpoint.on_datagram = self._on_datagram

    @classmethod
    async def open(
        cls,
        host: str,
        *,
        port_range: tuple[int, int] = DEFAULT_PORT_RANGE,
        media_timeout: float = 30.0,
        port: int | None = None,
    ) -> MediaSession:
        """Bind an even RTP port on ``host`` (the address also advertised in SDP)."""
        endpoint = await open_rtp_endpoint(host, port_range=port_range, port=port)
        return cls(endpoint, media_timeout=media_timeout)

    # -- MediaLeg -------------------------------------------------------------------------

    def send_rtp(self, datagram: bytes) -> None:
        if self._can_send:
            receiver = self._receiver
            destination = receiver.latched or receiver.signalled
            if destination is not None:
                self._send(datagram, destination)

    def set_rtp_handler(self, handler: RtpHandler | None) -> None:
        self._handler = handler

    def _update_out(self) -> None:
        receiver = self._receiver
        destination = receiver.latched or receiver.signalled
        peer = self._peer
        if self._can_send and not self._closed and peer is not None and destination == peer:
            self.rtp_out = self._endpoint.send_to_peer
        else:
            self.rtp_out = self.send_rtp

    def _latched(self, addr: tuple[str, int]) -> None:
        """A packet accepted from ``addr`` while the socket is not connected to it: connect it once
        the receiver has latched onto ``addr`` (symmetric RTP), so the kernel filters other sources."""
        if self._closed or self._receiver.latched != addr:
            return
        endpoint = self._endpoint
        if self._peer is not None:
            endpoint.disconnect()
            self._peer = None
        endpoint.connect(addr)
        self._peer = endpoint.peer
        self._update_out()

    def _unlatch(self) -> None:
        """Listen to every source again (the latch was dropped, or the latched source went quiet)."""
        if self._peer is not None and self._endpoint.disconnect():
            self._peer = None
            self._update_out()

    # -- negotiation ----------------------------------------------------------------------

    def _versioned(self, sdp: SessionDescription) -> SessionDescription:
        # RFC 3264 §8: the o= version goes up by one exactly when the description changes.
        body = sdp.with_version(0).to_text()
        if self._last_sdp_body is not None and body != self._last_sdp_body:
            self._sdp_version += 1
        self._last_sdp_body = body
        return sdp.with_version(self._sdp_version)

    def offer(
        self, session_id: int, direction: Direction = "sendrecv", *, codecs: Sequence[str] = ("PCMU", "PCMA")
    ) -> SessionDescription:
        """Our SDP offer (initial INVITE, or a re-INVITE with ``direction="sendonly"`` to hold)."""
        sdp = self._versioned(
            build_offer(
                host=self.local_host, port=self.local_port, session_id=session_id, codecs=codecs, direction=direction
            )
        )
        self._last_offer = sdp
        return sdp

    def answer(
        self,
        offer: SessionDescription,
        session_id: int,
        *,
        direction: Direction | None = None,
        supported: Sequence[str] = ("PCMU", "PCMA"),
    ) -> SessionDescription:
        """Answer a peer's offer; the result is kept in :attr:`negotiated` for :meth:`start`.

        Raises :class:`~telephony.sdp.SdpNegotiationError` (answer 488) if no codec matches.
        """
        answer, params = answer_offer(
            offer,
            host=self.local_host,
            port=self.local_port,
            session_id=session_id,
            supported=supported,
            direction=direction,
        )
        self.negotiated = params
        return self._versioned(answer)

    def accept(self, answer: SessionDescription) -> MediaParams:
        """Read the peer's answer to our last :meth:`offer`."""
        if self._last_offer is None:
            raise MediaSessionError("accept() needs an earlier offer(); call offer() before sending the INVITE")
        params = accept_answer(self._last_offer, answer)
        self.negotiated = params
        return params

    def start(self, params: MediaParams | None = None) -> None:
        """Start (or re-direct, hold, unhold) media with negotiated ``params``."""
        if self._closed:
            raise MediaSessionError("this media session is closed; open a new one")
        params = params or self.negotiated
        if params is None:
            raise MediaSessionError("start() needs MediaParams: call answer() or accept() first")
        now = self._time()
        legacy_hold = params.remote_host in ("0.0.0.0", "::")
        remote = None if legacy_hold else (params.remote_host, params.remote_port)
        # Media is expected only when both sides send: a peer that holds us (we are recvonly)
        # may send no music on hold at all. The call's dialog probe covers calls on hold.
        self._receiver.start(now, remote, expect_media=params.direction == "sendrecv")
        self.params = params
        self._pt = params.payload_type
        self._dtmf_pt = params.dtmf_pt if params.dtmf_pt is not None else -1
        self._can_send = params.sends and remote is not None
        if self._receiver.latched is None:
            self._unlatch()
        self._update_out()
        self._timed_out = False
        self._arm_watchdog()
        log.debug(
            "media.start",
            port=self.local_port,
            remote=remote,
            codec=params.codec,
            direction=params.direction,
        )

    # -- receive path ---------------------------------------------------------------------

    def _on_datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        # Every received packet: latching and loss accounting, then one handler (the bridge's).
        now = self._time()
        if not self._accept(addr, data, now):
            return
        if addr is not self._peer:  # the connected socket passes its peer itself
            self._latched(addr)
        pt = data[1] & 0x7F
        if pt == self._dtmf_pt:
            self._on_dtmf_packet(data)
        handler = self._handler
        if handler is not None:
            handler(data, now)
        elif pt == self._pt and (self._echo or self._taps):
            self._on_audio(data, now)

    def _payload(self, data: bytes) -> bytes | None:
        if data[0] == 0x80:
            return data[12:]
        try:
            start = payload_offset(data)
        except RtpError:
            return None
        return data[start : len(data) - data[-1] if data[0] & 0x20 else len(data)]

    def _on_dtmf_packet(self, data: bytes) -> None:
        payload = self._payload(data)
        if payload is None or len(payload) < 4:
            return
        _, _, _, ts, _ = HEADER.unpack_from(data)
        digit = self._dtmf_rx.feed(ts, payload)
        if digit is None:
            return
        log.debug("media.dtmf", port=self.local_port, digit=digit)
        if self._dtmf_queue.full():
            self._dtmf_queue.get_nowait()  # nobody reads the queue: keep the newest digits
        self._dtmf_queue.put_nowait(digit)
        if self.on_dtmf is not None:
            self.on_dtmf(digit)

    def _on_audio(self, data: bytes, now: float) -> None:
        payload = self._payload(data)
        params = self.params
        if payload is None or params is None:
            return
        _, second, _, ts, ssrc = HEADER.unpack_from(data)
        for tap in self._taps:
            tap.feed(LEFT, ts, ssrc, payload, params.codec, now)
        if self._echo:
            sender = self._sender
            marker = bool(second & 0x80)
            if ssrc != self._echo_ssrc:
                self._echo_ssrc = ssrc
                self._echo_offset = (sender.timestamp_at(now) - ts) & 0xFFFFFFFF
                marker = True
            self._send_audio(payload, (ts + self._echo_offset) & 0xFFFFFFFF, now, marker=marker)

    def _send_audio(self, payload: bytes, timestamp: int, now: float, *, marker: bool) -> None:
        params = self.params
        if params is None:
            return
        self.send_rtp(self._sender.packet(params.payload_type, payload, timestamp, now, marker=marker))
        for tap in self._taps:
            tap.feed(RIGHT, timestamp, self._sender.ssrc, payload, params.codec, now)

    @property
    def _dtmf_queue(self) -> asyncio.Queue[str]:
        # Most calls never carry a digit; creating the queue on demand saved measurable
        # time per call at hundreds of calls per second.
        if self._dtmf_q is None:
            self._dtmf_q = asyncio.Queue(_DTMF_QUEUE_SIZE)
            if self._closed:
                self._dtmf_q.put_nowait("")
        return self._dtmf_q

    async def dtmf(self) -> AsyncIterator[str]:
        """Digits as they are pressed (RFC 4733 events), until the session closes.

        Digits pressed before iteration starts are queued (the newest 64), so an IVR menu
        that starts listening late still sees a caller's type-ahead.
        """
        while True:
            digit = await self._dtmf_queue.get()
            if not digit:  # the end marker close() leaves behind; keep it for other readers
                self._dtmf_queue.put_nowait("")
                return
            yield digit

    # -- timeout --------------------------------------------------------------------------

    def _arm_watchdog(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        interval = min(1.0, self._receiver.media_timeout / 4)
        # A random first delay spreads the checks of many sessions started together.
        self._watchdog = self._loop.call_later(interval * self._rng.uniform(0.5, 1.0), self._check_timeout, interval)

    def _check_timeout(self, interval: float) -> None:
        if self._closed:
            return
        now = self._time()
        receiver = self._receiver
        if self._peer is not None and (receiver.last_rx is None or now - receiver.last_rx >= receiver.relatch_after):
            # Connected, the kernel hides other sources: quiet long enough for a re-latch, so listen again.
            self._unlatch()
        if not self._timed_out and self._receiver.timed_out(now):
            self._timed_out = True
            log.info("media.timeout", port=self.local_port, seconds=self._receiver.media_timeout)
            if self.on_timeout is not None:
                self.on_timeout()
        for tap in self._taps:
            tap.flush(now)  # keeps recordings moving through silence
        self._watchdog = self._loop.call_later(interval, self._check_timeout, interval)

    # -- sending --------------------------------------------------------------------------

    def _require_started(self) -> MediaParams:
        if self._closed:
            raise MediaSessionError("this media session is closed")
        if self.params is None:
            raise MediaSessionError("media is not started; call start() after the offer/answer")
        return self.params

    async def play(self, source: AudioSource, *, loop: bool = False) -> None:
        """Stream a WAV file or int16 array at 20 ms pacing; returns when done or stopped."""
        params = self._require_started()
        pcm = load_source(source)
        self.stop_playing()
        now = self._time()
        playout = Playout(pcm, params.codec, start=now, timestamp=self._sender.timestamp_at(now), loop=loop)
        self._playout = playout
        try:
            while (deadline := playout.next_deadline) is not None and not self._closed:
                delay = deadline - self._time()
                if delay > 0:
                    await asyncio.sleep(delay)
                now = self._time()
                for payload, ts, marker in playout.due(now):
                    if not self._dtmf_sending:
                        self._send_audio(payload, ts, now, marker=marker)
        finally:
            if self._playout is playout:
                self._playout = None

    def stop_playing(self) -> None:
        if self._playout is not None:
            self._playout.stop()
            self._playout = None

    @property
    def playing(self) -> bool:
        return self._playout is not None

    async def send_dtmf(self, digits: str, *, duration_ms: int = 100, gap_ms: int = 100) -> None:
        """Send digits as RFC 4733 events, or as in-band tones if the peer did not offer them."""
        params = self._require_started()
        for digit in digits:
            digit_to_event(digit)  # validate everything before sending anything
        if params.dtmf_pt is None:
            for i, digit in enumerate(digits):
                await self.play(dtmf_tone(digit, duration_ms / 1000, gap_ms / 1000 if i < len(digits) - 1 else 0))
            return
        plan = DtmfSender().plan(digits, duration_ms=duration_ms, gap_ms=gap_ms)
        start = self._time()
        base_ts = self._sender.timestamp_at(start)
        self._dtmf_sending = True
        try:
            for packet in plan:
                delay = start + packet.at - self._time()
                if delay > 0:
                    await asyncio.sleep(delay)
                self.send_rtp(
                    self._sender.packet(
                        params.dtmf_pt,
                        packet.payload,
                        (base_ts + packet.timestamp_offset) & 0xFFFFFFFF,
                        self._time(),
                        marker=packet.marker,
                    )
                )
        finally:
            self._dtmf_sending = False

    def start_echo(self) -> None:
        """Send every received audio packet back (a line test)."""
        self._echo = True
        self._echo_ssrc = None

    def stop_echo(self) -> None:
        self._echo = False

    # -- taps and recording ---------------------------------------------------------------

    def add_tap(self, tap: Tap) -> None:
        """Feed ``tap`` with received audio (left) and the audio we send (right)."""
        self._taps.append(tap)

    def remove_tap(self, tap: Tap) -> None:
        if tap in self._taps:
            self._taps.remove(tap)
            tap.close(self._time())

    def new_tap(self, consumer: Callable[[Any, Any], None], **kwargs: Any) -> Tap:
        """A :class:`Tap` on this session's clock (``consumer(left, right)`` gets int16 arrays)."""
        return Tap(consumer, now=self._time(), **kwargs)

    def record_to(self, path: str | os.PathLike[str], *, stereo: bool = False) -> None:
        """Record received audio to an 8 kHz PCM16 WAV (``stereo=True`` adds what we send, right)."""
        self.stop_recording()
        sink = WavSink(path, channels=2 if stereo else 1)
        tap = self.new_tap(sink)
        self._recording = (tap, sink)
        self.add_tap(tap)

    def stop_recording(self) -> None:
        if self._recording is not None:
            tap, sink = self._recording
            self._recording = None
            self.remove_tap(tap)
            sink.close()

    # -- state ----------------------------------------------------------------------------

    @property
    def stats(self) -> dict[str, float | int | None]:
        rx = self._receiver.stats()
        return {
            "packets_rx": rx.packets,
            "packets_expected": rx.expected,
            "packets_lost": rx.lost,
            "foreign_dropped": rx.foreign_dropped,
            "last_rx": rx.last_rx,
            "packets_tx": self._sender.packets,
            "octets_tx": self._sender.octets,
        }

    @property
    def remote(self) -> tuple[str, int] | None:
        """Where media goes: the latched source address, else the SDP address."""
        return self._receiver.destination

    @property
    def closed(self) -> bool:
        return self._closed

    async def close(self) -> None:
        """Stop everything, finish the recording and release the port. Safe to call twice."""
        if self._closed:
            return
        self.stop_playing()
        self.stop_recording()
        now = self._time()
        for tap in self._taps:
            tap.close(now)
        self._taps.clear()
        self._closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        self._handler = None
        self._peer = None
        self.rtp_out = self.send_rtp
        self._endpoint.close()
        # End dtmf() iterators once they have read the digits still queued.
        if self._dtmf_q is not None:
            if self._dtmf_q.full():
                self._dtmf_q.get_nowait()
            self._dtmf_q.put_nowait("")

    def __repr__(self) -> str:
        return f"<MediaSession {self.local_host}:{self.local_port} remote={self.remote} params={self.params}>"
