"""The prompt learner's agents in an ``AgentTable`` and its incremental snapshots in an ``AgentStore``.

The prompt learner process (``_worker``, role ``prompts``) holds every agent the log names: an
``AgentPrompts`` each, about 15 KiB (``benchmarks/RESULTS.md``, "The prompt
learner's agents in bounded memory"). Here its ``PromptState`` gets an ``AgentTable`` of at most
``resident`` of them, the others pickled in ``prompts.agents.sqlite3`` (``_agentstore``, the same file
format and checks as a baselines learner's store). What the agents share (the global models, the
featurizer, the swarm's references, the selection generator, ``applied_seq``) is the store's shared
state: the pickle of the learner with its table named, not copied (``persistent_id`` ``agents``), so that
a snapshot writes the agents changed since the last one and that shared state, in one transaction.
An agent's pickle carries a copy of the ``PromptConfig`` (frozen, about 300 bytes) rather than naming
the state's: naming costs a Python call per pickled object (``persistent_id``), which was 60 % of the
time of a miss (2.3 of 4.1 s over 3,000 evictions of 300 agents).

The prompt learner's state before the store (STATE_VERSION 3, ``prompts.snapshot``, one pickle file) is
not read: the daemon removes that file at start (``_process``) and the learner rebuilds from the log.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable

from swarmlearn.online._agents import AgentTable
from swarmlearn.online._agentstore import AgentStore
from swarmlearn.online._snapshot import Anchor, SnapshotRejected, StateUnpickler
from swarmlearn.prompts import AgentPrompts, PromptConfig, PromptLearner

_TABLE = "agents"


def bounded_prompt_learner(config: PromptConfig | None = None, *, resident: int | None) -> PromptLearner:
    """A new ``PromptLearner`` whose agents are held by an ``AgentTable`` of ``resident`` at most."""
    return PromptLearner(config, AgentTable(AgentPrompts, {}, resident))


def save_prompts(learner: PromptLearner, store: AgentStore, *, anchor: Anchor, fingerprint: str) -> int:
    """Write what changed since the last save into ``store`` (one transaction, at ``anchor``, the event at
    ``applied_seq``); returns the bytes written. As ``OnlineState.save``: into another store than the one
    the agents were loaded from, only a whole state is complete."""
    table = learner.agents
    if not isinstance(table, AgentTable):
        raise TypeError("only a learner of bounded_prompt_learner snapshots into a store")
    out = io.BytesIO()
    pickler = pickle.Pickler(out, protocol=5)
    pickler.persistent_id = lambda obj: _TABLE if obj is table else None  # type: ignore[method-assign]
    pickler.dump(learner)
    size = store.save(table.changes(), out.getvalue(), anchor=anchor, fingerprint=fingerprint)
    table.saved(store)
    return size


def load_prompts(
    store: AgentStore,
    *,
    resident: int | None,
    fingerprint: str,
    anchor_at: Callable[[int], Anchor | None],
) -> PromptLearner:
    """The learner of ``store``'s last snapshot, its agents left in the store until needed; or
    ``SnapshotRejected``."""
    anchor, shared = store.load(fingerprint=fingerprint, anchor_at=anchor_at)
    unpickler = StateUnpickler(io.BytesIO(shared))
    unpickler.persistent_load = _no_table  # type: ignore[method-assign]
    try:
        learner = unpickler.load()
    except Exception as exc:  # anything a damaged or foreign pickle raises
        raise SnapshotRejected(f"cannot unpickle its shared state: {type(exc).__name__}: {exc}") from None
    if not isinstance(learner, PromptLearner) or learner.applied_seq != anchor.seq:
        raise SnapshotRejected("its state is not a prompt learner at its anchor")
    state = learner.state
    table = AgentTable(AgentPrompts, {}, resident)
    table.attach(store, store.agent_ids())
    state.agents = table
    return learner


def _no_table(pid: object) -> None:
    """The table a saved learner names: replaced by the store's once the learner is loaded."""
    if pid != _TABLE:
        raise pickle.UnpicklingError(f"unknown shared object {pid!r}")
