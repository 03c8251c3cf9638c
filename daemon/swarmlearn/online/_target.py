"""One target of one agent: its baselines scored by progressive validation, intervals, drift.

Per event, in this order: every baseline's forecast made at the previous event is scored against the
new value (predict, then learn), the best baseline's residual goes to ADWIN, the best is chosen again,
and only then do the baselines learn the value. So every reported error is out of sample.

Intervals come from a bounded window of past residuals per step: the forecast that the answering
baseline made h events before each of the last ``residual_window`` values, against that value. The
interval for coverage c is the forecast plus the (1-c)/2 and (1+c)/2 empirical quantiles of those
signed residuals, so any coverage can be asked for, and each step gets its own width (a step-12
forecast misses by more than a step-1 one). The window is kept as ``(a, b)`` lines per event (see
``_baselines``) in a numpy ring, so learning costs one row write, and the quantiles are computed at predict
time (numpy, one pass for all steps, 0.1-0.3 ms for H = 1..12) and refreshed once every
``interval_refresh`` events: the widths move slowly, the forecast values are always current.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from river import drift

from swarmlearn.online._baselines import BASELINES, Baseline
from swarmlearn.online._config import OnlineConfig
from swarmlearn.online._results import BaselineError, Forecast, Point, TargetStats

_ANSWER_IN_WARM_UP = 1  # the EWMA: from the first event it is the mean of what was seen
_OFFSETS_CACHED = 64  # (baseline, horizon, coverage) combinations kept per refresh; clients ask a few


def _quantile(ordered: npt.NDArray[np.float64], q: float) -> npt.NDArray[np.float64]:
    """Row-wise quantile ``q`` of rows sorted ascending, interpolated as numpy's default ("linear")."""
    position = q * (ordered.shape[1] - 1)
    below = math.floor(position)
    above = min(below + 1, ordered.shape[1] - 1)
    weight = position - below
    result: npt.NDArray[np.float64] = ordered[:, below] + weight * (ordered[:, above] - ordered[:, below])
    return result


assert len(BASELINES) == 4, "TargetLearner.learn writes the ring row for exactly four baselines"


