"""Ingest against a real daemon: acks, idempotency, per-event rejections, the other RPCs."""

from __future__ import annotations

import asyncio
import math

import grpc
import pytest

from swarmlearn.server import DaemonServer
from swarmlearn_client.v1 import agents_pb2, events_pb2, jobs_pb2, service_pb2_grpc
from tests.daemon.pbevents import event, events, override


async def ingest(
    stub: service_pb2_grpc.SwarmLearnStub, *batches: list[events_pb2.StreamEvent]
) -> list[events_pb2.IngestAck]:
    requests = [events_pb2.EventBatch(batch_id=f"b{i}", events=b) for i, b in enumerate(batches)]
    return [ack async for ack in stub.Ingest(iter(requests))]


async def test_round_trip_acks_each_batch_in_order(server: DaemonServer, stub: service_pb2_grpc.SwarmLearnStub) -> None:
    acks = await ingest(stub, events(100, prefix="a"), events(50, prefix="b"), events(1, prefix="c"))
    assert [a.batch_id for a in acks] == ["b0", "b1", "b2"]
    assert [a.accepted for a in acks] == [100, 50, 1]
    assert [a.duplicates for a in acks] == [0, 0, 0]
    # Batches that commit together share a sequence number: the log's highest after that commit.
    sequences = [a.durable_sequence for a in acks]
    assert sequences == sorted(sequences) and sequences[0] >= 100 and sequences[-1] == 151
    assert server.store.count() == 151


async def test_duplicates_are_stored_once(server: DaemonServer, stub: service_pb2_grpc.SwarmLearnStub) -> None:
    batch = events(20)
    first, second = await ingest(stub, batch, batch)
    assert (first.accepted, first.duplicates) == (20, 0)
    assert (second.accepted, second.duplicates) == (0, 20)
    # The same event id under another agent is another event.
    (other,) = await ingest(stub, events(20, agent="agent-2"))
    assert other.accepted == 20
    # A resend with changed content is still a duplicate: first write wins.
    changed = event("agent-1", "e-0", latency=9999.0)
    (third,) = await ingest(stub, [changed, changed])
    assert (third.accepted, third.duplicates) == (0, 2)
    assert server.store.count() == 40
    stats = await stub.GetAgentStats(agents_pb2.GetAgentStatsRequest(agent_id="agent-1"))
    assert stats.event_count == 20
    assert stats.mean_metrics.latency_ms < 9999.0


BAD = [
    ("agent_id", "must not be empty", {"agent_id": ""}),
    ("agent_id", "longer than 128 characters", {"agent_id": "x" * 129}),
    ("event_id", "must not be empty", {"event_id": ""}),
    ("performance_metrics.latency_ms", "must be finite", {"latency_ms": math.nan}),
    ("performance_metrics.tokens_per_second", "must be finite", {"tokens_per_second": math.inf}),
    ("performance_metrics.cpu_usage_percent", "must be >= 0", {"cpu_usage_percent": -1.0}),
    ("performance_metrics.success_rate", "must be at most 1", {"success_rate": 1.5}),
    ("performance_metrics.latency_ms", "must be at most 1e+09", {"latency_ms": 1e308}),
    ("event_type", "is required", {"event_type": 0}),
    ("event_type", "unknown value 42", {"event_type": 42}),
]


