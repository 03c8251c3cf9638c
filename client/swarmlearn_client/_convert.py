"""Conversions between protobuf messages and the client's own types, in one place.

Also builds events (``make_event``) and decodes the health response by hand, because
grpcio-health-checking is not a dependency of the client.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from swarmlearn_client._types import (
    AgentPage,
    AgentStats,
    BaselineStats,
    BatchAck,
    DaemonStatus,
    DriftState,
    Forecast,
    ForecastPoint,
    Job,
    JobKind,
    JobProgress,
    JobState,
    Metrics,
    ModelVersion,
    ObjectiveWeights,
    PromptCandidate,
    PromptRanking,
    Rejection,
    ScoredPrompt,
    TargetForecast,
    TuningTrial,
)
from swarmlearn_client.v1 import agents_pb2, daemon_pb2, events_pb2, jobs_pb2, prompts_pb2

__all__ = [
    "ack_from_proto",
    "agent_page_from_proto",
    "agent_stats_from_proto",
    "candidate_to_proto",
    "decode_health_response",
    "encode_health_request",
    "forecast_from_proto",
    "job_from_proto",
    "job_kind_to_proto",
    "job_state_to_proto",
    "make_event",
    "model_from_proto",
    "new_event_id",
    "ranking_from_proto",
    "weights_to_proto",
]


# -- events -------------------------------------------------------------------------------------


def new_event_id() -> str:
    """A UUIDv7 as 32 hex digits: the time in milliseconds, then 74 random bits.

    Ids that grow with time make each agent's new ids land at the end of the daemon's
    ``(agent_id, event_id)`` index, so a commit writes a few index pages however long the log is;
    random ids (``uuid4``) land all over it, and at ten million stored events ingest fell to about
    half of a fresh log's (benchmarks/RESULTS.md, Ingest at a 10-million-event log). About 1.3 µs,
    less than ``uuid4().hex``."""
    random = int.from_bytes(os.urandom(10))
    value = (time.time_ns() // 1_000_000) << 80 | 0x7 << 76 | (random >> 68) << 64 | 0b10 << 62 | random & _LOW_62
    return f"{value:032x}"


_LOW_62 = (1 << 62) - 1


def make_event(
    *,
    agent_id: str,
    latency_ms: float | None = None,
    tokens_per_second: float | None = None,
    memory_usage_mb: float | None = None,
    cpu_usage_percent: float | None = None,
    success_rate: float | None = None,
    event_type: events_pb2.EventType = events_pb2.EVENT_TYPE_PERFORMANCE_UPDATE,
    timestamp: datetime | float | None = None,
    event_id: str | None = None,
    prompt_text: str | None = None,
    prompt_tokens: int | None = None,
    response_tokens: int | None = None,
    quality_score: float | None = None,
    attributes: Mapping[str, str] | None = None,
) -> events_pb2.StreamEvent:
    """Build a ``StreamEvent``; what is not given stays unset (absent, never 0).

    ``timestamp`` is a timezone-aware datetime or unix seconds; None means now. ``event_id`` None
    draws a random one here, so that retrying the same object is deduplicated by the daemon.
    ``performance_metrics`` is attached when any metric is given, ``prompt_data`` when any prompt
    argument is. What each event type teaches the daemon: TASK_COMPLETED, RESPONSE_RECEIVED and
    PERFORMANCE_UPDATE are outcomes (latency, throughput, success); TASK_STARTED and
    PROMPT_GENERATED are not. Values are validated by the daemon, which rejects bad events
    individually in the batch ack.
    """
    event = events_pb2.StreamEvent(
        event_id=new_event_id() if event_id is None else event_id,
        timestamp=_timestamp(timestamp),
        agent_id=agent_id,
        event_type=event_type,
        attributes=attributes,
    )
    metrics = (latency_ms, tokens_per_second, memory_usage_mb, cpu_usage_percent, success_rate)
    if any(value is not None for value in metrics):
        # None is "not set" to the generated constructor: each field is present only if given.
        event.performance_metrics.CopyFrom(
            events_pb2.PerformanceMetrics(
                latency_ms=latency_ms,
                tokens_per_second=tokens_per_second,
                memory_usage_mb=memory_usage_mb,
                cpu_usage_percent=cpu_usage_percent,
                success_rate=success_rate,
            )
        )
    if prompt_text is not None or prompt_tokens is not None or response_tokens is not None or quality_score is not None:
        event.prompt_data.CopyFrom(
            events_pb2.PromptData(
                prompt_text=prompt_text,
                prompt_tokens=prompt_tokens,
                response_tokens=response_tokens,
                quality_score=quality_score,
            )
        )
    return event


def _timestamp(value: datetime | float | None) -> Timestamp:
    if value is None:
        nanos = time.time_ns()
        return Timestamp(seconds=nanos // 1_000_000_000, nanos=nanos % 1_000_000_000)
    if isinstance(value, datetime):
        # protobuf reads a naive datetime as UTC while Python reads it as local time; refuse to guess.
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("timestamp must be a timezone-aware datetime (or unix seconds)")
        ts = Timestamp()
        ts.FromDatetime(value)
        return ts
    if not math.isfinite(value):
        raise ValueError(f"timestamp must be finite, got {value!r}")
    seconds = math.floor(value)
    nanos = min(round((value - seconds) * 1e9), 999_999_999)
    return Timestamp(seconds=seconds, nanos=nanos)


def _datetime(ts: Timestamp) -> datetime | None:
    if ts.seconds == 0 and ts.nanos == 0:
        return None
    return ts.ToDatetime(tzinfo=UTC)


# -- ingest -------------------------------------------------------------------------------------


def ack_from_proto(ack: events_pb2.IngestAck) -> BatchAck:
    return BatchAck(
        batch_id=ack.batch_id,
        accepted=ack.accepted,
        duplicates=ack.duplicates,
        rejected=tuple(
            Rejection(index=r.index, event_id=r.event_id, field=r.field, reason=r.reason) for r in ack.rejected
        ),
        durable_sequence=ack.durable_sequence,
    )


# -- agents -------------------------------------------------------------------------------------


def _metrics(m: events_pb2.PerformanceMetrics) -> Metrics:
    has = m.HasField
    return Metrics(
        latency_ms=m.latency_ms if has("latency_ms") else None,
        tokens_per_second=m.tokens_per_second if has("tokens_per_second") else None,
        memory_usage_mb=m.memory_usage_mb if has("memory_usage_mb") else None,
        cpu_usage_percent=m.cpu_usage_percent if has("cpu_usage_percent") else None,
        success_rate=m.success_rate if has("success_rate") else None,
    )


def agent_stats_from_proto(s: agents_pb2.AgentStats) -> AgentStats:
    return AgentStats(
        agent_id=s.agent_id,
        event_count=s.event_count,
        first_event_time=_datetime(s.first_event_time),
        last_event_time=_datetime(s.last_event_time),
        mean_metrics=_metrics(s.mean_metrics),
        prompt_event_count=s.prompt_event_count,
        features=dict(s.features),
        baselines=tuple(
            BaselineStats(
                target=b.target,
                model_kind=b.model_kind,
                running_mae=b.running_mae if b.HasField("running_mae") else None,
                scored=b.scored,
                best=b.best,
                weight=b.weight if b.HasField("weight") else None,
            )
            for b in s.baselines
        ),
        drift=tuple(
            DriftState(target=d.target, drift_count=d.drift_count, last_drift_time=_datetime(d.last_drift_time))
            for d in s.drift
        ),
        online_sequence=s.online_sequence,
        answered_mae=dict(s.answered_mae),
        interval_coverage=dict(s.interval_coverage),
    )


def agent_page_from_proto(r: agents_pb2.ListAgentsResponse) -> AgentPage:
    return AgentPage(
        agents=tuple(agent_stats_from_proto(a) for a in r.agents),
        next_page_token=r.next_page_token,
    )


def forecast_from_proto(r: agents_pb2.PredictResponse) -> Forecast:
    return Forecast(
        agent_id=r.agent_id,
        forecasts=tuple(
            TargetForecast(
                target=f.target,
                points=tuple(ForecastPoint(step=p.step, value=p.value, lower=p.lower, upper=p.upper) for p in f.points),
                model_kind=f.model_kind,
                model_version=f.model_version,
                running_mae=f.running_mae if f.HasField("running_mae") else None,
            )
            for f in r.forecasts
        ),
        as_of_sequence=r.as_of_sequence,
        durable_sequence=r.durable_sequence,
    )


# -- prompts ------------------------------------------------------------------------------------


def candidate_to_proto(candidate: str | PromptCandidate) -> prompts_pb2.PromptCandidate:
    if isinstance(candidate, str):
        return prompts_pb2.PromptCandidate(text=candidate)
    # Optional fields stay unset (not 0) so the daemon can tell "unknown" from "zero tokens".
    return prompts_pb2.PromptCandidate(
        text=candidate.text,
        variant=candidate.variant,
        prompt_tokens=candidate.prompt_tokens,
        expected_response_tokens=candidate.expected_response_tokens,
    )


def weights_to_proto(weights: ObjectiveWeights | None) -> prompts_pb2.ObjectiveWeights | None:
    if weights is None:
        return None
    return prompts_pb2.ObjectiveWeights(
        quality=weights.quality, success=weights.success, latency=weights.latency, cost=weights.cost
    )


def ranking_from_proto(r: prompts_pb2.ScorePromptsResponse) -> PromptRanking:
    return PromptRanking(
        agent_id=r.agent_id,
        ranked=tuple(
            ScoredPrompt(
                index=s.index,
                variant=s.variant,
                predicted_quality=s.predicted_quality,
                predicted_success=s.predicted_success,
                predicted_latency_ms=s.predicted_latency_ms,
                predicted_response_tokens=s.predicted_response_tokens,
                uncertainty=s.uncertainty,
                score=s.score,
            )
            for s in r.ranked
        ),
        used_global_model=r.used_global_model,
        selected_variant=r.selected_variant,
        as_of_sequence=r.as_of_sequence,
        durable_sequence=r.durable_sequence,
    )


# -- jobs and models ----------------------------------------------------------------------------


def _enum_name(wrapper: object, value: int, prefix: str) -> str:
    try:
        name: str = wrapper.Name(value)  # type: ignore[attr-defined]
    except ValueError:  # a newer daemon's value this client does not know
        return "unspecified"
    return name.removeprefix(prefix).lower()


# Enum value names: protobuf accepts them in place of numbers and rejects unknown ones.
def job_kind_to_proto(kind: JobKind | None) -> str:
    return f"JOB_KIND_{(kind or 'unspecified').upper()}"


def job_state_to_proto(state: JobState | None) -> str:
    return f"JOB_STATE_{(state or 'unspecified').upper()}"


def job_from_proto(j: jobs_pb2.Job) -> Job:
    p = j.progress
    return Job(
        job_id=j.job_id,
        kind=_enum_name(jobs_pb2.JobKind, j.kind, "JOB_KIND_"),  # type: ignore[arg-type]
        state=_enum_name(jobs_pb2.JobState, j.state, "JOB_STATE_"),  # type: ignore[arg-type]
        scope=j.scope,
        model_kind=j.model_kind,
        created_time=_datetime(j.created_time),
        started_time=_datetime(j.started_time),
        finished_time=_datetime(j.finished_time),
        progress=JobProgress(
            epoch=p.epoch,
            total_epochs=p.total_epochs,
            train_loss=p.train_loss,
            val_loss=p.val_loss,
            trials_done=p.trials_done,
            total_trials=p.total_trials,
            best_objective=p.best_objective,
        ),
        metrics=dict(j.metrics),
        model_version=j.model_version,
        error=j.error,
        note=j.note,
        trials=tuple(
            TuningTrial(
                index=t.index,
                status=t.status,
                objective=t.objective if t.HasField("objective") else None,
                epochs=t.epochs,
                params=json.loads(t.params_json) if t.params_json else {},
                error=t.error,
            )
            for t in j.trials
        ),
        config_json=j.config_json,
    )


def model_from_proto(m: jobs_pb2.ModelVersion) -> ModelVersion:
    return ModelVersion(
        scope=m.scope,
        model_kind=m.model_kind,
        version=m.version,
        champion=m.champion,
        created_time=_datetime(m.created_time),
        metrics=dict(m.metrics),
        config_json=m.config_json,
        job_id=m.job_id,
    )


def status_from_proto(s: daemon_pb2.DaemonStatus) -> DaemonStatus:
    return DaemonStatus(
        version=s.version,
        started_time=_datetime(s.started_time),
        uptime_s=s.uptime_s,
        listen=s.listen,
        tls=s.tls,
        client_certificates_required=s.client_certificates_required,
        token_auth=s.token_auth,
        data_dir=s.data_dir,
        events_stored=s.events_stored,
        durable_sequence=s.durable_sequence,
        event_log_bytes=s.event_log_bytes,
        agent_count=s.agent_count,
        ingest_streams=s.ingest_streams,
        online_sequence=s.online_sequence,
        online_agents=s.online_agents,
        online_running=s.online_running,
        online_restarts=s.online_restarts,
        online_workers=s.online_workers,
    )


# -- health (grpc.health.v1, hand-encoded) --------------------------------------------------------

_HEALTH_STATUS = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def encode_health_request(service: str) -> bytes:
    """HealthCheckRequest{service}: field 1, length-delimited (empty service encodes as b"")."""
    if not service:
        return b""
    raw = service.encode()
    return b"\x0a" + _varint(len(raw)) + raw


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint in health response")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def decode_health_response(data: bytes) -> str:
    """HealthCheckResponse{status}: enum field 1; other fields are skipped, absent means UNKNOWN."""
    status = 0
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        field, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, pos = _read_varint(data, pos)
            if field == 1:
                status = value
        elif wire_type == 2:
            length, pos = _read_varint(data, pos)
            pos += length
        elif wire_type == 1:
            pos += 8
        elif wire_type == 5:
            pos += 4
        else:
            raise ValueError(f"unexpected wire type {wire_type} in health response")
    return _HEALTH_STATUS.get(status, "UNKNOWN")
