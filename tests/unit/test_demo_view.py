"""dialer.demo.view: the live view's projection of bus events, and its rendering."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.console import Console

from acd.service import AgentStatus, DispositionSet
from dialer.demo.view import DemoFigures, render, summary_line
from dialer.runner import AttemptEnded
from dialer.web.events import CampaignStats

NOW = datetime(2025, 3, 12, 14, 0, tzinfo=UTC)


def attempt(call_id: str, outcome: str, talk: float | None = None) -> AttemptEnded:
    return AttemptEnded(
        campaign_id=1,
        lead_id=1,
        attempt_id=1,
        call_id=call_id,
        number="+12125550143",
        outcome=outcome,
        sip_status=200 if outcome in ("completed", "abandoned", "machine") else 486,
        agent_id="agent1" if outcome == "completed" else None,
        talk_seconds=talk,
        amd_result=None,
        lead_status="done",
        next_attempt_at=None,
        reason="",
        at=NOW,
    )


def stats(lines: int) -> CampaignStats:
    return CampaignStats(
        campaign_id=1,
        name="demo",
        status="active",
        mode="predictive",
        dial_level=1.25,
        lines_in_use=lines,
        max_lines=10,
        agents_available=2,
        abandon_rate_24h=0.1,
        abandon_rate_30d=0.1,
        effective_today=0,
        target_today=100,
        at=0.0,
    )


def test_effective_calls_need_an_effective_code_and_enough_talk_in_either_order() -> None:
    f = DemoFigures(effective_threshold_s=15.0)
    f.apply(attempt("long", "completed", talk=20.0))
    f.apply(DispositionSet(call_id="long", agent_id="agent1", code="1", effective=True))
    f.apply(DispositionSet(call_id="late", agent_id="agent2", code="2", effective=True))  # code before the CDR
    f.apply(attempt("late", "completed", talk=15.0))
    f.apply(attempt("short", "completed", talk=9.0))
    f.apply(DispositionSet(call_id="short", agent_id="agent1", code="1", effective=True))
    f.apply(attempt("nope", "completed", talk=40.0))
    f.apply(DispositionSet(call_id="nope", agent_id="agent1", code="4", effective=False))
    assert f.effective == {"long", "late"}
    assert f.dispositions == 4


def test_outcomes_placed_and_abandon_rate() -> None:
    f = DemoFigures()
    for call_id, outcome in (("a", "completed"), ("b", "abandoned"), ("c", "machine"), ("d", "busy")):
        f.apply(attempt(call_id, outcome, talk=20.0 if outcome == "completed" else None))
    f.apply(stats(lines=3))
    assert f.placed == 7 and f.answered == 3 and f.human_answered == 2
    assert f.abandon_rate == 0.5
    f.apply(stats(lines=1))
    assert f.placed == 7  # a stale lines figure never makes "placed" go down


def test_agents_by_state_and_calls_counted_on_each_new_call() -> None:
    f = DemoFigures()
    f.add_agent("agent1", "Anna")
    for state in ("ready", "on_call", "wrap_up", "ready", "on_call"):
        f.apply(AgentStatus(agent_id="agent1", state=state, mode="nailed", reason="", call_id=None, since=NOW), 10.0)
    assert f.agents["agent1"].calls == 2 and f.agents["agent1"].state == "on_call"
    assert f.agent_counts()["on_call"] == 1


def test_summary_line_and_live_view_show_the_figures() -> None:
    f = DemoFigures()
    f.add_agent("agent1", "Anna")
    f.apply(AgentStatus(agent_id="agent1", state="ready", mode="nailed", reason="", call_id=None, since=NOW), 1.0)
    f.apply(stats(lines=2))
    f.apply(attempt("a", "completed", talk=30.0))
    f.apply(DispositionSet(call_id="a", agent_id="agent1", code="1", effective=True))
    f.note_inbound("in-1")
    line = summary_line(f, 12.0)
    assert "t=   12s" in line and "ready 1" in line and "dial level 1.25" in line and "effective 1" in line
    assert "inbound 1" in line
    console = Console(record=True, width=120)
    console.print(render(f, now=5.0, elapsed_s=12.0, remaining_s=48.0, title="dialer demo"))
    text = console.export_text()
    assert "Anna" in text and "ready" in text and "predictive" in text and "1.25" in text
    assert "effective calls" in text and "48s left" in text
