"""The campaign's model, fitted from its recent history with priors while the history is thin.

Distributions are kept on a one-second grid. From them the model answers, for the moments at
which a call placed now would typically be passed to an agent (``nodes``), how likely each agent
is to be free by then (talk time so far -> the rest of the talk by the empirical conditional, plus
wrap-up) and how likely each call in flight is to need an agent by then (its state and age ->
the chance it is a live answer and the rest of its ring and detection time).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from crm_core.pacing.records import AgentWork, DialOutcome

RING_GRID = 180
AMD_GRID = 60
TALK_GRID = 1800
WRAP_GRID = 600
NODES = 8
"""Equal-probability points of the time from placing a call to passing it to an agent."""


@dataclass(frozen=True, slots=True)
class Priors:
    """What the pacer assumes before a campaign has history (typical outbound figures); each
    weighs as ``weight`` observations and fades as the campaign's own records arrive."""

    to_agent_share: float = 0.2
    answered_share: float = 0.45
    ring_mean: float = 10.0
    ring_sd: float = 5.0
    other_ring_mean: float = 15.0
    other_ring_sd: float = 8.0
    amd_mean: float = 3.0
    amd_sd: float = 1.5
    talk_mean: float = 150.0
    talk_sd: float = 150.0
    wrap_mean: float = 15.0
    wrap_sd: float = 5.0
    weight: int = 20


@lru_cache(maxsize=64)
def _lognormal_pmf(mean: float, sd: float, size: int) -> tuple[float, ...]:
    """P(round(T) = i) for T lognormal with this mean and sd; the last cell holds the tail."""
    sigma2 = math.log(1 + (sd / mean) ** 2)
    sigma, mu = math.sqrt(sigma2), math.log(mean) - sigma2 / 2

    def cdf(x: float) -> float:
        return 0.0 if x <= 0 else 0.5 * math.erfc(-(math.log(x) - mu) / (sigma * math.sqrt(2)))

    cells = [cdf(i + 0.5) - cdf(i - 0.5) for i in range(size - 1)]
    cells.append(1.0 - cdf(size - 1.5))
    return tuple(cells)


class Distribution:
    """An empirical distribution on whole seconds blended with a lognormal prior."""

    __slots__ = ("cdf", "mean", "pmf", "size")

    def __init__(self, samples: Iterable[float], prior: tuple[float, float, int], size: int) -> None:
        mean, sd, weight = prior
        counts = [0.0] * size
        n = 0
        total = 0.0
        last = size - 1
        for x in samples:
            i = int(x + 0.5) if x > 0 else 0
            counts[i if i < last else last] += 1.0
            total += x
            n += 1
        prior_pmf = _lognormal_pmf(mean, sd, size)
        norm = n + weight
        self.pmf = [(c + weight * p) / norm for c, p in zip(counts, prior_pmf, strict=True)]
        self.mean = (total + weight * mean) / norm
        self.size = size
        acc = 0.0
        cdf = []
        for p in self.pmf:
            acc += p
            cdf.append(acc)
        cdf[-1] = 1.0
        self.cdf = cdf

    def at(self, i: int) -> float:
        """P(T <= i) (whole seconds)."""
        if i < 0:
            return 0.0
        return self.cdf[i] if i < self.size else 1.0


def _convolve(a: Sequence[float], b: Sequence[float], size: int) -> list[float]:
    out = [0.0] * size
    b_cells = [(j, pb) for j, pb in enumerate(b) if pb > 1e-9]
    for i, pa in enumerate(a):
        if pa <= 1e-9 or i >= size:
            continue
        for j, pb in b_cells:
            if i + j < size:
                out[i + j] += pa * pb
    return out


@dataclass(slots=True)
class CampaignModel:
    to_agent_share: float
    """P(a dial is passed to an agent)."""
    to_agent_given_answered: float
    ring: Distribution
    """Ring time of dials passed to agents."""
    other_ring: Distribution
    """Time in dialing/ringing of dials that were not passed to agents."""
    amd: Distribution
    talk: Distribution
    wrap: Distribution
    nodes: tuple[int, ...]
    """Seconds from now at which a call placed now is passed to an agent, equally likely each."""
    new_call: tuple[float, ...]
    """P(a call placed now has been passed to an agent by each node)."""
    later_calls: tuple[float, ...]
    """Answers needing an agent by each node per call a second placed from the next second on."""
    _tables: dict[int, Tables] = field(default_factory=dict)

    @classmethod
    def fit(cls, dials: Iterable[DialOutcome], work: Iterable[AgentWork], priors: Priors) -> CampaignModel:
        w = priors.weight
        n = to_agent = answered = 0
        ring: list[float] = []
        other: list[float] = []
        amd: list[float] = []
        for dial in dials:
            n += 1
            if dial.answered:
                answered += 1
            if dial.to_agent:
                to_agent += 1
                ring.append(dial.ring_seconds)
                if dial.amd_seconds is not None:
                    amd.append(dial.amd_seconds)
            else:
                other.append(dial.ring_seconds)
        talk = [item.talk_seconds for item in work]
        wrap = [item.wrap_seconds for item in work]
        share = (to_agent + w * priors.to_agent_share) / (n + w)
        given_answered = (to_agent + w * priors.to_agent_share) / (answered + w * priors.answered_share)
        ring_d = Distribution(ring, (priors.ring_mean, priors.ring_sd, w), RING_GRID)
        amd_d = Distribution(amd, (priors.amd_mean, priors.amd_sd, w), AMD_GRID)
        to_agent_time = _convolve(ring_d.pmf, amd_d.pmf, RING_GRID + AMD_GRID)
        cdf: list[float] = []
        acc = 0.0
        for p in to_agent_time:
            acc += p
            cdf.append(acc)
        nodes = []
        for j in range(NODES):
            share_j = (j + 0.5) / NODES
            nodes.append(next((i for i, c in enumerate(cdf) if c >= share_j), len(cdf) - 1))
        return cls(
            to_agent_share=share,
            to_agent_given_answered=min(1.0, given_answered),
            ring=ring_d,
            other_ring=Distribution(other, (priors.other_ring_mean, priors.other_ring_sd, w), RING_GRID),
            amd=amd_d,
            talk=Distribution(talk, (priors.talk_mean, priors.talk_sd, w), TALK_GRID),
            wrap=Distribution(wrap, (priors.wrap_mean, priors.wrap_sd, w), WRAP_GRID),
            nodes=tuple(nodes),
            new_call=tuple(share * cdf[x] for x in nodes),
            later_calls=tuple(share * sum(cdf[:x]) for x in nodes),
        )

    def tables(self, grace_seconds: int) -> Tables:
        tables = self._tables.get(grace_seconds)
        if tables is None:
            tables = self._tables[grace_seconds] = Tables(self, grace_seconds)
        return tables


