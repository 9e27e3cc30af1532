"""SIP dialogs (RFC 3261 §12) and the mapping of final responses to call outcomes.

A :class:`Dialog` holds the state both ends agree on once an INVITE is answered: Call-ID,
tags, CSeq counters, remote target and route set. It builds in-dialog requests (BYE,
re-INVITE, ACK for 2xx, OPTIONS, INFO) and checks the ordering of requests it receives.
It is pure: the caller supplies the Via (with a fresh branch) for each request it sends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from telephony.sip.message import Headers, RemoteProtocolError, Request, Response
from telephony.sip.uri import Address, SipURI

__all__ = ["CallOutcome", "Dialog", "Outcome", "outcome_for_status", "reason_header"]


class CallOutcome(StrEnum):
    """Typed outcome of a call attempt: every final response maps to exactly one (see
    :func:`outcome_for_status` for the table)."""

    ANSWERED = "answered"
    BUSY = "busy"
    NO_ANSWER = "no_answer"  # our ring timeout fired and we cancelled
    REJECTED = "rejected"
    UNAVAILABLE = "unavailable"
    NOT_FOUND = "not_found"
    FAILED = "failed"
    CANCELLED = "cancelled"  # we cancelled on purpose (not a ring timeout)


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of an INVITE: typed outcome, SIP status and phrase, and any Reason header (RFC 3326)."""

    outcome: CallOutcome
    sip_status: int | None = None
    sip_reason: str | None = None
    reason_header: str | None = None
    detail: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "outcome": self.outcome.value,
            "sip_status": self.sip_status,
            "sip_reason": self.sip_reason,
            "reason_header": self.reason_header,
            "detail": self.detail,
        }


_STATUS_OUTCOME: dict[int, CallOutcome] = {
    486: CallOutcome.BUSY, 600: CallOutcome.BUSY,
    404: CallOutcome.NOT_FOUND, 604: CallOutcome.NOT_FOUND, 484: CallOutcome.NOT_FOUND, 410: CallOutcome.NOT_FOUND,
    480: CallOutcome.UNAVAILABLE, 503: CallOutcome.UNAVAILABLE, 408: CallOutcome.UNAVAILABLE,
    502: CallOutcome.UNAVAILABLE, 504: CallOutcome.UNAVAILABLE,
    403: CallOutcome.REJECTED, 603: CallOutcome.REJECTED, 607: CallOutcome.REJECTED, 488: CallOutcome.REJECTED,
    606: CallOutcome.REJECTED, 487: CallOutcome.CANCELLED,
}  # fmt: skip


def reason_header(headers: Headers) -> str | None:
    """Every Reason value of a message, in order, joined with ", " (RFC 3326 allows one per
    protocol, e.g. ``SIP;cause=486`` and ``Q.850;cause=17;text="User busy"``); None if absent."""
    values = headers.get_all("reason")
    return ", ".join(values) if values else None


def outcome_for_status(resp: Response) -> Outcome:
    """Map a final response to an :class:`Outcome`, keeping the status, phrase and every Reason.

    ========================================  ===============
    2xx                                       ``answered``
    486 Busy Here, 600 Busy Everywhere        ``busy``
    403, 488, 603 Decline, 606, 607           ``rejected``
    480, 502, 503, 504, 408 Request Timeout   ``unavailable``
    404, 410, 484, 604                        ``not_found``
    487 Request Terminated                    ``cancelled``
    anything else (401/407 we could not       ``failed``
    answer, 5xx errors, ...)
    ========================================  ===============

    ``no_answer`` never comes from a response: it means OUR ring timeout fired and we
    sent CANCEL (the UA turns the resulting 487 into ``no_answer``). A 408 from the far
    end means a proxy or carrier could not reach the callee in time (its own timer, an
    unreachable phone), which is why it is ``unavailable``, like 480; our own Timer B
    (no response at all) is ``failed`` with status 408 and a ``detail`` saying so.
    """
    code = resp.status
    kind = CallOutcome.ANSWERED if 200 <= code < 300 else _STATUS_OUTCOME.get(code, CallOutcome.FAILED)
    return Outcome(kind, code, resp.reason, reason_header(resp.headers))


