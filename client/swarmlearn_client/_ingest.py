"""The client side of the Ingest stream: batching, backpressure, acknowledgement, reconnection.

The contract with the daemon: it acks batches in the order it received them, each once the batch is
durable, echoing the sender's ``batch_id``; it deduplicates events on (agent_id, event_id); and it ends
streams with UNAVAILABLE when it goes away, when it cannot write its log, or when a stream has been
idle, after acking what it took. So a batch is kept here until its ack arrives, and after a reconnect
every unacknowledged batch is resent in order, unchanged: the daemon stores each event at most once
and acks every batch, duplicates included. A stream that ends with nothing unacknowledged is not a
failure: the next batch opens a new call.

One task (the runner) owns the connection. Per gRPC call it runs a writer task, which writes the
unacknowledged batches that this call has not written yet, and reads acks itself. ``send()`` only
appends to a list; batches are cut by size, by a timer, or by ``flush()``/``close()``.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Callable, Iterable
from types import TracebackType

import grpc

from swarmlearn_client._convert import ack_from_proto, new_event_id
from swarmlearn_client._errors import SwarmLearnError
from swarmlearn_client._types import BatchAck, IngestSummary
from swarmlearn_client.v1 import events_pb2

__all__ = [
    "BATCH_SIZE",
    "FLUSH_INTERVAL",
    "MAX_UNACKED_EVENTS",
    "RECONNECT_TIMEOUT",
    "AckCallback",
    "AsyncIngestStream",
    "IngestCall",
    "OpenCall",
]

# Defaults of the public ingest options, kept here once and referenced by both clients.
BATCH_SIZE = 1000
FLUSH_INTERVAL = 0.05
MAX_UNACKED_EVENTS = 20_000
RECONNECT_TIMEOUT = 30.0

_BACKOFF_INITIAL = 0.05
_BACKOFF_MAX = 2.0
# The daemon restarting or shedding load; everything else is a real answer and is raised.
_RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED})
# grpc.aio replaces the server's status with this one when a write races with the end of the call
# (grpc/grpc#36066, unfixed in 1.85): the real status is lost, and the usual reason is the daemon
# ending the stream, so it is retried like UNAVAILABLE. A real error shows itself on the next try.
_MASKED_WRITE_FAILURE = (grpc.StatusCode.INTERNAL, "Internal error from Core")

AckCallback = Callable[[BatchAck], None]
IngestCall = grpc.aio.StreamStreamCall[events_pb2.EventBatch, events_pb2.IngestAck]
OpenCall = Callable[[], IngestCall]


class AsyncIngestStream:
    """An open Ingest stream; get one from ``AsyncClient.ingest_stream()``.

    ``send()`` returns once the event is queued (it waits only for backpressure); ``flush()`` returns
    once everything sent so far is durable; ``close()`` does the same, ends the stream and returns the
    ``IngestSummary``. A failure that reconnecting cannot fix is raised as ``SwarmLearnError`` from the
    next ``send``/``flush``/``close``. Use from one event loop; not thread-safe (``Client`` wraps it).
    """

    def __init__(
        self,
        open_call: OpenCall,
        *,
        batch_size: int = BATCH_SIZE,
        flush_interval: float = FLUSH_INTERVAL,
        max_unacked_events: int = MAX_UNACKED_EVENTS,
        reconnect_timeout: float = RECONNECT_TIMEOUT,
        on_ack: AckCallback | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if flush_interval <= 0:
            raise ValueError(f"flush_interval must be positive, got {flush_interval}")
        if max_unacked_events < batch_size:
            # Otherwise a full window could hold less than one batch and never be acked.
            raise ValueError(f"max_unacked_events ({max_unacked_events}) must be at least batch_size ({batch_size})")
        if reconnect_timeout < 0:
            raise ValueError(f"reconnect_timeout must be non-negative, got {reconnect_timeout}")
        self._open_call = open_call
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._max_unacked = max_unacked_events
        self._reconnect_timeout = reconnect_timeout
        self._on_ack = on_ack

        self._pending: list[events_pb2.StreamEvent] = []
        self._timer: asyncio.TimerHandle | None = None
        self._unacked: deque[events_pb2.EventBatch] = deque()
        self._unacked_events = 0
        # Unacknowledged batches already written on the current call: the index of the next to write.
        self._written = 0
        self._next_batch_id = 0
        # Set on every state change (batch cut, ack, closing, failure); waiters re-check and re-arm it.
        self._changed = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._closing = False
        self._closed = False
        self._error: BaseException | None = None
        self._outage_since: float | None = None
        self._backoff = _BACKOFF_INITIAL
        self._reconnecting = False

        self._accepted = 0
        self._duplicates = 0
        self._rejected = 0
        self._batches = 0
        self._durable_sequence = 0
        self._reconnects = 0

    # -- public -----------------------------------------------------------------------------------

    @property
    def summary(self) -> IngestSummary:
        """Totals over the batches acknowledged so far (final after ``close()``)."""
        return IngestSummary(
            accepted=self._accepted,
            duplicates=self._duplicates,
            rejected=self._rejected,
            batches=self._batches,
            durable_sequence=self._durable_sequence,
            reconnects=self._reconnects,
        )

    @property
    def unacked_events(self) -> int:
        """Events queued or sent whose batch is not acknowledged yet."""
        return self._unacked_events + len(self._pending)

    async def send(self, event: events_pb2.StreamEvent) -> None:
        """Queue one event; waits while ``max_unacked_events`` are unacknowledged.

        An empty ``event_id`` is replaced by a random one on the event itself, so that a resend
        after a reconnect is recognised as the same event.
        """
        if self._unacked_events + len(self._pending) >= self._max_unacked:
            await self._wait_until(self._has_room)
        self._append(event)

    async def send_many(self, events: Iterable[events_pb2.StreamEvent]) -> None:
        """Queue events in order; the same as ``send`` for each, with less overhead."""
        max_unacked = self._max_unacked
        for event in events:
            if self._unacked_events + len(self._pending) >= max_unacked:
                await self._wait_until(self._has_room)
            self._append(event)

    async def flush(self) -> None:
        """Send the pending batch now and wait until every batch sent so far is acknowledged."""
        self._check_open()
        self._cut()
        await self._wait_until(lambda: not self._unacked)

    async def close(self) -> IngestSummary:
        """Flush, wait for every ack, end the stream and return the summary. Idempotent."""
        if not self._closed:
            self._cut()
            self._closing = True
            self._changed.set()
            runner = self._runner
            if runner is not None:
                # wait() rather than await: the runner records its failure instead of raising it.
                try:
                    await asyncio.wait({runner})
                except asyncio.CancelledError:
                    runner.cancel()
                    raise
            self._closed = True
        if self._error is not None:
            raise self._error
        return self.summary

    async def abort(self) -> None:
        """Drop the stream now; unacknowledged events may or may not have been stored."""
        self._closing = self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._error is None:
            self._error = SwarmLearnError(grpc.StatusCode.CANCELLED, "ingest stream aborted")
        runner = self._runner
        if runner is not None and not runner.done():
            runner.cancel()
            await asyncio.wait({runner})

    async def __aenter__(self) -> AsyncIngestStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            await self.close()
        elif not isinstance(exc, Exception) or self._error is not None:
            # Cancelled, interrupted, or the stream itself failed: waiting for acks would not help.
            await self.abort()
        else:
            try:
                await self.close()
            except SwarmLearnError as close_error:
                # The block's own exception is the one to see; keep this one as a note.
                exc.add_note(f"closing the ingest stream also failed: {close_error}")

    # -- batching ---------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._error is not None:
            raise self._error
        if self._closing:
            raise RuntimeError("the ingest stream is closed")

    def _has_room(self) -> bool:
        return self._unacked_events + len(self._pending) < self._max_unacked

    def _append(self, event: events_pb2.StreamEvent) -> None:
        if self._error is not None or self._closing:
            self._check_open()
        if not event.event_id:
            event.event_id = new_event_id()
        pending = self._pending
        pending.append(event)
        if len(pending) >= self._batch_size:
            self._cut()
        elif len(pending) == 1:
            self._timer = asyncio.get_running_loop().call_later(self._flush_interval, self._cut)

    def _cut(self) -> None:
        """Turn the pending events into a batch and hand it to the writer."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._pending or self._error is not None:
            return
        events, self._pending = self._pending, []
        # Built once here and kept for resends: protobuf copies the events in C, no Python loop.
        self._unacked.append(events_pb2.EventBatch(batch_id=str(self._next_batch_id), events=events))
        self._next_batch_id += 1
        self._unacked_events += len(events)
        if self._runner is None:
            self._runner = asyncio.get_running_loop().create_task(self._run(), name="swarmlearn-ingest")
        self._changed.set()

    async def _wait_until(self, predicate: Callable[[], bool]) -> None:
        while True:
            if self._error is not None:
                raise self._error
            if predicate():
                return
            self._changed.clear()
            await self._changed.wait()

    async def _wait_quietly(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            self._changed.clear()
            await self._changed.wait()

    # -- connection -------------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self._supervise()
        except asyncio.CancelledError:
            self._fail(SwarmLearnError(grpc.StatusCode.CANCELLED, "ingest stream aborted"))
            raise
        except BaseException as exc:
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
        self._changed.set()

    async def _supervise(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            # Streams open lazily, so an idle stream whose daemon went away costs nothing.
            await self._wait_quietly(lambda: bool(self._unacked) or self._closing)
            if not self._unacked:
                return
            code, details = await self._run_call()
            if code is grpc.StatusCode.OK and self._closing and not self._unacked:
                return
            if code is not grpc.StatusCode.OK and code not in _RETRYABLE and (code, details) != _MASKED_WRITE_FAILURE:
                raise SwarmLearnError(code, details)
            if code is grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in details:
                # A batch over the message limit fails the same way on every retry.
                raise SwarmLearnError(code, f"{details}; lower batch_size (events with long prompts are large)")
            # Retryable, or the daemon ended the stream while we still need it.
            if not self._unacked:
                # Nothing was lost (the daemon closed an idle stream, say): the next batch opens a new call.
                self._outage_since = None
                self._backoff = _BACKOFF_INITIAL
                continue
            self._reconnecting = True
            now = loop.time()
            if self._outage_since is None:
                self._outage_since = now
            remaining = self._outage_since + self._reconnect_timeout - now
            if remaining <= 0:
                code = grpc.StatusCode.UNAVAILABLE if code is grpc.StatusCode.OK else code
                raise SwarmLearnError(
                    code, f"gave up reconnecting the ingest stream after {self._reconnect_timeout:g} s: {details}"
                )
            # Jitter spreads a swarm's reconnects after a daemon restart.
            delay = self._backoff * (0.5 + random.random() / 2)
            self._backoff = min(self._backoff * 2, _BACKOFF_MAX)
            await asyncio.sleep(min(delay, remaining))

    async def _run_call(self) -> tuple[grpc.StatusCode, str]:
        """Run one gRPC call until it ends; return its status."""
        call = self._open_call()
        self._written = 0
        writer = asyncio.get_running_loop().create_task(self._write(call))
        try:
            try:
                # Iterating, not call.read(): read() raises as soon as the status has arrived and
                # drops acks still buffered, which would then be resent for nothing.
                async for ack in call:
                    self._acknowledge(ack)
            except grpc.aio.AioRpcError as exc:
                return exc.code(), exc.details() or ""
            return await call.code(), await call.details() or ""
        finally:
            call.cancel()  # a no-op once the call has ended; stops it when we leave early
            writer.cancel()
            (outcome,) = await asyncio.gather(writer, return_exceptions=True)
            if isinstance(outcome, Exception):
                raise outcome

    async def _write(self, call: IngestCall) -> None:
        try:
            while True:
                await self._wait_quietly(lambda: self._written < len(self._unacked) or self._closing)
                if self._written < len(self._unacked):
                    await call.write(self._unacked[self._written])
                    self._written += 1
                else:
                    await call.done_writing()
                    return
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
            return  # the call ended; the reader reports its status
        except Exception:
            call.cancel()
            raise

    def _acknowledge(self, ack: events_pb2.IngestAck) -> None:
        unacked = self._unacked
        if not unacked or unacked[0].batch_id != ack.batch_id:
            expected = unacked[0].batch_id if unacked else "none"
            raise SwarmLearnError(
                grpc.StatusCode.INTERNAL, f"ack for batch {ack.batch_id!r} out of order (expected {expected!r})"
            )
        batch = unacked.popleft()
        self._written -= 1
        self._unacked_events -= len(batch.events)
        self._accepted += ack.accepted
        self._duplicates += ack.duplicates
        refused_whole = len(ack.rejected) == 1 and ack.rejected[0].field == "events" and not ack.rejected[0].event_id
        self._rejected += len(batch.events) if refused_whole else len(ack.rejected)
        self._batches += 1
        self._durable_sequence = max(self._durable_sequence, ack.durable_sequence)
        if self._reconnecting:
            self._reconnects += 1
            self._reconnecting = False
        self._outage_since = None
        self._backoff = _BACKOFF_INITIAL
        self._changed.set()
        if self._on_ack is not None:
            self._on_ack(ack_from_proto(ack))
