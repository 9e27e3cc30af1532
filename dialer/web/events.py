"""Events the web console consumes or emits that the ACD core does not define.

``CampaignStats`` is the campaign runner's periodic figure set (retained on MQTT, like an
agent's state); the wallboard shows the last one of each campaign. The others are facts
raised by console actions (a supervisor listening in, an agent's disposition, a callback,
a campaign paused), so the wallboard and the MQTT mirror see them like any other event.
All are small frozen dataclasses for :class:`infra.bus.EventBus`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Literal

__all__ = [
    "CallbackScheduled",
    "CampaignStats",
    "CampaignStatusChanged",
    "DispositionSet",
    "SuperviseMode",
    "SupervisionEnded",
    "SupervisionStarted",
]

SuperviseMode = Literal["listen", "whisper", "barge"]


def _rate(name: str, value: float | None) -> None:
    if value is not None and not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"CampaignStats.{name}={value!r} must be a fraction between 0 and 1, or None")


@dataclass(frozen=True, slots=True, kw_only=True)
class CampaignStats:
    """A campaign's live figures, published by the campaign runner every few seconds.

    ``dial_level`` is lines dialled per available agent (the pacing model's current ratio);
    abandon rates are abandoned / human-answered calls, None while nothing was answered;
    ``effective_today`` counts effective calls since local midnight against ``target_today``.
    """

    __topic__: ClassVar[str] = "campaigns/{campaign_id}/stats"
    __retain__: ClassVar[bool] = True

    campaign_id: int
    name: str
    status: str
    mode: str
    dial_level: float
    lines_in_use: int
    max_lines: int
    agents_available: int
    abandon_rate_24h: float | None
    abandon_rate_30d: float | None
    effective_today: int
    target_today: int
    at: float

    def __post_init__(self) -> None:
        if self.lines_in_use < 0 or self.max_lines < 0 or self.agents_available < 0:
            raise ValueError("CampaignStats: lines_in_use, max_lines and agents_available must be >= 0")
        if not math.isfinite(self.dial_level) or self.dial_level < 0:
            raise ValueError(f"CampaignStats.dial_level={self.dial_level!r} must be a finite number >= 0")
        _rate("abandon_rate_24h", self.abandon_rate_24h)
        _rate("abandon_rate_30d", self.abandon_rate_30d)


@dataclass(frozen=True, slots=True, kw_only=True)
class CampaignStatusChanged:
    """A campaign was paused, resumed or archived (``by``: the console user, or "system")."""

    __topic__: ClassVar[str] = "campaigns/{campaign_id}/status"
    __retain__: ClassVar[bool] = True

    campaign_id: int
    name: str
    status: str
    by: str
    at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class SupervisionStarted:
    """A supervisor's softphone joined an agent's call in ``mode`` (or switched mode)."""

    __topic__: ClassVar[str] = "agents/{agent_id}/supervision"

    agent_id: str
    supervisor: str
    mode: SuperviseMode
    call_id: str | None
    at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class SupervisionEnded:
    """The supervisor left the agent's call."""

    __topic__: ClassVar[str] = "agents/{agent_id}/supervision"

    agent_id: str
    supervisor: str
    at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class DispositionSet:
    """An agent gave a call its disposition code (one of the campaign's codes)."""

    call_id: str
    agent_id: str
    code: str
    campaign_id: int | None
    at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class CallbackScheduled:
    """A lead is to be called back at ``due_at`` (UTC; the customer's zone is ``timezone``)."""

    lead_id: int
    due_at: datetime
    timezone: str
    owner: str | None
    at: float
