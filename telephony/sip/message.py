"""SIP requests and responses: parsing, validation and serialization (RFC 3261 §7, §20, §25).

A message is parsed once into a :class:`Request` or :class:`Response` whose headers live
in a case-insensitive multi-map (:class:`Headers`) that understands compact forms
(§7.3.3) and comma-folded list headers (§7.3.1). Structured views (Via, From, To, CSeq,
Contact) are parsed on first use and cached, so the hot path pays only for what it reads.

Errors follow h11's split: :class:`RemoteProtocolError` when the peer sent something
broken (it carries ``status_hint``, the response to answer with, and whatever headers
could be salvaged so a 400 can still reach the sender) and :class:`LocalProtocolError`
when this program tried to send something illegal. Nothing else escapes the parser.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Final

from telephony.sip.uri import Address, SipSyntaxError, SipURI, Via, split_commas

__all__ = [
    "MAX_MESSAGE_SIZE",
    "CSeq",
    "Headers",
    "LocalProtocolError",
    "Message",
    "ProtocolError",
    "RemoteProtocolError",
    "Request",
    "Response",
    "parse_message",
    "reason_phrase",
    "salvage_head",
]

MAX_MESSAGE_SIZE: Final = 65535
SIP_VERSION: Final = "SIP/2.0"

# Compact forms (§7.3.3, RFC 3262/3265/3515/4028/3841).
_COMPACT: Final[dict[str, str]] = {
    "i": "call-id", "m": "contact", "e": "content-encoding", "l": "content-length",
    "c": "content-type", "f": "from", "s": "subject", "k": "supported", "t": "to",
    "v": "via", "o": "event", "r": "refer-to", "b": "referred-by", "u": "allow-events",
    "x": "session-expires", "a": "accept-contact", "j": "reject-contact",
    "d": "request-disposition", "y": "identity",
}  # fmt: skip

_DISPLAY: Final[dict[str, str]] = {
    name.lower(): name
    for name in (
        "Via", "From", "To", "Call-ID", "CSeq", "Contact", "Max-Forwards", "Content-Length",
        "Content-Type", "Route", "Record-Route", "Allow", "Supported", "Require", "Proxy-Require",
        "Unsupported", "Expires", "Min-Expires", "User-Agent", "Server", "WWW-Authenticate",
        "Authorization", "Proxy-Authenticate", "Proxy-Authorization", "Reason", "Retry-After",
        "Accept", "Allow-Events", "Event", "Subscription-State", "Content-Disposition",
        "Warning", "Date", "Timestamp", "Subject", "Organization", "P-Asserted-Identity",
        "Session-Expires", "Min-SE", "RSeq", "RAck", "Refer-To", "Referred-By", "Path",
        "Accept-Encoding", "Accept-Language", "Content-Encoding", "Priority", "Call-Info",
        "Alert-Info", "In-Reply-To", "Reply-To", "MIME-Version", "Authentication-Info",
    )
}  # fmt: skip

# Headers whose values may be comma-folded lists (§7.3.1). Others (Authorization, Date,
# WWW-Authenticate...) contain commas as part of one value and must not be split.
_LIST_HEADERS: Final = frozenset(
    {
        "via", "contact", "route", "record-route", "allow", "supported", "require",
        "proxy-require", "unsupported", "accept", "accept-encoding", "accept-language",
        "content-encoding", "allow-events", "path", "in-reply-to", "call-info", "alert-info",
        "error-info", "reason", "warning", "p-asserted-identity",
    }
)  # fmt: skip

_REQUIRED_REQUEST_HEADERS: Final = ("via", "from", "to", "call-id", "cseq")

_REASONS: Final[dict[int, str]] = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 200: "OK", 202: "Accepted", 301: "Moved Permanently",
    302: "Moved Temporarily", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 407: "Proxy Authentication Required",
    408: "Request Timeout", 410: "Gone", 413: "Request Entity Too Large", 415: "Unsupported Media Type",
    416: "Unsupported URI Scheme", 420: "Bad Extension", 423: "Interval Too Brief",
    480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist", 482: "Loop Detected",
    483: "Too Many Hops", 484: "Address Incomplete", 486: "Busy Here", 487: "Request Terminated",
    488: "Not Acceptable Here", 491: "Request Pending", 500: "Server Internal Error",
    501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Server Time-out",
    505: "Version Not Supported", 513: "Message Too Large", 600: "Busy Everywhere", 603: "Decline",
    604: "Does Not Exist Anywhere", 606: "Not Acceptable",
}  # fmt: skip


def reason_phrase(status: int) -> str:
    return _REASONS.get(status, "Unknown")


# Header names as written -> canonical key. Names repeat endlessly ("Via", "call-id", "v"),
# so the strip/lower/compact-form step runs once per spelling, not once per header line.
_CANON: dict[str, str] = {}
_CANON_LIMIT: Final = 4096  # peers could send endless made-up names: stop caching, keep working


def _canonical(name: str) -> str:
    key = _CANON.get(name)
    if key is None:
        key = name.strip().lower()
        key = _COMPACT.get(key, key)
        # Only valid token names are remembered: the parser trusts a cached spelling.
        if key and " " not in key and "\t" not in key and len(_CANON) < _CANON_LIMIT:
            _CANON[name] = key
    return key


_DISPLAY_CACHE: dict[str, str] = dict(_DISPLAY)


def _display(key: str) -> str:
    disp = _DISPLAY_CACHE.get(key)
    if disp is None:
        disp = "-".join(p[:1].upper() + p[1:] for p in key.split("-"))
        if len(_DISPLAY_CACHE) < _CANON_LIMIT:
            _DISPLAY_CACHE[key] = disp
    return disp


for _name in (*_DISPLAY, *_DISPLAY.values(), *_COMPACT):
    _canonical(_name)


class ProtocolError(Exception):
    """Base of SIP protocol errors. ``status_hint`` is the response to answer with."""

    def __init__(self, message: str, *, status_hint: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status_hint = status_hint


class LocalProtocolError(ProtocolError):
    """We tried to build or send a message that breaks the protocol: a bug on our side."""


class RemoteProtocolError(ProtocolError):
    """The peer sent a message that breaks the protocol.

    ``headers`` holds whatever could be salvaged (Via, From, To, Call-ID, CSeq), so the
    transport can still answer a broken request with ``status_hint`` and this message as
    the reason phrase; ``is_request`` tells whether an answer is due at all.
    """

    def __init__(
        self,
        message: str,
        *,
        status_hint: int = 400,
        headers: Headers | None = None,
        is_request: bool = True,
    ) -> None:
        super().__init__(message, status_hint=status_hint)
        self.headers = headers
        self.is_request = is_request


class Headers:
    """Case-insensitive, order-keeping multi-map of header values.

    Keys are canonical long names in lower case; list headers are stored one value per
    element, already split at top-level commas, so ``get_all("Via")`` is the Via list.
    Values are kept as tuples of strings: the garbage collector stops tracking those, which
    matters because transactions keep their messages for up to 64*T1 (32 s).
    """

    __slots__ = ("_map",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._map: dict[str, tuple[str, ...]] = {}
        for name, value in items:
            self.add(name, value)

    def add(self, name: str, value: str) -> None:
        key = _canonical(name)
        values = tuple(split_commas(value)) if key in _LIST_HEADERS else (value.strip(),)
        bucket = self._map.get(key)
        self._map[key] = values if bucket is None else bucket + values

    def prepend(self, name: str, value: str) -> None:
        key = _canonical(name)
        self._map[key] = (value, *self._map.get(key, ()))

    def set(self, name: str, value: str | int) -> None:
        self._map[_canonical(name)] = (str(value),)

    def set_all(self, name: str, values: Iterable[str]) -> None:
        vals = tuple(values)
        key = _canonical(name)
        if vals:
            self._map[key] = vals
        else:
            self._map.pop(key, None)

    def get(self, name: str, default: str | None = None) -> str | None:
        values = self._map.get(_CANON.get(name) or _canonical(name))
        return values[0] if values else default

    def get_all(self, name: str) -> list[str]:
        return list(self._map.get(_CANON.get(name) or _canonical(name), ()))

    def remove(self, name: str) -> None:
        self._map.pop(_canonical(name), None)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (_CANON.get(name) or _canonical(name)) in self._map

    def items(self) -> Iterator[tuple[str, str]]:
        for key, values in self._map.items():
            disp = _display(key)
            for v in values:
                yield disp, v

    def copy(self) -> Headers:
        h = Headers()
        h._map = dict(self._map)  # the value tuples are immutable: share them
        return h

    def _copy_from(self, other: Headers, keys: Iterable[str], *, first_only: bool = False) -> None:
        """Copy the values (or only the first) of canonical ``keys`` that ``other`` has:
        responses echo Via, From, To, Call-ID and CSeq without re-parsing them."""
        src = other._map
        for key in keys:
            values = src.get(key)
            if values:
                self._map[key] = values[:1] if first_only else values

    def _lines(self, out: list[str]) -> None:
        """Append ``Name: value`` lines for every header but Content-Length."""
        for key, values in self._map.items():
            if key == "content-length":
                continue
            disp = _DISPLAY_CACHE.get(key) or _display(key)
            if len(values) == 1:
                out.append(f"{disp}: {values[0]}")
            else:
                out.extend(f"{disp}: {v}" for v in values)

    def __repr__(self) -> str:
        return f"Headers({list(self.items())!r})"


@dataclass(frozen=True, slots=True)
class CSeq:
    seq: int
    method: str

    @classmethod
    def parse(cls, text: str) -> CSeq:
        num, _, method = text.strip().partition(" ")
        method = method.strip()
        if not num.isdigit() or not method or len(num) > 10 or int(num) >= 2**31:
            raise SipSyntaxError(f"CSeq {text!r} must be a number below 2^31 and a method, e.g. '1 INVITE'")
        return cls(int(num), method)

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


class Message:
    """Fields and lazy structured views shared by requests and responses."""

    __slots__ = ("_cache", "body", "headers")

    def __init__(self, headers: Headers | None = None, body: bytes = b"") -> None:
        self.headers = headers if headers is not None else Headers()
        self.body = body
        self._cache: dict[str, object] = {}

    def invalidate(self) -> None:
        """Forget cached views after editing headers in place."""
        self._cache.clear()

    # Structured views -------------------------------------------------------------
    @property
    def vias(self) -> list[Via]:
        v = self._cache.get("via")
        if v is None:
            v = [Via.parse(x) for x in self.headers.get_all("via")]
            self._cache["via"] = v
        return v  # type: ignore[return-value]

    @property
    def top_via(self) -> Via:
        vias = self.vias
        if not vias:
            raise RemoteProtocolError("missing Via header")
        return vias[0]

    @property
    def from_(self) -> Address:
        return self._address("from")

    @property
    def to(self) -> Address:
        return self._address("to")

    def _address(self, key: str) -> Address:
        a = self._cache.get(key)
        if a is None:
            raw = self.headers.get(key)
            if raw is None:
                raise RemoteProtocolError(f"missing {_display(key)} header")
            a = Address.parse(raw)
            self._cache[key] = a
        return a  # type: ignore[return-value]

    @property
    def contacts(self) -> list[Address]:
        c = self._cache.get("contact")
        if c is None:
            c = [Address.parse(x) for x in self.headers.get_all("contact")]
            self._cache["contact"] = c
        return c  # type: ignore[return-value]

    @property
    def call_id(self) -> str:
        cid = self.headers.get("call-id")
        if not cid:
            raise RemoteProtocolError("missing Call-ID header")
        return cid

    @property
    def cseq(self) -> CSeq:
        c = self._cache.get("cseq")
        if c is None:
            raw = self.headers.get("cseq")
            if raw is None:
                raise RemoteProtocolError("missing CSeq header")
            c = CSeq.parse(raw)
            self._cache["cseq"] = c
        return c  # type: ignore[return-value]

    @property
    def content_type(self) -> str | None:
        ct = self.headers.get("content-type")
        return ct.split(";", 1)[0].strip().lower() if ct else None

    def _serialize(self, start_line: str) -> bytes:
        lines = [start_line]
        self.headers._lines(lines)
        lines.append(f"Content-Length: {len(self.body)}\r\n\r\n")
        return "\r\n".join(lines).encode() + self.body


class Request(Message):
    __slots__ = ("method", "uri")

    def __init__(self, method: str, uri: SipURI | str, headers: Headers | None = None, body: bytes = b"") -> None:
        super().__init__(headers, body)
        self.method = method
        self.uri = uri if isinstance(uri, SipURI) else SipURI.parse(uri)

    def to_bytes(self) -> bytes:
        return self._serialize(f"{self.method} {self.uri} {SIP_VERSION}")

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri}>"


class Response(Message):
    __slots__ = ("reason", "status")

    def __init__(
        self, status: int, reason: str | None = None, headers: Headers | None = None, body: bytes = b""
    ) -> None:
        if not 100 <= status <= 699:
            raise LocalProtocolError(f"status {status} is outside 100-699")
        super().__init__(headers, body)
        self.status = status
        self.reason = reason if reason is not None else reason_phrase(status)

    def to_bytes(self) -> bytes:
        return self._serialize(f"{SIP_VERSION} {self.status} {self.reason}")

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason}>"


def salvage_head(data: bytes, limit: int = MAX_MESSAGE_SIZE) -> tuple[Headers, bool]:
    """Via, From, To, Call-ID and CSeq read from the first ``limit`` bytes of a message
    that cannot be parsed as a whole (too large, or cut off on a stream), so that a
    513 or 400 can still be sent to where it came from (§21.5.14). Returns the headers
    and whether the message looks like a request. A header line that may have been cut
    by ``limit`` is not trusted. Never raises.
    """
    window = data[:limit]
    end = window.find(b"\r\n\r\n")
    complete = end >= 0
    if complete:
        window = window[:end]
    text = window.decode("utf-8", "replace")
    raw_lines = text.split("\n")
    if not complete and len(raw_lines) > 1:
        raw_lines = raw_lines[:-1]  # possibly cut in the middle
    is_request = not raw_lines[0].lstrip().startswith("SIP/")
    lines: list[str] = []
    for raw in raw_lines[1:]:
        line = raw.rstrip("\r")
        if line[:1] in (" ", "\t") and lines:
            lines[-1] += " " + line.strip()
        elif line:
            lines.append(line)
    return _salvage(lines), is_request


def _salvage(lines: list[str]) -> Headers:
    h = Headers()
    for line in lines:
        name, sep, value = line.partition(":")
        if sep and _canonical(name) in _REQUIRED_REQUEST_HEADERS:
            try:
                h.add(name, value)
            except SipSyntaxError:
                continue
    return h


def parse_message(data: bytes, *, stream: bool = False) -> Request | Response:
    """Parse one complete SIP message.

    ``stream`` is True for TCP, where the framer has already cut the message at
    Content-Length. On UDP a body longer than Content-Length is truncated and a shorter
    one is an error (§18.3). Raises :class:`RemoteProtocolError` and nothing else.
    """
    try:
        return _parse(data, stream)
    except RemoteProtocolError:
        raise
    except (SipSyntaxError, ValueError, IndexError) as exc:  # defensive: grammar corners
        raise RemoteProtocolError(f"malformed message: {exc}") from None


def _parse(data: bytes, stream: bool) -> Request | Response:
    if len(data) > MAX_MESSAGE_SIZE:
        headers, is_request = salvage_head(data)
        raise RemoteProtocolError(
            f"message of {len(data)} bytes exceeds the {MAX_MESSAGE_SIZE}-byte limit",
            status_hint=513,
            headers=headers,
            is_request=is_request,
        )
    sep = data.find(b"\r\n\r\n")
    if sep >= 0:
        head_bytes, body = data[:sep], data[sep + 4 :]
    else:
        sep = data.find(b"\n\n")
        if sep >= 0:
            head_bytes, body = data[:sep], data[sep + 2 :]
        else:
            head_bytes, body = data.rstrip(b"\r\n"), b""
    try:
        head = head_bytes.decode("utf-8")
    except UnicodeDecodeError:
        raise RemoteProtocolError("header section is not valid UTF-8") from None
    if "\r" in head:
        head = head.replace("\r\n", "\n")
    raw_lines = head.split("\n")
    start = raw_lines[0].rstrip("\r").strip()
    lines = raw_lines[1:]
    if "\n " in head or "\n\t" in head or "\r" in head or "" in lines:
        # Unfold continuation lines (§7.3.1: a line starting with whitespace continues the
        # last), drop blank ones and stray CRs: the slow path, for unusual peers only.
        lines = []
        for raw in raw_lines[1:]:
            line = raw.rstrip("\r")
            if line[:1] in (" ", "\t") and lines:
                lines[-1] += " " + line.strip()
            elif line:
                lines.append(line)

    is_response = start.startswith("SIP/")
    headers = Headers()
    hmap = headers._map
    canon = _CANON
    for line in lines:
        name, colon, value = line.partition(":")
        key = canon.get(name)
        if key is None:
            name = name.strip()
            if not colon or not name or " " in name:
                raise RemoteProtocolError(
                    f"header line {line[:40]!r} has no 'Name:' part",
                    headers=_salvage(lines),
                    is_request=not is_response,
                )
            key = _canonical(name)
        elif not colon:
            raise RemoteProtocolError(
                f"header line {line[:40]!r} has no 'Name:' part", headers=_salvage(lines), is_request=not is_response
            )
        values: tuple[str, ...]
        if key not in _LIST_HEADERS:
            values = (value.strip(),)
        elif "," in value:
            values = tuple(split_commas(value))
        else:
            stripped = value.strip()
            values = (stripped,) if stripped else ()
        bucket = hmap.get(key)
        hmap[key] = values if bucket is None else bucket + values

    if is_response:
        return _parse_response(start, headers, body, stream)
    return _parse_request(start, headers, body, stream)


def _body_for(headers: Headers, body: bytes, stream: bool, is_request: bool) -> bytes:
    cl = headers.get("content-length")
    if cl is None:
        if stream:
            raise RemoteProtocolError(
                "Content-Length is required on stream transports", headers=headers, is_request=is_request
            )
        return body
    if not cl.isdigit():
        raise RemoteProtocolError(f"Content-Length {cl!r} is not a number", headers=headers, is_request=is_request)
    n = int(cl)
    if n > len(body):
        raise RemoteProtocolError(
            f"Content-Length {n} is larger than the {len(body)}-byte body", headers=headers, is_request=is_request
        )
    return body[:n]


def _parse_request(start: str, headers: Headers, body: bytes, stream: bool) -> Request:
    parts = start.split(" ")
    if len(parts) != 3 or not parts[0] or not parts[1]:
        raise RemoteProtocolError(f"request line {start[:60]!r} is not 'METHOD URI SIP/2.0'", headers=headers)
    method, uri_text, version = parts
    if version.upper() != SIP_VERSION:
        raise RemoteProtocolError(f"unsupported version {version[:20]!r}", status_hint=505, headers=headers)
    if not method.isalpha() or not method.isupper():
        raise RemoteProtocolError(f"method {method[:20]!r} is not an upper-case token", headers=headers)
    hmap = headers._map
    for key in _REQUIRED_REQUEST_HEADERS:
        if key not in hmap:
            raise RemoteProtocolError(f"missing {_display(key)} header", headers=headers)
    if not hmap["call-id"][0]:
        raise RemoteProtocolError("empty Call-ID header", headers=headers)
    try:
        uri = SipURI.parse(uri_text)
    except SipSyntaxError as exc:
        scheme = uri_text.split(":", 1)[0].lower() if ":" in uri_text else ""
        status = 416 if scheme.isalpha() and scheme not in ("sip", "sips", "tel") else 400
        raise RemoteProtocolError(f"bad Request-URI: {exc}", status_hint=status, headers=headers) from None
    req = Request(method, uri, headers, _body_for(headers, body, stream, True))
    try:
        cseq = req.cseq
        via = req.top_via
        req.from_  # noqa: B018 - validates From
        req.to  # noqa: B018 - validates To
    except SipSyntaxError as exc:
        raise RemoteProtocolError(str(exc), headers=headers) from None
    if cseq.method != method:
        raise RemoteProtocolError(
            f"CSeq method {cseq.method!r} does not match request method {method!r}", headers=headers
        )
    if not via.branch and method != "ACK":
        # RFC 2543 peers omit the magic cookie; we still require *a* branch to key transactions.
        raise RemoteProtocolError("top Via has no branch parameter", headers=headers)
    mfs = hmap.get("max-forwards")
    mf = mfs[0] if mfs else None
    if mf is not None and (not mf.isdigit() or int(mf) > 255):
        raise RemoteProtocolError(f"Max-Forwards {mf!r} is not 0-255", headers=headers)
    return req


def _parse_response(start: str, headers: Headers, body: bytes, stream: bool) -> Response:
    parts = start.split(" ", 2)
    if len(parts) < 2 or parts[0].upper() != SIP_VERSION or not parts[1].isdigit() or len(parts[1]) != 3:
        raise RemoteProtocolError(f"status line {start[:60]!r} is not 'SIP/2.0 NNN Reason'", is_request=False)
    status = int(parts[1])
    if not 100 <= status <= 699:
        raise RemoteProtocolError(f"status {status} is outside 100-699", is_request=False)
    hmap = headers._map
    for key in _REQUIRED_REQUEST_HEADERS:
        values = hmap.get(key)
        if not values or not values[0]:
            raise RemoteProtocolError(f"response without {_display(key)}", is_request=False)
    resp = Response(status, parts[2] if len(parts) > 2 else "", headers, _body_for(headers, body, stream, False))
    try:
        resp.cseq  # noqa: B018
        resp.top_via  # noqa: B018
    except SipSyntaxError as exc:
        raise RemoteProtocolError(str(exc), is_request=False) from None
    return resp
