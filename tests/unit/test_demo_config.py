"""dialer.demo.config: the demo file, settings for a run, and the calling window chosen from zones."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from dialer.campaigns import CampaignSettings, WindowSettings
from dialer.demo.config import (
    ContactZones,
    WindowRule,
    agent_tables,
    build_settings,
    choose_window,
    load_demo_config,
    quiet_ranges_around,
)
from dialer.windows import CallingWindow
from infra.settings import ConfigError

ZONES = {
    "America/Los_Angeles": ("US", 40),
    "America/New_York": ("US", 50),
    "Europe/London": ("GB", 35),
    "Asia/Kolkata": ("IN", 6),
    "Asia/Shanghai": ("CN", 36),
    "Australia/Sydney": ("AU", 26),
}


def contacts() -> list[ContactZones]:
    out: list[ContactZones] = []
    for zone_name, (country, n) in ZONES.items():
        out += [ContactZones(len(out) + i, (zone_name,), country) for i in range(n)]
    return out


def window_of(choice_default: str, quiet: tuple[str, ...], holidays: bool) -> CallingWindow:
    window: CallingWindow = CampaignSettings(
        window=WindowSettings(default=choice_default, quiet_hours=list(quiet), holidays=holidays)
    ).calling_window()
    return window


def test_the_shipped_demo_file_loads_and_builds_settings(tmp_path: Path) -> None:
    config = load_demo_config()
    settings = build_settings(config, data_dir=tmp_path, agents=3, trunk_port=5099, mqtt_port=18830)
    assert list(settings.acd.agents) == ["agent1", "agent2", "agent3"]
    assert all(a["mode"] == "nailed" for a in settings.acd.agents.values())
    assert settings.trunk.host == "127.0.0.1" and settings.trunk.port == 5099 and settings.trunk.mode == "peer"
    assert settings.mqtt.embedded and settings.mqtt.url.endswith(":18830")
    assert settings.site.data_dir == tmp_path
    campaign = CampaignSettings.model_validate(config.campaign_table())
    assert campaign.pacing.mode == "predictive" and campaign.queue == "sales"
    assert {d.code for d in campaign.dispositions if d.effective} == {"1", "2", "3"}
    assert config.contacts_file.is_file() and config.dnc_file is not None and config.dnc_file.is_file()


def test_a_bad_demo_value_is_one_line_naming_the_key(tmp_path: Path) -> None:
    text = load_demo_config().path.read_text(encoding="utf-8").replace("talk_mean_s = 28.0", "talk_mean_s = -1")
    bad = tmp_path / "demo.toml"
    bad.write_text(text, encoding="utf-8")
    (tmp_path / "contacts.csv").write_text("phone\n+12125550143\n", encoding="utf-8")
    (tmp_path / "dnc.csv").write_text("number\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_demo_config(bad)
    assert "demo.toml" in str(err.value) and "talk_mean_s" in str(err.value) and "\n" not in str(err.value)


def test_more_agents_than_the_file_are_made_like_the_last_one() -> None:
    agents = {"a1": {"name": "Anna", "password": "x", "mode": "nailed"}}
    out = agent_tables(agents, 3, ["Iris"])
    assert list(out) == ["a1", "agent2", "agent3"]
    assert out["agent2"]["name"] == "Iris" and out["agent3"]["name"] == "Agent 3"
    assert out["agent3"]["mode"] == "nailed" and out["agent3"]["password"] != out["a1"]["password"]
    with pytest.raises(ValueError, match="at least one agent"):
        agent_tables(agents, 0, [])


def test_a_narrow_window_is_kept_when_enough_leads_are_callable() -> None:
    start = datetime(2025, 3, 12, 14, 0, tzinfo=UTC)  # a Wednesday; NY 10:00, London 14:00, LA 07:00
    rule = WindowRule(candidates=["08:00-21:00", "00:00-24:00"], leads_per_agent_minute=1, outside_zone="Asia/Kolkata")
    choice = choose_window(contacts(), rule, start=start, minutes=1, agents=4, holidays=True)
    assert choice.default == "08:00-21:00" and choice.quiet_hours == ()
    window = window_of(choice.default, choice.quiet_hours, choice.holidays)
    by_id = {c.contact_id: c for c in contacts()}
    assert choice.outside
    for cid in choice.outside:  # LA (07:00), Shanghai (22:00), Sydney (01:00): outside at the start
        c = by_id[cid]
        assert not window.is_callable(c.zones, c.country, start)
    assert {by_id[c].zones[0] for c in choice.outside} >= {"America/Los_Angeles", "Australia/Sydney"}


def test_a_24h_window_gets_quiet_hours_so_some_contacts_stay_outside() -> None:
    start = datetime(2025, 3, 12, 14, 0, tzinfo=UTC)
    rule = WindowRule(candidates=["08:00-21:00", "00:00-24:00"], leads_per_agent_minute=6, outside_zone="Asia/Kolkata")
    choice = choose_window(contacts(), rule, start=start, minutes=3, agents=8, holidays=True)
    assert choice.default == "00:00-24:00"
    assert choice.quiet_hours  # around 19:30 in Kolkata
    by_id = {c.contact_id: c for c in contacts()}
    assert {by_id[c].zones[0] for c in choice.outside} == {"Asia/Kolkata"}
    assert choice.callable == len(contacts()) - ZONES["Asia/Kolkata"][1]
    assert any("Asia/Kolkata" in note for note in choice.notes)


def test_quiet_hours_around_midnight_are_split_in_two() -> None:
    assert quiet_ranges_around(datetime(2025, 1, 1, 23, 55), minutes=3) == ("23:40-24:00", "00:00-00:20")
    assert quiet_ranges_around(datetime(2025, 1, 1, 0, 5), minutes=3) == ("00:00-00:30", "23:50-24:00")
    assert quiet_ranges_around(datetime(2025, 1, 1, 12, 0), minutes=3) == ("11:45-12:25",)


def test_holidays_are_dropped_when_they_leave_too_few_leads() -> None:
    start = datetime(2025, 12, 25, 15, 0, tzinfo=UTC)  # Christmas in the US and the UK
    only_west = [ContactZones(i, ("America/New_York",), "US") for i in range(20)]
    only_west += [ContactZones(100 + i, ("Europe/London",), "GB") for i in range(20)]
    rule = WindowRule(candidates=["08:00-21:00"], leads_per_agent_minute=5, outside_zone="Asia/Kolkata")
    choice = choose_window(only_west, rule, start=start, minutes=1, agents=4, holidays=True)
    assert choice.holidays is False
    assert any("holidays" in note for note in choice.notes)


def test_no_contacts_is_an_error_that_says_why() -> None:
    with pytest.raises(ValueError, match="no contacts"):
        choose_window([], WindowRule(), start=datetime(2025, 1, 1, tzinfo=UTC), minutes=1, agents=1)
