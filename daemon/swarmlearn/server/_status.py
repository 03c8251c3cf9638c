"""What ``GetStatus`` reports, as the daemon assembles it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StatusReport:
    version: str
    started_at: float
    uptime_s: float
    listen: str
    tls: bool
    client_certificates_required: bool
    token_auth: bool
    data_dir: str
    events_stored: int
    durable_sequence: int
    event_log_bytes: int
    agent_count: int
    ingest_streams: int
    online_sequence: int
    online_agents: int
    online_running: bool
    online_restarts: int
    online_workers: int
