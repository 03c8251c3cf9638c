"""SQLite event log with one writer thread that commits concurrent batches together.

Every Ingest stream hands its validated events to ``submit``; the writer thread takes whatever is
queued (up to ``group_commit_max_events``), inserts it all in one transaction, commits, and only
then resolves each submission's future. One fsync thus covers many streams' batches, and an ack
is never sent for data that is not on disk.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import json
import logging
import queue
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from swarmlearn.events import NO_ATTRIBUTES, Event, EventType
from swarmlearn.store._schema import EVENT_COLUMNS, INSERT_CHUNKS, INSERT_EVENTS, SCHEMA, SCHEMA_VERSION, UPDATE_AGENTS

log = logging.getLogger(__name__)

_Row = tuple[object, ...]
# A shared encoder: json.dumps with non-default arguments builds a new encoder on every call.
_encode_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


class StoreClosed(RuntimeError):
    """The store no longer accepts writes (the daemon is stopping)."""


@dataclass(frozen=True, slots=True)
class CommitResult:
    """What one submission became once its transaction committed."""

    accepted: int
    duplicates: int
    durable_sequence: int


@dataclass(frozen=True, slots=True)
class AgentSummary:
    agent_id: str
    event_count: int
    prompt_event_count: int
    first_timestamp: float
    last_timestamp: float
    mean_latency_ms: float
    mean_tokens_per_second: float
    mean_memory_usage_mb: float
    mean_cpu_usage_percent: float
    mean_success_rate: float


_SUMMARY_COLUMNS = """
agent_id, event_count, prompt_event_count, first_ts, last_ts,
sum_latency_ms / event_count, sum_tokens_per_second / event_count, sum_memory_usage_mb / event_count,
sum_cpu_usage_percent / event_count, sum_success_rate / event_count
"""


def _to_row(event: Event) -> _Row:
    # Event is already in column order; only the attributes need encoding.
    attributes = event.attributes
    return (*event[:13], _encode_json(attributes) if attributes else None)


def _from_row(row: Sequence[Any]) -> Event:
    (agent_id, event_id, ts, event_type, lat, tps, mem, cpu, success, text, ptok, rtok, quality, attrs) = row
    return Event(
        agent_id, event_id, ts, EventType(event_type), lat, tps, mem, cpu, success, text, ptok, rtok, quality,
        json.loads(attrs) if attrs else NO_ATTRIBUTES,
    )  # fmt: skip


def _insert(conn: sqlite3.Connection, rows: list[_Row]) -> int:
    """Insert ``rows`` (duplicates ignored) and return how many were new."""
    inserted = 0
    start = 0
    for size in INSERT_CHUNKS:
        statement = INSERT_EVENTS[size]
        while len(rows) - start >= size:
            params = list(itertools.chain.from_iterable(rows[start : start + size]))
            inserted += conn.execute(statement, params).rowcount
            start += size
    return inserted


class _Submission:
    __slots__ = ("future", "rows")

    def __init__(self, rows: list[_Row]) -> None:
        self.rows = rows
        self.future: concurrent.futures.Future[CommitResult] = concurrent.futures.Future()


class EventStore:
    """The event log. ``submit`` is thread-safe; reads use their own connection."""

    def __init__(self, path: Path, *, synchronous: str = "FULL", group_commit_max_events: int = 50_000) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._group_max = group_commit_max_events
        self._writer = self._connect(synchronous)
        self._migrate()
        self._reader = self._connect(synchronous)
        self._reader_lock = threading.Lock()
        # None asks the writer to stop once everything queued before it is committed.
        self._queue: queue.SimpleQueue[_Submission | None] = queue.SimpleQueue()
        self._closed = False
        self._close_lock = threading.Lock()
        self._sequence: int = self._writer.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]
        self._thread = threading.Thread(target=self._run_writer, name="swarmlearn-store-writer", daemon=True)
        self._thread.start()

    def _connect(self, synchronous: str) -> sqlite3.Connection:
        # isolation_level=None: transactions are explicit, so a commit is exactly where we say.
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30.0)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    def _migrate(self) -> None:
        version = self._writer.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise RuntimeError(f"{self.path} has schema {version}, newer than this release's {SCHEMA_VERSION}")
        self._writer.executescript(SCHEMA)
        self._writer.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    @property
    def durable_sequence(self) -> int:
        """Sequence number of the last committed event."""
        return self._sequence

    # -- writes -------------------------------------------------------------------------------

    def submit(self, events: Sequence[Event]) -> concurrent.futures.Future[CommitResult]:
        """Queue validated events; the future resolves once they are committed."""
        submission = _Submission([_to_row(e) for e in events])
        with self._close_lock:
            if self._closed:
                raise StoreClosed("the event store is closed")
            self._queue.put(submission)
        return submission.future

    def _run_writer(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            group = [first]
            size = len(first.rows)
            stop = False
            while size < self._group_max:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                group.append(item)
                size += len(item.rows)
            self._commit(group)
            if stop:
                return

    def _commit(self, group: list[_Submission]) -> None:
        conn = self._writer
        results: list[tuple[int, int]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            before = self._sequence
            for submission in group:
                inserted = _insert(conn, submission.rows)
                results.append((inserted, len(submission.rows) - inserted))
            sequence = conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]
            if sequence > before:
                conn.execute(UPDATE_AGENTS, (before,))
            conn.execute("COMMIT")
        except BaseException as exc:  # the futures must learn of any failure, or acks hang
            log.exception("event log commit failed; %d submissions not stored", len(group))
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            for submission in group:
                submission.future.set_exception(exc)
            return
        self._sequence = sequence
        for submission, (accepted, duplicates) in zip(group, results, strict=True):
            submission.future.set_result(CommitResult(accepted, duplicates, sequence))

    def close(self) -> None:
        """Commit everything already submitted, then close. Idempotent."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        self._thread.join()
        self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._writer.close()
        with self._reader_lock:
            self._reader.close()

    # -- reads --------------------------------------------------------------------------------

    def agent_summary(self, agent_id: str) -> AgentSummary | None:
        with self._reader_lock:
            row = self._reader.execute(
                f"SELECT {_SUMMARY_COLUMNS} FROM agents WHERE agent_id = ?", (agent_id,)
            ).fetchone()
        return None if row is None else AgentSummary(*row)

    def list_agents(self, *, after: str = "", limit: int = 100) -> list[AgentSummary]:
        """Agents in id order, starting after ``after`` (keyset pagination)."""
        with self._reader_lock:
            rows = self._reader.execute(
                f"SELECT {_SUMMARY_COLUMNS} FROM agents WHERE agent_id > ? ORDER BY agent_id LIMIT ?",
                (after, limit),
            ).fetchall()
        return [AgentSummary(*row) for row in rows]

    def count(self) -> int:
        with self._reader_lock:
            return int(self._reader.execute("SELECT count(*) FROM events").fetchone()[0])

    def has_event(self, agent_id: str, event_id: str) -> bool:
        with self._reader_lock:
            row = self._reader.execute(
                "SELECT 1 FROM events WHERE agent_id = ? AND event_id = ?", (agent_id, event_id)
            ).fetchone()
        return row is not None

    def iter_events(
        self, *, agent_id: str | None = None, after_seq: int = 0, chunk: int = 10_000
    ) -> Iterator[tuple[int, Event]]:
        """Stored events in log order as ``(seq, event)``, read in chunks so memory stays flat."""
        columns = "seq, " + EVENT_COLUMNS
        where = "seq > ?" + (" AND agent_id = ?" if agent_id is not None else "")
        last = after_seq
        while True:
            params: tuple[object, ...] = (last,) if agent_id is None else (last, agent_id)
            with self._reader_lock:
                rows = self._reader.execute(
                    f"SELECT {columns} FROM events WHERE {where} ORDER BY seq LIMIT {int(chunk)}", params
                ).fetchall()
            for row in rows:
                yield row[0], _from_row(row[1:])
            if len(rows) < chunk:
                return
            last = rows[-1][0]
