"""The event log on its own: query plans that keep commits O(batch), the writer process."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from swarmlearn.store import EventStore
from swarmlearn.store._schema import SCHEMA, UPDATE_AGENTS
from swarmlearn.synthetic import generate_swarm


def test_agent_summaries_read_only_the_new_rows() -> None:
    conn = sqlite3.connect(":memory:")
    conn.executescript(SCHEMA)
    plan = " ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + UPDATE_AGENTS, (0,)))
    assert "INTEGER PRIMARY KEY (rowid>?)" in plan


def test_summaries_match_the_log_and_ignore_duplicates(tmp_path: Path) -> None:
    events = list(generate_swarm(agents=3, events_per_agent=400, seed=3))
    store = EventStore(tmp_path / "e.sqlite3")
    try:
        first = [store.submit(events[i : i + 250]) for i in range(0, len(events), 250)]
        again = store.submit(events[:500]).result(30)
        assert sum(f.result(30).accepted for f in first) == 1200
        assert (again.accepted, again.duplicates) == (0, 500)
        assert store.durable_sequence == 1200
        for summary in store.list_agents():
            mine = [e for e in events if e.agent_id == summary.agent_id]
            assert summary.event_count == len(mine) == 400
            assert summary.prompt_event_count == sum(e.has_prompt for e in mine)
            assert summary.mean_latency_ms == pytest.approx(sum(e.latency_ms for e in mine) / 400)
            assert summary.first_timestamp == min(e.timestamp for e in mine)
        # What is read back is what was written.
        assert [e for _, e in store.iter_events(chunk=97)] == events
    finally:
        store.close()


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "e.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version=99")
    with pytest.raises(RuntimeError, match="schema 99"):
        EventStore(path)


def test_writes_after_close_are_refused(tmp_path: Path) -> None:
    from swarmlearn.store import StoreClosed

    store = EventStore(tmp_path / "e.sqlite3")
    store.close()
    store.close()
    with pytest.raises(StoreClosed):
        store.submit(list(generate_swarm(agents=1, events_per_agent=1)))