Vector = tuple[float, ...]
"""Per node: the chances (means), then their variances p(1 - p)."""


def _vector(chances: Sequence[float]) -> Vector:
    return (*chances, *(p * (1.0 - p) for p in chances))


class Tables:
    """Per-age vectors for one model and one connect grace, memoised (ages repeat second to second)."""

    def __init__(self, model: CampaignModel, grace: int) -> None:
        self.model = model
        self.grace = grace
        self._talk: dict[int, Vector] = {}
        self._wrap: dict[int, Vector] = {}
        self._ringing: dict[int, Vector] = {}
        self._amd: dict[int, Vector] = {}
        wrap_mean = model.wrap.mean
        self._talk_reach = tuple(max(0, round(x + grace - wrap_mean)) for x in model.nodes)
        self._tail_mean = max(30.0, model.talk.mean / 2)
        self._amd_sure = next((i for i, c in enumerate(model.amd.cdf) if c >= 1.0 - 1e-7), model.amd.size - 1)

    def talk(self, age: int) -> Vector:
        """An agent ``age`` seconds into a call: free (talk and wrap-up done) by each node + grace."""
        vector = self._talk.get(age)
        if vector is None:
            talk = self.model.talk
            done = talk.at(age)
            left = 1.0 - done
            if age >= talk.size - 1 or left < 1e-9:
                chances = [1.0 - math.exp(-y / self._tail_mean) for y in self._talk_reach]
            else:
                chances = [(talk.at(age + y) - done) / left for y in self._talk_reach]
            vector = self._talk[age] = _vector(chances)
        return vector

    def wrap(self, age: int) -> Vector:
        vector = self._wrap.get(age)
        if vector is None:
            wrap = self.model.wrap
            done = wrap.at(age)
            left = 1.0 - done
            if left < 1e-9:
                chances = [1.0] * len(self.model.nodes)
            else:
                chances = [(wrap.at(age + x + self.grace) - done) / left for x in self.model.nodes]
            vector = self._wrap[age] = _vector(chances)
        return vector

    def ringing(self, age: int) -> Vector:
        """A call ``age`` seconds after it was placed, not yet answered: passed to an agent by each node."""
        vector = self._ringing.get(age)
        if vector is None:
            m = self.model
            live_left = 1.0 - m.ring.at(age)
            other_left = 1.0 - m.other_ring.at(age)
            weight_live = m.to_agent_share * live_left
            weight_other = (1.0 - m.to_agent_share) * other_left
            if weight_live < 1e-12:
                chances = [0.0] * len(m.nodes)
            else:
                p_live = weight_live / (weight_live + weight_other)
                ring, amd = m.ring, m.amd
                pmf, amd_cdf, sure = ring.pmf, amd.cdf, self._amd_sure
                chances = []
                for x in m.nodes:
                    # Answered by a + x - sure: detection surely over; later: by its distribution.
                    split = max(age, age + x - sure)
                    reached = ring.at(split) - ring.at(age)
                    for r in range(split + 1, min(age + x, ring.size - 1) + 1):
                        reached += pmf[r] * amd_cdf[age + x - r]
                    chances.append(p_live * min(1.0, reached / live_left))
            vector = self._ringing[age] = _vector(chances)
        return vector

    def amd(self, age: int) -> Vector:
        """An answered call ``age`` seconds into machine detection: passed to an agent by each node."""
        vector = self._amd.get(age)
        if vector is None:
            m = self.model
            done = m.amd.at(age)
            left = 1.0 - done
            p = m.to_agent_given_answered
            if left < 1e-9:
                chances = [p] * len(m.nodes)
            else:
                chances = [p * (m.amd.at(age + x) - done) / left for x in m.nodes]
            vector = self._amd[age] = _vector(chances)
        return vector
