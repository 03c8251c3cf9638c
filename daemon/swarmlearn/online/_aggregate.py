"""Online expert aggregation: ML-Poly (Gaillard, Stoltz & van Erven 2014) with the gradient trick.

Each observation, the aggregate forecast is the weighted mean of the experts' forecasts. Then, with
``g`` the gradient of the loss at the aggregate's forecast, each expert's instantaneous regret is the
linearised gain ``r_k = g · (aggregate - expert_k)`` (what the aggregate would have saved by moving
towards that expert), its cumulative regret is ``R_k = Σ r_k`` and its squared sum ``V_k = Σ r_k²``,
and the next weights are ``w_k ∝ max(R_k, 0) / V_k``: the polynomial potential with one learning
rate per expert, as R's ``opera`` package implements ``MLpol``.

Guarantee (the paper's Theorem 3 with the gradient trick): for any convex loss, the aggregate's
cumulative loss exceeds that of the *best fixed convex combination* of the experts, hence of the best
expert, by at most ``sqrt(K · (1 + Σ_t Σ_k r_{k,t}²))``: second order in the regrets, so the excess per
observation vanishes as ``1/sqrt(T)``, without any tuning. Two changes for streams that change regime,
each with a cost to the bound, documented in docs/online.md:

- regrets and their squares are discounted by ``1 - aggregation_forget`` per observation, so the bound
  holds against the best combination over the last few hundred observations rather than all time;
- a new agent starts from the swarm's weights (``prior``), mixed in with the share
  ``prior_events / (prior_events + n)``: it costs at most the prior's excess loss over those first
  observations, a constant, and spares every new agent the uniform start.

Losses are scale-free: the absolute error on the log scale for latency and throughput (whose
minimiser is the median, which is what MAE rewards, and whose gradient is a sign, so an artefact
cannot dominate), the squared error for the success rate.
"""

from __future__ import annotations

from operator import mul


class MLPoly:
    """Weights over the experts; ``update`` with their forecasts, the aggregate's and the gradient;
    ``combine`` forms the next aggregate forecast."""

    __slots__ = ("keep", "n", "prior", "prior_events", "raw", "regret", "share", "square", "total")

    def __init__(self, prior: list[float], *, forget: float, prior_events: float) -> None:
        self.keep = 1.0 - forget
        self.prior = list(prior)
        self.prior_events = prior_events
        self.regret = [0.0] * len(prior)
        self.square = [0.0] * len(prior)
        self.raw = [0.0] * len(prior)
        """``max(R_k, 0) / V_k``, unnormalised: the weights are ``(1 - share) · raw / total + share · prior``."""
        self.total = 0.0
        self.share = 1.0
        self.n = 0

    def update(self, forecasts: list[float], aggregate: float, gradient: float) -> None:
        """The experts' and the aggregate's forecasts of the value just observed, and the loss's
        gradient at the aggregate's; then the weights for the next."""
        keep, regret, square = self.keep, self.regret, self.square
        raw = []
        total = 0.0
        for k, x in enumerate(forecasts):  # one plain loop: the fastest form for six experts in CPython
            r = gradient * (aggregate - x)
            rk = regret[k] = keep * regret[k] + r
            vk = square[k] = keep * square[k] + r * r
            w = rk / vk if rk > 0.0 else 0.0
            raw.append(w)
            total += w
        self.raw, self.total = raw, total
        self.n = n = self.n + 1
        self.share = self.prior_events / (self.prior_events + n) if total > 0.0 else 1.0

    def combine(self, forecasts: list[float], k: int) -> tuple[float, float]:
        """The weighted mean of ``forecasts`` (without building the weights), and expert ``k``'s weight."""
        share = self.share
        mixed: float = share * sum(map(mul, self.prior, forecasts))
        weight = share * self.prior[k]
        if self.total > 0.0:
            own = (1.0 - share) / self.total
            mixed += own * sum(map(mul, self.raw, forecasts))
            weight += own * self.raw[k]
        return mixed, weight

    def weight(self, k: int) -> float:
        own = (1.0 - self.share) / self.total * self.raw[k] if self.total > 0.0 else 0.0
        return own + self.share * self.prior[k]

    @property
    def weights(self) -> list[float]:
        return [self.weight(k) for k in range(len(self.prior))]
