"""Job records: one row per job in ``<data_dir>/jobs.sqlite3``, written in place.

SQLite in WAL mode with ``synchronous = FULL``, whatever ``sqlite_synchronous`` says (job records
change a few times a second at most: an epoch, a trial): a submit inserts one row, and every change
of a job (its state, an epoch's progress, a trial's result) rewrites that job's row alone, in a
transaction that is on disk when the call returns. So a write costs the same however many records
are kept; ``jobs.json``, which this replaces, was rewritten whole on every change. What a query
selects on (kind, scope, model kind, state, creation time) is a column; the rest of the record
(progress, metrics, trials, the typed request) is one JSON document, made and read here only.

A data directory of an earlier release holds ``jobs.json``: ``import_legacy`` copies its records
in (a record already here is kept, so an import cut short runs again safely) and renames the file
``jobs.json.imported``.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swarmlearn._durable import fsync_directory
from swarmlearn.jobs._spec import JobRequest, TrainingRequest, TuningRequest
from swarmlearn.layout import DataDir

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    scope TEXT NOT NULL,
    model_kind TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at REAL NOT NULL,
    record TEXT NOT NULL
)"""
_COLUMNS = ("job_id", "kind", "scope", "model_kind", "state", "created_at")
_INSERT = f"INSERT INTO jobs ({', '.join(_COLUMNS)}, record) VALUES ({', '.join('?' * (len(_COLUMNS) + 1))})"


class JobState(enum.Enum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


@dataclass
class Job:
    job_id: str
    scope: str
    model_kind: str
    request: JobRequest
    state: JobState = JobState.PENDING
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    epoch: int = 0
    total_epochs: int = 0
    train_loss: float = 0.0
    val_loss: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)
    """Test-split metrics of the model it made, ``<target>.<metric>``."""
    model_version: str = ""
    """``<kind>-v<version>`` of the model it registered."""
    error: str = ""
    note: str = ""
    """What became of the model: promoted or not, and why; for tuning, the best configuration."""
    trials_done: int = 0
    total_trials: int = 0
    best_objective: float | None = None
    trials: list[dict[str, Any]] = field(default_factory=list)
    """A tuning job's trials: index, status, value, epochs, params, error."""
    config: dict[str, Any] = field(default_factory=dict)
    """A tuning job's best configuration (a training job's ``config_json``)."""

    @property
    def kind(self) -> str:
        """``training`` or ``tuning``."""
        return "training" if isinstance(self.request, TrainingRequest) else "tuning"


class JobRecords:
    """The job records of one data directory. Used from one thread (the daemon's event loop)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # isolation_level=None: each statement outside BEGIN ... COMMIT commits on its own.
        self._conn = sqlite3.connect(path, isolation_level=None)
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise RuntimeError(f"{path} has schema {version}, newer than this release's {SCHEMA_VERSION}")
            self._conn.execute(_SCHEMA)
            self._conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except BaseException:
            self._conn.close()
            raise

    def load(self) -> list[Job]:
        """Every record, oldest first."""
        rows = self._conn.execute(f"SELECT {', '.join(_COLUMNS)}, record FROM jobs ORDER BY created_at")
        return [_decode({**dict(zip(_COLUMNS, row[:-1], strict=True)), **json.loads(row[-1])}) for row in rows]

    def insert(self, job: Job) -> None:
        self._conn.execute(_INSERT, _row(job))

    def update(self, jobs: Iterable[Job]) -> None:
        """Write these jobs' rows (and only theirs), in one transaction."""
        self._write("UPDATE jobs SET state = ?, record = ? WHERE job_id = ?", (
            (job.state.value, _record(job), job.job_id) for job in jobs
        ))  # fmt: skip

    def delete(self, job_ids: Iterable[str]) -> None:
        self._write("DELETE FROM jobs WHERE job_id = ?", ((job_id,) for job_id in job_ids))

    def import_legacy(self, data_dir: Path) -> None:
        """Copy in the records of ``data_dir/jobs.json``, if there is one, then rename it
        ``jobs.json.imported``. An unreadable file is left where it is, and said so."""
        legacy = DataDir(data_dir).legacy_jobs
        if not legacy.exists():
            return
        try:
            jobs = [_decode(raw) for raw in json.loads(legacy.read_text())["jobs"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.error("job records %s unreadable (%s): not imported", legacy, exc)
            return
        self._write(_INSERT.replace("INSERT", "INSERT OR IGNORE", 1), (_row(job) for job in jobs))
        os.replace(legacy, legacy.with_name(legacy.name + ".imported"))
        fsync_directory(data_dir)
        log.info("imported %d job records from %s into %s", len(jobs), legacy, self.path)

    def close(self) -> None:
        self._conn.close()

    def _write(self, statement: str, rows: Iterable[tuple[Any, ...]]) -> None:
        rows = list(rows)
        if not rows:
            return
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.executemany(statement, rows)
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise


# -- a record and its row: the one place a job becomes JSON and back --------------------------------


def _row(job: Job) -> tuple[Any, ...]:
    return (job.job_id, job.kind, job.scope, job.model_kind, job.state.value, job.created_at, _record(job))


def _record(job: Job) -> str:
    """The fields that are not columns, as JSON (the request as its fields)."""
    fields = {f.name: getattr(job, f.name) for f in dataclasses.fields(job) if f.name not in _COLUMNS}
    return json.dumps({**fields, "request": dataclasses.asdict(job.request)})


def _decode(raw: dict[str, Any]) -> Job:
    """A job from its fields and ``kind``: a row's columns and record, or an item of ``jobs.json``
    (the same names)."""
    fields = dict(raw)
    request_type: type[JobRequest] = TrainingRequest if fields.pop("kind") == "training" else TuningRequest
    fields["request"] = request_type(**fields["request"])
    fields["state"] = JobState(fields["state"])
    return Job(**fields)
