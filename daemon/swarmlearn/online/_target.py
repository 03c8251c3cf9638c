"""One target of one agent: robust learning, the experts, their aggregate, intervals and drift.

Per observation y, in this order (every reported error is out of sample):

1. ``z``, its value on the learning scale: ``log(max(y, 1e-6))`` for latency and throughput, y itself
   for the success rate.
2. Robust filter (log targets): ``z`` is winsorised at ``clip_mads`` robust deviations from the
   experts' rolling median, unless it is the ``clip_run``-th in a row beyond the same bound (a shift,
   learned as it is). One artefact, however extreme, thus moves any state by a bounded amount, and
   the state recovers as the values return.
3. The forecast made before y is scored: the aggregate's and each expert's absolute error in the
   original units, the interval hit, and the aggregate's residual for drift detection (a CUSUM on
   its mean, ADWIN on its spread; a new regime from step 2 is a drift too).
4. The aggregation (``MLPoly``) updates its weights from the experts' forecasts of z, the
   conformal intervals their scale and quantiles.
5. The experts learn the (winsorised) value, and the next forecast is formed.

Nothing here can become NaN or infinite: the validated values are finite and bounded, z is bounded,
gradients are signs (or bounded by 2 for the success rate), and the scales have a floor.
"""

from __future__ import annotations

import math
from math import exp, log
from typing import TYPE_CHECKING

from river import drift

from swarmlearn.online._aggregate import MLPoly
from swarmlearn.online._baselines import EXPERTS, HOLT, ExpertBank, trend_steps
from swarmlearn.online._config import OnlineConfig
from swarmlearn.online._intervals import FRESH_FLOATS, ConformalIntervals
from swarmlearn.online._results import BaselineError, Forecast, Point, TargetStats

if TYPE_CHECKING:
    from swarmlearn.online._prior import TargetPrior

_FLOOR = 1e-6
"""Below this a latency or throughput is learned as this (0 has no logarithm), and forecast as 0."""
_LOG_FLOOR = math.log(_FLOOR) + 1e-9
_KIND = "online:aggregate"
_U_CLIP = 5.0
_ABSORB_EVERY = 64
"""Observations between two foldings of a target into the swarm's prior."""
_SIZE = len(EXPERTS)


