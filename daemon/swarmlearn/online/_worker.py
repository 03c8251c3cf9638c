"""The learner process: it follows the committed event log, learns every event, and answers queries.

Started by ``OnlineLearner`` (``_process``) as a ``python -c`` calling ``main`` with FD DB SNAPSHOT
SETTINGS_JSON, FD being one end of a socket pair (``multiprocessing.connection`` framing). Learning
costs about 40 µs an event, most of a core at 25,000 events/s, so it cannot share the daemon's GIL
with ingest; here it has a process of its own, reads the log with its own SQLite connection, and
never slows an ack.

The loop: read up to ``_READ_CHUNK`` events after ``applied_seq``, learn them in slices of
``_SLICE``, and between slices answer whatever queries have arrived, so a Predict waits for at most
one slice (about 2.5 ms) even while the learner catches up on a burst. A query carries the log's
durable sequence at the time it was asked (``min_seq``): a query about an agent the learner has not
met yet waits until the learner has applied that far (up to ``max_wait_s``), so an agent answers
from its first acknowledged event. The forecaster role reads no events while the registry has no
champion (its applied sequence just follows the log's end), and when one comes it reads the served
agents' histories from the log in slices of ``_champions._FILL_SLICE_S`` between the same looks at
the queries (``ChampionState.fill``). Snapshots are written every ``snapshot_interval_s`` when
something changed and on stop; at start the last one is loaded if it checks out (``_snapshot``) and
the log after it replayed, else the whole log is.

Messages (``_messages``, one frozen dataclass each): to this process ``Committed``, ``Query`` (one
of the questions ``AskPredict``, ``AskStats``, ``AskForecast``, ``AskScore``), ``Reload`` and
``Stop``; from it ``Ready``, ``Answered``, ``Failed``, ``Progress``, ``Drifted``, ``Snapshotted``,
``SnapshotFailed`` and ``Stopped``.
"""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import sys
import time
import traceback
from collections import deque
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from swarmlearn.errors import InvalidArgument, UnknownAgent
from swarmlearn.events import Event
from swarmlearn.online import _snapshot
from swarmlearn.online._agents import AgentTable
from swarmlearn.online._agentstore import AgentStore, StoreDamaged
from swarmlearn.online._champions import ChampionState
from swarmlearn.online._config import WorkerSettings
from swarmlearn.online._messages import (
    Answered,
    AskForecast,
    AskPredict,
    AskScore,
    AskStats,
    Committed,
    Drifted,
    DriftFound,
    Failed,
    FromWorker,
    Progress,
    Query,
    Question,
    Ready,
    Reload,
    SnapshotFailed,
    Snapshotted,
    Stop,
    Stopped,
    agents_of,
)
from swarmlearn.store import event_at, last_sequence, open_reader, read_events

if TYPE_CHECKING:  # imported by the roles that use them: River costs the forecaster 110 MiB it never needs
    from swarmlearn.online._learner import OnlineState
    from swarmlearn.prompts import PromptLearner

_READ_CHUNK = 2048
_SLICE = 64
_IDLE_POLL_S = 0.5
_PROGRESS_EVERY_S = 0.1
_PENDING_LIMIT = 64 * 1024 * 1024


class _Pending(NamedTuple):
    query: Query
    deadline: float
    """When it is answered whether or not the learner has met its agents."""


