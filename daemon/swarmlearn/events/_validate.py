"""Limits on what an event may hold, and the check that names the first field breaking them."""

from __future__ import annotations

import math
from dataclasses import dataclass

from swarmlearn.events._model import Event

_LAST_TIMESTAMP = 253_402_300_799.0  # 9999-12-31T23:59:59Z, the last google.protobuf.Timestamp
METRICS: tuple[str, ...] = ("latency_ms", "tokens_per_second", "memory_usage_mb", "cpu_usage_percent", "success_rate")
"""The performance metrics, by ``Event`` field name."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-event limits. The batch and message limits are settings (``swarmlearn.config``)."""

    max_agent_id_chars: int = 128
    max_event_id_chars: int = 128
    max_prompt_text_bytes: int = 64 * 1024
    max_attributes: int = 64
    max_attribute_key_chars: int = 128
    max_attribute_value_chars: int = 1024
    # Plausible maxima of the metrics: beyond them a value is a unit mistake or garbage, and one such
    # value would dwarf everything learned about the agent (a 1e308 latency made its MAE infinite).
    max_latency_ms: float = 1e9
    """About 11.6 days."""
    max_tokens_per_second: float = 1e9
    max_memory_usage_mb: float = 1e9
    """About a petabyte."""
    max_cpu_usage_percent: float = 1e6
    """10,000 cores busy."""

    def metric_maxima(self) -> tuple[float, ...]:
        """In ``METRICS`` order (``success_rate``'s is 1)."""
        return (
            self.max_latency_ms,
            self.max_tokens_per_second,
            self.max_memory_usage_mb,
            self.max_cpu_usage_percent,
            1.0,
        )


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
    latency, throughput, memory, cpu, success = event[4:9]
    # One chained comparison per set metric: false for NaN, infinities, negatives and values past the
    # maximum. Written out, since this runs for every event ingested; the loop below names the field.
    if not (
        (latency is None or 0.0 <= latency <= limits.max_latency_ms)
        and (throughput is None or 0.0 <= throughput <= limits.max_tokens_per_second)
        and (memory is None or 0.0 <= memory <= limits.max_memory_usage_mb)
        and (cpu is None or 0.0 <= cpu <= limits.max_cpu_usage_percent)
        and (success is None or 0.0 <= success <= 1.0)
    ):
        for name, metric, most in zip(METRICS, event[4:9], limits.metric_maxima(), strict=True):
            if metric is not None and not (0.0 <= metric <= most):
                return f"performance_metrics.{name}", _metric_problem(metric, most)
    text = event.prompt_text
    # A character is at most 4 bytes of UTF-8: only long texts need encoding to be measured.
    text_bytes = limits.max_prompt_text_bytes
    if text is not None and len(text) * 4 > text_bytes and len(text.encode()) > text_bytes:
        return "prompt_data.prompt_text", f"longer than {text_bytes} bytes of UTF-8"
    quality = event.quality_score
    if quality is not None and not (0.0 <= quality <= 1.0):  # also false for NaN
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


def _metric_problem(value: float, most: float) -> str:
    if not math.isfinite(value):
        return f"must be finite, got {value}"
    if value < 0:
        return f"must be >= 0, got {value}"
    return f"must be at most {most:g}, got {value:g}"
