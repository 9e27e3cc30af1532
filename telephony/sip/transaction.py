"""SIP transactions, sans-I/O (RFC 3261 §17, with the RFC 6026 Accepted states).

Theory of operation
-------------------
A :class:`TransactionLayer` owns every client and server transaction of one endpoint.
It never touches a socket or a clock: the caller feeds it parsed messages with
``receive(message, source, now)`` and timer expiries with ``handle_timer(now)``, and
drains ``datagrams_to_send()`` and ``next_event()``. ``get_timer()`` is the one
deadline the caller must arm. Tests drive it with a fake clock and no sleeping.

Rule 1: a transaction changes state only through the tables below; an input that has
no entry for the current state is absorbed (retransmissions) or ignored (strays), never
an exception.
Rule 2: every state other than Terminated has a timer that ends it, so no transaction
can leak.

Timers (§17.1.1.2, §17.1.2.2, §17.2.1, §17.2.2, Table 4):
A/E/G retransmit on unreliable transports, doubling from T1 and capped at T2 (for A
the cap is this project's choice, keeping retransmission gaps bounded like E and G);
B/F time a client transaction out after 64*T1; D/K absorb response retransmissions;
H waits for the ACK of a non-2xx final; I absorbs ACK retransmissions; J absorbs
non-INVITE request retransmissions; L/M (RFC 6026) keep INVITE transactions in
Accepted so 2xx retransmissions and their ACKs still match.

The INVITE server transaction sends 100 Trying itself only if the TU has not answered
within 200 ms (§17.2.1), so a call answered at once costs one datagram less.

Deviation, on purpose: the UAS core's 2xx retransmission (§13.3.1.4) is run by the
INVITE server transaction while it is Accepted (with Timer G's schedule), so every
retransmission timer lives in one table and one test harness. An ACK for the 2xx stops
it; 64*T1 without one reports :class:`TransactionTimedOut` so the dialog sends BYE.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from dataclasses import dataclass, field
from enum import Enum
from typing import Final

from telephony.sip.builders import make_ack_for_non2xx, make_response
from telephony.sip.message import Request, Response

__all__ = [
    "T1",
    "T2",
    "T4",
    "AckReceived",
    "ClientTransaction",
    "Destination",
    "RequestReceived",
    "ResponseReceived",
    "ServerTransaction",
    "StrayResponse",
    "TransactionEvent",
    "TransactionLayer",
    "TransactionTimedOut",
    "TxState",
]

T1: Final = 0.5
T2: Final = 4.0
T4: Final = 5.0
_COMPACT_MIN: Final = 1024  # timer heap entries before stale ones are swept out


@dataclass(frozen=True, slots=True)
class Destination:
    """Where a message goes or came from: transport ('udp'|'tcp'), host and port."""

    transport: str
    host: str
    port: int

    @property
    def reliable(self) -> bool:
        return self.transport != "udp"

    def __post_init__(self) -> None:
        if self.transport not in ("udp", "tcp"):
            raise ValueError(f"transport must be 'udp' or 'tcp', not {self.transport!r}")


class TxState(Enum):
    CALLING = "calling"
    TRYING = "trying"
    PROCEEDING = "proceeding"
    ACCEPTED = "accepted"
    COMPLETED = "completed"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


# Events -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RequestReceived:
    """A new request created a server transaction (§17.2); the TU must answer it."""

    request: Request
    transaction: ServerTransaction


@dataclass(frozen=True, slots=True)
class AckReceived:
    """An ACK for a 2xx (§13.2.2.4, §17.2.3): it belongs to the dialog, not a transaction."""

    request: Request
    source: Destination


@dataclass(frozen=True, slots=True)
class ResponseReceived:
    """A response for a client transaction (§17.1.1.2, §17.1.2.2)."""

    response: Response
    transaction: ClientTransaction


@dataclass(frozen=True, slots=True)
class StrayResponse:
    """A response matching no transaction: a 2xx retransmission the UAC must re-ACK (§13.2.2.4)."""

    response: Response
    source: Destination


@dataclass(frozen=True, slots=True)
class TransactionTimedOut:
    """Timer B/F (no final response), or H/L (no ACK): the TU treats it as a 408 (§8.1.3.1)."""

    transaction: ClientTransaction | ServerTransaction
    timer: str


TransactionEvent = RequestReceived | AckReceived | ResponseReceived | StrayResponse | TransactionTimedOut


# Transactions -------------------------------------------------------------------------


@dataclass(eq=False, slots=True)
class _Base:
    layer: TransactionLayer
    request: Request
    peer: Destination
    key: tuple[str, ...]
    state: TxState = TxState.TRYING
    timers: dict[str, float] = field(default_factory=dict)
    owner: object = None  # the TU's object (a call), so events can be dispatched in O(1)
    last_response: Response | None = None
    _interval: float = T1
    _last_bytes: bytes | None = None  # server: the response retransmissions repeat
    is_invite: bool = field(init=False)

    def __post_init__(self) -> None:
        self.is_invite = self.request.method == "INVITE"

    @property
    def terminated(self) -> bool:
        return self.state is TxState.TERMINATED

    def next_deadline(self) -> float | None:
        return min(self.timers.values()) if self.timers else None

    def _arm(self, name: str, at: float) -> None:
        self.timers[name] = at
        self.layer._schedule(self, at)

    def _terminate(self) -> None:
        self.state = TxState.TERMINATED
        self.timers.clear()
        self.layer._forget(self)


class ClientTransaction(_Base):
    """INVITE (§17.1.1) or non-INVITE (§17.1.2) client transaction."""

    __slots__ = ()

    def _start(self, now: float) -> None:
        self.state = TxState.CALLING if self.is_invite else TxState.TRYING
        self.layer._send(self.request.to_bytes(), self.peer)
        if not self.peer.reliable:
            self._arm("A" if self.is_invite else "E", now + T1)
        self._arm("B" if self.is_invite else "F", now + 64 * T1)

    def _on_response(self, resp: Response, now: float) -> None:
        st = self.state
        code = resp.status
        if self.is_invite:
            if st in (TxState.CALLING, TxState.PROCEEDING):
                self.timers.pop("A", None)
                if code < 200:
                    self.state = TxState.PROCEEDING
                    self.timers.pop("B", None)  # the TU's own ring timeout takes over (§17.1.1.2)
                    self._emit(resp)
                elif code < 300:
                    self.state = TxState.ACCEPTED
                    self.timers.clear()
                    self._arm("M", now + 64 * T1)
                    self._emit(resp)
                else:
                    self.state = TxState.COMPLETED
                    self.timers.clear()
                    self.layer._send(make_ack_for_non2xx(self.request, resp).to_bytes(), self.peer)
                    self._arm("D", now + (0.0 if self.peer.reliable else 32.0))
                    self._emit(resp)
            elif st is TxState.ACCEPTED and 200 <= code < 300:
                self._emit(resp)  # 2xx retransmission: the TU re-sends its ACK
            elif st is TxState.COMPLETED and code >= 300:
                self.layer._send(make_ack_for_non2xx(self.request, resp).to_bytes(), self.peer)
        elif st in (TxState.TRYING, TxState.PROCEEDING):
            if code < 200:
                self.state = TxState.PROCEEDING
                self._emit(resp)
            else:
                self.state = TxState.COMPLETED
                self.timers.clear()
                self._arm("K", now + (0.0 if self.peer.reliable else T4))
                self._emit(resp)

    def _emit(self, resp: Response) -> None:
        self.last_response = resp
        self.layer._events.append(ResponseReceived(resp, self))

    def _on_timer(self, name: str, now: float) -> None:
        if name in ("A", "E"):
            self.layer._send(self.request.to_bytes(), self.peer)
            # Non-INVITE in Proceeding retransmits every T2 (§17.1.2.2); otherwise double, capped at T2.
            if name == "E" and self.state is TxState.PROCEEDING:
                self._interval = T2
            else:
                self._interval = min(self._interval * 2, T2)
            self._arm(name, now + self._interval)
        elif name in ("B", "F"):
            self.layer._events.append(TransactionTimedOut(self, name))
            self._terminate()
        else:  # D, K, M
            self._terminate()


class ServerTransaction(_Base):
    """INVITE (§17.2.1) or non-INVITE (§17.2.2) server transaction."""

    __slots__ = ()

    def respond(self, response: Response, now: float) -> None:
        """Send a response from the TU. Responses after the final one are a TU bug and dropped."""
        if self.state in (TxState.COMPLETED, TxState.CONFIRMED, TxState.TERMINATED, TxState.ACCEPTED):
            return
        self.last_response = response
        self._last_bytes = response.to_bytes()
        self.layer._send(self._last_bytes, self._reply_to())
        code = response.status
        self.timers.pop("Trying", None)
        if code < 200:
            self.state = TxState.PROCEEDING
            return
        self.timers.clear()
        self._interval = T1
        if self.is_invite:
            if code < 300:
                self.state = TxState.ACCEPTED
                self.layer._accepted[(self.request.call_id, self.request.cseq.seq)] = self
                if not self.peer.reliable:
                    self._arm("G2xx", now + T1)
                self._arm("L", now + 64 * T1)
            else:
                self.state = TxState.COMPLETED
                if not self.peer.reliable:
                    self._arm("G", now + T1)
                self._arm("H", now + 64 * T1)
        else:
            self.state = TxState.COMPLETED
            self._arm("J", now + (0.0 if self.peer.reliable else 64 * T1))
        # From now on the transaction only absorbs retransmissions (up to 64*T1): keep the raw
        # headers, drop the parsed Via/From/To/Contact views (recomputed if anyone asks).
        self.request.invalidate()

    def _reply_to(self) -> Destination:
        """Responses go to the top Via's received/rport (§18.2.2, RFC 3581 §4), i.e. the source."""
        return self.peer

    def _on_retransmission(self) -> None:
        if self._last_bytes is not None and self.state in (TxState.PROCEEDING, TxState.COMPLETED, TxState.TRYING):
            self.layer._send(self._last_bytes, self._reply_to())

    def _on_ack(self, ack: Request, now: float) -> bool:
        """Returns True when the ACK was for this transaction's response."""
        if self.state is TxState.COMPLETED:
            self.state = TxState.CONFIRMED
            self.timers.clear()
            self._arm("I", now + (0.0 if self.peer.reliable else T4))
            return True
        if self.state is TxState.ACCEPTED:
            # ACK for our 2xx: stop retransmitting it; the dialog also hears about it.
            self.timers.pop("G2xx", None)
            self.layer._events.append(AckReceived(ack, self.peer))
            return True
        return self.state is TxState.CONFIRMED

    def _on_timer(self, name: str, now: float) -> None:
        if name == "Trying":
            self.respond(make_response(self.request.headers, 100), now)
        elif name in ("G", "G2xx"):
            if self._last_bytes is not None:
                self.layer._send(self._last_bytes, self._reply_to())
            self._interval = min(self._interval * 2, T2)
            self._arm(name, now + self._interval)
        elif name == "H":
            self.layer._events.append(TransactionTimedOut(self, "H"))
            self._terminate()
        elif name == "L":
            if "G2xx" in self.timers:  # the 2xx was never acknowledged (§13.3.1.4)
                self.layer._events.append(TransactionTimedOut(self, "L"))
            self._terminate()
        else:  # I, J
            self._terminate()


