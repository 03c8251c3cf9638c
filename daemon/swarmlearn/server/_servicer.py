"""The SwarmLearn service: protobuf in, a domain call, protobuf out."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from swarmlearn.config import Settings
from swarmlearn.errors import InvalidArgument, NotReady, Overloaded, UnknownAgent
from swarmlearn.events import LIMITS, Event, Rejection
from swarmlearn.ingest import Ingestor, PendingIngest
from swarmlearn.jobs import JobManager
from swarmlearn.names import MAX_HORIZON, TARGETS
from swarmlearn.online import AgentStats as OnlineAgentStats
from swarmlearn.online import OnlineLearner
from swarmlearn.prompts import PromptConfig, check_request, resolve_weights
from swarmlearn.registry import ModelRegistry
from swarmlearn.server._convert import (
    JOB_STATE_OF,
    agent_stats,
    batch_refusal,
    daemon_status,
    decode_events,
    ingest_ack,
    job_message,
    model_message,
    predict_response,
    score_request,
    score_response,
)
from swarmlearn.server._errors import abort_for, mapped
from swarmlearn.server._metrics import Metrics
from swarmlearn.server._status import StatusReport
from swarmlearn.server._streams import StreamSlots
from swarmlearn.store import EventStore
from swarmlearn_client.v1 import agents_pb2, daemon_pb2, events_pb2, jobs_pb2, prompts_pb2, service_pb2_grpc

_PROMPTS = PromptConfig()  # its limits; the prompt learner runs with the same defaults
_MAX_PAGE = 1000
_DECODE_SLICE = 500
"""Events decoded and validated between two turns of the event loop (about 3 ms of work)."""
_MAX_SPACE_JSON = 65_536
"""Characters in a StartTuning search_space_json."""
_MAX_CONFIG_JSON = 65_536
"""Characters in a StartTraining config_json."""
_DEFAULT_PAGE = 100

Context = grpc.aio.ServicerContext[Any, Any]


class SwarmLearnServicer(service_pb2_grpc.SwarmLearnServicer):  # type: ignore[misc]
    def __init__(
        self,
        settings: Settings,
        store: EventStore,
        ingestor: Ingestor,
        online: OnlineLearner,
        jobs: JobManager,
        registry: ModelRegistry,
        closing: asyncio.Event,
        metrics: Metrics,
        status: Callable[[int], StatusReport],
    ) -> None:
        self._settings = settings
        self._store = store
        self._ingestor = ingestor
        self._online = online
        self._jobs = jobs
        self._registry = registry
        self._closing = closing
        self._metrics = metrics
        self._status = status
        self._streams = StreamSlots(settings.max_concurrent_streams, settings.max_streams_per_connection)

    async def Ingest(
        self, request_iterator: AsyncIterator[events_pb2.EventBatch], context: Context
    ) -> AsyncIterator[events_pb2.IngestAck]:
        peer = context.peer()
        try:
            self._streams.take(peer)
        except Overloaded as exc:
            await abort_for(exc, context, "Ingest")
        self._metrics.streams.inc()
        try:
            async for ack in self._ingest(request_iterator, context):
                yield ack
        finally:
            self._streams.give_back(peer)
            self._metrics.streams.dec()

    async def _ingest(
        self, request_iterator: AsyncIterator[events_pb2.EventBatch], context: Context
    ) -> AsyncIterator[events_pb2.IngestAck]:
        # Reading runs ahead of acking by up to max_stream_inflight_events, so decoding the next
        # batches overlaps this one's commit (and small batches share a commit); the bound is the
        # server's backpressure on a stream.
        inflight: asyncio.Queue[tuple[str, int, float, PendingIngest] | None] = asyncio.Queue()
        limit = self._settings.max_stream_inflight_events
        max_events = self._settings.max_batch_events
        room = asyncio.Event()
        pending_events = 0
        loop = asyncio.get_running_loop()
        active_at = loop.time()  # the last batch read or acked

        async def read() -> None:
            nonlocal pending_events, active_at
            try:
                async for batch in request_iterator:
                    active_at = loop.time()
                    size = len(batch.events)
                    while pending_events and pending_events + size > limit:
                        room.clear()
                        await room.wait()
                    pending_events += size
                    received = time.perf_counter()
                    good, rejected = await decode_in_slices(batch, max_events, self._ingestor)
                    inflight.put_nowait((batch.batch_id, size, received, self._ingestor.submit(good, rejected)))
            finally:
                inflight.put_nowait(None)

        idle_timeout = self._settings.ingest_idle_timeout_s

        async def watch_idle() -> None:
            # Idle: nothing read for idle_timeout and nothing left to ack. Stopping the reader then
            # is safe: a batch it had not taken is unacknowledged, so the client resends it.
            while True:
                wait = active_at + idle_timeout - loop.time()
                if wait <= 0 and not pending_events:
                    reader.cancel()
                    return
                await asyncio.sleep(wait if wait > 0 else idle_timeout)

        reader = asyncio.create_task(read())
        # On shutdown stop reading; what was read is still committed and acknowledged below.
        watcher = asyncio.create_task(self._closing.wait())
        watcher.add_done_callback(lambda _: reader.cancel())
        idle = asyncio.create_task(watch_idle()) if idle_timeout else None
        try:
            while (item := await inflight.get()) is not None:
                batch_id, size, received, pending = item
                try:
                    result = await pending.result()
                except Exception as exc:
                    await abort_for(exc, context, "Ingest")
                    raise
                yield ingest_ack(batch_id, result)
                self._metrics.record_ack(result, time.perf_counter() - received)
                pending_events -= size
                active_at = loop.time()
                room.set()
        finally:
            watcher.cancel()
            reader.cancel()
            if idle is not None:
                idle.cancel()
            while not inflight.empty():
                if (left := inflight.get_nowait()) is not None:
                    left[3].abandon()
        if not reader.cancelled() and (failure := reader.exception()) is not None:
            await abort_for(failure, context, "Ingest")
        if self._closing.is_set():
            await context.abort(
                grpc.StatusCode.UNAVAILABLE, "daemon shutting down; reconnect and resend unacknowledged batches"
            )
        if idle is not None and idle.done() and not idle.cancelled():
            await context.abort(
                grpc.StatusCode.UNAVAILABLE,
                f"no batch for {idle_timeout:g} s (setting ingest_idle_timeout_s): the stream is closed; "
                "open another to send more",
            )

    @mapped
    async def Predict(self, request: agents_pb2.PredictRequest, context: Context) -> agents_pb2.PredictResponse:
        # Everything is checked here, before the learner is asked: a bad request is INVALID_ARGUMENT
        # whatever the learner's state (restarting, behind, off).
        agent_id = _agent_id(request.agent_id)
        for i, target in enumerate(request.targets):
            if target not in TARGETS:
                raise InvalidArgument(f"targets[{i}]", f"unknown target {target!r}; one of {', '.join(TARGETS)}")
        targets = tuple(dict.fromkeys(request.targets)) or TARGETS  # in the order asked, once each
        horizon = request.horizon or 1
        if horizon > MAX_HORIZON:
            raise InvalidArgument("horizon", f"must be between 1 and {MAX_HORIZON}, got {horizon}")
        coverage = request.coverage or self._settings.predict_coverage
        if not 0.0 < coverage < 1.0:
            raise InvalidArgument("coverage", f"must be in (0, 1), got {coverage}")
        if not self._ingestor.knows(agent_id):
            raise UnknownAgent(agent_id)
        # Reading durable_sequence here makes an agent answer from its first acknowledged event.
        durable = self._store.durable_sequence
        answer = await self._online.predict(agent_id, horizon, coverage, min_seq=durable)
        check_lag(durable, answer.applied_seq, self._settings.online_max_lag_events)
        return predict_response(agent_id, answer, targets, durable)

    @mapped
    async def ScorePrompts(
        self, request: prompts_pb2.ScorePromptsRequest, context: Context
    ) -> prompts_pb2.ScorePromptsResponse:
        agent_id = _agent_id(request.agent_id)
        candidates, weights = score_request(request)
        check_request(agent_id, candidates, _PROMPTS)
        resolve_weights(weights, _PROMPTS)
        # An agent with committed events waits for the learner to reach it; a stranger gets the
        # swarm's models at once.
        durable = self._store.durable_sequence
        min_seq = durable if self._ingestor.knows(agent_id) else 0
        answer = await self._online.score(agent_id, candidates, weights, request.select, min_seq=min_seq)
        return score_response(answer.value, answer.applied_seq, durable)

    @mapped
    async def GetAgentStats(self, request: agents_pb2.GetAgentStatsRequest, context: Context) -> agents_pb2.AgentStats:
        agent_id = _agent_id(request.agent_id)
        min_seq = self._store.durable_sequence
        summary = await asyncio.to_thread(self._store.agent_summary, agent_id)
        if summary is None:
            raise UnknownAgent(agent_id)
        online, as_of = await self._online_stats((agent_id,), min_seq)
        return agent_stats(summary, online.get(agent_id), as_of)

    @mapped
    async def ListAgents(
        self, request: agents_pb2.ListAgentsRequest, context: Context
    ) -> agents_pb2.ListAgentsResponse:
        size = min(request.page_size or _DEFAULT_PAGE, _MAX_PAGE)
        after = _decode_token(request.page_token)
        # One extra row tells whether another page follows without a second query.
        summaries = await asyncio.to_thread(self._store.list_agents, after=after, limit=size + 1)
        page = summaries[:size]
        token = _encode_token(page[-1].agent_id) if len(summaries) > size else ""
        # A page shows what the learner knows now; it does not wait for it to catch up.
        online, as_of = await self._online_stats(tuple(s.agent_id for s in page), 0)
        return agents_pb2.ListAgentsResponse(
            agents=[agent_stats(s, online.get(s.agent_id), as_of) for s in page], next_page_token=token
        )

    async def _online_stats(self, agent_ids: tuple[str, ...], min_seq: int) -> tuple[dict[str, OnlineAgentStats], int]:
        """The learner's stats of these agents, or none while it restarts: the store's part still answers."""
        try:
            answer = await self._online.stats(agent_ids, min_seq=min_seq)
        except NotReady:
            return {}, 0
        return answer.value, answer.applied_seq

    # -- jobs and models ------------------------------------------------------------------------

    @mapped
    async def StartTraining(self, request: jobs_pb2.StartTrainingRequest, context: Context) -> jobs_pb2.Job:
        if request.scope:
            _agent_id(request.scope)  # the same limits
        if len(request.config_json) > _MAX_CONFIG_JSON:
            raise InvalidArgument("config_json", f"at most {_MAX_CONFIG_JSON} characters")
        job = await self._jobs.submit_training(
            request.scope,
            request.model_kind,
            max_epochs=request.max_epochs,
            horizon=request.horizon,
            config_json=request.config_json,
        )
        return job_message(job)

    @mapped
    async def StartTuning(self, request: jobs_pb2.StartTuningRequest, context: Context) -> jobs_pb2.Job:
        if request.scope:
            _agent_id(request.scope)  # the same limits
        if len(request.search_space_json) > _MAX_SPACE_JSON:
            raise InvalidArgument("search_space_json", f"at most {_MAX_SPACE_JSON} characters")
        job = await self._jobs.submit_tuning(
            request.scope,
            request.model_kind,
            method=request.method,
            max_trials=request.max_trials,
            concurrency=request.concurrency,
            search_space_json=request.search_space_json,
            objective=request.objective,
        )
        return job_message(job)

    @mapped
    async def GetJob(self, request: jobs_pb2.GetJobRequest, context: Context) -> jobs_pb2.Job:
        return job_message(self._jobs.get(request.job_id))

    async def WatchJob(self, request: jobs_pb2.WatchJobRequest, context: Context) -> AsyncIterator[jobs_pb2.Job]:
        try:
            async for job in self._jobs.watch(request.job_id):
                yield job_message(job)
        except Exception as exc:
            await abort_for(exc, context, "WatchJob")

    @mapped
    async def CancelJob(self, request: jobs_pb2.CancelJobRequest, context: Context) -> jobs_pb2.Job:
        return job_message(await self._jobs.cancel(request.job_id))

    @mapped
    async def ListJobs(self, request: jobs_pb2.ListJobsRequest, context: Context) -> jobs_pb2.ListJobsResponse:
        state = JOB_STATE_OF.get(request.state) if request.state else None
        kind = {jobs_pb2.JOB_KIND_TRAINING: "training", jobs_pb2.JOB_KIND_TUNING: "tuning"}.get(request.kind)
        jobs = self._jobs.list(state=state, kind=kind, limit=request.limit)
        return jobs_pb2.ListJobsResponse(jobs=[job_message(j) for j in jobs])

    @mapped
    async def ListModels(self, request: jobs_pb2.ListModelsRequest, context: Context) -> jobs_pb2.ListModelsResponse:
        registry = self._registry
        versions = registry.versions(scope=request.scope or None, kind=request.model_kind or None)
        return jobs_pb2.ListModelsResponse(models=[model_message(v, registry.is_champion(v)) for v in versions])

    @mapped
    async def PromoteModel(self, request: jobs_pb2.PromoteModelRequest, context: Context) -> jobs_pb2.ModelVersion:
        if not request.model_kind:
            raise InvalidArgument("model_kind", "must not be empty")
        version = self._registry.promote(request.scope, request.model_kind, request.version)
        return model_message(version, True)

    @mapped
    async def RollbackModel(self, request: jobs_pb2.RollbackModelRequest, context: Context) -> jobs_pb2.ModelVersion:
        version = self._registry.rollback(request.scope)
        return model_message(version, True)

    @mapped
    async def GetStatus(self, request: daemon_pb2.GetStatusRequest, context: Context) -> daemon_pb2.DaemonStatus:
        return daemon_status(await asyncio.to_thread(self._status, self._streams.open))


def _agent_id(agent_id: str) -> str:
    if not agent_id:
        raise InvalidArgument("agent_id", "must not be empty")
    if len(agent_id) > LIMITS.max_agent_id_chars:
        raise InvalidArgument("agent_id", f"longer than {LIMITS.max_agent_id_chars} characters")
    return agent_id


def _encode_token(agent_id: str) -> str:
    return base64.urlsafe_b64encode(agent_id.encode()).decode()


def _decode_token(token: str) -> str:
    if not token:
        return ""
    try:
        return base64.b64decode(token.encode(), altchars=b"-_", validate=True).decode()
    except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
        raise InvalidArgument("page_token", "not a token this daemon issued") from None


async def decode_in_slices(
    batch: events_pb2.EventBatch, max_events: int, ingestor: Ingestor
) -> tuple[list[Event], list[Rejection]]:
    """Decode and validate a batch ``_DECODE_SLICE`` events at a time, letting the event loop serve
    other RPCs in between: a whole 10,000-event batch held it some 60 ms."""
    refusal = batch_refusal(len(batch.events), max_events)
    if refusal is not None:
        return [], [refusal]
    good: list[Event] = []
    rejected: list[Rejection] = []
    events = batch.events
    for first in range(0, len(events), _DECODE_SLICE):
        if first:
            await asyncio.sleep(0)
        pairs, bad = decode_events(events[first : first + _DECODE_SLICE], first)
        rejected += bad
        good += ingestor.validate(pairs, rejected)
    return good, rejected


def check_lag(durable: int, applied: int, most: int) -> None:
    """``NotReady`` (UNAVAILABLE) when the state that answered is more than ``most`` events behind
    the log (0: any lag is served, and the answer's two sequences tell it)."""
    lag = durable - applied
    if most and lag > most:
        raise NotReady(
            f"the online learner is catching up: {lag} events behind the log, more than "
            f"online_max_lag_events ({most}); retry shortly"
        )
