"""The demo's configuration: ``config/demo/demo.toml`` made into real settings for one run.

The file holds ordinary dialer settings (validated by :class:`infra.settings.Settings` and
:class:`dialer.campaigns.CampaignSettings`, like any installation's) plus a ``[demo]`` table
for the simulated people and carrier. :func:`build_settings` fills in what depends on the run
(data directory, loopback ports, the carrier as the trunk, the number of agents), and
:func:`choose_window` picks the campaign's calling window from the contacts' time zones so the
demo has callable leads at any hour of the day while some contacts stay outside the window.
Both are pure: no sockets, no clock (the instant is an argument).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dialer.campaigns import CampaignSettings, WindowSettings, parse_time_range
from dialer.sim import AgentBehaviour, Behaviour, CustomerModelConfig
from dialer.windows import CallingWindow, zone
from infra.settings import ConfigError, Settings, format_validation_error, load_settings, read_toml

__all__ = [
    "DEFAULT_DEMO_FILE",
    "AgentHabits",
    "ContactZones",
    "CustomerSettings",
    "DemoConfig",
    "DemoSection",
    "InboundSettings",
    "WindowChoice",
    "WindowRule",
    "agent_tables",
    "build_settings",
    "choose_window",
    "load_demo_config",
]

DEFAULT_DEMO_FILE = Path(__file__).resolve().parents[2] / "config" / "demo" / "demo.toml"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _range(value: tuple[float, float], name: str) -> tuple[float, float]:
    lo, hi = value
    if not 0 <= lo <= hi:
        raise ValueError(f"{name} must be [low, high] seconds with 0 <= low <= high, got {list(value)}")
    return value


class WindowRule(_Model):
    """[demo.window]: how the campaign's calling window is chosen at start."""

    candidates: list[str] = Field(default_factory=lambda: ["08:00-21:00", "00:00-24:00"], min_length=1)
    leads_per_agent_minute: float = Field(default=6.0, gt=0)
    outside_zone: str = "Asia/Kolkata"

    @field_validator("candidates")
    @classmethod
    def _ranges(cls, value: list[str]) -> list[str]:
        for text in value:
            parse_time_range(text)
        return value

    @field_validator("outside_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        zone(value)
        return value


class CustomerSettings(_Model):
    """[demo.customers]: the behaviour mix and timings of the people behind the carrier."""

    answer_human: float = 0.45
    answer_machine: float = 0.10
    busy: float = 0.14
    no_answer: float = 0.24
    reject: float = 0.03
    unavailable: float = 0.03
    not_found: float = 0.01
    ring_median_s: float = Field(default=4.0, gt=0)
    ring_max_s: float = Field(default=18.0, gt=0)
    talk_mean_s: float = Field(default=28.0, gt=0)
    talk_min_s: float = Field(default=8.0, gt=0)
    talk_max_s: float = Field(default=60.0, gt=0)
    hangs_up_first_p: float = Field(default=0.5, ge=0, le=1)

    def model_config_for(self) -> CustomerModelConfig:
        mix = {b: float(getattr(self, b.value)) for b in Behaviour}
        return CustomerModelConfig(
            mix=mix,
            ring_median_s=self.ring_median_s,
            ring_max_s=self.ring_max_s,
            talk_mean_s=self.talk_mean_s,
            talk_min_s=self.talk_min_s,
            talk_max_s=self.talk_max_s,
            hangs_up_first_p=self.hangs_up_first_p,
        )


class AgentHabits(_Model):
    """[demo.agents]: how the simulated agents work."""

    talk_s: tuple[float, float] = (16.0, 35.0)
    wrap_up_s: tuple[float, float] = (1.0, 3.0)
    dispositions: dict[str, float] = Field(default_factory=lambda: {"1": 2.0, "2": 3.0, "3": 3.0, "4": 1.0})
    extra_names: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _ranges(self) -> AgentHabits:
        _range(self.talk_s, "talk_s")
        _range(self.wrap_up_s, "wrap_up_s")
        return self

    def behaviour(self) -> AgentBehaviour:
        return AgentBehaviour(
            talk_s=self.talk_s,
            wrap_up_s=self.wrap_up_s,
            dispositions=dict(self.dispositions),
            ready_dtmf="*1",
            # The demo tells each agent when a customer is bridged in or leaves (the agent's
            # screen pop, from the ACD's events), so a feedback beep is never taken for a call.
            detect_connect_tone=False,
        )


class InboundSettings(_Model):
    """[demo.inbound]: customers calling the DID."""

    every_s: tuple[float, float] = (15.0, 35.0)
    first_after_s: float = Field(default=5.0, ge=0)
    digits: dict[str, float] = Field(default_factory=lambda: {"1": 1.0})
    patience_s: float = Field(default=45.0, gt=0)
    talk_s: tuple[float, float] = (15.0, 35.0)

    @model_validator(mode="after")
    def _ranges(self) -> InboundSettings:
        _range(self.every_s, "every_s")
        _range(self.talk_s, "talk_s")
        if self.every_s[1] <= 0:
            raise ValueError("every_s must allow a positive time between calls")
        return self


class DemoSection(_Model):
    """[demo]: the parts of the demo that are not product code."""

    contacts: str = "contacts.csv"
    dnc: str | None = "dnc.csv"
    campaign: str = "demo"
    inbound_did: str = "+442071838750"
    #: the campaign's max_lines = ceil(agents x this): a fresh campaign has no history yet, and
    #: its pacing starts from generic priors (25 % answer, 180 s talk) that overdial this crowd
    max_lines_per_agent: float = Field(default=1.25, ge=1.0, le=10.0)
    window: WindowRule = Field(default_factory=WindowRule)
    customers: CustomerSettings = Field(default_factory=CustomerSettings)
    agents: AgentHabits = Field(default_factory=AgentHabits)
    inbound: InboundSettings = Field(default_factory=InboundSettings)


@dataclass(frozen=True)
class DemoConfig:
    """The parsed demo file: the settings tables, the [demo] section and where the file lives."""

    path: Path
    tables: Mapping[str, Any]
    demo: DemoSection

    @property
    def contacts_file(self) -> Path:
        return self.path.parent / self.demo.contacts

    @property
    def dnc_file(self) -> Path | None:
        return self.path.parent / self.demo.dnc if self.demo.dnc else None

    def campaign_table(self) -> dict[str, Any]:
        tables = self.tables.get("campaigns") or {}
        table = tables.get(self.demo.campaign)
        if not isinstance(table, Mapping):
            raise ConfigError(f"{self.path}: [campaigns.{self.demo.campaign}] is missing; the demo needs its campaign")
        return copy.deepcopy(dict(table))


def load_demo_config(path: Path = DEFAULT_DEMO_FILE) -> DemoConfig:
    """Read and check the demo file; every problem is one :class:`ConfigError` line naming the key."""
    data = read_toml(path)
    raw_demo = data.pop("demo", {})
    try:
        demo = DemoSection.model_validate(raw_demo)
    except ValidationError as exc:
        raise format_validation_error(exc, str(path), prefix=("demo",), model=DemoSection, env_prefix=None) from None
    config = DemoConfig(path=path, tables=data, demo=demo)
    try:
        CampaignSettings.model_validate(config.campaign_table())
    except ValidationError as exc:
        raise format_validation_error(
            exc, str(path), prefix=("campaigns", demo.campaign), model=CampaignSettings, env_prefix=None
        ) from None
    for name in (demo.contacts, demo.dnc):
        if name and not (path.parent / name).is_file():
            raise ConfigError(f"{path}: [demo] file {name!r} does not exist next to it; fix the name or add the file")
    return config


def agent_tables(agents: Mapping[str, Mapping[str, Any]], count: int, extra_names: Sequence[str]) -> dict[str, Any]:
    """The first ``count`` agents of ``[acd.agents]``; more are made like the last one
    (``agent9``, ``agent10``, ... with names from ``extra_names``)."""
    if count < 1:
        raise ValueError(f"--agents {count}: the demo needs at least one agent")
    if not agents:
        raise ValueError("[acd.agents] is empty; the demo file must define at least one agent")
    ids = list(agents)
    out = {agent_id: dict(agents[agent_id]) for agent_id in ids[:count]}
    template = dict(agents[ids[-1]])
    n = len(ids)
    while len(out) < count:
        n += 1
        extra = len(out) - len(ids)
        name = extra_names[extra] if extra < len(extra_names) else f"Agent {n}"
        out[f"agent{n}"] = {**template, "name": name, "password": f"demo-pw-{n}"}
    return out


def build_settings(
    config: DemoConfig,
    *,
    data_dir: Path,
    agents: int,
    trunk_port: int,
    mqtt_port: int,
    sip_port: int = 0,
    http_port: int | None = None,
) -> Settings:
    """Real :class:`Settings` for this run; raises :class:`ConfigError` on a bad value."""
    tables: dict[str, Any] = copy.deepcopy(dict(config.tables))
    tables.setdefault("site", {})["data_dir"] = str(data_dir)
    tables.setdefault("sip", {})["listen_port"] = sip_port
    trunk = tables.setdefault("trunk", {})
    trunk["host"], trunk["port"] = "127.0.0.1", trunk_port
    tables.setdefault("mqtt", {})["url"] = f"mqtt://127.0.0.1:{mqtt_port}"
    if http_port is not None:
        tables.setdefault("http", {})["port"] = http_port
    acd = tables.setdefault("acd", {})
    acd["agents"] = agent_tables(acd.get("agents") or {}, agents, config.demo.agents.extra_names)
    # The demo's database starts empty every time; migrations run at start.
    tables.setdefault("database", {})["migrate_on_start"] = True
    try:
        return load_settings(None, **tables)
    except ConfigError as exc:
        raise ConfigError(f"{config.path}: {exc}") from None


# == the calling window ===========================================================================


@dataclass(frozen=True, slots=True)
class ContactZones:
    """What the window check needs of one contact."""

    contact_id: int
    zones: tuple[str, ...]
    country: str | None


@dataclass(frozen=True)
class WindowChoice:
    """The window the demo's campaign gets, and which contacts it leaves outside for the whole run."""

    default: str
    quiet_hours: tuple[str, ...]
    holidays: bool
    callable: int
    outside: tuple[int, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)

    def apply(self, window: WindowSettings) -> WindowSettings:
        return window.model_copy(
            update={"default": self.default, "quiet_hours": list(self.quiet_hours), "holidays": self.holidays}
        )


def _instants(start: datetime, minutes: float) -> list[datetime]:
    """Start, every minute of the run, and the end plus a margin for the last calls."""
    span = max(0.0, minutes) + 3.0
    steps = max(1, math.ceil(span))
    return [start + timedelta(minutes=span * i / steps) for i in range(steps + 1)]


def _count(window: CallingWindow, contacts: Sequence[ContactZones], instants: Sequence[datetime]) -> tuple[int, int]:
    """(contacts callable at every instant, contacts callable at none of them)."""
    always = never = 0
    for c in contacts:
        flags = [window.is_callable(c.zones, c.country, t) for t in instants]
        always += all(flags)
        never += not any(flags)
    return always, never


def _window(default: str, quiet: Sequence[str], holidays: bool) -> CallingWindow:
    window = WindowSettings(default=default, quiet_hours=list(quiet), holidays=holidays)
    built: CallingWindow = CampaignSettings(window=window).calling_window()
    return built


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def quiet_ranges_around(local: datetime, minutes: float, margin_min: int = 15) -> tuple[str, ...]:
    """Quiet hours covering ``local`` (a wall-clock time) until the run's end, split at midnight."""
    now_m = local.hour * 60 + local.minute
    start = (now_m - margin_min) // 5 * 5
    end = math.ceil((now_m + minutes + 3 + margin_min) / 5) * 5
    end = min(end, start + 24 * 60 - 5)
    ranges: list[tuple[int, int]] = []
    if start < 0:
        ranges += [(0, end), (start + 1440, 1440)]
    elif end > 1440:
        ranges += [(start, 1440), (0, end - 1440)]
    else:
        ranges.append((start, end))
    return tuple(f"{_hhmm(a)}-{_hhmm(b)}" for a, b in ranges if b > a)


def choose_window(
    contacts: Sequence[ContactZones],
    rule: WindowRule,
    *,
    start: datetime,
    minutes: float,
    agents: int,
    holidays: bool = True,
) -> WindowChoice:
    """The first candidate window under which enough leads stay callable for the whole run.

    Enough = ``agents x minutes x leads_per_agent_minute`` (at least two per agent, at most 90 %
    of the contacts). When only a 24-hour window is wide enough, quiet hours are set around the
    local time of ``rule.outside_zone`` so that the contacts there stay outside the window and
    are not dialled. ``start`` is an aware UTC instant.
    """
    if not contacts:
        raise ValueError("no contacts to choose a calling window for; the import left no callable lead")
    total = len(contacts)
    needed = min(max(2 * agents, math.ceil(agents * max(minutes, 0.5) * rule.leads_per_agent_minute)), int(total * 0.9))
    instants = _instants(start, minutes)
    notes: list[str] = []
    chosen: tuple[str, int, int] | None = None
    for observe in (holidays, False):
        for candidate in rule.candidates:
            always, never = _count(_window(candidate, (), observe), contacts, instants)
            if always >= max(needed, 1):
                chosen = (candidate, always, never)
                break
        if chosen is not None:
            if observe != holidays:
                notes.append("public holidays are not observed in this run: too many contacts have one today")
            holidays = observe
            break
    if chosen is None:
        candidate = rule.candidates[-1]
        always, never = _count(_window(candidate, (), False), contacts, instants)
        chosen, holidays = (candidate, always, never), False
        notes.append(f"only {always} contacts are callable at this hour; the run may end up with idle agents")
    default, callable_, _never = chosen
    quiet: tuple[str, ...] = ()
    if default != rule.candidates[0]:
        notes.append(
            f"calling window widened from {rule.candidates[0]} to {default} (callee's local time) so that at least "
            f"{needed} leads are callable at this hour"
        )
    window = _window(default, quiet, holidays)
    outside = tuple(
        c.contact_id for c in contacts if not any(window.is_callable(c.zones, c.country, t) for t in instants)
    )
    if not outside:
        local = start.astimezone(zone(rule.outside_zone))
        quiet = quiet_ranges_around(local, minutes)
        window = _window(default, quiet, holidays)
        always, _ = _count(window, contacts, instants)
        outside = tuple(
            c.contact_id for c in contacts if not any(window.is_callable(c.zones, c.country, t) for t in instants)
        )
        if always >= needed and outside:
            callable_ = always
            notes.append(
                f"quiet hours {', '.join(quiet)} (local) keep the {len(outside)} contacts in {rule.outside_zone} "
                f"(now {local:%H:%M} there) outside the window: they must not be dialled"
            )
        else:
            quiet, outside = (), ()
            notes.append("every contact is inside the calling window in this run")
    return WindowChoice(default, quiet, holidays, callable_, outside, tuple(notes))
