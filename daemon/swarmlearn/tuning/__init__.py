"""Hyperparameter search with Ax: search spaces from the config dataclasses, four methods, resumable.

Torch and Ax are imported by the tuning job's process and its trial workers, never by the daemon,
which checks a request's search space in a short child process (``check_space``).
"""

from swarmlearn.tuning._hyperband import Rung, plan, total_epochs
from swarmlearn.tuning._ray import ClusterUnavailable, connect_ray
from swarmlearn.tuning._space import Parameter, SearchSpace, config_for, default_space, parse_space
from swarmlearn.tuning._trial import TrialSetup, make_executor, make_ray_executor, train_trial
from swarmlearn.tuning._tuner import (
    Method,
    Objective,
    TrialRecord,
    TrialRequest,
    TrialResult,
    Tuner,
    TunerConfig,
    TuningCancelled,
    TuningProgress,
    TuningResult,
    main_check,
)

__all__ = [
    "ClusterUnavailable",
    "Method",
    "Objective",
    "Parameter",
    "Rung",
    "SearchSpace",
    "TrialRecord",
    "TrialRequest",
    "TrialResult",
    "TrialSetup",
    "Tuner",
    "TunerConfig",
    "TuningCancelled",
    "TuningProgress",
    "TuningResult",
    "config_for",
    "connect_ray",
    "default_space",
    "main_check",
    "make_executor",
    "make_ray_executor",
    "parse_space",
    "plan",
    "total_epochs",
    "train_trial",
]
