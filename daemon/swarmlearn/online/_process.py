"""The daemon's handle on the learner process (``_worker``): start it, tell it about commits, ask it
questions, restart it if it dies, stop it.

It lives on the daemon's event loop and talks to the process over a socket pair with asyncio
streams, in ``multiprocessing.connection``'s framing (a 4-byte big-endian length, then a pickle),
which is what the process's ``Connection`` reads and writes. No threads: a query costs one write,
and its answer wakes the loop directly. Only this daemon's own child process is unpickled.

If the process dies, queries in flight fail with ``NotReady`` (UNAVAILABLE), the death is logged,
and a new process is started after a backoff (1 s, doubling to 30 s); it loads the last snapshot and
replays the log after it, so nothing learned is lost, only time.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from swarmlearn import layout
from swarmlearn._channel import encode, read_message, spawn
from swarmlearn.errors import Disabled, InvalidArgument, NotReady, UnknownAgent
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
    ErrorKind,
    Failed,
    Progress,
    Query,
    Question,
    Ready,
    Reload,
    SnapshotFailed,
    Snapshotted,
    Stop,
    Stopped,
    ToWorker,
)
from swarmlearn.online._snapshot import remove_stale_temporaries
from swarmlearn.prompts import Candidate, Weights
from swarmlearn.registry import ModelRegistry
from swarmlearn.store import agent_shard

log = logging.getLogger(__name__)

_WORKER_MAIN = "from swarmlearn.online._worker import main; main()"
_BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
_HEALTHY_S = 60.0  # a process that ran this long resets the backoff
_ANSWER_SLACK_S = 1.0  # beyond max_wait_s, for the slice, read or snapshot in progress
_LOAD_WAIT_S = 30.0  # a query waits this long for a starting process to load (import, snapshot)
_RECENT_ANSWERS = 4_096
"""Predict answers kept to be given again while a learner is busy (``OnlineLearner.predict``)."""
_RECENT_FOR_S = 60.0
"""How old a kept answer may be to be given again: the snapshot interval's default, so it bridges
a snapshot write, not a learner that stopped."""


@dataclass(frozen=True, slots=True)
class Drift:
    """ADWIN found a change in the residuals of an agent's target."""

    seq: int
    agent_id: str
    target: str
    timestamp: float
    count: int
    replayed: bool
    """Found while relearning events that were in the log before this daemon started, or that a
    learner process which died had applied already: reported before, or old news."""


@dataclass(frozen=True, slots=True)
class Answer:
    applied_seq: int
    """The last log sequence the learner had applied when it answered."""
    value: Any


