"""Settings of the ACD core: queues, agents and the few global knobs, validated on construction.

These are plain frozen dataclasses so the pure core has no dependency on how configuration is
loaded; the service builds them from the TOML settings. Every duration is in seconds. A bad value
raises :class:`AcdConfigError` naming the setting and showing a valid example.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Literal, TypeVar

from acd._errors import AcdConfigError

__all__ = [
    "MAX_SKILL_LEVEL",
    "AcdConfig",
    "AgentConfig",
    "ConnectionMode",
    "Destination",
    "EscalationStep",
    "JoinRule",
    "LeaveRule",
    "MaxPauseAction",
    "QueueConfig",
    "Strategy",
]

MAX_SKILL_LEVEL = 10
_E = TypeVar("_E", bound=StrEnum)


class Strategy(StrEnum):
    """How a queue picks among several ready agents for one call."""

    LONGEST_IDLE = "longest-idle"
    FEWEST_CALLS = "fewest-calls"
    LEAST_TALK_TIME = "least-talk-time"
    ROUND_ROBIN = "round-robin"
    TOP_DOWN = "top-down"
    RING_ALL = "ring-all"
    RANDOM = "random"
    SKILL_WEIGHTED = "skill-weighted"


class ConnectionMode(StrEnum):
    """``ring``: each call rings the softphone. ``nailed``: the agent's leg stays up; callers are bridged in."""

    RING = "ring"
    NAILED = "nailed"


class JoinRule(StrEnum):
    """Whether a caller may join a queue that has nobody to answer.

    ``join``: always. ``reject-no-agents``: refuse when no member is logged in.
    ``reject-unavailable``: refuse when no member is logged in, or all logged-in members are paused.
    """

    JOIN = "join"
    REJECT_NO_AGENTS = "reject-no-agents"
    REJECT_UNAVAILABLE = "reject-unavailable"


class LeaveRule(StrEnum):
    """Whether waiting callers are sent away when the queue loses its agents.

    ``stay``: never. ``leave-no-agents``: when the last member logs out.
    ``leave-unavailable``: when no member is logged in and unpaused any more.
    """

    STAY = "stay"
    LEAVE_NO_AGENTS = "leave-no-agents"
    LEAVE_UNAVAILABLE = "leave-unavailable"


class MaxPauseAction(StrEnum):
    READY = "ready"
    LOGOUT = "logout"


@dataclass(frozen=True, slots=True)
class Destination:
    """Where a caller goes when a limit or rule sends them out of a queue.

    ``kind`` is ``voicemail``, ``callback`` (a virtual caller keeps the place in line) or
    ``queue`` (then ``queue`` names the target queue).
    """

    kind: Literal["voicemail", "callback", "queue"]
    queue: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("voicemail", "callback", "queue"):
            raise AcdConfigError(
                f"destination kind {self.kind!r} is unknown; use 'voicemail', 'callback' or 'queue' "
                "(e.g. Destination('queue', 'overflow'))"
            )
        if (self.kind == "queue") != (self.queue is not None):
            raise AcdConfigError(
                "a 'queue' destination needs the target queue and the others take none, "
                "e.g. Destination('queue', 'overflow') or Destination('voicemail')"
            )

    def __str__(self) -> str:
        return f"queue:{self.queue}" if self.kind == "queue" else self.kind


VOICEMAIL = Destination("voicemail")


@dataclass(frozen=True, slots=True)
class EscalationStep:
    """From ``after_s`` seconds of waiting on, the call accepts agents with skill level >= ``min_level``."""

    after_s: float
    min_level: int

    @staticmethod
    def steps(*pairs: tuple[float, int]) -> tuple[EscalationStep, ...]:
        """``EscalationStep.steps((0, 7), (30, 4), (60, 1))``: 0-30 s needs level >= 7, 30-60 s >= 4,
        then anyone with the skill."""
        return tuple(EscalationStep(after, level) for after, level in pairs)

    def __post_init__(self) -> None:
        if self.after_s < 0:
            raise AcdConfigError(f"escalation step after_s={self.after_s} must be >= 0 seconds")
        if not 1 <= self.min_level <= MAX_SKILL_LEVEL:
            raise AcdConfigError(f"escalation min_level={self.min_level} must be between 1 and {MAX_SKILL_LEVEL}")


