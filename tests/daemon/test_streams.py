"""Ingest streams as a resource: idle streams are closed, one connection cannot take every slot, and
the client's one stream per process carries every agent and outlives idle closes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from swarmlearn.config import Settings
from swarmlearn.server import DaemonServer
from swarmlearn_client import AsyncClient
from swarmlearn_client.v1 import daemon_pb2, events_pb2, service_pb2_grpc
from tests.daemon.pbevents import events


@contextlib.asynccontextmanager
async def daemon(tmp_path: Path, **changes: object) -> AsyncIterator[DaemonServer]:
    settings = Settings(listen="127.0.0.1:0", metrics_listen="", data_dir=tmp_path / "data", **changes)  # type: ignore[arg-type]
    server = DaemonServer(settings)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def connection(server: DaemonServer) -> grpc.aio.Channel:
    """A channel with a TCP connection of its own: channels of one process otherwise share one."""
    return grpc.aio.insecure_channel(server.address, options=[("grpc.use_local_subchannel_pool", 1)])


async def open_stream(stub: service_pb2_grpc.SwarmLearnStub, name: str) -> grpc.aio.StreamStreamCall:  # type: ignore[type-arg]
    """An Ingest stream the daemon has admitted: its first batch is acknowledged."""
    call = stub.Ingest()
    await call.write(events_pb2.EventBatch(batch_id="0", events=events(2, prefix=name)))
    assert (await call.read()).accepted == 2
    return call


async def refusal(call: grpc.aio.StreamStreamCall) -> grpc.aio.AioRpcError:  # type: ignore[type-arg]
    # The daemon may refuse the stream before this write completes: then the read reports it.
    with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
        await call.write(events_pb2.EventBatch(batch_id="0", events=events(1, prefix="late")))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call.read()
    return refused.value


async def open_streams(server: DaemonServer) -> int:
    async with grpc.aio.insecure_channel(server.address) as channel:
        status = await service_pb2_grpc.SwarmLearnStub(channel).GetStatus(daemon_pb2.GetStatusRequest())
    return int(status.ingest_streams)


async def test_an_idle_stream_is_closed_with_unavailable_naming_the_setting(tmp_path: Path) -> None:
    # 1 s of idleness against a batch every 0.2 s (plus its ack): room for a loaded machine's ack
    # (at 0.5 s one ack slower than 0.3 s closed the busy stream too).
    async with daemon(tmp_path, ingest_idle_timeout_s=1.0) as server, connection(server) as channel:
        stub = service_pb2_grpc.SwarmLearnStub(channel)
        busy, idle = stub.Ingest(), await open_stream(stub, "idle")
        # A stream that keeps sending is not idle, however long it lives.
        for i in range(8):
            await busy.write(events_pb2.EventBatch(batch_id=str(i), events=events(5, prefix=f"busy{i}")))
            assert (await busy.read()).accepted == 5
            await asyncio.sleep(0.2)
        await asyncio.sleep(0.5)  # the busy stream has lived past the timeout by now
        ended = await refusal(idle)
        assert ended.code() == grpc.StatusCode.UNAVAILABLE
        assert "ingest_idle_timeout_s" in (ended.details() or "")
        assert await open_streams(server) == 1  # the idle stream's slot is free again
        await busy.done_writing()
        assert await busy.read() == grpc.aio.EOF
        assert await busy.code() == grpc.StatusCode.OK
        assert server.store.count() == 2 + 8 * 5


async def test_idle_streams_are_kept_when_the_timeout_is_off(tmp_path: Path) -> None:
    async with daemon(tmp_path, ingest_idle_timeout_s=0) as server, connection(server) as channel:
        call = await open_stream(service_pb2_grpc.SwarmLearnStub(channel), "kept")
        await asyncio.sleep(1.0)
        await call.write(events_pb2.EventBatch(batch_id="1", events=events(3, prefix="again")))
        assert (await call.read()).accepted == 3


async def test_one_connection_cannot_take_every_stream(tmp_path: Path) -> None:
    # The case reported: one connection held every slot with idle streams, and all other ingest waited.
    async with (
        daemon(tmp_path, max_concurrent_streams=8, max_streams_per_connection=3) as server,
        connection(server) as greedy,
        connection(server) as other,
    ):
        stub = service_pb2_grpc.SwarmLearnStub(greedy)
        held = [await open_stream(stub, f"held{i}") for i in range(3)]
        refused = await refusal(stub.Ingest())
        assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        details = refused.details() or ""
        assert "max_streams_per_connection" in details and "limit is 3" in details
        assert ("retry-after-ms", "1000") in tuple(refused.trailing_metadata() or ())
        # Another connection still gets streams.
        second = await open_stream(service_pb2_grpc.SwarmLearnStub(other), "other")
        # A slot freed on the greedy connection is its to use again.
        await held[0].done_writing()
        assert await held[0].read() == grpc.aio.EOF
        await open_stream(stub, "again")
        for call in (*held[1:], second):
            call.cancel()


async def test_one_client_stream_carries_every_agent_across_idle_closes(tmp_path: Path) -> None:
    agents = [f"agent-{i}" for i in range(50)]
    async with daemon(tmp_path, ingest_idle_timeout_s=0.3) as server, AsyncClient(server.address) as client:
        stream = client.ingest_stream(batch_size=100, flush_interval=0.01)
        for round_ in range(3):
            await stream.send_many(e for agent in agents for e in events(4, agent=agent, prefix=f"r{round_}"))
            await stream.flush()
            await asyncio.sleep(0.8)  # the daemon closes the idle stream; the next send reopens it
        summary = await stream.close()
        # An idle close lost nothing, so it is no reconnect after a failure.
        assert (summary.accepted, summary.duplicates, summary.rejected, summary.reconnects) == (600, 0, 0, 0)
        assert server.store.count() == 600
        assert all(server.store.agent_summary(agent).event_count == 12 for agent in agents)  # type: ignore[union-attr]
