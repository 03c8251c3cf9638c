"""Prediction intervals that keep their coverage: online conformal quantile tracking on scaled scores.

The score of an observation is the aggregate's one-step error divided by a running scale of those
errors, on the learning scale: ``u = (z - ẑ) / sigma``. The scale (``sigma``, an exponentially weighted mean
of the absolute errors, each capped at ``_CAP`` scales so that one artefact cannot blow it up) makes the
scores comparable across agents and over time: after a level shift the errors grow and so does sigma.
The quantiles of the scores are tracked online (adaptive conformal inference in its quantile-tracking
form, Gibbs & Candès 2021; Angelopoulos, Candès & Tibshirani 2023): for each level τ of ``LEVELS``,
``q ← q + η·(τ - 1[u ≤ q])``. Whatever the sequence, the long-run share of scores at or below ``q``
converges to τ (their Proposition 1: within ``(max|u| + η) / (η·T)``), so the interval between the
``(1-c)/2`` and ``(1+c)/2`` quantiles covers a share c of observations in the long run, and after a
shift the misses push the quantiles out until it does again. A coverage between two levels is
interpolated; beyond the outermost it is extrapolated with the normal distribution's shape.

Steps 2..H: the step-1 interval widened by the ratio of the step-h to the step-1 interval widths of
the last ``residual_window`` scores (kept as forecast lines in a ring, recomputed every
``interval_refresh`` observations), ``√h`` while fewer than ``_MIN_SCORES`` are known. The ring is a
flat ``array`` of 32-bit floats, four per row, extended 16 rows at a time: at most 7 KiB a target,
where a deque of tuples of floats took 70 KiB (most of a long-lived agent's memory); single
precision is plenty for ratios of score quantiles. The long-run guarantee is for step 1; the steps
beyond are as good as that ratio.

A new agent's sigma and quantiles start from the swarm's (``SwarmPrior``), so its first intervals have the
swarm's typical width instead of none.
"""

from __future__ import annotations

import math
from array import array
from statistics import NormalDist

import numpy as np

from swarmlearn.online._config import OnlineConfig

LEVELS: tuple[float, ...] = (0.005, 0.025, 0.05, 0.1, 0.5, 0.9, 0.95, 0.975, 0.995)
"""Quantile levels tracked: the intervals at coverage 0.8, 0.9, 0.95 and 0.99 exactly, others between."""
_GAUSS = NormalDist()
_MAE_TO_STD = math.sqrt(math.pi / 2)  # a normal's standard deviation over its mean absolute deviation
DEFAULT_QUANTILES: tuple[float, ...] = tuple(_GAUSS.inv_cdf(t) * _MAE_TO_STD for t in LEVELS)
"""The levels' quantiles of normal errors in units of their mean absolute value: a start without a prior."""
_CAP = 6.0
_PRIOR_ERRORS = 4
_SCALE_FLOOR = 1e-9
_MIN_SCORES = 10
_COVERAGE_80 = (LEVELS.index(0.1), LEVELS.index(0.9))
FRESH_FLOATS = 64  # 16 rows


