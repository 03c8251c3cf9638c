"""The event log on its own: query plans that keep commits O(batch), the writer process."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from swarmlearn.store import EventStore, agents_after, metric_counts, open_reader, read_agent_latest, read_latest
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


SCHEMA_1 = """
CREATE TABLE events (
    seq INTEGER PRIMARY KEY, agent_id TEXT NOT NULL, event_id TEXT NOT NULL, ts REAL NOT NULL,
    event_type INTEGER NOT NULL, latency_ms REAL NOT NULL, tokens_per_second REAL NOT NULL,
    memory_usage_mb REAL NOT NULL, cpu_usage_percent REAL NOT NULL, success_rate REAL NOT NULL,
    prompt_text TEXT, prompt_tokens INTEGER, response_tokens INTEGER, quality_score REAL, attributes TEXT,
    UNIQUE (agent_id, event_id)
);
CREATE TABLE agents (
    agent_id TEXT PRIMARY KEY, event_count INTEGER NOT NULL, prompt_event_count INTEGER NOT NULL,
    first_ts REAL NOT NULL, last_ts REAL NOT NULL, sum_latency_ms REAL NOT NULL, sum_tokens_per_second REAL NOT NULL,
    sum_memory_usage_mb REAL NOT NULL, sum_cpu_usage_percent REAL NOT NULL, sum_success_rate REAL NOT NULL
) WITHOUT ROWID;
INSERT INTO events VALUES (1, 'a', 'e1', 1767225600.0, 2, 100.0, 40.0, 512.0, 30.0, 1.0, NULL, NULL, NULL, NULL, NULL);
INSERT INTO events VALUES (2, 'a', 'e2', 1767225660.0, 2, 300.0, 20.0, 512.0, 30.0, 0.0, NULL, NULL, NULL, NULL, NULL);
INSERT INTO agents VALUES ('a', 2, 0, 1767225600.0, 1767225660.0, 400.0, 60.0, 1024.0, 60.0, 1.0);
PRAGMA user_version = 1;
"""


def test_a_schema_1_log_is_migrated_in_place_and_keeps_its_events(tmp_path: Path) -> None:
    """Schema 1 stored every metric (an unset one as 0); schema 2 stores NULL for what was not set."""
    from swarmlearn.events import Event, EventType

    path = tmp_path / "e.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.executescript(SCHEMA_1)
    store = EventStore(path)
    try:
        before = store.agent_summary("a")
        assert before is not None and before.event_count == 2 and before.mean_latency_ms == 200.0
        # A new event without a latency is stored as NULL, and the means are over those that carry one.
        unset = Event("a", "e3", 1767225720.0, EventType.TASK_STARTED, None, None, None, None, None)
        assert store.submit([unset]).result(30).accepted == 1
        after = store.agent_summary("a")
        assert after is not None and after.event_count == 3
        assert (after.mean_latency_ms, after.mean_success_rate) == (200.0, 0.5)
        assert [e for _, e in store.iter_events()][2] == unset
    finally:
        store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        columns = {row[1]: row[3] for row in conn.execute("PRAGMA table_info(events)")}
        assert columns["latency_ms"] == 0 and columns["agent_id"] == 1  # notnull flags
        assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 3


def test_an_agent_whose_events_carry_no_metric_has_no_mean(tmp_path: Path) -> None:
    from swarmlearn.events import Event, EventType

    store = EventStore(tmp_path / "e.sqlite3")
    try:
        store.submit([Event("quiet", "e1", 1767225600.0, EventType.TASK_STARTED)]).result(30)
        summary = store.agent_summary("quiet")
        assert summary is not None and summary.event_count == 1
        assert summary.mean_latency_ms is None and summary.mean_success_rate is None
    finally:
        store.close()


def test_one_agents_latest_events_are_read_through_its_index(tmp_path: Path) -> None:
    """``read_agent_latest`` (the forecaster's fill): the agent's last events up to a sequence, in log
    order, found through the per-agent index rather than a walk down the whole log."""
    events = list(generate_swarm(agents=5, events_per_agent=60, seed=3))
    store = EventStore(tmp_path / "e.sqlite3")
    try:
        store.submit(events).result(30)
    finally:
        store.close()
    conn = open_reader(tmp_path / "e.sqlite3")
    agents = sorted({e.agent_id for e in events})
    assert agents_after(conn, "", 3) == agents[:3] and agents_after(conn, agents[2], 10) == agents[3:]
    agent = agents[1]
    for upto, limit in ((len(events), 10), (150, 7), (150, 1000)):
        mine = [(seq, e) for seq, e in enumerate(events[:upto], start=1) if e.agent_id == agent]
        assert read_agent_latest(conn, agent, upto=upto, limit=limit) == mine[-limit:]
        assert read_agent_latest(conn, agent, upto=upto, limit=limit) == read_latest(
            conn, upto=upto, limit=limit, agent_id=agent
        )
    assert read_agent_latest(conn, "nobody", upto=len(events), limit=5) == []
    counts = metric_counts(conn, agent)
    assert counts["latency_ms"] == sum(e.agent_id == agent and e.latency_ms is not None for e in events)
    assert metric_counts(conn, "nobody") == {}
    plan = " ".join(
        row[3]
        for row in conn.execute(
            "EXPLAIN QUERY PLAN SELECT seq FROM events INDEXED BY sqlite_autoindex_events_1 WHERE agent_id = ?", ("a",)
        )
    )
    assert "COVERING INDEX sqlite_autoindex_events_1" in plan  # the index the fill's query names exists
