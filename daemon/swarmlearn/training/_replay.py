"""The replay buffer: what a training job or a tuning trial reads of a scope's log.

A scope's log grows without end; a job reads a bounded part of it, so its time and memory stop
growing with the log: the latest ``recent`` events of the scope (every split's test and validation
windows, and the training windows closest to them) plus a uniform sample of about ``older`` of the
events before those, in runs of ``run`` consecutive log positions, so an older run still holds whole
windows. The sample is drawn with a generator seeded by the job's last sequence number: a resumed
tuning job, and each of its worker processes, reads the same events.

Runs are numbered in log order (the recent part is the last) and ``StreamDataLoader`` builds no
window across two runs: the gap between them is not a step of any agent's history.
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from swarmlearn.events import Event
from swarmlearn.names import REPLAY_OLDER_EVENTS, REPLAY_RECENT_EVENTS, REPLAY_RUN_EVENTS
from swarmlearn.store import count_before, open_reader, read_latest, read_range


@dataclass(frozen=True, slots=True)
class ReplayLimits:
    """How much of a scope's log a job reads (``Settings.replay_recent_events`` and ``replay_older_events``)."""

    recent: int = REPLAY_RECENT_EVENTS
    """The scope's latest events, read whole; 0: every event (no bound)."""
    older: int = REPLAY_OLDER_EVENTS
    """About this many of the events before those, sampled in runs (rounded up to whole runs); 0: none."""
    run: int = REPLAY_RUN_EVENTS
    """Log positions per sampled run (an agent scope's run holds that agent's events in as many
    positions of its own history)."""

    def __post_init__(self) -> None:
        if self.recent < 0 or self.older < 0 or self.run < 1:
            raise ValueError(f"invalid {self}: recent and older must be >= 0, run >= 1")


@dataclass(frozen=True, slots=True)
class ReplaySource:
    """Where a job's replay buffer comes from: the event log at ``db``, the scope (an agent id, or ""
    for every agent), the sequence number it reads up to, and how much of it (``limits``)."""

    db: Path
    scope: str
    upto: int
    limits: ReplayLimits = ReplayLimits()

    def read(self) -> Replay:
        return read_replay(self.db, self.scope, self.upto, self.limits)


@dataclass(slots=True)
class Replay:
    """A scope's events as a job reads them, in log order, with each one's run."""

    events: list[Event]
    runs: list[int] = field(default_factory=list)
    """Per event, its run's number (non-decreasing; empty: one run)."""
    total: int = 0
    """The scope's events in the log up to the job's sequence number."""

    def summary(self) -> dict[str, int]:
        """For the job's result: events read, runs, and the scope's events in the log."""
        return {"events": len(self.events), "runs": (self.runs[-1] + 1) if self.runs else 1, "log_events": self.total}


def read_replay(db: Path, scope: str, upto: int, limits: ReplayLimits | None = None) -> Replay:
    """The replay buffer of ``scope`` (one agent's events, or every agent's for ``""``) up to ``upto``."""
    limits = limits or ReplayLimits()
    agent = scope or None
    conn = open_reader(db)
    try:
        if not limits.recent:  # unbounded: the whole scope, one run
            events = [event for _, event in read_range(conn, first=0, end=upto + 1, agent_id=agent, text=False)]
            return Replay(events, total=len(events))
        latest = read_latest(conn, upto=upto, limit=limits.recent, agent_id=agent, text=False)
        if len(latest) < limits.recent:  # the scope is shorter than the buffer: all of it
            return Replay([event for _, event in latest], total=len(latest))
        cut = latest[0][0]
        before, first = count_before(conn, cut, agent)
        older: list[list[Event]] = []
        if before and limits.older:
            if before <= limits.older:  # the rest of the scope fits: all of it, one run with the latest
                rest = [event for _, event in read_range(conn, first=first, end=cut, agent_id=agent, text=False)]
                return Replay(rest + [event for _, event in latest], total=before + len(latest))
            older += _sample(conn, first, cut, before, limits, agent, np.random.default_rng(upto))
    finally:
        conn.close()
    runs = [number for number, part in enumerate(older) for _ in part]
    runs += [len(older)] * len(latest)
    events = [event for part in older for event in part] + [event for _, event in latest]
    return Replay(events, runs, total=before + len(latest))


def _sample(
    conn: sqlite3.Connection,
    first: int,
    end: int,
    count: int,
    limits: ReplayLimits,
    agent: str | None,
    rng: np.random.Generator,
) -> list[list[Event]]:
    """About ``limits.older`` of the ``count`` events in ``[first, end)``: runs at slots of the sequence
    numbers chosen uniformly without replacement, each slot as wide as holds ``limits.run`` of the
    scope's events on average. Chosen slots that touch form one run (an empty slot between two holds
    none of the scope's history, so they still touch)."""
    width = max(1, math.ceil((end - first) * limits.run / count))  # sequence numbers per run
    slots = max(1, (end - first) // width)
    chosen = np.sort(rng.choice(slots, size=min(slots, math.ceil(limits.older / limits.run)), replace=False))
    runs: list[list[Event]] = []
    covered = previous = -2  # the last slot runs[-1] reaches; the last slot read
    for slot in chosen.tolist():
        lo = first + slot * width
        part = [event for _, event in read_range(conn, first=lo, end=min(lo + width, end), agent_id=agent, text=False)]
        if runs and slot == previous + 1 and covered == previous:
            runs[-1] += part
            covered = slot
        elif part:
            runs.append(part)
            covered = slot
        previous = slot
    return runs
