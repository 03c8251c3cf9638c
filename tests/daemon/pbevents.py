"""Building protobuf events for the daemon's tests."""

from __future__ import annotations

from swarmlearn_client.v1 import events_pb2

BASE_TS = 1_767_225_600  # 2026-01-01T00:00:00Z


def event(
    agent: str = "agent-1", event_id: str = "e-0", *, latency: float = 120.0, **fields: object
) -> events_pb2.StreamEvent:
    """A valid event; keyword arguments override top-level or metric fields."""
    pb = events_pb2.StreamEvent(
        event_id=event_id,
        agent_id=agent,
        event_type=events_pb2.EVENT_TYPE_TASK_COMPLETED,
        performance_metrics=events_pb2.PerformanceMetrics(
            latency_ms=latency, tokens_per_second=40.0, memory_usage_mb=512.0, cpu_usage_percent=35.0, success_rate=1.0
        ),
    )
    pb.timestamp.seconds = BASE_TS
    return override(pb, **fields)


def override(pb: events_pb2.StreamEvent, **fields: object) -> events_pb2.StreamEvent:
    """Set top-level or metric fields of ``pb`` in place."""
    for name, value in fields.items():
        if hasattr(pb.performance_metrics, name):
            setattr(pb.performance_metrics, name, value)
        else:
            setattr(pb, name, value)
    return pb


def events(n: int, agent: str = "agent-1", prefix: str = "e") -> list[events_pb2.StreamEvent]:
    out = []
    for i in range(n):
        pb = event(agent, f"{prefix}-{i}", latency=100.0 + i % 17)
        pb.timestamp.seconds = BASE_TS + i
        out.append(pb)
    return out
