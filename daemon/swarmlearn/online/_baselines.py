"""The online experts: small forecasters of one target, learned one observation at a time.

Every expert works on the target's learning scale (the log of latency and throughput, success rate
as it is) and forecasts a level that it repeats for every step ahead, except Holt, which adds a
damped trend. ``ExpertBank`` holds one target's experts as plain numbers, so that learning all of
them is a few dozen float operations (this runs for every observation of every agent):

- ``naive``: the last value;
- ``ewma_fast``, ``ewma``: exponentially weighted means at two speeds;
- ``holt``: Holt's linear method with a damped trend;
- ``median``: the median of the last ``median_window`` values (River ``RollingQuantile``);
- ``linear``: the feature regressor's forecast (``FeatureRegressor``, shared by the agent's targets):
  the EWMA plus the robust scale times what the regressor predicts from the latest outcome's features.

No seasonal expert: an hour-of-day profile on top of a slow level gave nothing on the real streams
of ``shared/data`` (1.01 times the EWMA's error, docs/online.md), and events arrive at irregular
times, so a season counted in events is no season in time. Time of day and week reach the feature
regressor instead.
"""

from __future__ import annotations

import math
from operator import mul

from river import stats

from swarmlearn.events import Event
from swarmlearn.features import event_features
from swarmlearn.online._config import OnlineConfig

EXPERTS: tuple[str, ...] = ("naive", "ewma_fast", "ewma", "holt", "median", "linear")
"""Reported as ``online:<name>``, in this order everywhere."""
HOLT = EXPERTS.index("holt")


class ExpertBank:
    """One target's experts. ``learn`` takes each (winsorised) observation; ``forecasts`` the
    one-step forecasts in ``EXPERTS`` order; Holt's h-step forecast adds ``holt_trend · (φ + ... + φ^h)``."""

    __slots__ = ("_alphas", "count", "damping", "fast", "holt_level", "holt_trend", "last", "median", "mid")

    def __init__(self, config: OnlineConfig, first: float) -> None:
        self._alphas = (config.fast_alpha, config.ewma_alpha, config.holt_alpha, config.holt_beta)
        self.damping = config.holt_damping
        self.median = stats.RollingQuantile(0.5, config.median_window)
        self.restart(first)

    def restart(self, z: float) -> None:
        """Every expert starts again at ``z`` (the first value, or the first of a new regime)."""
        self.last = self.fast = self.mid = self.holt_level = z
        self.holt_trend = 0.0
        self.count = 1
        self.median = stats.RollingQuantile(0.5, self.median.window_size)
        self.median.update(z)

    def learn(self, z: float) -> None:
        fast, mid, alpha, beta = self._alphas
        # Until 1/alpha values have been seen, a mean of what was seen: an EWMA started at its first
        # value would remember that one value (perhaps an odd one) for dozens of observations.
        count = self.count = self.count + 1
        if count * mid < 1.0:
            start = 1.0 / count
            fast, mid, alpha = max(fast, start), start, max(alpha, start)
        self.last = z
        self.fast += fast * (z - self.fast)
        self.mid += mid * (z - self.mid)
        # Holt with a damped trend (Gardner & McKenzie): the level after z, then the trend.
        level, trend = self.holt_level, self.holt_trend * self.damping
        self.holt_level = alpha * z + (1.0 - alpha) * (level + trend)
        self.holt_trend = beta * (self.holt_level - level) + (1.0 - beta) * trend
        self.median.update(z)

    def forecasts(self, linear: float, scale: float) -> list[float]:
        """One step ahead, in ``EXPERTS`` order; ``linear`` is the regressor's deviation in scales."""
        return [
            self.last,
            self.fast,
            self.mid,
            self.holt_level + self.damping * self.holt_trend,
            self.median.get(),
            self.mid + scale * linear,
        ]


def trend_steps(damping: float, horizon: int) -> list[float]:
    """``φ + φ² + ... + φ^h`` for h = 1..horizon."""
    out, total, power = [], 0.0, 1.0
    for _ in range(horizon):
        power *= damping
        total += power
        out.append(total)
    return out


_Z_CLIP = 5.0  # a deviation beyond five scales is an outlier to the regressor, whatever the target


