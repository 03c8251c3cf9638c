"""The client's Ingest stream against an in-memory grpc.aio server: batching, backpressure, reconnects.

The fake acks in order like the daemon, deduplicates on (agent_id, event_id), and can be told to fail
a stream, delay acks, or be stopped and restarted on the same port.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest

from swarmlearn_client import AsyncClient, BatchAck, Client, SwarmLearnError, make_event
from swarmlearn_client.v1 import events_pb2, service_pb2_grpc


class FakeIngest(service_pb2_grpc.SwarmLearnServicer):
    def __init__(self) -> None:
        self.stored: set[tuple[str, str]] = set()
        self.batches: list[events_pb2.EventBatch] = []  # as received, resends included
        self.batch_streams: list[int] = []  # the stream (1, 2, ...) each of those arrived on
        self.streams = 0
        self.acked = 0
        self.sequence = 0
        self.ack_delay = 0.0
        # Once `acked` reaches fail_after, the next batch ends the stream with fail_code (once).
        self.fail_after: int | None = None
        self.fail_code = grpc.StatusCode.UNAVAILABLE
        self.end_ok_after: int | None = None  # same, but the handler just returns (status OK)
        self.max_in_flight = 0  # events received and not yet acked, per stream, at worst

    async def Ingest(
        self, request_iterator: AsyncIterator[events_pb2.EventBatch], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[events_pb2.IngestAck]:
        self.streams += 1
        stream = self.streams
        queue: asyncio.Queue[events_pb2.EventBatch | None] = asyncio.Queue()
        in_flight = 0

        async def read() -> None:
            # Reads ahead of the acks, so the client's window, not ours, bounds what is in flight.
            nonlocal in_flight
            async for batch in request_iterator:
                in_flight += len(batch.events)
                self.max_in_flight = max(self.max_in_flight, in_flight)
                self.batches.append(batch)
                self.batch_streams.append(stream)
                await queue.put(batch)
            await queue.put(None)

        reader = asyncio.create_task(read())
        try:
            while (batch := await queue.get()) is not None:
                if self.fail_after is not None and self.acked >= self.fail_after:
                    self.fail_after = None
                    await context.abort(self.fail_code, "injected failure")
                if self.end_ok_after is not None and self.acked >= self.end_ok_after:
                    self.end_ok_after = None
                    return
                if self.ack_delay:
                    await asyncio.sleep(self.ack_delay)
                in_flight -= len(batch.events)
                yield self._commit(batch)
        finally:
            reader.cancel()

    def _commit(self, batch: events_pb2.EventBatch) -> events_pb2.IngestAck:
        ack = events_pb2.IngestAck(batch_id=batch.batch_id)
        for index, event in enumerate(batch.events):
            key = (event.agent_id, event.event_id)
            if event.performance_metrics.latency_ms < 0:
                ack.rejected.add(
                    index=index, event_id=event.event_id, field="performance_metrics.latency_ms", reason="negative"
                )
            elif key in self.stored:
                ack.duplicates += 1
            else:
                self.stored.add(key)
                self.sequence += 1
                ack.accepted += 1
        ack.durable_sequence = self.sequence
        self.acked += 1
        return ack


class FakeServer:
    """A grpc.aio server around one FakeIngest that can be stopped and started again on its port."""

    def __init__(self, fake: FakeIngest) -> None:
        self.fake = fake
        self.port = 0
        self._server: grpc.aio.Server | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        server = grpc.aio.server()
        service_pb2_grpc.add_SwarmLearnServicer_to_server(self.fake, server)
        self.port = server.add_insecure_port(f"127.0.0.1:{self.port}")
        await server.start()
        self._server = server

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(grace=None)
            self._server = None


def events(n: int, agent: str = "agent-1") -> list[events_pb2.StreamEvent]:
    return [
        make_event(agent_id=agent, latency_ms=float(i), tokens_per_second=10.0, timestamp=1.7e9 + i) for i in range(n)
    ]


@pytest.fixture
async def server() -> AsyncIterator[FakeServer]:
    srv = FakeServer(FakeIngest())
    await srv.start()
    yield srv
    await srv.stop()


@pytest.fixture
async def client(server: FakeServer) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(server.target, timeout=5.0) as c:
        yield c


async def test_batches_by_count(server: FakeServer, client: AsyncClient) -> None:
    acks: list[BatchAck] = []
    async with client.ingest_stream(batch_size=100, flush_interval=5.0, on_ack=acks.append) as stream:
        for event in events(1000):
            await stream.send(event)
    assert [len(b.events) for b in server.fake.batches] == [100] * 10
    assert [a.batch_id for a in acks] == [b.batch_id for b in server.fake.batches]
    assert len({a.batch_id for a in acks}) == 10
    s = stream.summary
    assert (s.accepted, s.duplicates, s.rejected, s.batches, s.reconnects) == (1000, 0, 0, 10, 0)
    assert s.durable_sequence == 1000
    assert server.fake.streams == 1


async def test_flushes_by_interval_without_close(server: FakeServer, client: AsyncClient) -> None:
    acked = asyncio.Event()
    stream = client.ingest_stream(batch_size=1000, flush_interval=0.05, on_ack=lambda _: acked.set())
    start = time.monotonic()
    await stream.send(events(1)[0])
    # Without the interval flush the event would wait for 1000 more; bounds are loose for busy CI.
    await asyncio.wait_for(acked.wait(), timeout=5.0)
    assert time.monotonic() - start < 2.0
    assert stream.summary.accepted == 1
    await stream.close()


async def test_assigns_missing_event_ids(server: FakeServer, client: AsyncClient) -> None:
    bare = [events_pb2.StreamEvent(agent_id="a", event_type=events_pb2.EVENT_TYPE_TASK_STARTED) for _ in range(3)]
    summary = await client.ingest(bare)
    assert summary.accepted == 3
    assert all(len(e.event_id) == 32 for e in bare)
    assert {e.event_id for e in server.fake.batches[0].events} == {e.event_id for e in bare}


async def test_backpressure_bounds_unacked_events(server: FakeServer, client: AsyncClient) -> None:
    server.fake.ack_delay = 0.01
    stream = client.ingest_stream(batch_size=100, flush_interval=5.0, max_unacked_events=300)
    worst = 0
    for event in events(2000):
        await stream.send(event)
        worst = max(worst, stream.unacked_events)
    summary = await stream.close()
    assert summary.accepted == 2000
    assert worst <= 300
    assert 200 <= server.fake.max_in_flight <= 300


@pytest.mark.parametrize("code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED])
async def test_reconnects_and_resends_after_a_retryable_failure(
    server: FakeServer, client: AsyncClient, code: grpc.StatusCode
) -> None:
    server.fake.fail_after = 3
    server.fake.fail_code = code
    sent = events(1000)
    summary = await client.ingest(sent, batch_size=100, flush_interval=5.0)
    assert server.fake.stored == {(e.agent_id, e.event_id) for e in sent}
    assert (summary.accepted, summary.duplicates, summary.batches, summary.reconnects) == (1000, 0, 10, 1)
    assert server.fake.streams == 2
    # The resent batches are the originals: same ids, same events, same order.
    # (The first stream may have read batches past the failure point before it ended.)
    resent = [b for b, stream in zip(server.fake.batches, server.fake.batch_streams, strict=True) if stream == 2]
    assert [b.batch_id for b in resent] == [str(i) for i in range(3, 10)]
    assert [e.event_id for b in resent for e in b.events] == [e.event_id for e in sent[300:]]


async def test_reconnects_when_the_server_ends_the_stream_early(server: FakeServer, client: AsyncClient) -> None:
    server.fake.end_ok_after = 2
    summary = await client.ingest(events(500), batch_size=100, flush_interval=5.0)
    assert (summary.accepted, summary.batches, summary.reconnects) == (500, 5, 1)


async def test_survives_a_server_restart_on_the_same_port(server: FakeServer, client: AsyncClient) -> None:
    stream = client.ingest_stream(batch_size=100, flush_interval=0.02, reconnect_timeout=5.0)
    for event in events(300):
        await stream.send(event)
    await stream.flush()
    await server.stop()
    later = events(300, agent="agent-2")
    for event in later[:150]:
        await stream.send(event)
    await asyncio.sleep(0.3)  # the stream fails and keeps retrying while the port is closed
    await server.start()
    for event in later[150:]:
        await stream.send(event)
    summary = await stream.close()
    assert summary.accepted + summary.duplicates == 600
    assert len(server.fake.stored) == 600
    assert summary.reconnects >= 1


async def test_gives_up_after_reconnect_timeout(server: FakeServer, client: AsyncClient) -> None:
    await server.stop()
    stream = client.ingest_stream(batch_size=10, reconnect_timeout=0.3)
    start = time.monotonic()
    with pytest.raises(SwarmLearnError) as info:
        for event in events(10):
            await stream.send(event)
        await stream.close()
    assert info.value.code == grpc.StatusCode.UNAVAILABLE
    assert time.monotonic() - start < 5.0  # 0.3 s of retries, not the default 30 s


async def test_non_retryable_status_is_raised(server: FakeServer, client: AsyncClient) -> None:
    server.fake.fail_after = 0
    server.fake.fail_code = grpc.StatusCode.INVALID_ARGUMENT
    stream = client.ingest_stream(batch_size=10)
    for event in events(10):
        await stream.send(event)
    with pytest.raises(SwarmLearnError) as info:
        await stream.flush()
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details == "injected failure"
    with pytest.raises(SwarmLearnError):
        await stream.send(events(1)[0])
    with pytest.raises(SwarmLearnError):
        await stream.close()
    assert server.fake.streams == 1


async def test_rejections_and_duplicates_are_reported(server: FakeServer, client: AsyncClient) -> None:
    batch = events(4)
    batch[2].performance_metrics.latency_ms = -1.0
    acks: list[BatchAck] = []
    first = await client.ingest(batch, on_ack=acks.append)
    again = await client.ingest(batch)
    assert (first.accepted, first.rejected) == (3, 1)
    assert (again.accepted, again.duplicates, again.rejected) == (0, 3, 1)
    (rejection,) = acks[0].rejected
    assert (rejection.index, rejection.event_id, rejection.field) == (
        2,
        batch[2].event_id,
        "performance_metrics.latency_ms",
    )


async def test_ingest_accepts_async_iterables(server: FakeServer, client: AsyncClient) -> None:
    async def produce() -> AsyncIterator[events_pb2.StreamEvent]:
        for event in events(250):
            yield event

    summary = await client.ingest(produce(), batch_size=100)
    assert (summary.accepted, summary.batches) == (250, 3)


async def test_closed_stream_refuses_events(server: FakeServer, client: AsyncClient) -> None:
    stream = client.ingest_stream()
    assert (await stream.close()).batches == 0
    with pytest.raises(RuntimeError):
        await stream.send(events(1)[0])


def test_options_are_validated() -> None:
    async def check() -> None:
        async with AsyncClient("127.0.0.1:1") as c:
            with pytest.raises(ValueError):
                c.ingest_stream(batch_size=100, max_unacked_events=50)
            with pytest.raises(ValueError):
                c.ingest_stream(flush_interval=0)

    asyncio.run(check())


# -- the blocking client, with the fake server on a loop of its own -----------------------------


@pytest.fixture
def threaded_server() -> Iterator[FakeServer]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    srv = FakeServer(FakeIngest())
    asyncio.run_coroutine_threadsafe(srv.start(), loop).result(5)
    yield srv
    asyncio.run_coroutine_threadsafe(srv.stop(), loop).result(5)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


def test_sync_client_ingests_and_reconnects(threaded_server: FakeServer) -> None:
    threaded_server.fake.fail_after = 3
    sent = events(1000)
    with Client(threaded_server.target, timeout=5.0) as client:
        summary = client.ingest(sent, batch_size=100, flush_interval=5.0)
    assert (summary.accepted, summary.batches, summary.reconnects) == (1000, 10, 1)
    assert threaded_server.fake.stored == {(e.agent_id, e.event_id) for e in sent}
    assert [len(b.events) for b in threaded_server.fake.batches] == [100] * 11


def test_sync_stream_flushes_by_interval_and_closes(threaded_server: FakeServer) -> None:
    acked = threading.Event()
    with Client(threaded_server.target) as client:
        with client.ingest_stream(batch_size=1000, flush_interval=0.05, on_ack=lambda _: acked.set()) as stream:
            stream.send(events(1)[0])
            assert acked.wait(2.0)
            assert stream.summary.accepted == 1
            for event in events(150, agent="agent-2"):
                stream.send(event)
            stream.flush()
            assert stream.summary.accepted == 151
        assert stream.summary.batches == 2


def test_sync_stream_raises_non_retryable_errors(threaded_server: FakeServer) -> None:
    threaded_server.fake.fail_after = 0
    threaded_server.fake.fail_code = grpc.StatusCode.PERMISSION_DENIED
    with Client(threaded_server.target) as client, pytest.raises(SwarmLearnError) as info:
        client.ingest(events(10))
    assert info.value.code == grpc.StatusCode.PERMISSION_DENIED
