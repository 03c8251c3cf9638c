"""Background jobs (training now, tuning with its issue): a queue, job processes, records, cancellation."""

from swarmlearn.jobs._manager import MODEL_KINDS, Job, JobManager, JobState

__all__ = ["MODEL_KINDS", "Job", "JobManager", "JobState"]