class TargetLearner:
    def __init__(self, config: OnlineConfig) -> None:
        self.config = config
        self.baselines: list[Baseline] = [cls(config) for cls in BASELINES]
        size = len(self.baselines)
        self.n = 0
        self.best = _ANSWER_IN_WARM_UP
        self._lines: list[tuple[float, float]] = [(0.0, 0.0)] * size
        self._abs_sum = [0.0] * size
        self._recent = [0.0] * size
        self._scored = 0
        self._answer_abs_sum = 0.0
        self.drift = drift.ADWIN(delta=config.drift_delta, clock=config.drift_clock)
        self.drift_count = 0
        self.last_drift_timestamp: float | None = None
        self.last_value: float | None = None
        # A ring of rows (value, a0, b0, a1, b1, ...): each baseline's line after learning the value, one
        # row per event since warm-up. 8 bytes a number: a deque of tuples of floats took about eight times
        # that in memory and pickled six times slower.
        self._ring = np.zeros((config.residual_window + config.max_horizon, 1 + 2 * size))  # [W + H, 1 + 2·models]
        self._written = 0
        self._cache: tuple[tuple[int, int, int, float], Forecast] | None = None
        self._offsets_epoch = -1
        self._offsets_cache: dict[tuple[int, int, float], tuple[list[float], list[float]]] = {}

    def learn(self, y: float, x: dict[str, float], timestamp: float) -> bool:
        """Score, then learn ``y``; True when this value made ADWIN find a drift."""
        drifted = self.n >= self.config.warm_up and self._score(y, timestamp)
        lines = self._lines = [baseline.learn_one(y, x) for baseline in self.baselines]
        self.n += 1
        self.last_value = y
        if self.n >= self.config.warm_up:
            # Unpacked by hand: half the cost of itertools.chain (0.6 against 1.2 µs, three times an event).
            (a0, b0), (a1, b1), (a2, b2), (a3, b3) = lines
            self._ring[self._written % len(self._ring)] = (y, a0, b0, a1, b1, a2, b2, a3, b3)
            self._written += 1
        return drifted

    def _score(self, y: float, timestamp: float) -> bool:
        # One pass over the baselines: this runs for every target of every event.
        self._scored += 1
        # The plain mean until there are 1/alpha errors, so the first few do not weigh for long.
        fade = max(self.config.selection_alpha, 1.0 / self._scored)
        abs_sum, recent = self._abs_sum, self._recent
        best, best_recent = 0, math.inf
        for i, (a, b) in enumerate(self._lines):
            error = abs(y - a - b)
            abs_sum[i] += error
            r = recent[i] = recent[i] + fade * (error - recent[i])
            if r < best_recent:
                best, best_recent = i, r
        a, b = self._lines[self.best]
        residual = y - a - b
        self._answer_abs_sum += abs(residual)
        self.best = best
        self.drift.update(residual)
        if self.drift.drift_detected:
            self.drift_count += 1
            self.last_drift_timestamp = timestamp
            return True
        return False

    def forecast(self, horizon: int, coverage: float) -> Forecast:
        key = (self.n, self.best, horizon, coverage)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        best = self.best
        a, b = self._lines[best]
        values = [a + b * h for h in range(1, horizon + 1)]
        lower, upper = self._offsets(best, horizon, coverage)
        points = [Point(v, v + lo, v + hi) for v, lo, hi in zip(values, lower, upper, strict=True)]
        kind = "online:" + self.baselines[best].kind
        result = Forecast(kind, self._abs_sum[best] / self._scored if self._scored else None, points)
        self._cache = (key, result)
        return result

    def _offsets(self, model: int, horizon: int, coverage: float) -> tuple[list[float], list[float]]:
        """The residual quantiles as of the last multiple of ``interval_refresh`` events, cached until the next.

        Taking them as of that boundary, not as of the moment of the call, keeps what Predict answers a
        function of the events learned alone: a restored learner answers as the original did whenever each
        was asked.
        """
        epoch = self.n // self.config.interval_refresh
        if self._offsets_epoch != epoch or len(self._offsets_cache) >= _OFFSETS_CACHED:
            self._offsets_epoch = epoch
            self._offsets_cache = {}
        key = (model, horizon, coverage)
        offsets = self._offsets_cache.get(key)
        if offsets is None:
            since_boundary = self.n - epoch * self.config.interval_refresh
            offsets = self._offsets_cache[key] = self._residual_quantiles(model, horizon, coverage, since_boundary)
        return offsets

    def _residual_quantiles(
        self, model: int, horizon: int, coverage: float, skip_last: int
    ) -> tuple[list[float], list[float]]:
        """Per step 1..horizon, the lower and upper residual quantiles (unbounded where too few)."""
        kept = min(self._written, len(self._ring))
        rows = np.arange(self._written - kept, max(self._written - kept, self._written - skip_last)) % len(self._ring)
        table = self._ring[rows]  # [events, 1 + 2·models], oldest first
        y, a, b = table[:, 0], table[:, 1 + 2 * model], table[:, 2 + 2 * model]
        lower = [-math.inf] * horizon
        upper = [math.inf] * horizon
        # The same number of residuals for every step that has enough, so one quantile call does all.
        usable = [h for h in range(1, horizon + 1) if len(y) - h >= self.config.min_residuals]
        if not usable:
            return lower, upper
        count = min(self.config.residual_window, len(y) - usable[-1])
        end = len(y)
        residuals = np.stack(
            [y[end - count :] - (a[end - count - h : end - h] + h * b[end - count - h : end - h]) for h in usable]
        )  # [steps, count]
        residuals.sort(axis=1)  # one sort, then both quantiles; np.quantile costs several times more
        tail = (1.0 - coverage) / 2
        low, high = _quantile(residuals, tail), _quantile(residuals, 1.0 - tail)
        for j, h in enumerate(usable):
            lower[h - 1] = float(low[j])
            upper[h - 1] = float(high[j])
        return lower, upper

    def stats(self) -> TargetStats:
        scored = self._scored
        baselines = {
            baseline.kind: BaselineError(
                self._abs_sum[i] / scored if scored else None, self._recent[i] if scored else None, scored
            )
            for i, baseline in enumerate(self.baselines)
        }
        return TargetStats(
            best="online:" + self.baselines[self.best].kind,
            answer_mae=self._answer_abs_sum / scored if scored else None,
            baselines=baselines,
            drift_count=self.drift_count,
            last_drift_timestamp=self.last_drift_timestamp,
            last_value=self.last_value,
        )