def _positive(name: str, value: float | None, *, allow_zero: bool = False, optional: bool = False) -> None:
    if value is None:
        if optional:
            return
        raise AcdConfigError(f"{name} is required")
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise AcdConfigError(f"{name}={value!r} must be {bound} seconds")


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueConfig:
    """One queue. ``skill`` is the skill whose level escalation steps and skill-weighted routing read;
    ``None`` means any member qualifies (then ``escalation`` must stay at its default).

    ``weight`` is the queue priority in the cross-queue decision: an agent in several queues takes
    the caller with the highest ``(now - arrived + credit) * weight``. Credit is
    ``vip_credit_s`` for VIP callers plus ``priority * priority_credit_s``.
    """

    id: str
    skill: str | None = None
    strategy: Strategy = Strategy.LONGEST_IDLE
    escalation: tuple[EscalationStep, ...] = (EscalationStep(0.0, 1),)
    weight: float = 1.0
    vip_credit_s: float = 60.0
    priority_credit_s: float = 30.0
    ring_timeout_s: float = 15.0
    nailed_confirm_s: float = 5.0
    retry_s: float = 5.0
    wrapup_s: float = 10.0
    sticky_wait_s: float = 20.0
    max_wait_s: float | None = None
    max_wait_destination: Destination = VOICEMAIL
    max_len: int | None = None
    full_destination: Destination = VOICEMAIL
    join_rule: JoinRule = JoinRule.JOIN
    leave_rule: LeaveRule = LeaveRule.STAY
    empty_destination: Destination = VOICEMAIL
    announce_first_s: float | None = None
    announce_every_s: float | None = None
    exit_keys: Mapping[str, Destination] = field(default_factory=dict)
    agent_order: tuple[str, ...] = ()
    service_level_s: float = 20.0
    service_level_target: float = 0.8
    callback_sla_s: float = 12 * 3600.0
    callback_risk_fraction: float = 0.8
    default_aht_s: float = 180.0
    aht_window: int = 50

    def __post_init__(self) -> None:
        if not self.id:
            raise AcdConfigError("queue id must be a non-empty string, e.g. 'sales'")
        object.__setattr__(self, "strategy", _enum(Strategy, self.strategy, f"queue {self.id!r} strategy"))
        object.__setattr__(self, "join_rule", _enum(JoinRule, self.join_rule, f"queue {self.id!r} join_rule"))
        object.__setattr__(self, "leave_rule", _enum(LeaveRule, self.leave_rule, f"queue {self.id!r} leave_rule"))
        steps = tuple(s if isinstance(s, EscalationStep) else EscalationStep(*s) for s in self.escalation)
        object.__setattr__(self, "escalation", steps)
        where = f"queue {self.id!r}"
        if not steps or steps[0].after_s != 0:
            raise AcdConfigError(f"{where}: escalation must start at 0 s, e.g. ((0, 7), (30, 4), (60, 1))")
        for a, b in itertools.pairwise(steps):
            if b.after_s <= a.after_s or b.min_level > a.min_level:
                raise AcdConfigError(
                    f"{where}: escalation steps must have increasing times and non-increasing levels "
                    f"(a waiting call only widens), got {a} then {b}"
                )
        if self.skill is None and steps != (EscalationStep(0.0, 1),):
            raise AcdConfigError(f"{where}: escalation needs a skill; set skill='...' or drop the escalation")
        if self.weight <= 0:
            raise AcdConfigError(f"{where}: weight={self.weight} must be > 0 (1.0 is neutral)")
        for name in ("ring_timeout_s", "nailed_confirm_s", "retry_s"):
            _positive(f"{where} {name}", getattr(self, name))
        for name in ("vip_credit_s", "priority_credit_s", "wrapup_s", "sticky_wait_s"):
            _positive(f"{where} {name}", getattr(self, name), allow_zero=True)
        for name in ("max_wait_s", "announce_every_s"):
            _positive(f"{where} {name}", getattr(self, name), optional=True)
        _positive(f"{where} announce_first_s", self.announce_first_s, allow_zero=True, optional=True)
        if self.max_len is not None and self.max_len < 1:
            raise AcdConfigError(f"{where}: max_len={self.max_len} must be >= 1, or None for no limit")
        for key, dest in self.exit_keys.items():
            if key not in "0123456789*#" or len(key) != 1:
                raise AcdConfigError(f"{where}: exit key {key!r} must be one DTMF digit 0-9, * or #")
            if not isinstance(dest, Destination):
                raise AcdConfigError(f"{where}: exit key {key!r} needs a Destination, e.g. Destination('callback')")
        object.__setattr__(self, "exit_keys", MappingProxyType(dict(self.exit_keys)))
        if len(set(self.agent_order)) != len(self.agent_order):
            raise AcdConfigError(f"{where}: agent_order lists an agent twice")
        _positive(f"{where} service_level_s", self.service_level_s, allow_zero=True)
        if not 0 < self.service_level_target <= 1:
            raise AcdConfigError(f"{where}: service_level_target must be a fraction, e.g. 0.8 for 80/20")
        _positive(f"{where} callback_sla_s", self.callback_sla_s)
        if not 0 < self.callback_risk_fraction <= 1:
            raise AcdConfigError(f"{where}: callback_risk_fraction must be in (0, 1], e.g. 0.8")
        _positive(f"{where} default_aht_s", self.default_aht_s)
        if self.aht_window < 1:
            raise AcdConfigError(f"{where}: aht_window must be >= 1 call")
        for dest in (self.max_wait_destination, self.full_destination, self.empty_destination):
            if dest.kind == "queue" and dest.queue == self.id:
                raise AcdConfigError(f"{where}: a destination cannot be the queue itself")

    def step_at(self, waited_s: float) -> int:
        """Index of the escalation step in force after ``waited_s`` seconds of waiting."""
        i = 0
        for j, step in enumerate(self.escalation):
            if step.after_s <= waited_s:
                i = j
        return i


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentConfig:
    """One agent: skills with levels 1-10 and queue memberships (queue id -> penalty, 0 is best).

    Among ready agents a lower penalty always wins (Asterisk's tiers); the strategy orders agents
    within a tier. ``max_pause_s`` optionally ends a pause (``max_pause_action``).
    """

    id: str
    mode: ConnectionMode = ConnectionMode.RING
    skills: Mapping[str, int] = field(default_factory=dict)
    queues: Mapping[str, int] = field(default_factory=dict)
    max_pause_s: float | None = None
    max_pause_action: MaxPauseAction = MaxPauseAction.LOGOUT

    def __post_init__(self) -> None:
        if not self.id:
            raise AcdConfigError("agent id must be a non-empty string, e.g. 'alice'")
        object.__setattr__(self, "mode", _enum(ConnectionMode, self.mode, f"agent {self.id!r} mode"))
        object.__setattr__(
            self,
            "max_pause_action",
            _enum(MaxPauseAction, self.max_pause_action, f"agent {self.id!r} max_pause_action"),
        )
        for skill, level in self.skills.items():
            if not isinstance(level, int) or not 1 <= level <= MAX_SKILL_LEVEL:
                raise AcdConfigError(
                    f"agent {self.id!r} skill {skill!r} level {level!r} must be an integer 1-{MAX_SKILL_LEVEL}"
                )
        for queue, penalty in self.queues.items():
            if not isinstance(penalty, int) or penalty < 0:
                raise AcdConfigError(
                    f"agent {self.id!r} penalty {penalty!r} in queue {queue!r} must be an integer >= 0"
                )
        object.__setattr__(self, "skills", MappingProxyType(dict(self.skills)))
        object.__setattr__(self, "queues", MappingProxyType(dict(self.queues)))
        _positive(f"agent {self.id!r} max_pause_s", self.max_pause_s, optional=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class AcdConfig:
    """Global knobs. ``max_no_answer``: consecutive unanswered offers before the agent is paused
    with reason ``no-answer`` (0 turns auto-pause off)."""

    max_no_answer: int = 3
    auto_pause_reason: str = "no-answer"
    max_queue_hops: int = 5

    def __post_init__(self) -> None:
        if self.max_no_answer < 0:
            raise AcdConfigError(f"max_no_answer={self.max_no_answer} must be >= 0 (0 disables auto-pause)")
        if self.max_queue_hops < 1:
            raise AcdConfigError("max_queue_hops must be >= 1")


def _enum(cls: type[_E], value: object, what: str) -> _E:
    try:
        return cls(str(value))
    except ValueError:
        choices = ", ".join(repr(m.value) for m in cls)
        raise AcdConfigError(f"{what} {value!r} is unknown; use one of {choices}") from None
