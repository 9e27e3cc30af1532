"""The asyncio user agent: calls, registrar and trunk registration over the sans-I/O core.

This is the facade the rest of the product uses (RFC 3261 §8, §9, §12-§15, RFC 3581):

    ua = UserAgent(UAConfig(host="127.0.0.1", port=5060))
    await ua.start()
    call = await ua.call("sip:1000@127.0.0.1:5070")
    outcome = await call.wait_answered()        # Outcome(answered | busy | no_answer | ...)
    async for call in ua.incoming(): await call.answer()

The UA is thin: it parses datagrams, feeds :class:`TransactionLayer`, arms the single
timer the layer asks for with ``loop.call_at`` and turns transaction events into call
state. Every call gets exactly one :class:`Outcome`, and every call ends: on BYE, on our
hangup, on a missing ACK, or on the RTP media timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import math
import re
import secrets
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Literal

import structlog

from telephony.aio.media_session import MediaSession
from telephony.aio.transport import SipTransport
from telephony.sdp import Direction, SdpError, SdpNegotiationError, SessionDescription, negotiate
from telephony.sip.auth import AuthError, DigestClient, DigestServer, InMemoryCredentials
from telephony.sip.builders import make_cancel, make_response, new_branch, new_call_id, new_tag
from telephony.sip.dialog import CallOutcome, Dialog, Outcome, outcome_for_status, reason_header
from telephony.sip.message import Headers, RemoteProtocolError, Request, Response, parse_message, reason_phrase
from telephony.sip.registrar import ContactSpec, Registrar
from telephony.sip.registration import RegistrationClient
from telephony.sip.transaction import (
    AckReceived,
    ClientTransaction,
    Destination,
    RequestReceived,
    ResponseReceived,
    ServerTransaction,
    StrayResponse,
    TransactionLayer,
    TransactionTimedOut,
    TxState,
)
from telephony.sip.uri import Address, SipSyntaxError, SipURI, Via

__all__ = ["Call", "CallDirection", "CallState", "OptionsKeepalive", "TrunkRegistration", "UAConfig", "UserAgent"]

log = structlog.get_logger(__name__)

ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, REGISTER"
_TIMER_SLOTS_PER_S = 100  # transaction timers fire on a 10 ms grid (see UserAgent._rearm)
SDP = "application/sdp"


_std_log = logging.getLogger(__name__)


def _enabled(level: int) -> bool:
    """Whether a record at ``level`` would be emitted. The app routes structlog through
    stdlib logging (infra.logging), so the stdlib level is the filter; asking it first
    skips structlog's lazy proxy, which cost ~15% of a call at 500 calls/s when filtered."""
    return not structlog.is_configured() or _std_log.isEnabledFor(level)


class _CallLog:
    """Logs with ``call_id`` bound, cheaper than a ``log.bind()`` per call."""

    __slots__ = ("call_id",)

    def __init__(self, call_id: str) -> None:
        self.call_id = call_id

    def debug(self, event: str, **kw: Any) -> None:
        if _enabled(logging.DEBUG):
            log.debug(event, call_id=self.call_id, **kw)

    def info(self, event: str, **kw: Any) -> None:
        if _enabled(logging.INFO):
            log.info(event, call_id=self.call_id, **kw)

    def warning(self, event: str, **kw: Any) -> None:
        if _enabled(logging.WARNING):
            log.warning(event, call_id=self.call_id, **kw)


class CallState(StrEnum):
    DIALING = "dialing"
    RINGING = "ringing"
    ANSWERED = "answered"
    ENDED = "ended"


class CallDirection(StrEnum):
    OUTBOUND = "outbound"
    INBOUND = "inbound"


@dataclass
class UAConfig:
    host: str = "127.0.0.1"
    port: int = 5060
    public_host: str | None = None  # advertised in Via/Contact/SDP; defaults to host
    user: str = "dialer"
    display_name: str | None = None
    user_agent: str = "dialer/0.1"
    tcp: bool = True
    realm: str = "dialer"
    accounts: dict[str, str] = field(default_factory=dict)  # user -> password, hashed at start
    challenge_invites: bool = True  # challenge INVITEs from unknown sources when accounts exist
    trusted_sources: set[str] = field(default_factory=set)  # e.g. the trunk's IPs: never challenged
    registrar: bool = True
    ring_timeout: float = 25.0
    media_timeout: float = 30.0
    # While media is not expected (on hold, either way) the RTP timeout cannot notice a
    # dead dialog, e.g. one whose BYE was lost: an in-dialog OPTIONS is sent this often,
    # and a 481 or no answer at all (Timer F, 32 s on UDP) ends the call. 0 disables it.
    dialog_probe_interval: float = 30.0
    media_ports: tuple[int, int] = (10000, 20000)
    outbound_proxy: Destination | None = None
    auth_secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    # Digest algorithms challenged with, in order (RFC 8760 §2.4). MD5 only by default:
    # deployed phones break on anything else -- baresip 1.0 (libre) fails the whole
    # authentication if ANY challenge names an algorithm it lacks, sipp 3.6 and older
    # Zoiper/MicroSIP builds read only the first -- which is why Asterisk and FreeSWITCH
    # challenge with MD5 too. Sites whose phones speak SHA-256 set ("SHA-256", "MD5").
    auth_algorithms: tuple[str, ...] = ("MD5",)
    # RFC 2069 answers without qop (pyVoIP 1.6.8 sends them); each nonce is then single-use.
    allow_rfc2069: bool = True


