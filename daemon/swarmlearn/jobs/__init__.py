"""Background jobs (training and tuning): a queue, job processes, typed requests and specs, records
in SQLite, cancellation."""

from swarmlearn.jobs._manager import JobManager
from swarmlearn.jobs._records import Job, JobRecords, JobState
from swarmlearn.jobs._spec import JobSettings, TrainingRequest, TrainingSpec, TuningRequest, TuningSpec

__all__ = [
    "Job",
    "JobManager",
    "JobRecords",
    "JobSettings",
    "JobState",
    "TrainingRequest",
    "TrainingSpec",
    "TuningRequest",
    "TuningSpec",
]
