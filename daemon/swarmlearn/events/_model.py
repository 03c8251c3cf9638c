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

    @property
    def is_outcome(self) -> bool:
        """Whether events of this kind observe an outcome (latency, throughput, success). A task
        that has started, or a prompt that was generated, has no outcome yet."""
        return IS_OUTCOME[self]


IS_OUTCOME: tuple[bool, ...] = (False, False, True, False, True, True)
"""By ``EventType`` number: a tuple index costs nothing, where a set of members would hash each
member with ``Enum.__hash__``, a Python call (this is asked for every event, in several processes)."""

FAILURE_BELOW = 0.5
"""An outcome whose ``success_rate`` is below this failed; unset or at least this, it succeeded."""


NO_ATTRIBUTES: Mapping[str, str] = MappingProxyType({})


class Event(NamedTuple):
    """One event of one agent. ``timestamp`` is UTC unix seconds.

    A flat tuple in the event log's column order: the ingest path builds one per event and hands
    it to SQLite as it is, so there is no second conversion. A metric or prompt field the sender did
    not set is None (stored as NULL), never 0: a missing latency is not a fast one.
    """

    agent_id: str
    event_id: str
    timestamp: float
    event_type: EventType
    latency_ms: float | None = None
    tokens_per_second: float | None = None
    memory_usage_mb: float | None = None
    cpu_usage_percent: float | None = None
    success_rate: float | None = None
    prompt_text: str | None = None
    prompt_tokens: int | None = None
    response_tokens: int | None = None
    quality_score: float | None = None
    attributes: Mapping[str, str] = NO_ATTRIBUTES

    @property
    def has_prompt(self) -> bool:
        """Whether the event carried any prompt data."""
        return not (
            self.prompt_text is None
            and self.prompt_tokens is None
            and self.response_tokens is None
            and self.quality_score is None
        )

    @property
    def succeeded(self) -> bool:
        """An outcome that did not fail (``success_rate`` unset or at least ``FAILURE_BELOW``)."""
        return IS_OUTCOME[self.event_type] and (self.success_rate is None or self.success_rate >= FAILURE_BELOW)
