"""The swarm's prior per target: where a new agent's aggregation weights, scales and intervals start.

A new agent knows nothing; the other agents of the swarm (those of this learner process, a hash
partition of the swarm) know what usually works: which experts earn weight, how wide one-step errors
are on the learning scale (scale-free: a log-scale spread of 0.2 is about 20 % whatever the agent's
latency), and where the scores' quantiles sit. Every 64 observations of an agent with at least
``_MATURE`` of them, its current values are folded into the prior by an exponentially weighted mean
(weight ``_RATE``, or 1/n for the first few agents). A new agent's target copies the prior when it is
made; from then on it is its own (the aggregation mixes the prior weights in with a share that
decays with the agent's observations, see ``_aggregate``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from swarmlearn.online._baselines import EXPERTS
from swarmlearn.online._intervals import DEFAULT_QUANTILES

if TYPE_CHECKING:
    from swarmlearn.online._target import TargetLearner

_MATURE = 64
_RATE = 0.05
_START_SPREAD = 0.25
"""A spread and scale for the very first agent, before the swarm knows any: about ±25 % on the log scale."""


class TargetPrior:
    __slots__ = ("absorbed", "quantiles", "scale", "spread", "weights")

    def __init__(self) -> None:
        self.weights = [1.0 / len(EXPERTS)] * len(EXPERTS)
        self.scale = _START_SPREAD
        self.spread = _START_SPREAD
        self.quantiles = list(DEFAULT_QUANTILES)
        self.absorbed = 0

    def absorb(self, target: TargetLearner) -> None:
        """Fold a mature target's current state into the prior."""
        if target.n < _MATURE:
            return
        self.absorbed += 1
        rate = max(_RATE, 1.0 / self.absorbed)
        keep = 1.0 - rate
        self.weights = [keep * p + rate * w for p, w in zip(self.weights, target.aggregation.weights, strict=True)]
        self.scale = keep * self.scale + rate * target.intervals.scale
        self.spread = keep * self.spread + rate * target.spread
        self.quantiles = [keep * p + rate * q for p, q in zip(self.quantiles, target.intervals.quantiles, strict=True)]
