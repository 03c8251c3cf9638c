"""What the online layer answers: forecasts and statistics, plain NamedTuples.

Kept apart from the learners so that the daemon process, which only passes these on, never
imports River (about a second of start-up, mostly scipy.stats through river.linear_model).
"""

from __future__ import annotations

from typing import NamedTuple


class Point(NamedTuple):
    value: float
    lower: float
    upper: float


class Forecast(NamedTuple):
    kind: str
    """What answered: ``online:aggregate`` or ``torch:<kind>``."""
    mae: float | None
    """Its progressive-validation MAE over all scored events; None while warming up."""
    points: list[Point]
    """Steps 1..horizon."""


class BaselineError(NamedTuple):
    mae: float | None
    scored: int
    weight: float
    """Its weight in the aggregate now."""


class TargetStats(NamedTuple):
    best: str
    """The expert with the largest weight, e.g. ``online:ewma``."""
    answer_mae: float | None
    """Progressive-validation MAE of what this learner answered (the aggregate)."""
    baselines: dict[str, BaselineError]
    drift_count: int
    last_drift_timestamp: float | None
    last_value: float | None
    coverage: float | None
    """Share of observations inside the 80 % interval made before them."""


class AgentStats(NamedTuple):
    events: int
    first_timestamp: float | None
    last_timestamp: float | None
    targets: dict[str, TargetStats]
    features: dict[str, float]
    """Running statistics and the last event's features, by name (see ``RunningStats.features``)."""