class Worker:
    def __init__(self, channel: Connection, db: sqlite3.Connection, snapshot_path: Path, settings: WorkerSettings):
        self.channel = channel
        self.db = db
        self.snapshot_path = snapshot_path
        self.settings = settings
        self.fingerprint = _snapshot.fingerprint(settings.identity())
        self.state: OnlineState | PromptLearner | ChampionState
        self.store: AgentStore | None = None
        """The baselines and prompts roles' snapshots (at ``snapshot_path``); the forecaster writes one file."""
        if settings.role == "forecaster":
            self.state = ChampionState(Path(settings.registry_root))
        else:
            self.store = AgentStore(snapshot_path)
            if settings.role == "prompts":
                from swarmlearn.online._promptstore import bounded_prompt_learner

                self.state = bounded_prompt_learner(resident=settings.resident_agents)
            else:
                from swarmlearn.online._learner import OnlineState

                self.state = OnlineState(settings.config, resident=settings.resident_agents)
            self._table().attach(self.store, [])
        self.known_seq = 0
        self.start_seq = 0
        self.buffer: deque[tuple[int, Event]] = deque()
        self.scanned = 0
        """The log was read up to here; once the buffer is learned, the state has applied up to it."""
        self.deferred: list[_Pending] = []
        self.stopping = False
        self.orphaned = False
        self.snapshot_seq = 0
        self.snapshot_at = time.monotonic()
        self.progress_at = 0.0
        self.progress_seq = -1

    # -- start and stop -------------------------------------------------------------------------

    def restore(self) -> tuple[str, bool]:
        """Load the snapshot if it checks out; returns how the state was obtained, for the log, and
        whether a snapshot was there but refused (worth a warning)."""
        try:
            state = self._load()
        except _snapshot.SnapshotRejected as exc:
            how, refused = f"rebuilding from the event log ({exc})", str(exc) != _snapshot.NO_SNAPSHOT
            if self.store is not None:
                self.store.clear()
        else:
            self.state = state
            self.snapshot_seq = state.applied_seq
            how, refused = f"snapshot at sequence {state.applied_seq}", False
        self.known_seq = self.start_seq = last_sequence(self.db)
        return how, refused

    def _load(self) -> OnlineState | PromptLearner | ChampionState:
        settings = self.settings
        if self.store is not None and settings.role == "prompts":
            from swarmlearn.online._promptstore import load_prompts  # loaded already in this role

            return load_prompts(
                self.store, resident=settings.resident_agents, fingerprint=self.fingerprint, anchor_at=self._anchor_at
            )
        if self.store is not None:
            from swarmlearn.online._learner import OnlineState  # loaded already in this role

            return OnlineState.load(
                self.store,
                config=settings.config,
                resident=settings.resident_agents,
                fingerprint=self.fingerprint,
                anchor_at=self._anchor_at,
            )
        loaded, anchor = _snapshot.load(self.snapshot_path, fingerprint=self.fingerprint, anchor_at=self._anchor_at)
        state = loaded.get(self.settings.role) if isinstance(loaded, dict) else None
        if not isinstance(state, type(self.state)) or state.applied_seq != anchor.seq:
            raise _snapshot.SnapshotRejected("its state is not a learner state at its anchor")
        return state

    def _anchor_at(self, seq: int) -> _snapshot.Anchor | None:
        found = event_at(self.db, seq)
        return None if found is None else _snapshot.Anchor(seq, *found)

    def snapshot(self) -> None:
        seq = self.state.applied_seq
        found = self._anchor_at(seq) if seq else None
        anchor = found or _snapshot.Anchor(0, "", "")
        started = time.perf_counter()
        try:
            if self.store is not None and self.settings.role == "prompts":
                from swarmlearn.online._promptstore import save_prompts  # loaded already in this role

                prompts = cast("PromptLearner", self.state)
                size = save_prompts(prompts, self.store, anchor=anchor, fingerprint=self.fingerprint)
            elif self.store is not None:
                size = cast("OnlineState", self.state).save(self.store, anchor=anchor, fingerprint=self.fingerprint)
            else:
                state = {self.settings.role: self.state}
                size = _snapshot.save(self.snapshot_path, state, anchor=anchor, fingerprint=self.fingerprint)
        except (OSError, sqlite3.Error) as exc:
            self._tell(SnapshotFailed(f"{self.snapshot_path}: {getattr(exc, 'strerror', None) or exc}"))
        else:
            self._tell(Snapshotted(seq, size, time.perf_counter() - started))
        self.snapshot_seq = seq
        self.snapshot_at = time.monotonic()

    def _tell(self, message: FromWorker) -> None:
        """Send to the daemon; if it is gone, stop (after the final snapshot) instead of failing."""
        if self.orphaned:
            return
        try:
            self.channel.send(message)
        except OSError:
            self.stopping = self.orphaned = True

    # -- the loop -------------------------------------------------------------------------------

    def run(self) -> None:
        while not self.stopping:
            filling = isinstance(self.state, ChampionState) and self.state.filling
            busy = bool(self.buffer) or self.known_seq > self.state.applied_seq or filling
            self._receive(0.0 if busy else self._idle_timeout())
            if self.stopping:
                break
            if not self.buffer:
                self._read()
            if self.buffer:
                self._learn_slice()
            if isinstance(self.state, ChampionState) and self.state.filling:
                self.state.fill(self.db)
            self._answer_deferred()
            self._report_progress()
            if self._unsaved() and (
                time.monotonic() - self.snapshot_at >= self.settings.snapshot_interval_s or self._pending_full()
            ):
                self.snapshot()
        if self._unsaved():
            self.snapshot()
        if not self.orphaned:
            self._tell(Stopped(self.state.applied_seq))

    def _unsaved(self) -> bool:
        """Whether the state changed since the last snapshot: it applied events, or (the prompt learner)
        a selection drew from an agent's bandit, which no replay of the log redoes (without this, the
        draws after the last event were lost at a stop, and repeated after the restart)."""
        if self.state.applied_seq != self.snapshot_seq:
            return True
        table = self._table() if self.store is not None else None
        return table is not None and bool(table.dirty or table.pending)

    def _pending_full(self) -> bool:
        """Evicted agents' pickles wait in memory for the next snapshot; past ``_PENDING_LIMIT`` it is now."""
        return self.store is not None and self._table().pending_bytes > _PENDING_LIMIT

    def _table(self) -> AgentTable[Any]:
        """The agents of a baselines or prompts state."""
        agents = self.state.agents
        assert isinstance(agents, AgentTable)
        return agents

    def _idle_timeout(self) -> float:
        now = time.monotonic()
        due = [q.deadline - now for q in self.deferred]
        if self.state.applied_seq != self.snapshot_seq:
            due.append(self.snapshot_at + self.settings.snapshot_interval_s - now)
        return max(0.0, min([_IDLE_POLL_S, *due]))

    def _receive(self, timeout: float) -> None:
        while True:
            try:
                if not self.channel.poll(timeout):
                    return
                message = self.channel.recv()
            except (EOFError, OSError):  # the daemon is gone: save what was learned, then leave
                self.stopping = self.orphaned = True
                return
            timeout = 0.0
            match message:
                case Committed(seq):
                    self.known_seq = max(self.known_seq, seq)
                case Query() as query:
                    self.known_seq = max(self.known_seq, query.min_seq)
                    self._query(_Pending(query, time.monotonic() + self.settings.max_wait_s))
                case Reload():
                    if isinstance(self.state, ChampionState):
                        self.state.reload()
                case Stop():
                    self.stopping = True
                    return

    def _read(self) -> None:
        upto = last_sequence(self.db)
        if upto <= self.state.applied_seq:
            return
        if isinstance(self.state, ChampionState) and not self.state.follows_log:
            # No champion: nothing in the events to keep; a champion's fill reads the log when one comes.
            self.state.advance(upto)
            self.scanned = upto
            self.known_seq = max(self.known_seq, upto)
            return
        settings = self.settings
        events = read_events(
            self.db,
            after_seq=self.state.applied_seq,
            upto=upto,
            limit=_READ_CHUNK,
            shard=(settings.shard, settings.shards) if settings.shards > 1 else None,
            text=settings.role == "prompts",  # the only role that reads texts and attributes
        )
        self.buffer.extend(events)
        self.scanned = upto if len(events) < _READ_CHUNK else events[-1][0]
        self.known_seq = max(self.known_seq, upto)
        if not events:
            self.state.advance(self.scanned)

    def _learn_slice(self) -> None:
        state, buffer = self.state, self.buffer
        drifts = []
        for _ in range(min(_SLICE, len(buffer))):
            seq, event = buffer.popleft()
            for target in state.learn(event, seq):  # only the baselines find drifts
                learner = cast("OnlineState", state).agents[event.agent_id].targets[target]
                drifts.append(DriftFound(seq, event.agent_id, target, event.timestamp, learner.drift_count))
        if not buffer:
            state.advance(self.scanned)
        if drifts:
            self._tell(Drifted(tuple(drifts)))

    def _report_progress(self) -> None:
        now = time.monotonic()
        if self.state.applied_seq != self.progress_seq and now - self.progress_at >= _PROGRESS_EVERY_S:
            self.progress_seq = self.state.applied_seq
            self.progress_at = now
            self._tell(Progress(self.state.applied_seq, len(self.state.agents)))

    # -- queries --------------------------------------------------------------------------------

    def _query(self, query: _Pending) -> None:
        if self._waits(query):
            self.deferred.append(query)
        else:
            self._answer(query)

    def _waits(self, pending: _Pending) -> bool:
        """A query about agents not met yet waits while the log has events the learner has not applied."""
        if self.state.applied_seq >= pending.query.min_seq or time.monotonic() >= pending.deadline:
            return False
        agents = self.state.agents
        return any(agent_id not in agents for agent_id in agents_of(pending.query.question))

    def _answer_deferred(self) -> None:
        if self.deferred:
            waiting = self.deferred
            self.deferred = []
            for query in waiting:
                self._query(query)

    def _answer(self, pending: _Pending) -> None:
        query, applied = pending.query, self.state.applied_seq
        reply: FromWorker
        try:
            value = self._ask(query.question)
        except UnknownAgent as exc:
            if applied < query.min_seq:
                reply = Failed(query.qid, "behind", (applied, query.min_seq))
            else:
                reply = Failed(query.qid, "unknown", exc.agent_id)
        except InvalidArgument as exc:
            reply = Failed(query.qid, "invalid", (exc.field, exc.reason))
        except StoreDamaged:  # the store is emptied: the process must restart and rebuild
            raise
        except Exception:  # a bug must not take the learner down with it; the daemon logs the traceback
            reply = Failed(query.qid, "internal", traceback.format_exc())
        else:
            reply = Answered(query.qid, applied, value)
        self._tell(reply)

    def _ask(self, question: Question) -> Any:
        """The answer of this process's role; a question for another role is a bug (``internal``)."""
        state, role = self.state, self.settings.role
        match question:
            case AskPredict(agent_id, horizon, coverage) if role == "baselines":
                return cast("OnlineState", state).predict(agent_id, horizon, coverage)
            case AskStats(agent_ids) if role == "baselines":
                agents = cast("OnlineState", state).agents
                return {agent_id: agents[agent_id].stats() for agent_id in agent_ids if agent_id in agents}
            case AskForecast(agent_id, horizon, coverage) if isinstance(state, ChampionState):
                return state.forecast(agent_id, horizon, coverage, db=self.db)
            case AskScore(agent_id, candidates, weights, select) if role == "prompts":
                return cast("PromptLearner", state).score(agent_id, candidates, weights, select)
        raise TypeError(f"a {self.settings.role} learner cannot answer {question!r}")


def main() -> None:
    """Command-line entry: ``FD DB SNAPSHOT SETTINGS_JSON``."""
    fd, db_path, snapshot_path, settings_json = sys.argv[1:5]
    # The daemon decides when to stop: a Ctrl-C to the process group must not lose the snapshot.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    channel = Connection(int(fd))
    try:
        settings = WorkerSettings.from_json(settings_json)
        worker = Worker(channel, open_reader(Path(db_path)), Path(snapshot_path), settings)
        how, refused = worker.restore()
    except Exception:
        with contextlib.suppress(OSError):
            channel.send(Failed(None, "start", traceback.format_exc()))
        return
    with contextlib.suppress(EOFError, OSError):  # the daemon is gone (even before we were ready)
        channel.send(Ready(worker.state.applied_seq, len(worker.state.agents), how, refused, worker.start_seq))
        worker.run()
    if worker.store is not None:
        worker.store.close()
