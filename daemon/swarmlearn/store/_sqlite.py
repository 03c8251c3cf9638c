"""SQLite event log whose writer process commits concurrent batches together.

Every Ingest stream hands its validated events to ``submit``; the writer process (``_writer``)
takes whatever is queued (up to ``group_commit_max_events``), inserts it in one transaction,
commits, and only then reports back, which resolves each submission's future. One fsync thus
covers many streams' batches, and an ack is never sent for data that is not on disk.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import json
import logging
import os
import queue
import socket
import sqlite3
import subprocess
import sys
import threading
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from swarmlearn.events import METRICS, NO_ATTRIBUTES, Event, EventType
from swarmlearn.store._retention import Retention, SweepResult
from swarmlearn.store._schema import EVENT_COLUMNS
from swarmlearn.store._writer import connect

log = logging.getLogger(__name__)

_WRITER_MAIN = "from swarmlearn.store._writer import main; main()"

_Row = tuple[object, ...]
_Request = list[_Row] | Retention | None
"""What the writer is sent per submission: rows to insert, a sweep, or None (a probe)."""
# A shared encoder: json.dumps with non-default arguments builds a new encoder on every call.
_encode_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


class StoreClosed(RuntimeError):
    """The store no longer accepts writes (the daemon is stopping)."""


class WriteFailed(OSError):
    """A commit failed (disk full, I/O error, ...): nothing of the submission was stored, and the same
    submission may succeed later."""


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
    mean_latency_ms: float | None
    """Over the events that carried the metric; None when none did (and so for the others)."""
    mean_tokens_per_second: float | None
    mean_memory_usage_mb: float | None
    mean_cpu_usage_percent: float | None
    mean_success_rate: float | None


# A mean is over the events that carried the metric; NULL (None) when none did (x / 0 is NULL).
_SUMMARY_COLUMNS = "agent_id, event_count, prompt_event_count, first_ts, last_ts, " + ", ".join(
    f"sum_{m} / n_{m}" for m in METRICS
)


def _to_row(event: Event) -> _Row:
    # Event is already in column order; only the attributes need encoding.
    attributes = event.attributes
    return (*event[:13], _encode_json(attributes) if attributes else None)


_TYPES = (None, *EventType)  # by number: a tuple index instead of an enum call, per event read


def _from_row(row: Sequence[Any]) -> Event:
    (agent_id, event_id, ts, event_type, lat, tps, mem, cpu, success, text, ptok, rtok, quality, attrs) = row
    return Event(
        agent_id, event_id, ts, _TYPES[event_type], lat, tps, mem, cpu, success, text, ptok, rtok, quality,
        json.loads(attrs) if attrs else NO_ATTRIBUTES,
    )  # fmt: skip


class EventStore:
    """The event log. ``submit`` is thread-safe; reads use their own connection in this process.

    Writes happen in a child process (see ``_writer``); this object keeps the futures of the
    submissions in flight and resolves them from the child's reports.
    """

    def __init__(
        self,
        path: Path,
        *,
        synchronous: str = "FULL",
        group_commit_max_events: int = 50_000,
        on_writer_exit: Callable[[str], object] | None = None,
        on_write_failure: Callable[[str | None], object] | None = None,
    ) -> None:
        """``on_writer_exit(reason)`` is called (on a store thread) if the writer process ends
        before ``close()``: from then on nothing can be stored. ``on_write_failure(reason)`` is called
        (on a store thread) when a commit fails after the last one succeeded, and
        ``on_write_failure(None)`` when one succeeds again."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._on_writer_exit = on_writer_exit
        self._on_write_failure = on_write_failure
        self._write_failure: str | None = None
        ours, theirs = socket.socketpair()
        with ours, theirs:
            self._process = subprocess.Popen(
                [sys.executable, "-c", _WRITER_MAIN, str(theirs.fileno()), str(path), synchronous,
                 str(group_commit_max_events)],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                # The host may have found swarmlearn through sys.path edits, not PYTHONPATH.
                env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
            )  # fmt: skip
            self._channel = Connection(os.dup(ours.fileno()))
        try:
            kind, value = self._channel.recv()
        except EOFError:
            kind, value = "error", f"the writer process exited with {self._process.wait()}"
        if kind != "ready":
            self._process.wait()
            self._channel.close()
            raise RuntimeError(f"cannot open the event log {path}: {value}")
        self._sequence: int = value
        self._pending: dict[int, concurrent.futures.Future[Any]] = {}
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self._closed = False
        # Sending happens on a thread of its own: a send blocks while the writer is busy
        # committing, and submit() is called on the event loop, which must not block.
        self._outgoing: queue.SimpleQueue[tuple[int, _Request] | None] = queue.SimpleQueue()
        self._sender = threading.Thread(target=self._send, name="swarmlearn-store-send", daemon=True)
        self._receiver = threading.Thread(target=self._receive, name="swarmlearn-store-acks", daemon=True)
        self._sender.start()
        self._receiver.start()
        self._reader = connect(path, synchronous)
        self._reader_lock = threading.Lock()

    @property
    def durable_sequence(self) -> int:
        """Sequence number of the last committed event."""
        return self._sequence

    @property
    def write_failure(self) -> str | None:
        """Why the last commit failed; None once one succeeded (or none failed)."""
        return self._write_failure

    # -- writes -------------------------------------------------------------------------------

    def submit(self, events: Sequence[Event]) -> concurrent.futures.Future[CommitResult]:
        """Queue validated events; the future resolves once they are committed, or fails with
        ``WriteFailed`` (nothing stored) or ``StoreClosed``."""
        return self._enqueue([_to_row(e) for e in events])

    def probe(self) -> concurrent.futures.Future[CommitResult]:
        """Commit a write that stores nothing, to learn whether the disk takes writes again; its
        outcome counts for ``write_failure`` like any commit's."""
        return self._enqueue(None)

    def sweep(self, rule: Retention) -> concurrent.futures.Future[SweepResult]:
        """Delete the log's oldest events as ``rule`` says, one slice at a time between commits
        (``_retention``); the future resolves once the sweep is over, or fails with ``WriteFailed``
        (what its finished slices deleted stays deleted) or ``StoreClosed``. One at a time: a sweep
        asked for while another runs replaces it, and the first one's future fails."""
        return self._enqueue(rule)

    def _enqueue(self, request: _Request) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        # Running futures cannot be cancelled: a stream whose client vanished cancels only its own
        # asyncio wrapper, and the receiver thread can always resolve this one.
        future.set_running_or_notify_cancel()
        with self._lock:
            if self._closed:
                raise StoreClosed("the event store is closed")
            submission_id = next(self._ids)
            self._pending[submission_id] = future
            self._outgoing.put((submission_id, request))
        return future

    def _send(self) -> None:
        # Everything queued goes in one message: small batches would otherwise cost one pickle
        # and one pipe round trip each. None (stop) is sent alone, after what precedes it.
        while True:
            first = self._outgoing.get()
            message: list[tuple[int, _Request]] | None = None
            if first is not None:
                message = [first]
                while True:
                    try:
                        item = self._outgoing.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        self._outgoing.put(None)
                        break
                    message.append(item)
            try:
                self._channel.send(message)
            except OSError:  # the writer is gone; _receive fails what is pending
                return
            if message is None:
                return

    def _receive(self) -> None:
        while True:
            try:
                message = self._channel.recv()
            except (EOFError, OSError):
                break
            kind = message[0]
            if kind == "done":
                _, results, sequence = message
                self._sequence = sequence
                self._writes_fail(None)
                for submission_id, inserted, duplicates in results:
                    self._pending.pop(submission_id).set_result(CommitResult(inserted, duplicates, sequence))
            elif kind == "swept":
                _, submission_id, result, reason = message
                if reason is None:
                    self._pending.pop(submission_id).set_result(result)
                else:
                    log.error("event log retention sweep failed: %s", reason)
                    self._pending.pop(submission_id).set_exception(WriteFailed(f"retention sweep failed: {reason}"))
            else:
                _, submission_ids, reason = message
                log.error("event log commit failed; %d submissions not stored: %s", len(submission_ids), reason)
                self._writes_fail(reason)
                for submission_id in submission_ids:
                    self._pending.pop(submission_id).set_exception(
                        WriteFailed(f"the event log cannot be written ({reason}); nothing of this batch was stored")
                    )
        with self._lock:
            unexpected = not self._closed
            self._closed = True
            orphans, self._pending = self._pending, {}
        for future in orphans.values():
            future.set_exception(StoreClosed("the event log writer exited"))
        if unexpected:
            self._outgoing.put(None)  # release the sender thread
            reason = f"the event log writer exited with {self._process.wait()}, {len(orphans)} submissions in flight"
            log.critical(reason)
            if self._on_writer_exit is not None:
                self._on_writer_exit(reason)

    def _writes_fail(self, reason: str | None) -> None:
        changed = (reason is None) != (self._write_failure is None)
        self._write_failure = reason
        if changed:
            if reason is None:
                log.warning("the event log takes writes again")
            if self._on_write_failure is not None:
                self._on_write_failure(reason)

    def close(self) -> None:
        """Commit everything already submitted, then stop the writer. Idempotent."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._outgoing.put(None)
        self._receiver.join()
        self._sender.join()
        self._process.wait()
        self._channel.close()
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

    def agent_ids(self) -> list[str]:
        with self._reader_lock:
            return [row[0] for row in self._reader.execute("SELECT agent_id FROM agents")]

    def totals(self) -> tuple[int, int]:
        """(events stored, agents), from the per-agent summaries: O(agents), not O(events)."""
        with self._reader_lock:
            events, agents = self._reader.execute(
                "SELECT coalesce(sum(event_count), 0), count(*) FROM agents"
            ).fetchone()
        return int(events), int(agents)

    def size_bytes(self) -> int:
        """Bytes on disk of the log: the database and its write-ahead log."""
        paths = (self.path, self.path.with_name(self.path.name + "-wal"))
        return sum(p.stat().st_size for p in paths if p.exists())

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
        last = after_seq
        while True:
            with self._reader_lock:
                events = read_events(self._reader, after_seq=last, limit=chunk, agent_id=agent_id)
            yield from events
            if len(events) < chunk:
                return
            last = events[-1][0]


def agent_shard(agent_id: str, shards: int) -> int:
    """Which of ``shards`` partitions an agent's events belong to: stable across processes and
    releases (CRC-32 of the id), unlike ``hash()``."""
    return zlib.crc32(agent_id.encode()) % shards


def open_reader(path: Path) -> sqlite3.Connection:
    """A read-only connection to the log for another process (the writer must have created it)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.execute("PRAGMA query_only=ON")
    conn.create_function("swarmlearn_shard", 2, agent_shard, deterministic=True)
    return conn


