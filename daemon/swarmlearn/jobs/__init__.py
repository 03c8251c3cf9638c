"""Background jobs (training now, tuning with its issue): a queue, job processes, records, cancellation."""

from swarmlearn.jobs._manager import Job, JobManager, JobState

__all__ = ["Job", "JobManager", "JobState"]