async def test_bad_events_are_rejected_with_field_and_reason_while_neighbours_are_stored(
    server: DaemonServer, stub: service_pb2_grpc.SwarmLearnStub
) -> None:
    batch = []
    for i, (_, _, fields) in enumerate(BAD):
        batch.append(event("good", f"good-{i}"))
        batch.append(override(event("agent-1", f"bad-{i}"), **fields))
    no_timestamp = event("agent-1", "bad-ts")
    no_timestamp.ClearField("timestamp")
    no_metrics = event("agent-1", "good-no-metrics")  # nothing measured (a task that started): stored
    no_metrics.ClearField("performance_metrics")
    quality = event("agent-1", "bad-quality")
    quality.prompt_data.CopyFrom(events_pb2.PromptData(prompt_text="hi", quality_score=1.2))
    huge = event("agent-1", "bad-prompt")
    huge.prompt_data.prompt_text = "é" * (32 * 1024 + 1)  # 64 KiB + 2 bytes of UTF-8
    fine_prompt = event("agent-1", "good-prompt")
    fine_prompt.prompt_data.CopyFrom(events_pb2.PromptData(prompt_text="a" * 65536, prompt_tokens=3, quality_score=0.7))
    batch += [no_timestamp, no_metrics, quality, huge, fine_prompt]

    (ack,) = await ingest(stub, batch)

    assert ack.accepted == len(BAD) + 2
    got = {(r.event_id, r.field): r.reason for r in ack.rejected}
    for i, (field, reason, fields) in enumerate(BAD):
        assert reason in got[(str(fields.get("event_id", f"bad-{i}")), field)]
    assert "is required" in got[("bad-ts", "timestamp")]
    assert server.store.has_event("agent-1", "good-no-metrics")
    assert "[0, 1]" in got[("bad-quality", "prompt_data.quality_score")]
    assert "65536 bytes" in got[("bad-prompt", "prompt_data.prompt_text")]
    assert [r.index for r in ack.rejected] == sorted(r.index for r in ack.rejected)
    assert all(batch[r.index].event_id == r.event_id for r in ack.rejected)
    assert server.store.has_event("agent-1", "good-prompt")
    assert not server.store.has_event("agent-1", "bad-3")
    # The stream and the server go on serving.
    (after,) = await ingest(stub, events(3, prefix="after"))
    assert after.accepted == 3


