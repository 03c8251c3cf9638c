"""The baselines learner's agents beyond its memory, and its incremental snapshots (``online._agents``,
``online._agentstore``). Exactness across restarts at any point, with two learners in memory, is in
``test_learner_contract`` (``baselines-evicting``); here: what is resident, what is written, what is refused."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from swarmlearn.events import Event
from swarmlearn.online import OnlineState, WorkerSettings, _snapshot
from swarmlearn.online._agentstore import AgentStore, StoreDamaged
from swarmlearn.synthetic import generate_swarm

FINGERPRINT = _snapshot.fingerprint(WorkerSettings().identity())
AGENTS = 12


def swarm() -> list[Event]:
    return list(generate_swarm(agents=AGENTS, events_per_agent=40, seed=4))


def anchor_of(events: list[Event], seq: int) -> _snapshot.Anchor:
    event = events[seq - 1]
    return _snapshot.Anchor(seq, event.agent_id, event.event_id)


def anchors(events: list[Event]) -> object:
    return lambda seq: anchor_of(events, seq) if 0 < seq <= len(events) else None


def learned(events: list[Event], upto: int, resident: int | None = None) -> OnlineState:
    state = OnlineState(resident=resident)
    for seq, event in enumerate(events[:upto], start=1):
        state.learn(event, seq)
    return state


def answers(state: OnlineState) -> dict[str, object]:
    return {a: (state.predict(a, 5, 0.9), state.stats(a)) for a in sorted(state.agents)}


def agent_ids(events: list[Event]) -> list[str]:
    return sorted({e.agent_id for e in events})


def test_eviction_and_reload_answer_as_an_all_resident_state() -> None:
    events = swarm()
    everyone = learned(events, len(events))
    tight = learned(events, len(events), resident=3)
    assert len(tight.agents.resident) == 3 and len(tight.agents) == len(everyone.agents) == AGENTS
    # evicted after changing: pickled, waiting for a snapshot
    assert set(tight.agents.pending) | set(tight.agents.resident) == set(everyone.agents)
    ids = agent_ids(events)
    assert [tight.predict(a, 5, 0.9) for a in ids] == [everyone.predict(a, 5, 0.9) for a in ids]
    assert [tight.stats(a) for a in ids] == [everyone.stats(a) for a in ids]
    assert len(tight.agents.resident) == 3


def test_a_snapshot_writes_only_the_agents_that_changed(tmp_path: Path) -> None:
    events = swarm()
    store = AgentStore(tmp_path / "online-0-of-1.agents.sqlite3")
    state = OnlineState(resident=4)
    state.agents.attach(store, [])
    for seq, event in enumerate(events, start=1):
        state.learn(event, seq)
    state.save(store, anchor=anchor_of(events, len(events)), fingerprint=FINGERPRINT)
    assert store.db.execute("SELECT count(*) FROM agents").fetchone() == (AGENTS,)
    touched = set(agent_ids(events)[:3])
    late = [
        e._replace(event_id=f"late-{i}", timestamp=e.timestamp + 1e5)
        for i, e in enumerate(events[:60])
        if e.agent_id in touched
    ]
    for seq, event in enumerate(late, start=len(events) + 1):
        state.learn(event, seq)
    before = store.db.total_changes
    state.save(store, anchor=anchor_of(events + late, len(events) + len(late)), fingerprint=FINGERPRINT)
    meta_rows = store.db.execute("SELECT count(*) FROM meta").fetchone()[0]
    assert store.db.total_changes - before == len(touched) + meta_rows
    before = store.db.total_changes
    state.save(store, anchor=anchor_of(events + late, len(events) + len(late)), fingerprint=FINGERPRINT)
    assert store.db.total_changes - before == meta_rows  # nothing changed: no agent written


def test_the_store_holds_the_state_at_its_anchor_whatever_was_evicted_since(tmp_path: Path) -> None:
    """A crash after evictions of changed agents finds the store as the last snapshot wrote it."""
    events = swarm()
    path = tmp_path / "online-0-of-1.agents.sqlite3"
    store = AgentStore(path)
    middle = len(events) // 2 + 3
    state = OnlineState(resident=2)
    state.agents.attach(store, [])
    for seq, event in enumerate(events, start=1):
        state.learn(event, seq)
        if seq == middle:
            state.save(store, anchor=anchor_of(events, middle), fingerprint=FINGERPRINT)
    # "crash": another process opens the file as it is
    restored = OnlineState.load(
        AgentStore(path), config=state.config, resident=2, fingerprint=FINGERPRINT, anchor_at=anchors(events)
    )
    assert restored.applied_seq == middle
    assert answers(restored) == answers(learned(events, middle))
    for seq, event in enumerate(events[middle:], start=middle + 1):
        restored.learn(event, seq)
    assert answers(restored) == answers(learned(events, len(events)))
    store.close()


def test_a_warm_restart_reads_no_agent_until_asked(tmp_path: Path) -> None:
    events = swarm()
    path = tmp_path / "online-0-of-1.agents.sqlite3"
    state = learned(events, len(events))
    store = AgentStore(path)
    state.save(store, anchor=anchor_of(events, len(events)), fingerprint=FINGERPRINT)
    store.close()
    restored = OnlineState.load(
        AgentStore(path), config=state.config, resident=5, fingerprint=FINGERPRINT, anchor_at=anchors(events)
    )
    assert len(restored.agents) == AGENTS and not restored.agents.resident
    agent = agent_ids(events)[3]
    assert agent in restored.agents and "nobody" not in restored.agents and not restored.agents.resident
    assert restored.predict(agent, 5, 0.9) == state.predict(agent, 5, 0.9)
    assert list(restored.agents.resident) == [agent]
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def saved_store(tmp_path: Path) -> tuple[Path, list[Event], OnlineState]:
    events = swarm()
    path = tmp_path / "online-0-of-1.agents.sqlite3"
    state = learned(events, len(events))
    store = AgentStore(path)
    state.save(store, anchor=anchor_of(events, len(events)), fingerprint=FINGERPRINT)
    store.close()
    return path, events, state


def load(path: Path, events: list[Event], fingerprint: str = FINGERPRINT) -> OnlineState:
    return OnlineState.load(
        AgentStore(path), config=OnlineState().config, resident=5, fingerprint=fingerprint, anchor_at=anchors(events)
    )


def test_a_mismatched_store_is_refused(tmp_path: Path) -> None:
    path, events, _ = saved_store(tmp_path)
    with pytest.raises(_snapshot.SnapshotRejected, match="another release or configuration"):
        load(path, events, fingerprint="other")
    other_log = [e._replace(event_id=f"x-{i}") for i, e in enumerate(events)]
    with pytest.raises(_snapshot.SnapshotRejected, match="does not match the event log"):
        load(path, other_log)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = zeroblob(8) WHERE key = 'state'")
    with pytest.raises(_snapshot.SnapshotRejected, match="damaged"):
        load(path, events)
    with pytest.raises(_snapshot.SnapshotRejected, match="no snapshot"):
        load(tmp_path / "new.agents.sqlite3", events)


def test_a_file_that_is_not_a_store_is_replaced(tmp_path: Path) -> None:
    path, events, _ = saved_store(tmp_path)
    path.write_bytes(b"not SQLite at all" * 100)
    with pytest.raises(_snapshot.SnapshotRejected, match="not a readable store"):
        load(path, events)
    store = AgentStore(path)  # replaced by an empty one, which a rebuilt state fills again
    with pytest.raises(_snapshot.SnapshotRejected, match="no snapshot"):
        store.load(fingerprint=FINGERPRINT, anchor_at=anchors(events))


@pytest.mark.parametrize("damage", ["bytes", "pickle", "missing"])
def test_a_damaged_agent_row_empties_the_store(tmp_path: Path, damage: str) -> None:
    """Found only when the agent is read: the store is emptied and ``StoreDamaged`` stops the process,
    whose restart rebuilds from the log."""
    path, events, _ = saved_store(tmp_path)
    restored, agent = load(path, events), agent_ids(events)[3]
    with sqlite3.connect(path) as db:
        if damage == "bytes":
            db.execute("UPDATE agents SET state = zeroblob(100) WHERE agent_id = ?", (agent,))
        elif damage == "pickle":  # consistent digest, foreign content: the restricted unpickler refuses it
            payload = b"\x80\x04\x8c\x02os\x8c\x06system\x93."
            db.execute(
                "UPDATE agents SET state = ?, sha256 = ? WHERE agent_id = ?",
                (payload, hashlib.sha256(payload).digest(), agent),
            )
        else:
            db.execute("DELETE FROM agents WHERE agent_id = ?", (agent,))
    with pytest.raises(StoreDamaged, match=agent):
        restored.predict(agent, 1, 0.8)
    with pytest.raises(_snapshot.SnapshotRejected, match="no snapshot"):
        load(path, events)
