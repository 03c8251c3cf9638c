"""Background jobs (training now, tuning with its issue): a queue, job processes, records, cancellation."""

from swarmlearn.jobs._manager import Job, JobManager, JobSettings, JobState

__all__ = ["Job", "JobManager", "JobSettings", "JobState"]
