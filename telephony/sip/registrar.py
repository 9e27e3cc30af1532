"""Registrar bindings: which contacts an address-of-record is reachable at, pure and clocked.

Implements the REGISTER processing of RFC 3261 §10.3 (steps 5-8: wildcard removal,
per-contact expiry with 423 Interval Too Brief, Call-ID/CSeq ordering, atomic update,
the 200 listing every current binding) and §19.1.4 contact URI comparison, plus the
``+sip.instance`` matching of RFC 5626 §6. Each binding remembers the source address and
transport its REGISTER arrived from so calls reach softphones behind NAT over the same
flow (RFC 3581 / RFC 5626 style). Nothing here does I/O or reads the clock: the caller
passes ``now`` and arms a timer at :meth:`Registrar.next_deadline`.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

__all__ = ["Binding", "ContactSpec", "RegisterResult", "Registrar", "normalise_aor"]


@dataclass(frozen=True)
class ContactSpec:
    """One Contact of a REGISTER: URI, its ``expires``/``q`` parameters, ``+sip.instance``."""

    uri: str
    expires: int | None = None
    q: float | None = None
    instance: str | None = None


@dataclass(frozen=True)
class Binding:
    """A contact bound to an address-of-record until ``expires_at`` (RFC 3261 §10.3).

    ``source``/``transport`` are where the REGISTER came from: send requests for this
    contact there, not to the (often private) address in ``uri``.
    """

    aor: str
    uri: str
    expires_at: float
    source: tuple[str, int]
    transport: str
    call_id: str
    cseq: int
    q: float | None = None
    instance: str | None = None
    updated_at: float = 0.0

    def remaining(self, now: float) -> int:
        """Whole seconds left, as sent back in the Contact's ``expires`` parameter."""
        return max(0, math.ceil(self.expires_at - now - 1e-6))

    def contact_header(self, now: float) -> str:
        value = f"<{self.uri}>;expires={self.remaining(now)}"
        if self.q is not None:
            value += f";q={_format_q(self.q)}"
        if self.instance is not None:
            value += f';+sip.instance="{self.instance}"'
        return value


