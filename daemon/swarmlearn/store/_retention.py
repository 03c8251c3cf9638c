"""Retention of the event log: a sweep deletes its oldest events, by age and by count, in slices.

The writer process runs a sweep when the daemon asks (``EventStore.sweep``), one transaction at a
time between groups of batches, so a commit waits for one slice at most (``SLICE_EVENTS`` rows).
Only a prefix of the log is ever deleted (events in sequence order, oldest first), and never the
newest event: ``seq`` is an ``INTEGER PRIMARY KEY``, which SQLite numbers ``max(seq) + 1``, so an
empty table would start again at 1 and a learner's applied sequence would point at other events.

Age is the time an event was *stored*, not its timestamp (which the sender chooses, up to the year
9999): each sweep records a mark ``(seq, stored_at)`` saying that the events up to ``seq`` were in
the log by then, and a later sweep deletes what a mark older than ``max_age_s`` covers. An event
therefore goes between ``max_age_s`` and ``max_age_s`` + two sweep intervals after its commit.

Freed pages go back to the file system only in a log created with ``auto_vacuum = INCREMENTAL``
(every log this release creates; an older one needs one ``VACUUM`` to switch, see
docs/operations.md): the pages that were already free before this sweep deleted anything, i.e.
that no commit reused for a whole interval, are released in slices of ``VACUUM_SLICE_PAGES``.
Pages the sweep frees stay for the next interval's events, so a log at its limit neither shrinks
nor grows.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Generator, Iterator
from dataclasses import dataclass

SLICE_EVENTS = 10_000
"""Events one retention transaction deletes at most: about 10 ms of the writer's time when event
ids grow with time (the client's), about 140 ms with random ids in a log of a million events."""
VACUUM_SLICE_PAGES = 2_048
"""Free pages one transaction returns to the file system at most (8 MiB at SQLite's 4 KiB pages)."""


@dataclass(frozen=True, slots=True)
class Retention:
    """What one sweep may delete."""

    max_age_s: float
    """Events stored longer ago than this go; 0: no age limit."""
    max_events: int
    """At most this many of the newest events stay; 0: no count limit."""
    keep_from: int | None
    """Events at this sequence and after stay whatever the limits say (what the online learners need
    to restart from their snapshots); None: no such bound."""
    now: float
    """Wall-clock time of the sweep (unix seconds): it dates the mark and the age limit."""


@dataclass(frozen=True, slots=True)
class SweepResult:
    deleted: int
    first_sequence: int
    """The oldest sequence the log keeps (0 if it is empty)."""
    slices: int
    """Delete transactions the sweep took."""
    released_pages: int


def sweep(conn: sqlite3.Connection, rule: Retention) -> Generator[None, None, SweepResult]:
    """Apply ``rule`` on the writer's connection: one transaction per step; yields between them so
    that the writer can commit waiting batches, and returns what it did."""
    free_before = _pragma(conn, "freelist_count")
    with _transaction(conn):
        last = conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]
        if last:
            conn.execute("INSERT OR IGNORE INTO retention_marks VALUES (?, ?)", (last, rule.now))
        end = _first_kept(conn, rule, last)
    first = conn.execute("SELECT coalesce(min(seq), 0) FROM events").fetchone()[0]
    deleted = slices = 0
    while first and first < end:
        upto = min(first + SLICE_EVENTS, end)
        with _transaction(conn):
            # Rows below ``first`` are gone already: a walk from the start of the table.
            deleted += conn.execute("DELETE FROM events WHERE seq < ?", (upto,)).rowcount
            conn.execute("DELETE FROM retention_marks WHERE seq < ?", (upto,))
        first, slices = upto, slices + 1
        yield
    released = 0
    if _pragma(conn, "auto_vacuum") == 2:  # INCREMENTAL
        while (pages := min(VACUUM_SLICE_PAGES, free_before - released, _pragma(conn, "freelist_count"))) > 0:
            with _unsynced(conn):
                try:  # executescript: each step of this pragma frees one page, and execute() takes one step
                    conn.executescript(f"BEGIN IMMEDIATE; PRAGMA incremental_vacuum({pages}); COMMIT;")
                except BaseException:
                    _roll_back(conn)
                    raise
            released += pages
            yield
    first = conn.execute("SELECT coalesce(min(seq), 0) FROM events").fetchone()[0]
    return SweepResult(deleted, first, slices, released)


def _first_kept(conn: sqlite3.Connection, rule: Retention, last: int) -> int:
    """The lowest sequence the rules keep: everything before it may go."""
    end = 0
    if rule.max_events:
        end = last - rule.max_events + 1
    if rule.max_age_s:
        (marked,) = conn.execute(
            "SELECT max(seq) FROM retention_marks WHERE stored_at <= ?", (rule.now - rule.max_age_s,)
        ).fetchone()
        end = max(end, (marked or 0) + 1)
    end = min(end, last)  # the newest event stays: sequence numbers must never be reused
    return end if rule.keep_from is None else min(end, rule.keep_from)


def _pragma(conn: sqlite3.Connection, name: str) -> int:
    return int(conn.execute(f"PRAGMA {name}").fetchone()[0])


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    with _unsynced(conn):
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            conn.execute("COMMIT")
        except BaseException:
            _roll_back(conn)
            raise


@contextlib.contextmanager
def _unsynced(conn: sqlite3.Connection) -> Iterator[None]:
    """Without an fsync of its own (``synchronous = NORMAL`` at most): a deletion that a power cut
    undoes is redone by the next sweep, and the next commit's fsync covers it anyway. It halves a
    slice's time (the fsync was most of it)."""
    previous = _pragma(conn, "synchronous")
    conn.execute(f"PRAGMA synchronous={min(previous, 1)}")
    try:
        yield
    finally:
        conn.execute(f"PRAGMA synchronous={previous}")


def _roll_back(conn: sqlite3.Connection) -> None:
    """What a failed statement left open: the writer's next transaction must be able to begin."""
    if conn.in_transaction:
        conn.execute("ROLLBACK")
