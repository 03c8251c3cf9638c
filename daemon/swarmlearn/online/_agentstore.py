"""A learner's incremental snapshots: one SQLite file of pickled agents' states.

``online-<i>-of-<N>.agents.sqlite3`` (a baselines learner's) or ``prompts.agents.sqlite3`` (the prompt
learner's, ``_promptstore``) in the data directory (mode 0600, WAL, ``synchronous=FULL``)::

    meta(key, value)        format, fingerprint, anchor (JSON [seq, agent_id, event_id]),
                            state (the pickle of what all agents share: applied_seq and the priors,
                            or the prompt learner without its agents) and state_sha256
    agents(agent_id, state, sha256)   one pickled ``AgentLearner`` or ``AgentPrompts`` per agent (``_agents``)

A snapshot is one transaction: the learners changed since the last one, the shared state and the
anchor, so its cost follows what changed, not how many agents there are; after a crash the file is
exactly the state at its anchor, and replaying the log after the anchor gives the state that never
stopped. At start only ``meta`` and the agents' ids are read: an agent's learner is read when it is
next needed, so a warm restart does not grow with the agents.

The checks of ``_snapshot`` hold here too: the same fingerprint (state version, River's minor
release, configuration), an anchor that matches the log, and each pickle its recorded SHA-256,
unpickled by the restricted unpickler. A store that fails at start is emptied (``clear``) and the
state rebuilt from the log; an agent's row that fails later (``StoreDamaged``) empties it too, and
the learner process exits so that its restart rebuilds.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

from swarmlearn.online._snapshot import NO_SNAPSHOT, Anchor, SnapshotRejected, anchor_in_log, check_made_alike

FORMAT = 1
"""The file's tables and meta keys."""

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS agents (agent_id TEXT PRIMARY KEY, state BLOB NOT NULL, sha256 BLOB NOT NULL)",
)


class StoreDamaged(RuntimeError):
    """An agent's stored learner cannot be read; the store was emptied and the process must restart."""


def _digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


class AgentStore:
    def __init__(self, path: Path) -> None:
        """Open ``path``, creating it (0600) if needed; a file that is not such a store is replaced
        (``load`` then says so)."""
        self.path = path
        self.replaced: str | None = None
        """Why the file found at ``path`` was replaced by an empty store, if it was."""
        try:
            self.db = self._open()
        except sqlite3.DatabaseError as exc:
            self.replaced = f"not a readable store ({exc})"
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{path}{suffix}")
            self.db = self._open()

    def _open(self) -> sqlite3.Connection:
        os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))  # SQLite's own files follow its mode
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            for statement in _SCHEMA:
                db.execute(statement)
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def close(self) -> None:
        self.db.close()

    def load(self, *, fingerprint: str, anchor_at: Callable[[int], Anchor | None]) -> tuple[Anchor, bytes]:
        """The anchor and the shared state's pickle, or ``SnapshotRejected`` (see the module's checks)."""
        if self.replaced:
            raise SnapshotRejected(self.replaced)
        meta = dict(self.db.execute("SELECT key, value FROM meta"))
        if not meta:
            raise SnapshotRejected(NO_SNAPSHOT)
        try:
            version, recorded = int(meta["format"]), meta["fingerprint"]
            seq, agent_id, event_id = json.loads(meta["anchor"])
            state, digest = bytes(meta["state"]), bytes(meta["state_sha256"])
        except (KeyError, ValueError, TypeError):
            raise SnapshotRejected("unreadable meta") from None
        check_made_alike(version, FORMAT, recorded, fingerprint)
        if _digest(state) != digest:
            raise SnapshotRejected("shared state damaged (SHA-256 differs)")
        return anchor_in_log(seq, agent_id, event_id, anchor_at), state

    def agent_ids(self) -> list[str]:
        return [row[0] for row in self.db.execute("SELECT agent_id FROM agents")]

    def agent(self, agent_id: str) -> bytes:
        """The pickle of ``agent_id``'s learner; ``StoreDamaged`` (after ``clear``) if it is missing or
        not what was written."""
        row = self.db.execute("SELECT state, sha256 FROM agents WHERE agent_id = ?", (agent_id,)).fetchone()
        if row is None or _digest(row[0]) != row[1]:
            self.damaged(f"agent {agent_id!r}'s learner is {'missing' if row is None else 'damaged'}")
        return bytes(row[0])

    def damaged(self, reason: str) -> NoReturn:
        """Empty the store (its next start rebuilds from the log) and raise ``StoreDamaged``."""
        self.clear()
        raise StoreDamaged(f"{self.path.name}: {reason}; emptied, the learner rebuilds from the event log")

    def save(self, agents: dict[str, bytes], state: bytes, *, anchor: Anchor, fingerprint: str) -> int:
        """One transaction: upsert ``agents`` (id -> pickle), the shared state and the anchor; returns
        the bytes written."""
        meta = {
            "format": FORMAT,
            "fingerprint": fingerprint,
            "anchor": json.dumps([anchor.seq, anchor.agent_id, anchor.event_id]),
            "state": state,
            "state_sha256": _digest(state),
        }
        with self._transaction():
            self.db.executemany(
                "INSERT OR REPLACE INTO agents (agent_id, state, sha256) VALUES (?, ?, ?)",
                ((agent_id, data, _digest(data)) for agent_id, data in agents.items()),
            )
            self.db.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", meta.items())
        return sum(map(len, agents.values())) + len(state)

    def clear(self) -> None:
        """Forget every agent and the anchor: the state is rebuilt from the log."""
        with self._transaction():
            self.db.execute("DELETE FROM meta")
            self.db.execute("DELETE FROM agents")
        self.replaced = None

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")