async def test_a_batch_over_the_limit_is_refused_whole_with_one_rejection(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from swarmlearn.config import Settings

    daemon = DaemonServer(Settings(listen="127.0.0.1:0", metrics_listen="", data_dir=tmp_path, max_batch_events=10))
    await daemon.start()
    try:
        async with grpc.aio.insecure_channel(daemon.address) as channel:
            stub = service_pb2_grpc.SwarmLearnStub(channel)
            over, at_limit = await ingest(stub, events(15, prefix="over"), events(10, prefix="fits"))
        assert over.accepted == 0
        assert [(r.index, r.event_id, r.field) for r in over.rejected] == [(0, "", "events")]
        assert "holds 15 events, the limit is 10" in over.rejected[0].reason
        assert not daemon.store.has_event("agent-1", "over-0")
        # The stream goes on: a batch at the limit is stored.
        assert (at_limit.accepted, len(at_limit.rejected)) == (10, 0)
        assert daemon.store.count() == 10
        # The client's totals count every event of the refused batch, not its one rejection.
        from swarmlearn_client import AsyncClient

        async with AsyncClient(daemon.address) as client:
            summary = await client.ingest(events(15, prefix="again") + events(5, prefix="more"), batch_size=15)
        assert (summary.accepted, summary.rejected, summary.batches) == (5, 15, 2)
    finally:
        await daemon.stop()


async def test_new_agents_beyond_max_agents_are_rejected_while_known_ones_go_on(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A flood of new agent ids cannot grow the learners without bound: the cap counts agents of
    batches in flight too, and holds across a restart."""
    from swarmlearn.config import Settings

    settings = Settings(listen="127.0.0.1:0", metrics_listen="", data_dir=tmp_path, max_agents=3, online_workers=0)
    daemon = DaemonServer(settings)
    await daemon.start()
    try:
        async with grpc.aio.insecure_channel(daemon.address) as channel:
            stub = service_pb2_grpc.SwarmLearnStub(channel)
            flood = [event(f"agent-{i}", f"e-{i}") for i in range(5)]
            (ack,) = await ingest(stub, flood)
            assert ack.accepted == 3
            assert [(r.index, r.field) for r in ack.rejected] == [(3, "agent_id"), (4, "agent_id")]
            assert "setting max_agents" in ack.rejected[0].reason
            (known,) = await ingest(stub, [event("agent-0", "e-later"), event("agent-9", "e-new")])
            assert known.accepted == 1 and [r.event_id for r in known.rejected] == ["e-new"]
    finally:
        await daemon.stop()
    daemon = DaemonServer(settings)
    await daemon.start()
    try:
        async with grpc.aio.insecure_channel(daemon.address) as channel:
            (after,) = await ingest(service_pb2_grpc.SwarmLearnStub(channel), [event("agent-7", "e-7")])
        assert after.accepted == 0 and after.rejected[0].field == "agent_id"
        assert daemon.store.count() == 4
    finally:
        await daemon.stop()


async def test_a_huge_batch_of_empty_events_gets_a_small_ack_fast(server: DaemonServer) -> None:
    """A million empty events are 2 MB on the wire; a rejection each once made an ack ~40x that,
    over the message limit, after seconds of work on the event loop."""
    import time

    empty_event = b"\x12\x00"  # EventBatch field 2 (events), an empty StreamEvent
    batch = b"\x0a\x04huge" + empty_event * 1_000_000
    async with grpc.aio.insecure_channel(server.address) as channel:
        call = channel.stream_stream(
            "/swarmlearn.v1.SwarmLearn/Ingest", response_deserializer=events_pb2.IngestAck.FromString
        )
        started = time.monotonic()
        acks = [ack async for ack in call(iter([batch]))]
        elapsed = time.monotonic() - started
    (ack,) = acks
    assert ack.batch_id == "huge" and ack.accepted == 0
    assert [r.field for r in ack.rejected] == ["events"]
    assert "holds 1000000 events, the limit is 10000" in ack.rejected[0].reason
    assert ack.ByteSize() < 1000
    assert elapsed < 5.0
    assert server.store.count() == 0


async def test_timestamp_nanos_outside_a_second_are_rejected(
    server: DaemonServer, stub: service_pb2_grpc.SwarmLearnStub
) -> None:
    batch = events(4, prefix="ns")
    batch[1].timestamp.nanos = -1
    batch[2].timestamp.nanos = 1_000_000_000
    batch[3].timestamp.nanos = 999_999_999
    (ack,) = await ingest(stub, batch)
    assert ack.accepted == 2
    assert [(r.index, r.event_id, r.field) for r in ack.rejected] == [
        (1, "ns-1", "timestamp"),
        (2, "ns-2", "timestamp"),
    ]
    assert "nanos must be in [0, 999999999], got -1" in ack.rejected[0].reason
    assert "got 1000000000" in ack.rejected[1].reason
    assert server.store.has_event("agent-1", "ns-3") and not server.store.has_event("agent-1", "ns-2")


async def test_a_batch_of_only_bad_events_is_acked(stub: service_pb2_grpc.SwarmLearnStub) -> None:
    (ack,) = await ingest(stub, [event(agent_id="")])
    assert ack.accepted == 0 and len(ack.rejected) == 1
    (empty,) = await ingest(stub, [])
    assert (empty.accepted, len(empty.rejected)) == (0, 0)


async def test_agent_stats_and_paginated_listing(stub: service_pb2_grpc.SwarmLearnStub) -> None:
    await ingest(stub, *[events(3, agent=f"agent-{i:02d}") for i in range(7)])
    stats = await stub.GetAgentStats(agents_pb2.GetAgentStatsRequest(agent_id="agent-03"))
    assert stats.event_count == 3
    assert stats.first_event_time.seconds < stats.last_event_time.seconds
    assert stats.mean_metrics.latency_ms == pytest.approx(101.0)
    seen, token = [], ""
    while True:
        page = await stub.ListAgents(agents_pb2.ListAgentsRequest(page_size=3, page_token=token))
        assert len(page.agents) <= 3
        seen += [a.agent_id for a in page.agents]
        token = page.next_page_token
        if not token:
            break
    assert seen == [f"agent-{i:02d}" for i in range(7)]


async def test_errors_carry_status_codes(stub: service_pb2_grpc.SwarmLearnStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await stub.GetAgentStats(agents_pb2.GetAgentStatsRequest(agent_id="nobody"))
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    assert "nobody" in (unknown.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as empty:
        await stub.GetAgentStats(agents_pb2.GetAgentStatsRequest(agent_id=""))
    assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (empty.value.details() or "").startswith("agent_id:")
    with pytest.raises(grpc.aio.AioRpcError) as token:
        await stub.ListAgents(agents_pb2.ListAgentsRequest(page_token="%%%"))
    assert token.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as kindless:
        await stub.StartTuning(jobs_pb2.StartTuningRequest())
    assert kindless.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (kindless.value.details() or "").startswith("model_kind:")


async def test_concurrent_streams_share_commits_and_lose_nothing(
    server: DaemonServer, stub: service_pb2_grpc.SwarmLearnStub
) -> None:
    import asyncio

    results = await asyncio.gather(
        *[ingest(stub, *[events(100, agent=f"s{s}", prefix=f"b{b}") for b in range(5)]) for s in range(6)]
    )
    assert sum(a.accepted for acks in results for a in acks) == 3000
    assert server.store.count() == 3000


async def test_an_oversized_message_fails_its_stream_only(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from swarmlearn.config import Settings

    daemon = DaemonServer(
        Settings(listen="127.0.0.1:0", metrics_listen="", data_dir=tmp_path, max_message_bytes=1024 * 1024)
    )
    await daemon.start()
    try:
        async with grpc.aio.insecure_channel(daemon.address) as channel:
            stub = service_pb2_grpc.SwarmLearnStub(channel)
            big = events(20, prefix="big")
            for pb in big:
                pb.prompt_data.prompt_text = "x" * 60_000
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                await ingest(stub, big)
            assert failed.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            (ack,) = await ingest(stub, events(5, prefix="small"))
            assert ack.accepted == 5
        assert daemon.store.count() == 5
    finally:
        await daemon.stop()


async def test_a_client_vanishing_mid_commit_does_not_stall_other_streams(
    server: DaemonServer, stub: service_pb2_grpc.SwarmLearnStub
) -> None:
    import asyncio

    for attempt in range(5):
        call = stub.Ingest()
        for i in range(10):
            await call.write(events_pb2.EventBatch(batch_id=str(i), events=events(1000, prefix=f"v{attempt}-{i}")))
        call.cancel()  # the client goes away while its batches are being committed
        await asyncio.sleep(0.01 * attempt)
    # Every later stream is still acknowledged (a cancelled wait once killed the ack thread).
    acks = await asyncio.wait_for(ingest(stub, events(100, prefix="after")), timeout=20)
    assert acks[0].accepted == 100


async def test_a_batch_over_the_message_limit_fails_fast_in_the_client(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import time

    from swarmlearn.config import Settings
    from swarmlearn_client import AsyncClient, SwarmLearnError

    daemon = DaemonServer(Settings(listen="127.0.0.1:0", metrics_listen="", data_dir=tmp_path, max_message_bytes=2**20))
    await daemon.start()
    try:
        big = events(40, prefix="big")
        for pb in big:
            pb.prompt_data.prompt_text = "x" * 60_000
        async with AsyncClient(daemon.address) as client:
            started = time.monotonic()
            with pytest.raises(SwarmLearnError) as failed:
                await client.ingest(big, batch_size=40)
            assert failed.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "lower batch_size" in failed.value.details
            assert time.monotonic() - started < 10  # not the 30 s reconnect_timeout
            assert (await client.ingest(big, batch_size=5)).accepted == 40
    finally:
        await daemon.stop()


async def test_a_large_batch_is_decoded_in_slices_that_let_the_event_loop_turn(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Decoding and validating 10,000 events held the event loop some 60 ms at once; in slices of
    500 other RPCs are served in between, and the result is the whole batch's."""
    from swarmlearn.events import validate_event
    from swarmlearn.ingest import Ingestor
    from swarmlearn.server._convert import decode_batch
    from swarmlearn.server._servicer import decode_in_slices
    from swarmlearn.store import EventStore

    batch = events_pb2.EventBatch(events=events(10_000))
    batch.events[7].timestamp.nanos = -1  # a decode rejection
    batch.events[9_999].performance_metrics.latency_ms = math.inf  # a validation rejection
    store = EventStore(tmp_path / "events.sqlite3")
    try:
        turns = 0
        decoding = True

        async def other_work() -> None:
            nonlocal turns
            while decoding:
                turns += 1
                await asyncio.sleep(0)

        other = asyncio.create_task(other_work())
        await asyncio.sleep(0)
        good, rejected = await decode_in_slices(batch, 10_000, Ingestor(store))
        decoding = False
        await other
        assert turns >= 10_000 // 500 - 1
        pairs, expected = decode_batch(batch.events, 10_000)
        assert [(r.index, r.field) for r in rejected] == [(7, "timestamp"), (9_999, "performance_metrics.latency_ms")]
        assert len(expected) == 1 and good == [e for _, e in pairs if validate_event(e) is None]
    finally:
        store.close()