class OnlineLearner:
    """The learner processes, one per partition of the agents (``WorkerSettings.shards``), as one.
    None at all turns online learning off: Predict then answers ``Disabled``.

    Learning costs about 40-45 µs of CPU an event, so one process learns about 20,000 events/s; a partition
    per process lets several cores share the load. An agent's questions go to its partition's
    process; a question about many agents is split and the answers merged.
    """

    def __init__(
        self,
        db_path: Path,
        snapshot_dir: Path,
        settings: WorkerSettings,
        *,
        log_sequence: int = 0,
        on_drift: Callable[[Drift], object] | None = None,
        registry: ModelRegistry | None = None,
    ) -> None:
        """``log_sequence``: the log's sequence when the daemon started; drifts in events up to it
        were (or could have been) reported by the daemon that ingested them, and are replays here.
        ``registry``: the daemon's, whose champions Predict serves (``predict``); the forecaster
        process reloads them when it announces a change. None: the online aggregate answers alone."""
        count = settings.shards
        self.answer_within_s = settings.answer_within_s
        self.max_lag_events = settings.max_lag_events
        self.snapshot_dir = snapshot_dir
        self.registry = registry
        if registry is not None:
            registry.listeners.append(self.champions_changed)
        self.shards = [
            _Shard(
                db_path,
                snapshot_dir / layout.online_store_name(i, count),
                dataclasses.replace(settings, shard=i),
                log_sequence=log_sequence,
                on_drift=on_drift,
            )
            for i in range(count)
        ]
        # The prompt models see every agent (see swarmlearn.prompts._learner): one process of their own.
        self.prompts = (
            _Shard(
                db_path,
                snapshot_dir / layout.PROMPTS_STORE,
                dataclasses.replace(
                    settings, role="prompts", shard=0, shards=1, resident_agents=settings.prompt_resident_agents
                ),
                log_sequence=log_sequence,
                on_drift=None,
            )
            if count
            else None
        )
        # Torch champions, for Predict: one more process (torch stays out of the others).
        self.forecaster = (
            _Shard(
                db_path,
                snapshot_dir / layout.FORECASTER_SNAPSHOT,
                dataclasses.replace(
                    settings, role="forecaster", shard=0, shards=1, registry_root=str(snapshot_dir / layout.MODELS)
                ),
                log_sequence=log_sequence,
                on_drift=None,
            )
            if count
            else None
        )
        self.processes = [*self.shards, *(p for p in (self.prompts, self.forecaster) if p is not None)]
        self._recent: OrderedDict[tuple[str, int, float], tuple[float, Answer]] = OrderedDict()
        """``(agent, horizon, coverage) -> (when, answer)``: the latest Predict answers, oldest first."""
        self.reused = 0
        """Predict answers given again (``predict``) since the start."""

    @property
    def applied_seq(self) -> int:
        """The log sequence every learner process has applied."""
        return min((process.applied_seq for process in self.processes), default=0)

    @property
    def agents(self) -> int:
        return sum(shard.agents for shard in self.shards)

    @property
    def ready(self) -> bool:
        return bool(self.processes) and all(process.ready for process in self.processes)

    @property
    def restarts(self) -> int:
        return sum(process.restarts for process in self.processes)

    @property
    def needed_from(self) -> int | None:
        """The oldest log sequence a learner process needs to restart from its snapshot (its anchor,
        the last event the snapshot applied): the least of their snapshots' sequences, 0 while a
        process has not said which snapshot it has (it may be rebuilding from the whole log), None
        when online learning is off. Retention keeps this event and every later one."""
        if not self.processes:
            return None
        return min(process.snapshot_seq or 0 for process in self.processes)

    @property
    def snapshot_bytes(self) -> int:
        return sum(process.last_snapshot[1] for process in self.processes if process.last_snapshot)

    @property
    def snapshot_seconds(self) -> float:
        return max((p.last_snapshot[2] for p in self.processes if p.last_snapshot), default=0.0)

    def shard_of(self, agent_id: str) -> _Shard:
        if not self.shards:
            raise Disabled("online learning is off (setting online_workers = 0)")
        return self.shards[agent_shard(agent_id, len(self.shards))]

    def start(self) -> None:
        """Start every process in the background (see ``_Shard.start``); stores of another
        partitioning are removed, since no process of this one can use them, and so are the
        baselines' and the prompt learner's whole-state snapshots of releases before their stores."""
        keep = {layout.online_store_name(i, len(self.shards)) for i in range(len(self.shards))}
        for stale in self.snapshot_dir.glob("online-*-of-*"):
            if stale.name.removesuffix("-wal").removesuffix("-shm") not in keep:
                stale.unlink()
        (self.snapshot_dir / layout.LEGACY_PROMPTS_SNAPSHOT).unlink(missing_ok=True)
        remove_stale_temporaries(self.snapshot_dir)
        for process in self.processes:
            process.start()

    def committed(self, seq: int) -> None:
        for process in self.processes:
            process.committed(seq)

    async def predict(self, agent_id: str, horizon: int, coverage: float, *, min_seq: int) -> Answer:
        """What Predict answers, ``Answer.value`` = ``(model version, forecasts by target)``: the torch
        champion that serves the agent (its scope's, else the swarm's) where there is one and it can
        answer (it forecasts that far, the agent has a full window, the forecaster process is up),
        else the online aggregate's (version "").

        A learner answers between slices of learning, within milliseconds when it keeps up; while it
        catches up on a burst or writes a snapshot on a loaded machine it may take hundreds. If the
        agent was answered for the same horizon and coverage in the last ``_RECENT_FOR_S`` and the
        learner has not answered within ``answer_within_s``, that answer is given again, as it was,
        with its own ``applied_seq`` (so the caller sees the lag), unless it is further behind the log
        than ``max_lag_events`` (Predict would refuse it: the learner's answer is awaited instead); the
        learner's answer, when it comes, replaces it for the next call."""
        key = (agent_id, horizon, coverage)
        asked = asyncio.ensure_future(self._predict(agent_id, horizon, coverage, min_seq))
        within = self.answer_within_s
        recent = self._recent.get(key)
        if recent is not None and within > 0 and self._may_reuse(recent, min_seq):
            try:
                done, _ = await asyncio.wait((asked,), timeout=within)
            except asyncio.CancelledError:  # the caller went away: so does its question
                asked.cancel()
                raise
            if not done:
                asked.add_done_callback(lambda task: self._remember(key, task))
                self.reused += 1
                return recent[1]
        answer = await asked
        self._keep(key, answer)
        return answer

    def _may_reuse(self, recent: tuple[float, Answer], durable: int) -> bool:
        """Young enough, and not so far behind the log that Predict would refuse it (then the
        learner's answer, however late, is the better one)."""
        at, answer = recent
        behind = durable - answer.applied_seq
        return time.monotonic() - at <= _RECENT_FOR_S and (not self.max_lag_events or behind <= self.max_lag_events)

    def _remember(self, key: tuple[str, int, float], task: asyncio.Future[Answer]) -> None:
        """The learner's late answer to a call that was answered again: kept for the next one (an
        error was the caller's to see, and the caller has gone)."""
        if not task.cancelled() and task.exception() is None:
            self._keep(key, task.result())

    def _keep(self, key: tuple[str, int, float], answer: Answer) -> None:
        self._recent[key] = (time.monotonic(), answer)
        self._recent.move_to_end(key)
        if len(self._recent) > _RECENT_ANSWERS:
            self._recent.popitem(last=False)

    async def _predict(self, agent_id: str, horizon: int, coverage: float, min_seq: int) -> Answer:
        registry = self.registry
        if registry is not None and (registry.champion(agent_id) is not None or registry.champion("") is not None):
            with contextlib.suppress(NotReady):  # the forecaster restarting: the baseline answers meanwhile
                served = await self.forecast(agent_id, horizon, coverage, min_seq=min_seq)
                if served.value is not None:
                    return served
        answer = await self.shard_of(agent_id).ask(AskPredict(agent_id, horizon, coverage), min_seq)
        return Answer(answer.applied_seq, ("", answer.value))

    async def stats(self, agent_ids: tuple[str, ...], *, min_seq: int = 0) -> Answer:
        """``Answer.value``: ``AgentStats`` by agent id, for the agents the learners have met. A
        partition that is restarting is left out; if all are, ``NotReady``."""
        if not self.shards:
            return Answer(0, {})
        groups: dict[int, list[str]] = {}
        for agent_id in agent_ids:
            groups.setdefault(agent_shard(agent_id, len(self.shards)), []).append(agent_id)
        answers = await asyncio.gather(
            *(self.shards[i].ask(AskStats(tuple(ids)), min_seq) for i, ids in groups.items()),
            return_exceptions=True,
        )
        merged: dict[str, Any] = {}
        applied = []
        for answer in answers:
            if isinstance(answer, NotReady):
                continue
            if isinstance(answer, BaseException):
                raise answer
            merged.update(answer.value)
            applied.append(answer.applied_seq)
        if groups and not applied:
            raise NotReady("the online learner is (re)starting; retry shortly")
        return Answer(min(applied, default=self.applied_seq), merged)

    async def score(
        self, agent_id: str, candidates: tuple[Candidate, ...], weights: Weights, select: bool, *, min_seq: int
    ) -> Answer:
        """``Answer.value``: a ``ScoreResult``."""
        if self.prompts is None:
            raise Disabled("online learning is off (setting online_workers = 0)")
        return await self.prompts.ask(AskScore(agent_id, candidates, weights, select), min_seq)

    async def forecast(self, agent_id: str, horizon: int, coverage: float, *, min_seq: int) -> Answer:
        """``Answer.value``: ``(model version, forecasts by target)`` from a torch champion, or None."""
        if self.forecaster is None:
            raise Disabled("online learning is off (setting online_workers = 0)")
        return await self.forecaster.ask(AskForecast(agent_id, horizon, coverage), min_seq)

    def champions_changed(self) -> None:
        """Tell the forecaster to load the registry's champions again; answers kept to give again are
        another model's now, so they go."""
        self._recent.clear()
        if self.forecaster is not None and self.forecaster._writer is not None:
            self.forecaster._send(Reload())

    async def stop(self) -> None:
        await asyncio.gather(*(process.stop() for process in self.processes))


