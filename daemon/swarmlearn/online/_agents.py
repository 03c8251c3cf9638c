"""The agents of an ``OnlineState``: at most ``capacity`` learners in memory, the others as pickles.

A baselines learner process may know tens of thousands of agents, of which a few are active at a
time; an agent's learner is about 45 KiB in memory. ``AgentTable`` keeps the ``capacity`` most
recently used learners as objects (an ``OrderedDict`` in use order) and every other one as a pickle:
in the ``AgentStore`` (``_agentstore``) once a snapshot wrote it, in memory (``pending``) while it
changed since. An agent that is not resident is unpickled on its next event or query; beyond the
capacity the least recently used learner leaves memory, pickled into ``pending`` first if it changed
since the last snapshot (``dirty``), so that a crash finds the store exactly at its last snapshot
and nothing else is lost than what replaying the log after it gives back.

A learner shares objects with the rest of its state: the swarm's ``TargetPrior`` per target and the
``OnlineConfig``. Its pickle names them (``persistent_id``) instead of copying them, and they are
attached again when it is loaded (``persistent_load``); unpickling goes through the snapshots'
restricted unpickler (``_snapshot.StateUnpickler``).

Without a store (an ``OnlineState`` used as a library) the pickles of evicted learners stay in
``pending``: compact, but not bounded; the worker gives every baselines state a store.
"""

from __future__ import annotations

import io
import pickle
from collections import OrderedDict
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from swarmlearn.online._agentstore import StoreDamaged
from swarmlearn.online._snapshot import StateUnpickler

if TYPE_CHECKING:
    from swarmlearn.online._agentstore import AgentStore
    from swarmlearn.online._config import OnlineConfig
    from swarmlearn.online._learner import AgentLearner
    from swarmlearn.online._prior import TargetPrior

_CONFIG = "config"


class AgentTable:
    """``agent_id -> AgentLearner`` for every agent the state knows, ``capacity`` of them resident."""

    def __init__(self, config: OnlineConfig, priors: dict[str, TargetPrior], capacity: int | None = None) -> None:
        """``capacity``: resident learners at most (None: all of them)."""
        if capacity is not None and capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.config = config
        self.priors = priors
        self.store: AgentStore | None = None
        """Where the learners of the last snapshot are (``attach``)."""
        self.known: set[str] = set()
        self.resident: OrderedDict[str, AgentLearner] = OrderedDict()
        """In use order, the most recent last."""
        self.dirty: set[str] = set()
        """Resident learners changed since they were last pickled."""
        self.pending: dict[str, bytes] = {}
        """Pickles of learners changed since the last snapshot and no longer resident."""
        self.pending_bytes = 0
        self._shared = _shared_ids(config, priors)

    def attach(self, store: AgentStore, known: Iterator[str] | list[str]) -> None:
        """Load learners from ``store`` from now on; ``known``: the agents it holds."""
        self.store = store
        self.known.update(known)

    def __getstate__(self) -> dict[str, Any]:
        """For a state pickled whole (a library user's; the worker's snapshots go through the store)."""
        if self.store is not None:
            raise TypeError("a table with a store is saved by its snapshots, not pickled")
        return {key: value for key, value in vars(self).items() if key != "_shared"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        vars(self).update(state)
        self._shared = _shared_ids(self.config, self.priors)

    # -- the mapping ----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.known)

    def __contains__(self, agent_id: object) -> bool:
        return agent_id in self.known

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self.known))

    def __getitem__(self, agent_id: str) -> AgentLearner:
        learner = self.get(agent_id)
        if learner is None:
            raise KeyError(agent_id)
        return learner

    def get(self, agent_id: str) -> AgentLearner | None:
        """The agent's learner, made resident (and the most recently used); None for an unknown agent."""
        learner = self.resident.get(agent_id)
        if learner is not None:
            self.resident.move_to_end(agent_id)
            return learner
        if agent_id not in self.known:
            return None
        data = self.pending.get(agent_id)
        if data is not None:
            learner = self.loads(data)
        else:
            assert self.store is not None, f"agent {agent_id!r} is known but held nowhere"
            try:
                learner = self.loads(self.store.agent(agent_id))
            except StoreDamaged:
                raise
            except Exception as exc:  # anything a damaged pickle raises
                self.store.damaged(f"agent {agent_id!r}'s learner cannot be unpickled: {type(exc).__name__}: {exc}")
        self._admit(agent_id, learner)
        return learner

    def add(self, agent_id: str, learner: AgentLearner) -> None:
        """A new agent's learner (dirty: no snapshot has it)."""
        self.known.add(agent_id)
        self.dirty.add(agent_id)
        self._admit(agent_id, learner)

    def changed(self, agent_id: str) -> None:
        """The resident learner of ``agent_id`` learned something."""
        self.dirty.add(agent_id)

    def _admit(self, agent_id: str, learner: AgentLearner) -> None:
        self.resident[agent_id] = learner
        if self.capacity is not None:
            while len(self.resident) > self.capacity:
                self._evict()

    def _evict(self) -> None:
        agent_id, learner = self.resident.popitem(last=False)
        if agent_id in self.dirty:
            self.dirty.discard(agent_id)
            data = self.dumps(learner)
            self.pending_bytes += len(data) - len(self.pending.get(agent_id, b""))
            self.pending[agent_id] = data

    # -- snapshots ------------------------------------------------------------------------------

    def changes(self) -> dict[str, bytes]:
        """Every learner changed since the last snapshot, pickled."""
        return self.pending | {agent_id: self.dumps(self.resident[agent_id]) for agent_id in self.dirty}

    def saved(self, store: AgentStore) -> None:
        """``store`` now holds ``changes()``: if it is this table's, nothing is pending (into another,
        it was a copy)."""
        if store is not self.store:
            return
        self.pending.clear()
        self.dirty.clear()
        self.pending_bytes = 0

    # -- pickles --------------------------------------------------------------------------------

    def dumps(self, learner: AgentLearner) -> bytes:
        out = io.BytesIO()
        pickler = pickle.Pickler(out, protocol=5)
        shared = self._shared
        pickler.persistent_id = lambda obj: shared.get(id(obj))  # type: ignore[method-assign]
        pickler.dump(learner)
        return out.getvalue()

    def loads(self, data: bytes) -> AgentLearner:
        """A learner from ``dumps``, attached to this state's priors and configuration."""
        from swarmlearn.online._learner import AgentLearner  # _learner imports this module

        unpickler = StateUnpickler(io.BytesIO(data))
        unpickler.persistent_load = self._shared_object  # type: ignore[method-assign]
        learner = unpickler.load()
        if not isinstance(learner, AgentLearner):
            raise pickle.UnpicklingError(f"not an agent's learner: {type(learner).__name__}")
        return learner

    def _shared_object(self, pid: Any) -> object:
        if pid == _CONFIG:
            return self.config
        if pid in self.priors:
            return self.priors[pid]
        raise pickle.UnpicklingError(f"unknown shared object {pid!r}")


def _shared_ids(config: OnlineConfig, priors: dict[str, TargetPrior]) -> dict[int, str]:
    """What a learner's pickle names instead of copying (a prior by its target), by object id."""
    return {id(prior): name for name, prior in priors.items()} | {id(config): _CONFIG}
