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
from typing import NamedTuple

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
        geometric mean of their per-target MAE ratios, as the registry's promotion rule compares them."""
        values = [m.mase for m in self.targets.values()]
        if not values or not all(math.isfinite(v) and v > 0 for v in values):
            return math.nan
        return math.exp(sum(math.log(v) for v in values) / len(values))


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
