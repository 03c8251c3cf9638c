"""Online learning: per-agent experts, their aggregate, intervals and drift, fed from the event log.

The daemon process uses the light half (the learner process's handle, the settings and the result
types) and never imports River; the learners themselves (``OnlineState`` and below) run in the
learner process and are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from swarmlearn._lazy import lazy_attributes
from swarmlearn.online._config import LOG_TARGETS, OnlineConfig, WorkerSettings
from swarmlearn.online._process import Answer, Drift, OnlineLearner
from swarmlearn.online._results import AgentStats, BaselineError, Forecast, Point, TargetStats

if TYPE_CHECKING:
    from swarmlearn.online._baselines import EXPERTS
    from swarmlearn.online._learner import AgentLearner, OnlineState

_LAZY = {
    "EXPERTS": "swarmlearn.online._baselines",
    "AgentLearner": "swarmlearn.online._learner",
    "OnlineState": "swarmlearn.online._learner",
}

__getattr__ = lazy_attributes(__name__, _LAZY)


__all__ = [
    "EXPERTS",
    "LOG_TARGETS",
    "AgentLearner",
    "AgentStats",
    "Answer",
    "BaselineError",
    "Drift",
    "Forecast",
    "OnlineConfig",
    "OnlineLearner",
    "OnlineState",
    "Point",
    "TargetStats",
    "WorkerSettings",
]
