"""Protobuf <-> domain types. The only module of the daemon that reads swarmlearn.v1 messages."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

from google.protobuf.timestamp_pb2 import Timestamp

from swarmlearn.events import NO_ATTRIBUTES, Event, EventType, Rejection
from swarmlearn.ingest import IngestResult
from swarmlearn.jobs import Job, JobState
from swarmlearn.online import AgentStats as OnlineAgentStats
from swarmlearn.online import Answer, Forecast
from swarmlearn.prompts import Candidate, ScoreResult, Weights
from swarmlearn.registry import ModelVersion
from swarmlearn.server._status import StatusReport
from swarmlearn.store import AgentSummary
from swarmlearn_client.v1 import agents_pb2, daemon_pb2, events_pb2, jobs_pb2, prompts_pb2

_EVENT_TYPES = {int(t): t for t in EventType}
_ECHOED_ID_CHARS = 128


def decode_batch(
    events: Sequence[events_pb2.StreamEvent], max_events: int
) -> tuple[list[tuple[int, Event]], list[Rejection]]:
    """Turn a batch into ``(index, Event)`` pairs and the rejections that the wire form shows
    (``batch_refusal``, then ``decode_events``)."""
    refusal = batch_refusal(len(events), max_events)
    return ([], [refusal]) if refusal is not None else decode_events(events)


def batch_refusal(count: int, max_events: int) -> Rejection | None:
    """A batch over ``max_events`` is refused whole, with one rejection (index 0, field ``events``),
    counted before anything is built: a rejection per surplus event made the ack some 40 times the
    request (an 8 MB batch of empty events took gigabytes and seconds, and its ack exceeded the
    message limit)."""
    if count <= max_events:
        return None
    reason = f"batch holds {count} events, the limit is {max_events}; none was stored: send smaller batches"
    return Rejection(0, "", "events", reason)


def decode_events(
    events: Sequence[events_pb2.StreamEvent], first: int = 0
) -> tuple[list[tuple[int, Event]], list[Rejection]]:
    """``(index, Event)`` pairs and rejections of ``events``, the batch's from index ``first`` on.

    Range checks happen later, on the domain event (``validate_event``); here only what a domain
    event cannot represent: a missing timestamp or nanos outside a second, unknown enum numbers.
    Every metric and prompt field is read with ``HasField``: unset is None, never 0.
    """
    decoded: list[tuple[int, Event]] = []
    rejected: list[Rejection] = []
    append = decoded.append
    for index, pb in enumerate(events, first):
        if not pb.HasField("timestamp"):
            rejected.append(Rejection(index, pb.event_id, "timestamp", "is required"))
            continue
        ts = pb.timestamp
        nanos = ts.nanos
        if not 0 <= nanos < 1_000_000_000:  # the seconds are range-checked on the domain event
            rejected.append(Rejection(index, pb.event_id, "timestamp", f"nanos must be in [0, 999999999], got {nanos}"))
            continue
        event_type = _EVENT_TYPES.get(pb.event_type)
        if event_type is None:
            reason = "is required" if pb.event_type == 0 else f"unknown value {pb.event_type}"
            rejected.append(Rejection(index, pb.event_id, "event_type", reason))
            continue
        latency = throughput = memory = cpu = success = None
        if pb.HasField("performance_metrics"):
            m = pb.performance_metrics
            has = m.HasField
            latency = m.latency_ms if has("latency_ms") else None
            throughput = m.tokens_per_second if has("tokens_per_second") else None
            memory = m.memory_usage_mb if has("memory_usage_mb") else None
            cpu = m.cpu_usage_percent if has("cpu_usage_percent") else None
            success = m.success_rate if has("success_rate") else None
        # Positional arguments, in Event's field order: this loop is the ingest hot path.
        if pb.HasField("prompt_data"):
            p = pb.prompt_data
            has = p.HasField
            event = Event(
                pb.agent_id, pb.event_id, ts.seconds + nanos * 1e-9, event_type,
                latency, throughput, memory, cpu, success,
                p.prompt_text if has("prompt_text") else None,
                p.prompt_tokens if has("prompt_tokens") else None,
                p.response_tokens if has("response_tokens") else None,
                p.quality_score if has("quality_score") else None,
                dict(pb.attributes.items()) if pb.attributes else NO_ATTRIBUTES,
            )  # fmt: skip
        else:
            event = Event(
                pb.agent_id, pb.event_id, ts.seconds + nanos * 1e-9, event_type,
                latency, throughput, memory, cpu, success, None, None, None, None,
                dict(pb.attributes.items()) if pb.attributes else NO_ATTRIBUTES,
            )  # fmt: skip
        append((index, event))
    return decoded, rejected


def ingest_ack(batch_id: str, result: IngestResult) -> events_pb2.IngestAck:
    return events_pb2.IngestAck(
        batch_id=batch_id,
        accepted=result.accepted,
        duplicates=result.duplicates,
        rejected=[
            # An id refused for its length is echoed cut short, so acks stay small.
            events_pb2.RejectedEvent(
                index=r.index, event_id=r.event_id[:_ECHOED_ID_CHARS], field=r.field, reason=r.reason
            )
            for r in result.rejected
        ],
        durable_sequence=result.durable_sequence,
    )


def _timestamp(seconds: float) -> Timestamp:
    ts = Timestamp()
    ts.FromNanoseconds(round(seconds * 1e9))
    return ts


def agent_stats(summary: AgentSummary, online: OnlineAgentStats | None = None, as_of: int = 0) -> agents_pb2.AgentStats:
    """The store's summary, and the online learner's view of the agent where it has one."""
    message = agents_pb2.AgentStats(
        agent_id=summary.agent_id,
        event_count=summary.event_count,
        first_event_time=_timestamp(summary.first_timestamp),
        last_event_time=_timestamp(summary.last_timestamp),
        mean_metrics=events_pb2.PerformanceMetrics(
            latency_ms=summary.mean_latency_ms,
            tokens_per_second=summary.mean_tokens_per_second,
            memory_usage_mb=summary.mean_memory_usage_mb,
            cpu_usage_percent=summary.mean_cpu_usage_percent,
            success_rate=summary.mean_success_rate,
        ),
        prompt_event_count=summary.prompt_event_count,
    )
    if online is None:
        return message
    message.online_sequence = as_of
    message.features.update(online.features)
    for target, stats in online.targets.items():
        for kind, error in stats.baselines.items():
            model_kind = "online:" + kind
            message.baselines.append(
                agents_pb2.BaselineStats(
                    target=target,
                    model_kind=model_kind,
                    running_mae=error.mae,
                    scored=error.scored,
                    best=model_kind == stats.best,
                    weight=error.weight,
                )
            )
        if stats.answer_mae is not None:
            message.answered_mae[target] = stats.answer_mae
        if stats.coverage is not None:
            message.interval_coverage[target] = stats.coverage
        drift = agents_pb2.DriftState(target=target, drift_count=stats.drift_count)
        if stats.last_drift_timestamp is not None:
            drift.last_drift_time.CopyFrom(_timestamp(stats.last_drift_timestamp))
        message.drift.append(drift)
    return message


def predict_response(
    agent_id: str, answer: Answer, targets: Sequence[str], durable_sequence: int
) -> agents_pb2.PredictResponse:
    """``OnlineLearner.predict``'s answer, ``(model version, forecasts by target)``: the version is a
    champion's ``<kind>-v<n>``, empty for the online aggregate."""
    version: str
    forecasts: dict[str, Forecast]
    version, forecasts = answer.value
    return agents_pb2.PredictResponse(
        agent_id=agent_id,
        as_of_sequence=answer.applied_seq,
        durable_sequence=max(durable_sequence, answer.applied_seq),
        forecasts=[
            agents_pb2.TargetForecast(
                target=target,
                model_kind=forecasts[target].kind,
                model_version=version,
                running_mae=forecasts[target].mae,
                points=[
                    agents_pb2.ForecastPoint(step=step, value=p.value, lower=p.lower, upper=p.upper)
                    for step, p in enumerate(forecasts[target].points, start=1)
                ],
            )
            for target in targets
        ],
    )


