"""Ingestion: validate a batch per event, commit the good events, report the rest."""

from __future__ import annotations

import asyncio
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

    __slots__ = ("_agents", "_commit", "_known", "_on_commit", "_rejected", "_store")

    def __init__(
        self,
        commit: asyncio.Future[CommitResult] | None,
        rejected: tuple[Rejection, ...],
        store: EventStore,
        on_commit: Callable[[int], object] | None = None,
        agents: set[str] | None = None,
        known: set[str] | None = None,
    ):
        self._commit = commit
        self._rejected = rejected
        self._store = store
        self._on_commit = on_commit
        self._agents = agents
        self._known = known

    async def result(self) -> IngestResult:
        if self._commit is None:
            # Read now, not at submit: acks of one stream never show the sequence going back.
            return IngestResult(0, 0, self._rejected, self._store.durable_sequence)
        commit = await self._commit
        if self._known is not None and self._agents:
            self._known.update(self._agents)
        if self._on_commit is not None:
            self._on_commit(commit.durable_sequence)
        return IngestResult(commit.accepted, commit.duplicates, self._rejected, commit.durable_sequence)


class Ingestor:
    """Owns the path from decoded events to the durable log."""

    def __init__(
        self, store: EventStore, *, limits: Limits = LIMITS, on_commit: Callable[[int], object] | None = None
    ) -> None:
        """``on_commit(durable_sequence)`` is called on the event loop after each commit (the online
        learner's cue to read on)."""
        self._store = store
        self._limits = limits
        self._on_commit = on_commit
        self._known: set[str] = set(store.agent_ids())

    def knows(self, agent_id: str) -> bool:
        """Whether the log holds a committed event of this agent (kept in memory: Predict asks
        before every call, and a stranger must get NOT_FOUND without waiting for the learner)."""
        return agent_id in self._known

    def submit(self, events: Sequence[tuple[int, Event]], rejected: list[Rejection]) -> PendingIngest:
        """Validate ``(index, event)`` pairs and queue the good ones for commit, in call order.

        ``rejected`` holds the rejections found while decoding; validation adds its own. Call on
        the event loop; the store's writer process does the I/O.
        """
        good: list[Event] = []
        limits = self._limits
        for index, event in events:
            problem = validate_event(event, limits)
            if problem is None:
                good.append(event)
            else:
                rejected.append(Rejection(index, event.event_id, *problem))
        rejected.sort(key=lambda r: r.index)
        if not good:
            return PendingIngest(None, tuple(rejected), self._store)
        commit = asyncio.wrap_future(self._store.submit(good))
        agents = {e.agent_id for e in good}
        return PendingIngest(commit, tuple(rejected), self._store, self._on_commit, agents, self._known)
