"""HTTP Digest authentication for SIP, client and server side, pure (no I/O, no clock).

Implements RFC 3261 §22 (Digest in SIP, 401/407, stale nonces), RFC 7616 §3 (the
Digest scheme: challenge and credential grammar, ``qop=auth``/``auth-int``, ``nc``,
``cnonce``, ``-sess`` algorithms) and RFC 8760 (SHA-256 and SHA-512-256 for SIP, and
the rule that a UAC picks the strongest algorithm a server offers). The client also
speaks the RFC 2069 form without ``qop`` that some carriers still send. The server issues
stateless HMAC nonces carrying their own timestamp, rejects ``nc`` replays, makes an
unknown user indistinguishable from a wrong password, and locks out sources that keep
failing. Nothing here reads the clock: callers pass ``now``.

Error tree::

    AuthError (ValueError)   a challenge or credential header value is malformed or
                             unusable; ``status_hint`` is what a UAS should answer (400)
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal, Protocol

import structlog

__all__ = [
    "ALGORITHMS",
    "AuthError",
    "AuthOutcome",
    "AuthResult",
    "CredentialStore",
    "DigestChallenge",
    "DigestClient",
    "DigestCredentials",
    "DigestServer",
    "InMemoryCredentials",
    "digest_response",
    "ha1",
    "parse_challenge",
    "parse_challenges",
    "parse_credentials",
]

log = structlog.get_logger()


class AuthError(ValueError):
    """A Digest challenge or credential value is malformed or cannot be answered."""

    def __init__(self, message: str, *, status_hint: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status_hint = status_hint


# ---------------------------------------------------------------------------------------
# Algorithms (RFC 7616 §3.4.2, RFC 8760 §2.2). Strongest first: a UAC that gets several
# challenges answers the first one here it recognises (RFC 8760 §2.4).
# ---------------------------------------------------------------------------------------

_HASHES: Final[dict[str, str]] = {"MD5": "md5", "SHA-256": "sha256", "SHA-512-256": "sha512_256"}

ALGORITHMS: Final[tuple[str, ...]] = (
    "SHA-512-256",
    "SHA-512-256-sess",
    "SHA-256",
    "SHA-256-sess",
    "MD5",
    "MD5-sess",
)
_CANONICAL: Final[dict[str, str]] = {a.upper(): a for a in ALGORITHMS}


def _canonical_algorithm(algorithm: str | None) -> str:
    """``sha-256`` -> ``SHA-256``; absent means MD5 (RFC 7616 §3.3). Unknown raises AuthError."""
    if algorithm is None:
        return "MD5"
    canon = _CANONICAL.get(algorithm.strip().upper())
    if canon is None:
        raise AuthError(f"unsupported digest algorithm {algorithm!r}; use one of {', '.join(ALGORITHMS)}")
    return canon


def _base_algorithm(algorithm: str) -> str:
    return algorithm.removesuffix("-sess")


def _h(algorithm: str, data: str | bytes) -> str:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return hashlib.new(_HASHES[_base_algorithm(algorithm)], raw).hexdigest()


def ha1(username: str, realm: str, password: str, algorithm: str = "MD5") -> str:
    """H(username ":" realm ":" password), RFC 7616 §3.4.2.

    For ``-sess`` algorithms this is the stored, per-user part; the session key
    H(HA1 ":" nonce ":" cnonce) is derived per request by :func:`digest_response`.
    """
    algo = _canonical_algorithm(algorithm)
    return _h(algo, f"{username}:{realm}:{password}")


def digest_response(
    *,
    algorithm: str,
    ha1_value: str,
    nonce: str,
    method: str,
    uri: str,
    qop: str | None,
    nc: str | None = None,
    cnonce: str | None = None,
    body: bytes = b"",
) -> str:
    """The ``response`` value of RFC 7616 §3.4.1 (and RFC 2069 when ``qop`` is None)."""
    algo = _canonical_algorithm(algorithm)
    key = ha1_value
    if algo.endswith("-sess"):
        if cnonce is None:
            raise AuthError(f"algorithm {algo} needs a cnonce")
        key = _h(algo, f"{ha1_value}:{nonce}:{cnonce}")
    a2 = f"{method}:{uri}:{_h(algo, body)}" if qop == "auth-int" else f"{method}:{uri}"
    ha2 = _h(algo, a2)
    if qop is None:
        return _h(algo, f"{key}:{nonce}:{ha2}")
    if nc is None or cnonce is None:
        raise AuthError(f"qop={qop} needs nc and cnonce")
    return _h(algo, f"{key}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


# ---------------------------------------------------------------------------------------
# Parsing (RFC 7616 §3.3-3.4, RFC 7235 §2.1 auth-param, RFC 3261 §25.1 token/quoted-string)
# ---------------------------------------------------------------------------------------

# RFC 3261 token characters.
_TOKEN_RE: Final = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
# quoted-string with quoted-pairs; possessive so a missing closing quote fails in linear time.
_QUOTED_RE: Final = re.compile(r'"((?:[^"\\]|\\.)*+)"', re.DOTALL)
_PAIR_RE: Final = re.compile(r"\\(.)", re.DOTALL)
# Unquoted values are read leniently (some stacks send uri=sip:x@y or nonce=abc/def=):
# anything up to a comma or whitespace.
_BARE_RE: Final = re.compile(r'[^, \t\r\n"]+')
_WS_RE: Final = re.compile(r"[ \t\r\n]+")
_PARAM_RE: Final = re.compile(
    r"([A-Za-z0-9\-.!%*_+`'~]+)[ \t\r\n]*=[ \t\r\n]*"
    r'(?:"((?:[^"\\]|\\.)*+)"|([^, \t\r\n"]+))[ \t\r\n]*',
    re.DOTALL,
)
_SEP_RE: Final = re.compile(r"(?:,[ \t\r\n]*)+")  # RFC 7235 #rule tolerates empty list elements
_WS: Final = frozenset(" \t\r\n")
_MAX_HEADER: Final = 8192


@dataclass(frozen=True)
class _Parsed:
    scheme: str
    params: dict[str, str]
    quoted: frozenset[str]


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_ws(self) -> None:
        m = _WS_RE.match(self.text, self.pos)
        if m:
            self.pos = m.end()

    def token(self) -> str:
        m = _TOKEN_RE.match(self.text, self.pos)
        if not m:
            return ""
        self.pos = m.end()
        return m.group()

    def quoted(self) -> str:
        # Called with the opening quote at pos. quoted-pair: "\" any char (RFC 3261 §25.1).
        m = _QUOTED_RE.match(self.text, self.pos)
        if not m:
            raise AuthError("unterminated quoted-string: a value opened with '\"' never closes")
        self.pos = m.end()
        inner = m.group(1)
        return _PAIR_RE.sub(r"\1", inner) if "\\" in inner else inner

    def bare(self) -> str:
        m = _BARE_RE.match(self.text, self.pos)
        if not m:
            return ""
        self.pos = m.end()
        return m.group()

    def starts_new_challenge(self) -> bool:
        """After a comma: ``Scheme name=...`` (a token then whitespace then not '=') starts a new one."""
        save = self.pos
        try:
            if not self.token():
                return False
            ws_start = self.pos
            self.skip_ws()
            if self.pos == ws_start or self.at_end():
                return False
            return self.peek() != "="
        finally:
            self.pos = save


def _parse_all(value: str) -> list[_Parsed]:
    if not isinstance(value, str):
        raise AuthError(f"expected a header value string, got {type(value).__name__}")
    if len(value) > _MAX_HEADER:
        raise AuthError(f"header value is {len(value)} characters long; more than {_MAX_HEADER} is refused")
    s = _Scanner(value)
    s.skip_ws()
    if s.at_end():
        raise AuthError('empty header value: expected \'Digest realm="...", nonce="...", ...\'')
    out: list[_Parsed] = []
    while True:
        scheme = s.token()
        if not scheme:
            raise AuthError(f"expected an auth scheme such as 'Digest' at offset {s.pos} of {value[:80]!r}")
        params: dict[str, str] = {}
        quoted: set[str] = set()
        if s.at_end() or s.peek() not in _WS:
            if s.at_end():
                raise AuthError(f"{scheme} has no parameters")
            raise AuthError(f"expected whitespace after the scheme {scheme!r}, found {s.peek()!r}")
        s.skip_ws()
        next_challenge = False
        while True:
            fast = _PARAM_RE.match(value, s.pos)
            if fast is not None:
                # Common case in one regex step; the slow path below exists to explain errors.
                name, qval, bval = fast.group(1, 2, 3)
                key = name.lower()
                if key in params:
                    raise AuthError(f"parameter {name!r} appears twice")
                if qval is not None:
                    params[key] = _PAIR_RE.sub(r"\1", qval) if "\\" in qval else qval
                    quoted.add(key)
                else:
                    params[key] = bval
                s.pos = fast.end()
                sep = _SEP_RE.match(value, s.pos)
                if sep is not None:
                    s.pos = sep.end()
                    if s.at_end():
                        break
                    if s.starts_new_challenge():
                        next_challenge = True
                        break
                    continue
                if s.at_end():
                    break
                raise AuthError(f"expected ',' between parameters at offset {s.pos}, found {s.peek()!r}")
            name = s.token()
            if not name:
                found = s.peek() or "end of value"
                raise AuthError(f"expected a parameter name at offset {s.pos}, found {found!r}")
            s.skip_ws()
            if s.peek() != "=":
                raise AuthError(f"parameter {name!r} has no '=' and value")
            s.pos += 1
            s.skip_ws()
            if s.peek() == '"':
                val = s.quoted()
                quoted.add(name.lower())
            else:
                val = s.bare()
                if not val:
                    raise AuthError(f'parameter {name!r} has an empty value; quote it ("") if empty is meant')
            key = name.lower()
            if key in params:
                raise AuthError(f"parameter {name!r} appears twice")
            params[key] = val
            s.skip_ws()
            if s.at_end():
                break
            if s.peek() != ",":
                raise AuthError(f"expected ',' between parameters at offset {s.pos}, found {s.peek()!r}")
            while s.peek() == ",":  # RFC 7235 #rule tolerates empty list elements
                s.pos += 1
                s.skip_ws()
            if s.at_end():
                break
            if s.starts_new_challenge():
                next_challenge = True
                break
        out.append(_Parsed(scheme, params, frozenset(quoted)))
        if not next_challenge:
            return out


def _require_digest(p: _Parsed) -> None:
    if p.scheme.lower() != "digest":
        raise AuthError(f"auth scheme {p.scheme!r} is not supported; only Digest is")


def _need(p: _Parsed, name: str, what: str) -> str:
    val = p.params.get(name)
    if val is None:
        raise AuthError(f"{what} lacks the required {name}= parameter")
    return val


@dataclass(frozen=True)
class DigestChallenge:
    """One ``WWW-Authenticate``/``Proxy-Authenticate`` Digest challenge (RFC 7616 §3.3)."""

    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ()
    opaque: str | None = None
    stale: bool = False
    domain: str | None = None
    params: Mapping[str, str] = field(default_factory=dict)

    def to_header(self) -> str:
        parts = [f"realm={_quote(self.realm)}", f"nonce={_quote(self.nonce)}"]
        if self.opaque is not None:
            parts.append(f"opaque={_quote(self.opaque)}")
        parts.append(f"algorithm={self.algorithm}")
        if self.qop:
            parts.append(f"qop={_quote(','.join(self.qop))}")
        if self.stale:
            parts.append("stale=TRUE")
        return "Digest " + ", ".join(parts)


@dataclass(frozen=True)
class DigestCredentials:
    """One ``Authorization``/``Proxy-Authorization`` Digest value (RFC 7616 §3.4)."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str = "MD5"
    qop: str | None = None
    nc: str | None = None
    cnonce: str | None = None
    opaque: str | None = None

    def to_header(self) -> str:
        parts = [
            f"username={_quote(self.username)}",
            f"realm={_quote(self.realm)}",
            f"nonce={_quote(self.nonce)}",
            f"uri={_quote(self.uri)}",
            f"response={_quote(self.response)}",
            f"algorithm={self.algorithm}",
        ]
        if self.cnonce is not None:
            parts.append(f"cnonce={_quote(self.cnonce)}")
        if self.opaque is not None:
            parts.append(f"opaque={_quote(self.opaque)}")
        if self.qop is not None:
            # RFC 7616 §3.4: qop and nc are unquoted tokens in credentials.
            parts.append(f"qop={self.qop}")
            parts.append(f"nc={self.nc}")
        return "Digest " + ", ".join(parts)


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _to_challenge(p: _Parsed) -> DigestChallenge:
    _require_digest(p)
    realm = _need(p, "realm", "Digest challenge")
    nonce = _need(p, "nonce", "Digest challenge")
    raw_algo = p.params.get("algorithm")
    # An unknown algorithm is kept verbatim so the client can skip this challenge for another.
    algorithm = _CANONICAL.get(raw_algo.strip().upper(), raw_algo) if raw_algo is not None else "MD5"
    qop: tuple[str, ...] = ()
    if "qop" in p.params:
        qop = tuple(q.strip().lower() for q in p.params["qop"].split(",") if q.strip())
        if not qop:
            raise AuthError('Digest challenge has an empty qop; send qop="auth" or leave it out')
    stale_raw = p.params.get("stale")
    stale = stale_raw is not None and stale_raw.strip().lower() == "true"
    return DigestChallenge(
        realm=realm,
        nonce=nonce,
        algorithm=algorithm,
        qop=qop,
        opaque=p.params.get("opaque"),
        stale=stale,
        domain=p.params.get("domain"),
        params=dict(p.params),
    )


