"""The event as the daemon's services see it: no protobuf past the server layer."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class EventType(enum.IntEnum):
    """Same numbers as ``swarmlearn.v1.EventType``; 0 (unspecified) never reaches the domain."""

    TASK_STARTED = 1
    TASK_COMPLETED = 2
    PROMPT_GENERATED = 3
    RESPONSE_RECEIVED = 4
    PERFORMANCE_UPDATE = 5


# Not frozen: a frozen dataclass's __init__ goes through object.__setattr__ per field, which
# triples the cost of decoding an event on the ingest path. Treat instances as immutable.
@dataclass(slots=True)
class PromptData:
    prompt_text: str
    prompt_tokens: int
    response_tokens: int
    quality_score: float


@dataclass(slots=True)
class Event:
    """One performance observation of one agent. ``timestamp`` is UTC unix seconds."""

    agent_id: str
    event_id: str
    timestamp: float
    event_type: EventType
    latency_ms: float
    tokens_per_second: float
    memory_usage_mb: float
    cpu_usage_percent: float
    success_rate: float
    prompt: PromptData | None = None
    attributes: dict[str, str] = field(default_factory=dict)
