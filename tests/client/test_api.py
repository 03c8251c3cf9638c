"""The client's public face: exports, make_event, unary RPCs, error mapping, health, the sync client."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta, timezone

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

import swarmlearn_client
from swarmlearn_client import (
    AsyncClient,
    Client,
    EventType,
    ObjectiveWeights,
    PromptCandidate,
    SwarmLearnError,
    make_event,
)
from swarmlearn_client._convert import decode_health_response, encode_health_request
from swarmlearn_client.v1 import agents_pb2, events_pb2, jobs_pb2, prompts_pb2, service_pb2_grpc

T0 = datetime(2025, 3, 1, 12, 0, 0, 250_000, tzinfo=UTC)


def test_public_api_is_pinned() -> None:
    assert swarmlearn_client.__all__ == [
        "AgentPage",
        "AgentStats",
        "AsyncClient",
        "AsyncIngestStream",
        "BaselineStats",
        "BatchAck",
        "Client",
        "DaemonStatus",
        "DriftState",
        "EventBatch",
        "EventType",
        "Forecast",
        "ForecastPoint",
        "IngestStream",
        "IngestSummary",
        "Job",
        "JobKind",
        "JobProgress",
        "JobState",
        "Metrics",
        "ModelVersion",
        "ObjectiveWeights",
        "PerformanceMetrics",
        "PromptCandidate",
        "PromptData",
        "PromptRanking",
        "Rejection",
        "ScoredPrompt",
        "StreamEvent",
        "SwarmLearnError",
        "TargetForecast",
        "TuningTrial",
        "__version__",
        "make_event",
    ]
    for name in swarmlearn_client.__all__:
        assert hasattr(swarmlearn_client, name)


def test_make_event_fills_every_field() -> None:
    event = make_event(
        agent_id="agent-7",
        latency_ms=120.5,
        tokens_per_second=33.0,
        memory_usage_mb=512.0,
        cpu_usage_percent=40.0,
        success_rate=0.75,
        event_type=EventType.EVENT_TYPE_RESPONSE_RECEIVED,
        timestamp=T0,
        event_id="e-1",
        prompt_text="Summarise the log",
        prompt_tokens=12,
        response_tokens=80,
        quality_score=0.9,
        attributes={"model": "m1", "prompt_variant": "short"},
    )
    assert (event.agent_id, event.event_id) == ("agent-7", "e-1")
    assert event.event_type == events_pb2.EVENT_TYPE_RESPONSE_RECEIVED
    assert event.timestamp.ToDatetime(tzinfo=UTC) == T0
    m = event.performance_metrics
    assert (m.latency_ms, m.tokens_per_second, m.memory_usage_mb, m.cpu_usage_percent, m.success_rate) == (
        120.5,
        33.0,
        512.0,
        40.0,
        0.75,
    )
    p = event.prompt_data
    assert (p.prompt_text, p.prompt_tokens, p.response_tokens, p.quality_score) == ("Summarise the log", 12, 80, 0.9)
    assert dict(event.attributes) == {"model": "m1", "prompt_variant": "short"}


def test_make_event_defaults_and_timestamps() -> None:
    before = datetime.now(UTC)
    event = make_event(agent_id="a", latency_ms=1.0, tokens_per_second=2.0)
    assert event.event_type == events_pb2.EVENT_TYPE_PERFORMANCE_UPDATE
    assert not event.performance_metrics.HasField("success_rate")  # unset is absent, not 1 or 0
    assert not event.performance_metrics.HasField("memory_usage_mb")
    assert not event.HasField("prompt_data")
    assert not make_event(agent_id="a", event_type=events_pb2.EVENT_TYPE_TASK_STARTED).HasField("performance_metrics")
    assert len(event.event_id) == 32
    # A UUIDv7: ids that grow with time keep the daemon's (agent_id, event_id) index appending.
    assert uuid.UUID(event.event_id).version == 7
    assert abs(int(event.event_id[:12], 16) / 1000 - before.timestamp()) < 1
    time.sleep(0.002)
    assert make_event(agent_id="a", latency_ms=1, tokens_per_second=1).event_id > event.event_id
    assert before - timedelta(seconds=1) <= event.timestamp.ToDatetime(tzinfo=UTC) <= datetime.now(UTC)
    assert make_event(agent_id="a", latency_ms=1, tokens_per_second=1).event_id != event.event_id

    unix = make_event(agent_id="a", latency_ms=1, tokens_per_second=1, timestamp=1_700_000_000.5)
    assert (unix.timestamp.seconds, unix.timestamp.nanos) == (1_700_000_000, 500_000_000)
    east = datetime(2025, 3, 1, 14, 0, 0, 250_000, tzinfo=timezone(timedelta(hours=2)))
    assert (
        make_event(agent_id="a", latency_ms=1, tokens_per_second=1, timestamp=east).timestamp.ToDatetime(tzinfo=UTC)
        == T0
    )
    with pytest.raises(ValueError, match="timezone-aware"):
        make_event(agent_id="a", latency_ms=1, tokens_per_second=1, timestamp=datetime(2025, 1, 1))
    only_quality = make_event(agent_id="a", latency_ms=1, tokens_per_second=1, quality_score=0.0)
    assert only_quality.HasField("prompt_data") and only_quality.prompt_data.HasField("quality_score")
    assert not only_quality.prompt_data.HasField("prompt_tokens")


def test_health_wire_format() -> None:
    for status in (0, 1, 2, 3):
        raw = health_pb2.HealthCheckResponse(status=status).SerializeToString()
        assert decode_health_response(raw) == health_pb2.HealthCheckResponse.ServingStatus.Name(status)
    assert encode_health_request("") == b""
    svc = "swarmlearn.v1.SwarmLearn"
    assert encode_health_request(svc) == health_pb2.HealthCheckRequest(service=svc).SerializeToString()


def test_error_keeps_code_and_details_and_pickles() -> None:
    import pickle

    error = SwarmLearnError(grpc.StatusCode.NOT_FOUND, "no agent 'x'")
    assert str(error) == "NOT_FOUND: no agent 'x'"
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.code, copy.details) == (grpc.StatusCode.NOT_FOUND, "no agent 'x'")


# -- unary RPCs against a fake daemon -----------------------------------------------------------


class FakeDaemon(service_pb2_grpc.SwarmLearnServicer):
    def __init__(self) -> None:
        self.metadata: list[dict[str, str]] = []
        self.requests: list[object] = []
        self.unavailable = 0  # ListModels answers UNAVAILABLE this many times first

    def _seen(self, request: object, context: grpc.aio.ServicerContext) -> None:
        self.requests.append(request)
        self.metadata.append({k: v for k, v in context.invocation_metadata() or () if isinstance(v, str)})

    async def GetAgentStats(
        self, request: agents_pb2.GetAgentStatsRequest, context: grpc.aio.ServicerContext
    ) -> agents_pb2.AgentStats:
        self._seen(request, context)
        if request.agent_id != "known":
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no agent {request.agent_id!r}")
        stats = agents_pb2.AgentStats(
            agent_id="known",
            event_count=42,
            mean_metrics=events_pb2.PerformanceMetrics(latency_ms=100.0, success_rate=0.5),
            prompt_event_count=3,
            features={"latency_ewma": 99.0},
            baselines=[agents_pb2.BaselineStats(target="latency_ms", model_kind="online:ewma", scored=41, best=True)],
            drift=[agents_pb2.DriftState(target="latency_ms", drift_count=1)],
        )
        stats.first_event_time.FromDatetime(T0)
        return stats

    async def Predict(
        self, request: agents_pb2.PredictRequest, context: grpc.aio.ServicerContext
    ) -> agents_pb2.PredictResponse:
        self._seen(request, context)
        forecast = agents_pb2.TargetForecast(target="latency_ms", model_kind="online:ewma", model_version="0")
        for step in range(1, request.horizon + 1):
            forecast.points.add(step=step, value=100.0 + step, lower=90.0, upper=120.0)
        return agents_pb2.PredictResponse(agent_id=request.agent_id, forecasts=[forecast])

    async def ScorePrompts(
        self, request: prompts_pb2.ScorePromptsRequest, context: grpc.aio.ServicerContext
    ) -> prompts_pb2.ScorePromptsResponse:
        self._seen(request, context)
        ranked = [
            prompts_pb2.ScoredPrompt(index=i, variant=c.variant, score=float(i))
            for i, c in enumerate(request.candidates)
        ][::-1]
        return prompts_pb2.ScorePromptsResponse(
            agent_id=request.agent_id, ranked=ranked, selected_variant="b", as_of_sequence=90, durable_sequence=100
        )

    async def ListJobs(
        self, request: jobs_pb2.ListJobsRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.ListJobsResponse:
        self._seen(request, context)
        return jobs_pb2.ListJobsResponse(jobs=[jobs_pb2.Job(job_id="j1", state=request.state, kind=request.kind)])

    async def WatchJob(
        self, request: jobs_pb2.WatchJobRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[jobs_pb2.Job]:
        self._seen(request, context)
        for state, epoch in ((jobs_pb2.JOB_STATE_PENDING, 0), (jobs_pb2.JOB_STATE_RUNNING, 1)):
            yield jobs_pb2.Job(
                job_id=request.job_id,
                kind=jobs_pb2.JOB_KIND_TRAINING,
                state=state,
                progress=jobs_pb2.JobProgress(epoch=epoch, total_epochs=2),
            )
        if request.job_id == "broken":
            await context.abort(grpc.StatusCode.INTERNAL, "trainer crashed")
        yield jobs_pb2.Job(job_id=request.job_id, state=jobs_pb2.JOB_STATE_SUCCEEDED, metrics={"val_mase": 0.8})

    async def ListModels(
        self, request: jobs_pb2.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.ListModelsResponse:
        self._seen(request, context)
        if self.unavailable:
            self.unavailable -= 1
            context.set_trailing_metadata((("retry-after-ms", "200"),))
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the event log cannot be written; retry in 200 ms")
        return jobs_pb2.ListModelsResponse(models=[jobs_pb2.ModelVersion(model_kind="lstm", version=1)])

    async def StartTraining(
        self, request: jobs_pb2.StartTrainingRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.Job:
        self._seen(request, context)
        await context.abort(grpc.StatusCode.UNAVAILABLE, "the event log cannot be written")


async def start_daemon(fake: FakeDaemon) -> tuple[grpc.aio.Server, str]:
    server = grpc.aio.server()
    service_pb2_grpc.add_SwarmLearnServicer_to_server(fake, server)
    health_servicer = health.aio.HealthServicer()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    await health_servicer.set("draining", health_pb2.HealthCheckResponse.NOT_SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


@pytest.fixture
async def daemon() -> AsyncIterator[tuple[FakeDaemon, str]]:
    fake = FakeDaemon()
    server, target = await start_daemon(fake)
    yield fake, target
    await server.stop(grace=None)


async def test_not_found_becomes_swarmlearn_error(daemon: tuple[FakeDaemon, str]) -> None:
    _, target = daemon
    async with AsyncClient(target) as client:
        with pytest.raises(SwarmLearnError) as info:
            await client.get_agent_stats("ghost")
    assert info.value.code == grpc.StatusCode.NOT_FOUND
    assert info.value.details == "no agent 'ghost'"
    assert isinstance(info.value.__cause__, grpc.aio.AioRpcError)


async def test_unimplemented_and_unreachable_become_swarmlearn_errors(daemon: tuple[FakeDaemon, str]) -> None:
    _, target = daemon
    async with AsyncClient(target) as client:
        with pytest.raises(SwarmLearnError) as info:
            await client.get_job("j1")
        assert info.value.code == grpc.StatusCode.UNIMPLEMENTED
    async with AsyncClient("127.0.0.1:1", timeout=2.0) as client:
        with pytest.raises(SwarmLearnError) as info:
            await client.health()
        assert info.value.code == grpc.StatusCode.UNAVAILABLE


async def test_results_are_typed_and_token_is_sent(daemon: tuple[FakeDaemon, str]) -> None:
    fake, target = daemon
    async with AsyncClient(target, token="s3cret") as client:
        stats = await client.get_agent_stats("known")
        forecast = await client.predict("known", horizon=3, targets=["latency_ms"], coverage=0.9)
        ranking = await client.score_prompts(
            "known",
            ["plain", PromptCandidate("tagged", variant="b", prompt_tokens=0)],
            weights=ObjectiveWeights(latency=2.0),
            select=True,
        )
        jobs = await client.list_jobs(state="running", kind="tuning")
    assert fake.metadata[0]["authorization"] == "Bearer s3cret"

    assert (stats.agent_id, stats.event_count, stats.prompt_event_count) == ("known", 42, 3)
    assert stats.first_event_time == T0 and stats.first_event_time.tzinfo is not None
    assert stats.last_event_time is None
    assert (stats.mean_metrics.latency_ms, stats.mean_metrics.success_rate) == (100.0, 0.5)
    assert stats.features == {"latency_ewma": 99.0}
    assert stats.baselines[0].best and stats.baselines[0].scored == 41
    assert stats.drift[0].drift_count == 1 and stats.drift[0].last_drift_time is None

    assert [p.step for p in forecast["latency_ms"].points] == [1, 2, 3]
    assert forecast["latency_ms"].points[0].value == 101.0
    predict_request = fake.requests[1]
    assert isinstance(predict_request, agents_pb2.PredictRequest)
    assert (list(predict_request.targets), predict_request.coverage) == (["latency_ms"], 0.9)

    assert [s.index for s in ranking.ranked] == [1, 0] and ranking.selected_variant == "b"
    assert (ranking.as_of_sequence, ranking.durable_sequence, ranking.lag) == (90, 100, 10)
    score_request = fake.requests[2]
    assert isinstance(score_request, prompts_pb2.ScorePromptsRequest)
    assert not score_request.candidates[0].HasField("prompt_tokens")
    assert score_request.candidates[1].HasField("prompt_tokens")
    assert score_request.weights.HasField("latency") and not score_request.weights.HasField("quality")

    assert (jobs[0].state, jobs[0].kind, jobs[0].done) == ("running", "tuning", False)


async def test_health_and_watch_job(daemon: tuple[FakeDaemon, str]) -> None:
    _, target = daemon
    async with AsyncClient(target) as client:
        assert await client.health() == "SERVING"
        assert await client.health(service="draining") == "NOT_SERVING"
        with pytest.raises(SwarmLearnError) as info:
            await client.health(service="nope")
        assert info.value.code == grpc.StatusCode.NOT_FOUND

        states = [job.state async for job in client.watch_job("j1")]
        assert states == ["pending", "running", "succeeded"]
        seen = []
        with pytest.raises(SwarmLearnError) as info:
            async for job in client.watch_job("broken"):
                seen.append(job.progress.epoch)
        assert info.value.code == grpc.StatusCode.INTERNAL and seen == [0, 1]


async def test_reads_are_retried_on_unavailable_after_the_hint_and_other_calls_are_not(
    daemon: tuple[FakeDaemon, str],
) -> None:
    fake, target = daemon
    fake.unavailable = 2
    async with AsyncClient(target, timeout=5) as client:
        started = time.monotonic()
        assert [m.version for m in await client.list_models()] == [1]
        assert len(fake.requests) == 3
        assert time.monotonic() - started >= 0.4  # the daemon's retry-after-ms, twice
        # Starting a job twice would start two: not retried.
        with pytest.raises(SwarmLearnError) as info:
            await client.start_training(model_kind="lstm")
        assert info.value.code == grpc.StatusCode.UNAVAILABLE and len(fake.requests) == 4
    fake.unavailable = 1000
    async with AsyncClient(target, timeout=1) as client:
        started = time.monotonic()
        with pytest.raises(SwarmLearnError) as info:
            await client.list_models()
        # Given up within the call's timeout, with the daemon's status, not DEADLINE_EXCEEDED.
        assert info.value.code == grpc.StatusCode.UNAVAILABLE and "retry in" in info.value.details
        assert 0.6 < time.monotonic() - started < 2.0


async def test_closed_client_refuses_calls(daemon: tuple[FakeDaemon, str]) -> None:
    _, target = daemon
    client = AsyncClient(target)
    await client.close()
    with pytest.raises(RuntimeError):
        await client.health()


# -- the blocking client ------------------------------------------------------------------------


@pytest.fixture
def threaded_daemon() -> Iterator[str]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server, target = asyncio.run_coroutine_threadsafe(start_daemon(FakeDaemon()), loop).result(5)
    yield target
    asyncio.run_coroutine_threadsafe(server.stop(grace=None), loop).result(5)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


def test_sync_client_unary_calls_and_errors(threaded_daemon: str) -> None:
    with Client(threaded_daemon) as client:
        assert client.health() == "SERVING"
        assert client.get_agent_stats("known").event_count == 42
        with pytest.raises(SwarmLearnError) as info:
            client.get_agent_stats("ghost")
        assert info.value.code == grpc.StatusCode.NOT_FOUND
        assert [job.state for job in client.watch_job("j1")] == ["pending", "running", "succeeded"]
        watch = client.watch_job("j1")
        assert next(watch).state == "pending"
        watch.close()  # ends the server stream early
        assert client.predict("known", horizon=2)["latency_ms"].points[-1].step == 2
    with pytest.raises(RuntimeError):
        client.health()