def parse_challenges(value: str) -> list[DigestChallenge]:
    """All challenges in one header value (several may be comma-joined). Non-Digest raises."""
    return [_to_challenge(p) for p in _parse_all(value)]


def parse_challenge(value: str) -> DigestChallenge:
    """Exactly one Digest challenge, e.g. ``Digest realm="x", nonce="y", qop="auth"``."""
    parsed = _parse_all(value)
    if len(parsed) != 1:
        raise AuthError(f"expected one challenge, found {len(parsed)}")
    return _to_challenge(parsed[0])


_NC_LEN: Final = 8


def parse_credentials(value: str) -> DigestCredentials:
    """An ``Authorization`` value; checks what RFC 7616 §3.4 makes mandatory."""
    parsed = _parse_all(value)
    if len(parsed) != 1:
        raise AuthError(f"expected one set of credentials, found {len(parsed)}")
    p = parsed[0]
    _require_digest(p)
    what = "Digest credentials"
    username = _need(p, "username", what)
    realm = _need(p, "realm", what)
    nonce = _need(p, "nonce", what)
    uri = _need(p, "uri", what)
    response = _need(p, "response", what)
    algorithm = _canonical_algorithm(p.params.get("algorithm"))
    qop = p.params.get("qop")
    nc = p.params.get("nc")
    cnonce = p.params.get("cnonce")
    if qop is not None:
        qop = qop.strip().lower()
        if qop not in ("auth", "auth-int"):
            raise AuthError(f"qop={qop!r} is not supported; use qop=auth")
        if nc is None or cnonce is None:
            raise AuthError(f"qop={qop} requires both nc= and cnonce=")
        if len(nc) != _NC_LEN or any(c not in "0123456789abcdefABCDEF" for c in nc):
            raise AuthError(f"nc={nc!r} must be 8 hexadecimal digits, e.g. nc=00000001")
    if algorithm.endswith("-sess") and cnonce is None:
        raise AuthError(f"algorithm={algorithm} requires cnonce=")
    if not response or any(c not in "0123456789abcdefABCDEF" for c in response):
        raise AuthError("response= must be a hexadecimal digest")
    return DigestCredentials(
        username=username,
        realm=realm,
        nonce=nonce,
        uri=uri,
        response=response.lower(),
        algorithm=algorithm,
        qop=qop,
        nc=nc.lower() if nc is not None else None,
        cnonce=cnonce,
        opaque=p.params.get("opaque"),
    )


