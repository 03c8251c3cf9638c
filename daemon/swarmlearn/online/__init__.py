"""Online learning: per-agent incremental baselines, intervals and drift, fed from the event log."""

from swarmlearn.online._baselines import BASELINES, Baseline
from swarmlearn.online._config import TARGETS, OnlineConfig
from swarmlearn.online._learner import AgentLearner, AgentStats, OnlineState
from swarmlearn.online._target import BaselineError, Forecast, Point, TargetStats

__all__ = [
    "BASELINES",
    "TARGETS",
    "AgentLearner",
    "AgentStats",
    "Baseline",
    "BaselineError",
    "Forecast",
    "OnlineConfig",
    "OnlineState",
    "Point",
    "TargetStats",
]