class FeatureRegressor:
    """A linear model per target on an agent's standardised outcome features.

    It predicts each target's next value as a deviation from the target's EWMA in units of its robust
    spread (values in the thousands and below one alike), from the latest outcome's features: the
    other metrics, prompt data and the time of day and week. The standardiser (Welford's running mean
    and variance per feature, NaN skipped) and the model learn on every ``linear_every``-th outcome;
    standardised features, targets and errors are clipped, so one wild value cannot stick. Plain
    Python over 13 features rather than River's dict-based ``LinearRegression`` and ``StandardScaler``
    (about 14 µs an outcome for three targets) or numpy (30 µs: small arrays pay numpy's per-call
    overhead many times): about 6 µs.
    """

    __slots__ = ("_n", "bias", "count", "every", "inverse", "lr", "mean", "prediction", "square", "weights", "x")

    def __init__(self, features: int, targets: int, config: OnlineConfig) -> None:
        self.lr = config.linear_lr
        self.every = config.linear_every
        self.count = [0] * features
        self.mean = [0.0] * features
        self.square = [0.0] * features
        self.inverse = [0.0] * features
        """1 / standard deviation per feature; 0 until it has one (the feature then counts as 0)."""
        self.weights = [[0.0] * features for _ in range(targets)]
        self.bias = [0.0] * targets
        self.x: list[float] | None = None
        """The standardised features the prediction was made from; None before the first."""
        self.prediction = [0.0] * targets
        self._n = 0

    def before(self, event: Event) -> list[float]:
        """An outcome, before the targets learn it: the predicted deviations for the next outcome.

        Every ``linear_every``-th outcome the standardiser learns and the prediction is made from its
        features; on the outcome after, the model learns what followed them (``after``). In between,
        the last prediction holds: a fraction of the cost, and the features of one outcome say little
        about the one eight later anyway."""
        if self._n % self.every == 0:
            self.observe(event_features(event))
            self.prediction = self.predict()
        return self.prediction

    def after(self, deviations: list[float | None]) -> None:
        """The targets' deviations at this outcome (None where not observed)."""
        if self._n % self.every == 1 and self.x is not None:
            self.learn(self.x, deviations)
        self._n += 1

    def observe(self, features: tuple[float, ...]) -> None:
        """Standardise an outcome's raw features (NaN: 0), learning the standardiser from them too."""
        count, mean, square, inverse = self.count, self.mean, self.square, self.inverse
        for i, value in enumerate(features):
            if value == value:  # not NaN
                n = count[i] = count[i] + 1
                delta = value - mean[i]
                mean[i] += delta / n
                square[i] += delta * (value - mean[i])
                inverse[i] = 1.0 / math.sqrt(square[i] / n) if square[i] > 0.0 else 0.0
        x = [
            (value - m) * inv if value == value else 0.0
            for value, m, inv in zip(features, self.mean, self.inverse, strict=True)
        ]
        self.x = [_Z_CLIP if v > _Z_CLIP else -_Z_CLIP if v < -_Z_CLIP else v for v in x]

    def learn(self, x: list[float], deviations: list[float | None]) -> None:
        """One SGD step on the squared error of ``deviations`` (in spreads, None where a target was
        not observed) predicted from ``x``, the outcome before's features."""
        lr, bias = self.lr, self.bias
        for t, (weights, deviation) in enumerate(zip(self.weights, deviations, strict=True)):
            if deviation is None:
                continue
            target = _Z_CLIP if deviation > _Z_CLIP else -_Z_CLIP if deviation < -_Z_CLIP else deviation
            error = sum(map(mul, weights, x)) + bias[t] - target
            step = lr * (1.0 if error > 1.0 else -1.0 if error < -1.0 else error)
            weights[:] = [w - step * v for w, v in zip(weights, x, strict=True)]
            bias[t] -= step

    def predict(self) -> list[float]:
        """Each target's predicted deviation after the latest outcome, within ±5 spreads."""
        x = self.x
        if x is None:
            return [0.0] * len(self.bias)
        out = []
        for weights, b in zip(self.weights, self.bias, strict=True):
            p = sum(map(mul, weights, x)) + b
            out.append(_Z_CLIP if p > _Z_CLIP else -_Z_CLIP if p < -_Z_CLIP else p)
        return out