# The layer ----------------------------------------------------------------------------


class TransactionLayer:
    """All transactions of one SIP endpoint, keyed as §17.1.3 and §17.2.3 prescribe."""

    def __init__(self) -> None:
        self._clients: dict[tuple[str, ...], ClientTransaction] = {}
        self._servers: dict[tuple[str, ...], ServerTransaction] = {}
        # INVITE server transactions that sent a 2xx, by (Call-ID, CSeq number): the ACK for a
        # 2xx is a transaction of its own with a new branch (§17.1.1.3, §13.2.2.4), so it is
        # matched to the INVITE the way the UAS core matches it to the dialog.
        self._accepted: dict[tuple[str, int], ServerTransaction] = {}
        self._heap: list[tuple[float, int, _Base]] = []
        self._compact_at = _COMPACT_MIN
        self._seq = itertools.count()
        self._out: list[tuple[bytes, Destination]] = []
        self._events: deque[TransactionEvent] = deque()

    # Inputs ---------------------------------------------------------------------------
    def send_request(self, request: Request, peer: Destination, now: float) -> ClientTransaction | None:
        """Start a client transaction; ACK has none (§17.1.1.3) and is just sent."""
        if request.method == "ACK":
            self._send(request.to_bytes(), peer)
            return None
        branch = request.top_via.branch or ""
        key = (branch, request.method)
        tx = ClientTransaction(self, request, peer, key)
        self._clients[key] = tx
        tx._start(now)
        return tx

    def receive(self, message: Request | Response, source: Destination, now: float) -> None:
        if isinstance(message, Response):
            self._receive_response(message, source, now)
        else:
            self._receive_request(message, source, now)

    def respond(self, tx: ServerTransaction, response: Response, now: float) -> None:
        tx.respond(response, now)

    def handle_timer(self, now: float) -> None:
        heap = self._heap
        while heap and heap[0][0] <= now:
            at, _, tx = heapq.heappop(heap)
            if tx.terminated:
                continue
            due = [name for name, t in tx.timers.items() if t <= now and t == at]
            for name in due:
                if tx.timers.get(name) == at:
                    del tx.timers[name]
                    tx._on_timer(name, now)  # type: ignore[attr-defined]

    # Outputs --------------------------------------------------------------------------
    def get_timer(self) -> float | None:
        heap = self._heap
        while heap and (heap[0][2].terminated or heap[0][0] not in heap[0][2].timers.values()):
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def datagrams_to_send(self) -> list[tuple[bytes, Destination]]:
        out, self._out = self._out, []
        return out

    def next_event(self) -> TransactionEvent | None:
        return self._events.popleft() if self._events else None

    def find_invite_server(self, cancel: Request) -> ServerTransaction | None:
        """The INVITE server transaction a CANCEL refers to (§9.2): same branch and sent-by."""
        via = cancel.top_via
        return self._servers.get((via.branch or "", via.sent_by, "INVITE"))

    @property
    def active(self) -> int:
        return len(self._clients) + len(self._servers)

    # Internals ------------------------------------------------------------------------
    def _receive_response(self, resp: Response, source: Destination, now: float) -> None:
        via = resp.top_via
        method = resp.cseq.method
        tx = self._clients.get((via.branch or "", method))
        if tx is None:
            if method == "INVITE" and 200 <= resp.status < 300:
                self._events.append(StrayResponse(resp, source))
            return
        tx._on_response(resp, now)

    def _receive_request(self, req: Request, source: Destination, now: float) -> None:
        via = req.top_via
        branch = via.branch or ""
        if req.method == "ACK":
            tx = self._servers.get((branch, via.sent_by, "INVITE"))
            if tx is not None and tx._on_ack(req, now):
                return
            accepted = self._accepted.get((req.call_id, req.cseq.seq))
            if accepted is not None and accepted._on_ack(req, now):
                return  # it queued AckReceived itself
            self._events.append(AckReceived(req, source))
            return
        key = (branch, via.sent_by, req.method)
        tx = self._servers.get(key)
        if tx is not None:
            tx._on_retransmission()
            return
        stx = ServerTransaction(self, req, source, key)
        stx.state = TxState.PROCEEDING if req.method == "INVITE" else TxState.TRYING
        self._servers[key] = stx
        # Until the TU answers, a server transaction must still end (Rule 2).
        stx._arm("L" if req.method == "INVITE" else "J", now + 64 * T1 * 4)
        if req.method == "INVITE":
            stx._arm("Trying", now + 0.2)
        self._events.append(RequestReceived(req, stx))

    def _send(self, data: bytes, dest: Destination) -> None:
        self._out.append((data, dest))

    def _schedule(self, tx: _Base, at: float) -> None:
        heap = self._heap
        heapq.heappush(heap, (at, next(self._seq), tx))
        if len(heap) > self._compact_at:
            self._compact()

    def _compact(self) -> None:
        """Drop the heap entries of timers that were stopped or re-armed and of ended transactions.

        Such entries are only skipped once they reach the top of the heap, and until then they
        keep whole transactions alive: every INVITE's 128 s guard (Timer L before an answer) and
        every non-INVITE's Timer J guard would hold its messages for two minutes, a heap the
        garbage collector walks again and again. Done in place (``handle_timer`` may be iterating)
        when the heap has doubled, so it costs O(1) per timer armed.
        """
        heap = self._heap
        heap[:] = [e for e in heap if not e[2].terminated and e[0] in e[2].timers.values()]
        heapq.heapify(heap)
        self._compact_at = max(_COMPACT_MIN, 2 * len(heap))

    def _forget(self, tx: _Base) -> None:
        if isinstance(tx, ClientTransaction):
            if self._clients.get(tx.key) is tx:
                del self._clients[tx.key]
        elif self._servers.get(tx.key) is tx:
            del self._servers[tx.key]
            if tx.is_invite:
                akey = (tx.request.call_id, tx.request.cseq.seq)
                if self._accepted.get(akey) is tx:
                    del self._accepted[akey]
