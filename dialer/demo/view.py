"""The demo's live view: the product's events projected into a few figures, drawn with rich.

:class:`DemoFigures` is a pure projection of bus events (no clock: the caller passes ``now``):
agents' states (``AgentStatus``), the campaign runner's figures (``CampaignStats``: dial level,
lines in use, abandon rate), every finished attempt (``AttemptEnded``), dispositions
(``DispositionSet``) joined with the attempt's talk time into *effective calls* (a disposition
flagged effective and talk time at or above the campaign's threshold), recordings started, and
the inbound calls the simulated customers placed. :func:`render` draws it as rich tables for
``rich.live``; :func:`summary_line` prints one line for logs (``--no-view``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

__all__ = ["AgentRow", "DemoFigures", "render", "summary_line"]

_STATE_STYLE = {
    "ready": "green",
    "offered": "yellow",
    "on_call": "bold cyan",
    "wrap_up": "magenta",
    "paused": "red",
    "logged_out": "dim",
}
_ANSWERED = ("completed", "abandoned", "machine")


@dataclass
class AgentRow:
    agent_id: str
    name: str
    state: str = "logged_out"
    since: float = 0.0
    calls: int = 0


@dataclass
class DemoFigures:
    """What the view shows; feed it with :meth:`apply` (a bus listener) and read it any time."""

    effective_threshold_s: float = 15.0
    agents: dict[str, AgentRow] = field(default_factory=dict)
    stats: Any = None  # the last dialer.web.events.CampaignStats
    attempts: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    talk: dict[str, float] = field(default_factory=dict)
    effective_codes: dict[str, bool] = field(default_factory=dict)
    effective: set[str] = field(default_factory=set)
    dispositions: int = 0
    recordings: int = 0
    inbound_ids: set[str] = field(default_factory=set)
    inbound_connected: int = 0
    inbound_abandoned: int = 0
    _placed: int = field(default=0, repr=False)

    def add_agent(self, agent_id: str, name: str) -> None:
        self.agents.setdefault(agent_id, AgentRow(agent_id, name))

    def note_inbound(self, call_id: str) -> None:
        self.inbound_ids.add(call_id)

    def apply(self, event: Any, now: float = 0.0) -> None:
        kind = type(event).__name__
        if kind == "AgentStatus":
            row = self.agents.setdefault(event.agent_id, AgentRow(event.agent_id, event.agent_id))
            if event.state == "on_call" and row.state != "on_call":
                row.calls += 1
            row.state, row.since = event.state, now
        elif kind == "CampaignStats":
            self.stats = event
        elif kind == "AttemptEnded":
            self.attempts += 1
            self.outcomes[event.outcome] += 1
            if event.outcome == "completed" and event.talk_seconds is not None:
                self.talk[event.call_id] = float(event.talk_seconds)
                self._judge(event.call_id)
        elif kind == "DispositionSet" and hasattr(event, "effective"):
            self.dispositions += 1
            self.effective_codes[event.call_id] = bool(event.effective)
            self._judge(event.call_id)
        elif kind == "RecordingStarted":
            self.recordings += 1
        elif kind == "CallConnected" and event.call_id in self.inbound_ids:
            self.inbound_connected += 1
        elif kind == "CallAbandoned" and event.call_id in self.inbound_ids:
            self.inbound_abandoned += 1

    def _judge(self, call_id: str) -> None:
        talk = self.talk.get(call_id)
        if talk is not None and self.effective_codes.get(call_id) and talk >= self.effective_threshold_s:
            self.effective.add(call_id)

    # -- figures ---------------------------------------------------------------------------------
    @property
    def lines_in_use(self) -> int:
        return int(self.stats.lines_in_use) if self.stats is not None else 0

    @property
    def placed(self) -> int:
        """Attempts ended plus lines in use (the runner's last figures, a second or two old)."""
        self._placed = max(self._placed, self.attempts + self.lines_in_use)
        return self._placed

    @property
    def answered(self) -> int:
        return sum(self.outcomes[o] for o in _ANSWERED)

    @property
    def human_answered(self) -> int:
        return self.outcomes["completed"] + self.outcomes["abandoned"]

    @property
    def abandon_rate(self) -> float | None:
        human = self.human_answered
        return self.outcomes["abandoned"] / human if human else None

    def agent_counts(self) -> Counter[str]:
        return Counter(row.state for row in self.agents.values())


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def summary_line(f: DemoFigures, elapsed_s: float) -> str:
    """One line for logs: ``t=...s agents ... | lines ... | placed ... | effective ...``."""
    counts = f.agent_counts()
    agents = " ".join(f"{state} {counts[state]}" for state in _STATE_STYLE if counts[state])
    level = f"{f.stats.dial_level:.2f}" if f.stats is not None else "-"
    return (
        f"t={elapsed_s:5.0f}s | agents {agents or '-'} | lines {f.lines_in_use} dial level {level} | "
        f"placed {f.placed} answered {f.answered} (machines {f.outcomes['machine']}) "
        f"abandoned {f.outcomes['abandoned']} ({_pct(f.abandon_rate)}) | effective {len(f.effective)} | "
        f"inbound {len(f.inbound_ids)} connected {f.inbound_connected} | recordings {f.recordings}"
    )


def render(f: DemoFigures, *, now: float, elapsed_s: float, remaining_s: float, title: str) -> Group:
    """The live view: agents by state, the campaign's pacing figures, outcomes and inbound calls."""
    agents = Table(title="Agents (nailed softphones)", expand=False)
    for col in ("agent", "name", "state", "for", "calls"):
        agents.add_column(col)
    for row in f.agents.values():
        style = _STATE_STYLE.get(row.state, "")
        since = f"{max(0.0, now - row.since):.0f}s" if row.since else "-"
        agents.add_row(row.agent_id, row.name, Text(row.state, style=style), since, str(row.calls))

    s = f.stats
    campaign = Table(title="Predictive campaign", show_header=False, expand=False)
    campaign.add_column("figure")
    campaign.add_column("value", justify="right")
    rows: list[tuple[str, str | Text]] = [
        ("pacing", f"{s.mode} ({s.status})" if s is not None else "-"),
        ("dial level (lines per agent)", f"{s.dial_level:.2f}" if s is not None else "-"),
        ("lines in use / max", f"{f.lines_in_use} / {s.max_lines}" if s is not None else "-"),
        ("agents available", str(s.agents_available) if s is not None else "-"),
        ("calls placed", str(f.placed)),
        ("answered (person / machine)", f"{f.answered} ({f.human_answered} / {f.outcomes['machine']})"),
        ("busy / no answer / other", f"{f.outcomes['busy']} / {f.outcomes['no_answer']} / {_others(f)}"),
        ("abandoned (of people answering)", f"{f.outcomes['abandoned']} ({_pct(f.abandon_rate)})"),
        ("abandon rate today (campaign)", _pct(s.abandon_rate_24h) if s is not None else "-"),
        ("dispositions keyed", str(f.dispositions)),
        ("effective calls", Text(str(len(f.effective)), style="bold green")),
        (
            "inbound calls (connected / abandoned)",
            f"{len(f.inbound_ids)} ({f.inbound_connected} / {f.inbound_abandoned})",
        ),
        ("recordings", str(f.recordings)),
    ]
    for name, value in rows:
        campaign.add_row(name, value)
    counts = f.agent_counts()
    header = Text.assemble(
        (title, "bold"),
        f"   {elapsed_s:.0f}s elapsed, {max(0.0, remaining_s):.0f}s left   ",
        " ".join(f"{state}: {counts[state]}" for state in _STATE_STYLE if counts[state]),
    )
    return Group(header, agents, campaign, Text("Ctrl-C ends the run (twice: at once)", style="dim"))


def _others(f: DemoFigures) -> int:
    known = {"completed", "abandoned", "machine", "busy", "no_answer"}
    return sum(n for outcome, n in f.outcomes.items() if outcome not in known)
