"""Limits on what an event may hold, and the check that names the first field breaking them."""

from __future__ import annotations

import math
from dataclasses import dataclass

from swarmlearn.events._model import Event

_INF = math.inf
_LAST_TIMESTAMP = 253_402_300_799.0  # 9999-12-31T23:59:59Z, the last google.protobuf.Timestamp
_METRICS = ("latency_ms", "tokens_per_second", "memory_usage_mb", "cpu_usage_percent", "success_rate")


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-event limits. The batch and message limits are settings (``swarmlearn.config``)."""

    max_agent_id_chars: int = 128
    max_event_id_chars: int = 128
    max_prompt_text_bytes: int = 64 * 1024
    max_attributes: int = 64
    max_attribute_key_chars: int = 128
    max_attribute_value_chars: int = 1024


LIMITS = Limits()


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why one event of a batch was not stored."""

    index: int
    event_id: str
    field: str
    reason: str


def validate_event(event: Event, limits: Limits = LIMITS) -> tuple[str, str] | None:
    """Return ``(field, reason)`` for the first problem of ``event``, or None if it may be stored."""
    if not event.agent_id:
        return "agent_id", "must not be empty"
    if len(event.agent_id) > limits.max_agent_id_chars:
        return "agent_id", f"longer than {limits.max_agent_id_chars} characters"
    if not event.event_id:
        return "event_id", "must not be empty"
    if len(event.event_id) > limits.max_event_id_chars:
        return "event_id", f"longer than {limits.max_event_id_chars} characters"
    if not (0 < event.timestamp <= _LAST_TIMESTAMP):  # also false for NaN
        return "timestamp", "must be after 1970-01-01T00:00:00Z and before year 10000"
    metrics = (
        event.latency_ms,
        event.tokens_per_second,
        event.memory_usage_mb,
        event.cpu_usage_percent,
        event.success_rate,
    )
    total = sum(metrics)
    # Fast path: a NaN makes the sum NaN, an infinity makes it infinite, so one check covers most.
    if not (total == total and total < _INF and min(metrics) >= 0 and event.success_rate <= 1):
        problem = _metric_problem(event)
        if problem is not None:  # None only when finite values merely summed past the float range
            return problem
    text = event.prompt_text
    if text is not None:
        # A character is at most 4 bytes of UTF-8: only long texts need encoding to be measured.
        if len(text) * 4 > limits.max_prompt_text_bytes and len(text.encode()) > limits.max_prompt_text_bytes:
            return "prompt_data.prompt_text", f"longer than {limits.max_prompt_text_bytes} bytes of UTF-8"
        quality = event.quality_score
        if quality is None or not (0.0 <= quality <= 1.0):  # also false for NaN
            return "prompt_data.quality_score", f"must be in [0, 1], got {quality}"
    attributes = event.attributes
    if attributes:
        if len(attributes) > limits.max_attributes:
            return "attributes", f"more than {limits.max_attributes} entries"
        for key, value in attributes.items():
            if not key or len(key) > limits.max_attribute_key_chars:
                return "attributes", f"key {key[:40]!r} must be 1 to {limits.max_attribute_key_chars} characters"
            if len(value) > limits.max_attribute_value_chars:
                return f"attributes.{key}", f"longer than {limits.max_attribute_value_chars} characters"
    return None


def _metric_problem(event: Event) -> tuple[str, str] | None:
    for name in _METRICS:
        value = getattr(event, name)
        if not math.isfinite(value):
            return f"performance_metrics.{name}", f"must be finite, got {value}"
        if value < 0:
            return f"performance_metrics.{name}", f"must be >= 0, got {value}"
    if event.success_rate > 1:
        return "performance_metrics.success_rate", f"must be in [0, 1], got {event.success_rate}"
    return None
