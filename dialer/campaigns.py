"""Campaigns: the validated settings model and the service that creates, lists and moves
campaigns between ``paused``, ``active`` and ``archived``.

Settings are stored as validated JSON on the campaign row. They come from defaults, then a
``[campaigns.<name>]`` table of the app config or a campaign TOML file, then CLI flags;
every key is documented in ``config/campaign.example.toml``. Times of day are the callee's
local wall clock ("09:00-21:00"); the pure window/retry code (dialer.windows,
dialer.retry) gets them through :meth:`CampaignSettings.calling_window` and
:meth:`CampaignSettings.retry_policy`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal

import phonenumbers
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from dialer.leads import visible_lead_counts
from dialer.models import Campaign, CampaignStatus, Disposition
from infra.db import utcnow
from infra.settings import ConfigError, format_validation_error, read_toml

__all__ = [
    "AmdThresholds",
    "CampaignError",
    "CampaignSettings",
    "DispositionCode",
    "OutcomeRetry",
    "PacingSettings",
    "RecordingSettings",
    "RetrySettings",
    "WindowSettings",
    "campaign_settings",
    "create_campaign",
    "get_campaign",
    "lead_counts",
    "list_campaigns",
    "load_campaign_file",
    "parse_time_range",
    "set_campaign_status",
    "settings_from_config",
    "update_campaign_settings",
]

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_RANGE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


class CampaignError(Exception):
    """A campaign operation that cannot be done, phrased for the user with the fix."""


def parse_time_range(text: str) -> tuple[time, time | None]:
    """'09:00-21:00' -> (09:00, 21:00); an end of 24:00 is returned as None (midnight)."""
    m = _RANGE.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a time range; write HH:MM-HH:MM such as 09:00-21:00")
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    if h1 > 23 or m1 > 59 or h2 > 24 or m2 > 59 or (h2 == 24 and m2 != 0):
        raise ValueError(f"{text!r}: hours are 00-23 (24:00 for midnight), minutes 00-59")
    start = time(h1, m1)
    end = None if h2 == 24 else time(h2, m2)
    if end is not None and end <= start:
        raise ValueError(f"{text!r}: the end must be after the start (ranges cannot cross midnight)")
    return start, end


def _check_range(value: str) -> str:
    parse_time_range(value)
    return value.strip().replace(" ", "")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class WindowSettings(_Model):
    """When calls may be placed, in the callee's local time."""

    default: str = "09:00-21:00"
    # mon..sun -> "HH:MM-HH:MM" or "closed".
    weekdays: dict[str, str] = Field(default_factory=dict)
    quiet_hours: list[str] = Field(default_factory=lambda: ["12:00-14:00"])
    holidays: bool = True

    @field_validator("default")
    @classmethod
    def _default(cls, value: str) -> str:
        return _check_range(value)

    @field_validator("quiet_hours")
    @classmethod
    def _quiet(cls, value: list[str]) -> list[str]:
        return [_check_range(v) for v in value]

    @field_validator("weekdays")
    @classmethod
    def _weekdays(cls, value: dict[str, str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for day, rng in value.items():
            key = day.strip().lower()[:3]
            if key not in WEEKDAYS:
                raise ValueError(f"{day!r} is not a weekday; use {', '.join(WEEKDAYS)}")
            out[key] = "closed" if rng.strip().lower() == "closed" else _check_range(rng)
        return out


class OutcomeRetry(_Model):
    """What one call outcome means for the next attempt of the lead."""

    min_delay_minutes: int = Field(ge=0, le=60 * 24 * 30)
    rotate_daypart: bool = True
    final: bool = False
    number_dead: bool = False


def _default_outcomes() -> dict[str, OutcomeRetry]:
    # Every unreached outcome moves the next attempt into a day-part the lead has not tried
    # (no answer, busy, machine, abandoned, failed: issue 5). The minimum delay still applies
    # on top: the next attempt is at the later of "now + min delay" and the first callable
    # instant of the soonest untried day-part. So busy keeps its minutes-long delay, which
    # decides when the untried day-part starts sooner (busy at 16:55 -> 17:05, not 17:00),
    # and no answer's 60 min is in practice "the next day-part".
    return {
        "busy": OutcomeRetry(min_delay_minutes=10),
        "no_answer": OutcomeRetry(min_delay_minutes=60),
        "machine": OutcomeRetry(min_delay_minutes=120),
        # Regulators: an abandoned number is not called again for 72 h.
        "abandoned": OutcomeRetry(min_delay_minutes=72 * 60),
        "failed": OutcomeRetry(min_delay_minutes=30),
        "rejected": OutcomeRetry(min_delay_minutes=60),
        "unavailable": OutcomeRetry(min_delay_minutes=30),
        "not_found": OutcomeRetry(min_delay_minutes=1, rotate_daypart=False, number_dead=True),
    }


OUTCOMES = ("busy", "no_answer", "machine", "abandoned", "failed", "rejected", "unavailable", "not_found")


class RetrySettings(_Model):
    max_attempts: int = Field(default=9, ge=1, le=100)
    max_attempts_per_number: int = Field(default=6, ge=1, le=100)
    # A lead not reached this many hours after import is given up (0: no deadline).
    reach_deadline_hours: int = Field(default=72, ge=0, le=24 * 365)
    outcomes: dict[str, OutcomeRetry] = Field(default_factory=_default_outcomes)

    @field_validator("outcomes", mode="before")
    @classmethod
    def _known_outcomes(cls, value: Any) -> Any:
        if not isinstance(value, Mapping):
            return value
        unknown = sorted(set(value) - set(OUTCOMES))
        if unknown:
            raise ValueError(f"unknown outcome {unknown[0]!r}; outcomes are {', '.join(OUTCOMES)}")
        # Outcomes and keys not mentioned keep their defaults, so a file may tune one number.
        merged: dict[str, Any] = {k: v.model_dump() for k, v in _default_outcomes().items()}
        for name, rule in value.items():
            raw = rule.model_dump() if isinstance(rule, OutcomeRetry) else rule
            merged[name] = {**merged[name], **raw} if isinstance(raw, Mapping) else raw
        return merged


PacingMode = Literal["preview", "progressive", "power", "predictive", "vicidial_adapt"]


class PacingSettings(_Model):
    mode: PacingMode = "predictive"
    target_abandon_rate: float = Field(default=0.03, gt=0.0, le=0.03)
    max_lines: int = Field(default=30, ge=1, le=10000)
    # Power mode: lines per available agent.
    lines_per_agent: float = Field(default=1.5, ge=1.0, le=10.0)
    calls_per_second: float = Field(default=5.0, gt=0.0, le=1000.0)
    # Regulators and carriers expect an unanswered call to ring at least 15 s.
    ring_timeout_seconds: int = Field(default=25, ge=15, le=120)


class AmdThresholds(_Model):
    """Answering-machine detection thresholds of one campaign (:class:`dialer.amd.AmdConfig`), in ms.

    The defaults are tuned never to call a short "Hello?" a machine: dropping a person is the
    costly error. Raise ``greeting_max_ms`` if people are taken for machines; lower it to catch
    machines with short greetings.
    """

    initial_silence_ms: int = Field(default=3500, ge=500, le=10_000)
    greeting_max_ms: int = Field(default=2300, ge=500, le=10_000)
    after_greeting_silence_ms: int = Field(default=800, ge=100, le=5_000)
    total_analysis_ms: int = Field(default=5000, ge=1_000, le=15_000)
    between_words_silence_ms: int = Field(default=120, ge=20, le=2_000)
    min_word_ms: int = Field(default=100, ge=20, le=2_000)
    max_words: int = Field(default=5, ge=1, le=50)
    vad_mode: int = Field(default=2, ge=0, le=3)
    speech_over_noise_db: float = Field(default=9.0, ge=0.0, le=40.0)
    min_speech_dbfs: float = Field(default=-50.0, ge=-90.0, le=-10.0)
    beep_min_ms: int = Field(default=160, ge=40, le=2_000)
    # on_machine = "message" and no beep: this much silence after the greeting starts the message
    greeting_end_silence_ms: int = Field(default=1500, ge=200, le=10_000)

    @model_validator(mode="after")
    def _consistent(self) -> AmdThresholds:
        if self.after_greeting_silence_ms <= self.between_words_silence_ms:
            raise ValueError(
                "after_greeting_silence_ms must be longer than between_words_silence_ms "
                f"({self.after_greeting_silence_ms} <= {self.between_words_silence_ms})"
            )
        if self.total_analysis_ms < self.greeting_max_ms:
            raise ValueError(
                f"total_analysis_ms ({self.total_analysis_ms}) must be at least greeting_max_ms "
                f"({self.greeting_max_ms}), or long greetings are never classified"
            )
        return self

    def config(self) -> Any:
        """The :class:`dialer.amd.AmdConfig` of these thresholds."""
        from dialer.amd import AmdConfig

        return AmdConfig(**self.model_dump())


class RecordingSettings(_Model):
    policy: Literal["all", "none", "on_demand", "sample"] = "all"
    sample_percent: float = Field(default=10.0, ge=0.0, le=100.0)


class DispositionCode(_Model):
    code: str = Field(pattern=r"^[A-Za-z0-9_]{1,32}$")
    label: str = Field(min_length=1, max_length=200)
    contact: bool = False
    effective: bool = False
    success: bool = False
    callback: bool = False
    dnc: bool = False
    final: bool = False

    @model_validator(mode="before")
    @classmethod
    def _implied(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            data = dict(data)
            if isinstance(data.get("code"), str):
                data["code"] = data["code"].upper()
            # A success or an effective call is a contact; a DNC request ends the lead.
            if data.get("success") or data.get("effective"):
                data.setdefault("contact", True)
            if data.get("dnc"):
                data["final"] = True
        return data

    @model_validator(mode="after")
    def _consistent(self) -> DispositionCode:
        if self.callback and self.final:
            raise ValueError(f"disposition {self.code}: callback and final exclude each other")
        return self


def _default_dispositions() -> list[DispositionCode]:
    return [
        DispositionCode(code="SALE", label="Sale", contact=True, effective=True, success=True, final=True),
        DispositionCode(code="INTERESTED", label="Interested, follow up", contact=True, effective=True, callback=True),
        DispositionCode(code="CALLBACK", label="Call back later", contact=True, callback=True),
        DispositionCode(code="NOT_INTERESTED", label="Not interested", contact=True, effective=True, final=True),
        DispositionCode(code="WRONG_NUMBER", label="Wrong number", final=True),
        DispositionCode(code="DNC", label="Do not call", contact=True, dnc=True, final=True),
    ]


class CampaignSettings(_Model):
    """Everything a campaign can be told; every field is documented in config/campaign.example.toml."""

    description: str = ""
    # ISO 3166 region for numbers written without +country code (e.g. CN, US).
    region: str | None = None
    # Zone used when neither the file nor the number gives one (IANA, e.g. Asia/Shanghai).
    timezone: str | None = None
    window: WindowSettings = Field(default_factory=WindowSettings)
    dayparts: dict[str, str] = Field(
        default_factory=lambda: {"morning": "09:00-12:00", "afternoon": "12:00-17:00", "evening": "17:00-21:00"}
    )
    retry: RetrySettings = Field(default_factory=RetrySettings)
    pacing: PacingSettings = Field(default_factory=PacingSettings)
    caller_id: str | None = None
    trunk: str = "default"
    # Who called and the number to call back: the abandon message (and the machine message) says both.
    company_name: str | None = Field(default=None, min_length=1, max_length=80)
    callback_number: str | None = None
    amd: bool = False
    amd_thresholds: AmdThresholds = Field(default_factory=AmdThresholds)
    # On a machine: "hangup" at once, or "message": wait for the beep (or the end of the
    # greeting), leave the machine message, hang up. The outcome is "machine" either way.
    on_machine: Literal["hangup", "message"] = "hangup"
    # A recorded machine message in the prompt library; without one the message is composed
    # from company_name and callback_number.
    machine_prompt: str = Field(default="machine_message", pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    effective_call_seconds: int = Field(default=15, ge=0, le=3600)
    daily_target: int = Field(default=100, ge=0)
    queue: str | None = None
    dispositions: list[DispositionCode] = Field(default_factory=_default_dispositions)
    recording: RecordingSettings = Field(default_factory=RecordingSettings)
    # The post-call satisfaction survey (press 1/2/3) after the agent hangs up: true or false
    # overrides the campaign queue's [acd.queues.<id>.survey] enabled flag; unset leaves it to the queue.
    survey: bool | None = None
    abandon_prompt: str = Field(default="abandon", pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")

    @field_validator("company_name")
    @classmethod
    def _company(cls, value: str | None) -> str | None:
        if value is None:
            return None
        cleaned = " ".join(value.split())
        if not cleaned or any(ord(c) < 32 for c in value if c not in "\t\n"):
            raise ValueError("give the company name as customers know it, e.g. 'Acme Insurance'")
        return cleaned

    @field_validator("region")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        if value is None:
            return None
        upper = value.strip().upper()
        if upper not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"{value!r} is not an ISO 3166 region phonenumbers knows; use e.g. CN, US, GB")
        return upper

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("must be an IANA time zone such as Asia/Shanghai") from None
        return value

    @field_validator("dayparts")
    @classmethod
    def _dayparts(cls, value: dict[str, str]) -> dict[str, str]:
        if not value:
            raise ValueError("give at least one day-part, e.g. {all = '09:00-21:00'}")
        return {name.strip(): _check_range(rng) for name, rng in value.items()}

    @field_validator("caller_id", "callback_number")
    @classmethod
    def _e164(cls, value: str | None) -> str | None:
        # Unset is allowed while a campaign is being set up; the runner refuses to dial without a
        # caller ID (dialer.runner.check_dialable), naming this setting.
        if value is None:
            return None
        cleaned = re.sub(r"[\s().-]", "", value)
        problem = f"{value!r} is not an E.164 number; write + and the country code, e.g. +861012345678"
        if not re.fullmatch(r"\+\d{4,15}", cleaned):
            raise ValueError(problem)
        try:
            possible = phonenumbers.is_possible_number(phonenumbers.parse(cleaned, None))
        except phonenumbers.NumberParseException:
            possible = False
        if not possible:
            raise ValueError(problem)
        return cleaned

    @field_validator("dispositions")
    @classmethod
    def _unique_codes(cls, value: list[DispositionCode]) -> list[DispositionCode]:
        seen: set[str] = set()
        for d in value:
            if d.code in seen:
                raise ValueError(f"disposition code {d.code} is listed twice; codes must be unique")
            seen.add(d.code)
        return value

    # -- mapping to the pure core ------------------------------------------------------

    def calling_window(self) -> Any:
        """A :class:`dialer.windows.CallingWindow` for these settings."""
        from dialer.windows import CallingWindow, TimeRange

        weekdays: dict[int, Any] = {}
        for day, rng in self.window.weekdays.items():
            weekdays[WEEKDAYS.index(day)] = None if rng == "closed" else TimeRange.parse(rng)
        return CallingWindow(
            default=TimeRange.parse(self.window.default),
            weekdays=weekdays,
            quiet_hours=tuple(TimeRange.parse(q) for q in self.window.quiet_hours),
            observe_holidays=self.window.holidays,
        )

    def retry_policy(self) -> Any:
        """A :class:`dialer.retry.RetryPolicy` for these settings."""
        from dialer.retry import DayPart, OutcomeRule, RetryPolicy

        rules = {
            name: OutcomeRule(
                timedelta(minutes=rule.min_delay_minutes),
                rotate_daypart=rule.rotate_daypart,
                final=rule.final,
                number_dead=rule.number_dead,
            )
            for name, rule in self.retry.outcomes.items()
        }
        rules["completed"] = OutcomeRule(timedelta(0), final=True)
        hours = self.retry.reach_deadline_hours
        return RetryPolicy(
            dayparts=tuple(DayPart.parse(name, rng) for name, rng in self.dayparts.items()),
            rules=rules,
            max_attempts=self.retry.max_attempts,
            max_attempts_per_number=self.retry.max_attempts_per_number,
            reach_deadline=timedelta(hours=hours) if hours else None,
        )


def validate_campaign_settings(data: Mapping[str, Any], source: str, name: str) -> CampaignSettings:
    """Validate a raw settings table; errors become a one-line :class:`ConfigError`."""
    try:
        return CampaignSettings.model_validate(dict(data))
    except ValidationError as exc:
        raise format_validation_error(
            exc, source, prefix=("campaigns", name), model=CampaignSettings, env_prefix=None
        ) from None


def settings_from_config(campaign_tables: Mapping[str, Mapping[str, Any]], source: str) -> dict[str, CampaignSettings]:
    """Validate every ``[campaigns.<name>]`` table of the app config."""
    return {name: validate_campaign_settings(table, source, name) for name, table in campaign_tables.items()}


def load_campaign_file(path: Path, name: str | None = None) -> dict[str, Any]:
    """The raw settings table in a campaign TOML file.

    The file is either one ``[campaigns.<name>]`` table (or several: then ``name`` picks
    one), or plain top-level campaign keys.
    """
    data = read_toml(path)
    tables = data.get("campaigns")
    if isinstance(tables, dict) and tables:
        if name is not None and name in tables:
            table = tables[name]
        elif len(tables) == 1:
            table = next(iter(tables.values()))
        else:
            raise ConfigError(
                f"{path}: has campaigns {', '.join(sorted(tables))} but not {name!r}; "
                "name one of them or keep one [campaigns.<name>] table per file"
            )
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: [campaigns.{name}] must be a table")
        return dict(table)
    return data


def merge_settings(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge two raw settings tables; override wins, tables merge key by key."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge_settings(out[key], value)
        else:
            out[key] = value
    return out


def campaign_settings(campaign: Campaign) -> CampaignSettings:
    return CampaignSettings.model_validate(campaign.settings or {})


# -- service -------------------------------------------------------------------------------

_NAME = re.compile(r"^[^\s/\x00-\x1f][^/\x00-\x1f]{0,99}$")

# Allowed status moves: (from, to). Archived is final: its data stays for reports.
TRANSITIONS: frozenset[tuple[str, str]] = frozenset(
    {
        (CampaignStatus.PAUSED, CampaignStatus.ACTIVE),
        (CampaignStatus.ACTIVE, CampaignStatus.PAUSED),
        (CampaignStatus.PAUSED, CampaignStatus.ARCHIVED),
        (CampaignStatus.ACTIVE, CampaignStatus.ARCHIVED),
    }
)


async def get_campaign(session: AsyncSession, name: str) -> Campaign:
    campaign = (await session.execute(select(Campaign).where(Campaign.name == name))).scalar_one_or_none()
    if campaign is None:
        raise CampaignError(f"no campaign named {name!r}; see `dialer campaign list` or create it first")
    return campaign


async def list_campaigns(session: AsyncSession, *, include_archived: bool = False) -> list[Campaign]:
    stmt = select(Campaign).order_by(Campaign.name)
    if not include_archived:
        stmt = stmt.where(Campaign.status != CampaignStatus.ARCHIVED)
    return list((await session.execute(stmt)).scalars())


async def _sync_dispositions(session: AsyncSession, campaign: Campaign, settings: CampaignSettings) -> None:
    await session.execute(delete(Disposition).where(Disposition.campaign_id == campaign.id))
    for d in settings.dispositions:
        session.add(Disposition(campaign_id=campaign.id, **d.model_dump()))
    await session.flush()


async def create_campaign(
    session: AsyncSession,
    name: str,
    settings: CampaignSettings | None = None,
    *,
    status: CampaignStatus = CampaignStatus.PAUSED,
    now: datetime | None = None,
) -> Campaign:
    """Create a campaign (paused unless told otherwise); the caller commits."""
    if not _NAME.match(name):
        raise CampaignError(f"campaign name {name!r}: use 1-100 characters, no '/' and no leading space")
    existing = (await session.execute(select(Campaign.id).where(Campaign.name == name))).scalar_one_or_none()
    if existing is not None:
        raise CampaignError(f"campaign {name!r} already exists; pick another name or see `dialer campaign show {name}`")
    settings = settings or CampaignSettings()
    stamp = now or utcnow()
    campaign = Campaign(
        name=name, status=status, settings=settings.model_dump(mode="json"), created_at=stamp, updated_at=stamp
    )
    session.add(campaign)
    await session.flush()
    await _sync_dispositions(session, campaign, settings)
    return campaign


async def update_campaign_settings(
    session: AsyncSession, name: str, settings: CampaignSettings, *, now: datetime | None = None
) -> Campaign:
    campaign = await get_campaign(session, name)
    if campaign.status == CampaignStatus.ARCHIVED:
        raise CampaignError(f"campaign {name!r} is archived; archived campaigns are read-only")
    campaign.settings = settings.model_dump(mode="json")
    campaign.updated_at = now or utcnow()
    await _sync_dispositions(session, campaign, settings)
    return campaign


async def set_campaign_status(
    session: AsyncSession, name: str, status: CampaignStatus, *, now: datetime | None = None
) -> Campaign:
    """Pause, resume or archive; an illegal move raises :class:`CampaignError` saying why."""
    campaign = await get_campaign(session, name)
    current = CampaignStatus(campaign.status)
    if current == status:
        return campaign
    if (current, status) not in TRANSITIONS:
        if current == CampaignStatus.ARCHIVED:
            raise CampaignError(f"campaign {name!r} is archived and cannot be {status}; create a new campaign instead")
        raise CampaignError(f"campaign {name!r} cannot go from {current} to {status}")
    stamp = now or utcnow()
    campaign.status = status
    campaign.updated_at = stamp
    if status == CampaignStatus.ARCHIVED:
        campaign.archived_at = stamp
    await session.flush()
    return campaign


async def lead_counts(session: AsyncSession, campaign_id: int) -> dict[str, int]:
    """Number of leads per status in the campaign, for `campaign show`/`list` and the console.

    ``pending`` leads (an import not finished, or killed, whose list is not ready) are left out:
    they are not part of the campaign until their list is (see :mod:`dialer.lists.importer`).
    """
    return await visible_lead_counts(session, campaign_id)


def describe(settings: CampaignSettings) -> Sequence[tuple[str, str]]:
    """Short human lines for `dialer campaign show`."""
    s = settings
    weekdays = ", ".join(f"{d} {r}" for d, r in s.window.weekdays.items())
    quiet = ", ".join(s.window.quiet_hours) or "none"
    return [
        ("calling window", s.window.default + (f" ({weekdays})" if weekdays else "")),
        ("quiet hours", quiet),
        ("holidays", "no calls" if s.window.holidays else "calls allowed"),
        ("day-parts", ", ".join(f"{n} {r}" for n, r in s.dayparts.items())),
        ("pacing", f"{s.pacing.mode}, abandon <= {s.pacing.target_abandon_rate:.1%}, max {s.pacing.max_lines} lines"),
        ("ring timeout", f"{s.pacing.ring_timeout_seconds} s"),
        (
            "retries",
            f"max {s.retry.max_attempts} per lead, {s.retry.max_attempts_per_number} per number, "
            f"reach deadline {s.retry.reach_deadline_hours} h",
        ),
        ("caller id", s.caller_id or "NOT SET: the campaign cannot dial until caller_id is set"),
        ("trunk", s.trunk),
        ("abandon message", f"{s.company_name or '(no company name)'}, call back {s.callback_number or '(not set)'}"),
        (
            "machines",
            ("detected, " + ("message after the beep" if s.on_machine == "message" else "hung up"))
            if s.amd
            else "not detected",
        ),
        ("region", s.region or "(numbers must carry +country code)"),
        ("effective call", f">= {s.effective_call_seconds} s, daily target {s.daily_target}"),
        ("dispositions", ", ".join(d.code for d in s.dispositions)),
        (
            "recording",
            s.recording.policy + (f" {s.recording.sample_percent:g}%" if s.recording.policy == "sample" else ""),
        ),
    ]
