"""The incremental baselines: small forecasters with one verb set, learned one event at a time.

Every baseline's forecast is a line in the step, ``a + b·h`` for h = 1..H: the naive value, the EWMA
and the regressor repeat their level (b = 0), Holt extrapolates its trend. That lets the target learner
keep a compact history of ``(a, b)`` per event for the step-wise residuals of the intervals. The
regressor repeats its one-step forecast instead of iterating: iterating would need the future events'
other features (memory, prompt tokens, ...) which nobody knows; the residuals of each step calibrate
how much that costs.

No seasonal component: events of an agent arrive at irregular times, so a season counted in events
(HoltWinters ``seasonality``) is not a season in time. Time of day and week reach the regressor through
the hour/weekday features instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Protocol

from river import linear_model, optim, stats, time_series

from swarmlearn.online._config import OnlineConfig


class Baseline(Protocol):
    kind: ClassVar[str]
    """Reported as ``online:<kind>``."""

    def learn_one(self, y: float, x: Mapping[str, float]) -> tuple[float, float]:
        """Learn this event's value ``y``; ``x`` are its standardised features. Returns ``line()``
        (the target learner needs it after every event; one call instead of two)."""

    def line(self) -> tuple[float, float]:
        """``(a, b)`` with the forecast of step h being ``a + b·h``."""

    def forecast(self, horizon: int) -> list[float]:
        """Steps 1..horizon."""


class _LineForecast:
    def line(self) -> tuple[float, float]:
        raise NotImplementedError

    def forecast(self, horizon: int) -> list[float]:
        a, b = self.line()
        return [a + b * h for h in range(1, horizon + 1)]


class Naive(_LineForecast):
    kind: ClassVar[str] = "naive"

    def __init__(self, config: OnlineConfig) -> None:
        self.last = 0.0

    def learn_one(self, y: float, x: Mapping[str, float]) -> tuple[float, float]:
        self.last = y
        return y, 0.0

    def line(self) -> tuple[float, float]:
        return self.last, 0.0


class Ewma(_LineForecast):
    kind: ClassVar[str] = "ewma"

    def __init__(self, config: OnlineConfig) -> None:
        self.mean = stats.EWMean(fading_factor=config.ewma_alpha)  # its first value is its first level

    def learn_one(self, y: float, x: Mapping[str, float]) -> tuple[float, float]:
        self.mean.update(y)
        return float(self.mean.get()), 0.0

    def line(self) -> tuple[float, float]:
        return float(self.mean.get()), 0.0


class Holt(_LineForecast):
    kind: ClassVar[str] = "holt"

    def __init__(self, config: OnlineConfig) -> None:
        self.model = time_series.HoltWinters(alpha=config.holt_alpha, beta=config.holt_beta)
        self.last = 0.0

    def learn_one(self, y: float, x: Mapping[str, float]) -> tuple[float, float]:
        self.model.learn_one(y)
        self.last = y
        return self.line()

    def line(self) -> tuple[float, float]:
        # HoltWinters needs two values before it has a level; until then it repeats the last value.
        # Reading the level and trend directly is what its own forecast() does, without the list.
        if not self.model.level:
            return self.last, 0.0
        return float(self.model.level[-1]), float(self.model.trend[-1])


_Z_CLIP = 5.0  # a failure burst is a few scales away; beyond that a value is an outlier to the regressor


class Linear(_LineForecast):
    """River ``LinearRegression`` on the previous event's standardised features.

    It predicts the next value as a deviation from a running level, in units of a running absolute
    deviation: the targets are in the thousands (latency) or below one (success rate), and SGD on the
    raw scale would take thousands of events to find the intercept.
    """

    kind: ClassVar[str] = "linear"

    def __init__(self, config: OnlineConfig) -> None:
        self.config = config
        # Clipped gradients: the scaler's first estimates are rough and one wild step would stick for long.
        self.model = linear_model.LinearRegression(
            optimizer=optim.SGD(config.linear_lr), intercept_lr=config.linear_lr, clip_gradient=1.0
        )
        self.level = 0.0
        self.scale = 0.0
        self.prediction = 0.0
        self._x: Mapping[str, float] | None = None
        self._n = 0

    def learn_one(self, y: float, x: Mapping[str, float]) -> tuple[float, float]:
        alpha = self.config.level_alpha
        if self._x is None:
            self.level = y
        else:
            if self._n % self.config.linear_every == 0 and self.scale > 0:
                z = (y - self.level) / self.scale
                self.model.learn_one(self._x, min(_Z_CLIP, max(-_Z_CLIP, z)))
            self.scale += alpha * (abs(y - self.level) - self.scale)
            self.level += alpha * (y - self.level)
        self._x = x
        self._n += 1
        self.prediction = self.level + self.scale * float(self.model.predict_one(x))
        return self.prediction, 0.0

    def line(self) -> tuple[float, float]:
        return self.prediction, 0.0


BASELINES: tuple[type[Naive | Ewma | Holt | Linear], ...] = (Naive, Ewma, Holt, Linear)
"""Every registered baseline, in the order the target learner keeps them; the EWMA answers in warm-up."""