def daemon_status(report: StatusReport) -> daemon_pb2.DaemonStatus:
    return daemon_pb2.DaemonStatus(
        version=report.version,
        started_time=_timestamp(report.started_at),
        uptime_s=report.uptime_s,
        listen=report.listen,
        tls=report.tls,
        client_certificates_required=report.client_certificates_required,
        token_auth=report.token_auth,
        data_dir=report.data_dir,
        events_stored=report.events_stored,
        durable_sequence=report.durable_sequence,
        event_log_bytes=report.event_log_bytes,
        agent_count=report.agent_count,
        ingest_streams=report.ingest_streams,
        online_sequence=report.online_sequence,
        online_agents=report.online_agents,
        online_running=report.online_running,
        online_restarts=report.online_restarts,
        online_workers=report.online_workers,
    )


_WEIGHTS = ("quality", "success", "latency", "cost")


def score_request(request: prompts_pb2.ScorePromptsRequest) -> tuple[tuple[Candidate, ...], Weights]:
    """Candidates and weights; unset optional fields become None (the documented defaults apply)."""
    candidates = tuple(
        Candidate(
            text=c.text,
            prompt_tokens=c.prompt_tokens if c.HasField("prompt_tokens") else None,
            expected_response_tokens=c.expected_response_tokens if c.HasField("expected_response_tokens") else None,
            variant=c.variant,
        )
        for c in request.candidates
    )
    w = request.weights
    weights = Weights(*(getattr(w, name) if w.HasField(name) else None for name in _WEIGHTS))
    return candidates, weights


