"""The asyncio client: one grpc.aio channel, typed results, one error type."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncGenerator, AsyncIterable, Iterable, Sequence
from types import TracebackType
from typing import Any

import grpc

from swarmlearn_client import _convert
from swarmlearn_client._errors import SwarmLearnError, from_rpc_error
from swarmlearn_client._ingest import (
    BATCH_SIZE,
    FLUSH_INTERVAL,
    MAX_UNACKED_EVENTS,
    RECONNECT_TIMEOUT,
    AckCallback,
    AsyncIngestStream,
    IngestCall,
)
from swarmlearn_client._types import (
    AgentPage,
    AgentStats,
    DaemonStatus,
    Forecast,
    IngestSummary,
    Job,
    JobKind,
    JobState,
    ModelVersion,
    ObjectiveWeights,
    PromptCandidate,
    PromptRanking,
)
from swarmlearn_client.v1 import agents_pb2, daemon_pb2, events_pb2, jobs_pb2, prompts_pb2, service_pb2_grpc

__all__ = ["DEFAULT_TIMEOUT", "MAX_MESSAGE_BYTES", "AsyncClient"]

DEFAULT_TIMEOUT = 10.0
# Well above a batch of 1000 events with long prompt texts, which grpc's 4 MiB default is not.
MAX_MESSAGE_BYTES = 32 * 1024 * 1024

_HEALTH_CHECK = "/grpc.health.v1.Health/Check"
# Calls that only read (and CancelJob, which ends in the same state however often it is sent) are
# retried on UNAVAILABLE: after the daemon's retry-after-ms when it sent one, else with backoff.
_RETRY_BACKOFF_INITIAL = 0.1
_RETRY_BACKOFF_MAX = 2.0

ChannelOptions = Sequence[tuple[str, Any]]


def _channel_options(options: ChannelOptions | None) -> list[tuple[str, Any]]:
    merged: dict[str, Any] = {
        "grpc.max_send_message_length": MAX_MESSAGE_BYTES,
        "grpc.max_receive_message_length": MAX_MESSAGE_BYTES,
        # grpc's defaults (1 s, growing to 120 s) would keep a client away from a restarted local
        # daemon long after it is back; the ingest stream's reconnect_timeout is 30 s.
        "grpc.initial_reconnect_backoff_ms": 100,
        "grpc.min_reconnect_backoff_ms": 100,
        "grpc.max_reconnect_backoff_ms": 2000,
    }
    merged.update(options or ())
    return list(merged.items())


class AsyncClient:
    """Talks to a swarmlearn daemon from asyncio code.

    ``target`` is ``host:port`` or ``unix:/path/to/socket``. With ``credentials`` the channel uses
    TLS; ``token`` is sent as ``authorization: Bearer <token>`` on every call. ``timeout`` is the
    deadline of each unary RPC in seconds; streams (ingest, watch_job) have none. ``options`` are
    extra grpc channel arguments and override the client's own. Every failed RPC raises
    ``SwarmLearnError``. Use as ``async with AsyncClient(...) as client`` or call ``close()``.
    """

    def __init__(
        self,
        target: str,
        *,
        credentials: grpc.ChannelCredentials | None = None,
        token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        options: ChannelOptions | None = None,
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        self.target = target
        self.timeout = timeout
        channel_options = _channel_options(options)
        if credentials is None:
            self._channel = grpc.aio.insecure_channel(target, options=channel_options)
        else:
            self._channel = grpc.aio.secure_channel(target, credentials, options=channel_options)
        self._metadata: tuple[tuple[str, str], ...] = (("authorization", f"Bearer {token}"),) if token else ()
        # The generated stub is untyped; each method is wrapped below with typed results.
        self._stub: Any = service_pb2_grpc.SwarmLearnStub(self._channel)
        # No (de)serializers: bytes in, bytes out (see _convert.decode_health_response).
        self._health_check: Any = self._channel.unary_unary(
            _HEALTH_CHECK, request_serializer=None, response_deserializer=None
        )
        self._closed = False

    async def close(self) -> None:
        """Close the channel; open streams and watches end with CANCELLED."""
        if not self._closed:
            self._closed = True
            await self._channel.close(grace=None)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _unary(self, method: Any, request: Any, *, retry: bool = False) -> Any:
        """One call; with ``retry``, repeated on UNAVAILABLE while its ``timeout`` lasts."""
        if self._closed:
            raise RuntimeError("the client is closed")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        backoff = _RETRY_BACKOFF_INITIAL
        unavailable: tuple[SwarmLearnError, grpc.RpcError] | None = None
        while True:
            try:
                return await method(request, timeout=deadline - loop.time(), metadata=self._metadata)
            except grpc.RpcError as exc:
                error, cause = from_rpc_error(exc), exc
            if retry and error.code is grpc.StatusCode.UNAVAILABLE:
                hint = _retry_after(cause)
                delay = hint if hint is not None else backoff * (0.5 + random.random() / 2)
                backoff = min(backoff * 2, _RETRY_BACKOFF_MAX)
                if loop.time() + delay < deadline:
                    unavailable = error, cause
                    await asyncio.sleep(delay)
                    continue
            elif unavailable is not None and error.code is grpc.StatusCode.DEADLINE_EXCEEDED:
                error, cause = unavailable  # the timeout ran out on a retry: the daemon's answer is the news
            raise error from cause

    # -- health and ingest ------------------------------------------------------------------------

    async def health(self, *, service: str = "") -> str:
        """Status of ``service`` ("" is the whole daemon) from grpc.health.v1.

        One of "SERVING", "NOT_SERVING", "UNKNOWN", "SERVICE_UNKNOWN".
        """
        response = await self._unary(self._health_check, _convert.encode_health_request(service))
        return _convert.decode_health_response(response)

    def ingest_stream(
        self,
        *,
        batch_size: int = BATCH_SIZE,
        flush_interval: float = FLUSH_INTERVAL,
        max_unacked_events: int = MAX_UNACKED_EVENTS,
        reconnect_timeout: float = RECONNECT_TIMEOUT,
        on_ack: AckCallback | None = None,
    ) -> AsyncIngestStream:
        """Open an ingest stream (the gRPC call starts with the first batch).

        Events are batched up to ``batch_size`` or for at most ``flush_interval`` seconds; at most
        ``max_unacked_events`` are in flight before ``send()`` waits. On UNAVAILABLE or
        RESOURCE_EXHAUSTED the stream reconnects with backoff for up to ``reconnect_timeout``
        seconds and resends what was not acknowledged. ``on_ack`` is called with each ``BatchAck``.
        """
        if self._closed:
            raise RuntimeError("the client is closed")
        return AsyncIngestStream(
            self._open_ingest,
            batch_size=batch_size,
            flush_interval=flush_interval,
            max_unacked_events=max_unacked_events,
            reconnect_timeout=reconnect_timeout,
            on_ack=on_ack,
        )

    def _open_ingest(self) -> IngestCall:
        call: IngestCall = self._stub.Ingest(metadata=self._metadata)
        return call

    async def ingest(
        self,
        events: Iterable[events_pb2.StreamEvent] | AsyncIterable[events_pb2.StreamEvent],
        *,
        batch_size: int = BATCH_SIZE,
        flush_interval: float = FLUSH_INTERVAL,
        max_unacked_events: int = MAX_UNACKED_EVENTS,
        reconnect_timeout: float = RECONNECT_TIMEOUT,
        on_ack: AckCallback | None = None,
    ) -> IngestSummary:
        """Send every event over one ingest stream and return once all are acknowledged."""
        stream = self.ingest_stream(
            batch_size=batch_size,
            flush_interval=flush_interval,
            max_unacked_events=max_unacked_events,
            reconnect_timeout=reconnect_timeout,
            on_ack=on_ack,
        )
        try:
            if isinstance(events, AsyncIterable):
                async for event in events:
                    await stream.send(event)
            else:
                await stream.send_many(events)
        except BaseException:
            await stream.abort()
            raise
        return await stream.close()

    # -- agents and prompts -----------------------------------------------------------------------

    async def predict(
        self, agent_id: str, *, horizon: int = 1, targets: Sequence[str] = (), coverage: float = 0.0
    ) -> Forecast:
        """Forecast the next ``horizon`` events of an agent; ``targets`` empty means all three.

        ``coverage`` is the nominal coverage of the intervals in (0, 1); 0 keeps the daemon's default.
        """
        request = agents_pb2.PredictRequest(agent_id=agent_id, horizon=horizon, targets=targets, coverage=coverage)
        return _convert.forecast_from_proto(await self._unary(self._stub.Predict, request, retry=True))

    async def score_prompts(
        self,
        agent_id: str,
        candidates: Iterable[str | PromptCandidate],
        *,
        weights: ObjectiveWeights | None = None,
        select: bool = False,
    ) -> PromptRanking:
        """Rank candidate prompts for an agent, best first; ``select`` also picks the next variant."""
        request = prompts_pb2.ScorePromptsRequest(
            agent_id=agent_id,
            candidates=[_convert.candidate_to_proto(c) for c in candidates],
            weights=_convert.weights_to_proto(weights),
            select=select,
        )
        return _convert.ranking_from_proto(await self._unary(self._stub.ScorePrompts, request, retry=True))

    async def get_agent_stats(self, agent_id: str) -> AgentStats:
        request = agents_pb2.GetAgentStatsRequest(agent_id=agent_id)
        return _convert.agent_stats_from_proto(await self._unary(self._stub.GetAgentStats, request, retry=True))

    async def list_agents(self, *, page_size: int = 0, page_token: str = "") -> AgentPage:
        """One page of agents; ``page_size`` 0 means the daemon's default (100), at most 1000."""
        request = agents_pb2.ListAgentsRequest(page_size=page_size, page_token=page_token)
        return _convert.agent_page_from_proto(await self._unary(self._stub.ListAgents, request, retry=True))

    # -- jobs -------------------------------------------------------------------------------------

    async def start_training(
        self,
        *,
        model_kind: str,
        scope: str = "",
        max_epochs: int = 0,
        horizon: int = 0,
        config_json: str = "",
    ) -> Job:
        """Start a training job. ``scope`` is an agent id or "" for every agent; ``model_kind`` is
        lstm, tcn, nbeats or ensemble; 0 and "" keep the daemon's defaults; ``config_json`` overrides the
        model configuration as a JSON object."""
        request = jobs_pb2.StartTrainingRequest(
            scope=scope, model_kind=model_kind, max_epochs=max_epochs, horizon=horizon, config_json=config_json
        )
        return _convert.job_from_proto(await self._unary(self._stub.StartTraining, request))

    async def start_tuning(
        self,
        *,
        model_kind: str,
        method: str,
        scope: str = "",
        max_trials: int = 0,
        concurrency: int = 0,
        search_space_json: str = "",
        objective: str = "",
    ) -> Job:
        """Start a hyperparameter search. ``method`` is bayesian, random, grid or hyperband;
        ``objective`` val_mase (the daemon's default) or val_mse; 0 and "" keep the daemon's defaults."""
        request = jobs_pb2.StartTuningRequest(
            scope=scope,
            model_kind=model_kind,
            method=method,
            max_trials=max_trials,
            concurrency=concurrency,
            search_space_json=search_space_json,
            objective=objective,
        )
        return _convert.job_from_proto(await self._unary(self._stub.StartTuning, request))

    async def get_job(self, job_id: str) -> Job:
        return _convert.job_from_proto(
            await self._unary(self._stub.GetJob, jobs_pb2.GetJobRequest(job_id=job_id), retry=True)
        )

    async def watch_job(self, job_id: str) -> AsyncGenerator[Job, None]:
        """Yield the job each time it changes, until it reaches a terminal state."""
        if self._closed:
            raise RuntimeError("the client is closed")
        call = self._stub.WatchJob(jobs_pb2.WatchJobRequest(job_id=job_id), metadata=self._metadata)
        try:
            async for job in call:
                yield _convert.job_from_proto(job)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from exc
        finally:
            call.cancel()

    async def cancel_job(self, job_id: str) -> Job:
        request = jobs_pb2.CancelJobRequest(job_id=job_id)
        return _convert.job_from_proto(await self._unary(self._stub.CancelJob, request, retry=True))

    async def list_jobs(
        self, *, state: JobState | None = None, kind: JobKind | None = None, limit: int = 0
    ) -> list[Job]:
        """Jobs, newest first as the daemon orders them; None filters nothing, ``limit`` 0 is no limit."""
        request = jobs_pb2.ListJobsRequest(
            state=_convert.job_state_to_proto(state), kind=_convert.job_kind_to_proto(kind), limit=limit
        )
        response = await self._unary(self._stub.ListJobs, request, retry=True)
        return [_convert.job_from_proto(j) for j in response.jobs]

    # -- model registry ---------------------------------------------------------------------------

    async def list_models(self, *, scope: str = "", model_kind: str = "") -> list[ModelVersion]:
        request = jobs_pb2.ListModelsRequest(scope=scope, model_kind=model_kind)
        response = await self._unary(self._stub.ListModels, request, retry=True)
        return [_convert.model_from_proto(m) for m in response.models]

    async def promote_model(self, *, scope: str = "", model_kind: str, version: int) -> ModelVersion:
        """Make a stored version the champion of its scope."""
        request = jobs_pb2.PromoteModelRequest(scope=scope, model_kind=model_kind, version=version)
        return _convert.model_from_proto(await self._unary(self._stub.PromoteModel, request))

    async def rollback_model(self, *, scope: str = "") -> ModelVersion:
        """Restore the previous champion of ``scope``; returns the champion now."""
        request = jobs_pb2.RollbackModelRequest(scope=scope)
        return _convert.model_from_proto(await self._unary(self._stub.RollbackModel, request))

    async def status(self) -> DaemonStatus:
        """Version, uptime, exposure and event-log figures of the daemon."""
        return _convert.status_from_proto(
            await self._unary(self._stub.GetStatus, daemon_pb2.GetStatusRequest(), retry=True)
        )


def _retry_after(exc: grpc.RpcError) -> float | None:
    """The daemon's ``retry-after-ms`` hint in seconds, if it sent one."""
    trailing_metadata = getattr(exc, "trailing_metadata", None)
    for key, value in (trailing_metadata() if callable(trailing_metadata) else None) or ():
        if key == "retry-after-ms" and isinstance(value, str) and value.isdigit():
            return int(value) / 1000
    return None
