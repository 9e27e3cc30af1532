"""Simulated customers: what happens when a number is dialled, decided by a pure seeded model.

:class:`CustomerModel` answers one question for the simulated carrier: "number N is dialled
for the k-th time at instant T: does a person answer, a machine, is it busy, does it ring
out, or does the network refuse it (480, 404, 603)? After how long, and for how long do
they talk?" The answer is a :class:`CustomerDecision`, a frozen value that depends only on
``(seed, number, attempt, callee's local hour)``: the same run gives the same customers,
and a retry of the same number (a new ``attempt``) draws afresh, so "busy in the morning,
answers in the evening" happens as it does in real campaigns.

Time of day matters through ``hour_factor``: a multiplier on the answer probability by the
callee's local hour (their zone comes from the number via ``phonenumbers``). The removed or
added probability mass moves to "no answer". :func:`evening_person` is a typical profile
(people at work during the day pick up more in the evening).

The model is pure: no clock, no I/O; the instant is an argument.
"""

from __future__ import annotations

import functools
import hashlib
import math
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as pn_timezone

__all__ = [
    "DEFAULT_MIX",
    "Behaviour",
    "CustomerDecision",
    "CustomerModel",
    "CustomerModelConfig",
    "Override",
    "Pin",
    "evening_person",
    "flat_day",
    "normalize_number",
    "number_zone",
]

E164_RE: Final = re.compile(r"^\+[1-9]\d{1,14}$")


class Behaviour(StrEnum):
    """What the customer (or the network in front of them) does with one call."""

    ANSWER_HUMAN = "answer_human"
    ANSWER_MACHINE = "answer_machine"
    BUSY = "busy"  # 486
    NO_ANSWER = "no_answer"  # rings until the caller cancels
    REJECT = "reject"  # 603 Decline after some ringing: the person pressed "decline"
    UNAVAILABLE = "unavailable"  # 480: phone off, out of coverage
    NOT_FOUND = "not_found"  # 404: the number does not exist

    @property
    def answers(self) -> bool:
        return self in (Behaviour.ANSWER_HUMAN, Behaviour.ANSWER_MACHINE)

    @property
    def rings(self) -> bool:
        """Whether the caller hears ringing (180) before the outcome."""
        return self in (Behaviour.ANSWER_HUMAN, Behaviour.ANSWER_MACHINE, Behaviour.NO_ANSWER, Behaviour.REJECT)

    @property
    def sip_status(self) -> int | None:
        """The final failure status the carrier sends for this behaviour (None: answered or cancelled)."""
        return _FAILURE_STATUS.get(self)


_FAILURE_STATUS: Final[Mapping[Behaviour, int]] = MappingProxyType(
    {Behaviour.BUSY: 486, Behaviour.REJECT: 603, Behaviour.UNAVAILABLE: 480, Behaviour.NOT_FOUND: 404}
)

DEFAULT_MIX: Final[Mapping[Behaviour, float]] = MappingProxyType(
    {
        Behaviour.ANSWER_HUMAN: 0.35,
        Behaviour.ANSWER_MACHINE: 0.10,
        Behaviour.BUSY: 0.15,
        Behaviour.NO_ANSWER: 0.35,
        Behaviour.REJECT: 0.02,
        Behaviour.UNAVAILABLE: 0.02,
        Behaviour.NOT_FOUND: 0.01,
    }
)


def flat_day(hour: int) -> float:
    """No time-of-day effect."""
    return 1.0


def evening_person(hour: int) -> float:
    """A working person: rarely picks up at work hours, mostly in the evening and at lunch."""
    if 17 <= hour < 21:
        return 1.6
    if 12 <= hour < 14:
        return 1.1
    if 9 <= hour < 17:
        return 0.6
    return 0.4  # early morning and night: most people do not pick up unknown numbers


@dataclass(frozen=True, slots=True)
class Pin:
    """A per-number override: force a behaviour and optionally its timings (tests, demos)."""

    behaviour: Behaviour
    ring_s: float | None = None
    talk_s: float | None = None
    hangs_up_first: bool | None = None
    silence_patience_s: float | None = None


Override = Behaviour | Pin | str | Sequence[Behaviour | Pin | str]
"""A pin, a behaviour (or its name), or one of those per attempt (the last one repeats)."""


