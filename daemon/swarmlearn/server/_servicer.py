"""The SwarmLearn service: protobuf in, a domain call, protobuf out.

RPCs not overridden here answer UNIMPLEMENTED (the generated base class does that) until the
issue that brings their service lands.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from swarmlearn.config import Settings
from swarmlearn.errors import InvalidArgument, UnknownAgent
from swarmlearn.ingest import Ingestor, PendingIngest
from swarmlearn.server._convert import agent_stats, daemon_status, decode_batch, ingest_ack
from swarmlearn.server._errors import abort_for, mapped
from swarmlearn.server._metrics import Metrics
from swarmlearn.server._status import StatusReport
from swarmlearn.store import EventStore
from swarmlearn_client.v1 import agents_pb2, daemon_pb2, events_pb2, service_pb2_grpc

_RETRY_AFTER_MS = 1000
_MAX_PAGE = 1000
_DEFAULT_PAGE = 100

Context = grpc.aio.ServicerContext[Any, Any]


class SwarmLearnServicer(service_pb2_grpc.SwarmLearnServicer):  # type: ignore[misc]
    def __init__(
        self,
        settings: Settings,
        store: EventStore,
        ingestor: Ingestor,
        closing: asyncio.Event,
        metrics: Metrics,
        status: Callable[[int], StatusReport],
    ) -> None:
        self._settings = settings
        self._store = store
        self._ingestor = ingestor
        self._closing = closing
        self._metrics = metrics
        self._status = status
        self._streams = 0

    async def Ingest(
        self, request_iterator: AsyncIterator[events_pb2.EventBatch], context: Context
    ) -> AsyncIterator[events_pb2.IngestAck]:
        limit = self._settings.max_concurrent_streams
        if self._streams >= limit:
            context.set_trailing_metadata((("retry-after-ms", str(_RETRY_AFTER_MS)),))
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"{self._streams} ingest streams open, the limit is {limit}; retry in {_RETRY_AFTER_MS} ms",
            )
        self._streams += 1
        self._metrics.streams.inc()
        try:
            async for ack in self._ingest(request_iterator, context):
                yield ack
        finally:
            self._streams -= 1
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

        async def read() -> None:
            nonlocal pending_events
            try:
                async for batch in request_iterator:
                    size = len(batch.events)
                    while pending_events and pending_events + size > limit:
                        room.clear()
                        await room.wait()
                    pending_events += size
                    received = time.perf_counter()
                    decoded, rejected = decode_batch(batch.events, max_events)
                    inflight.put_nowait((batch.batch_id, size, received, self._ingestor.submit(decoded, rejected)))
            finally:
                inflight.put_nowait(None)

        reader = asyncio.create_task(read())
        # On shutdown stop reading; what was read is still committed and acknowledged below.
        watcher = asyncio.create_task(self._closing.wait())
        watcher.add_done_callback(lambda _: reader.cancel())
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
                room.set()
        finally:
            watcher.cancel()
            reader.cancel()
        if not reader.cancelled() and (failure := reader.exception()) is not None:
            await abort_for(failure, context, "Ingest")
        if self._closing.is_set():
            await context.abort(
                grpc.StatusCode.UNAVAILABLE, "daemon shutting down; reconnect and resend unacknowledged batches"
            )

    @mapped
    async def GetAgentStats(self, request: agents_pb2.GetAgentStatsRequest, context: Context) -> agents_pb2.AgentStats:
        if not request.agent_id:
            raise InvalidArgument("agent_id", "must not be empty")
        summary = await asyncio.to_thread(self._store.agent_summary, request.agent_id)
        if summary is None:
            raise UnknownAgent(request.agent_id)
        return agent_stats(summary)

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
        return agents_pb2.ListAgentsResponse(agents=[agent_stats(s) for s in page], next_page_token=token)

    @mapped
    async def GetStatus(self, request: daemon_pb2.GetStatusRequest, context: Context) -> daemon_pb2.DaemonStatus:
        return daemon_status(await asyncio.to_thread(self._status, self._streams))


def _encode_token(agent_id: str) -> str:
    return base64.urlsafe_b64encode(agent_id.encode()).decode()


def _decode_token(token: str) -> str:
    if not token:
        return ""
    try:
        return base64.b64decode(token.encode(), altchars=b"-_", validate=True).decode()
    except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
        raise InvalidArgument("page_token", "not a token this daemon issued") from None
