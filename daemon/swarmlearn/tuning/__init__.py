"""Hyperparameter search with Ax: search spaces from the config dataclasses, four methods, resumable.

Torch and Ax are imported by the tuning job's process and its trial workers, never by the daemon,
which checks a request's search space in a short child process (``check_space``).
"""

from swarmlearn.tuning._hyperband import Rung, plan, total_epochs
from swarmlearn.tuning._space import Parameter, SearchSpace, default_space, parse_space
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
    "Method",
    "Objective",
    "Parameter",
    "Rung",
    "SearchSpace",
    "TrialRecord",
    "TrialRequest",
    "TrialResult",
    "Tuner",
    "TunerConfig",
    "TuningCancelled",
    "TuningProgress",
    "TuningResult",
    "default_space",
    "main_check",
    "parse_space",
    "plan",
    "total_epochs",
]
