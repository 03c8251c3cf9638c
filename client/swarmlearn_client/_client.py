"""The blocking client: the asyncio client run on a private event loop in a daemon thread.

Batching, acknowledgement and reconnection exist once, in ``_ingest``; this module only carries
calls across the thread boundary. The sync ``IngestStream`` buffers events on the caller's thread
and hands them over a batch at a time, because one cross-thread hop per event (tens of
microseconds) would cap throughput far below what the daemon takes.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections.abc import AsyncIterator, Coroutine, Generator, Iterable, Sequence
from types import TracebackType
from typing import Any, TypeVar

import grpc

from swarmlearn_client._async_client import DEFAULT_TIMEOUT, AsyncClient, ChannelOptions
from swarmlearn_client._ingest import (
    BATCH_SIZE,
    FLUSH_INTERVAL,
    MAX_UNACKED_EVENTS,
    RECONNECT_TIMEOUT,
    AckCallback,
    AsyncIngestStream,
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
from swarmlearn_client.v1 import events_pb2

__all__ = ["Client", "IngestStream"]

T = TypeVar("T")


class _LoopThread:
    """An event loop running forever in a daemon thread, for one Client."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name="swarmlearn-client", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            self.loop.close()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        if threading.current_thread() is self._thread:
            coro.close()
            # Blocking here would wait on ourselves forever, e.g. a Client call made from on_ack.
            raise RuntimeError("blocking swarmlearn Client methods cannot be called from its callbacks")
        if self.loop.is_closed() or not self._thread.is_alive():
            coro.close()
            raise RuntimeError("the client is closed")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()  # e.g. KeyboardInterrupt while waiting: do not leave the call running
            raise

    def stop_soon(self) -> None:
        """Stop without waiting: safe from any thread, including the loop's own."""
        if not self.loop.is_closed():
            with contextlib.suppress(RuntimeError):  # closed meanwhile
                self.loop.call_soon_threadsafe(self.loop.stop)

    def stop(self) -> None:
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join()


class IngestStream:
    """The blocking form of ``AsyncIngestStream``; get one from ``Client.ingest_stream()``.

    ``send`` appends to a list and blocks only to hand over a full batch (and for backpressure).
    ``on_ack`` runs on the client's background thread. Thread-safe, though events from several
    threads interleave in no particular order.
    """

    def __init__(self, thread: _LoopThread, stream: AsyncIngestStream, *, batch_size: int, flush_interval: float):
        self._thread = thread
        self._stream = stream
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._lock = threading.Lock()
        self._buffer: list[events_pb2.StreamEvent] = []
        # Which buffer a flush timer was armed for; a timer for a buffer already handed over is stale.
        self._generation = 0
        self._closed = False
        self._handover: asyncio.Lock | None = None

    @property
    def summary(self) -> IngestSummary:
        """Totals over the batches acknowledged so far (final after ``close()``)."""
        return self._stream.summary

    def send(self, event: events_pb2.StreamEvent) -> None:
        """Queue one event; see ``AsyncIngestStream.send``."""
        error = self._stream._error
        if error is not None:
            raise error
        with self._lock:
            if self._closed:
                raise RuntimeError("the ingest stream is closed")
            self._buffer.append(event)
            size = len(self._buffer)
            generation = self._generation
        if size >= self._batch_size:
            self._thread.run(self._hand_over(None))
        elif size == 1:
            self._thread.loop.call_soon_threadsafe(self._arm_timer, generation)

    def send_many(self, events: Iterable[events_pb2.StreamEvent]) -> None:
        for event in events:
            self.send(event)

    def flush(self) -> None:
        """Send everything queued and wait until it is acknowledged."""
        self._thread.run(self._flush())

    def close(self) -> IngestSummary:
        """Flush, wait for every ack, end the stream and return the summary."""
        with self._lock:
            self._closed = True
        return self._thread.run(self._close())

    def abort(self) -> None:
        """Drop the stream now; unacknowledged events may or may not have been stored."""
        with self._lock:
            self._closed = True
            self._buffer = []
        self._thread.run(self._stream.abort())

    def __enter__(self) -> IngestStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.close()
        elif not isinstance(exc, Exception) or self._stream._error is not None:
            self.abort()
        else:
            try:
                self.close()
            except Exception as close_error:
                exc.add_note(f"closing the ingest stream also failed: {close_error}")

    # -- on the loop thread -----------------------------------------------------------------------

    def _arm_timer(self, generation: int) -> None:
        self._thread.loop.call_later(self._flush_interval, self._on_timer, generation)

    def _on_timer(self, generation: int) -> None:
        with self._lock:
            if self._closed or generation != self._generation:
                return  # closed or already handed over: nothing to cut, no task to leave unawaited
        task = self._thread.loop.create_task(self._hand_over(generation))
        # A failure is recorded by the stream and raised from the next send/flush/close.
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def _hand_over(self, generation: int | None) -> None:
        """Move the buffer into the async stream; ``generation`` set means a timer: cut a batch now."""
        if self._handover is None:
            self._handover = asyncio.Lock()
        # One hand-over at a time, buffer taken under the lock: keeps events in send order.
        async with self._handover:
            with self._lock:
                if generation is not None and generation != self._generation:
                    return
                events, self._buffer = self._buffer, []
                self._generation += 1
            if events:
                await self._stream.send_many(events)
            if generation is not None:
                # The async stream's own timer would add a second flush_interval of delay.
                self._stream._cut()

    async def _flush(self) -> None:
        await self._hand_over(None)
        await self._stream.flush()

    async def _close(self) -> IngestSummary:
        try:
            await self._hand_over(None)
        except BaseException:
            await self._stream.abort()
            raise
        return await self._stream.close()