class _Shard:
    """One learner process: started, told about commits, asked, restarted when it dies, stopped."""

    def __init__(
        self,
        db_path: Path,
        snapshot_path: Path,
        settings: WorkerSettings,
        *,
        log_sequence: int,
        on_drift: Callable[[Drift], object] | None,
    ) -> None:
        self.db_path = db_path
        self.snapshot_path = snapshot_path
        self.settings = settings
        self._on_drift = on_drift
        self.applied_seq = 0
        self.agents = 0
        self.ready = False
        """The process has loaded its state and is learning (it may still be catching up)."""
        self.restarts = 0
        self.last_snapshot: tuple[int, int, float] | None = None
        """(sequence, bytes, seconds) of the last snapshot written."""
        self.snapshot_seq: int | None = None
        """The sequence of the snapshot a restart would load: the one a process loaded (0: none, it
        rebuilt) or wrote last; None until the first process has said."""
        self._replayed_up_to = log_sequence
        self._heard_up_to = 0
        """The last sequence whose drifts were reported: a restarted process finds them again."""
        self._process: asyncio.subprocess.Process | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[Answer]] = {}
        self._ready_waiters: list[asyncio.Future[None]] = []
        self._ids = itertools.count()
        self._committed = 0
        self._sent_committed = 0
        self._flush_scheduled = False
        self._stopping = False

    def start(self) -> None:
        """Start the process in the background and keep it running. Returns at once: the process
        needs a second or two to import River and load its snapshot, and ingest must not wait for
        that. Queries sent meanwhile are answered once it has loaded."""
        self._supervisor = asyncio.create_task(self._supervise(), name="swarmlearn-online")

    async def _supervise(self) -> None:
        failures = 0
        while not self._stopping:
            started = time.monotonic()
            await self._session()
            if self._stopping:
                return
            # Only a process that ran for a while resets the backoff: one that dies on the same
            # event after every start would otherwise replay the log once a second forever.
            failures = 0 if time.monotonic() - started >= _HEALTHY_S else failures + 1
            await asyncio.sleep(_BACKOFF_S[min(failures, len(_BACKOFF_S) - 1)])
            self.restarts += 1

    async def _session(self) -> None:
        """Run one learner process until its channel ends."""
        try:
            process, reader, self._writer = await spawn(
                _WORKER_MAIN, str(self.db_path), str(self.snapshot_path), self.settings.to_json()
            )
        except OSError as exc:  # out of processes, file descriptors or memory: try again later
            log.error("cannot start an online learner process: %s", exc)
            return
        self._process = process
        # What was committed before this process existed is in the log it reads; tell it the newest.
        self._sent_committed = 0
        self._flush()
        stopped = False
        try:
            message = await read_message(reader)
            if not isinstance(message, Ready):
                log.error("the online learner could not start: %s", getattr(message, "detail", message))
                return
            self.applied_seq, self.agents = message.applied_seq, message.agents
            self.snapshot_seq = message.applied_seq  # what it loaded: the snapshot's, or 0 when it rebuilds
            how, refused, start_seq = message.how, message.snapshot_refused, message.log_sequence
            self.ready = True
            for waiter in self._ready_waiters:
                if not waiter.done():
                    waiter.set_result(None)
            level = logging.WARNING if refused else logging.INFO
            name = self.snapshot_path.name.removesuffix(layout.SNAPSHOT_SUFFIX).removesuffix(layout.STORE_SUFFIX)
            log.log(level, "online learner %s at sequence %d of %d: %s", name, self.applied_seq, start_seq, how)
            stopped = await self._read_loop(reader)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.ready = False
            # A process started after this one relearns what this one applied or reported: not news again.
            self._replayed_up_to = max(self._replayed_up_to, self.applied_seq, self._heard_up_to)
            writer, self._writer = self._writer, None
            if writer is not None:
                writer.close()
            self._fail_pending()
            code = await process.wait()
            if not stopped and not self._stopping:
                log.error("the online learner process exited (exit code %s); restarting it", code)

    def _fail_pending(self) -> None:
        futures: list[asyncio.Future[Any]] = [*self._pending.values(), *self._ready_waiters]
        for future in futures:
            if not future.done():
                future.set_exception(NotReady("the online learner process exited; it is being restarted"))
        self._pending.clear()

    # -- commits ------------------------------------------------------------------------------

    def committed(self, seq: int) -> None:
        """Events up to ``seq`` are in the log. Cheap; calls in one loop iteration share one message."""
        if seq > self._committed:
            self._committed = seq
            if not self._flush_scheduled:
                self._flush_scheduled = True
                asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._writer is not None and self._committed > self._sent_committed:
            self._sent_committed = self._committed
            self._send(Committed(self._committed))

    # -- queries ------------------------------------------------------------------------------

    async def ask(self, question: Question, min_seq: int) -> Answer:
        if self._writer is None:
            raise NotReady("the online learner is (re)starting; retry shortly")
        if not self.ready:  # still importing River and loading its snapshot: bounded separately
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._ready_waiters.append(waiter)
            try:
                async with asyncio.timeout(_LOAD_WAIT_S):
                    await waiter
            except TimeoutError:
                raise NotReady(f"the online learner is still loading after {_LOAD_WAIT_S:.0f} s; retry") from None
            finally:
                if waiter in self._ready_waiters:
                    self._ready_waiters.remove(waiter)
        qid = next(self._ids)
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._pending[qid] = future
        try:
            self._send(Query(qid, question, min_seq))
            # The process answers between slices; a long snapshot write or a stall must not hold the
            # RPC past the documented bound (the process applies max_wait_s to deferred queries).
            async with asyncio.timeout(self.settings.max_wait_s + _ANSWER_SLACK_S):
                return await future
        except TimeoutError:
            raise NotReady(
                f"the online learner did not answer within {self.settings.max_wait_s + _ANSWER_SLACK_S:.1f} s "
                "(busy writing a snapshot or catching up); retry shortly"
            ) from None
        finally:
            self._pending.pop(qid, None)

    def _send(self, message: ToWorker) -> None:
        assert self._writer is not None
        self._writer.write(encode(message))

    # -- what the process says -----------------------------------------------------------------

    async def _read_loop(self, reader: asyncio.StreamReader) -> bool:
        """Dispatch what the process says until it says ``stopped`` (True) or the channel ends."""
        while True:
            message = await read_message(reader)
            match message:
                case Answered(qid, applied, value):
                    self._resolve(qid, Answer(applied, value))
                case Failed(qid, kind, detail) if qid is not None:
                    self._fail(qid, _error(kind, detail))
                case Progress(applied, agents):
                    self.applied_seq, self.agents = applied, agents
                case Drifted(drifts):
                    self._drifts(drifts)
                case Snapshotted(seq, size, seconds):
                    self.last_snapshot = (seq, size, seconds)
                    self.snapshot_seq = seq
                    log.debug("online snapshot at sequence %d: %d bytes in %.3f s", seq, size, seconds)
                case SnapshotFailed(reason):
                    log.error("online snapshot not written: %s", reason)
                case Stopped(applied):
                    self.applied_seq = applied
                    return True
                case _:
                    log.error("unexpected message from the online learner: %r", message)

    def _resolve(self, qid: int, answer: Answer) -> None:
        future = self._pending.get(qid)
        if future is not None and not future.done():
            self.applied_seq = max(self.applied_seq, answer.applied_seq)
            future.set_result(answer)

    def _fail(self, qid: int, exc: Exception) -> None:
        future = self._pending.get(qid)
        if future is not None and not future.done():
            future.set_exception(exc)

    def _drifts(self, found: tuple[DriftFound, ...]) -> None:
        for found_one in found:
            seq, agent_id, target = found_one.seq, found_one.agent_id, found_one.target
            self._heard_up_to = max(self._heard_up_to, seq)
            drift = Drift(
                seq, agent_id, target, found_one.timestamp, found_one.count, replayed=seq <= self._replayed_up_to
            )
            if drift.replayed:
                log.debug("drift (replayed) in %s of agent %r at sequence %d", target, agent_id, seq)
            else:
                log.info("drift in %s of agent %r at sequence %d (drift %d of it)", target, agent_id, seq, drift.count)
            if self._on_drift is not None:
                self._on_drift(drift)

    # -- stop -------------------------------------------------------------------------------------

    async def stop(self) -> None:
        """Ask the process to write its snapshot and exit, and wait for it. A process that has not
        finished loading has learned nothing new: it is killed instead of waited for."""
        self._stopping = True
        supervisor = self._supervisor
        if supervisor is None:
            return
        if self._writer is not None and self.ready:
            self._send(Stop())
        elif self._process is not None and self._process.returncode is None:
            self._process.kill()
        else:  # between two processes: sleeping before a restart
            supervisor.cancel()
        try:
            await asyncio.wait_for(asyncio.shield(supervisor), self.settings.stop_timeout_s)
        except TimeoutError:
            log.error(
                "online learner %s did not stop within %.0f s; killed (its last snapshot stands)",
                self.snapshot_path.name, self.settings.stop_timeout_s,
            )  # fmt: skip
            if self._process is not None and self._process.returncode is None:
                self._process.kill()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await supervisor
        except asyncio.CancelledError:
            if not supervisor.cancelled():
                raise
        except Exception:  # the supervisor failed; the daemon must still stop
            log.exception("online learner %s failed", self.snapshot_path.name)


def _error(kind: ErrorKind, detail: Any) -> Exception:
    if kind == "invalid":
        return InvalidArgument(*detail)
    if kind == "unknown":
        return UnknownAgent(detail)
    if kind == "behind":
        applied, wanted = detail
        return NotReady(
            f"the online learner is catching up: at sequence {applied} of {wanted}, "
            f"{wanted - applied} events behind; retry shortly"
        )
    return RuntimeError(f"online learner failed:\n{detail}")
