"""The application's settings: one TOML file, overridden by environment variables.

Precedence, highest first: values passed to :func:`load_settings` as ``overrides``,
environment variables ``DIALER_<SECTION>__<KEY>`` (e.g. ``DIALER_DATABASE__URL``), the TOML
file, then the defaults below. ``DIALER_DATA_DIR`` sets ``site.data_dir`` and
``DIALER_CONFIG`` names the file when the CLI gets no ``--config``.

A wrong value stops the program at start with ONE line naming the file, the key, the bad
value and what is allowed (:class:`ConfigError`). Unknown keys are errors too, so a typo
never silently falls back to a default.

Extension points: each section is its own model. An issue that needs a new section adds a
model here and one field on :class:`Settings` (look for "EXTENSION POINT"), documents it in
``config/example.toml``, and nothing else changes. ``[campaigns.<name>]`` sections stay raw
tables here because their model (``dialer.campaigns.CampaignSettings``) belongs to the
dialer layer; :func:`format_validation_error` is shared so they fail the same way.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

__all__ = [
    "AcdSettings",
    "ConfigError",
    "DatabaseSettings",
    "HttpSettings",
    "LoggingSettings",
    "MqttSettings",
    "RecordingPolicySettings",
    "RecordingsSettings",
    "Settings",
    "SipSettings",
    "SiteSettings",
    "TrunkSettings",
    "default_config_path",
    "format_validation_error",
    "load_settings",
    "read_toml",
]

ENV_PREFIX = "DIALER_"
ENV_DELIMITER = "__"


class ConfigError(Exception):
    """A configuration problem, already phrased as the one line the user should read."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True, frozen=True)


def _default_data_dir() -> Path:
    return Path(os.environ.get("DIALER_DATA_DIR") or "./var")


