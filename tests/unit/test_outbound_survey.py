"""The campaign's post-call survey setting reaches the ACD with the answered call."""

from __future__ import annotations

from typing import Any

from acd.service import Connected
from dialer.campaigns import validate_campaign_settings
from dialer.runner_agents import AcdAgentPool, OutboundLead


class FakeAcd:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def connect_outbound(self, call: Any, queue: str, **kw: Any) -> Connected:
        self.calls.append({"queue": queue, **kw})
        return Connected("c1", "a1", 0.1)


async def test_the_campaigns_survey_flag_and_name_go_with_the_call() -> None:
    acd = FakeAcd()
    pool = AcdAgentPool(acd, lambda _cid: "sales", survey=True, campaign="spring")
    got = await pool.connect(object(), 7, OutboundLead(lead_id=1, contact_id=2, number="+8613800138000"))  # type: ignore[arg-type]
    assert got == "a1"
    sent = acd.calls[0]
    assert sent["queue"] == "sales" and sent["survey"] is True
    assert sent["campaign_id"] == 7 and sent["campaign"] == "spring"


async def test_an_unset_survey_leaves_it_to_the_queue() -> None:
    acd = FakeAcd()
    pool = AcdAgentPool(acd, lambda _cid: "sales")
    await pool.connect(object(), 7, OutboundLead(lead_id=1, contact_id=2, number="+8613800138000"))  # type: ignore[arg-type]
    assert acd.calls[0]["survey"] is None


def test_campaign_settings_take_a_survey_flag() -> None:
    assert validate_campaign_settings({}, "f.toml", "x").survey is None
    assert validate_campaign_settings({"survey": False}, "f.toml", "x").survey is False
