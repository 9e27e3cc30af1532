"""SDP session descriptions (RFC 4566) and the offer/answer model (RFC 3264) for G.711 calls.

:class:`SessionDescription` parses and serializes any well-formed SDP body, keeping lines it
does not interpret so a description round-trips. On top of it sit the three offer/answer
steps a UA needs: :func:`build_offer`, :func:`answer_offer` (RFC 3264 §6: keep the offered
m= lines in order, port 0 for the ones we reject, mirror the direction) and
:func:`accept_answer` (§7). The outcome of a negotiation is a :class:`MediaParams`: where to
send, which payload type and codec (PCMU PT 0 / PCMA PT 8), the RFC 4733 telephone-event
payload type, ptime and our direction. Hold is understood both as ``a=sendonly``/``a=inactive``
(RFC 3264 §8.4) and as the legacy RFC 2543 ``c=IN IP4 0.0.0.0``.

Errors: :class:`SdpError` (a body that is not valid SDP, ``status_hint`` 400) and its subclass
:class:`SdpNegotiationError` (valid SDP with nothing we can accept, ``status_hint`` 488).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

__all__ = [
    "CODEC_PAYLOAD_TYPES",
    "DIRECTIONS",
    "Connection",
    "Direction",
    "MediaDescription",
    "MediaParams",
    "Origin",
    "SdpError",
    "SdpNegotiationError",
    "SessionDescription",
    "accept_answer",
    "answer_offer",
    "build_offer",
    "negotiate",
    "reverse_direction",
]

Direction = Literal["sendrecv", "sendonly", "recvonly", "inactive"]
DIRECTIONS: Final[tuple[Direction, ...]] = ("sendrecv", "sendonly", "recvonly", "inactive")

#: Static payload types of RFC 3551 table 4 for the codecs this stack speaks.
CODEC_PAYLOAD_TYPES: Final[dict[str, int]] = {"PCMU": 0, "PCMA": 8}
_STATIC_NAMES: Final[dict[int, str]] = {0: "PCMU", 8: "PCMA"}
# Other RFC 3551 static types, only so a 488 message can name what the peer offered.
_OTHER_STATIC: Final[dict[int, str]] = {3: "GSM", 4: "G723", 9: "G722", 13: "CN", 18: "G729"}
DEFAULT_PTIME: Final = 20
DEFAULT_DTMF_PT: Final = 101
_RTP_PROFILES: Final = frozenset({"RTP/AVP", "RTP/AVPF"})
_HOLD_ADDRESSES: Final = frozenset({"0.0.0.0"})


class SdpError(ValueError):
    """A session description that is not valid SDP. ``status_hint`` is the SIP response to send."""

    def __init__(self, message: str, *, status_hint: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status_hint = status_hint


class SdpNegotiationError(SdpError):
    """Valid SDP that offers nothing we can accept (answer 488 Not Acceptable Here)."""

    def __init__(self, message: str, *, status_hint: int = 488) -> None:
        super().__init__(message, status_hint=status_hint)


def reverse_direction(direction: Direction) -> Direction:
    """The direction seen from the other end (RFC 3264 §6.1): sendonly <-> recvonly."""
    if direction == "sendonly":
        return "recvonly"
    if direction == "recvonly":
        return "sendonly"
    return direction


def _intersect(a: Direction, b: Direction) -> Direction:
    send = a in ("sendrecv", "sendonly") and b in ("sendrecv", "sendonly")
    recv = a in ("sendrecv", "recvonly") and b in ("sendrecv", "recvonly")
    if send and recv:
        return "sendrecv"
    if send:
        return "sendonly"
    if recv:
        return "recvonly"
    return "inactive"


@dataclass(frozen=True, slots=True)
class Origin:
    """The o= line (RFC 4566 §5.2)."""

    username: str
    session_id: int
    session_version: int
    nettype: str
    addrtype: str
    address: str

    def __str__(self) -> str:
        return f"{self.username} {self.session_id} {self.session_version} {self.nettype} {self.addrtype} {self.address}"


_CONNECTIONS: dict[str, Connection] = {}


@dataclass(frozen=True, slots=True)
class Connection:
    """The c= line (RFC 4566 §5.7). ``address`` has any /ttl or /count suffix stripped."""

    nettype: str
    addrtype: str
    address: str

    @classmethod
    def for_host(cls, host: str) -> Connection:
        """``IN IP4 host`` or ``IN IP6 host``, chosen from the literal address."""
        conn = _CONNECTIONS.get(host)
        if conn is None:
            try:
                ip = ipaddress.ip_address(host)
            except ValueError as exc:
                raise SdpError(
                    f"media host {host!r} is not an IP address; pass the IPv4/IPv6 address to advertise"
                ) from exc
            conn = cls("IN", "IP6" if ip.version == 6 else "IP4", str(ip))
            if len(_CONNECTIONS) < 256:  # a process advertises a handful of addresses
                _CONNECTIONS[host] = conn
        return conn

    @property
    def is_hold(self) -> bool:
        """Legacy RFC 2543 hold: ``c=IN IP4 0.0.0.0`` (RFC 3264 §8.4 asks us to understand it)."""
        return self.address in _HOLD_ADDRESSES or self.address == "::"

    def __str__(self) -> str:
        return f"{self.nettype} {self.addrtype} {self.address}"


@dataclass(frozen=True, slots=True)
class MediaDescription:
    """One m= section (RFC 4566 §5.14) with its c= and a= lines; ``formats`` keeps the order."""

    media: str
    port: int
    proto: str
    formats: tuple[str, ...]
    connection: Connection | None = None
    attributes: tuple[tuple[str, str | None], ...] = ()
    other_lines: tuple[tuple[str, str], ...] = ()  # i=, b=, k= lines, kept for round trips
    port_count: int | None = None

    def attribute(self, name: str) -> str | None:
        """First value of ``a=name:value`` (None if absent or a flag)."""
        for key, value in self.attributes:
            if key == name:
                return value
        return None

    def attribute_values(self, name: str) -> list[str]:
        return [value for key, value in self.attributes if key == name and value is not None]

    def has_attribute(self, name: str) -> bool:
        return any(key == name for key, _ in self.attributes)

    @property
    def direction(self) -> Direction | None:
        """The media-level direction attribute, if any (RFC 4566 §6)."""
        for key, _ in self.attributes:
            if key in DIRECTIONS:
                return key
        return None

    @property
    def ptime(self) -> int | None:
        value = self.attribute("ptime")
        if value is None:
            return None
        try:
            return int(float(value))
        except ValueError as exc:
            raise SdpError(f"a=ptime:{value} is not a number of milliseconds") from exc

    def rtpmap(self) -> dict[int, tuple[str, int]]:
        """Payload type -> (encoding name upper-cased, clock rate) from the a=rtpmap lines."""
        result: dict[int, tuple[str, int]] = {}
        for value in self.attribute_values("rtpmap"):
            pt_text, _, encoding = value.partition(" ")
            parts = encoding.strip().split("/")
            try:
                pt = int(pt_text)
                rate = int(parts[1]) if len(parts) > 1 and parts[1] else 8000
            except ValueError as exc:
                raise SdpError(f"a=rtpmap:{value} is malformed; expected 'a=rtpmap:<pt> <name>/<rate>'") from exc
            result[pt] = (parts[0].upper(), rate)
        return result

    def fmtp(self) -> dict[int, str]:
        result: dict[int, str] = {}
        for value in self.attribute_values("fmtp"):
            pt_text, _, params = value.partition(" ")
            if pt_text.isdigit():
                result[int(pt_text)] = params.strip()
        return result

    def codec_names(self) -> list[str]:
        """Encoding name per offered format, in order (static PTs need no rtpmap)."""
        rtpmap = self.rtpmap()
        names: list[str] = []
        for fmt in self.formats:
            if not fmt.isdigit():
                names.append(fmt)
                continue
            pt = int(fmt)
            if pt in rtpmap:
                names.append(f"{rtpmap[pt][0]}/{rtpmap[pt][1]}")
            elif pt in _STATIC_NAMES or pt in _OTHER_STATIC:
                names.append(f"{_STATIC_NAMES.get(pt) or _OTHER_STATIC[pt]}/8000")
            else:
                names.append(f"PT{pt}")
        return names

    def lines(self) -> list[str]:
        ports = f"{self.port}/{self.port_count}" if self.port_count is not None else str(self.port)
        out = [f"m={self.media} {ports} {self.proto} {' '.join(self.formats)}".rstrip()]
        out.extend(f"{kind}={value}" for kind, value in self.other_lines if kind == "i")
        if self.connection is not None:
            out.append(f"c={self.connection}")
        out.extend(f"{kind}={value}" for kind, value in self.other_lines if kind != "i")
        out.extend(f"a={key}" if value is None else f"a={key}:{value}" for key, value in self.attributes)
        return out


@dataclass(frozen=True, slots=True)
class SessionDescription:
    """A whole SDP body (RFC 4566 §5). Build with :func:`build_offer` or :meth:`parse`."""

    origin: Origin
    session_name: str = "-"
    connection: Connection | None = None
    media: tuple[MediaDescription, ...] = ()
    attributes: tuple[tuple[str, str | None], ...] = ()
    times: tuple[str, ...] = ("0 0",)
    other_lines: tuple[tuple[str, str], ...] = ()  # i= u= e= p= b= z= k= r= at session level
    version: int = 0
    # What negotiate() found in this offer, per supported-codec list: a UAS checks an offer
    # before ringing (to answer 488 early) and answers it later, and must not do the work twice.
    _choices: dict[tuple[str, ...], _Choice] | None = field(
        default=None, init=False, repr=False, compare=False, hash=False
    )
    # The text, once built: an answer is serialized to compare versions (RFC 3264 §8) and to send.
    _text: str | None = field(default=None, init=False, repr=False, compare=False, hash=False)

    @classmethod
    def parse(cls, text: str | bytes) -> SessionDescription:
        """Parse an SDP body; raises :class:`SdpError` (status_hint 400) naming the bad line."""
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise SdpError("SDP body is not UTF-8 text") from exc
        raw_lines = [line.strip() for line in text.replace("\r\n", "\n").split("\n")]
        lines = [line for line in raw_lines if line]
        if not lines:
            raise SdpError("SDP body is empty; expected at least v=, o=, s=, t= and an m= line")
        version: int | None = None
        origin: Origin | None = None
        session_name = "-"
        session_conn: Connection | None = None
        session_attrs: list[tuple[str, str | None]] = []
        session_other: list[tuple[str, str]] = []
        times: list[str] = []
        media: list[MediaDescription] = []
        current: _MediaBuilder | None = None

        for number, line in enumerate(lines, start=1):
            if len(line) < 2 or line[1] != "=":
                raise SdpError(f"SDP line {number} {line!r} is not of the form <type>=<value>")
            kind, value = line[0], line[2:]
            if number == 1 and kind != "v":
                raise SdpError(f"SDP must start with v=0, got {line!r}")
            if kind == "v":
                if value.strip() != "0":
                    raise SdpError(f"unsupported SDP version v={value}; only v=0 exists (RFC 4566 §5.1)")
                version = 0
            elif kind == "o":
                origin = _parse_origin(value, number)
            elif kind == "s":
                session_name = value or "-"
            elif kind == "c":
                conn = _parse_connection(value, number)
                if current is None:
                    session_conn = conn
                else:
                    current.connection = conn
            elif kind == "t":
                times.append(value)
            elif kind == "a":
                name, sep, attr_value = value.partition(":")
                attr = (name, attr_value if sep else None)
                if current is None:
                    session_attrs.append(attr)
                else:
                    current.attributes.append(attr)
            elif kind == "m":
                if current is not None:
                    media.append(current.build())
                current = _parse_media_line(value, number)
            elif kind in "iuepbzkr":
                if current is None:
                    session_other.append((kind, value))
                else:
                    current.other.append((kind, value))
            else:
                raise SdpError(f"SDP line {number} has unknown type {kind!r} ({line!r})")
        if current is not None:
            media.append(current.build())
        if version is None:
            raise SdpError("SDP lacks the v=0 line")
        if origin is None:
            raise SdpError("SDP lacks the o= (origin) line required by RFC 4566 §5.2")
        for index, m in enumerate(media):
            if m.connection is None and session_conn is None and m.port != 0:
                raise SdpError(
                    f"m={m.media} section {index + 1} has no c= line and there is no session-level c=; "
                    "the peer must say where to send media (RFC 4566 §5.7)"
                )
        return cls(
            origin=origin,
            session_name=session_name,
            connection=session_conn,
            media=tuple(media),
            attributes=tuple(session_attrs),
            times=tuple(times) or ("0 0",),
            other_lines=tuple(session_other),
            version=version,
        )

    def to_text(self) -> str:
        text = self._text
        if text is None:
            text = self._build_text()
            object.__setattr__(self, "_text", text)  # a cache, not part of the value
        return text

    def _build_text(self) -> str:
        out = [f"v={self.version}", f"o={self.origin}", f"s={self.session_name}"]
        out.extend(f"{kind}={value}" for kind, value in self.other_lines if kind in "iuep")
        if self.connection is not None:
            out.append(f"c={self.connection}")
        out.extend(f"{kind}={value}" for kind, value in self.other_lines if kind == "b")
        out.extend(f"t={value}" for value in self.times)
        out.extend(f"{kind}={value}" for kind, value in self.other_lines if kind in "rzk")
        out.extend(f"a={key}" if value is None else f"a={key}:{value}" for key, value in self.attributes)
        for m in self.media:
            out.extend(m.lines())
        return "\r\n".join(out) + "\r\n"

    def to_bytes(self) -> bytes:
        return self.to_text().encode("utf-8")

    def __str__(self) -> str:
        return self.to_text()

    def connection_for(self, m: MediaDescription) -> Connection | None:
        return m.connection if m.connection is not None else self.connection

    def direction_of(self, m: MediaDescription) -> Direction:
        """Effective direction of an m= section: media-level, else session-level, else sendrecv."""
        direction = m.direction
        if direction is None:
            for key, _ in self.attributes:
                if key in DIRECTIONS:
                    direction = key
                    break
        return direction or "sendrecv"

    def with_version(self, session_version: int) -> SessionDescription:
        o = self.origin
        if o.session_version == session_version:
            return self
        # Built directly: dataclasses.replace() inspects the fields on every call (twice per answer).
        origin = Origin(o.username, o.session_id, session_version, o.nettype, o.addrtype, o.address)
        return SessionDescription(
            origin,
            self.session_name,
            self.connection,
            self.media,
            self.attributes,
            self.times,
            self.other_lines,
            self.version,
        )


def _parse_origin(value: str, number: int) -> Origin:
    parts = value.split()
    if len(parts) != 6:
        raise SdpError(
            f"SDP line {number} o={value!r} needs 6 fields: <username> <sess-id> <sess-version> IN IP4|IP6 <address>"
        )
    try:
        sess_id, sess_version = int(parts[1]), int(parts[2])
    except ValueError as exc:
        raise SdpError(f"SDP line {number} o={value!r}: session id and version must be numbers") from exc
    return Origin(parts[0], sess_id, sess_version, parts[3], parts[4], parts[5])


def _parse_connection(value: str, number: int) -> Connection:
    parts = value.split()
    if len(parts) != 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
        raise SdpError(f"SDP line {number} c={value!r} must be 'IN IP4 <address>' or 'IN IP6 <address>'")
    address = parts[2].split("/", 1)[0]
    return Connection(parts[0], parts[1], address)


@dataclass(slots=True)
class _MediaBuilder:
    media: str
    port: int
    port_count: int | None
    proto: str
    formats: list[str]
    connection: Connection | None = None
    attributes: list[tuple[str, str | None]] = field(default_factory=list)
    other: list[tuple[str, str]] = field(default_factory=list)

    def build(self) -> MediaDescription:
        return MediaDescription(
            media=self.media,
            port=self.port,
            proto=self.proto,
            formats=tuple(self.formats),
            connection=self.connection,
            attributes=tuple(self.attributes),
            other_lines=tuple(self.other),
            port_count=self.port_count,
        )


def _parse_media_line(value: str, number: int) -> _MediaBuilder:
    parts = value.split()
    if len(parts) < 3:
        raise SdpError(f"SDP line {number} m={value!r} needs '<media> <port> <proto> <fmt> ...'")
    port_text, _, count_text = parts[1].partition("/")
    try:
        port = int(port_text)
        port_count = int(count_text) if count_text else None
    except ValueError as exc:
        raise SdpError(f"SDP line {number} m={value!r}: port {parts[1]!r} is not a number") from exc
    if not 0 <= port <= 65535:
        raise SdpError(f"SDP line {number} m={value!r}: port {port} is outside 0-65535")
    return _MediaBuilder(parts[0], port, port_count, parts[2], parts[3:])


@dataclass(frozen=True, slots=True)
class MediaParams:
    """The outcome of an offer/answer exchange, from our point of view.

    ``direction`` is what *we* do: ``sendonly`` means we send and the peer does not (the
    peer put us on hold or we are playing to it). ``remote_host`` is ``0.0.0.0`` under a
    legacy hold; then ``direction`` never includes sending.
    """

    remote_host: str
    remote_port: int
    payload_type: int
    codec: str
    dtmf_pt: int | None = DEFAULT_DTMF_PT
    ptime: int = DEFAULT_PTIME
    direction: Direction = "sendrecv"

    def __post_init__(self) -> None:
        if self.codec not in CODEC_PAYLOAD_TYPES:
            raise ValueError(f"codec {self.codec!r} is not supported; use one of {sorted(CODEC_PAYLOAD_TYPES)}")
        if not 0 <= self.payload_type <= 127:
            raise ValueError(f"payload type {self.payload_type} is outside 0-127")
        if not 0 <= self.remote_port <= 65535:
            raise ValueError(f"remote port {self.remote_port} is outside 0-65535")

    @property
    def sends(self) -> bool:
        return self.direction in ("sendrecv", "sendonly")

    @property
    def receives(self) -> bool:
        return self.direction in ("sendrecv", "recvonly")

    @property
    def remote(self) -> tuple[str, int]:
        return (self.remote_host, self.remote_port)


def _audio_rtpmap_lines(codecs: Iterable[str], dtmf_pt: int | None) -> tuple[list[str], list[tuple[str, str | None]]]:
    formats: list[str] = []
    attrs: list[tuple[str, str | None]] = []
    for codec in codecs:
        name = codec.upper()
        if name not in CODEC_PAYLOAD_TYPES:
            raise ValueError(f"codec {codec!r} is not supported; use PCMU and/or PCMA")
        pt = CODEC_PAYLOAD_TYPES[name]
        formats.append(str(pt))
        attrs.append(("rtpmap", f"{pt} {name}/8000"))
    if dtmf_pt is not None:
        if not 96 <= dtmf_pt <= 127:
            raise ValueError(f"telephone-event payload type {dtmf_pt} must be dynamic (96-127)")
        formats.append(str(dtmf_pt))
        attrs.append(("rtpmap", f"{dtmf_pt} telephone-event/8000"))
        attrs.append(("fmtp", f"{dtmf_pt} 0-16"))
    return formats, attrs


def build_offer(
    *,
    host: str,
    port: int,
    session_id: int,
    session_version: int = 0,
    codecs: Sequence[str] = ("PCMU", "PCMA"),
    dtmf_pt: int | None = DEFAULT_DTMF_PT,
    direction: Direction = "sendrecv",
    ptime: int = DEFAULT_PTIME,
) -> SessionDescription:
    """An audio offer (RFC 3264 §5) listing ``codecs`` in preference order plus telephone-event."""
    if not codecs:
        raise ValueError("an offer needs at least one codec (PCMU or PCMA)")
    if direction not in DIRECTIONS:
        raise ValueError(f"direction {direction!r} must be one of {', '.join(DIRECTIONS)}")
    conn = Connection.for_host(host)
    formats, attrs = _audio_rtpmap_lines(codecs, dtmf_pt)
    attrs.append(("ptime", str(ptime)))
    attrs.append((direction, None))
    audio = MediaDescription("audio", port, "RTP/AVP", tuple(formats), attributes=tuple(attrs))
    origin = Origin("-", session_id, session_version, conn.nettype, conn.addrtype, conn.address)
    return SessionDescription(origin=origin, connection=conn, media=(audio,))


def _find_codec(m: MediaDescription, supported: Sequence[str]) -> tuple[int, str] | None:
    """First offered format (offerer's preference, RFC 3264 §6.1) that we support."""
    rtpmap = m.rtpmap()
    wanted = {name.upper() for name in supported}
    for fmt in m.formats:
        if not fmt.isdigit():
            continue
        pt = int(fmt)
        if pt in rtpmap:
            name, rate = rtpmap[pt]
            if name in wanted and rate == 8000:
                return pt, name
        elif pt in _STATIC_NAMES and _STATIC_NAMES[pt] in wanted:
            return pt, _STATIC_NAMES[pt]
    return None


def _find_dtmf(m: MediaDescription) -> int | None:
    for pt, (name, rate) in m.rtpmap().items():
        if name == "TELEPHONE-EVENT" and rate == 8000 and str(pt) in m.formats:
            return pt
    return None


def _is_usable_audio(m: MediaDescription) -> bool:
    return m.media == "audio" and m.port != 0 and m.proto.upper() in _RTP_PROFILES


@dataclass(frozen=True, slots=True)
class _Choice:
    """The audio stream and codec an offer would be answered with (RFC 3264 §6.1)."""

    index: int
    media: MediaDescription
    payload_type: int
    codec: str
    dtmf_pt: int | None


def negotiate(offer: SessionDescription, supported: Sequence[str] = ("PCMU", "PCMA")) -> None:
    """Check that ``offer`` can be answered, without building the answer.

    Raises :class:`SdpNegotiationError` (488) exactly when :func:`answer_offer` would; the
    result is remembered on the offer, so answering it afterwards repeats no work.
    """
    _choose(offer, tuple(supported))


def _choose(offer: SessionDescription, supported: tuple[str, ...]) -> _Choice:
    choices = offer._choices
    if choices is not None:
        found = choices.get(supported)
        if found is not None:
            return found
    chosen: _Choice | None = None
    for index, m in enumerate(offer.media):
        if _is_usable_audio(m):
            codec = _find_codec(m, supported)
            if codec is not None:
                chosen = _Choice(index, m, codec[0], codec[1], _find_dtmf(m))
                break
    if chosen is None:
        offered = (
            "; ".join(f"m={m.media} {m.port} {m.proto} [{', '.join(m.codec_names())}]" for m in offer.media)
            or "no m= lines"
        )
        raise SdpNegotiationError(
            f"no acceptable audio codec in the offer ({offered}); we support "
            f"{', '.join(f'{c}/8000' for c in supported)} over RTP/AVP"
        )
    if choices is None:
        choices = {}
        object.__setattr__(offer, "_choices", choices)  # a cache, not part of the value
    choices[supported] = chosen
    return chosen


def answer_offer(
    offer: SessionDescription,
    *,
    host: str,
    port: int,
    session_id: int,
    session_version: int = 0,
    supported: Sequence[str] = ("PCMU", "PCMA"),
    direction: Direction | None = None,
    ptime: int = DEFAULT_PTIME,
) -> tuple[SessionDescription, MediaParams]:
    """Answer ``offer`` (RFC 3264 §6): accept the first usable audio stream, reject the rest.

    ``direction`` is what we would like (None = sendrecv); the answer intersects it with the
    mirror of the offered direction, so an offer with a=sendonly gets a=recvonly.
    Raises :class:`SdpNegotiationError` (488) when no audio stream has a codec in ``supported``.
    """
    conn = Connection.for_host(host)
    chosen = _choose(offer, tuple(supported))
    index, offered_m, pt, codec_name, dtmf_pt = (
        chosen.index,
        chosen.media,
        chosen.payload_type,
        chosen.codec,
        chosen.dtmf_pt,
    )
    remote_conn = offer.connection_for(offered_m)
    assert remote_conn is not None  # parse() guarantees a c= for every m= with a port
    offered_dir = offer.direction_of(offered_m)
    if remote_conn.is_hold:
        offered_dir = _intersect(offered_dir, "sendonly")
    our_dir = _intersect(reverse_direction(offered_dir), direction or "sendrecv")
    formats, attrs = _audio_rtpmap_lines([codec_name], dtmf_pt)
    formats[0] = str(pt)  # keep the offerer's payload type number for the codec
    attrs[0] = ("rtpmap", f"{pt} {codec_name}/8000")
    attrs.append(("ptime", str(ptime)))
    attrs.append((our_dir, None))
    media: list[MediaDescription] = []
    for i, m in enumerate(offer.media):
        if i == index:
            media.append(MediaDescription("audio", port, offered_m.proto, tuple(formats), attributes=tuple(attrs)))
        else:
            # RFC 3264 §6: a rejected stream keeps its place with port 0.
            media.append(MediaDescription(m.media, 0, m.proto, m.formats[:1] or ("0",)))
    origin = Origin("-", session_id, session_version, conn.nettype, conn.addrtype, conn.address)
    answer = SessionDescription(origin=origin, connection=conn, media=tuple(media))
    params = MediaParams(
        remote_host=remote_conn.address,
        remote_port=offered_m.port,
        payload_type=pt,
        codec=codec_name,
        dtmf_pt=dtmf_pt,
        ptime=offered_m.ptime or DEFAULT_PTIME,
        direction=our_dir,
    )
    return answer, params


def accept_answer(offer: SessionDescription, answer: SessionDescription) -> MediaParams:
    """Read the peer's answer to our ``offer`` (RFC 3264 §7) into :class:`MediaParams`."""
    if len(answer.media) != len(offer.media):
        raise SdpError(
            f"answer has {len(answer.media)} m= lines but the offer had {len(offer.media)}; "
            "RFC 3264 §6 requires one per offered stream"
        )
    ours: list[str] = []
    for offered_m, m in zip(offer.media, answer.media, strict=True):
        if not _is_usable_audio(offered_m):
            continue
        offered_codecs = [name.split("/")[0] for name in offered_m.codec_names()]
        ours.extend(c for c in offered_codecs if c in CODEC_PAYLOAD_TYPES)
        if not _is_usable_audio(m):
            continue
        codec = _find_codec(m, [c for c in offered_codecs if c in CODEC_PAYLOAD_TYPES])
        if codec is None:
            continue
        conn = answer.connection_for(m)
        assert conn is not None  # parse() guarantees it for a non-zero port
        answered_dir = answer.direction_of(m)
        if conn.is_hold:
            answered_dir = _intersect(answered_dir, "sendonly")
        our_dir = _intersect(reverse_direction(answered_dir), offer.direction_of(offered_m))
        return MediaParams(
            remote_host=conn.address,
            remote_port=m.port,
            payload_type=codec[0],
            codec=codec[1],
            dtmf_pt=_find_dtmf(m),
            ptime=m.ptime or DEFAULT_PTIME,
            direction=our_dir,
        )
    answered = "; ".join(f"m={m.media} {m.port} {m.proto} [{', '.join(m.codec_names())}]" for m in answer.media)
    raise SdpNegotiationError(
        f"the answer accepted none of our audio codecs ({answered or 'no m= lines'}); we offered {', '.join(ours)}"
    )
