"""The durable event log: SQLite in WAL mode, group commit, idempotent on (agent_id, event_id)."""

from swarmlearn.store._backup import BackupError, BackupFile, BackupManifest, backup, restore, verify_backup
from swarmlearn.store._sqlite import AgentSummary, CommitResult, EventStore, StoreClosed

__all__ = [
    "AgentSummary",
    "BackupError",
    "BackupFile",
    "BackupManifest",
    "CommitResult",
    "EventStore",
    "StoreClosed",
    "backup",
    "restore",
    "verify_backup",
]
