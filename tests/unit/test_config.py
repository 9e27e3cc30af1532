"""Settings files, their one-line errors, `dialer config check`, and logging context."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import pytest
import structlog
from typer.testing import CliRunner

from dialer.campaigns import CampaignSettings, load_campaign_file, settings_from_config, validate_campaign_settings
from dialer.cli import app
from infra.logging import bound_contextvars, configure_logging
from infra.settings import ConfigError, load_settings

ROOT = Path(__file__).resolve().parent.parent.parent
runner = CliRunner()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "dialer.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_example_files_are_valid_and_document_every_campaign_key() -> None:
    settings = load_settings(ROOT / "config" / "example.toml")
    campaigns = settings_from_config(settings.campaigns, "example.toml")
    assert campaigns["spring_followup"].region == "CN"
    raw = load_campaign_file(ROOT / "config" / "campaign.example.toml")
    parsed = validate_campaign_settings(raw, "campaign.example.toml", "example")
    # The documented values are the defaults (except the keys marked example).
    defaults = CampaignSettings()
    assert parsed.window == defaults.window.model_copy(update={"weekdays": {"sat": "10:00-18:00", "sun": "closed"}})
    assert parsed.retry == defaults.retry and parsed.pacing == defaults.pacing
    assert parsed.dispositions == defaults.dispositions and parsed.dayparts == defaults.dayparts

    def keys(model: type) -> set[str]:
        return set(model.model_fields)  # type: ignore[attr-defined]

    assert keys(CampaignSettings) <= set(raw), "every campaign key appears in campaign.example.toml"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[logging]\nlevel = "loud"\n', "[logging] level = 'loud': input should be 'debug', 'info', 'warning' or"),
        ("[sip]\nlisten_port = 70000\n", "[sip] listen_port = 70000: input should be less than or equal to 65535"),
        ('[databse]\nurl = "x"\n', "databse = {'url': 'x'}: unknown key; allowed keys here:"),
        ('[database]\nurl = "mysql://x"\n', "[database] url = 'mysql://x': must start with sqlite+aiosqlite:///"),
        ("[site]\nname = [1\n", "TOML syntax error"),
        ('[site]\ntimezone = "Mars/Base"\n', "must be an IANA time zone"),
    ],
)
def test_wrong_values_fail_with_file_key_value_and_allowed_on_one_line(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    message = str(err.value)
    assert message.startswith(str(path))
    assert expected in message
    assert "\n" not in message


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, '[logging]\nlevel = "warning"\n[database]\nurl = "sqlite+aiosqlite:///a.db"\n')
    monkeypatch.setenv("DIALER_LOGGING__LEVEL", "debug")
    settings = load_settings(path)
    assert settings.logging.level == "debug"
    assert settings.database_url == "sqlite+aiosqlite:///a.db"
    monkeypatch.setenv("DIALER_LOGGING__LEVEL", "chatty")
    with pytest.raises(ConfigError, match=r"overridden by \$DIALER_LOGGING__LEVEL"):
        load_settings(path)


def test_default_database_is_a_sqlite_file_under_the_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIALER_DATA_DIR", str(tmp_path / "data"))
    assert load_settings().database_url == f"sqlite+aiosqlite:///{tmp_path / 'data' / 'dialer.db'}"


def test_campaign_section_errors_name_the_campaign_key(tmp_path: Path) -> None:
    path = write(tmp_path, "[campaigns.sales.pacing]\nring_timeout_seconds = 10\n")
    result = runner.invoke(app, ["config", "check", str(path)])
    assert result.exit_code == 2
    assert result.output.strip() == (
        f"error: {path}: [campaigns.sales.pacing] ring_timeout_seconds = 10: "
        "input should be greater than or equal to 15"
    )


def test_config_check_ok_and_missing_file(tmp_path: Path) -> None:
    ok = runner.invoke(app, ["config", "check", str(ROOT / "config" / "example.toml")])
    assert ok.exit_code == 0, ok.output
    assert "campaigns: spring_followup" in ok.output
    missing = runner.invoke(app, ["config", "check", str(tmp_path / "nope.toml")])
    assert missing.exit_code == 2
    assert "no such file" in missing.output


def test_campaign_settings_validation_messages() -> None:
    with pytest.raises(ConfigError, match=r"window\] default = '9-21': '9-21' is not a time range"):
        validate_campaign_settings({"window": {"default": "9-21"}}, "f.toml", "x")
    with pytest.raises(ConfigError, match=r"less than or equal to 0\.03"):
        validate_campaign_settings({"pacing": {"target_abandon_rate": 0.05}}, "f.toml", "x")
    with pytest.raises(ConfigError, match="unknown outcome 'voicemail'"):
        validate_campaign_settings({"retry": {"outcomes": {"voicemail": {"min_delay_minutes": 1}}}}, "f.toml", "x")
    with pytest.raises(ConfigError, match="listed twice"):
        validate_campaign_settings(
            {"dispositions": [{"code": "A", "label": "a"}, {"code": "a", "label": "b"}]}, "f.toml", "x"
        )
    tuned = validate_campaign_settings({"retry": {"outcomes": {"busy": {"min_delay_minutes": 5}}}}, "f", "x")
    assert tuned.retry.outcomes["busy"].rotate_daypart is True  # untouched keys keep their defaults
    assert tuned.retry.outcomes["abandoned"].min_delay_minutes == 72 * 60


def test_campaign_settings_map_to_the_pure_core() -> None:
    from datetime import time, timedelta

    settings = validate_campaign_settings(
        {"window": {"weekdays": {"sun": "closed"}}, "dayparts": {"day": "09:00-18:00", "night": "18:00-24:00"}},
        "f",
        "x",
    )
    window = settings.calling_window()
    assert window.weekdays[6] is None
    assert window.default.start == 9 * 3600 and window.default.end == 21 * 3600
    policy = settings.retry_policy()
    assert [d.name for d in policy.dayparts] == ["day", "night"]
    assert policy.dayparts[1].end is None and policy.dayparts[0].start == time(9)
    assert policy.rules["abandoned"].min_delay == timedelta(hours=72)
    assert policy.rules["completed"].final
    assert policy.reach_deadline == timedelta(hours=72)


async def test_logging_is_json_off_a_tty_with_per_task_context() -> None:
    stream = io.StringIO()
    configure_logging("info", stream)
    log = structlog.get_logger("test")

    async def call(call_id: str, agent_id: str) -> None:
        with bound_contextvars(call_id=call_id, campaign_id=7, agent_id=agent_id):
            await asyncio.sleep(0)
            log.info("bridged", 号码="+8613800138000")

    await asyncio.gather(call("c1", "a1"), call("c2", "a2"))
    log.debug("hidden below the level")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(line["call_id"], line["agent_id"]) for line in lines] == [("c1", "a1"), ("c2", "a2")]
    assert all(line["campaign_id"] == 7 and line["level"] == "info" and line["event"] == "bridged" for line in lines)
    assert lines[0]["号码"] == "+8613800138000"
    assert "call_id" not in structlog.contextvars.get_contextvars()
    configure_logging("info", stream, fmt="console")
    log.info("readable")
    assert "readable" in stream.getvalue().splitlines()[-1]
