"""The event as the daemon's services see it: no protobuf past the server layer."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple


class EventType(enum.IntEnum):
    """Same numbers as ``swarmlearn.v1.EventType``; 0 (unspecified) never reaches the domain."""

    TASK_STARTED = 1
    TASK_COMPLETED = 2
    PROMPT_GENERATED = 3
    RESPONSE_RECEIVED = 4
    PERFORMANCE_UPDATE = 5


NO_ATTRIBUTES: Mapping[str, str] = MappingProxyType({})


class Event(NamedTuple):
    """One performance observation of one agent. ``timestamp`` is UTC unix seconds.

    A flat tuple in the event log's column order: the ingest path builds one per event and hands
    it to SQLite as it is, so there is no second conversion. The prompt fields are all None when
    the event carried no prompt data.
    """

    agent_id: str
    event_id: str
    timestamp: float
    event_type: EventType
    latency_ms: float
    tokens_per_second: float
    memory_usage_mb: float
    cpu_usage_percent: float
    success_rate: float
    prompt_text: str | None = None
    prompt_tokens: int | None = None
    response_tokens: int | None = None
    quality_score: float | None = None
    attributes: Mapping[str, str] = NO_ATTRIBUTES

    @property
    def has_prompt(self) -> bool:
        return self.prompt_text is not None
