"""Schema of the event log. ``user_version`` records it so a later release can migrate."""

from __future__ import annotations

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    agent_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    ts REAL NOT NULL,
    event_type INTEGER NOT NULL,
    latency_ms REAL NOT NULL,
    tokens_per_second REAL NOT NULL,
    memory_usage_mb REAL NOT NULL,
    cpu_usage_percent REAL NOT NULL,
    success_rate REAL NOT NULL,
    prompt_text TEXT,
    prompt_tokens INTEGER,
    response_tokens INTEGER,
    quality_score REAL,
    attributes TEXT,
    -- Also the per-agent index: reads of one agent's events use its agent_id prefix. A separate
    -- (agent_id, seq) index cost a third of ingest throughput.
    UNIQUE (agent_id, event_id)
);
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
    sum_success_rate REAL NOT NULL
) WITHOUT ROWID;
"""

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
UPDATE_AGENTS = """
INSERT INTO agents AS a
SELECT agent_id, count(*), count(prompt_text), min(ts), max(ts), sum(latency_ms),
       sum(tokens_per_second), sum(memory_usage_mb), sum(cpu_usage_percent), sum(success_rate)
FROM events NOT INDEXED WHERE seq > ? GROUP BY agent_id
ON CONFLICT (agent_id) DO UPDATE SET
    event_count = a.event_count + excluded.event_count,
    prompt_event_count = a.prompt_event_count + excluded.prompt_event_count,
    first_ts = min(a.first_ts, excluded.first_ts),
    last_ts = max(a.last_ts, excluded.last_ts),
    sum_latency_ms = a.sum_latency_ms + excluded.sum_latency_ms,
    sum_tokens_per_second = a.sum_tokens_per_second + excluded.sum_tokens_per_second,
    sum_memory_usage_mb = a.sum_memory_usage_mb + excluded.sum_memory_usage_mb,
    sum_cpu_usage_percent = a.sum_cpu_usage_percent + excluded.sum_cpu_usage_percent,
    sum_success_rate = a.sum_success_rate + excluded.sum_success_rate
"""
