"""Schema of the event log. ``user_version`` records it so a later release can migrate."""

from __future__ import annotations

from swarmlearn.events import METRICS

SCHEMA_VERSION = 2
"""1: metrics NOT NULL (an unset metric was stored as 0). 2: metrics nullable (unset is NULL), and the
agents' summaries count each metric's values, so a mean is over the events that carried it."""

EVENTS_TABLE = """CREATE TABLE events (
    seq INTEGER PRIMARY KEY,
    agent_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    ts REAL NOT NULL,
    event_type INTEGER NOT NULL,
    latency_ms REAL,
    tokens_per_second REAL,
    memory_usage_mb REAL,
    cpu_usage_percent REAL,
    success_rate REAL,
    prompt_text TEXT,
    prompt_tokens INTEGER,
    response_tokens INTEGER,
    quality_score REAL,
    attributes TEXT,
    -- Also the per-agent index: reads of one agent's events use its agent_id prefix. A separate
    -- (agent_id, seq) index cost a third of ingest throughput.
    UNIQUE (agent_id, event_id)
)"""

SCHEMA = (
    EVENTS_TABLE.replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS", 1)
    + """;
CREATE TABLE IF NOT EXISTS agents (
    agent_id TEXT PRIMARY KEY,
    event_count INTEGER NOT NULL,
    prompt_event_count INTEGER NOT NULL,
    first_ts REAL NOT NULL,
    last_ts REAL NOT NULL,
    sum_latency_ms REAL NOT NULL,
    sum_tokens_per_second REAL NOT NULL,
    sum_memory_usage_mb REAL NOT NULL,
    sum_cpu_usage_percent REAL NOT NULL,
    sum_success_rate REAL NOT NULL,
    n_latency_ms INTEGER NOT NULL DEFAULT 0,
    n_tokens_per_second INTEGER NOT NULL DEFAULT 0,
    n_memory_usage_mb INTEGER NOT NULL DEFAULT 0,
    n_cpu_usage_percent INTEGER NOT NULL DEFAULT 0,
    n_success_rate INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
-- Retention's marks (store._retention): the events up to seq were stored by stored_at. Created on
-- open like the rest, so a log of an earlier release gets it without a new schema version.
CREATE TABLE IF NOT EXISTS retention_marks (
    seq INTEGER PRIMARY KEY,
    stored_at REAL NOT NULL
);
"""
)

MIGRATE_1_TO_2 = (
    # SQLite's documented shortcut for dropping NOT NULL constraints ("Making Other Kinds Of Table
    # Schema Changes"): the stored rows are valid under the new definition, so only the schema text
    # changes, at no cost whatever the log's size. The caller bumps schema_version and checks integrity.
    ("UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'events'", (EVENTS_TABLE,)),
    *((f"ALTER TABLE agents ADD COLUMN n_{m} INTEGER NOT NULL DEFAULT 0", ()) for m in METRICS),
    # Under schema 1 every event carried every metric (unset ones as 0).
    (f"UPDATE agents SET {', '.join(f'n_{m} = event_count' for m in METRICS)}", ()),
)

EVENT_COLUMNS = (
    "agent_id, event_id, ts, event_type, latency_ms, tokens_per_second, memory_usage_mb, "
    "cpu_usage_percent, success_rate, prompt_text, prompt_tokens, response_tokens, quality_score, attributes"
)
INSERT_EVENT = (
    f"INSERT OR IGNORE INTO events ({EVENT_COLUMNS}) VALUES ({', '.join(['?'] * len(EVENT_COLUMNS.split(',')))})"
)

# Folds the rows this transaction inserted (seq > ?) into the per-agent summaries, so that
# summaries count stored events only, never duplicates. NOT INDEXED keeps the planner on the rowid
# range: left alone it scans the whole (agent_id, event_id) index to save the GROUP BY sort,
# which made every commit cost O(events stored).
UPDATE_AGENTS = f"""
INSERT INTO agents AS a
SELECT agent_id, count(*), count(coalesce(prompt_text, prompt_tokens, response_tokens, quality_score)), min(ts),
       max(ts), {", ".join(f"coalesce(sum({m}), 0)" for m in METRICS)}, {", ".join(f"count({m})" for m in METRICS)}
FROM events NOT INDEXED WHERE seq > ? GROUP BY agent_id
ON CONFLICT (agent_id) DO UPDATE SET
    event_count = a.event_count + excluded.event_count,
    prompt_event_count = a.prompt_event_count + excluded.prompt_event_count,
    first_ts = min(a.first_ts, excluded.first_ts),
    last_ts = max(a.last_ts, excluded.last_ts),
    {", ".join(f"sum_{m} = a.sum_{m} + excluded.sum_{m}, n_{m} = a.n_{m} + excluded.n_{m}" for m in METRICS)}
"""
