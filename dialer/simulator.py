"""Discrete-event simulation of an outbound campaign on a virtual clock.

Agents, lines, ring time, answer probability, lognormal handle time, wrap-up and the 2-second
abandon rule are simulated with a heap of timed events. At every event (and on a 1 s tick)
the simulator builds the same :class:`~dialer.pacing.PacingSnapshot` the live runner builds
and asks the same :class:`~dialer.pacing.PacingModel` how many lines to dial; every human
answer is accounted in the same :class:`~dialer.abandon.AbandonLedger`. The pacing model only
sees what a live system sees: estimators learn answer probability, ring time and handle time
from the simulated calls (optionally warmed from history rows), never the hidden parameters.
Simulated leads carry a list and a callee time zone (``SimulationParams.lead_mix``), so answers
are learned, and read back, per list and per hour of the callee's day, as the runner does.

Common random numbers: the i-th dialled line and the i-th connected call draw from the same
random streams under every algorithm, so algorithms are compared on the same customers.
Deterministic for a seed.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

from dialer.abandon import ABANDON_GRACE_S, AbandonLedger
from dialer.pacing import (
    AnswerStats,
    DurationStats,
    Lognormal,
    PacingModel,
    PacingSnapshot,
    make_pacing,
)

__all__ = [
    "ALGORITHMS",
    "PacingEstimators",
    "SimulationParams",
    "SimulationResult",
    "compare",
    "fit_from_history",
    "simulate",
]

ALGORITHMS = ("progressive", "power", "vicidial_adapt", "predictive")
SIM_START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday morning; only the clock's shape matters


@dataclass(frozen=True)
class SimulationParams:
    """The hidden truth of a simulated campaign (the pacing model never reads it)."""

    agents: int = 20
    answer_prob: float = 0.3
    ring_mean_s: float = 8.0
    ring_sigma: float = 0.6
    #: empirical ring-to-answer times (seconds) to draw from instead of the lognormal
    ring_samples: tuple[float, ...] = ()
    ring_timeout_s: float = 25.0
    talk_mean_s: float = 120.0
    talk_sigma: float = 0.8
    wrapup_s: float = 10.0
    hours: float = 8.0
    max_lines: int = 200
    target_abandon_rate: float = 0.03
    tick_s: float = 1.0
    #: who is dialled: (list id, callee's IANA zone) per lead, cycled line by line; answer rates
    #: are learned, and read by the pacing model, per list and per hour of the callee's day
    lead_mix: tuple[tuple[int | None, str], ...] = ((None, "UTC"),)

    def __post_init__(self) -> None:
        problems = []
        if not self.lead_mix:
            problems.append("lead_mix needs at least one (list id, zone) entry")
        for _list_id, zone_name in self.lead_mix:
            try:
                ZoneInfo(zone_name)
            except (ZoneInfoNotFoundError, ValueError):
                problems.append(f"lead_mix zone {zone_name!r} is not an IANA time zone")
        if self.agents < 1:
            problems.append("agents must be at least 1")
        if not 0.0 < self.answer_prob <= 1.0:
            problems.append("answer_prob must be in (0, 1]")
        if self.ring_mean_s <= 0 or self.talk_mean_s <= 0 or self.hours <= 0:
            problems.append("ring mean, talk mean and hours must be positive")
        if self.ring_mean_s >= self.ring_timeout_s:
            problems.append("ring mean must be shorter than the ring timeout")
        if self.ring_timeout_s < 15:
            problems.append("ring timeout must be at least 15 s (unanswered calls ring at least 15 s)")
        if self.wrapup_s < 0:
            problems.append("wrap-up cannot be negative")
        if problems:
            raise ValueError("invalid simulation parameters: " + "; ".join(problems))


def fit_from_history(rows: Iterable[Mapping[str, Any]], **overrides: Any) -> SimulationParams:
    """Simulation parameters fitted from CDR-like rows.

    Each row needs ``answered`` (bool, human answer) and ``ring_seconds``; answered rows with
    ``talk_seconds`` > 0 give the handle time; optional ``wrapup_seconds``; an optional
    ``outcome`` keeps busy and failed calls out of the ring-timeout estimate. The answer
    probability is the answered share, ring times are resampled empirically, talk time is a
    lognormal fit. ``overrides`` (e.g. agents=30, hours=4) replace fitted or default fields.
    """
    answered = 0
    total = 0
    rings: list[float] = []
    unanswered_rings: list[float] = []
    talks: list[float] = []
    wraps: list[float] = []
    for i, row in enumerate(rows):
        try:
            is_answered = bool(row["answered"])
            ring = float(row["ring_seconds"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f"history row {i} needs 'answered' (true/false) and 'ring_seconds' (number): {dict(row)!r}"
            ) from exc
        total += 1
        if is_answered:
            answered += 1
            rings.append(ring)
            talk = row.get("talk_seconds")
            if talk not in (None, "") and float(talk) > 0:
                talks.append(float(talk))
        elif row.get("outcome", "no_answer") == "no_answer":
            # How long unanswered calls rang (busy and failed calls end before the timeout).
            unanswered_rings.append(ring)
        wrap = row.get("wrapup_seconds")
        if wrap not in (None, ""):
            wraps.append(float(wrap))
    if total < 10 or answered < 2 or len(talks) < 2:
        raise ValueError(
            f"history has {total} rows, {answered} answered and {len(talks)} with talk time; "
            "fitting needs at least 10 rows, 2 answered and 2 talk times"
        )
    talk_fit = Lognormal.fit(talks)
    fitted: dict[str, Any] = {
        "answer_prob": answered / total,
        "ring_samples": tuple(rings),
        "ring_mean_s": float(np.mean(rings)),
        "talk_mean_s": talk_fit.mean,
        "talk_sigma": talk_fit.sigma,
    }
    if unanswered_rings:
        fitted["ring_timeout_s"] = max(15.0, float(np.percentile(unanswered_rings, 90)))
    if wraps:
        fitted["wrapup_s"] = float(np.mean(wraps))
    fitted.update(overrides)
    return SimulationParams(**fitted)


class PacingEstimators:
    """What the live system knows: answer probability, ring-time and handle-time estimates.

    Starts from generic priors (answer 25%, ring 10 s, talk 180 s) unless warmed with history
    rows, and learns from every finished attempt, exactly as the live runner will.
    """

    def __init__(self) -> None:
        self.answers = AnswerStats(prior_p=0.25, prior_weight=20.0)
        self.ring = DurationStats(Lognormal.from_mean(10.0, 0.6), prior_weight=20.0, kind="empirical")
        self.handle = DurationStats(Lognormal.from_mean(180.0, 0.9), prior_weight=20.0, kind="lognormal")

    @classmethod
    def from_history(cls, rows: Iterable[Mapping[str, Any]], list_id: Any = None) -> PacingEstimators:
        """Warmed with history rows; a row's ``list_id`` and ``local_hour`` (the callee's hour of
        day) key its answer (``list_id`` is the default for rows without one)."""
        est = cls()
        for row in rows:
            hour = row.get("local_hour")
            est.observe_attempt(
                bool(row["answered"]),
                float(row["ring_seconds"]),
                row.get("list_id", list_id),
                int(hour) if hour not in (None, "") else None,
            )
            talk = row.get("talk_seconds")
            if row["answered"] and talk not in (None, "") and float(talk) > 0:
                est.handle.record(float(talk))
        return est

    def observe_attempt(
        self, answered: bool, ring_s: float, list_id: Any = None, local_hour: int | None = None
    ) -> None:
        self.answers.record(answered, list_id, local_hour)
        if answered:
            self.ring.record(ring_s)


@dataclass
class SimulationResult:
    algorithm: str
    seed: int
    occupancy: float
    talk_share: float
    abandon_rate: float
    abandoned: int
    answered_human: int
    mean_wait_s: float
    calls_per_agent_hour: float
    dial_attempts: int
    connected: int
    ledger_abandon_rate: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# event kinds, in the order they are handled at equal times: agents free up before answers
# are routed, and a waiting call is checked for abandonment only after both.
_WRAP_END, _TALK_END, _ANSWER, _NO_ANSWER, _ABANDON_CHECK, _TICK = range(6)
#: leads ahead in the dial order whose answer probabilities are averaged (the runner's due sample)
_DUE_SAMPLE = 50


class _Run:
    def __init__(
        self,
        params: SimulationParams,
        model: PacingModel,
        seed: int,
        estimators: PacingEstimators,
        ledger: AbandonLedger,
    ) -> None:
        self.p = params
        self.model = model
        self.est = estimators
        self.ledger = ledger
        self.line_rng = random.Random(f"lines-{seed}")
        self.talk_rng = random.Random(f"talk-{seed}")
        self.events: list[tuple[float, int, int, int]] = []
        self.seq = 0
        self.now = 0.0
        self.end = params.hours * 3600.0
        n = params.agents
        self.ready: deque[int] = deque(range(n))
        self.talk_start: dict[int, float] = {}
        self.wrap_end: dict[int, float] = {}
        self.agent_call: dict[int, int] = {}
        self.ringing: dict[int, float] = {}  # line -> dial time
        self.waiting: deque[tuple[int, float]] = deque()  # (line, answered at)
        self.waiting_ids: set[int] = set()
        self.next_line = 0
        self.busy_time = 0.0
        self.talk_time = 0.0
        self.dials = 0
        self.answered = 0
        self.abandoned = 0
        self.connected = 0
        self.wait_total = 0.0
        ring_mu = math.log(params.ring_mean_s) - params.ring_sigma**2 / 2
        self.ring_draw: Callable[[], float]
        if params.ring_samples:
            samples = [r for r in params.ring_samples if r < params.ring_timeout_s]
            self.ring_draw = lambda: self.line_rng.choice(samples)
        else:

            def draw() -> float:
                # Answered calls answer before the timeout: redraw the rare long tail.
                while True:
                    r = self.line_rng.lognormvariate(ring_mu, params.ring_sigma)
                    if r < params.ring_timeout_s - 0.5:
                        return r

            self.ring_draw = draw
        self.talk_mu = math.log(params.talk_mean_s) - params.talk_sigma**2 / 2
        self.mix = params.lead_mix
        self.zones = {name: ZoneInfo(name) for _, name in self.mix}

    def push(self, at: float, kind: int, ident: int) -> None:
        self.seq += 1
        heapq.heappush(self.events, (at, kind, self.seq, ident))

    def clock(self, t: float) -> datetime:
        return SIM_START + timedelta(seconds=t)

    def _busy(self, start: float, stop: float) -> float:
        return max(0.0, min(stop, self.end) - min(start, self.end))

    def lead_of(self, line: int) -> tuple[int | None, str]:
        return self.mix[line % len(self.mix)]

    def callee_hour(self, line: int, t: float) -> int:
        return self.clock(t).astimezone(self.zones[self.lead_of(line)[1]]).hour

    def answer_probability(self, at: datetime) -> float:
        """As the live runner does: the mean answer probability of the next leads to be dialled,
        each at its list and its callee's local hour now."""
        mix = self.mix
        if len(mix) == 1:
            list_id, name = mix[0]
            return self.est.answers.probability(list_id, at.astimezone(self.zones[name]).hour)
        k = min(len(mix), _DUE_SAMPLE)
        total = 0.0
        for i in range(self.next_line, self.next_line + k):
            list_id, name = mix[i % len(mix)]
            total += self.est.answers.probability(list_id, at.astimezone(self.zones[name]).hour)
        return total / k

    # -- the pacing decision, built exactly like the live runner does -------------------------
    def snapshot(self) -> PacingSnapshot:
        now = self.now
        at = self.clock(now)
        today = self.ledger.counts_today(at)
        roll = self.ledger.counts_30d(at)
        return PacingSnapshot(
            agents_ready=len(self.ready),
            talk_so_far_s=tuple(now - s for s in self.talk_start.values()),
            wrapup_remaining_s=tuple(max(0.0, e - now) for e in self.wrap_end.values()),
            ringing_s=tuple(now - d for d in self.ringing.values()),
            answer_probability=self.answer_probability(at),
            ring_time=self.est.ring.distribution(),
            handle_time=self.est.handle.distribution(),
            wrapup_s=self.p.wrapup_s,
            calls_waiting=len(self.waiting),
            abandon_rate_today=today.rate,
            abandon_rate_30d=roll.rate,
            answered_today=today.answered_human,
            answered_30d=roll.answered_human,
            target_abandon_rate=self.p.target_abandon_rate,
            max_lines=self.p.max_lines,
            ring_timeout_s=self.p.ring_timeout_s,
        )

    def decide(self) -> None:
        if self.now >= self.end:
            return
        n = self.model.lines_to_dial(self.snapshot(), self.clock(self.now))
        for _ in range(n):
            self.dial()

    def dial(self) -> None:
        line = self.next_line
        self.next_line += 1
        self.dials += 1
        self.ringing[line] = self.now
        # Draw in a fixed order per line so every algorithm meets the same customers.
        answers = self.line_rng.random() < self.p.answer_prob
        ring = self.ring_draw()
        if answers:
            self.push(self.now + ring, _ANSWER, line)
        else:
            self.push(self.now + self.p.ring_timeout_s, _NO_ANSWER, line)

    def connect(self, agent: int, line: int, answered_at: float) -> None:
        self.connected += 1
        self.wait_total += self.now - answered_at
        self.ledger.record(self.clock(answered_at), abandoned=False)
        self.talk_start[agent] = self.now
        self.agent_call[agent] = line
        talk = self.talk_rng.lognormvariate(self.talk_mu, self.p.talk_sigma)
        self.push(self.now + talk, _TALK_END, agent)

    def handle(self, kind: int, ident: int) -> None:
        now = self.now
        if kind == _ANSWER:
            dialled = self.ringing.pop(ident)
            self.answered += 1
            self.est.observe_attempt(True, now - dialled, self.lead_of(ident)[0], self.callee_hour(ident, dialled))
            if self.ready:
                self.connect(self.ready.popleft(), ident, now)
            else:
                self.waiting.append((ident, now))
                self.waiting_ids.add(ident)
                self.push(now + ABANDON_GRACE_S, _ABANDON_CHECK, ident)
        elif kind == _NO_ANSWER:
            dialled = self.ringing.pop(ident)
            self.est.observe_attempt(False, now - dialled, self.lead_of(ident)[0], self.callee_hour(ident, dialled))
        elif kind == _TALK_END:
            start = self.talk_start.pop(ident)
            self.agent_call.pop(ident)
            self.busy_time += self._busy(start, now)
            self.talk_time += self._busy(start, now)
            self.est.handle.record(now - start)
            self.wrap_end[ident] = now + self.p.wrapup_s
            self.push(now + self.p.wrapup_s, _WRAP_END, ident)
        elif kind == _WRAP_END:
            end = self.wrap_end.pop(ident)
            self.busy_time += self._busy(end - self.p.wrapup_s, now)
            if self.waiting:
                line, answered_at = self.waiting.popleft()
                self.waiting_ids.discard(line)
                self.connect(ident, line, answered_at)
            else:
                self.ready.append(ident)
        elif kind == _ABANDON_CHECK:
            if ident in self.waiting_ids:
                self.waiting_ids.discard(ident)
                answered_at = next(a for ln, a in self.waiting if ln == ident)
                self.waiting = deque((ln, a) for ln, a in self.waiting if ln != ident)
                self.abandoned += 1
                self.ledger.record(self.clock(answered_at), abandoned=True)
        elif kind == _TICK and now + self.p.tick_s < self.end:
            self.push(now + self.p.tick_s, _TICK, 0)

    def run(self) -> None:
        self.push(0.0, _TICK, 0)
        events = self.events
        while events:
            at, kind, _, ident = heapq.heappop(events)
            self.now = at
            self.handle(kind, ident)
            # One decision per instant, after every event at that instant is handled.
            if not events or events[0][0] > at:
                self.decide()
        # Agents still busy when the heap drains cannot exist: every talk and wrap has an end event.


