"""The interface between a call's RTP endpoint and media processors such as the bridge.

A leg is one negotiated RTP stream (one SIP dialog's audio). Processors read its
:class:`~telephony.sdp.MediaParams`, stamp outgoing packets with its
:class:`~telephony.rtp.stream.RtpSender` (so SSRC, sequence and timestamp stay continuous
whatever feeds the leg), send through it and can take over its received RTP.
``telephony.aio.media_session.MediaSession`` is the production implementation; tests can
use any object of this shape.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from telephony.rtp.stream import RtpSender
from telephony.sdp import MediaParams

__all__ = ["MediaLeg", "RtpHandler"]

#: Receives each accepted RTP datagram of a leg with the time it arrived.
RtpHandler = Callable[[bytes, float], None]


class MediaLeg(Protocol):
    @property
    def params(self) -> MediaParams | None: ...

    @property
    def sender(self) -> RtpSender: ...

    def send_rtp(self, datagram: bytes) -> None:
        """Send to the peer (its latched address); dropped while on hold or not started."""

    @property
    def rtp_out(self) -> Callable[[bytes], object]:
        """The fastest way to send a datagram to the peer, for processors that run inside a leg's
        RTP handler (the bridge): it may raise ``OSError``, which the receiving endpoint drops
        with the packet. Re-read it for every packet: it changes as the peer is latched."""

    def set_rtp_handler(self, handler: RtpHandler | None) -> None:
        """Route received RTP to ``handler`` instead of the leg's own processing (None restores it)."""
