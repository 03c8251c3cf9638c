"""The data directory's layout: every file and folder the daemon keeps there, named once.

Every module that touches a file of the data directory takes its name or path from here
(``DataDir``), so that the backup, the restore, the learners and the daemon agree on them::

    events.sqlite3                    the event log (``store``), and its -wal / -shm
    jobs.sqlite3                      the job records (``jobs``); jobs.json before, imported once
    daemon.lock                       held by the running daemon (and by a restore)
    online-<i>-of-<N>.agents.sqlite3  baselines learner i's agents (``online._agentstore``)
    prompts.agents.sqlite3            the prompt learner's agents (``online._promptstore``);
                                      prompts.snapshot before, removed at start
    forecaster.snapshot               the forecaster learner's state
    models/                           the model registry (``registry``)
    tuning/                           tuning jobs' experiments (``jobs``)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

EVENTS = "events.sqlite3"
JOBS = "jobs.sqlite3"
LEGACY_JOBS = "jobs.json"
"""The job records before they moved to SQLite: imported at the first start, then renamed."""
LOCK = "daemon.lock"
MODELS = "models"
TUNING = "tuning"
SUBDIRECTORIES = (MODELS, TUNING)
"""The folders a backup copies file by file."""
SNAPSHOT_SUFFIX = ".snapshot"
STORE_SUFFIX = ".agents.sqlite3"
PROMPTS_STORE = "prompts" + STORE_SUFFIX
LEGACY_PROMPTS_SNAPSHOT = "prompts" + SNAPSHOT_SUFFIX
"""The prompt learner's whole state before its store: not read, removed at start (``online._process``)."""
FORECASTER_SNAPSHOT = "forecaster" + SNAPSHOT_SUFFIX
SQLITE_SIDE_SUFFIXES = ("-wal", "-shm", "-journal")
"""Files SQLite keeps beside a database; they belong to the database they sit next to."""


def online_store_name(shard: int | str, shards: int | str) -> str:
    """Baselines learner ``shard`` of ``shards``: its agents' store."""
    return f"online-{shard}-of-{shards}{STORE_SUFFIX}"


def is_learner_file(name: str) -> bool:
    """A learner's snapshot or store at the top of the data directory (not a temporary file)."""
    return name.endswith((SNAPSHOT_SUFFIX, STORE_SUFFIX)) and "/" not in name and not name.startswith(".")


@dataclass(frozen=True, slots=True)
class DataDir:
    """The paths of one data directory."""

    root: Path

    @property
    def events(self) -> Path:
        return self.root / EVENTS

    @property
    def jobs(self) -> Path:
        return self.root / JOBS

    @property
    def legacy_jobs(self) -> Path:
        return self.root / LEGACY_JOBS

    @property
    def lock(self) -> Path:
        return self.root / LOCK

    @property
    def models(self) -> Path:
        return self.root / MODELS

    @property
    def tuning(self) -> Path:
        return self.root / TUNING

    def online_store(self, shard: int, shards: int) -> Path:
        return self.root / online_store_name(shard, shards)

    @property
    def prompts_store(self) -> Path:
        return self.root / PROMPTS_STORE

    @property
    def forecaster_snapshot(self) -> Path:
        return self.root / FORECASTER_SNAPSHOT

    def learner_files(self) -> list[Path]:
        """The learners' snapshots and stores present now, by name."""
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.iterdir() if is_learner_file(p.name) and p.is_file())