def score_response(result: ScoreResult, as_of: int, durable: int) -> prompts_pb2.ScorePromptsResponse:
    """``as_of``: the log sequence the prompt learner had applied; ``durable``: the log's when asked."""
    return prompts_pb2.ScorePromptsResponse(
        agent_id=result.agent_id,
        ranked=[
            prompts_pb2.ScoredPrompt(
                index=r.index,
                variant=r.variant,
                predicted_quality=r.predicted_quality,
                predicted_success=r.predicted_success,
                predicted_latency_ms=r.predicted_latency_ms,
                predicted_response_tokens=r.predicted_response_tokens,
                uncertainty=r.uncertainty,
                score=r.score,
            )
            for r in result.ranked
        ],
        used_global_model=result.used_global_model,
        selected_variant=result.selected_variant,
        as_of_sequence=as_of,
        durable_sequence=durable,
    )


_JOB_STATES = {
    JobState.PENDING: jobs_pb2.JOB_STATE_PENDING,
    JobState.RUNNING: jobs_pb2.JOB_STATE_RUNNING,
    JobState.SUCCEEDED: jobs_pb2.JOB_STATE_SUCCEEDED,
    JobState.FAILED: jobs_pb2.JOB_STATE_FAILED,
    JobState.CANCELLED: jobs_pb2.JOB_STATE_CANCELLED,
}
JOB_STATE_OF = {number: state for state, number in _JOB_STATES.items()}


def job_message(job: Job) -> jobs_pb2.Job:
    message = jobs_pb2.Job(
        job_id=job.job_id,
        kind=jobs_pb2.JOB_KIND_TRAINING if job.kind == "training" else jobs_pb2.JOB_KIND_TUNING,
        state=_JOB_STATES[job.state],
        scope=job.scope,
        model_kind=job.model_kind,
        created_time=_timestamp(job.created_at),
        progress=jobs_pb2.JobProgress(
            epoch=job.epoch,
            total_epochs=job.total_epochs,
            train_loss=job.train_loss,
            val_loss=job.val_loss,
            trials_done=job.trials_done,
            total_trials=job.total_trials,
            best_objective=job.best_objective if job.best_objective is not None else math.nan,
        ),
        metrics=job.metrics,
        model_version=job.model_version,
        error=job.error,
        note=job.note,
        trials=[
            jobs_pb2.TuningTrial(
                index=t["index"],
                status=t["status"],
                objective=t["value"],
                epochs=t["epochs"],
                params_json=json.dumps(t["params"], sort_keys=True),
                error=t["error"],
            )
            for t in job.trials
        ],
        config_json=json.dumps(job.config, sort_keys=True) if job.config else "",
    )
    if job.started_at is not None:
        message.started_time.CopyFrom(_timestamp(job.started_at))
    if job.finished_at is not None:
        message.finished_time.CopyFrom(_timestamp(job.finished_at))
    return message


def model_message(version: ModelVersion, champion: bool) -> jobs_pb2.ModelVersion:
    return jobs_pb2.ModelVersion(
        scope=version.scope,
        model_kind=version.kind,
        version=version.version,
        champion=champion,
        created_time=_timestamp(version.created_at),
        metrics=version.metrics,
        config_json=json.dumps(version.config, sort_keys=True),
        job_id=version.job_id,
    )
