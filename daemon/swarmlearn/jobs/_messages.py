"""The messages between the daemon (``JobManager``) and a job's process (``_train``, ``_tune``), one
frozen dataclass each, so mypy checks both ends and each end ``match``-es on the type. The first
message to a job's process is its spec (``_spec.TrainingSpec`` or ``TuningSpec``).

They travel pickled in ``multiprocessing.connection`` framing (``_channel``), and a Ray training task
yields the same ``EpochDone`` to the job's process, which passes it on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# -- from a job's process ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EpochDone:
    """A training job's progress, after every epoch."""

    epoch: int
    max_epochs: int
    train_loss: float
    val_loss: float


@dataclass(frozen=True, slots=True)
class TrialDone:
    """A tuning job's progress, after every trial's result."""

    trials_done: int
    total_trials: int
    best_value: float | None
    trial: dict[str, Any]
    """The trial's record as ``Job.trials`` keeps it (``_tune.trial_json``)."""


@dataclass(frozen=True, slots=True)
class Done:
    """The job's result: what the daemon registers (training) or records (tuning)."""

    result: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Cancelled:
    """The job ended on ``Cancel`` (or on ``Stop``, for a training job)."""


@dataclass(frozen=True, slots=True)
class Paused:
    """A tuning job ended on ``Stop``: its experiment is kept, to resume when the daemon starts."""


@dataclass(frozen=True, slots=True)
class JobFailed:
    reason: str


Outcome = Done | Cancelled | Paused | JobFailed
FromJob = EpochDone | TrialDone | Outcome

# -- to a job's process -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cancel:
    """End the job; a tuning job's running trials fail."""


@dataclass(frozen=True, slots=True)
class Stop:
    """The daemon is stopping: a tuning job keeps its experiment to resume; a training job cancels."""


ToJob = Cancel | Stop