def simulate(
    params: SimulationParams,
    model: PacingModel | str,
    seed: int = 0,
    estimators: PacingEstimators | None = None,
    ledger: AbandonLedger | None = None,
) -> SimulationResult:
    """Run one campaign day for ``params.hours`` with ``model``; deterministic for ``seed``."""
    pacing = make_pacing(model) if isinstance(model, str) else model
    ledger = ledger if ledger is not None else AbandonLedger(target=params.target_abandon_rate)
    run = _Run(params, pacing, seed, estimators or PacingEstimators(), ledger)
    run.run()
    hours = params.hours
    staffed = params.agents * hours * 3600.0
    end_at = run.clock(run.end)
    return SimulationResult(
        algorithm=pacing.name,
        seed=seed,
        occupancy=run.busy_time / staffed,
        talk_share=run.talk_time / staffed,
        abandon_rate=run.abandoned / run.answered if run.answered else 0.0,
        abandoned=run.abandoned,
        answered_human=run.answered,
        mean_wait_s=run.wait_total / run.connected if run.connected else 0.0,
        calls_per_agent_hour=run.connected / (params.agents * hours),
        dial_attempts=run.dials,
        connected=run.connected,
        ledger_abandon_rate=ledger.rate_today(end_at),
    )


def compare(
    params: SimulationParams,
    algorithms: Sequence[str] = ALGORITHMS,
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    model_options: Mapping[str, Mapping[str, float]] | None = None,
    history: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Run every algorithm on every seed; per algorithm the mean figures, the pooled abandon rate
    and the worst seed's rate. ``history`` rows warm the estimators as a live system's history would."""
    out: dict[str, dict[str, Any]] = {}
    for name in algorithms:
        results = []
        for seed in seeds:
            model = make_pacing(name, **dict((model_options or {}).get(name, {})))
            est = PacingEstimators.from_history(history) if history else PacingEstimators()
            results.append(simulate(params, model, seed, est))
        answered = sum(r.answered_human for r in results)
        abandoned = sum(r.abandoned for r in results)
        out[name] = {
            "occupancy": float(np.mean([r.occupancy for r in results])),
            "talk_share": float(np.mean([r.talk_share for r in results])),
            "abandon_rate": abandoned / answered if answered else 0.0,
            "abandon_rate_max_seed": max(r.abandon_rate for r in results),
            "mean_wait_s": float(np.mean([r.mean_wait_s for r in results])),
            "calls_per_agent_hour": float(np.mean([r.calls_per_agent_hour for r in results])),
            "dial_attempts": float(np.mean([r.dial_attempts for r in results])),
            "answered_human": float(np.mean([r.answered_human for r in results])),
            "seeds": len(results),
        }
    return out