class Call:
    """One SIP dialog (a leg) and its media."""

    def __init__(self, ua: UserAgent, direction: CallDirection, call_id: str, remote: str) -> None:
        self.ua = ua
        self.direction = direction
        self.id = call_id
        self.remote = remote
        self.state = CallState.DIALING
        self.outcome: Outcome | None = None
        self.dialog: Dialog | None = None
        self.media: MediaSession | None = None
        self.headers: Headers | None = None  # the initial INVITE's headers
        self.request_uri: SipURI | None = None  # inbound: whom the caller dialled
        self.auth_user: str | None = None  # inbound: the digest user it authenticated as, if challenged
        self.source: Destination | None = None  # inbound: where the INVITE came from (transport, host, port)
        self.created_at = time.time()
        self.ringing_at: float | None = None
        self.answered_at: float | None = None
        self.ended_at: float | None = None
        self.ended_by: str | None = None  # local | remote | media_timeout | ack_timeout | dialog_lost | shutdown
        self.on_dtmf: Callable[[str], None] | None = None
        self._dtmf_q: asyncio.Queue[str] | None = None
        self._answered = asyncio.get_running_loop().create_future()
        self._ended = asyncio.Event()
        self.log = _CallLog(call_id)
        # UAC
        self._invite: Request | None = None
        self._invite_tx: ClientTransaction | None = None
        self._dest: Destination | None = None
        self._auth: DigestClient | None = None
        self._auth_tries = 0
        self._provisional = False
        self._cancel_as: CallOutcome | None = None
        self._cancel_sent = False
        self._ring_timer: asyncio.TimerHandle | None = None
        self._cancel_guard: asyncio.TimerHandle | None = None
        self._ack: Request | None = None
        self._probe_timer: asyncio.TimerHandle | None = None
        self._probe_tx: ClientTransaction | None = None
        self._bye_tx: ClientTransaction | None = None
        # UAS
        self._server_tx: ServerTransaction | None = None
        self._local_tag = new_tag()
        self._offer: SessionDescription | None = None

    # Awaitables -----------------------------------------------------------------------
    @property
    def _dtmf(self) -> asyncio.Queue[str]:
        if self._dtmf_q is None:  # most calls never see a digit: create on demand
            self._dtmf_q = asyncio.Queue()
        return self._dtmf_q

    async def wait_answered(self) -> Outcome:
        """Wait for the outcome of the INVITE (answered or the failure)."""
        return await asyncio.shield(self._answered)

    async def wait_ended(self) -> None:
        await self._ended.wait()

    @property
    def ended(self) -> bool:
        return self.state is CallState.ENDED

    async def dtmf(self) -> AsyncIterator[str]:
        """Digits as they arrive (RFC 4733 or SIP INFO), until the call ends.

        A reader that stops early must not leave a pending ``get`` behind: it would
        swallow the next digit meant for whoever reads after it.
        """
        while not self.ended or not self._dtmf.empty():
            get = asyncio.ensure_future(self._dtmf.get())
            end = asyncio.ensure_future(self._ended.wait())
            try:
                done, _ = await asyncio.wait({get, end}, return_when=asyncio.FIRST_COMPLETED)
            except BaseException:
                end.cancel()
                if get.done() and not get.cancelled():
                    self._dtmf.put_nowait(get.result())  # dequeued but delivered to nobody: keep it
                else:
                    get.cancel()
                raise
            end.cancel()
            if get in done:
                yield get.result()
            else:
                get.cancel()
                while not self._dtmf.empty():
                    yield self._dtmf.get_nowait()
                return

    # Control --------------------------------------------------------------------------
    async def ring(self) -> None:
        """Send 180 Ringing on an inbound call."""
        if self._server_tx is not None and self.state is CallState.DIALING:
            assert self.headers is not None
            self.ua._respond(self._server_tx, make_response(self.headers, 180, to_tag=self._local_tag))
            self.state = CallState.RINGING
            self.ringing_at = time.time()

    async def answer(self) -> None:
        """Answer an inbound call with SDP; raises SdpNegotiationError after answering 488."""
        if self.direction is not CallDirection.INBOUND or self.state not in (CallState.DIALING, CallState.RINGING):
            raise RuntimeError(f"call {self.id} cannot be answered in state {self.state}")
        assert self._server_tx is not None and self.headers is not None
        media = await MediaSession.open(
            self.ua.advertised_host, port_range=self.ua.config.media_ports, media_timeout=self.ua.config.media_timeout
        )
        if self.state not in (CallState.DIALING, CallState.RINGING):
            # A CANCEL (or BYE of a forked leg) arrived while the socket was being bound:
            # the INVITE already got its 487, so a 200 now would contradict it.
            await media.close()
            raise RuntimeError(f"call {self.id} ended before it could be answered ({self.state})")
        self._attach_media(media)
        try:
            if self._offer is not None:
                answer = media.answer(self._offer, session_id=_session_id())
                media.start()
            else:  # offer-less INVITE: we offer in the 200 and take the answer from the ACK (§13.2.1)
                answer = media.offer(_session_id())
        except SdpNegotiationError as exc:
            self.ua._respond(self._server_tx, make_response(self.headers, 488, to_tag=self._local_tag))
            await self._finish(Outcome(CallOutcome.REJECTED, 488, "Not Acceptable Here", detail=str(exc)), "local")
            raise
        contact = self.ua.contact_header()
        resp = make_response(
            self.headers,
            200,
            to_tag=self._local_tag,
            extra=[("Contact", contact), ("Allow", ALLOW), ("Supported", "replaces")],
            body=answer.to_bytes(),
            content_type=SDP,
        )
        assert self._server_tx.request is not None
        self.dialog = Dialog.from_uas(self._server_tx.request, self._local_tag, contact)
        self.ua._dialogs[self.dialog.id] = self
        self.ua._respond(self._server_tx, resp)
        self._mark_answered(Outcome(CallOutcome.ANSWERED, 200, "OK"))
        self._update_probe()

    async def reject(
        self, status: int = 486, reason: str | None = None, *, headers: list[tuple[str, str]] | None = None
    ) -> None:
        """Answer an inbound call with a final failure, e.g. ``reject(486, headers=[("Reason",
        'Q.850;cause=17;text="User busy"')])``; ``headers`` are added to the response."""
        if self._server_tx is None or self.state not in (CallState.DIALING, CallState.RINGING):
            return
        assert self.headers is not None
        resp = make_response(self.headers, status, reason, to_tag=self._local_tag, extra=headers)
        self.ua._respond(self._server_tx, resp)
        await self._finish(outcome_for_status(resp), "local")

    async def cancel(self) -> None:
        """Cancel a ringing outbound call (§9.1). A 200 that crosses our CANCEL is ACKed and hung up."""
        self._request_cancel(CallOutcome.CANCELLED)

    async def hangup(self, reason: str | None = None) -> None:
        """End the call whatever its state: BYE, CANCEL or a rejection."""
        if self.ended:
            return
        if self.state is CallState.ANSWERED and self.dialog is not None:
            self._bye_tx = self.ua._send_in_dialog(self, "BYE", extra=[("Reason", reason)] if reason else None)
            await self._finish(self.outcome, "local")
        elif self.direction is CallDirection.OUTBOUND:
            self._request_cancel(CallOutcome.CANCELLED)
            await self.wait_ended()
        else:
            await self.reject(480, "Temporarily Unavailable")

    async def hold(self, direction: Literal["sendonly", "inactive"] = "sendonly") -> None:
        """Put the call on hold with a re-INVITE (RFC 3264 §8.4): ``sendonly`` (we may still
        play music on hold) or ``inactive`` (no media either way)."""
        if direction not in ("sendonly", "inactive"):
            raise ValueError(f"hold direction must be 'sendonly' or 'inactive', not {direction!r}")
        await self._reinvite(direction)

    async def unhold(self) -> None:
        await self._reinvite("sendrecv")

    async def play(self, source: Any, *, loop: bool = False) -> None:
        if self.media is not None:
            await self.media.play(source, loop=loop)

    async def send_dtmf(self, digits: str) -> None:
        if self.media is not None:
            await self.media.send_dtmf(digits)

    # Internals --------------------------------------------------------------------------
    async def _reinvite(self, direction: Direction) -> None:
        if self.dialog is None or self.media is None or self.ended:
            raise RuntimeError(f"call {self.id} has no established dialog to re-INVITE")
        offer = self.media.offer(_session_id(), direction=direction)
        self.ua._send_in_dialog(self, "INVITE", body=offer.to_bytes(), content_type=SDP)

    @property
    def media_expected(self) -> bool:
        """Whether RTP should be flowing both ways: false on hold (either side's) or before media starts."""
        params = self.media.params if self.media is not None else None
        return params is not None and params.direction == "sendrecv"

    def _update_probe(self) -> None:
        """After each offer/answer: probe the dialog while media is not expected (on hold)."""
        interval = self.ua.config.dialog_probe_interval
        if self.ended or self.state is not CallState.ANSWERED or interval <= 0 or self.media_expected:
            if self._probe_timer is not None:
                self._probe_timer.cancel()
                self._probe_timer = None
            return
        if self._probe_timer is None:
            self._probe_timer = asyncio.get_running_loop().call_later(interval, self._probe)

    def _probe(self) -> None:
        self._probe_timer = None
        if self.ended or self.dialog is None or self.media_expected:
            return
        tx = self._probe_tx
        pending = tx is not None and not tx.terminated and (tx.last_response is None or tx.last_response.status < 200)
        if not pending:  # one probe at a time: a slow peer gets until Timer F
            self._probe_tx = self.ua._send_in_dialog(self, "OPTIONS")
        self._update_probe()

    def _dialog_lost(self, why: str, *, send_bye: bool) -> None:
        """The far end no longer knows the dialog (481) or stopped answering (Timer F): end
        the call, since with media on hold nothing else would (RFC 5057 §5.1)."""
        if self.ended:
            return
        self.log.warning("call.dialog_lost", why=why)
        base = self.outcome or Outcome(CallOutcome.ANSWERED, 200, "OK")
        self.outcome = replace(base, detail=f"dialog lost: {why}")
        if send_bye:  # the peer may only be unreachable for now: tell it when it comes back
            self.ua._spawn(self._hangup_as("dialog_lost", 'SIP;cause=408;text="dialog lost"'))
        else:  # 481: the far end has no dialog to end
            self.ua._spawn(self._finish(self.outcome, "dialog_lost"))

    def _attach_media(self, media: MediaSession) -> None:
        self.media = media
        media.on_dtmf = self._got_dtmf
        media.on_timeout = self._media_timed_out

    def _got_dtmf(self, digit: str) -> None:
        self._dtmf.put_nowait(digit)
        if self.on_dtmf is not None:
            self.on_dtmf(digit)

    def _media_timed_out(self) -> None:
        if self.state is CallState.ANSWERED:
            self.log.warning("call.media_timeout", seconds=self.ua.config.media_timeout)
            self.ua._spawn(self._hangup_as("media_timeout", 'SIP;cause=408;text="RTP timeout"'))

    async def _hangup_as(self, ended_by: str, reason: str | None = None) -> None:
        if self.dialog is not None and not self.ended:
            self._bye_tx = self.ua._send_in_dialog(self, "BYE", extra=[("Reason", reason)] if reason else None)
        await self._finish(self.outcome, ended_by)

    def _request_cancel(self, as_outcome: CallOutcome) -> None:
        if self.ended or self.state is CallState.ANSWERED or self._cancel_as is not None:
            return
        self._cancel_as = as_outcome
        if self._provisional:
            self._send_cancel()
        # else: CANCEL waits for the first provisional response (§9.1)

    def _send_cancel(self) -> None:
        if self._cancel_sent or self._invite is None or self._dest is None:
            return
        self._cancel_sent = True
        self.ua._send_request(make_cancel(self._invite), self._dest, owner=None)
        # A peer that never answers the CANCEL with 487 must not keep the call (§9.1: 64*T1).
        self._cancel_guard = asyncio.get_running_loop().call_later(32.0, self._cancel_expired)

    def _cancel_expired(self) -> None:
        if not self.ended:
            self.ua._spawn(
                self._finish(Outcome(self._cancel_as or CallOutcome.CANCELLED, None, None, detail="no 487"), "local")
            )

    def _mark_answered(self, outcome: Outcome) -> None:
        self.state = CallState.ANSWERED
        self.answered_at = time.time()
        self.outcome = outcome
        if not self._answered.done():
            self._answered.set_result(outcome)
        self.log.info("call.answered", direction=self.direction.value, remote=self.remote)

    async def _finish(self, outcome: Outcome | None, ended_by: str) -> None:
        if self.ended:
            return
        self.state = CallState.ENDED
        self.ended_at = time.time()
        self.ended_by = ended_by
        if outcome is not None:
            self.outcome = outcome
        if self.outcome is None:
            self.outcome = Outcome(CallOutcome.FAILED, None, None, detail="ended without a final response")
        if not self._answered.done():
            self._answered.set_result(self.outcome)
        for handle in (self._ring_timer, self._cancel_guard, self._probe_timer):
            if handle is not None:
                handle.cancel()
        # A cancelled handle still holds its callback (a bound method of this call): a cycle.
        self._ring_timer = self._cancel_guard = self._probe_timer = None
        self._release_transactions()
        if self.dialog is not None:
            self.ua._dialogs.pop(self.dialog.id, None)
        self.ua._calls.pop(self.id, None)
        if self.media is not None:
            await self.media.close()
        self._ended.set()
        self.log.info("call.ended", outcome=self.outcome.outcome.value, sip_status=self.outcome.sip_status, by=ended_by)
        if self.ua.on_call_ended is not None:
            self.ua.on_call_ended(self)
        # Break the call <-> media (and call <-> handler closure) reference cycles, so that an
        # ended call is freed by reference counting rather than by a full garbage collection.
        if self.media is not None:
            self.media.on_dtmf = None
            self.media.on_timeout = None
        self.on_dtmf = None

    def _release_transactions(self) -> None:
        """Transactions outlive the call (Timers K and M, up to 64*T1) but need nothing of it
        once it ended: let them go, so the call's media, dialog and messages are freed now
        instead of being walked by the garbage collector for another 32 s. The INVITE's keeps
        the ACK, to answer retransmissions of the 2xx (§13.2.2.4)."""
        for tx in (self._invite_tx, self._probe_tx, self._bye_tx):
            if tx is not None:
                tx.request.invalidate()  # keep the raw headers, not the parsed views
                if tx.owner is self:
                    tx.owner = None
        tx = self._invite_tx
        if tx is not None and self._ack is not None and self._dest is not None and tx.state is TxState.ACCEPTED:
            tx.owner = _Reack(self._ack.to_bytes(), self._dest)
        self._bye_tx = None

    def as_dict(self) -> dict[str, object]:
        return {
            "call_id": self.id,
            "direction": self.direction.value,
            "remote": self.remote,
            **(self.outcome.as_dict() if self.outcome else {"outcome": None}),
            "created_at": self.created_at,
            "ringing_at": self.ringing_at,
            "answered_at": self.answered_at,
            "ended_at": self.ended_at,
            "ended_by": self.ended_by,
        }


