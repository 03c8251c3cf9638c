"""validate_event on domain events: each limit, and its boundary."""

from __future__ import annotations

import math

import pytest

from swarmlearn.events import LIMITS, Event, EventType, validate_event

GOOD = Event("agent", "id", 1_767_225_600.0, EventType.TASK_COMPLETED, 10.0, 5.0, 100.0, 50.0, 1.0)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"agent_id": ""}, "agent_id"),
        ({"agent_id": "a" * 129}, "agent_id"),
        ({"event_id": "e" * 129}, "event_id"),
        ({"timestamp": 0.0}, "timestamp"),
        ({"timestamp": math.nan}, "timestamp"),
        ({"timestamp": 1e12}, "timestamp"),  # past year 9999: no protobuf Timestamp can hold it
        ({"latency_ms": -0.001}, "performance_metrics.latency_ms"),
        ({"memory_usage_mb": math.inf}, "performance_metrics.memory_usage_mb"),
        ({"cpu_usage_percent": -math.inf}, "performance_metrics.cpu_usage_percent"),
        ({"success_rate": math.nan}, "performance_metrics.success_rate"),
        ({"success_rate": 1.0000001}, "performance_metrics.success_rate"),
        ({"latency_ms": 1e308}, "performance_metrics.latency_ms"),  # finite, but no latency is that long
        ({"tokens_per_second": 1e9 * 1.0000001}, "performance_metrics.tokens_per_second"),
        ({"memory_usage_mb": 2e9}, "performance_metrics.memory_usage_mb"),
        ({"cpu_usage_percent": 1e6 + 1}, "performance_metrics.cpu_usage_percent"),
        ({"prompt_text": "x", "quality_score": -0.1}, "prompt_data.quality_score"),
        ({"prompt_text": "x", "quality_score": math.nan}, "prompt_data.quality_score"),
        ({"prompt_text": "€" * 21846, "quality_score": 0.5}, "prompt_data.prompt_text"),  # 65538 bytes
        ({"attributes": {str(i): "v" for i in range(65)}}, "attributes"),
        ({"attributes": {"": "v"}}, "attributes"),
        ({"attributes": {"k": "v" * 1025}}, "attributes.k"),
    ],
)
def test_each_limit_names_its_field(changes: dict, field: str) -> None:  # type: ignore[type-arg]
    problem = validate_event(GOOD._replace(**changes))
    assert problem is not None
    assert problem[0] == field


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"agent_id": "a" * 128, "event_id": "e" * 128},
        {"success_rate": 0.0, "latency_ms": 0.0},
        {"latency_ms": 1e9, "tokens_per_second": 1e9, "memory_usage_mb": 1e9, "cpu_usage_percent": 1e6},
        {
            "latency_ms": None,
            "tokens_per_second": None,
            "memory_usage_mb": None,
            "cpu_usage_percent": None,
            "success_rate": None,
        },  # nothing measured
        {"quality_score": 0.5},  # prompt data without a text
        {"prompt_text": "x"},  # a text without a quality
        {"prompt_text": "€" * 21845, "prompt_tokens": 1, "response_tokens": 1, "quality_score": 1.0},  # 65535 B
        {"attributes": {str(i): "v" * 1024 for i in range(64)}},
    ],
)
def test_values_at_the_limits_are_accepted(changes: dict) -> None:  # type: ignore[type-arg]
    assert validate_event(GOOD._replace(**changes)) is None


def test_limits_are_the_documented_ones() -> None:
    assert (LIMITS.max_agent_id_chars, LIMITS.max_prompt_text_bytes) == (128, 65536)
    assert LIMITS.metric_maxima() == (1e9, 1e9, 1e9, 1e6, 1.0)