class SiteSettings(_Section):
    """[site]: who this installation is and where it keeps its files."""

    name: str = Field(default="default", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    data_dir: Path = Field(default_factory=_default_data_dir)
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return _check_zone(value)


class DatabaseSettings(_Section):
    """[database]: SQLite file under data_dir unless url names PostgreSQL."""

    url: str | None = None
    echo: bool = False
    pool_size: int = Field(default=5, ge=1, le=100)
    migrate_on_start: bool = True

    @field_validator("url")
    @classmethod
    def _supported_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must start with sqlite+aiosqlite:/// or postgresql+asyncpg://")
        return value


class LoggingSettings(_Section):
    """[logging]: level and renderer (auto: JSON unless stderr is a terminal)."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


class SipSettings(_Section):
    """[sip]: where the SIP stack listens, for trunks and agents' softphones."""

    listen_host: str = "127.0.0.1"
    listen_port: int = Field(default=5060, ge=0, le=65535)
    transports: tuple[Literal["udp", "tcp"], ...] = ("udp", "tcp")
    public_address: str | None = None
    user_agent: str = "dialer"
    rtp_port_min: int = Field(default=10000, ge=1024, le=65535)
    rtp_port_max: int = Field(default=20000, ge=1024, le=65535)


class TrunkSettings(_Section):
    """[trunk]: the carrier. mode = "register" registers to it; "peer" trusts it by address."""

    host: str | None = None
    port: int = Field(default=5060, ge=1, le=65535)
    transport: Literal["udp", "tcp"] = "udp"
    username: str | None = None
    password: str | None = None
    mode: Literal["peer", "register"] = "peer"
    from_domain: str | None = None
    max_channels: int = Field(default=30, ge=1, le=10000)


class MqttSettings(_Section):
    """[mqtt]: the embedded broker by default, or an external one by URL."""

    embedded: bool = True
    url: str = "mqtt://127.0.0.1:1883"
    topic_prefix: str = "dialer"


class HttpSettings(_Section):
    """[http]: the web console (agents' page, wallboard, manager pages) and its JSON API.

    ``secret_key`` signs session cookies; without one a random key is made per process, so
    every restart logs everybody out. Sessions end after ``session_idle_minutes`` without a
    request and ``session_max_hours`` after login, whichever comes first. ``secure_cookies``:
    ``auto`` marks cookies Secure when the request came over https; behind a proxy that
    terminates TLS set ``always``.
    """

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    secret_key: str | None = Field(default=None, min_length=16)
    session_idle_minutes: int = Field(default=30, ge=1, le=24 * 60)
    session_max_hours: int = Field(default=12, ge=1, le=24 * 31)
    secure_cookies: Literal["auto", "always", "never"] = "auto"
    max_upload_mb: int = Field(default=200, ge=1, le=4096)
    # Pending wallboard updates per WebSocket client before it is dropped to a fresh snapshot.
    wallboard_client_queue: int = Field(default=5000, ge=10, le=1_000_000)


class RecordingPolicySettings(_Section):
    """A recording policy: record all calls, none, on the agent's demand, or a sample."""

    policy: Literal["all", "none", "on_demand", "sample"] = "all"
    sample_percent: float = Field(default=10.0, ge=0.0, le=100.0)


class RecordingsSettings(_Section):
    """[recordings]: where WAV files go (relative paths are under site.data_dir), for how long,
    the policy of calls that no campaign decides (inbound queues), and the QA scoring forms.

    ``tap_flush_seconds`` + the tap's 0.2 s jitter delay + ``writer_flush_seconds`` bound how much
    audio a crash can lose; keep the sum under 1 s. ``retention_days = 0`` keeps recordings for
    ever. ``qa_forms.<campaign>`` tables (``default`` for the rest) are validated by
    ``recordings.qa.QaForm``.
    """

    dir: Path = Path("recordings")
    retention_days: int = Field(default=90, ge=0)
    retention_check_minutes: int = Field(default=60, ge=1, le=24 * 60)
    tap_flush_seconds: float = Field(default=0.5, gt=0.0, le=1.0)
    writer_flush_seconds: float = Field(default=0.25, ge=0.05, le=1.0)
    fsync: bool = False
    default_policy: RecordingPolicySettings = Field(default_factory=RecordingPolicySettings)
    queues: dict[str, RecordingPolicySettings] = Field(default_factory=dict)
    qa_forms: dict[str, dict[str, Any]] = Field(default_factory=dict)

    def root(self, data_dir: Path) -> Path:
        """The recordings directory: ``dir`` itself when absolute, else under ``data_dir``."""
        return self.dir if self.dir.is_absolute() else data_dir / self.dir


class AcdSettings(_Section):
    """[acd]: queues, agents, DIDs and IVR menus of the live ACD (validated in full by
    acd.service.AcdServiceConfig when the service starts, and by `dialer config check`).

    [acd.queues.<id>] and [acd.agents.<id>] are tables keyed by id; [acd.dids] maps a dialled
    number to "menu:<name>" or "queue:<id>"; [acd.menus.<name>] are IVR menus (ivr.menu);
    [acd.options] takes any other AcdServiceConfig field (e.g. max_no_answer, sticky_days).
    """

    wrapup_seconds: int = Field(default=10, ge=0, le=3600)
    ring_timeout_seconds: int = Field(default=15, ge=5, le=120)
    login_code: str = Field(default="*55", pattern=r"^[*#0-9]{2,16}$")
    queues: dict[str, dict[str, Any]] = Field(default_factory=dict)
    agents: dict[str, dict[str, Any]] = Field(default_factory=dict)
    dids: dict[str, str] = Field(default_factory=dict)
    menus: dict[str, Any] = Field(default_factory=dict)
    options: dict[str, Any] = Field(default_factory=dict)


class Settings(BaseSettings):
    """The whole application's configuration."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_DELIMITER,
        extra="forbid",
        frozen=True,
        validate_default=True,
    )
    # Set per load by load_settings(); pydantic-settings reads the TOML file named here.
    _toml_file: ClassVar[Path | None] = None

    site: SiteSettings = Field(default_factory=SiteSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    sip: SipSettings = Field(default_factory=SipSettings)
    trunk: TrunkSettings = Field(default_factory=TrunkSettings)
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    recordings: RecordingsSettings = Field(default_factory=RecordingsSettings)
    acd: AcdSettings = Field(default_factory=AcdSettings)
    # EXTENSION POINT: new sections go above this line, one model each.
    # [campaigns.<name>] tables, validated by dialer.campaigns.CampaignSettings.
    campaigns: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @property
    def database_url(self) -> str:
        from infra.db import default_sqlite_url

        return self.database.url or default_sqlite_url(self.site.data_dir)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if cls._toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=cls._toml_file))
        return tuple(sources)


def _check_zone(value: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("must be an IANA time zone such as Asia/Shanghai or Europe/Paris") from None
    return value


def default_config_path() -> Path | None:
    """$DIALER_CONFIG, else ./dialer.toml when it exists, else None (defaults only)."""
    env = os.environ.get("DIALER_CONFIG")
    if env:
        return Path(env)
    local = Path("dialer.toml")
    return local if local.is_file() else None


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file, turning every failure into a one-line :class:`ConfigError`."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file; pass an existing file or copy config/example.toml") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror}); check the path and its permissions") from None
    try:
        return tomllib.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text; save the file as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: TOML syntax error: {exc}; see config/example.toml for the syntax") from None


def _key(loc: Sequence[int | str]) -> str:
    parts = [str(p) for p in loc]
    if not parts:
        return "(top level)"
    if len(parts) == 1:
        return parts[0]
    head = ".".join(parts[:-1])
    return f"[{head}] {parts[-1]}"


def _allowed(error: Mapping[str, Any], model: type[BaseModel] | None, loc: Sequence[int | str]) -> str:
    kind = error.get("type", "")
    msg = str(error.get("msg", "invalid value"))
    if kind == "extra_forbidden" and model is not None:
        fields = _fields_at(model, loc[:-1])
        if fields:
            return f"unknown key; allowed keys here: {', '.join(fields)}"
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    msg = msg.removeprefix("Value error, ")
    return msg[0].lower() + msg[1:] if msg else msg


def _fields_at(model: type[BaseModel], loc: Sequence[int | str]) -> list[str]:
    current: Any = model
    for part in loc:
        fields = getattr(current, "model_fields", None)
        if fields is None or not isinstance(part, str) or part not in fields:
            return []
        annotation = fields[part].annotation
        current = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
        if current is None:
            return []
    return sorted(getattr(current, "model_fields", {}))


def format_validation_error(
    exc: ValidationError,
    source: str,
    *,
    prefix: Sequence[str] = (),
    model: type[BaseModel] | None = None,
    env_prefix: str | None = ENV_PREFIX,
) -> ConfigError:
    """One line per problem (the first one first): ``FILE: [section] key = value: allowed``."""
    lines: list[str] = []
    for error in exc.errors():
        loc = [*prefix, *error.get("loc", ())]
        key = _key(loc)
        where = source
        if env_prefix:
            env_name = env_prefix + ENV_DELIMITER.join(str(p).upper() for p in error.get("loc", ()))
            if env_name in os.environ:
                where = f"{source} (overridden by ${env_name})"
        value = error.get("input")
        shown = "" if error.get("type") == "missing" else f" = {value!r}"
        lines.append(f"{where}: {key}{shown}: {_allowed(error, model, error.get('loc', ()))}")
    message = lines[0] if len(lines) == 1 else f"{lines[0]} (and {len(lines) - 1} more: {'; '.join(lines[1:])})"
    return ConfigError(message)


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Load and validate settings from ``path`` (None: defaults and environment only).

    Raises :class:`ConfigError` with a one-line message on any problem.
    """
    source = str(path) if path is not None else "defaults"
    if path is not None:
        read_toml(path)  # precise syntax errors before pydantic-settings parses it again
    cls = type("LoadedSettings", (Settings,), {"_toml_file": path})
    try:
        settings: Settings = cls(**overrides)
    except ValidationError as exc:
        raise format_validation_error(exc, source, model=Settings) from None
    return settings
