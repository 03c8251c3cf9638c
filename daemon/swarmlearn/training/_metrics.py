"""Forecast metrics per target, never pooled across targets (their units differ).

All steps of all windows count alike: with H > 1 a metric is over W·H points. MASE divides the MAE
by the one-step naive MAE on the training rows (``StreamDataLoader.naive_scale``), as in
``EVALUATION.md``, so a forecast of H > 1 steps usually scores above 1 even when it is good, and a
model is judged against the naive forecast on the same windows (``StreamDataLoader.naive``), which
every report carries beside it. Undefined values (R² of a constant target, MASE of an agent without
training rows) are NaN.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt


class TargetMetrics(NamedTuple):
    mse: float
    mae: float
    r2: float
    mase: float
    accuracy: float | None
    """Share of points with |error| below the target's threshold; None when it has none."""


class Evaluation(NamedTuple):
    targets: dict[str, TargetMetrics]
    windows: int

    def flat(self) -> dict[str, float]:
        """``{"<target>.<metric>": value}``, the form the registry and job metrics use."""
        return {
            f"{target}.{name}": float(value)
            for target, metrics in self.targets.items()
            for name, value in metrics._asdict().items()
            if value is not None
        }

    def geometric_mase(self) -> float:
        """The geometric mean of the targets' MASE: one number to rank models of the same windows by, the
        geometric mean of their per-target MAE ratios, as the registry's promotion rule compares them.

        Like that rule (``compare``), it leaves out a target without a MASE: one that never changed over
        the training rows (a success rate of 1 throughout, common in real streams) has no naive scale,
        and counting it made every model of such a stream NaN, so that every tuning trial failed. NaN
        when no target has one; a MASE of 0 counts as 1e-12, as there."""
        values = [m.mase for m in self.targets.values() if math.isfinite(m.mase)]
        if not values:
            return math.nan
        return math.exp(sum(math.log(max(v, 1e-12)) for v in values) / len(values))


def evaluate(
    y_true: npt.NDArray[np.floating],
    y_pred: npt.NDArray[np.floating],
    *,
    targets: Sequence[str],
    naive_scale: Sequence[float] | npt.NDArray[np.floating],
    thresholds: Mapping[str, float],
) -> Evaluation:
    """Metrics of forecasts ``y_pred`` against ``y_true``, both ``[W, H, T]`` in original units."""
    if y_true.shape != y_pred.shape or y_true.ndim != 3 or y_true.shape[2] != len(targets):
        raise ValueError(f"expected two [W, H, {len(targets)}] arrays, got {y_true.shape} and {y_pred.shape}")
    true = y_true.astype(np.float64).reshape(-1, len(targets))  # [W·H, T]
    error = y_pred.astype(np.float64).reshape(-1, len(targets)) - true  # [W·H, T]
    result = {}
    for t, target in enumerate(targets):
        e, y = error[:, t], true[:, t]
        if not len(e):
            result[target] = TargetMetrics(math.nan, math.nan, math.nan, math.nan, None)
            continue
        mse = float(np.mean(e**2))
        mae = float(np.mean(np.abs(e)))
        total = float(np.sum((y - y.mean()) ** 2))
        r2 = 1.0 - float(np.sum(e**2)) / total if total > 0 else math.nan
        scale = float(naive_scale[t])
        mase = mae / scale if scale > 0 else math.nan
        threshold = thresholds.get(target)
        accuracy = float(np.mean(np.abs(e) < threshold)) if threshold is not None else None
        result[target] = TargetMetrics(mse, mae, r2, mase, accuracy)
    return Evaluation(result, int(y_true.shape[0]))


class Comparison(NamedTuple):
    """A challenger against one rival, on the same test windows at the same horizon."""

    ratio: float
    """Geometric mean over targets of the challenger's MAE over the rival's (below 1: the challenger is better)."""
    p_value: float
    """One-sided Diebold-Mariano test that the challenger's loss is lower (``diebold_mariano``)."""
    windows: int


def compare(
    y_true: npt.NDArray[np.floating],
    challenger: npt.NDArray[np.floating],
    rival: npt.NDArray[np.floating],
    *,
    naive_scale: Sequence[float] | npt.NDArray[np.floating],
    horizon: int,
) -> Comparison:
    """``challenger`` and ``rival`` forecasts of the same windows ``[W, H, T]`` against ``y_true``.

    The ratio is the promotion rule's effect size (errors of different targets are never pooled: a
    ratio per target, then their geometric mean). The test is on per-window losses, each the mean
    over steps and targets of the absolute error divided by the target's naive scale (so a
    millisecond and a success rate weigh alike), paired window by window."""
    scale = np.asarray(naive_scale, dtype=np.float64)
    # A target that never changed over the training rows (a success rate of 1 throughout) has no naive
    # scale: any forecast of it is about perfect, and the ratio of two near-zero errors says nothing.
    varies = np.isfinite(scale) & (scale > 0)
    if not varies.any():
        return Comparison(math.nan, 1.0, len(y_true))
    scale = np.where(varies, scale, 1.0)
    mine = np.abs(challenger.astype(np.float64) - y_true) / scale  # [W, H, T]
    theirs = np.abs(rival.astype(np.float64) - y_true) / scale
    logs = []
    for t in range(y_true.shape[2]):
        a, b = float(mine[:, :, t].mean()), float(theirs[:, :, t].mean())
        if varies[t] and math.isfinite(a) and math.isfinite(b) and b > 0:
            logs.append(math.log(max(a, 1e-12) / b))
    ratio = math.exp(sum(logs) / len(logs)) if logs else math.nan
    d = mine[:, :, varies].mean(axis=(1, 2)) - theirs[:, :, varies].mean(axis=(1, 2))  # [W]: < 0: challenger better
    return Comparison(ratio, diebold_mariano(d, horizon), len(d))