def read_events(
    conn: sqlite3.Connection,
    *,
    after_seq: int,
    limit: int,
    agent_id: str | None = None,
    upto: int | None = None,
    shard: tuple[int, int] | None = None,
    text: bool = True,
) -> list[tuple[int, Event]]:
    """Up to ``limit`` committed events with ``after_seq < seq <= upto``, in log order, as ``(seq, event)``;
    only one agent's, or only those of partition ``shard = (index, count)`` (needs ``open_reader``).
    ``text=False`` leaves the prompt text and the attributes out (None and empty), for readers that
    never look at them: fetching the text and decoding the attributes' JSON was about a tenth of a
    learner's cost per event."""
    where = ["seq > ?"]
    params: list[object] = [after_seq]
    if upto is not None:
        where.append("seq <= ?")
        params.append(upto)
    if agent_id is not None:
        where.append("agent_id = ?")
        params.append(agent_id)
    if shard is not None:
        where.append("swarmlearn_shard(agent_id, ?) = ?")
        params += (shard[1], shard[0])
    rows = conn.execute(
        f"SELECT seq, {_columns(text)} FROM events WHERE {' AND '.join(where)} ORDER BY seq LIMIT ?", (*params, limit)
    )
    return [(row[0], _from_row(row[1:])) for row in rows]


