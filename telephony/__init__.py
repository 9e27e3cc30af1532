"""The project's own SIP/SDP/RTP stack: a sans-I/O protocol core with a thin asyncio layer.

Exception tree::

    telephony.sip.message.ProtocolError
    ├── LocalProtocolError    we tried to send something illegal (a bug here)
    └── RemoteProtocolError   the peer sent something broken; carries status_hint
    telephony.sip.uri.SipSyntaxError (ValueError)   a URI or header value breaks the grammar
    telephony.sip.auth.AuthError (ValueError)       a Digest header is malformed
    telephony.sdp.SdpError                          an SDP body is malformed (status_hint 400)
    └── SdpNegotiationError                         no codec in common (status_hint 488)
    telephony.aio.media_session.MediaSessionError   media used out of order

The facade for the rest of the product is :class:`UserAgent` and :class:`Call`.
"""

from telephony.aio.ua import Call, CallDirection, CallState, OptionsKeepalive, TrunkRegistration, UAConfig, UserAgent
from telephony.sip.dialog import CallOutcome, Outcome
from telephony.sip.message import LocalProtocolError, ProtocolError, RemoteProtocolError
from telephony.sip.transaction import Destination

__all__ = [
    "Call",
    "CallDirection",
    "CallOutcome",
    "CallState",
    "Destination",
    "LocalProtocolError",
    "OptionsKeepalive",
    "Outcome",
    "ProtocolError",
    "RemoteProtocolError",
    "TrunkRegistration",
    "UAConfig",
    "UserAgent",
]