class TargetLearner:
    """``learn`` each observed value (and form the next forecast); ``forecast`` the next H with
    intervals; ``stats`` for GetAgentStats."""

    # Slots: attribute access is a fifth cheaper, and ``learn`` reads some thirty per observation.
    __slots__ = (
        "_abs_sum",
        "_alpha",
        "_answer_abs_sum",
        "_cache",
        "_clip",
        "_cusum_down",
        "_cusum_h",
        "_cusum_k",
        "_cusum_up",
        "_damping",
        "_forecasts",
        "_line",
        "_log_limit",
        "_next",
        "_outside",
        "_regime",
        "_run",
        "aggregation",
        "config",
        "drift",
        "drift_count",
        "experts",
        "intervals",
        "last_drift_timestamp",
        "last_value",
        "limit",
        "log_scale",
        "n",
        "prior",
        "spread",
    )  # fmt: skip

    def __init__(self, config: OnlineConfig, *, log_scale: bool, limit: float, prior: TargetPrior) -> None:
        self.config = config
        self.log_scale = log_scale
        self.limit = limit
        """The largest value a forecast or a bound may take (the metric's validation maximum)."""
        self._log_limit = math.log(limit)
        self.prior = prior
        """The swarm's (shared with the other agents of this learner): where a new target starts."""
        self.n = 0
        self.last_value: float | None = None
        self.experts: ExpertBank | None = None
        self.aggregation = MLPoly(prior.weights, forget=config.aggregation_forget, prior_events=config.prior_events)
        self.intervals = ConformalIntervals(config, prior.scale, prior.quantiles)
        self.spread = prior.spread
        """Robust deviation of z from the rolling median (the winsorising scale)."""
        self._outside = 0
        """Consecutive observations beyond the bound, positive above and negative below."""
        self._regime = 0
        """Observations since the experts (re)started."""
        self._forecasts: list[float] = []
        self._next = 0.0
        """The aggregate's one-step forecast (learning scale)."""
        self._line = (0.0, 0.0)
        self._clip, self._run, self._alpha = config.clip_mads, config.clip_run, config.scale_alpha
        self._cusum_k, self._cusum_h = config.drift_cusum_k, config.drift_cusum_h
        self._cusum_up = self._cusum_down = 0.0
        self._damping = config.holt_damping
        self._abs_sum = [0.0] * _SIZE
        self._answer_abs_sum = 0.0
        self.drift = drift.ADWIN(delta=config.drift_delta, clock=config.drift_clock)
        self.drift_count = 0
        self.last_drift_timestamp: float | None = None
        self._cache: tuple[tuple[int, int, float], Forecast] | None = None

    # -- learning ---------------------------------------------------------------------------------

    def learn(self, y: float, timestamp: float, linear: float) -> tuple[float | None, bool]:
        """Learn one observation and form the next forecast (``linear``: the feature regressor's
        deviation for it, in spreads); returns the deviation the regressor learns from (the winsorised
        value's distance from the EWMA before it, in spreads; None for the first) and whether a drift
        was found. One method on purpose: it runs for every observation."""
        log_scale = self.log_scale
        z = log(y if y > _FLOOR else _FLOOR) if log_scale else y
        self.last_value = y
        self.n += 1
        experts = self.experts
        if experts is None:  # the first observation: every expert starts there
            experts = self.experts = ExpertBank(self.config, z)
            self._regime = 1
            self._prepare(experts, z, linear)
            return None, False
        spread = self.spread
        median = experts.median.get()
        # 2. Winsorise beyond clip_mads spreads of the median, unless it is the restart-th value in
        # a row beyond the bound on one side: then a new regime starts there (step 5).
        zc = z
        restart = False
        if log_scale:
            bound = self._clip * spread
            after = self._run if self._regime > self._run else 1  # a young regime has no reference yet
            if z > median + bound:
                self._outside = outside = self._outside + 1 if self._outside > 0 else 1
                restart = outside >= after
                if not restart:
                    zc = median + bound
            elif z < median - bound:
                self._outside = outside = self._outside - 1 if self._outside < 0 else -1
                restart = -outside >= after
                if not restart:
                    zc = median - bound
            else:
                self._outside = 0
        # 3. Score the forecast made before y.
        forecasts = self._forecasts
        aggregate = self._next
        if log_scale:  # each expert's error in the original units; the absolute loss's gradient, a sign
            self._answer_abs_sum += abs(y - self._value(aggregate))
            self._abs_sum = [
                total + abs(y - (exp(x) if x > _LOG_FLOOR else 0.0))
                for total, x in zip(self._abs_sum, forecasts, strict=True)
            ]
            gradient = 1.0 if aggregate > zc else -1.0 if aggregate < zc else 0.0
        else:  # the squared loss
            self._answer_abs_sum += abs(y - (0.0 if aggregate < 0.0 else 1.0 if aggregate > 1.0 else aggregate))
            self._abs_sum = [total + abs(y - x) for total, x in zip(self._abs_sum, forecasts, strict=True)]
            gradient = 2.0 * (aggregate - zc)
        # Drift, in the aggregate's residuals: a shift of their mean (Page's two-sided CUSUM on the
        # residual in spreads, within ±5 so that an artefact adds a bounded amount: the aggregate adapts
        # within a few events, so a shift shows as a short run of same-signed residuals), a change of
        # their spread (ADWIN on the absolute residual on the learning scale, capped at 1, the range
        # its bound assumes; scale-free already: 0.1 is about 10 % of a latency), or a new regime.
        residual = zc - aggregate
        u = residual / spread
        u = _U_CLIP if u > _U_CLIP else -_U_CLIP if u < -_U_CLIP else u
        k = self._cusum_k
        up = self._cusum_up + u - k
        down = self._cusum_down - u - k
        up = self._cusum_up = up if up > 0.0 else 0.0
        down = self._cusum_down = down if down > 0.0 else 0.0
        absolute = residual if residual >= 0.0 else -residual
        drift_detector = self.drift
        drift_detector.update(absolute if absolute < 1.0 else 1.0)
        limit = self._cusum_h
        drifted = up > limit or down > limit or drift_detector.drift_detected or (restart and self._regime > self._run)
        if drifted:
            self._cusum_up = self._cusum_down = 0.0
            self.drift_count += 1
            self.last_drift_timestamp = timestamp
        # 4. The weights and the intervals.
        self.aggregation.update(forecasts, aggregate, gradient)
        self.intervals.learn(z, aggregate)
        # 5. The experts.
        deviation = (zc - experts.mid) / spread
        if restart:
            experts.restart(z)
            self._regime = 1
        else:
            self._regime += 1
            self.spread = max(1e-9, spread + self._alpha * (abs(zc - median) - spread))
            experts.learn(zc)
        if self.n % _ABSORB_EVERY == 0:
            self.prior.absorb(self)
        self._prepare(experts, z, linear)
        return deviation, drifted

    def _prepare(self, experts: ExpertBank, z: float, linear: float) -> None:
        """The next forecast: the experts', their aggregate, and the line for steps 2..H."""
        forecasts = self._forecasts = experts.forecasts(linear, self.spread)
        aggregate, holt_weight = self.aggregation.combine(forecasts, HOLT)
        self._next = aggregate
        # The step-1 forecasts hold Holt's damped trend once; the line keeps it apart for steps 2..H.
        trend = holt_weight * experts.holt_trend
        a = aggregate - trend * self._damping
        self._line = (a, trend)
        intervals = self.intervals  # a row for the widths of steps 2..H; inline: it runs per observation
        fresh = intervals.fresh
        fresh += (z, a, trend, intervals.scale)
        if len(fresh) >= FRESH_FLOATS:
            intervals.settle()

    # -- answering --------------------------------------------------------------------------------

    def _value(self, z: float) -> float:
        """From the learning scale to the original one, within [0, limit]."""
        if self.log_scale:  # the floor stands for 0 (a throughput of nothing is learned as 1e-6)
            return (math.exp(z) if z > _LOG_FLOOR else 0.0) if z < self._log_limit else self.limit
        return min(self.limit, max(0.0, z))

    def forecast(self, horizon: int, coverage: float) -> Forecast | None:
        """Steps 1..horizon with intervals at ``coverage``; None before the first observation."""
        if self.experts is None:
            return None
        key = (self.n, horizon, coverage)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        a, b = self._line
        steps = trend_steps(self.config.holt_damping, horizon)
        low, high = self.intervals.bounds(coverage)
        scale = self.intervals.scale
        widths = self.intervals.widths(horizon, coverage, steps)
        points = []
        middle, half = scale * (low + high) / 2, scale * (high - low) / 2
        for g, width in zip(steps, widths, strict=True):
            z = a + b * g
            points.append(
                Point(self._value(z), self._value(z + middle - half * width), self._value(z + middle + half * width))
            )
        result = Forecast(_KIND, self._answer_abs_sum / (self.n - 1) if self.n > 1 else None, points)
        self._cache = (key, result)
        return result

    def stats(self) -> TargetStats:
        scored = max(0, self.n - 1)
        weights = self.aggregation.weights
        best = max(range(_SIZE), key=weights.__getitem__)
        baselines = {
            name: BaselineError(
                self._abs_sum[k] / scored if scored else None,
                scored,
                weights[k],
            )
            for k, name in enumerate(EXPERTS)
        }
        return TargetStats(
            best="online:" + EXPERTS[best],
            answer_mae=self._answer_abs_sum / scored if scored else None,
            baselines=baselines,
            drift_count=self.drift_count,
            last_drift_timestamp=self.last_drift_timestamp,
            last_value=self.last_value,
            coverage=self.intervals.coverage(),
        )