@dataclass(frozen=True, slots=True)
class _Reack:
    """What an ended call's INVITE transaction still owns: the ACK to repeat for a 2xx."""

    data: bytes
    dest: Destination


_HEADER_WORDS = re.compile(r"\b(CSeq|Call-ID|Via|From|To|Content-Length|Max-Forwards|Contact)\b")


def _reason_for(exc: RemoteProtocolError) -> str:
    """The reason phrase of our answer to a malformed request: the status's phrase and what
    was wrong, on one ASCII line. Header names are written in lower case because naive
    parsers (sipp 3.6) search the whole message for "CSeq"/"Call-ID" and would read ours."""
    detail = " ".join(exc.message.split())[:120].encode("ascii", "replace").decode()
    detail = _HEADER_WORDS.sub(lambda m: m.group(0).lower(), detail)
    return f"{reason_phrase(exc.status_hint)} ({detail})"


def _session_id() -> int:
    return int(time.time() * 1000) & 0x7FFFFFFF


class UserAgent:
    """A SIP endpoint: UAC and UAS calls, an optional registrar, OPTIONS pings."""

    def __init__(self, config: UAConfig | None = None) -> None:
        self.config = config or UAConfig()
        self._layer = TransactionLayer()
        self._transport = SipTransport(self._on_datagram, self._malformed)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._calls: dict[str, Call] = {}  # by Call-ID
        self._dialogs: dict[tuple[str, str, str], Call] = {}
        self._incoming: asyncio.Queue[Call] = asyncio.Queue()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._pending_options: dict[str, asyncio.Future[Response | None]] = {}
        self._registrations: list[TrunkRegistration] = []
        self._keepalives: list[OptionsKeepalive] = []
        self.on_incoming: Callable[[Call], None] | None = None
        self.on_call_ended: Callable[[Call], None] | None = None
        self.registrar: Registrar | None = Registrar() if self.config.registrar else None
        self.auth: DigestServer | None = None
        if self.config.accounts:
            self.auth = DigestServer(
                self.config.realm,
                InMemoryCredentials.from_passwords(self.config.realm, self.config.accounts),
                secret=self.config.auth_secret,
                algorithms=self.config.auth_algorithms,
                allow_rfc2069=self.config.allow_rfc2069,
            )
        self.stats = {"received": 0, "malformed": 0, "sent": 0}
        # False while the application is still starting the services that handle calls:
        # requests other than OPTIONS get 503 + Retry-After instead of a half-ready answer.
        self.accepting = True

    # Lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        await self._transport.start(self.config.host, self.config.port, tcp=self.config.tcp)
        self.config.port = self._transport.port

    async def close(self) -> None:
        for ka in self._keepalives:
            ka.stop()
        for reg in self._registrations:
            with contextlib.suppress(Exception):
                await reg.stop()
        for call in list(self._calls.values()):
            with contextlib.suppress(Exception):
                await call.hangup("shutdown")
        if self._timer is not None:
            self._timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        await self._transport.close()

    @property
    def port(self) -> int:
        return self._transport.port

    @property
    def advertised_host(self) -> str:
        return self.config.public_host or self.config.host

    def contact_header(self, transport: str = "udp") -> str:
        host = self.advertised_host
        h = f"[{host}]" if ":" in host else host
        tp = ";transport=tcp" if transport == "tcp" else ""
        return f"<sip:{self.config.user}@{h}:{self.port}{tp}>"

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # Public API -----------------------------------------------------------------------
    async def incoming(self) -> AsyncIterator[Call]:
        while True:
            yield await self._incoming.get()

    async def call(
        self,
        uri: str,
        *,
        from_user: str | None = None,
        display_name: str | None = None,
        auth: tuple[str, str] | None = None,
        ring_timeout: float | None = None,
        headers: list[tuple[str, str]] | None = None,
        transport: str | None = None,
    ) -> Call:
        """Place a call; returns once the INVITE is sent. ``await call.wait_answered()`` for the outcome."""
        target = SipURI.parse(uri)
        dest, request_uri = self._resolve(target, transport)
        call_id = new_call_id(self.advertised_host)
        call = Call(self, CallDirection.OUTBOUND, call_id, str(target))
        media = await MediaSession.open(
            self.advertised_host, port_range=self.config.media_ports, media_timeout=self.config.media_timeout
        )
        call._attach_media(media)
        offer = media.offer(_session_id())
        h = Headers()
        user = from_user or self.config.user
        name = display_name or self.config.display_name
        from_addr = Address(SipURI(user=user, host=self.advertised_host), name, {"tag": call._local_tag})
        h.set("Via", self._via(dest))
        h.set("Max-Forwards", "70")
        h.set("From", str(from_addr))
        h.set("To", str(Address(target)))
        h.set("Call-ID", call_id)
        h.set("CSeq", "1 INVITE")
        h.set("Contact", self.contact_header(dest.transport))
        h.set("Allow", ALLOW)
        h.set("User-Agent", self.config.user_agent)
        for k, v in headers or ():
            h.add(k, v)
        h.set("Content-Type", SDP)
        invite = Request("INVITE", request_uri, h, offer.to_bytes())
        call._invite, call._dest = invite, dest
        call.headers = h
        if auth is not None:
            call._auth = DigestClient(auth[0], auth[1])
        self._calls[call_id] = call
        timeout = self.config.ring_timeout if ring_timeout is None else ring_timeout
        call._ring_timer = asyncio.get_running_loop().call_later(timeout, call._request_cancel, CallOutcome.NO_ANSWER)
        call._invite_tx = self._send_request(invite, dest, owner=call)
        call.log.info("call.dialing", uri=str(target), dest=f"{dest.transport}:{dest.host}:{dest.port}")
        return call

    async def options(self, uri: str, *, timeout: float = 5.0) -> Response | None:
        """Send OPTIONS (a ping, or a keepalive to a trunk); None when nothing answered."""
        target = SipURI.parse(uri)
        dest, request_uri = self._resolve(target, None)
        h = Headers()
        h.set("Via", self._via(dest))
        h.set("Max-Forwards", "70")
        h.set("From", f"<sip:{self.config.user}@{self.advertised_host}>;tag={new_tag()}")
        h.set("To", str(Address(target)))
        call_id = new_call_id(self.advertised_host)
        h.set("Call-ID", call_id)
        h.set("CSeq", "1 OPTIONS")
        fut: asyncio.Future[Response | None] = asyncio.get_running_loop().create_future()
        self._pending_options[call_id] = fut
        self._send_request(Request("OPTIONS", request_uri, h), dest, owner=fut)
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            return None
        finally:
            self._pending_options.pop(call_id, None)

    async def register(
        self,
        registrar_uri: str,
        username: str,
        password: str,
        *,
        expires: int = 3600,
        timeout: float = 5.0,
        _dialog: _RegDialog | None = None,
    ) -> Response | None:
        """One REGISTER, answering one digest challenge; the final response, or None on no answer.

        ``keep_registered`` calls this for every refresh with the same Call-ID and a
        rising CSeq (§10.2.4), passed through ``_dialog``.
        """
        target = SipURI.parse(registrar_uri)
        dest, request_uri = self._resolve(target, None)
        aor = f"sip:{username}@{target.host}"
        state = _dialog if _dialog is not None else _RegDialog(new_call_id(self.advertised_host), new_tag())
        client = DigestClient(username, password)
        authorization: tuple[str, str] | None = None
        for attempt in range(3):
            cseq = state.cseq
            state.cseq += 1
            h = Headers()
            h.set("Via", self._via(dest))
            h.set("Max-Forwards", "70")
            h.set("From", f"<{aor}>;tag={state.from_tag}")
            h.set("To", f"<{aor}>")
            h.set("Call-ID", state.call_id)
            h.set("CSeq", f"{cseq} REGISTER")
            h.set("Contact", self.contact_header(dest.transport))
            h.set("Expires", str(expires))
            h.set("User-Agent", self.config.user_agent)
            if authorization is not None:
                h.set(*authorization)
            fut: asyncio.Future[Response | None] = asyncio.get_running_loop().create_future()
            self._send_request(Request("REGISTER", request_uri, h), dest, owner=fut)
            try:
                resp = await asyncio.wait_for(fut, timeout)
            except TimeoutError:
                return None
            if resp is None or resp.status not in (401, 407) or attempt == 2:
                return resp
            header = "WWW-Authenticate" if resp.status == 401 else "Proxy-Authenticate"
            try:
                value = client.authorize(resp.headers.get_all(header), method="REGISTER", uri=str(request_uri))
            except AuthError as exc:
                log.warning("register.auth_failed", error=str(exc))
                return resp
            if authorization is not None and not client.is_stale(resp.headers.get_all(header)):
                return resp  # credentials were refused: do not loop
            authorization = ("Authorization" if resp.status == 401 else "Proxy-Authorization", value)
        return None

    def keep_registered(
        self, registrar_uri: str, username: str, password: str, *, expires: int = 3600, **client_options: Any
    ) -> TrunkRegistration:
        """Register to a carrier and keep the binding: refresh before expiry, back off on failure."""
        reg = TrunkRegistration(self, registrar_uri, username, password, RegistrationClient(expires, **client_options))
        reg.task = asyncio.get_running_loop().create_task(reg.run())
        self._registrations.append(reg)
        return reg

    def keepalive(self, uri: str, *, interval: float = 30.0, timeout: float = 5.0) -> OptionsKeepalive:
        """Ping ``uri`` with OPTIONS every ``interval`` seconds; ``.up`` tells whether it answers."""
        ka = OptionsKeepalive(self, uri, interval, timeout)
        ka.task = asyncio.get_running_loop().create_task(ka.run())
        self._keepalives.append(ka)
        return ka

    def registered(self, user: str) -> bool:
        return bool(self.registrar and self.registrar.lookup(self._aor(user), time.time()))

    # Sending --------------------------------------------------------------------------
    def _via(self, dest: Destination) -> str:
        host = self.advertised_host
        h = f"[{host}]" if ":" in host else host
        return f"SIP/2.0/{dest.transport.upper()} {h}:{self.port};branch={new_branch()};rport"

    def _resolve(self, target: SipURI, transport: str | None) -> tuple[Destination, SipURI]:
        """Where to send a request for ``target``: a registered binding's flow, the
        outbound proxy, or the URI's host and port (numeric or resolvable; no SRV)."""
        if self.registrar is not None and target.user:
            bindings = self.registrar.lookup(self._aor(target.user), time.time())
            if bindings and (self._is_local(target.host) or target.port is None):
                b = bindings[0]
                tp = b.transport.lower()
                return Destination("tcp" if tp == "tcp" else "udp", b.source[0], b.source[1]), SipURI.parse(b.uri)
        if self.config.outbound_proxy is not None:
            return self.config.outbound_proxy, target
        tp = (transport or target.params.get("transport") or "udp").lower()
        host = target.host
        try:
            ipaddress.ip_address(host)
        except ValueError:
            infos = socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)
            host = str(infos[0][4][0])
        return Destination("tcp" if tp == "tcp" else "udp", host, target.port or 5060), target

    def _aor(self, user: str) -> str:
        return f"sip:{user}@{self.config.realm}"

    def _is_local(self, host: str) -> bool:
        return host in (self.config.host, self.advertised_host, self.config.realm, "localhost", "127.0.0.1", "::1")

    def _send_request(self, req: Request, dest: Destination, owner: object) -> ClientTransaction | None:
        tx = self._layer.send_request(req, dest, self._now())
        if tx is not None:
            tx.owner = owner
        self._flush()
        return tx

    def _send_in_dialog(
        self,
        call: Call,
        method: str,
        *,
        body: bytes = b"",
        content_type: str | None = None,
        extra: list[tuple[str, str]] | None = None,
    ) -> ClientTransaction | None:
        assert call.dialog is not None
        dest = self._dialog_destination(call)
        req = call.dialog.create_request(method, self._via(dest), body=body, content_type=content_type, extra=extra)
        return self._send_request(req, dest, owner=call)

    def _dialog_destination(self, call: Call) -> Destination:
        # Symmetric signalling (RFC 3581 spirit): keep talking to where the peer talks from.
        if call._dest is not None:
            return call._dest
        assert call.dialog is not None
        dest, _ = self._resolve(call.dialog.remote_target, None)
        return dest

    def _respond(self, tx: ServerTransaction, resp: Response) -> None:
        if "server" not in resp.headers:
            resp.headers.set("Server", self.config.user_agent)
        self._layer.respond(tx, resp, self._now())
        if resp.status >= 200:
            # Nothing needs the call through the transaction once it is answered: the ACK is
            # matched to the dialog and a late CANCEL changes nothing (§9.2). Letting go frees
            # the call as soon as it ends, not 64*T1 later.
            tx.owner = None
        self._flush()

    def _flush(self) -> None:
        for data, dest in self._layer.datagrams_to_send():
            self.stats["sent"] += 1
            self._transport.send(data, dest)
        self._rearm()

    def _rearm(self) -> None:
        at = self._layer.get_timer()
        if at is not None:
            # Up to 10 ms late, on a 10 ms grid: under load thousands of transactions end per
            # second (Timers J, K, L), and deadlines in one slot share one wake-up and one
            # loop timer instead of re-arming it for each. RFC 3261 timers are >= 500 ms but
            # for 0 s ones on reliable transports, for which 10 ms changes nothing.
            slot = math.ceil(at * _TIMER_SLOTS_PER_S) / _TIMER_SLOTS_PER_S
            at = slot if slot >= at else slot + 1 / _TIMER_SLOTS_PER_S
        if at == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = at
        if at is not None:
            self._timer = asyncio.get_running_loop().call_at(at, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self._layer.handle_timer(self._now())
        self._drain()

    # Receiving ------------------------------------------------------------------------
    def _on_datagram(self, data: bytes, source: Destination) -> None:
        self.stats["received"] += 1
        try:
            msg = parse_message(data, stream=source.reliable)
            if isinstance(msg, Request):
                self._stamp_received(msg, source)
        except RemoteProtocolError as exc:
            self._malformed(exc, source)
            return
        try:
            self._layer.receive(msg, source, self._now())
            self._drain()
        except Exception:  # the last line of defence: one bad message never kills the socket
            self.stats["malformed"] += 1
            log.exception("sip.handler_error", source=f"{source.transport}:{source.host}:{source.port}")
            self._flush()

    def _stamp_received(self, req: Request, source: Destination) -> None:
        """RFC 3261 §18.2.1 received and RFC 3581 rport on the top Via."""
        via = req.top_via  # parsed (and cached) by the parser's validation already
        if "rport" in via.params or via.host != source.host:
            via = Via(via.transport, via.host, via.port, dict(via.params))
            via.params["received"] = source.host
            if "rport" in via.params:
                via.params["rport"] = str(source.port)
            vias = req.headers.get_all("via")
            vias[0] = str(via)
            req.headers.set_all("Via", vias)
            req.invalidate()

    def _malformed(self, exc: RemoteProtocolError, source: Destination) -> None:
        self.stats["malformed"] += 1
        log.warning(
            "sip.malformed",
            source=f"{source.transport}:{source.host}:{source.port}",
            error=exc.message,
            request=exc.is_request,
        )
        # Without a Via the 400 goes to the source address (where it came from anyway);
        # without a Via or a Call-ID nothing could match it, so it is not worth sending.
        if not exc.is_request or exc.headers is None or not ("via" in exc.headers or "call-id" in exc.headers):
            return
        if exc.status_hint == 513 and not all(h in exc.headers for h in ("via", "from", "to", "call-id", "cseq")):
            # Only the head of an oversize message was read: answer only when it was whole.
            return
        try:
            resp = make_response(exc.headers, exc.status_hint, _reason_for(exc))
            self._transport.send(resp.to_bytes(), source)
        except (SipSyntaxError, ValueError) as err:  # salvaged headers too broken to echo
            log.debug("sip.malformed_unanswerable", error=str(err))

    def _drain(self) -> None:
        while (ev := self._layer.next_event()) is not None:
            try:
                self._dispatch(ev)
            except (RemoteProtocolError, SipSyntaxError, SdpError, AuthError, ValueError) as exc:
                log.warning("sip.event_error", event=type(ev).__name__, error=str(exc))
        self._flush()

    def _dispatch(self, ev: object) -> None:
        if isinstance(ev, RequestReceived):
            self._on_request(ev.request, ev.transaction)
        elif isinstance(ev, ResponseReceived):
            owner = ev.transaction.owner
            if isinstance(owner, Call):
                self._on_response(owner, ev.transaction, ev.response)
            elif isinstance(owner, asyncio.Future) and ev.response.status >= 200 and not owner.done():
                owner.set_result(ev.response)
            elif isinstance(owner, _Reack) and 200 <= ev.response.status < 300:
                self.stats["sent"] += 1  # a 2xx retransmission for a call that already ended
                self._transport.send(owner.data, owner.dest)
            # The transaction keeps its last response for up to 64*T1: drop the parsed views
            # (Via, From, To, Contact) now that the response has been handled.
            ev.response.invalidate()
        elif isinstance(ev, StrayResponse):
            call = self._calls.get(ev.response.call_id)
            if call is not None and call._ack is not None and call._dest is not None:
                self._layer.send_request(call._ack, call._dest, self._now())
        elif isinstance(ev, AckReceived):
            self._on_ack(ev.request)
        elif isinstance(ev, TransactionTimedOut):
            self._on_timeout(ev)

    def _on_timeout(self, ev: TransactionTimedOut) -> None:
        tx = ev.transaction
        owner = tx.owner
        if isinstance(owner, asyncio.Future) and not owner.done():
            owner.set_result(None)
            return
        if isinstance(tx, ServerTransaction) and ev.timer == "L":
            call = self._calls.get(tx.request.call_id)
            if call is not None and call.state is CallState.ANSWERED:
                call.log.warning("call.ack_timeout")
                self._spawn(call._hangup_as("ack_timeout"))
            return
        if isinstance(owner, Call) and tx is owner._invite_tx:
            detail = "no response from the peer (Timer B)"
            self._spawn(owner._finish(Outcome(CallOutcome.FAILED, 408, "Request Timeout", detail=detail), "local"))
        elif tx.request.method == "BYE":
            if _enabled(logging.INFO):
                log.info("call.bye_timeout", call_id=tx.request.call_id)
        elif isinstance(owner, Call) and tx is owner._probe_tx:
            owner._dialog_lost(f"no response to in-dialog OPTIONS (Timer {ev.timer})", send_bye=True)

    # UAC responses --------------------------------------------------------------------
    def _on_response(self, call: Call, tx: ClientTransaction, resp: Response) -> None:
        method = tx.request.method
        if method != "INVITE":
            if method == "OPTIONS" and resp.status == 481 and tx is call._probe_tx:
                call._dialog_lost(f"{resp.status} {resp.reason} to in-dialog OPTIONS", send_bye=False)
            return  # responses to BYE/INFO need no further action here
        if tx is not call._invite_tx:
            if 200 <= resp.status < 300 and call.dialog is not None:  # re-INVITE answered
                ack = call.dialog.create_request("ACK", self._via(self._dialog_destination(call)), cseq=resp.cseq.seq)
                self._layer.send_request(ack, self._dialog_destination(call), self._now())
                if call.media is not None and resp.body:
                    with contextlib.suppress(SdpError, SdpNegotiationError):
                        call.media.start(call.media.accept(SessionDescription.parse(resp.body.decode())))
                call._update_probe()
            return
        code = resp.status
        if code < 200:
            call._provisional = True
            if code in (180, 183) and call.state is CallState.DIALING:
                call.state = CallState.RINGING
                call.ringing_at = time.time()
                call.log.info("call.ringing", status=code)
            if call._cancel_as is not None:
                call._send_cancel()
            if code == 183 and resp.body and call.media is not None:
                with contextlib.suppress(SdpError, SdpNegotiationError):
                    call.media.start(call.media.accept(SessionDescription.parse(resp.body.decode())))
            return
        if code < 300:
            self._on_invite_2xx(call, resp)
            return
        if code in (401, 407) and call._auth is not None and call._auth_tries < 2 and not call._cancel_as:
            self._retry_with_auth(call, resp)
            return
        outcome = outcome_for_status(resp)
        if code == 487 and call._cancel_as is not None:
            outcome = Outcome(call._cancel_as, code, resp.reason, reason_header(resp.headers))
        self._spawn(call._finish(outcome, "remote" if code != 487 else "local"))

    def _on_invite_2xx(self, call: Call, resp: Response) -> None:
        assert call._invite is not None
        if call.dialog is None:
            call.dialog = Dialog.from_uac(call._invite, resp)
            self._dialogs[call.dialog.id] = call
        dest = self._dialog_destination(call)
        ack = call.dialog.create_request("ACK", self._via(dest), cseq=call._invite.cseq.seq)
        call._ack = ack
        self._layer.send_request(ack, dest, self._now())
        if call.state is CallState.ANSWERED or call.ended:
            return  # a 2xx retransmission: re-ACKed above
        if call._ring_timer is not None:
            call._ring_timer.cancel()
        if call.media is not None and resp.body:
            try:
                call.media.start(call.media.accept(SessionDescription.parse(resp.body.decode("utf-8", "replace"))))
            except (SdpError, SdpNegotiationError) as exc:
                call.log.warning("call.bad_answer_sdp", error=str(exc))
        call._mark_answered(Outcome(CallOutcome.ANSWERED, resp.status, resp.reason))
        call._update_probe()
        if call._cancel_as is not None:
            # The 200/487 race (§9.1, §15): the answer crossed our CANCEL. ACK, then BYE.
            call.outcome = Outcome(CallOutcome.ANSWERED, resp.status, resp.reason, detail="answered while cancelling")
            call.log.info("call.cancel_race_lost")
            self._spawn(call._hangup_as("local"))

    def _retry_with_auth(self, call: Call, resp: Response) -> None:
        assert call._invite is not None and call._auth is not None and call._dest is not None
        header = "WWW-Authenticate" if resp.status == 401 else "Proxy-Authenticate"
        challenges = resp.headers.get_all(header)
        old = call._invite
        try:
            value = call._auth.authorize(challenges, method="INVITE", uri=str(old.uri), body=old.body)
        except AuthError as exc:
            self._spawn(
                call._finish(Outcome(CallOutcome.REJECTED, resp.status, resp.reason, detail=str(exc)), "remote")
            )
            return
        call._auth_tries += 1
        h = old.headers.copy()
        h.set("Via", self._via(call._dest))
        h.set("CSeq", f"{old.cseq.seq + 1} INVITE")
        h.set("Authorization" if resp.status == 401 else "Proxy-Authorization", value)
        invite = Request("INVITE", old.uri, h, old.body)
        call._invite = invite
        call._provisional = False
        call._invite_tx = self._send_request(invite, call._dest, owner=call)

    # UAS requests ---------------------------------------------------------------------
    def _on_request(self, req: Request, tx: ServerTransaction) -> None:
        method = req.method
        if not self.accepting and method not in ("OPTIONS", "ACK", "BYE", "CANCEL"):
            self._respond(
                tx, make_response(req.headers, 503, "Service Unavailable (starting)", extra=[("Retry-After", "1")])
            )
            return
        if method == "INVITE":
            self._on_invite(req, tx)
        elif method == "BYE":
            self._on_bye(req, tx)
        elif method == "CANCEL":
            self._on_cancel(req, tx)
        elif method == "OPTIONS":
            if req.to.tag and self._find_dialog(req) is None:  # an in-dialog probe of a dialog we do not have
                self._respond(tx, make_response(req.headers, 481))
            else:
                self._respond(tx, make_response(req.headers, 200, extra=[("Allow", ALLOW), ("Accept", SDP)]))
        elif method == "REGISTER":
            self._on_register(req, tx)
        elif method == "INFO":
            self._on_info(req, tx)
        else:
            self._respond(tx, make_response(req.headers, 501, extra=[("Allow", ALLOW)]))

    def _challenge(self, req: Request, tx: ServerTransaction) -> str | None:
        """Digest-check a request; answers 401/403 itself and returns None when it did."""
        if self.auth is None:
            return ""
        result = self.auth.verify(
            req.headers.get("authorization"), method=req.method, source=tx.peer.host, now=time.time()
        )
        kind = result.outcome
        if kind == "ok":
            return result.username or ""
        if kind == "locked_out":
            self._respond(tx, make_response(req.headers, 403, "Forbidden (too many failed attempts)"))
            return None
        stale = kind == "stale"
        extra = [("WWW-Authenticate", c) for c in self.auth.challenge(time.time(), stale=stale)]
        status = 400 if kind == "bad_request" else 401
        self._respond(tx, make_response(req.headers, status, to_tag=new_tag(), extra=extra))
        return None

    def _on_invite(self, req: Request, tx: ServerTransaction) -> None:
        if req.to.tag:
            self._on_reinvite(req, tx)
            return
        challenged = self.config.challenge_invites and tx.peer.host not in self.config.trusted_sources
        auth_user: str | None = None
        if challenged:
            auth_user = self._challenge(req, tx)
            if auth_user is None:
                return
        call = Call(self, CallDirection.INBOUND, req.call_id, str(req.from_.uri))
        call.headers = req.headers
        call.request_uri = req.uri
        call.auth_user = auth_user or None
        call.source = tx.peer
        call._server_tx = tx
        call._dest = tx.peer
        tx.owner = call
        if req.body and req.content_type == SDP:
            try:
                call._offer = SessionDescription.parse(req.body.decode("utf-8", "replace"))
            except SdpError as exc:
                self._respond(tx, make_response(req.headers, 400, f"Bad Request (SDP: {exc})"[:120], to_tag=new_tag()))
                return
            try:  # an offer we can never answer is refused before the application sees the call
                negotiate(call._offer)  # remembered on the offer: answer() does not redo it
            except SdpError as exc:  # SdpNegotiationError: 488 (RFC 3264 §6, RFC 3261 §13.3.1.3)
                text = " ".join(str(exc).split())[:100].replace('"', "'")
                warning = f'305 {self.advertised_host} "{text}"'  # 305 Incompatible media format (§20.43)
                resp = make_response(req.headers, exc.status_hint, to_tag=new_tag(), extra=[("Warning", warning)])
                self._respond(tx, resp)
                log.info("call.rejected_offer", call_id=req.call_id, status=exc.status_hint, error=str(exc))
                return
        self._calls[call.id] = call
        call.log.info("call.incoming", remote=call.remote, uri=str(req.uri))
        if self.on_incoming is not None:
            self.on_incoming(call)
        else:
            self._incoming.put_nowait(call)

    def _on_reinvite(self, req: Request, tx: ServerTransaction) -> None:
        call = self._find_dialog(req)
        if call is None or call.media is None or call.dialog is None:
            self._respond(tx, make_response(req.headers, 481))
            return
        if not call.dialog.check_remote_cseq(req):
            self._respond(tx, make_response(req.headers, 500, "Server Internal Error (CSeq out of order)"))
            return
        try:
            offer = SessionDescription.parse(req.body.decode("utf-8", "replace"))
            answer = call.media.answer(offer, session_id=_session_id())
            call.media.start()
        except SdpNegotiationError:
            self._respond(tx, make_response(req.headers, 488))
            return
        except SdpError as exc:
            self._respond(tx, make_response(req.headers, 400, f"Bad Request (SDP: {exc})"[:120]))
            return
        call.log.info("call.reinvite", direction=call.media.params.direction if call.media.params else None)
        call._update_probe()
        extra = [("Contact", call.dialog.local_contact or self.contact_header())]
        self._respond(tx, make_response(req.headers, 200, extra=extra, body=answer.to_bytes(), content_type=SDP))

    def _on_ack(self, req: Request) -> None:
        call = self._find_dialog(req)
        if call is not None and req.body and call.media is not None and call._offer is None:
            with contextlib.suppress(SdpError, SdpNegotiationError):
                call.media.start(call.media.accept(SessionDescription.parse(req.body.decode("utf-8", "replace"))))
            call._update_probe()

    def _on_bye(self, req: Request, tx: ServerTransaction) -> None:
        call = self._find_dialog(req)
        if call is None:
            self._respond(tx, make_response(req.headers, 481))
            return
        self._respond(tx, make_response(req.headers, 200))
        self._spawn(call._finish(call.outcome, "remote"))

    def _on_cancel(self, req: Request, tx: ServerTransaction) -> None:
        inv_tx = self._layer.find_invite_server(req)
        if inv_tx is None:
            self._respond(tx, make_response(req.headers, 481))
            return
        self._respond(tx, make_response(req.headers, 200))
        call = inv_tx.owner
        if isinstance(call, Call) and call.state in (CallState.DIALING, CallState.RINGING) and call.headers:
            self._respond(inv_tx, make_response(call.headers, 487, to_tag=call._local_tag))
            self._spawn(
                call._finish(
                    Outcome(CallOutcome.CANCELLED, 487, "Request Terminated", reason_header(req.headers)), "remote"
                )
            )

    def _on_info(self, req: Request, tx: ServerTransaction) -> None:
        call = self._find_dialog(req)
        if call is None:
            self._respond(tx, make_response(req.headers, 481))
            return
        if req.content_type in ("application/dtmf-relay", "application/dtmf"):
            text = req.body.decode("utf-8", "replace")
            digit = text.strip()
            for line in text.splitlines():
                k, _, v = line.partition("=")
                if k.strip().lower() == "signal":
                    digit = v.strip()
            if digit:
                call._got_dtmf(digit[:1])
        self._respond(tx, make_response(req.headers, 200))

    def _on_register(self, req: Request, tx: ServerTransaction) -> None:
        if self.registrar is None:
            self._respond(tx, make_response(req.headers, 405, extra=[("Allow", ALLOW)]))
            return
        user = self._challenge(req, tx)
        if user is None:
            return
        to_user = req.to.uri.user or ""
        if self.auth is not None and user != to_user:
            self._respond(tx, make_response(req.headers, 403, f"Forbidden (authenticated as {user}, not {to_user})"))
            return
        raw = req.headers.get_all("contact")
        contacts: list[ContactSpec] | str
        if raw == ["*"]:
            contacts = "*"
        else:
            contacts = []
            for a in req.contacts:
                q = a.params.get("q")
                exp = a.params.get("expires")
                contacts.append(
                    ContactSpec(
                        uri=str(a.uri),
                        expires=int(exp) if exp and exp.isdigit() else None,
                        q=float(q) if q else None,
                    )
                )
        exp_header = req.headers.get("expires")
        result = self.registrar.register(
            self._aor(to_user),
            contacts,
            call_id=req.call_id,
            cseq=req.cseq.seq,
            expires_header=int(exp_header) if exp_header and exp_header.isdigit() else None,
            source=(tx.peer.host, tx.peer.port),
            transport=tx.peer.transport,
            now=time.time(),
        )
        extra = list(result.headers)
        self._respond(tx, make_response(req.headers, result.status, result.reason, to_tag=new_tag(), extra=extra))
        if result.status == 200:
            log.info("registrar.registered", user=to_user, source=f"{tx.peer.host}:{tx.peer.port}", bindings=len(extra))

    def _find_dialog(self, req: Request) -> Call | None:
        return self._dialogs.get((req.call_id, req.to.tag or "", req.from_.tag or ""))


@dataclass
class _RegDialog:
    """Call-ID, From tag and next CSeq shared by every REGISTER of one registration."""

    call_id: str
    from_tag: str
    cseq: int = 1


class TrunkRegistration:
    """The task that keeps one registration alive, driven by :class:`RegistrationClient`."""

    def __init__(self, ua: UserAgent, uri: str, username: str, password: str, client: RegistrationClient) -> None:
        self.ua, self.uri, self.username, self.password, self.client = ua, uri, username, password, client
        self.task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._dialog = _RegDialog(new_call_id(ua.advertised_host), new_tag())
        self.log = log.bind(registrar=uri, username=username)

    @property
    def registered(self) -> bool:
        return self.client.is_registered(self.ua._now())

    async def _send(self, expires: int, seq: int) -> None:
        resp = await self.ua.register(self.uri, self.username, self.password, expires=expires, _dialog=self._dialog)
        now = self.ua._now()
        if resp is None:
            self.client.on_timeout(now, seq=seq)
            return
        granted: int | None = None
        for c in resp.contacts:
            value = c.params.get("expires") or ""
            if c.uri.user == self.ua.config.user and value.isdigit():
                granted = int(value)
        exp = resp.headers.get("expires")
        if granted is None and exp and exp.isdigit():
            granted = int(exp)
        min_exp = resp.headers.get("min-expires")
        retry = resp.headers.get("retry-after")
        self.client.on_response(
            resp.status,
            granted_expires=granted,
            min_expires=int(min_exp) if min_exp and min_exp.isdigit() else None,
            retry_after=int(retry.split()[0]) if retry and retry.split()[0].isdigit() else None,
            now=now,
            seq=seq,
        )

    async def run(self) -> None:
        self.client.start(self.ua._now())
        while True:
            for ev in self.client.events():
                self.log.info("trunk.registration", state=ev.new.value, cause=ev.cause, status=ev.status)
            action = self.client.poll(self.ua._now())
            if action is not None:
                await self._send(action.expires, action.seq)
                if action.kind == "unregister":
                    return
                continue
            if self._stopping:
                return
            deadline = self.client.next_deadline()
            self._wake.clear()
            timeout = None if deadline is None else max(0.0, deadline - self.ua._now())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def stop(self) -> None:
        """Unregister (Expires: 0) if bound, and end the task."""
        if self._stopping:
            return
        self._stopping = True
        action = self.client.stop(self.ua._now())
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        if action is not None:
            with contextlib.suppress(Exception):
                await self._send(action.expires, action.seq)


class OptionsKeepalive:
    """OPTIONS pings to a trunk or phone; logs when it goes down or comes back."""

    def __init__(self, ua: UserAgent, uri: str, interval: float, timeout: float) -> None:
        self.ua, self.uri, self.interval, self.timeout = ua, uri, interval, timeout
        self.up: bool | None = None
        self.last_status: int | None = None
        self.task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        while True:
            resp = await self.ua.options(self.uri, timeout=self.timeout)
            # Any response, even 404 or 405, proves the peer is alive (RFC 3261 §11).
            up = resp is not None
            self.last_status = resp.status if resp is not None else None
            if up != self.up:
                (log.info if up else log.warning)("sip.keepalive", uri=self.uri, up=up, status=self.last_status)
                self.up = up
            await asyncio.sleep(self.interval)

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
