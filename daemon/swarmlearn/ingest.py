"""Ingestion: validate a batch per event, commit the good events, report the rest."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from swarmlearn.events import LIMITS, Event, Limits, Rejection, validate_event
from swarmlearn.store import CommitResult, EventStore


@dataclass(frozen=True, slots=True)
class IngestResult:
    accepted: int
    duplicates: int
    rejected: tuple[Rejection, ...]
    durable_sequence: int


class PendingIngest:
    """A batch handed to the store; ``result()`` waits for its commit."""

    __slots__ = ("_commit", "_rejected", "_store")

    def __init__(self, commit: asyncio.Future[CommitResult] | None, rejected: tuple[Rejection, ...], store: EventStore):
        self._commit = commit
        self._rejected = rejected
        self._store = store

    async def result(self) -> IngestResult:
        if self._commit is None:
            # Read now, not at submit: acks of one stream never show the sequence going back.
            return IngestResult(0, 0, self._rejected, self._store.durable_sequence)
        commit = await self._commit
        return IngestResult(commit.accepted, commit.duplicates, self._rejected, commit.durable_sequence)

    def abandon(self) -> None:
        """Nobody will wait for the result (the stream ended first): the commit goes on unobserved,
        and its failure, if any, is not reported as never retrieved."""
        if self._commit is not None:
            self._commit.cancel()


class Ingestor:
    """Owns the path from decoded events to the durable log."""

    def __init__(
        self,
        store: EventStore,
        *,
        limits: Limits = LIMITS,
        max_agents: int = 0,
        on_commit: Callable[[int], object] | None = None,
    ) -> None:
        """``on_commit(durable_sequence)`` is called on the event loop after each commit (the online
        learner's cue to read on). ``max_agents`` (0: no limit) caps the agents the log may hold:
        an event of one more is rejected, so a flood of new agent ids cannot grow every learner's
        state without bound."""
        self._store = store
        self._limits = limits
        self._max_agents = max_agents
        self._on_commit = on_commit
        self._known: set[str] = set(store.agent_ids())
        self._admitted: set[str] = set(self._known)
        """Known agents and those of batches submitted but not yet committed: what the cap counts."""

    def knows(self, agent_id: str) -> bool:
        """Whether the log holds a committed event of this agent (kept in memory: Predict asks
        before every call, and a stranger must get NOT_FOUND without waiting for the learner)."""
        return agent_id in self._known

    def validate(self, events: Sequence[tuple[int, Event]], rejected: list[Rejection]) -> list[Event]:
        """The events of ``(index, event)`` pairs that may be stored; the others' rejections are
        added to ``rejected``. Call on the event loop, a slice of a batch at a time (``submit``
        takes the slices' events together)."""
        good: list[Event] = []
        limits, admitted, cap = self._limits, self._admitted, self._max_agents
        for index, event in events:
            problem = validate_event(event, limits)
            if problem is None and cap and event.agent_id not in admitted:
                if len(admitted) >= cap:
                    problem = (
                        "agent_id",
                        f"a new agent, and the daemon holds {cap} agents, its limit (setting max_agents); "
                        "events of the agents it holds are still accepted",
                    )
                else:
                    admitted.add(event.agent_id)
            if problem is None:
                good.append(event)
            else:
                rejected.append(Rejection(index, event.event_id, *problem))
        return good

    def submit(self, good: list[Event], rejected: list[Rejection]) -> PendingIngest:
        """Queue a batch's validated events (``validate``) for commit, in call order, with the
        batch's rejections. Call on the event loop; the store's writer process does the I/O."""
        rejected.sort(key=lambda r: r.index)
        if not good:
            return PendingIngest(None, tuple(rejected), self._store)
        submitted = self._store.submit(good)
        agents = {e.agent_id for e in good}
        # On the commit itself, not on its ack: a stream cancelled before its ack (which cancels
        # only the asyncio wrapper) still stored the batch, and its agents must be known to Predict
        # and the learners told at once. The store resolves its future on a thread of its own.
        loop = asyncio.get_running_loop()

        def committed(done: concurrent.futures.Future[CommitResult]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: the daemon is gone
                loop.call_soon_threadsafe(self._committed, done, agents)

        submitted.add_done_callback(committed)
        return PendingIngest(asyncio.wrap_future(submitted), tuple(rejected), self._store)

    def _committed(self, commit: concurrent.futures.Future[CommitResult], agents: set[str]) -> None:
        if commit.exception() is not None:
            return  # not stored: whoever awaits the result hears why
        self._known.update(agents)
        if self._on_commit is not None:
            self._on_commit(commit.result().durable_sequence)
