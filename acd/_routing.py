"""Routing indices: which ready agent a call gets, and where waiting calls stand, without scans.

Per queue, :class:`ReadyIndex` keeps the ready members in one sorted list per skill level (1-10).
Each entry's key is fixed while the agent stays ready, so it is computed once when the agent
becomes ready (``ready_key``): ``(penalty, <strategy key>, member index, agent id)``. A call that
needs level >= L looks at the heads of at most ten lists. Penalty always comes first: a lower
tier is used up before a higher one (Asterisk's penalty), the strategy orders agents within a tier.

Per queue, :class:`WaitingIndex` keeps waiting calls in one sorted list per escalation step, keyed
by ``(arrived - credit, seq)``; an agent with level L is eligible for the steps whose minimum is
<= L, a suffix of the steps because steps only widen. ``order`` holds every entry that occupies a
place in line (waiting, ringing, sticky, callbacks) to answer positions by bisection.

Sizes are small (hundreds), so ``bisect.insort`` on lists beats trees in CPython.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Callable

from acd._config import MAX_SKILL_LEVEL, Strategy

__all__ = ["ReadyIndex", "WaitingIndex", "ready_key"]

ReadyEntry = tuple[float | int | str, ...]
WaitEntry = tuple[float, int, str]  # (arrived - credit, seq, call id)

_POSITIONAL = frozenset({Strategy.ROUND_ROBIN, Strategy.RANDOM, Strategy.RING_ALL, Strategy.TOP_DOWN})


def ready_key(
    strategy: Strategy,
    *,
    penalty: int,
    index: int,
    level: int,
    idle_since: float,
    calls: int,
    talk_s: float,
    agent_id: str,
) -> ReadyEntry:
    """The sort key of a ready agent in one queue; smaller is picked first."""
    if strategy in _POSITIONAL:
        return (penalty, index, agent_id)
    if strategy is Strategy.FEWEST_CALLS:
        return (penalty, calls, idle_since, index, agent_id)
    if strategy is Strategy.LEAST_TALK_TIME:
        return (penalty, talk_s, idle_since, index, agent_id)
    if strategy is Strategy.SKILL_WEIGHTED:
        return (penalty, -level, idle_since, index, agent_id)
    return (penalty, idle_since, index, agent_id)  # longest-idle


class ReadyIndex:
    """The ready members of one queue, by skill level, ordered by the queue's strategy."""

    __slots__ = ("_entries", "_levels", "rng", "rr_last", "strategy")

    def __init__(self, strategy: Strategy, rng: random.Random) -> None:
        self.strategy = strategy
        self.rng = rng
        self._levels: list[list[ReadyEntry]] = [[] for _ in range(MAX_SKILL_LEVEL + 1)]
        self._entries: dict[str, tuple[int, ReadyEntry]] = {}
        #: round-robin memory: (penalty, member index) of the agent offered last
        self.rr_last: tuple[int, int] | None = None

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, agent_id: object) -> bool:
        return agent_id in self._entries

    def add(self, agent_id: str, level: int, key: ReadyEntry) -> None:
        if agent_id in self._entries:
            self.remove(agent_id)
        bisect.insort(self._levels[level], key)
        self._entries[agent_id] = (level, key)

    def remove(self, agent_id: str) -> None:
        item = self._entries.pop(agent_id, None)
        if item is None:
            return
        level, key = item
        lst = self._levels[level]
        del lst[bisect.bisect_left(lst, key)]

    def agents(self) -> list[str]:
        return list(self._entries)

    def pick(self, min_level: int, skip: Callable[[str], bool]) -> list[str]:
        """The agent(s) to offer a call needing ``min_level``; ring-all returns the whole best tier.

        ``skip(agent_id)`` excludes agents who just declined this call.
        """
        levels = self._levels[min_level:]
        heads: list[ReadyEntry] = []
        for lst in levels:
            for e in lst:
                if not skip(str(e[-1])):
                    heads.append(e)
                    break
        if not heads:
            return []
        best = min(heads)
        if self.strategy not in _POSITIONAL or self.strategy is Strategy.TOP_DOWN:
            return [str(best[-1])]
        tier = int(best[0])
        lo_key, hi_key = (tier,), (tier + 1,)
        if self.strategy is Strategy.ROUND_ROBIN:
            after: ReadyEntry | None = None
            if self.rr_last is not None and self.rr_last[0] == tier:
                start = (tier, self.rr_last[1] + 1)
                for lst in levels:
                    i = bisect.bisect_left(lst, start)
                    hi = bisect.bisect_left(lst, hi_key)
                    for e in lst[i:hi]:
                        if not skip(str(e[-1])):
                            if after is None or e < after:
                                after = e
                            break
            chosen = after if after is not None else best  # wrap around to the tier's first
            self.rr_last = (tier, int(chosen[1]))
            return [str(chosen[-1])]
        tier_agents: list[str] = []
        spans: list[tuple[list[ReadyEntry], int, int]] = []
        for lst in levels:
            lo, hi = bisect.bisect_left(lst, lo_key), bisect.bisect_left(lst, hi_key)
            if hi > lo:
                spans.append((lst, lo, hi))
        if self.strategy is Strategy.RANDOM:
            total = sum(hi - lo for _, lo, hi in spans)
            for _ in range(8):  # skipped agents are rare; a few draws avoid building the list
                r = self.rng.randrange(total)
                for lst, lo, hi in spans:
                    if r < hi - lo:
                        candidate = str(lst[lo + r][-1])
                        break
                    r -= hi - lo
                if not skip(candidate):
                    return [candidate]
        for lst, lo, hi in spans:
            tier_agents.extend(str(e[-1]) for e in lst[lo:hi] if not skip(str(e[-1])))
        if self.strategy is Strategy.RANDOM:
            return [self.rng.choice(tier_agents)]
        return sorted(tier_agents)  # ring-all