class Client:
    """Talks to a swarmlearn daemon from blocking code; the methods of ``AsyncClient``, synchronously.

    Arguments as for ``AsyncClient``. Each client owns a daemon thread running an event loop; use as
    ``with Client(...) as client`` or call ``close()``.
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
        self._thread = _LoopThread()

        async def make() -> AsyncClient:
            # grpc.aio channels belong to the loop they are created on.
            return AsyncClient(target, credentials=credentials, token=token, timeout=timeout, options=options)

        try:
            self._async = self._thread.run(make())
        except BaseException:
            self._thread.stop()
            raise
        self.target = target
        self.timeout = timeout
        # A client dropped without close() would otherwise leave its thread and loop running.
        weakref.finalize(self, self._thread.stop_soon)

    def close(self) -> None:
        """Close the channel and stop the background thread."""
        if self._thread.loop.is_closed():
            return
        try:
            self._thread.run(self._async.close())
        finally:
            self._thread.stop()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def health(self, *, service: str = "") -> str:
        return self._thread.run(self._async.health(service=service))

    def ingest_stream(
        self,
        *,
        batch_size: int = BATCH_SIZE,
        flush_interval: float = FLUSH_INTERVAL,
        max_unacked_events: int = MAX_UNACKED_EVENTS,
        reconnect_timeout: float = RECONNECT_TIMEOUT,
        on_ack: AckCallback | None = None,
    ) -> IngestStream:
        """See ``AsyncClient.ingest_stream``; ``on_ack`` runs on the client's background thread."""

        async def make() -> AsyncIngestStream:
            return self._async.ingest_stream(
                batch_size=batch_size,
                flush_interval=flush_interval,
                max_unacked_events=max_unacked_events,
                reconnect_timeout=reconnect_timeout,
                on_ack=on_ack,
            )

        stream = self._thread.run(make())
        return IngestStream(self._thread, stream, batch_size=batch_size, flush_interval=flush_interval)

    def ingest(
        self,
        events: Iterable[events_pb2.StreamEvent],
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
            stream.send_many(events)
        except BaseException:
            stream.abort()
            raise
        return stream.close()

    def predict(
        self, agent_id: str, *, horizon: int = 1, targets: Sequence[str] = (), coverage: float = 0.0
    ) -> Forecast:
        return self._thread.run(self._async.predict(agent_id, horizon=horizon, targets=targets, coverage=coverage))

    def score_prompts(
        self,
        agent_id: str,
        candidates: Iterable[str | PromptCandidate],
        *,
        weights: ObjectiveWeights | None = None,
        select: bool = False,
    ) -> PromptRanking:
        # Materialised here: a lazy iterable would otherwise be consumed on the loop thread.
        return self._thread.run(self._async.score_prompts(agent_id, list(candidates), weights=weights, select=select))

    def get_agent_stats(self, agent_id: str) -> AgentStats:
        return self._thread.run(self._async.get_agent_stats(agent_id))

    def list_agents(self, *, page_size: int = 0, page_token: str = "") -> AgentPage:
        return self._thread.run(self._async.list_agents(page_size=page_size, page_token=page_token))

    def start_training(
        self,
        *,
        model_kind: str,
        scope: str = "",
        max_epochs: int = 0,
        horizon: int = 0,
        config_json: str = "",
    ) -> Job:
        return self._thread.run(
            self._async.start_training(
                model_kind=model_kind, scope=scope, max_epochs=max_epochs, horizon=horizon, config_json=config_json
            )
        )

    def start_tuning(
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
        return self._thread.run(
            self._async.start_tuning(
                model_kind=model_kind,
                method=method,
                scope=scope,
                max_trials=max_trials,
                concurrency=concurrency,
                search_space_json=search_space_json,
                objective=objective,
            )
        )

    def get_job(self, job_id: str) -> Job:
        return self._thread.run(self._async.get_job(job_id))

    def watch_job(self, job_id: str) -> Generator[Job, None, None]:
        """Yield the job each time it changes, until it reaches a terminal state.

        ``close()`` the generator (or break out of a ``for`` loop over it) to end the watch early.
        """
        watch = self._async.watch_job(job_id)
        finished = False
        try:
            while True:
                try:
                    job = self._thread.run(_anext(watch))
                except StopAsyncIteration:
                    finished = True
                    return
                yield job
        finally:
            if not finished:
                # Cancels the server stream; fails only once the client is closed, when it is gone anyway.
                with contextlib.suppress(RuntimeError):
                    self._thread.run(watch.aclose())

    def cancel_job(self, job_id: str) -> Job:
        return self._thread.run(self._async.cancel_job(job_id))

    def list_jobs(self, *, state: JobState | None = None, kind: JobKind | None = None, limit: int = 0) -> list[Job]:
        return self._thread.run(self._async.list_jobs(state=state, kind=kind, limit=limit))

    def list_models(self, *, scope: str = "", model_kind: str = "") -> list[ModelVersion]:
        return self._thread.run(self._async.list_models(scope=scope, model_kind=model_kind))

    def promote_model(self, *, scope: str = "", model_kind: str, version: int) -> ModelVersion:
        return self._thread.run(self._async.promote_model(scope=scope, model_kind=model_kind, version=version))

    def rollback_model(self, *, scope: str = "") -> ModelVersion:
        return self._thread.run(self._async.rollback_model(scope=scope))

    def status(self) -> DaemonStatus:
        return self._thread.run(self._async.status())


async def _anext(iterator: AsyncIterator[T]) -> T:
    return await anext(iterator)