def _columns(text: bool) -> str:
    return EVENT_COLUMNS if text else EVENT_COLUMNS.replace("prompt_text", "NULL").replace("attributes", "NULL")


def read_latest(
    conn: sqlite3.Connection, *, upto: int, limit: int, agent_id: str | None = None, text: bool = True
) -> list[tuple[int, Event]]:
    """The last ``limit`` committed events with ``seq <= upto`` (one agent's, or all), in log order.

    A walk down the sequence numbers from ``upto`` that stops after ``limit`` (``NOT INDEXED``: for
    one agent the planner would otherwise read all its events through the (agent_id, event_id) index
    and sort them), so the cost follows what is read, not the log's length."""
    where, params = _range(None, upto + 1, agent_id)
    rows = conn.execute(
        f"SELECT seq, {_columns(text)} FROM events NOT INDEXED WHERE {where} ORDER BY seq DESC LIMIT ?",
        (*params, limit),
    ).fetchall()
    rows.reverse()
    return [(row[0], _from_row(row[1:])) for row in rows]


def read_agent_latest(
    conn: sqlite3.Connection, agent_id: str, *, upto: int, limit: int, text: bool = True
) -> list[tuple[int, Event]]:
    """One agent's last ``limit`` committed events with ``seq <= upto``, in log order.

    Through the (agent_id, event_id) index: the sequence numbers of the agent's events are read from
    the index alone (a covering scan, a few bytes each) and only the last ``limit`` rows are fetched.
    The cost follows the agent's own events, not the log: ``read_latest`` for one agent walks down the
    log from ``upto`` until it has found ``limit`` of them, which for one agent of many thousands is
    most of the log. ``INDEXED BY`` pins the plan (the index of the UNIQUE constraint)."""
    rows = conn.execute(
        f"SELECT seq, {_columns(text)} FROM events WHERE seq IN (SELECT seq FROM events "
        "INDEXED BY sqlite_autoindex_events_1 WHERE agent_id = ? AND seq <= ? ORDER BY seq DESC LIMIT ?) ORDER BY seq",
        (agent_id, upto, limit),
    )
    return [(row[0], _from_row(row[1:])) for row in rows]