def diebold_mariano(d: npt.NDArray[np.floating], horizon: int) -> float:
    """P-value of the one-sided Diebold-Mariano test that the loss differences ``d`` (challenger minus
    rival, one per forecast) have a negative mean, with Harvey, Leybourne & Newbold's (1997)
    small-sample correction and a Student t with n - 1 degrees of freedom.

    The variance of the mean is a Newey-West (Bartlett) long-run variance with ``max(h - 1, n^(1/3))``
    lags: h-step forecasts of overlapping windows are correlated up to lag h - 1 by construction, and
    consecutive windows of one agent share most of their inputs, so their loss differences are too.
    A difference that is 0 throughout (a tie) gives 1."""
    from scipy.stats import t as student  # type: ignore[import-untyped]  # River's dependency; jobs only

    d = np.asarray(d, dtype=np.float64)
    n = len(d)
    if n < 2:
        return 1.0
    mean = float(d.mean())
    centered = d - mean
    lags = min(n - 1, max(horizon - 1, int(n ** (1 / 3))))
    variance = float(centered @ centered) / n
    for k in range(1, lags + 1):
        variance += 2.0 * (1.0 - k / (lags + 1)) * float(centered[k:] @ centered[:-k]) / n
    if variance <= 0.0:
        return 0.0 if mean < 0 else 1.0
    h = horizon
    correction = math.sqrt(max(n + 1 - 2 * h + h * (h - 1) / n, 1e-12) / n)
    statistic = mean / math.sqrt(variance / n) * correction
    return float(student.cdf(statistic, df=n - 1))


QUANTILE_LEVELS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.975,
    0.99, 0.995,
)  # fmt: skip
"""Levels at which a torch model's interval quantiles are stored; a coverage between two is interpolated."""


def interval_quantiles(residuals: npt.NDArray[np.floating], scales: npt.NDArray[np.floating]) -> list[Any]:
    """``[level][step][target]`` quantiles of residuals ``[W, H, T]`` (truth - forecast) divided by
    each window's scale of the targets ``[W, T]`` (the scaler's, what the model's inputs were divided by):
    scale-aware conformal quantiles, so an agent whose latencies are twenty times another's gets
    intervals twenty times as wide. Calibrated on a split the promotion gate does not use."""
    if len(residuals) == 0:
        return []
    safe = np.where(scales > 0, scales, 1.0)[:, None, :]  # [W, 1, T]
    levels: list[Any] = np.quantile(residuals / safe, QUANTILE_LEVELS, axis=0).tolist()
    return levels


def interval_offsets(quantiles: npt.NDArray[np.floating], level: float) -> npt.NDArray[np.float64]:
    """``[H, T]``: the quantile at ``level`` of stored ``quantiles [levels, H, T]``, interpolated
    between the stored levels; beyond the outermost, extrapolated from the median with the normal
    distribution's shape (so every coverage below 1 has finite bounds)."""
    q = np.asarray(quantiles, dtype=np.float64)
    if level <= QUANTILE_LEVELS[0] or level >= QUANTILE_LEVELS[-1]:
        from statistics import NormalDist

        gauss, middle = NormalDist(), q[QUANTILE_LEVELS.index(0.5)]
        edge, at = (q[0], QUANTILE_LEVELS[0]) if level <= QUANTILE_LEVELS[0] else (q[-1], QUANTILE_LEVELS[-1])
        result: npt.NDArray[np.float64] = middle + (edge - middle) * (gauss.inv_cdf(level) / gauss.inv_cdf(at))
        return result
    i = next(i for i, at in enumerate(QUANTILE_LEVELS) if at >= level)
    a, b = QUANTILE_LEVELS[i - 1], QUANTILE_LEVELS[i]
    result = q[i - 1] + (level - a) / (b - a) * (q[i] - q[i - 1])
    return result


def interval_coverage(
    y_true: npt.NDArray[np.floating],
    predicted: npt.NDArray[np.floating],
    scales: npt.NDArray[np.floating],
    quantiles: Sequence[Any],
    coverage: float = 0.8,
) -> npt.NDArray[np.float64]:
    """``[T]``: the share of points of ``y_true [W, H, T]`` inside the intervals at ``coverage``
    that ``quantiles`` (``interval_quantiles``) give around ``predicted`` with each window's ``scales``."""
    q = np.asarray(quantiles, dtype=np.float64)
    low = predicted + interval_offsets(q, (1 - coverage) / 2)[None] * scales[:, None, :]
    high = predicted + interval_offsets(q, (1 + coverage) / 2)[None] * scales[:, None, :]
    inside: npt.NDArray[np.float64] = ((low <= y_true) & (y_true <= high)).mean(axis=(0, 1))
    return inside
