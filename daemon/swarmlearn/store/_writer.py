"""The event log's writer process: it owns the write connection and commits groups of batches.

Started by ``EventStore`` as a ``python -c`` calling ``main`` with FD PATH SYNCHRONOUS GROUP_MAX,
with FD one end of a socket pair (``multiprocessing.connection`` framing). A plain subprocess,
not ``multiprocessing``'s spawn, which would re-import the host program's main module: embedding
hosts need no ``if __name__ == "__main__"`` guard.

Ingest is bound by the GIL: decoding and validating hold it in the daemon, and so does binding
rows to SQLite statements. Writing in a child process lets the two run on two cores. The parent
sends lists of ``(submission_id, rows)``; the child takes whatever has queued (up to the group limit), writes
it in one transaction, commits, and only then reports each submission's counts. Rows ``None`` are a
probe: a write that changes nothing, to learn whether the disk takes writes again. Rows that are a
``Retention`` ask for a sweep (``_retention``), run one transaction at a time whenever no batch is
waiting. ``None`` or the end of the pipe (the parent died) makes it commit what it has and exit
(a sweep in progress stops where it is).

Messages from the child: ``("ready", sequence)`` once, then ``("done", [(id, inserted,
duplicates), ...], sequence)`` or ``("failed", [id, ...], reason)`` per group, and ``("swept", id,
SweepResult or None, reason or None)`` per sweep.
"""

from __future__ import annotations

import signal
import sqlite3
import sys
from collections.abc import Generator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from swarmlearn.store._retention import Retention, SweepResult, sweep
from swarmlearn.store._schema import INSERT_EVENT, MIGRATE_1_TO_2, SCHEMA, SCHEMA_VERSION, UPDATE_AGENTS

Row = tuple[Any, ...]


def connect(path: Path, synchronous: str) -> sqlite3.Connection:
    # isolation_level=None: transactions are explicit, so a commit is exactly where we say.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    # Takes effect only in a new, empty database (an existing one keeps its mode until a VACUUM),
    # and only before journal_mode, which writes the header: retention can then give pages back.
    conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    return conn


def migrate(conn: sqlite3.Connection, path: Path) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise RuntimeError(f"{path} has schema {version}, newer than this release's {SCHEMA_VERSION}")
    if version == 1:
        _migrate_1_to_2(conn, path)
    conn.executescript(SCHEMA)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


def _migrate_1_to_2(conn: sqlite3.Connection, path: Path) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        schema_version = conn.execute("PRAGMA schema_version").fetchone()[0]
        conn.execute("PRAGMA writable_schema=ON")
        for statement, params in MIGRATE_1_TO_2[:1]:
            conn.execute(statement, params)
        conn.execute(f"PRAGMA schema_version={schema_version + 1}")
        conn.execute("PRAGMA writable_schema=OFF")
        for statement, params in MIGRATE_1_TO_2[1:]:
            conn.execute(statement, params)
        conn.execute("PRAGMA user_version=2")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    problems = conn.execute("PRAGMA integrity_check").fetchall()
    if problems != [("ok",)]:
        raise RuntimeError(f"{path}: integrity check after migrating to schema 2: {problems[:5]}")


def last_sequence(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0])


def insert(conn: sqlite3.Connection, rows: list[Row]) -> int:
    """Insert ``rows`` (duplicates ignored) and return how many were new."""
    return max(conn.executemany(INSERT_EVENT, rows).rowcount, 0)


def commit_group(
    conn: sqlite3.Connection, group: list[tuple[int, list[Row] | None]]
) -> tuple[list[tuple[int, int, int]], int]:
    """Write ``group`` in one transaction; return per-submission counts and the new sequence."""
    results = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Read inside the transaction: another writer (an orphan of a killed daemon finishing its
        # last group) may have committed since this one last looked.
        before = last_sequence(conn)
        for submission_id, rows in group:
            if rows is None:  # a probe: rewriting the header page goes through the log like any commit
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                results.append((submission_id, 0, 0))
                continue
            inserted = insert(conn, rows)
            results.append((submission_id, inserted, len(rows) - inserted))
        sequence = last_sequence(conn)
        if sequence > before:
            conn.execute(UPDATE_AGENTS, (before,))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return results, sequence


def writer_main(path: str, synchronous: str, group_max: int, channel: Connection) -> None:
    """Serve one daemon over ``channel`` until it says stop or goes away."""
    # The daemon decides when to stop: a Ctrl-C or a SIGTERM to the whole process group must not
    # kill the writer before it has committed what the daemon handed it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        conn = connect(Path(path), synchronous)
        migrate(conn, Path(path))
        sequence = last_sequence(conn)
    except Exception as exc:
        channel.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    channel.send(("ready", sequence))
    daemon_gone = False
    stopping = False
    sweeping: tuple[int, Generator[None, None, SweepResult]] | None = None
    reports: list[tuple[Any, ...]] = []
    while not stopping:
        group: list[tuple[int, list[Row] | None]] = []
        size = 0
        # Wait for a message only when there is nothing else to do.
        while (not group and sweeping is None) or (size < group_max and not daemon_gone and channel.poll(0)):
            try:
                message = channel.recv()
            except (EOFError, OSError):  # the daemon is gone: commit what it sent, then leave
                daemon_gone = True
                message = None
            if message is None:
                stopping = True
                break
            for submission_id, rows in message:
                if isinstance(rows, Retention):
                    if sweeping is not None:
                        reports.append(("swept", sweeping[0], None, "replaced by a newer sweep"))
                    sweeping = (submission_id, sweep(conn, rows))
                else:
                    group.append((submission_id, rows))
                    size += len(rows or ())
        if group:
            try:
                results, sequence = commit_group(conn, group)
                reports.append(("done", results, sequence))
            except Exception as exc:
                reason = f"{type(exc).__name__}: {exc}"
                reports.append(("failed", [submission_id for submission_id, _ in group], reason))
        # One slice after each group: a sweep neither holds commits up for long nor starves under load.
        if sweeping is not None and not stopping:
            report = _sweep_step(*sweeping)
            if report is not None:
                reports.append(report)
                sweeping = None
        while reports and not daemon_gone:
            try:
                channel.send(reports.pop(0))
            except OSError:  # nobody to tell any more; keep committing what was received
                daemon_gone = True
        reports.clear()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    channel.close()


def _sweep_step(submission_id: int, steps: Generator[None, None, SweepResult]) -> tuple[Any, ...] | None:
    """One transaction of a sweep; its report once it has ended (a failed sweep deleted what its
    finished slices deleted, and the next one goes on from there)."""
    try:
        next(steps)
    except StopIteration as done:
        return ("swept", submission_id, done.value, None)
    except Exception as exc:
        return ("swept", submission_id, None, f"{type(exc).__name__}: {exc}")
    return None


def main() -> None:
    """Command-line entry: ``FD PATH SYNCHRONOUS GROUP_MAX``."""
    fd, path, synchronous, group_max = sys.argv[1:5]
    writer_main(path, synchronous, int(group_max), Connection(int(fd)))
