"""Building responses and requests from their RFC 3261 recipes (§8.1.1, §8.2.6, §12.2.1).

One place knows which headers a response copies from its request, how tags and
branches are generated and what a CANCEL or a non-2xx ACK must look like, so no
module assembles SIP text by string concatenation.
"""

from __future__ import annotations

import os
import secrets

from telephony.sip.message import Headers, Request, Response, reason_phrase

__all__ = [
    "BRANCH_MAGIC",
    "make_ack_for_non2xx",
    "make_cancel",
    "make_response",
    "new_branch",
    "new_call_id",
    "new_tag",
]

BRANCH_MAGIC = "z9hG4bK"
_ECHOED_FIRST = ("from", "to", "call-id", "cseq")  # with every Via, copied into responses (§8.2.6.2)


_pool = b""
_pos = 0


def _random_hex(nbytes: int) -> str:
    """``secrets.token_hex(nbytes)``, drawn from a pool filled 4 KiB at a time: the same
    operating-system randomness (RFC 3261 §19.3 wants tags and branches cryptographically
    random), without a getrandom() system call for every tag, branch and Call-ID."""
    global _pool, _pos
    end = _pos + nbytes
    if end > len(_pool):
        _pool, _pos, end = secrets.token_bytes(4096), 0, nbytes
    chunk = _pool[_pos:end]
    _pos = end
    return chunk.hex()


def _forget_pool() -> None:  # a forked child must not hand out its parent's next tags
    global _pool, _pos
    _pool, _pos = b"", 0


os.register_at_fork(after_in_child=_forget_pool)


def new_branch() -> str:
    return BRANCH_MAGIC + _random_hex(8)


def new_tag() -> str:
    return _random_hex(6)


def new_call_id(host: str) -> str:
    return f"{_random_hex(12)}@{host}"


def make_response(
    request_headers: Headers,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    extra: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    content_type: str | None = None,
) -> Response:
    """A response copying Via, From, To, Call-ID and CSeq (§8.2.6.2).

    Takes headers rather than a Request so that a 400 can be built from the headers
    salvaged out of a request that failed to parse.
    """
    h = Headers()
    h._copy_from(request_headers, ("via",))
    h._copy_from(request_headers, _ECHOED_FIRST, first_only=True)
    to = h.get("to")
    if to_tag and to is not None and ";tag=" not in to.replace(" ", "").lower() and status != 100:
        h.set("To", f"{to};tag={to_tag}")
    for name, value in extra or ():
        h.add(name, value)
    if body and content_type:
        h.set("Content-Type", content_type)
    return Response(status, reason if reason is not None else reason_phrase(status), h, body)


def make_cancel(invite: Request) -> Request:
    """CANCEL for a pending INVITE: same Request-URI, Call-ID, From, To, CSeq number and
    the same top Via (so the same branch) as the INVITE (§9.1)."""
    h = Headers()
    h.set("Via", invite.headers.get_all("via")[0])
    for name in ("from", "to", "call-id"):
        h.set(name, invite.headers.get(name) or "")
    h.set("CSeq", f"{invite.cseq.seq} CANCEL")
    h.set("Max-Forwards", "70")
    routes = invite.headers.get_all("route")
    if routes:
        h.set_all("Route", routes)
    return Request("CANCEL", invite.uri, h)


def make_ack_for_non2xx(invite: Request, response: Response) -> Request:
    """ACK sent by the INVITE client transaction for a 3xx-6xx (§17.1.1.3)."""
    h = Headers()
    h.set("Via", invite.headers.get_all("via")[0])
    h.set("From", invite.headers.get("from") or "")
    h.set("To", response.headers.get("to") or "")
    h.set("Call-ID", invite.call_id)
    h.set("CSeq", f"{invite.cseq.seq} ACK")
    h.set("Max-Forwards", "70")
    routes = invite.headers.get_all("route")
    if routes:
        h.set_all("Route", routes)
    return Request("ACK", invite.uri, h)