class ConformalIntervals:
    """One target's interval state. ``learn`` each observation with the forecast made before it;
    ``offsets`` gives, per step, the lower and upper offsets from the forecast (learning scale)."""

    __slots__ = (
        "_cache_epoch",
        "_capacity",
        "_ratios",
        "_refresh",
        "_steps",
        "_window",
        "alpha",
        "fresh",
        "hits",
        "n",
        "quantiles",
        "ring",
        "scale",
    )  # fmt: skip

    def __init__(self, config: OnlineConfig, scale: float, quantiles: list[float]) -> None:
        self.alpha = config.scale_alpha
        step = config.interval_step
        self._steps = ([step * tau for tau in LEVELS], [step * (1.0 - tau) for tau in LEVELS])
        self.scale = max(scale, _SCALE_FLOOR)
        self.quantiles = list(quantiles)
        self.n = 0
        self.hits = 0
        """Observations inside the 80 % interval made before them."""
        self._window = config.residual_window
        self._refresh = config.interval_refresh
        # Rows (z, a, b, sigma): each observation, and the aggregate's forecast line (``a + b·g(h)`` for
        # step h) and scale after it, appended by the target learner to ``fresh``. Four floats in a
        # flat array take 16 bytes, where a tuple of four floats took 170.
        self.ring = array("f")
        self.fresh: list[float] = []
        """Rows appended since the ring was last extended, as plain floats (the target learner
        appends each row here, and calls ``settle`` once ``FRESH_FLOATS`` are there)."""
        self._capacity = (config.residual_window + config.max_horizon) * 4
        """Floats the ring keeps: the rows the widths need."""
        self._cache_epoch = -1
        self._ratios: dict[tuple[int, float], list[float]] = {}

    def learn(self, z: float, forecast: float) -> float:
        """Score the observation ``z`` against the one-step ``forecast`` made before it; returns the score."""
        u = (z - forecast) / self.scale
        q = self.quantiles
        low, high = _COVERAGE_80
        self.hits += q[low] <= u <= q[high]
        self.n += 1
        up, down = self._steps
        self.quantiles = [qi + a if u > qi else qi - b for qi, a, b in zip(q, up, down, strict=True)]
        error = abs(z - forecast)
        # Until 1/alpha errors are known, their mean (after the prior's, worth _PRIOR_ERRORS of them):
        # the swarm's scale is a start, not something to unlearn over sixty observations.
        n = self.n
        weight = self.alpha if n * self.alpha >= 1.0 else max(self.alpha, 1.0 / (n + _PRIOR_ERRORS))
        self.scale = max(_SCALE_FLOOR, self.scale + weight * (min(error, _CAP * self.scale) - self.scale))
        return u

    def settle(self) -> None:
        """Move the fresh rows into the ring (converting a block at once is ten times cheaper than
        a row at a time) and drop the oldest beyond its capacity."""
        ring = self.ring
        ring.extend(self.fresh)
        self.fresh.clear()
        if len(ring) > self._capacity:
            del ring[: len(ring) - self._capacity]

    def _table(self) -> np.ndarray:
        """The ring's rows, oldest first, as a float64 array [rows, 4]."""
        self.settle()
        return np.frombuffer(self.ring, dtype=np.float32).reshape(-1, 4).astype(np.float64)

    def coverage(self) -> float | None:
        return self.hits / self.n if self.n else None

    def bounds(self, coverage: float) -> tuple[float, float]:
        """Step 1's lower and upper score quantiles at ``coverage``."""
        return self._quantile((1.0 - coverage) / 2), self._quantile((1.0 + coverage) / 2)

    def _quantile(self, tau: float) -> float:
        q = self.quantiles
        if tau <= LEVELS[0] or tau >= LEVELS[-1]:  # beyond the tracked levels: a normal's shape
            middle = q[LEVELS.index(0.5)]
            edge, level = (q[0], LEVELS[0]) if tau <= LEVELS[0] else (q[-1], LEVELS[-1])
            return middle + (edge - middle) * _GAUSS.inv_cdf(tau) / _GAUSS.inv_cdf(level)
        i = next(i for i, level in enumerate(LEVELS) if level >= tau)
        below, above = LEVELS[i - 1], LEVELS[i]
        return q[i - 1] + (tau - below) / (above - below) * (q[i] - q[i - 1])

    def widths(self, horizon: int, coverage: float, steps: list[float]) -> list[float]:
        """Per step 1..horizon, its interval's width over step 1's (``steps``: the trend factors g(h)).
        Recomputed from the ring once every ``interval_refresh`` observations."""
        if horizon == 1:
            return [1.0]
        epoch = self.n // self._refresh
        if epoch != self._cache_epoch:
            self._cache_epoch, self._ratios = epoch, {}
        key = (horizon, coverage)
        ratios = self._ratios.get(key)
        if ratios is None:
            if len(self._ratios) >= 64:
                self._ratios.clear()
            # As of the last refresh boundary, so that an answer depends on the observations alone.
            since = self.n - epoch * self._refresh
            ratios = self._ratios[key] = self._width_ratios(horizon, coverage, steps, since)
        return ratios

    def _width_ratios(self, horizon: int, coverage: float, steps: list[float], skip_last: int) -> list[float]:
        out = [1.0] + [math.sqrt(h) for h in range(2, horizon + 1)]
        table = self._table()
        table = table[: len(table) - skip_last]
        if len(table) < 2:
            return out
        z, a, b, sigma = table[:, 0], table[:, 1], table[:, 2], table[:, 3]
        usable = [h for h in range(1, horizon + 1) if len(z) - h >= _MIN_SCORES]
        if len(usable) < 2:
            return out
        count = min(self._window, len(z) - usable[-1])
        end = len(z)
        scores = np.stack(
            [
                (z[end - count :] - a[end - count - h : end - h] - steps[h - 1] * b[end - count - h : end - h])
                / sigma[end - count - h : end - h]
                for h in usable
            ]
        )  # [steps, count]
        tail = (1.0 - coverage) / 2
        low, high = np.quantile(scores, [tail, 1.0 - tail], axis=1)
        width = high - low
        if width[0] <= 0:
            return out
        for j, h in enumerate(usable):
            out[h - 1] = max(1.0, float(width[j] / width[0])) if h > 1 else 1.0
        return out
