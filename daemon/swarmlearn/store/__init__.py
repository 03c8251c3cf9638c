"""The durable event log: SQLite in WAL mode, group commit, idempotent on (agent_id, event_id)."""

from swarmlearn.store._backup import (
    BackupError,
    BackupFile,
    BackupManifest,
    backup,
    restore,
    verify_backup,
)
from swarmlearn.store._retention import SLICE_EVENTS, Retention, SweepResult
from swarmlearn.store._sqlite import (
    AgentSummary,
    CommitResult,
    EventStore,
    StoreClosed,
    WriteFailed,
    agent_shard,
    agents_after,
    count_before,
    event_at,
    metric_counts,
    open_reader,
    read_agent_latest,
    read_events,
    read_latest,
    read_range,
)
from swarmlearn.store._writer import last_sequence

__all__ = [
    "SLICE_EVENTS",
    "AgentSummary",
    "BackupError",
    "BackupFile",
    "BackupManifest",
    "CommitResult",
    "EventStore",
    "Retention",
    "StoreClosed",
    "SweepResult",
    "WriteFailed",
    "agent_shard",
    "agents_after",
    "backup",
    "count_before",
    "event_at",
    "last_sequence",
    "metric_counts",
    "open_reader",
    "read_agent_latest",
    "read_events",
    "read_latest",
    "read_range",
    "restore",
    "verify_backup",
]