@dataclass(frozen=True)
class RegisterResult:
    """How to answer a REGISTER: status, reason phrase, extra headers, and what changed.

    ``headers`` holds a Contact per current binding for a 200 (RFC 3261 §10.3 step 8), or
    Min-Expires for a 423. ``removed`` lists bindings this request removed or evicted.
    """

    status: int
    reason: str
    bindings: tuple[Binding, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    removed: tuple[Binding, ...] = ()
    min_expires: int | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200


_Q_DEFAULT: Final = 1.0  # a contact without q ranks with q=1.0 (RFC 3261 leaves it open)


def _format_q(q: float) -> str:
    return f"{q:.3f}".rstrip("0").rstrip(".") or "0"


def _strip_brackets(uri: str) -> str:
    u = uri.strip()
    if "<" in u and ">" in u:
        u = u[u.index("<") + 1 : u.rindex(">")]
    return u.strip()


def normalise_aor(aor: str) -> str:
    """``<sip:Alice@HOST;transport=udp>`` -> ``sip:Alice@host``.

    The user part stays case-sensitive, the scheme and host do not (RFC 3261 §19.1.4);
    URI parameters and headers are not part of an address-of-record (§10.3 step 5).
    """
    u = _strip_brackets(aor)
    scheme, sep, rest = u.partition(":")
    scheme = scheme.strip().lower()
    if not sep or scheme not in ("sip", "sips"):
        raise ValueError(f"address-of-record {aor!r} must be a sip: or sips: URI, e.g. sip:alice@example.com")
    user, at, hostpart = rest.rpartition("@")
    host = hostpart.split(";", 1)[0].split("?", 1)[0].strip().lower()
    if not host:
        raise ValueError(f"address-of-record {aor!r} has no host part; write it as sip:user@host")
    if at and not user:
        raise ValueError(f"address-of-record {aor!r} has an empty user part before '@'")
    return f"{scheme}:{user}{at}{host}"


@dataclass(frozen=True)
class _ParsedURI:
    scheme: str
    userinfo: str
    host: str
    params: Mapping[str, str | None] = field(default_factory=dict)


_MUST_MATCH: Final = ("user", "ttl", "method", "maddr", "transport")


@functools.lru_cache(maxsize=4096)
def _parse_contact(uri: str) -> _ParsedURI:
    u = _strip_brackets(uri)
    scheme, _, rest = u.partition(":")
    rest = rest.split("?", 1)[0]
    userinfo, at, hostpart = rest.rpartition("@")
    host, _, ptext = hostpart.partition(";")
    params: dict[str, str | None] = {}
    for item in ptext.split(";"):
        if not item:
            continue
        name, eq, val = item.partition("=")
        params[name.strip().lower()] = val.strip().lower() if eq else None
    return _ParsedURI(scheme.strip().lower(), userinfo + at, host.strip().lower(), MappingProxyType(params))


def _same_contact(a: str, b: str) -> bool:
    """RFC 3261 §19.1.4 URI equality, without %-unescaping (phones resend the same text)."""
    pa, pb = _parse_contact(a), _parse_contact(b)
    if (pa.scheme, pa.userinfo, pa.host) != (pb.scheme, pb.userinfo, pb.host):
        return False
    for name in _MUST_MATCH:
        if pa.params.get(name, "\0") != pb.params.get(name, "\0"):
            return False
    return all(pa.params[n] == pb.params[n] for n in pa.params.keys() & pb.params.keys())


def _clean_instance(instance: str | None) -> str | None:
    if instance is None:
        return None
    inst = instance.strip().strip('"').strip()
    return inst or None


class Registrar:
    """Location service for REGISTERed contacts (RFC 3261 §10.3), driven by the caller's clock.

    Theory of operation: :meth:`register` validates the whole request first and only then
    applies it, so a 400/423/500 leaves the bindings untouched (§10.3: "processing of a
    REGISTER request MUST be atomic"). A heap of expiry times, lazily cleaned, gives
    :meth:`next_deadline`; the caller calls :meth:`expire` when it passes. At most
    ``max_contacts`` bindings are kept per AOR; registering one more evicts the binding
    refreshed longest ago (a laptop that changed networks leaves stale contacts behind).
    """

    def __init__(
        self,
        *,
        min_expires: int = 60,
        max_expires: int = 3600,
        default_expires: int = 3600,
        max_contacts: int = 10,
    ) -> None:
        if not 0 < min_expires <= default_expires <= max_expires:
            raise ValueError(
                f"registrar expiry limits need 0 < min_expires ({min_expires}) <= default_expires "
                f"({default_expires}) <= max_expires ({max_expires})"
            )
        if max_contacts < 1:
            raise ValueError("max_contacts must be at least 1")
        self.min_expires = min_expires
        self.max_expires = max_expires
        self.default_expires = default_expires
        self.max_contacts = max_contacts
        self._aors: dict[str, list[Binding]] = {}
        self._count = 0  # bindings held, kept in step with _aors
        self._heap: list[tuple[float, int, str, Binding]] = []
        self._seq = itertools.count()

    # -- REGISTER -----------------------------------------------------------------------
    def register(
        self,
        aor: str,
        contacts: list[ContactSpec] | str,
        *,
        call_id: str,
        cseq: int,
        expires_header: int | None,
        source: tuple[str, int],
        transport: str,
        now: float,
    ) -> RegisterResult:
        """Apply one REGISTER for ``aor`` and say how to answer it.

        ``contacts`` is ``"*"`` for the wildcard, ``[]`` for a query. ``expires_header`` is
        the request's Expires value, if any.
        """
        try:
            key = normalise_aor(aor)
        except ValueError as exc:
            return _bad(str(exc))
        if expires_header is not None and expires_header < 0:
            return _bad(f"Expires: {expires_header} is negative; use 0 to unregister")

        live, lapsed = self._split(key, now)

        if isinstance(contacts, str):
            if contacts.strip() != "*":
                return _bad(f"Contact {contacts!r} is neither '*' nor a list of contacts")
            return self._wildcard(
                key,
                live=live,
                lapsed=lapsed,
                call_id=call_id,
                cseq=cseq,
                expires_header=expires_header,
                spec_expires=None,
            )
        if any(c.uri.strip() == "*" for c in contacts):
            if len(contacts) > 1:
                return _bad("Contact: * must be the only Contact of a REGISTER (RFC 3261 §10.2.2)")
            return self._wildcard(
                key,
                live=live,
                lapsed=lapsed,
                call_id=call_id,
                cseq=cseq,
                expires_header=expires_header,
                spec_expires=contacts[0].expires,
            )

        # Validate everything before touching state (atomicity).
        plan: list[tuple[ContactSpec, int]] = []
        for spec in contacts:
            if not _strip_brackets(spec.uri) or ":" not in spec.uri:
                return _bad(f"Contact URI {spec.uri!r} is not a URI; send e.g. <sip:alice@192.0.2.10:5060>")
            if spec.q is not None and not 0.0 <= spec.q <= 1.0:  # also false for NaN
                return _bad(f"Contact q={spec.q} is outside 0..1")
            if spec.expires is not None and spec.expires < 0:
                return _bad(f"Contact expires={spec.expires} is negative; use 0 to unregister")
            if spec.expires is not None:
                expires = spec.expires
            elif expires_header is not None:
                expires = expires_header
            else:
                expires = self.default_expires
            if 0 < expires < self.min_expires:
                return RegisterResult(
                    423,
                    "Interval Too Brief",
                    headers=(("Min-Expires", str(self.min_expires)),),
                    min_expires=self.min_expires,
                )
            plan.append((spec, min(expires, self.max_expires)))
            old = self._match(live, spec)
            if old is not None and old.call_id == call_id and cseq <= old.cseq:
                return RegisterResult(
                    500,
                    f"Server Internal Error (out-of-order REGISTER: CSeq {cseq} <= {old.cseq} for this Call-ID)",
                )

        working = list(live)
        removed: list[Binding] = list(lapsed)
        for spec, expires in plan:
            old = self._match(working, spec)
            if old is not None:
                working.remove(old)
            if expires == 0:
                if old is not None:
                    removed.append(old)
                continue
            working.append(
                Binding(
                    aor=key,
                    uri=_strip_brackets(spec.uri),
                    expires_at=now + expires,
                    source=source,
                    transport=transport.lower(),
                    call_id=call_id,
                    cseq=cseq,
                    q=spec.q,
                    instance=_clean_instance(spec.instance),
                    updated_at=now,
                )
            )
        if len(working) > self.max_contacts:
            working.sort(key=lambda b: b.updated_at)
            evicted, working = working[: -self.max_contacts], working[-self.max_contacts :]
            removed.extend(evicted)
        self._commit(key, working)
        ordered = tuple(_ordered(working))
        return RegisterResult(
            200,
            "OK",
            bindings=ordered,
            headers=tuple(("Contact", b.contact_header(now)) for b in ordered),
            removed=tuple(removed),
        )

    def _wildcard(
        self,
        key: str,
        *,
        live: list[Binding],
        lapsed: list[Binding],
        call_id: str,
        cseq: int,
        expires_header: int | None,
        spec_expires: int | None,
    ) -> RegisterResult:
        if expires_header != 0 and not (expires_header is None and spec_expires == 0):
            return _bad("Contact: * (remove all bindings) requires Expires: 0")
        for b in live:
            if b.call_id == call_id and cseq <= b.cseq:
                return RegisterResult(
                    500, f"Server Internal Error (out-of-order REGISTER: CSeq {cseq} <= {b.cseq} for this Call-ID)"
                )
        self._commit(key, [])
        return RegisterResult(200, "OK", removed=tuple(lapsed + live))

    @staticmethod
    def _match(bindings: list[Binding], spec: ContactSpec) -> Binding | None:
        instance = _clean_instance(spec.instance)
        for b in bindings:
            if instance is not None and b.instance == instance:
                return b
            if _same_contact(b.uri, spec.uri):
                return b
        return None

    def _split(self, key: str, now: float) -> tuple[list[Binding], list[Binding]]:
        bindings = self._aors.get(key, [])
        live = [b for b in bindings if b.expires_at > now]
        lapsed = [b for b in bindings if b.expires_at <= now]
        return live, lapsed

    def _commit(self, key: str, bindings: list[Binding]) -> None:
        before = self._aors.get(key, [])
        self._count += len(bindings) - len(before)
        if bindings:
            self._aors[key] = bindings
        else:
            self._aors.pop(key, None)
        for b in bindings:
            if not any(b is old for old in before):
                heapq.heappush(self._heap, (b.expires_at, next(self._seq), key, b))
        self._compact()

    # -- queries and timers -------------------------------------------------------------
    def lookup(self, aor: str, now: float) -> list[Binding]:
        """Unexpired bindings of ``aor``, highest q first, then the most recently refreshed."""
        bindings = self._aors.get(normalise_aor(aor), [])
        return _ordered(b for b in bindings if b.expires_at > now)

    def expire(self, now: float) -> list[Binding]:
        """Remove and return every binding whose time is up (``expires_at <= now``)."""
        gone: list[Binding] = []
        while self._heap and self._heap[0][0] <= now:
            _, _, key, binding = heapq.heappop(self._heap)
            bindings = self._aors.get(key)
            if bindings is None or not any(binding is b for b in bindings):
                continue  # refreshed or removed since: a stale heap entry
            bindings.remove(binding)
            self._count -= 1
            gone.append(binding)
            if not bindings:
                del self._aors[key]
        return gone

    def next_deadline(self) -> float | None:
        """When the earliest binding expires; call :meth:`expire` then."""
        while self._heap:
            _, _, key, binding = self._heap[0]
            if any(binding is b for b in self._aors.get(key, ())):
                return binding.expires_at
            heapq.heappop(self._heap)
        return None

    def aors(self) -> list[str]:
        return sorted(self._aors)

    def __len__(self) -> int:
        """Number of bindings held (expired ones included until :meth:`expire` runs)."""
        return self._count

    def _compact(self) -> None:
        # Refreshes leave superseded heap entries behind; rebuild before they dominate.
        if len(self._heap) > 2 * len(self) + 64:
            self._heap = [
                (b.expires_at, next(self._seq), key, b) for key, bindings in self._aors.items() for b in bindings
            ]
            heapq.heapify(self._heap)


def _ordered(bindings: Iterable[Binding]) -> list[Binding]:
    items = list(bindings)
    items.sort(key=lambda b: (-(b.q if b.q is not None else _Q_DEFAULT), -b.updated_at))
    return items


def _bad(why: str) -> RegisterResult:
    return RegisterResult(400, f"Bad Request ({why})")