def agents_after(conn: sqlite3.Connection, after: str, limit: int) -> list[str]:
    """Up to ``limit`` agent ids of the log's summaries, in id order, after ``after`` (keyset pagination)."""
    rows = conn.execute("SELECT agent_id FROM agents WHERE agent_id > ? ORDER BY agent_id LIMIT ?", (after, limit))
    return [row[0] for row in rows]


def metric_counts(conn: sqlite3.Connection, agent_id: str) -> dict[str, int]:
    """How many of the agent's stored events carried each metric (``METRICS``); empty for an unknown agent."""
    row = conn.execute(f"SELECT {', '.join(f'n_{m}' for m in METRICS)} FROM agents WHERE agent_id = ?", (agent_id,))
    found = row.fetchone()
    return {} if found is None else dict(zip(METRICS, found, strict=True))


def read_range(
    conn: sqlite3.Connection, *, first: int, end: int, agent_id: str | None = None, text: bool = True
) -> list[tuple[int, Event]]:
    """The committed events with ``first <= seq < end`` (one agent's, or all), in log order: a walk
    over that range of sequence numbers only."""
    where, params = _range(first, end, agent_id)
    rows = conn.execute(f"SELECT seq, {_columns(text)} FROM events NOT INDEXED WHERE {where} ORDER BY seq", params)
    return [(row[0], _from_row(row[1:])) for row in rows]


def count_before(conn: sqlite3.Connection, end: int, agent_id: str | None = None) -> tuple[int, int]:
    """``(count, first seq)`` of the events with ``seq < end`` (one agent's, or all); ``(0, end)`` if none."""
    where, params = _range(None, end, agent_id)
    count, first = conn.execute(f"SELECT count(*), min(seq) FROM events WHERE {where}", params).fetchone()
    return int(count), int(first) if first is not None else end


def _range(first: int | None, end: int, agent_id: str | None) -> tuple[str, tuple[object, ...]]:
    where = ["seq < ?"]
    params: list[object] = [end]
    if first is not None:
        where.append("seq >= ?")
        params.append(first)
    if agent_id is not None:
        where.append("agent_id = ?")
        params.append(agent_id)
    return " AND ".join(where), tuple(params)


def event_at(conn: sqlite3.Connection, seq: int) -> tuple[str, str] | None:
    """``(agent_id, event_id)`` of the event at ``seq``, or None."""
    row = conn.execute("SELECT agent_id, event_id FROM events WHERE seq = ?", (seq,)).fetchone()
    return None if row is None else (row[0], row[1])