@dataclass(frozen=True)
class CustomerModelConfig:
    """The population of customers. Times are seconds.

    ``mix`` gives each behaviour's probability (they must add up to 1). Ring time before an
    answer or a decline is lognormal with median ``ring_median_s``; talk time is lognormal
    with mean ``talk_mean_s``, clipped to ``[talk_min_s, talk_max_s]``.
    """

    mix: Mapping[Behaviour, float] = field(default_factory=lambda: dict(DEFAULT_MIX))
    ring_median_s: float = 7.0
    ring_sigma: float = 0.45
    ring_max_s: float = 45.0
    talk_mean_s: float = 40.0
    talk_sigma: float = 0.45
    talk_min_s: float = 8.0
    talk_max_s: float = 180.0
    #: share of answered humans who end the call themselves after their talk time
    hangs_up_first_p: float = 0.5
    #: network delay between INVITE and the first 180 or failure
    post_dial_delay_s: tuple[float, float] = (0.2, 1.2)
    #: a human who hears nothing this long after "Hello?" hangs up (an abandoned, silent call)
    silence_patience_s: tuple[float, float] = (5.0, 9.0)
    #: answer probability multiplier by the callee's local hour (0-23)
    hour_factor: Callable[[int], float] = flat_day
    #: zone for numbers whose zone phonenumbers does not know (e.g. +1 555 test numbers)
    default_zone: str = "UTC"
    overrides: Mapping[str, Override] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = [k for k in self.mix if not isinstance(k, Behaviour)]
        if unknown:
            names = ", ".join(b.value for b in Behaviour)
            raise ValueError(f"customer mix has unknown behaviours {unknown!r}; use {names}")
        if any(p < 0 or math.isnan(p) for p in self.mix.values()):
            raise ValueError(f"customer mix probabilities must be >= 0, got {dict(self.mix)}")
        total = sum(self.mix.values())
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"customer mix probabilities add up to {total:.4f}; make them add up to 1")
        for name in ("ring_median_s", "ring_max_s", "talk_mean_s", "talk_min_s", "talk_max_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {getattr(self, name)}")
        if self.talk_min_s > self.talk_max_s:
            raise ValueError(f"talk_min_s {self.talk_min_s} is above talk_max_s {self.talk_max_s}")
        if not 0 <= self.hangs_up_first_p <= 1:
            raise ValueError(f"hangs_up_first_p {self.hangs_up_first_p} must be a probability in [0, 1]")
        for name in ("post_dial_delay_s", "silence_patience_s"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise ValueError(f"{name} must be a (low, high) range with 0 <= low <= high, got {(lo, hi)}")
        try:
            ZoneInfo(self.default_zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"default_zone {self.default_zone!r} is not an IANA time zone (e.g. 'UTC')") from exc
        for number in self.overrides:
            if not E164_RE.match(number):
                raise ValueError(f"override number {number!r} is not E.164; write it as +<country><number>")
        # Accept behaviour names as plain strings ("busy"), which TOML and CLI flags produce.
        object.__setattr__(self, "overrides", {n: _override(n, v) for n, v in self.overrides.items()})


def _behaviour(number: str, value: object) -> Behaviour | Pin:
    if isinstance(value, Behaviour | Pin):
        return value
    if isinstance(value, str):
        try:
            return Behaviour(value)
        except ValueError:
            pass
    names = ", ".join(b.value for b in Behaviour)
    raise ValueError(f"override for {number}: {value!r} is not a behaviour; use one of {names} or a Pin")


def _override(number: str, value: object) -> Override:
    if isinstance(value, Behaviour | Pin | str):
        return _behaviour(number, value)
    if isinstance(value, Sequence) and value:
        return tuple(_behaviour(number, v) for v in value)
    raise ValueError(f"override for {number}: give a behaviour, a Pin, or a non-empty list of them per attempt")


@dataclass(frozen=True, slots=True)
class CustomerDecision:
    """What one dialled call will do. Seconds are relative to the INVITE's arrival."""

    number: str
    attempt: int
    behaviour: Behaviour
    post_dial_delay_s: float
    #: ringing before the answer (answers) or the decline (reject); unused otherwise
    ring_s: float
    #: conversation length after the answer (humans); how long a machine records (machines)
    talk_s: float
    hangs_up_first: bool
    silence_patience_s: float
    local_hour: int
    pinned: bool
    #: seeds the choice of voice clips, so audio is reproducible too
    clip_seed: int

    @property
    def sip_status(self) -> int | None:
        return self.behaviour.sip_status


def normalize_number(text: str) -> str | None:
    """``+4420...`` from a Request-URI user part (``+4420...``, ``004420...``, ``tel:``-ish
    visual separators); None when it is not an E.164 number."""
    digits = re.sub(r"[\s().-]", "", text)
    if digits.startswith("00"):
        digits = "+" + digits[2:]
    return digits if E164_RE.match(digits) else None


@functools.lru_cache(maxsize=4096)
def number_zone(number: str, default: str = "UTC") -> ZoneInfo:
    """The callee's time zone from the number (the first candidate), or ``default``."""
    try:
        parsed = phonenumbers.parse(number)
    except phonenumbers.NumberParseException:
        return ZoneInfo(default)
    for name in pn_timezone.time_zones_for_number(parsed):
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            continue  # "Etc/Unknown" and names the system tz database lacks
    return ZoneInfo(default)


class CustomerModel:
    """Seeded, pure decisions per ``(number, attempt)``; see the module docstring."""

    def __init__(self, config: CustomerModelConfig | None = None, *, seed: int = 0) -> None:
        self.config = config or CustomerModelConfig()
        self.seed = seed
        self._order = [b for b in Behaviour if self.config.mix.get(b, 0.0) > 0]

    def _rng(self, number: str, attempt: int) -> random.Random:
        # sha256, not hash(): str hashes change with PYTHONHASHSEED between processes.
        digest = hashlib.sha256(f"{self.seed}|{number}|{attempt}".encode()).digest()
        return random.Random(int.from_bytes(digest[:8], "big"))

    def local_hour(self, number: str, now: datetime) -> int:
        if now.tzinfo is None:
            raise ValueError(f"now={now!r} is naive; pass an aware datetime (e.g. datetime.now(UTC))")
        return now.astimezone(number_zone(number, self.config.default_zone)).hour

    def probabilities(self, local_hour: int) -> dict[Behaviour, float]:
        """The behaviour mix at the callee's ``local_hour``, after the time-of-day effect."""
        cfg = self.config
        mix = {b: cfg.mix.get(b, 0.0) for b in Behaviour}
        factor = cfg.hour_factor(local_hour)
        if factor < 0 or math.isnan(factor):
            raise ValueError(f"hour_factor({local_hour}) returned {factor}; it must be >= 0")
        answer = mix[Behaviour.ANSWER_HUMAN] + mix[Behaviour.ANSWER_MACHINE]
        if answer <= 0 or factor == 1.0:
            return mix
        # Scale the answers; "no answer" absorbs the difference and cannot go below zero.
        room = answer + mix[Behaviour.NO_ANSWER]
        scaled = min(answer * factor, room)
        k = scaled / answer
        mix[Behaviour.ANSWER_HUMAN] *= k
        mix[Behaviour.ANSWER_MACHINE] *= k
        mix[Behaviour.NO_ANSWER] = room - scaled
        return mix

    def decide(self, number: str, attempt: int, now: datetime) -> CustomerDecision:
        """The fate of the ``attempt``-th call (0-based) to ``number`` placed at ``now``."""
        if attempt < 0:
            raise ValueError(f"attempt {attempt} must be >= 0 (the first call to a number is attempt 0)")
        cfg = self.config
        hour = self.local_hour(number, now)
        rng = self._rng(number, attempt)
        # Draw every variable in a fixed order so a pin or an hour change alters only what it must.
        u = rng.random()
        post_dial = rng.uniform(*cfg.post_dial_delay_s)
        ring = min(cfg.ring_max_s, rng.lognormvariate(math.log(cfg.ring_median_s), cfg.ring_sigma))
        # A lognormal with mean m has mu = ln(m) - sigma^2 / 2.
        mu = math.log(cfg.talk_mean_s) - cfg.talk_sigma**2 / 2
        talk = min(cfg.talk_max_s, max(cfg.talk_min_s, rng.lognormvariate(mu, cfg.talk_sigma)))
        hangs_up = rng.random() < cfg.hangs_up_first_p
        patience = rng.uniform(*cfg.silence_patience_s)
        clip_seed = rng.getrandbits(32)
        behaviour = self._pick(u, self.probabilities(hour))
        pin = self._pin(number, attempt)
        if pin is not None:
            behaviour = pin.behaviour
            ring = pin.ring_s if pin.ring_s is not None else ring
            talk = pin.talk_s if pin.talk_s is not None else talk
            hangs_up = pin.hangs_up_first if pin.hangs_up_first is not None else hangs_up
            patience = pin.silence_patience_s if pin.silence_patience_s is not None else patience
        return CustomerDecision(
            number=number,
            attempt=attempt,
            behaviour=behaviour,
            post_dial_delay_s=post_dial,
            ring_s=ring,
            talk_s=talk,
            hangs_up_first=hangs_up,
            silence_patience_s=patience,
            local_hour=hour,
            pinned=pin is not None,
            clip_seed=clip_seed,
        )

    def _pick(self, u: float, mix: Mapping[Behaviour, float]) -> Behaviour:
        acc = 0.0
        for b in self._order:
            acc += mix[b]
            if u < acc:
                return b
        return self._order[-1]  # u within rounding of 1.0

    def _pin(self, number: str, attempt: int) -> Pin | None:
        spec = self.config.overrides.get(number)
        if spec is None:
            return None
        if isinstance(spec, Pin | str):
            item: Pin | str = spec
        elif spec:  # a sequence scripts successive attempts; the last entry repeats
            item = spec[min(attempt, len(spec) - 1)]
        else:
            return None
        return item if isinstance(item, Pin) else Pin(Behaviour(item))