# ---------------------------------------------------------------------------------------
# Client (UAC): answers 401/407 challenges
# ---------------------------------------------------------------------------------------

_MAX_NONCES_REMEMBERED: Final = 32


def _default_cnonce() -> str:
    return secrets.token_hex(8)


class DigestClient:
    """Answers Digest challenges for one account.

    Give the password, or a precomputed HA1 (then only the challenge's algorithm family
    that HA1 was computed with can be answered, and the challenge realm must be the one
    it was computed for). One client may answer many requests: it counts ``nc`` per nonce
    so a server may reuse a nonce (RFC 7616 §3.4).

    Loop guard (RFC 3261 §22.2): a request that already carried credentials and is
    challenged again means the credentials were refused, unless the challenge says
    ``stale=true``; :meth:`should_retry` encodes that and caps consecutive stale retries.
    """

    def __init__(
        self,
        username: str,
        password: str | None = None,
        ha1: str | None = None,
        *,
        ha1_algorithm: str = "MD5",
        cnonce_factory: Callable[[], str] = _default_cnonce,
        max_stale_retries: int = 2,
    ) -> None:
        if (password is None) == (ha1 is None):
            raise ValueError("DigestClient needs exactly one of password= or ha1=")
        self.username = username
        self._password = password
        self._ha1 = ha1.lower() if ha1 is not None else None
        self._ha1_algorithm = _base_algorithm(_canonical_algorithm(ha1_algorithm))
        self._cnonce = cnonce_factory
        self._nc: OrderedDict[str, int] = OrderedDict()
        self._stale_streak = 0
        self.max_stale_retries = max_stale_retries

    # -- choosing -----------------------------------------------------------------------
    def _usable(self, ch: DigestChallenge) -> bool:
        if ch.algorithm not in ALGORITHMS:
            return False
        if ch.qop and "auth" not in ch.qop and "auth-int" not in ch.qop:
            return False
        return not (self._ha1 is not None and _base_algorithm(ch.algorithm) != self._ha1_algorithm)

    def choose(self, challenges: Iterable[str]) -> DigestChallenge:
        """The strongest answerable Digest challenge among header values (RFC 8760 §2.4).

        Values that are not Digest (e.g. ``Basic``) or are malformed are skipped as long as
        one usable challenge remains; otherwise AuthError explains why none qualifies.
        """
        usable: list[DigestChallenge] = []
        problems: list[str] = []
        for value in challenges:
            try:
                parsed = parse_challenges(value)
            except AuthError as exc:
                problems.append(exc.message)
                continue
            for ch in parsed:
                if self._usable(ch):
                    usable.append(ch)
                else:
                    problems.append(f"algorithm={ch.algorithm} qop={','.join(ch.qop) or '-'} cannot be answered")
        if not usable:
            detail = "; ".join(problems) if problems else "no challenge header present"
            raise AuthError(f"no usable Digest challenge: {detail}")
        # Stable sort: among equal algorithms the server's order wins.
        usable.sort(key=lambda ch: ALGORITHMS.index(ch.algorithm))
        return usable[0]

    # -- answering ----------------------------------------------------------------------
    def authorize(self, challenges: list[str], *, method: str, uri: str, body: bytes = b"") -> str:
        """The ``Authorization``/``Proxy-Authorization`` value answering ``challenges``.

        ``uri`` is the Request-URI of the request being retried, as sent.
        """
        ch = self.choose(challenges)
        algo = ch.algorithm
        if self._ha1 is not None:
            key = self._ha1
        else:
            assert self._password is not None
            key = ha1(self.username, ch.realm, self._password, algo)
        qop: str | None
        if not ch.qop:
            qop = None  # RFC 2069 compatibility
        elif "auth" in ch.qop:
            qop = "auth"
        else:
            qop = "auth-int"
        cnonce: str | None = None
        nc: str | None = None
        if qop is not None or algo.endswith("-sess"):
            cnonce = self._cnonce()
        if qop is not None:
            count = self._nc.pop(ch.nonce, 0) + 1
            self._nc[ch.nonce] = count
            while len(self._nc) > _MAX_NONCES_REMEMBERED:
                self._nc.popitem(last=False)
            nc = f"{count:08x}"
        self._stale_streak = self._stale_streak + 1 if ch.stale else 0
        response = digest_response(
            algorithm=algo,
            ha1_value=key,
            nonce=ch.nonce,
            method=method,
            uri=uri,
            qop=qop,
            nc=nc,
            cnonce=cnonce,
            body=body,
        )
        return DigestCredentials(
            username=self.username,
            realm=ch.realm,
            nonce=ch.nonce,
            uri=uri,
            response=response,
            algorithm=algo,
            qop=qop,
            nc=nc,
            cnonce=cnonce,
            opaque=ch.opaque,
        ).to_header()

    def is_stale(self, challenges: list[str]) -> bool:
        """True when the challenge we would answer says ``stale=true`` (RFC 7616 §3.3):
        the nonce expired but the credentials were right, so retry without asking the user."""
        try:
            return self.choose(challenges).stale
        except AuthError:
            return False

    def should_retry(self, challenges: list[str], *, sent_credentials: bool) -> bool:
        """Whether answering this 401/407 is worth another request.

        A first challenge always is. After sending credentials, only a ``stale`` challenge
        is (RFC 3261 §22.2: otherwise the credentials were refused), and at most
        ``max_stale_retries`` stale answers in a row, so a confused server cannot loop us.
        """
        try:
            ch = self.choose(challenges)
        except AuthError:
            return False
        if not sent_credentials:
            return True
        return ch.stale and self._stale_streak < self.max_stale_retries


