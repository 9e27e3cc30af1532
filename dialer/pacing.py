"""Outbound pacing: how many new lines to dial now, from live statistics, under an abandon cap.

One interface, :class:`PacingModel` ``.lines_to_dial(snapshot, now) -> int``, with five
implementations: preview (the agent dials), progressive (one line per idle agent), power (a
fixed ratio of lines per idle agent), predictive (ours, below) and the VICIdial
``ADAPT_AVERAGE`` feedback baseline. The live campaign runner and ``dialer simulate`` build the
same :class:`PacingSnapshot` and call the same objects; nothing here reads a clock.

Predictive, in short: for every second of the next ring-timeout horizon it estimates how
many calls will have been answered (each ringing line's answer probability given how long it
has rung already, plus the new lines) and how many agents will be free (ready agents, wrap-up
agents by their remaining time, talking agents by the conditional survival of the handle-time
distribution given their talk time so far, plus the 2 s grace). A call answering in a given
second is abandoned when the calls answered before it already take every agent free by then;
summing that probability over the horizon gives the expected abandons of everything in
flight. New lines are admitted one by one while the abandons each one adds (its own and those
it causes) stay under target x (1 - margin) per expected answer, so every dialled call passes
the test once, at dial time. It dials less as the measured rate (today, 30 days) nears the
cap and falls back to progressive, with hysteresis, once the cap is exceeded.

Instants are aware UTC datetimes; durations are float seconds. Estimators learn only from
what the live system observes (answers, ring times, talk times).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections import defaultdict, deque
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import numpy as np
import numpy.typing as npt

from dialer.abandon import ABANDON_GRACE_S

__all__ = [
    "AbandonGuard",
    "AnswerStats",
    "Distribution",
    "DurationStats",
    "Empirical",
    "Lognormal",
    "PacingModel",
    "PacingSnapshot",
    "PowerPacing",
    "PredictivePacing",
    "PreviewPacing",
    "ProgressivePacing",
    "VicidialAdaptPacing",
    "make_pacing",
]

FloatArray = npt.NDArray[np.float64]


# -- distributions --------------------------------------------------------------------------
def _erf(x: FloatArray) -> FloatArray:
    """Vectorised erf (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7); numpy has none and scipy is not a dependency."""
    sign = np.sign(x)
    ax = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * ax)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return np.asarray(sign * (1.0 - poly * np.exp(-ax * ax)), dtype=np.float64)


def _norm_cdf(z: FloatArray) -> FloatArray:
    return np.asarray(0.5 * (1.0 + _erf(z / math.sqrt(2.0))), dtype=np.float64)


class Distribution(Protocol):
    """A non-negative duration distribution in seconds, evaluated on arrays."""

    @property
    def mean(self) -> float: ...

    def cdf(self, x: FloatArray) -> FloatArray: ...


@dataclass(frozen=True, slots=True)
class Lognormal:
    """Lognormal with log-mean ``mu`` and log-sd ``sigma`` (handle times are close to lognormal)."""

    mu: float
    sigma: float

    def __post_init__(self) -> None:
        if not self.sigma > 0:
            raise ValueError(f"lognormal sigma must be positive, got {self.sigma!r}")

    @classmethod
    def from_mean(cls, mean: float, sigma: float = 0.8) -> Lognormal:
        """The lognormal with arithmetic mean ``mean`` and log-sd ``sigma``."""
        if not mean > 0:
            raise ValueError(f"a duration mean must be positive seconds, got {mean!r}")
        return cls(math.log(mean) - sigma * sigma / 2.0, sigma)

    @classmethod
    def fit(cls, samples: Iterable[float]) -> Lognormal:
        """Maximum-likelihood fit to positive samples (at least 2)."""
        logs = np.log(np.asarray([s for s in samples if s > 0], dtype=np.float64))
        if logs.size < 2:
            raise ValueError("fitting a lognormal needs at least two positive durations")
        return cls(float(logs.mean()), max(float(logs.std()), 1e-3))

    @property
    def mean(self) -> float:
        return math.exp(self.mu + self.sigma * self.sigma / 2.0)

    def cdf(self, x: FloatArray) -> FloatArray:
        x = np.asarray(x, dtype=np.float64)
        z = (np.log(np.maximum(x, 1e-12)) - self.mu) / self.sigma
        return np.where(x > 0, _norm_cdf(z), 0.0)


@dataclass(frozen=True)
class Empirical:
    """The empirical distribution of observed durations, optionally blended with a prior.

    ``cdf = (n * F_samples + prior_weight * F_prior) / (n + prior_weight)``: a Bayesian-style
    mixture, so a handful of samples does not make the pacing overconfident.
    """

    samples: FloatArray
    prior: Distribution | None = None
    prior_weight: float = 0.0

    @classmethod
    def of(cls, samples: Iterable[float], prior: Distribution | None = None, prior_weight: float = 0.0) -> Empirical:
        arr = np.sort(np.asarray(list(samples), dtype=np.float64))
        if arr.size == 0 and (prior is None or prior_weight <= 0):
            raise ValueError("an empirical distribution needs samples or a prior")
        return cls(arr, prior, prior_weight if prior is not None else 0.0)

    @property
    def mean(self) -> float:
        n = self.samples.size
        m = float(self.samples.mean()) if n else 0.0
        if self.prior is None or self.prior_weight <= 0:
            return m
        return (n * m + self.prior_weight * self.prior.mean) / (n + self.prior_weight)

    def cdf(self, x: FloatArray) -> FloatArray:
        x = np.asarray(x, dtype=np.float64)
        n = self.samples.size
        emp = np.searchsorted(self.samples, x, side="right") / n if n else np.zeros_like(x)
        if self.prior is None or self.prior_weight <= 0:
            return np.asarray(emp, dtype=np.float64)
        w = self.prior_weight
        return np.asarray((n * emp + w * self.prior.cdf(x)) / (n + w), dtype=np.float64)


# -- estimators --------------------------------------------------------------------------------
class AnswerStats:
    """Answer probability per list and per hour of the callee's local day, learned from outcomes.

    Three levels of exponentially weighted Beta-Binomial counts: campaign-wide, per list, per
    (list, local hour). Each level's estimate shrinks toward the level above with
    ``prior_weight`` pseudo-attempts, so a new hour starts at its list's rate, a new list at
    the campaign's, and the campaign at ``prior_p``. ``half_life`` (in attempts per key) lets
    the estimate follow a drifting rate.
    """

    def __init__(self, prior_p: float = 0.25, prior_weight: float = 20.0, half_life: float = 2000.0) -> None:
        if not 0.0 < prior_p < 1.0:
            raise ValueError(f"prior answer probability {prior_p!r} must be between 0 and 1")
        if prior_weight <= 0 or half_life <= 0:
            raise ValueError("prior_weight and half_life must be positive")
        self.prior_p = prior_p
        self.prior_weight = prior_weight
        self._decay = 0.5 ** (1.0 / half_life)
        self._counts: dict[Hashable, list[float]] = defaultdict(lambda: [0.0, 0.0])

    def _bump(self, key: Hashable, answered: bool) -> None:
        c = self._counts[key]
        c[0] = c[0] * self._decay + (1.0 if answered else 0.0)
        c[1] = c[1] * self._decay + 1.0

    def record(self, answered: bool, list_id: Hashable = None, local_hour: int | None = None) -> None:
        """One finished attempt: ``answered`` by a person (machines and failures are not answers)."""
        self._bump(("*",), answered)
        self._bump(("list", list_id), answered)
        if local_hour is not None:
            self._bump(("hour", list_id, local_hour), answered)

    def _shrink(self, key: Hashable, toward: float) -> float:
        a, n = self._counts.get(key, (0.0, 0.0))
        return (a + self.prior_weight * toward) / (n + self.prior_weight)

    def probability(self, list_id: Hashable = None, local_hour: int | None = None) -> float:
        p = self._shrink(("*",), self.prior_p)
        p = self._shrink(("list", list_id), p)
        if local_hour is not None:
            p = self._shrink(("hour", list_id, local_hour), p)
        return p

    def attempts(self, list_id: Hashable = None) -> float:
        """Weighted number of attempts seen for a list (for reports)."""
        return self._counts.get(("list", list_id), (0.0, 0.0))[1]


class DurationStats:
    """A sliding window of observed durations (ring-to-answer or talk time) and its distribution.

    ``kind='empirical'`` blends the samples with the prior; ``kind='lognormal'`` fits a lognormal
    whose log-mean and log-variance are pooled with the prior's as ``prior_weight`` pseudo-samples.
    """

    def __init__(
        self, prior: Lognormal, prior_weight: float = 20.0, window: int = 2000, kind: str = "empirical"
    ) -> None:
        if kind not in ("empirical", "lognormal"):
            raise ValueError(f"duration model kind must be 'empirical' or 'lognormal', got {kind!r}")
        self.prior = prior
        self.prior_weight = prior_weight
        self.kind = kind
        self._samples: deque[float] = deque(maxlen=window)
        self._cached: Distribution | None = None
        self._since = 0

    def record(self, seconds: float) -> None:
        if seconds < 0 or math.isnan(seconds):
            raise ValueError(f"a duration must be non-negative seconds, got {seconds!r}")
        self._samples.append(max(seconds, 0.05))
        self._since += 1

    def __len__(self) -> int:
        return len(self._samples)

    def distribution(self) -> Distribution:
        """The current estimate; recomputed at most every few samples so pacing stays cheap."""
        if self._cached is not None and self._since < max(1, len(self._samples) // 50):
            return self._cached
        self._since = 0
        if self.kind == "empirical":
            self._cached = Empirical.of(self._samples, self.prior, self.prior_weight)
        else:
            logs = np.log(np.asarray(self._samples, dtype=np.float64))
            n, w = logs.size, self.prior_weight
            mu = (float(logs.sum()) + w * self.prior.mu) / (n + w)
            ss = float(((logs - mu) ** 2).sum()) if n else 0.0
            var = (ss + w * (self.prior.sigma**2 + (self.prior.mu - mu) ** 2)) / (n + w)
            self._cached = Lognormal(mu, max(math.sqrt(var), 1e-3))
        return self._cached


# -- the snapshot --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PacingSnapshot:
    """Live statistics of one campaign at one instant; everything a pacing model may look at.

    Durations are seconds. ``ring_time`` is the distribution of ring-to-answer time of
    answered calls; ``handle_time`` that of talk time (wrap-up is ``wrapup_s``).
    """

    agents_ready: int
    talk_so_far_s: tuple[float, ...]
    wrapup_remaining_s: tuple[float, ...]
    ringing_s: tuple[float, ...]
    answer_probability: float
    ring_time: Distribution
    handle_time: Distribution
    wrapup_s: float = 10.0
    calls_waiting: int = 0
    abandon_rate_today: float = 0.0
    abandon_rate_30d: float = 0.0
    answered_today: int = 0
    answered_30d: int = 0
    target_abandon_rate: float = 0.03
    max_lines: int = 100
    ring_timeout_s: float = 25.0

    def __post_init__(self) -> None:
        if self.agents_ready < 0 or self.calls_waiting < 0 or self.max_lines < 0:
            raise ValueError("agent, waiting-call and line counts cannot be negative")
        if not 0.0 <= self.answer_probability <= 1.0:
            raise ValueError(f"answer_probability {self.answer_probability!r} must be between 0 and 1")
        if not 0.0 < self.target_abandon_rate < 1.0:
            raise ValueError(f"target_abandon_rate {self.target_abandon_rate!r} must be a fraction, e.g. 0.03")

    @property
    def agents_on_call(self) -> int:
        return len(self.talk_so_far_s)

    @property
    def agents_in_wrapup(self) -> int:
        return len(self.wrapup_remaining_s)

    @property
    def agents_logged_in(self) -> int:
        return self.agents_ready + self.agents_on_call + self.agents_in_wrapup

    @property
    def lines_in_use(self) -> int:
        """Trunk lines busy now: ringing, answered-and-waiting, and bridged to agents."""
        return len(self.ringing_s) + self.calls_waiting + self.agents_on_call

    @property
    def free_lines(self) -> int:
        return max(0, self.max_lines - self.lines_in_use)

    @property
    def measured_abandon_rate(self) -> float:
        return max(self.abandon_rate_today, self.abandon_rate_30d)


# -- models ----------------------------------------------------------------------------------------
class PacingModel(ABC):
    """Decides how many new lines to dial; may keep state between calls (it sees ``now``)."""

    name: str = "pacing"

    @abstractmethod
    def lines_to_dial(self, snapshot: PacingSnapshot, now: datetime) -> int:
        """Number of new lines to start at ``now`` (>= 0, within the campaign's free lines)."""


class PreviewPacing(PacingModel):
    """Preview: the agent sees the lead and starts the call, so the dialer itself dials nothing."""

    name = "preview"

    def lines_to_dial(self, snapshot: PacingSnapshot, now: datetime) -> int:
        return 0


def _progressive(s: PacingSnapshot) -> int:
    return max(0, min(s.agents_ready - s.calls_waiting - len(s.ringing_s), s.free_lines))


class ProgressivePacing(PacingModel):
    """Progressive: one line per idle agent, minus lines already ringing; never abandons by design."""

    name = "progressive"

    def lines_to_dial(self, snapshot: PacingSnapshot, now: datetime) -> int:
        return _progressive(snapshot)


@dataclass
class AbandonGuard:
    """Hysteresis on the measured abandon rate (max of today and 30 days), shared by the dialling modes.

    Below ``slow_from`` x target: full speed (scale 1). Between it and the target the scale falls
    linearly to ``min_scale``. Above ``trip_at`` x target the mode falls back to progressive and
    stays there until the rate is back under ``recover_at`` x target. A rate counts only once it
    rests on at least ``min_answered`` human answers in its own window (one early abandon is not a
    trend), so early in the day the rolling 30-day rate (FTC TSR) still governs: a campaign that
    is over its 30-day cap does not get a fresh start every morning.
    """

    slow_from: float = 0.8
    trip_at: float = 1.0
    recover_at: float = 0.85
    min_scale: float = 0.2
    min_answered: int = 20
    tripped: bool = False

    def trusted_rate(self, s: PacingSnapshot) -> float | None:
        """The larger of today's and the 30-day rate among those with enough answers, or None."""
        rates = [
            rate
            for rate, answered in ((s.abandon_rate_today, s.answered_today), (s.abandon_rate_30d, s.answered_30d))
            if answered >= self.min_answered
        ]
        return max(rates) if rates else None

    def scale(self, s: PacingSnapshot) -> float | None:
        """The dial scale in (0, 1], or None when the mode must behave progressively."""
        measured = self.trusted_rate(s)
        if measured is None:
            return None if self.tripped else 1.0
        rate = measured / s.target_abandon_rate
        if self.tripped:
            if rate <= self.recover_at:
                self.tripped = False
            else:
                return None
        if rate >= self.trip_at:
            self.tripped = True
            return None
        if rate <= self.slow_from:
            return 1.0
        frac = (rate - self.slow_from) / (self.trip_at - self.slow_from)
        return max(self.min_scale, 1.0 - frac * (1.0 - self.min_scale))


class PowerPacing(PacingModel):
    """Power: ``ratio`` lines per idle agent (minus lines ringing), e.g. 1.5; progressive when the guard trips."""

    name = "power"

    def __init__(self, ratio: float = 1.5, guard: AbandonGuard | None = None) -> None:
        if not 1.0 <= ratio <= 10.0:
            raise ValueError(f"power ratio {ratio!r} must be between 1 and 10 lines per agent")
        self.ratio = ratio
        self.guard = guard if guard is not None else AbandonGuard()

    def lines_to_dial(self, snapshot: PacingSnapshot, now: datetime) -> int:
        scale = self.guard.scale(snapshot)
        if scale is None:
            return _progressive(snapshot)
        ratio = 1.0 + (self.ratio - 1.0) * scale
        # Rounded half up: ratio 1.5 with one idle agent dials two lines.
        want = math.floor(ratio * (snapshot.agents_ready - snapshot.calls_waiting) + 0.5) - len(snapshot.ringing_s)
        return max(0, min(want, snapshot.free_lines))


@dataclass
class PredictiveDiagnostics:
    """What the last predictive decision was based on (for logs, the wallboard and tests)."""

    lines: int = 0
    expected_answers: float = 0.0
    expected_abandons: float = 0.0
    budget_ratio: float = 0.0
    mode: str = "predictive"


class PredictivePacing(PacingModel):
    """Our predictive model: per-second answers against free agents, with admission line by line.

    ``target_margin`` keeps the planned rate under the target (0.1 plans for 90% of it);
    ``step_s`` is the time resolution of the horizon. See the module docstring.
    """

    name = "predictive"

    def __init__(
        self,
        *,
        target_margin: float = 0.1,
        step_s: float = 1.0,
        grace_s: float = ABANDON_GRACE_S,
        guard: AbandonGuard | None = None,
        max_new_per_decision: int = 60,
    ) -> None:
        if not 0.0 <= target_margin < 1.0:
            raise ValueError(f"target_margin {target_margin!r} must be in [0, 1)")
        if step_s <= 0:
            raise ValueError("step_s must be positive seconds")
        self.target_margin = target_margin
        self.step_s = step_s
        self.grace_s = grace_s
        self.guard = guard if guard is not None else AbandonGuard()
        self.max_new_per_decision = max_new_per_decision
        self.last = PredictiveDiagnostics()

    def lines_to_dial(self, snapshot: PacingSnapshot, now: datetime) -> int:
        s = snapshot
        if s.agents_logged_in == 0 or s.free_lines == 0:
            self.last = PredictiveDiagnostics(0, mode="idle")
            return 0
        scale = self.guard.scale(s)
        if scale is None:
            n = _progressive(s)
            self.last = PredictiveDiagnostics(n, mode="progressive-fallback")
            return n
        budget = s.target_abandon_rate * (1.0 - self.target_margin) * scale
        n, e_ans, e_ab = self._plan(s, budget)
        self.last = PredictiveDiagnostics(n, e_ans, e_ab, budget)
        return n

    def _plan(self, s: PacingSnapshot, budget: float) -> tuple[int, float, float]:
        p = s.answer_probability
        horizon = s.ring_timeout_s + self.step_s
        t = np.arange(self.step_s, horizon + 1e-9, self.step_s)  # (T,)

        # Answers by time t from lines already ringing, conditioned on their ring time so far.
        mean_a = np.full(t.shape, float(s.calls_waiting))
        var_a = np.zeros(t.shape)
        q_inf_sum = float(s.calls_waiting)
        if s.ringing_s:
            r = np.asarray(s.ringing_s, dtype=np.float64)[:, None]
            g_r = s.ring_time.cdf(r)
            alive = (r < s.ring_timeout_s).astype(np.float64)
            den = p * (1.0 - g_r) + (1.0 - p) * alive
            den = np.where(den > 1e-12, den, np.inf)
            q = p * (s.ring_time.cdf(r + t[None, :]) - g_r) / den
            q = np.clip(q, 0.0, 1.0)
            mean_a += q.sum(axis=0)
            var_a += (q * (1.0 - q)).sum(axis=0)
            q_inf_sum += float((p * (1.0 - g_r) / den).sum())

        # Agents free by t + grace: ready now, wrap-up by remaining time, talking by conditional survival.
        free_mean = np.full(t.shape, float(s.agents_ready))
        free_var = np.zeros(t.shape)
        if s.wrapup_remaining_s:
            w = np.asarray(s.wrapup_remaining_s, dtype=np.float64)[:, None]
            free_mean += (w <= t[None, :] + self.grace_s).sum(axis=0)
        if s.talk_so_far_s:
            a = np.asarray(s.talk_so_far_s, dtype=np.float64)[:, None]
            h_a = s.handle_time.cdf(a)
            surv = np.maximum(1.0 - h_a, 1e-12)
            h_end = s.handle_time.cdf(a + np.maximum(t[None, :] + self.grace_s - s.wrapup_s, 0.0))
            f = np.clip((h_end - h_a) / surv, 0.0, 1.0)
            free_mean += f.sum(axis=0)
            free_var += (f * (1.0 - f)).sum(axis=0)

        # New lines: each answers by t with probability p * G(t).
        g_new = p * s.ring_time.cdf(t)
        cap = min(s.free_lines, self.max_new_per_decision)
        # Usually only a few lines are admitted: try a small batch first, widen when all pass.
        size = min(cap, 8)
        while True:
            best, e_ans, e_ab = self._admit(size, p, budget, g_new, mean_a, var_a, free_mean, free_var, q_inf_sum)
            if best < size or size == cap:
                break
            size = min(cap, size * 4)
        # Fewer lines than idle agents can never abandon: dial at least progressively.
        best = max(best, min(_progressive(s), cap))
        e_ans = q_inf_sum + best * p
        return best, e_ans, e_ab

    @staticmethod
    def _admit(
        cap: int,
        p: float,
        budget: float,
        g_new: FloatArray,
        mean_a: FloatArray,
        var_a: FloatArray,
        free_mean: FloatArray,
        free_var: FloatArray,
        q_inf_sum: float,
    ) -> tuple[int, float, float]:
        """Largest admissible batch of at most ``cap`` new lines, and its expected abandons."""
        # Rows: candidate numbers of new lines n = 0..cap; columns: seconds of the horizon.
        n = np.arange(cap + 1, dtype=np.float64)[:, None]
        answers = mean_a[None, :] + n * g_new[None, :]
        answers_var = var_a[None, :] + n * (g_new * (1.0 - g_new))[None, :]
        # A call answering in second j is lost when the calls answered before it already use up
        # every agent free by the end of second j plus the grace: P(A_{j-1} - F_j >= 0), with a
        # continuity-corrected normal approximation of the (Poisson-binomial) difference.
        zeros = np.zeros((cap + 1, 1))
        prev_mean = np.concatenate([zeros, answers[:, :-1]], axis=1) - free_mean[None, :]
        prev_var = np.concatenate([zeros, answers_var[:, :-1]], axis=1) + free_var[None, :]
        blocked = 1.0 - _norm_cdf((-0.5 - prev_mean) / np.sqrt(np.maximum(prev_var, 1e-9)))
        arrivals = np.diff(answers, axis=1, prepend=0.0)
        e_ab = (arrivals * blocked).sum(axis=1)  # expected abandons of all calls in flight, per n
        # Admission: the k-th new line is dialled only if the abandons it adds (its own and the
        # ones it causes) stay under the budget per expected answer. Lines are admitted in
        # order and the first one over budget stops the batch.
        over = np.diff(e_ab) > budget * p
        best = int(np.argmax(over)) if over.any() else cap
        return best, q_inf_sum + best * p, float(e_ab[best])


class VicidialAdaptPacing(PacingModel):
    """The VICIdial ``ADAPT_AVERAGE`` baseline, after ``bin/AST_VDadapt.pl`` (AGPLv2; re-implemented, not copied).

    Every second VICIdial samples ready agents (READY/DONE), waiting calls (answered, no agent
    yet: ``LIVE``) and logged-in agents; it keeps the last 15 samples. Every 15 s::

        differential = avg(ready) - avg(waiting) + dl_diff_target
        pct          = differential / avg(agents) * 100
        new_level    = level × (1 + pct × (1 + intensity) / 100)     clamped to [1, max_level (3)]

    ``intensity`` there is a fraction: VICIdial's ``adaptive_intensity`` setting is a percentage
    (-40..40 in its UI), so this class takes ``intensity`` in VICIdial's percent and uses
    ``intensity / 100`` in the formula. For a negative ``pct`` (more calls waiting than agents
    ready) VICIdial uses ``|intensity/100 - 1|`` instead of ``1 + intensity/100``, so a positive
    intensity speeds up faster and slows down slower; the two agree at intensity 0 and this class
    follows VICIdial. The level halves (``level / 2``, still at least 1) when today's drops /
    answers exceed the drop target; VICIdial applies that rule only once more than 50 calls were
    answered today (``min_answered_for_drop_rule``; 0 applies it from the first answer).
    ADAPT_HARD_LIMIT would set 1.0 instead. The dialer (``AST_VDauto_dial.pl``) then keeps
    ``round(level x active agents) - active calls`` lines up, where active agents are ready or on
    a call (wrap-up/dispo counts as paused) and active calls are ringing, waiting and bridged calls.

    Compared with :class:`PredictivePacing`: this is feedback on what already happened (agents
    idle, calls waiting) averaged over 15 s, blind to answer probability, ring time and when
    busy agents will free up, so it reacts late in both directions; ``bench/pacing.py`` and
    ``dialer simulate`` run both on the same virtual clock.
    """

    name = "vicidial_adapt"

    def __init__(
        self,
        *,
        level: float = 1.0,
        max_level: float = 3.0,
        intensity: float = 0.0,
        dl_diff_target: float = 0.0,
        drop_target: float | None = None,
        average_s: int = 15,
        update_every_s: float = 15.0,
        min_answered_for_drop_rule: int = 50,
    ) -> None:
        if not 1.0 <= level <= max_level:
            raise ValueError(f"dial level {level!r} must be between 1 and max_level {max_level!r}")
        if not -100.0 <= intensity <= 100.0:
            raise ValueError(f"adaptive intensity {intensity!r} must be between -100 and 100 (VICIdial: -40..40)")
        self.level = level
        self.max_level = max_level
        self.intensity = intensity
        self.dl_diff_target = dl_diff_target
        self.drop_target = drop_target
        self.update_every_s = update_every_s
        self.min_answered_for_drop_rule = min_answered_for_drop_rule
        self._samples: deque[tuple[int, int, int]] = deque(maxlen=average_s)
        self._last_sample: float | None = None
        self._last_update: float | None = None
        self.history: list[tuple[float, float]] = []

    def _sample(self, s: PacingSnapshot, t: float) -> None:
        if self._last_sample is None or t - self._last_sample >= 1.0:
            self._samples.append((s.agents_ready, s.calls_waiting, s.agents_logged_in))
            last = self._last_sample
            # Sample on the whole-second grid VICIdial's 1 s loop would have used.
            self._last_sample = t if last is None else last + math.floor(t - last)

    def _update_level(self, s: PacingSnapshot) -> None:
        k = len(self._samples)
        ready = sum(x[0] for x in self._samples) / k
        waiting = sum(x[1] for x in self._samples) / k
        agents = sum(x[2] for x in self._samples) / k
        diff = ready - waiting + self.dl_diff_target
        pct = diff / agents * 100.0 if diff != 0 and agents != 0 else 0.0
        mul = self.intensity / 100.0
        # new_level = level x (1 + pct x (1 + intensity) / 100), VICIdial's |intensity - 1| when pct < 0
        factor = abs(mul - 1.0) if pct < 0 else (1.0 + mul)
        level = min(self.max_level, max(1.0, self.level * (1.0 + pct * factor / 100.0)))
        target = self.drop_target if self.drop_target is not None else s.target_abandon_rate
        if s.answered_today > self.min_answered_for_drop_rule and s.abandon_rate_today > target:
            level /= 2.0
        self.level = max(1.0, level)

    def lines_to_dial(self, snapshot: PacingSnapshot, now: datetime) -> int:
        s = snapshot
        t = now.timestamp()
        self._sample(s, t)
        if self._last_update is None:
            self._last_update = t
        elif t - self._last_update >= self.update_every_s:
            self._update_level(s)
            self._last_update = t
            self.history.append((t, self.level))
        active_agents = s.agents_ready + s.agents_on_call
        goal = round(self.level * active_agents)
        active_calls = len(s.ringing_s) + s.calls_waiting + s.agents_on_call
        return max(0, min(goal - active_calls, s.free_lines))


def make_pacing(name: str, **options: float) -> PacingModel:
    """Build a model by its name: preview, progressive, power, predictive, vicidial_adapt."""
    factories: dict[str, type[PacingModel]] = {
        "preview": PreviewPacing,
        "progressive": ProgressivePacing,
        "power": PowerPacing,
        "predictive": PredictivePacing,
        "vicidial_adapt": VicidialAdaptPacing,
    }
    try:
        factory = factories[name]
    except KeyError:
        raise ValueError(f"unknown pacing algorithm {name!r}; choose one of {', '.join(factories)}") from None
    return factory(**options)