class WaitingIndex:
    """Waiting calls of one queue, bucketed by escalation step and ordered by effective arrival."""

    __slots__ = ("_buckets", "_where", "order")

    def __init__(self, steps: int) -> None:
        self._buckets: list[list[WaitEntry]] = [[] for _ in range(steps)]
        self._where: dict[str, tuple[int, WaitEntry]] = {}
        self.order: list[tuple[float, int]] = []

    # -- places in line (every entry that holds one) --------------------------------------------
    def hold_place(self, key: tuple[float, int]) -> int:
        bisect.insort(self.order, key)
        return bisect.bisect_left(self.order, key) + 1

    def release_place(self, key: tuple[float, int]) -> None:
        i = bisect.bisect_left(self.order, key)
        if i < len(self.order) and self.order[i] == key:
            del self.order[i]

    def position(self, key: tuple[float, int]) -> int:
        return bisect.bisect_left(self.order, key) + 1

    # -- routable calls --------------------------------------------------------------------------
    def __contains__(self, call_id: object) -> bool:
        return call_id in self._where

    def __len__(self) -> int:
        return len(self._where)

    def add(self, step: int, entry: WaitEntry) -> None:
        self.remove(entry[2])
        bisect.insort(self._buckets[step], entry)
        self._where[entry[2]] = (step, entry)

    def remove(self, call_id: str) -> None:
        item = self._where.pop(call_id, None)
        if item is None:
            return
        step, entry = item
        bucket = self._buckets[step]
        del bucket[bisect.bisect_left(bucket, entry)]

    def first_for(self, max_step_levels: list[int], level: int, skip: Callable[[str], bool]) -> WaitEntry | None:
        """The earliest entry an agent of ``level`` may take (steps whose min level <= ``level``)."""
        best: WaitEntry | None = None
        for step, min_level in enumerate(max_step_levels):
            if min_level > level:
                continue
            for e in self._buckets[step]:
                if best is not None and e >= best:
                    break
                if not skip(e[2]):
                    best = e
                    break
        return best

    def call_ids(self) -> list[str]:
        return list(self._where)