# ---------------------------------------------------------------------------------------
# Server (UAS / registrar): challenges and verifies
# ---------------------------------------------------------------------------------------


class CredentialStore(Protocol):
    """Where the server finds HA1 values. ``algorithm`` is the base one (MD5, SHA-256...)."""

    def lookup_ha1(self, username: str, algorithm: str) -> str | None: ...


class InMemoryCredentials:
    """HA1 values per (user, algorithm) for one realm. Plain passwords are never kept."""

    def __init__(self, realm: str) -> None:
        self.realm = realm
        self._ha1: dict[tuple[str, str], str] = {}

    @classmethod
    def from_passwords(cls, realm: str, accounts: Mapping[str, str] | Iterable[tuple[str, str]]) -> InMemoryCredentials:
        store = cls(realm)
        pairs = accounts.items() if isinstance(accounts, Mapping) else accounts
        for username, password in pairs:
            store.add(username, password)
        return store

    def add(self, username: str, password: str) -> None:
        if not username:
            raise ValueError("an account needs a non-empty username")
        for algo in _HASHES:
            self._ha1[(username, algo)] = ha1(username, self.realm, password, algo)

    def add_ha1(self, username: str, algorithm: str, ha1_value: str) -> None:
        self._ha1[(username, _base_algorithm(_canonical_algorithm(algorithm)))] = ha1_value.lower()

    def remove(self, username: str) -> None:
        for algo in _HASHES:
            self._ha1.pop((username, algo), None)

    def lookup_ha1(self, username: str, algorithm: str) -> str | None:
        return self._ha1.get((username, _base_algorithm(algorithm)))

    def __contains__(self, username: object) -> bool:
        return any((username, a) in self._ha1 for a in _HASHES)


