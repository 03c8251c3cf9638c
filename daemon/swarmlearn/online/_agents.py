"""The agents of a learner state: at most ``capacity`` agents' objects in memory, the others as pickles.

A learner process may know tens of thousands of agents, of which a few are active at a time. A
baselines learner holds one ``AgentLearner`` per agent (about 45 KiB in memory), the prompt learner one
``AgentPrompts`` (about 15 KiB). ``AgentTable`` keeps the ``capacity`` most recently used of them as
objects (an ``OrderedDict`` in use order) and every other one as a pickle: in the ``AgentStore``
(``_agentstore``) once a snapshot wrote it, in memory (``pending``) while it changed since. An agent
that is not resident is unpickled on its next event or query; beyond the capacity the least recently
used object leaves memory, pickled into ``pending`` first if it changed since the last snapshot
(``dirty``), so that a crash finds the store exactly at its last snapshot and nothing else is lost
than what replaying the log after it gives back. The table's owner says when a resident object
changed (``changed``); an object changed without it would be lost at its eviction.

An agent's object shares objects with the rest of its state (``shared``): a baselines learner the
swarm's ``TargetPrior`` per target and the ``OnlineConfig``, an agent's prompt state the
``PromptConfig``. Its pickle names them (``persistent_id``) instead of copying them, and they are
attached again when it is loaded (``persistent_load``); unpickling goes through the snapshots'
restricted unpickler (``_snapshot.StateUnpickler``), and what comes out must be of the table's
``kind``.

Without a store (a state used as a library) the pickles of evicted objects stay in ``pending``:
compact, but not bounded; the worker gives every baselines and prompts state a store.
"""

from __future__ import annotations

import io
import pickle
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from swarmlearn.online._agentstore import StoreDamaged
from swarmlearn.online._snapshot import StateUnpickler

if TYPE_CHECKING:
    from swarmlearn.online._agentstore import AgentStore

V = TypeVar("V")
"""What the table holds per agent."""


class AgentTable(Generic[V]):
    """``agent_id -> V`` for every agent the state knows, ``capacity`` of them resident."""

    def __init__(self, kind: type[V], shared: Mapping[str, object], capacity: int | None = None) -> None:
        """``kind``: the class of what is held per agent; ``shared``: what its pickles name instead of
        copying, by name; ``capacity``: resident objects at most (None: all of them)."""
        if capacity is not None and capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.kind = kind
        self.capacity = capacity
        self.shared = dict(shared)
        self.store: AgentStore | None = None
        """Where the agents of the last snapshot are (``attach``)."""
        self.known: set[str] = set()
        self.resident: OrderedDict[str, V] = OrderedDict()
        """In use order, the most recent last."""
        self.dirty: set[str] = set()
        """Resident objects changed since they were last pickled."""
        self.pending: dict[str, bytes] = {}
        """Pickles of objects changed since the last snapshot and no longer resident."""
        self.pending_bytes = 0
        self._shared_ids = _ids(self.shared)

    def attach(self, store: AgentStore, known: Iterator[str] | list[str]) -> None:
        """Load agents from ``store`` from now on; ``known``: the agents it holds."""
        self.store = store
        self.known.update(known)

    def __getstate__(self) -> dict[str, Any]:
        """For a state pickled whole (a library user's; the worker's snapshots go through the store)."""
        if self.store is not None:
            raise TypeError("a table with a store is saved by its snapshots, not pickled")
        return {key: value for key, value in vars(self).items() if key != "_shared_ids"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        vars(self).update(state)
        self._shared_ids = _ids(self.shared)

    # -- the mapping ----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.known)

    def __contains__(self, agent_id: object) -> bool:
        return agent_id in self.known

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self.known))

    def __getitem__(self, agent_id: str) -> V:
        value = self.get(agent_id)
        if value is None:
            raise KeyError(agent_id)
        return value

    def get(self, agent_id: str) -> V | None:
        """The agent's object, made resident (and the most recently used); None for an unknown agent."""
        value = self.resident.get(agent_id)
        if value is not None:
            self.resident.move_to_end(agent_id)
            return value
        if agent_id not in self.known:
            return None
        data = self.pending.get(agent_id)
        if data is not None:
            value = self.loads(data)
        else:
            assert self.store is not None, f"agent {agent_id!r} is known but held nowhere"
            try:
                value = self.loads(self.store.agent(agent_id))
            except StoreDamaged:
                raise
            except Exception as exc:  # anything a damaged pickle raises
                self.store.damaged(f"agent {agent_id!r}'s state cannot be unpickled: {type(exc).__name__}: {exc}")
        self._admit(agent_id, value)
        return value

    def add(self, agent_id: str, value: V) -> None:
        """A new agent's object (dirty: no snapshot has it)."""
        self.known.add(agent_id)
        self.dirty.add(agent_id)
        self._admit(agent_id, value)

    def changed(self, agent_id: str) -> None:
        """The resident object of ``agent_id`` changed (it learned, or drew a random number)."""
        self.dirty.add(agent_id)

    def _admit(self, agent_id: str, value: V) -> None:
        self.resident[agent_id] = value
        if self.capacity is not None:
            while len(self.resident) > self.capacity:
                self._evict()

    def _evict(self) -> None:
        agent_id, value = self.resident.popitem(last=False)
        if agent_id in self.dirty:
            self.dirty.discard(agent_id)
            data = self.dumps(value)
            self.pending_bytes += len(data) - len(self.pending.get(agent_id, b""))
            self.pending[agent_id] = data

    # -- snapshots ------------------------------------------------------------------------------

    def changes(self) -> dict[str, bytes]:
        """Every agent's object changed since the last snapshot, pickled."""
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

    def persistent_id(self, obj: object) -> str | None:
        """The name of ``obj`` if it is one of the ``shared`` objects (for a pickler)."""
        return self._shared_ids.get(id(obj))

    def persistent_load(self, pid: Any) -> object:
        """The ``shared`` object named ``pid`` (for an unpickler)."""
        try:
            return self.shared[pid]
        except (KeyError, TypeError):
            raise pickle.UnpicklingError(f"unknown shared object {pid!r}") from None

    def dumps(self, value: V) -> bytes:
        out = io.BytesIO()
        pickler = pickle.Pickler(out, protocol=5)
        if self.shared:  # a Python call per pickled object: most of a dump's time, so only when needed
            pickler.persistent_id = self.persistent_id  # type: ignore[method-assign]
        pickler.dump(value)
        return out.getvalue()

    def loads(self, data: bytes) -> V:
        """An agent's object from ``dumps``, attached to this table's shared objects."""
        unpickler = StateUnpickler(io.BytesIO(data))
        unpickler.persistent_load = self.persistent_load  # type: ignore[method-assign]
        value = unpickler.load()
        if not isinstance(value, self.kind):
            raise pickle.UnpicklingError(f"not a {self.kind.__name__}: {type(value).__name__}")
        return value


def _ids(shared: Mapping[str, object]) -> dict[int, str]:
    """The names of the shared objects, by object id."""
    return {id(obj): name for name, obj in shared.items()}
