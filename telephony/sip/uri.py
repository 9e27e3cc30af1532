"""SIP URIs, name-addr/addr-spec and Via values (RFC 3261 §19.1, §20.10, §20.42, §25.1).

Parsing is strict enough to reject what would break routing (no host, bad port) and
lenient about what real phones send (unquoted display names, odd parameter casing).
Every failure raises :class:`SipSyntaxError`, which the message layer turns into a
400 with a reason phrase naming the offending header.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

__all__ = ["Address", "SipSyntaxError", "SipURI", "Via", "format_params", "parse_params", "split_commas"]

_BAD_HOST_CHARS = frozenset(" \t<>\"'")

# Characters allowed unescaped in the user part (RFC 3261 §25.1 user-unreserved + unreserved).
_USER_SAFE = "-_.!~*'()&=+$,;?/"
# A user part made only of these needs no escaping: skip urllib's quote() (the common case).
_PLAIN_USER = re.compile(r"[A-Za-z0-9\-_.!~*'()&=+$,;?/]*")


# Parsed URIs and addresses by their text, bounded (cleared when full: peers could send
# endless distinct values). Entries are private copies, never handed out.
_PARSED_CACHED = 2048
_URIS: dict[str, SipURI] = {}
_ADDRESSES: dict[str, Address] = {}


class SipSyntaxError(ValueError):
    """A URI, address or header value does not follow the RFC 3261 grammar."""


def split_commas(value: str) -> list[str]:
    """Split a comma-folded header value, ignoring commas inside quotes and <...>."""
    if "," not in value:
        stripped = value.strip()
        return [stripped] if stripped else []
    parts: list[str] = []
    depth = 0
    quoted = False
    escaped = False
    start = 0
    for i, ch in enumerate(value):
        if escaped:
            escaped = False
        elif quoted:
            if ch == "\\":
                escaped = True
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == "<":
            depth += 1
        elif ch == ">":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0:
            part = value[start:i].strip()
            if part:
                parts.append(part)
            start = i + 1
    last = value[start:].strip()
    if last:
        parts.append(last)
    return parts


def parse_params(text: str) -> dict[str, str | None]:
    """Parse ``;a=b;c`` parameters (leading ``;`` optional). Names are lower-cased."""
    params: dict[str, str | None] = {}
    if not text:
        return params
    for raw in text.split(";"):
        item = raw.strip()
        if not item:
            continue
        name, sep, val = item.partition("=")
        name = name.strip().lower()
        if not name:
            raise SipSyntaxError(f"empty parameter name in {text!r}")
        if sep:
            v = val.strip()
            if len(v) >= 2 and v[0] == '"' and v[-1] == '"':
                v = v[1:-1]
            params[name] = v
        else:
            params[name] = None
    return params


def format_params(params: dict[str, str | None]) -> str:
    if not params:
        return ""
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


@dataclass(slots=True)
class SipURI:
    """A sip:, sips: or tel: URI. ``host`` holds IPv6 addresses without brackets."""

    scheme: str = "sip"
    user: str | None = None
    host: str = ""
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    password: str | None = None

    @classmethod
    def parse(cls, text: str) -> SipURI:
        """Parse a URI. Results are remembered by text (a peer repeats its URIs in every
        message of a dialog and every call): the caller gets its own copy to change."""
        cached = _URIS.get(text)
        if cached is not None:
            return cached.copy()
        uri = cls._parse(text)
        if len(_URIS) >= _PARSED_CACHED:
            _URIS.clear()
        _URIS[text] = uri.copy()
        return uri

    def copy(self) -> SipURI:
        return SipURI(
            self.scheme, self.user, self.host, self.port, dict(self.params), dict(self.headers), self.password
        )

    @classmethod
    def _parse(cls, text: str) -> SipURI:
        text = text.strip()
        scheme, sep, rest = text.partition(":")
        scheme = scheme.lower()
        if not sep or not rest:
            raise SipSyntaxError(f"URI {text!r} has no scheme (expected sip:user@host)")
        if scheme == "tel":
            number, _, ptext = rest.partition(";")
            if not number:
                raise SipSyntaxError(f"tel URI {text!r} has no number")
            return cls(scheme="tel", user=number, host="", params=parse_params(ptext))
        if scheme not in ("sip", "sips"):
            raise SipSyntaxError(f"unsupported URI scheme {scheme!r} in {text!r} (use sip:, sips: or tel:)")
        hdr_text = ""
        if "?" in rest:
            rest, hdr_text = rest.split("?", 1)
        user: str | None = None
        password: str | None = None
        if "@" in rest:
            userinfo, rest = rest.rsplit("@", 1)
            if ":" in userinfo:
                userinfo, password = userinfo.split(":", 1)
            user = unquote(userinfo) if "%" in userinfo else userinfo
            if not user:
                raise SipSyntaxError(f"URI {text!r} has an empty user part")
        hostport, _, ptext = rest.partition(";")
        host, port = _split_hostport(hostport, text)
        headers: dict[str, str] = {}
        if hdr_text:
            for item in hdr_text.split("&"):
                k, _, v = item.partition("=")
                headers[unquote(k)] = unquote(v)
        return cls(scheme, user, host, port, parse_params(ptext), headers, password)

    @property
    def hostport(self) -> str:
        h = f"[{self.host}]" if ":" in self.host else self.host
        return h if self.port is None else f"{h}:{self.port}"

    @property
    def transport(self) -> str:
        t = self.params.get("transport")
        return (t or "udp").lower()

    def __str__(self) -> str:
        if self.scheme == "tel":
            return f"tel:{self.user}{format_params(self.params)}"
        out = [self.scheme, ":"]
        user = self.user
        if user is not None:
            out.append(user if _PLAIN_USER.fullmatch(user) else quote(user, safe=_USER_SAFE))
            if self.password is not None:
                out.append(":" + self.password)
            out.append("@")
        out.append(self.hostport)
        out.append(format_params(self.params))
        if self.headers:
            out.append("?" + "&".join(f"{quote(k)}={quote(v)}" for k, v in self.headers.items()))
        return "".join(out)

    def aor(self) -> str:
        """The address-of-record form: scheme, user and lower-cased host, no port or params."""
        user = f"{self.user}@" if self.user else ""
        return f"{'sip' if self.scheme == 'sips' else self.scheme}:{user}{self.host.lower()}"


def _split_hostport(hostport: str, whole: str) -> tuple[str, int | None]:
    hostport = hostport.strip()
    if not hostport:
        raise SipSyntaxError(f"URI {whole!r} has no host")
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise SipSyntaxError(f"URI {whole!r} has an unterminated IPv6 reference")
        host = hostport[1:end]
        tail = hostport[end + 1 :]
        port_text = tail[1:] if tail.startswith(":") else None
        if tail and port_text is None:
            raise SipSyntaxError(f"URI {whole!r} has junk after the IPv6 address")
    else:
        host, _, port_text_ = hostport.partition(":")
        port_text = port_text_ if ":" in hostport else None
    if not host or not _BAD_HOST_CHARS.isdisjoint(host):
        raise SipSyntaxError(f"URI {whole!r} has an invalid host {host!r}")
    port: int | None = None
    if port_text is not None:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise SipSyntaxError(f"URI {whole!r} has an invalid port {port_text!r}")
        port = int(port_text)
    return host, port


@dataclass(slots=True)
class Address:
    """name-addr or addr-spec with header parameters (From, To, Contact, Route...)."""

    uri: SipURI
    display_name: str | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    wildcard: bool = False

    @classmethod
    def parse(cls, text: str) -> Address:
        """Parse a header value; remembered by text like :meth:`SipURI.parse` (the From of an
        INVITE comes back in its ACK and BYE): the caller gets its own copy to change."""
        cached = _ADDRESSES.get(text)
        if cached is not None:
            return cached.copy()
        addr = cls._parse(text)
        if len(_ADDRESSES) >= _PARSED_CACHED:
            _ADDRESSES.clear()
        _ADDRESSES[text] = addr.copy()
        return addr

    def copy(self) -> Address:
        return Address(self.uri.copy(), self.display_name, dict(self.params), self.wildcard)

    @classmethod
    def _parse(cls, text: str) -> Address:
        text = text.strip()
        if text == "*":
            return cls(uri=SipURI(host="*"), wildcard=True)
        display: str | None = None
        if "<" in text:
            lt = text.index("<")
            gt = text.find(">", lt)
            if gt < 0:
                raise SipSyntaxError(f"address {text!r} has '<' without '>'")
            display_text = text[:lt].strip()
            if display_text.startswith('"') and display_text.endswith('"') and len(display_text) >= 2:
                display = display_text[1:-1].replace('\\"', '"').replace("\\\\", "\\")
            elif display_text:
                display = display_text
            uri = SipURI._parse(text[lt + 1 : gt])
            params = parse_params(text[gt + 1 :])
        else:
            # addr-spec: URI parameters after ';' belong to the header, not the URI (§20.10).
            uri_text, _, ptext = text.partition(";")
            uri = SipURI._parse(uri_text)
            params = parse_params(ptext)
        return cls(uri=uri, display_name=display, params=params)

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def __str__(self) -> str:
        if self.wildcard:
            return "*"
        name = ""
        if self.display_name:
            esc = self.display_name.replace("\\", "\\\\").replace('"', '\\"')
            name = f'"{esc}" '
        return f"{name}<{self.uri}>{format_params(self.params)}"


@dataclass(slots=True)
class Via:
    """One Via header value (RFC 3261 §20.42, rport/received from RFC 3581)."""

    transport: str
    host: str
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Via:
        text = text.strip()
        proto, _, rest = text.partition(" ")
        parts = proto.split("/")
        if len(parts) != 3 or parts[0].strip().upper() != "SIP":
            raise SipSyntaxError(f"Via {text!r} does not start with SIP/2.0/<transport>")
        rest = rest.strip()
        if not rest:
            raise SipSyntaxError(f"Via {text!r} has no sent-by host")
        sent_by, _, ptext = rest.partition(";")
        host, port = _split_hostport(sent_by.replace(" ", ""), text)
        return cls(parts[2].strip().upper(), host, port, parse_params(ptext))

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def sent_by(self) -> str:
        h = f"[{self.host}]" if ":" in self.host else self.host
        return h if self.port is None else f"{h}:{self.port}"

    def __str__(self) -> str:
        return f"SIP/2.0/{self.transport} {self.sent_by}{format_params(self.params)}"