AuthOutcome = Literal["ok", "challenge", "stale", "locked_out", "bad_request"]


@dataclass(frozen=True)
class AuthResult:
    """What :meth:`DigestServer.verify` decided.

    ``ok``: authenticated as ``username``. ``challenge``: answer 401 with
    :meth:`DigestServer.challenge`. ``stale``: 401 with ``stale=True`` (RFC 7616 §3.3).
    ``locked_out``: answer 403. ``bad_request``: answer 400. ``reason`` is for our logs
    only: never put it in a response, it tells unknown users from wrong passwords.
    """

    outcome: AuthOutcome
    username: str | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


_NONCE_FUTURE_SLACK: Final = 5.0


class DigestServer:
    """Challenges requests and checks Digest credentials for one realm.

    Nonces are ``<ms timestamp hex>.<salt>.<HMAC(secret, ts.salt.realm)>``: any node with
    the secret can verify them without storing them; they expire after ``nonce_ttl``.
    ``nc`` values are remembered per nonce in a bounded LRU so replays are caught
    (RFC 7616 §3.4: nc must increase). Failures are counted per source address; after
    ``lockout_threshold`` within ``lockout_window`` seconds the source is refused for
    ``lockout_time``. Both tables are bounded by ``max_tracked``.

    ``allow_rfc2069`` accepts answers without ``qop`` (pyVoIP and some old phones send
    them); each nonce then works once, since there is no ``nc`` to tell a replay.
    """

    def __init__(
        self,
        realm: str,
        credentials: CredentialStore,
        *,
        secret: bytes,
        nonce_ttl: float = 300.0,
        lockout_threshold: int = 5,
        lockout_window: float = 60.0,
        lockout_time: float = 300.0,
        max_tracked: int = 10_000,
        algorithms: tuple[str, ...] = ("SHA-256", "MD5"),
        allow_rfc2069: bool = False,
    ) -> None:
        if len(secret) < 16:
            raise ValueError("DigestServer secret must be at least 16 random bytes (use secrets.token_bytes(32))")
        if lockout_threshold < 1:
            raise ValueError("lockout_threshold must be at least 1")
        self.realm = realm
        self.credentials = credentials
        self._secret = secret
        self.nonce_ttl = nonce_ttl
        self.lockout_threshold = lockout_threshold
        self.lockout_window = lockout_window
        self.lockout_time = lockout_time
        self.max_tracked = max_tracked
        self.algorithms = tuple(_canonical_algorithm(a) for a in algorithms)
        # RFC 2069 answers (no qop, so no nc) are only accepted once per nonce.
        self.allow_rfc2069 = allow_rfc2069
        self.opaque = hmac.new(secret, b"opaque:" + realm.encode(), hashlib.sha256).hexdigest()[:32]
        # HA1-shaped values to hash against for unknown users, so they cost the same work.
        self._dummy_ha1 = {
            algo: _h(algo, hmac.new(secret, b"dummy:" + realm.encode(), hashlib.sha256).hexdigest()) for algo in _HASHES
        }
        self._nc: OrderedDict[str, int] = OrderedDict()
        # Timestamp of the newest nonce evicted from _nc: an older nonce we no longer track
        # could be a replay, so it is answered stale rather than trusted.
        self._nc_evicted_ts = -1
        self._failures: OrderedDict[str, list[float]] = OrderedDict()
        self._locked: OrderedDict[str, float] = OrderedDict()

    # -- nonces -------------------------------------------------------------------------
    def _mac(self, body: str) -> str:
        msg = f"{body}.{self.realm}".encode()
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest()[:32]

    def make_nonce(self, now: float) -> str:
        body = f"{int(now * 1000):x}.{secrets.token_hex(6)}"
        return f"{body}.{self._mac(body)}"

    def _nonce_time(self, nonce: str) -> int | None:
        """The nonce's issue time in ms when we issued it, else None."""
        parts = nonce.split(".")
        if len(parts) != 3:
            return None
        ts_hex, salt, mac = parts
        if not hmac.compare_digest(mac.encode(), self._mac(f"{ts_hex}.{salt}").encode()):
            return None
        try:
            return int(ts_hex, 16)
        except ValueError:
            return None

    def challenge(self, now: float, *, stale: bool = False) -> list[str]:
        """``WWW-Authenticate`` values, strongest algorithm first (RFC 8760 §2.4)."""
        nonce = self.make_nonce(now)
        return [
            DigestChallenge(
                realm=self.realm, nonce=nonce, algorithm=algo, qop=("auth",), opaque=self.opaque, stale=stale
            ).to_header()
            for algo in self.algorithms
        ]

    # -- lockout ------------------------------------------------------------------------
    def locked_until(self, source: str, now: float) -> float | None:
        until = self._locked.get(source)
        if until is None:
            return None
        if now >= until:
            del self._locked[source]
            return None
        return until

    def _record_failure(self, source: str, now: float) -> bool:
        """Count a failure; True when it trips the lockout."""
        stamps = self._failures.pop(source, [])
        stamps = [t for t in stamps if now - t < self.lockout_window]
        stamps.append(now)
        if len(stamps) >= self.lockout_threshold:
            until = now + self.lockout_time
            self._locked.pop(source, None)
            self._locked[source] = until
            while len(self._locked) > self.max_tracked:
                self._locked.popitem(last=False)
            log.warning("auth.lockout", source=source, until=until, failures=len(stamps), realm=self.realm)
            return True
        self._failures[source] = stamps
        while len(self._failures) > self.max_tracked:
            self._failures.popitem(last=False)
        return False

    def tracked_sources(self) -> int:
        """How many sources have failure counters or lockouts (for bounded-memory checks)."""
        return len(self._failures) + len(self._locked)

    # -- verification -------------------------------------------------------------------
    def verify(
        self,
        authorization: str | None,
        *,
        method: str,
        source: str,
        now: float,
        request_uri: str | None = None,
        body: bytes | None = None,
    ) -> AuthResult:
        """Check an ``Authorization`` header value for a request from ``source`` (an IP)."""
        if self.locked_until(source, now) is not None:
            return AuthResult("locked_out", None, f"source {source} is locked out")
        if authorization is None:
            return AuthResult("challenge", None, "no credentials")
        try:
            cred = parse_credentials(authorization)
        except AuthError as exc:
            return AuthResult("bad_request", None, f"malformed Authorization: {exc.message}")
        user = cred.username
        if cred.algorithm not in self.algorithms and _base_algorithm(cred.algorithm) not in self.algorithms:
            return AuthResult("bad_request", user, f"algorithm {cred.algorithm} was not offered")
        if cred.qop is None and not self.allow_rfc2069:
            return AuthResult("bad_request", user, "credentials without qop (RFC 2069) are not accepted; use qop=auth")
        if cred.qop == "auth-int" and body is None:
            return AuthResult("bad_request", user, "qop=auth-int was not offered; use qop=auth")
        if cred.realm != self.realm:
            return AuthResult("challenge", user, f"realm {cred.realm!r} is not ours ({self.realm!r})")
        if request_uri is not None and not _same_uri(cred.uri, request_uri):
            return AuthResult("bad_request", user, f"digest uri {cred.uri!r} does not match request {request_uri!r}")
        if cred.opaque is not None and not hmac.compare_digest(cred.opaque.encode(), self.opaque.encode()):
            return AuthResult("challenge", user, "opaque does not match the one we issued")
        issued_ms = self._nonce_time(cred.nonce)
        if issued_ms is None:
            return AuthResult("challenge", user, "nonce was not issued by us")
        age = now - issued_ms / 1000.0
        if age < -_NONCE_FUTURE_SLACK:
            return AuthResult("challenge", user, "nonce is from the future (clock jump or secret reuse)")

        # Same work whether or not the user exists: hash against a dummy HA1 when unknown.
        stored = self.credentials.lookup_ha1(user, _base_algorithm(cred.algorithm))
        known = stored is not None
        key = stored if stored is not None else self._dummy_ha1[_base_algorithm(cred.algorithm)]
        expected = digest_response(
            algorithm=cred.algorithm,
            ha1_value=key,
            nonce=cred.nonce,
            method=method,
            uri=cred.uri,
            qop=cred.qop,
            nc=cred.nc,
            cnonce=cred.cnonce,
            body=body or b"",
        )
        matches = hmac.compare_digest(expected.encode(), cred.response.encode())
        if not (matches and known):
            why = "unknown user" if not known else "wrong password"
            if self._record_failure(source, now):
                return AuthResult("locked_out", user, f"{why} for {user!r}; source {source} now locked out")
            return AuthResult("challenge", user, f"{why} for {user!r}")
        if age > self.nonce_ttl:
            return AuthResult("stale", user, f"nonce expired {age - self.nonce_ttl:.0f}s ago")
        nc = int(cred.nc, 16) if cred.nc is not None else 1
        last = self._nc.get(cred.nonce)
        if last is None and issued_ms <= self._nc_evicted_ts:
            return AuthResult("stale", user, "nonce no longer tracked for replay protection")
        if last is not None and nc <= last:
            return AuthResult("stale", user, f"nc {nc} replayed (last seen {last})")
        self._nc.pop(cred.nonce, None)
        self._nc[cred.nonce] = nc
        while len(self._nc) > self.max_tracked:
            evicted, _ = self._nc.popitem(last=False)
            ts = self._nonce_time(evicted)
            if ts is not None:
                self._nc_evicted_ts = max(self._nc_evicted_ts, ts)
        return AuthResult("ok", user, "authenticated")


def _same_uri(digest_uri: str, request_uri: str) -> bool:
    """Loose RFC 3261 §19.1.4 comparison: scheme and host case-insensitive, params ignored."""

    def norm(u: str) -> str:
        u = u.strip().strip("<>")
        u = u.split(";", 1)[0].split("?", 1)[0]
        scheme, sep, rest = u.partition(":")
        if not sep:
            return u.lower()
        user, at, host = rest.rpartition("@")
        return f"{scheme.lower()}:{user}{at}{host.lower()}"

    return norm(digest_uri) == norm(request_uri)
