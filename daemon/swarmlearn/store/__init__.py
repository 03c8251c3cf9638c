"""The durable event log: SQLite in WAL mode, group commit, idempotent on (agent_id, event_id)."""

from swarmlearn.store._backup import BackupError, BackupFile, BackupManifest, backup, restore, verify_backup
from swarmlearn.store._sqlite import (
    AgentSummary,
    CommitResult,
    EventStore,
    StoreClosed,
    agent_shard,
    event_at,
    open_reader,
    read_events,
)
from swarmlearn.store._writer import last_sequence

__all__ = [
    "AgentSummary",
    "BackupError",
    "BackupFile",
    "BackupManifest",
    "CommitResult",
    "EventStore",
    "StoreClosed",
    "agent_shard",
    "backup",
    "event_at",
    "last_sequence",
    "open_reader",
    "read_events",
    "restore",
    "verify_backup",
]