@dataclass
class Dialog:
    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: str  # From (UAC) / To (UAS) header value without tag, as sent
    remote_uri: str
    remote_target: SipURI
    local_seq: int
    remote_seq: int | None
    route_set: list[str] = field(default_factory=list)
    local_contact: str = ""

    @property
    def id(self) -> tuple[str, str, str]:
        return (self.call_id, self.local_tag, self.remote_tag)

    @classmethod
    def from_uac(cls, invite: Request, response: Response) -> Dialog:
        """Dialog state of the caller after a 2xx (or tagged 1xx) (§12.1.2)."""
        to = response.to
        if not to.tag:
            raise RemoteProtocolError("2xx to INVITE has no To tag", is_request=False)
        contact = response.contacts[0].uri if response.contacts else invite.uri
        routes = list(reversed(response.headers.get_all("record-route")))
        from_ = invite.from_
        return cls(
            call_id=invite.call_id,
            local_tag=from_.tag or "",
            remote_tag=to.tag,
            local_uri=_without_tag(from_),
            remote_uri=_without_tag(to),
            remote_target=contact,
            local_seq=invite.cseq.seq,
            remote_seq=None,
            route_set=routes,
            local_contact=invite.headers.get("contact") or "",
        )

    @classmethod
    def from_uas(cls, invite: Request, local_tag: str, local_contact: str) -> Dialog:
        """Dialog state of the callee when it answers (§12.1.1)."""
        contact = invite.contacts[0].uri if invite.contacts else invite.from_.uri
        return cls(
            call_id=invite.call_id,
            local_tag=local_tag,
            remote_tag=invite.from_.tag or "",
            local_uri=_without_tag(invite.to),
            remote_uri=_without_tag(invite.from_),
            remote_target=contact,
            local_seq=0,
            remote_seq=invite.cseq.seq,
            route_set=invite.headers.get_all("record-route"),
            local_contact=local_contact,
        )

    def matches(self, msg: Request | Response) -> bool:
        if msg.call_id != self.call_id:
            return False
        if isinstance(msg, Request):
            return msg.to.tag == self.local_tag and (msg.from_.tag or "") == self.remote_tag
        return msg.from_.tag == self.local_tag and (msg.to.tag or "") == self.remote_tag

    def check_remote_cseq(self, req: Request) -> bool:
        """§12.2.2: a lower CSeq than the last one is out of order (answer 500)."""
        seq = req.cseq.seq
        if req.method in ("ACK", "CANCEL"):
            return True
        if self.remote_seq is not None and seq <= self.remote_seq:
            return False
        self.remote_seq = seq
        return True

    def create_request(
        self,
        method: str,
        via: str,
        *,
        body: bytes = b"",
        content_type: str | None = None,
        extra: list[tuple[str, str]] | None = None,
        cseq: int | None = None,
    ) -> Request:
        """An in-dialog request (§12.2.1.1). ACK reuses the INVITE's CSeq number via ``cseq``."""
        if cseq is None:
            self.local_seq += 1
            cseq = self.local_seq
        h = Headers()
        h.set("Via", via)
        h.set("Max-Forwards", "70")
        h.set("From", f"{self.local_uri};tag={self.local_tag}")
        h.set("To", f"{self.remote_uri};tag={self.remote_tag}")
        h.set("Call-ID", self.call_id)
        h.set("CSeq", f"{cseq} {method}")
        uri = self.remote_target
        if self.route_set:
            first = Address.parse(self.route_set[0]).uri
            if "lr" in first.params:
                h.set_all("Route", self.route_set)
            else:  # strict router (§12.2.1.1): it becomes the Request-URI
                uri = first
                h.set_all("Route", [*self.route_set[1:], f"<{self.remote_target}>"])
        if self.local_contact and method in ("INVITE", "UPDATE"):
            h.set("Contact", self.local_contact)
        for name, value in extra or ():
            h.add(name, value)
        if body and content_type:
            h.set("Content-Type", content_type)
        return Request(method, uri, h, body)


def _without_tag(addr: Address) -> str:
    """The header value of ``addr`` (the message's cached view, left untouched) without its tag."""
    if "tag" in addr.params:
        addr = Address(addr.uri, addr.display_name, {k: v for k, v in addr.params.items() if k != "tag"})
    return str(addr)
