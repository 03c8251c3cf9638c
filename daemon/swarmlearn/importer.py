"""Events from JSON lines, in the seed's form or protobuf's, as StreamEvent messages to send.

Seed form (ruv-swarm-ml-training): ``{"timestamp": 1700000000, "agent_id": "a1",
"event_type": "TaskCompleted", "performance_metrics": {...}, "prompt_data": {...}}`` with u64
unix seconds and CamelCase event types. Protobuf JSON form: what ``json_format.MessageToJson``
writes (RFC 3339 timestamps, ``EVENT_TYPE_*`` names, either field-name spelling).

An event without ``event_id`` gets one derived from its content, so importing a file twice
stores each event once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format

from swarmlearn.events import METRICS, Event
from swarmlearn_client import make_event
from swarmlearn_client.v1 import events_pb2

SEED_EVENT_TYPES = {
    "TaskStarted": events_pb2.EVENT_TYPE_TASK_STARTED,
    "TaskCompleted": events_pb2.EVENT_TYPE_TASK_COMPLETED,
    "PromptGenerated": events_pb2.EVENT_TYPE_PROMPT_GENERATED,
    "ResponseReceived": events_pb2.EVENT_TYPE_RESPONSE_RECEIVED,
    "PerformanceUpdate": events_pb2.EVENT_TYPE_PERFORMANCE_UPDATE,
}


class InvalidLine(ValueError):
    """A line that is not an event in either form; the message says why."""


@dataclass(frozen=True, slots=True)
class LineError:
    line: int
    reason: str


def content_id(obj: dict[str, Any]) -> str:
    """Deterministic event id: a hash of the event's canonical JSON."""
    canonical = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256-" + hashlib.sha256(canonical.encode()).hexdigest()[:32]


def _seed_event(obj: dict[str, Any]) -> events_pb2.StreamEvent:
    event_type = obj.get("event_type")
    if event_type not in SEED_EVENT_TYPES:
        raise InvalidLine(f"event_type {event_type!r} is not one of {', '.join(SEED_EVENT_TYPES)}")
    ts = obj["timestamp"]
    if isinstance(ts, bool) or not isinstance(ts, (int, float)) or ts < 0:
        raise InvalidLine(f"timestamp {ts!r} is not unix seconds")
    event = events_pb2.StreamEvent(
        event_id=str(obj.get("event_id") or content_id(obj)),
        agent_id=str(obj.get("agent_id", "")),
        event_type=SEED_EVENT_TYPES[event_type],
    )
    event.timestamp.FromNanoseconds(round(ts * 1e9))
    metrics = obj.get("performance_metrics")
    if metrics is not None:
        if not isinstance(metrics, dict):
            raise InvalidLine("performance_metrics is not an object")
        event.performance_metrics.SetInParent()
        for name in METRICS:  # a metric that is missing or null stays unset
            if metrics.get(name) is not None:
                setattr(event.performance_metrics, name, float(metrics[name]))
    prompt = obj.get("prompt_data")
    if isinstance(prompt, dict):
        p = event.prompt_data
        p.SetInParent()
        if prompt.get("prompt_text") is not None:
            p.prompt_text = str(prompt["prompt_text"])
        for name in ("prompt_tokens", "response_tokens"):
            if prompt.get(name) is not None:
                setattr(p, name, int(prompt[name]))
        if prompt.get("quality_score") is not None:
            p.quality_score = float(prompt["quality_score"])
    for key, value in (obj.get("attributes") or {}).items():
        event.attributes[str(key)] = str(value)
    return event


def parse_line(text: str) -> events_pb2.StreamEvent:
    """One JSON line to a StreamEvent; raises InvalidLine with the reason."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidLine(f"not JSON: {exc.msg} at column {exc.colno}") from None
    if not isinstance(obj, dict):
        raise InvalidLine("not a JSON object")
    try:
        if isinstance(obj.get("timestamp"), (int, float)) and not isinstance(obj.get("timestamp"), bool):
            return _seed_event(obj)
        event = json_format.ParseDict(obj, events_pb2.StreamEvent())
    except InvalidLine:
        raise
    except Exception as exc:  # whatever a line holds, it is reported, never fatal to the import
        raise InvalidLine(f"{type(exc).__name__}: {exc}") from None
    if not event.event_id:
        event.event_id = content_id(obj)
    return event


def read_jsonl(lines: Iterator[str]) -> Iterator[events_pb2.StreamEvent | LineError]:
    """Events of a JSON-lines stream; blank lines skipped, bad lines reported, never fatal."""
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            yield parse_line(text)
        except InvalidLine as exc:
            yield LineError(number, str(exc))


def event_to_proto(event: Event) -> events_pb2.StreamEvent:
    """A domain event as the wire message (for the demo and for exporting)."""
    return make_event(
        agent_id=event.agent_id,
        event_id=event.event_id,
        timestamp=event.timestamp,
        event_type=int(event.event_type),  # type: ignore[arg-type]
        latency_ms=event.latency_ms,
        tokens_per_second=event.tokens_per_second,
        memory_usage_mb=event.memory_usage_mb,
        cpu_usage_percent=event.cpu_usage_percent,
        success_rate=event.success_rate,
        prompt_text=event.prompt_text,
        prompt_tokens=event.prompt_tokens,
        response_tokens=event.response_tokens,
        quality_score=event.quality_score,
        attributes=event.attributes,
    )
