"""Retention of the event log: sweeps by age and by count, in slices between commits, keeping what
the online learners need; replay and restarts over a log whose first sequences are gone."""

from __future__ import annotations

import asyncio
import resource
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from swarmlearn.events import Event, EventType
from swarmlearn.importer import event_to_proto
from swarmlearn.server import DaemonServer
from swarmlearn.store import SLICE_EVENTS, EventStore, Retention, WriteFailed
from swarmlearn.store._retention import sweep
from swarmlearn.store._writer import connect, migrate
from swarmlearn.synthetic import generate_swarm
from swarmlearn.training import ReplayLimits, read_replay
from swarmlearn_client.v1 import agents_pb2, service_pb2_grpc
from tests.daemon.rpc import caught_up, ingest
from tests.daemon.test_durability import writer_of
from tests.daemon.test_online_daemon import reference, settings, wait_for

Stub = service_pb2_grpc.SwarmLearnStub


def outcome(i: int, agents: int = 3, text: str | None = None) -> Event:
    return Event(f"agent-{i % agents}", f"e-{i}", 1_767_225_600.0 + i, EventType.TASK_COMPLETED,
                 100.0 + i % 17, 40.0, 512.0, 30.0, 1.0, text)  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EventStore]:
    store = EventStore(tmp_path / "events.sqlite3", synchronous="OFF")
    yield store
    store.close()


def kept(store: EventStore) -> list[int]:
    with sqlite3.connect(store.path) as conn:
        return [row[0] for row in conn.execute("SELECT seq FROM events ORDER BY seq")]


def rule(*, max_age_s: float = 0.0, max_events: int = 0, keep_from: int | None = None, now: float = 0.0) -> Retention:
    return Retention(max_age_s=max_age_s, max_events=max_events, keep_from=keep_from, now=now or time.time())


def test_events_stored_longer_ago_than_the_age_limit_go_and_newer_ones_stay(store: EventStore) -> None:
    store.submit([outcome(i) for i in range(300)]).result(30)
    # The first sweep dates what is there (a mark at 1000 s); what comes after it is younger.
    assert store.sweep(rule(max_age_s=50, now=1_000.0)).result(30).deleted == 0
    store.submit([outcome(i) for i in range(300, 500)]).result(30)
    assert store.sweep(rule(max_age_s=50, now=1_040.0)).result(30).deleted == 0  # 40 s old: not yet
    assert kept(store) == list(range(1, 501))
    result = store.sweep(rule(max_age_s=50, now=1_060.0)).result(30)  # the first 300 are 60 s old
    assert (result.deleted, result.first_sequence) == (300, 301)
    assert kept(store) == list(range(301, 501))
    # The agents' summaries count every event ever stored, deleted or not.
    assert sum(summary.event_count for summary in store.list_agents()) == 500


def test_the_count_limit_holds_after_a_sweep_and_the_newest_event_always_stays(store: EventStore) -> None:
    store.submit([outcome(i) for i in range(2_500)]).result(30)
    result = store.sweep(rule(max_events=1_000)).result(30)
    assert (result.deleted, result.first_sequence) == (1_500, 1_501)
    assert kept(store) == list(range(1_501, 2_501))
    # Everything is past the age limit: all but the newest event go, so that sequence numbers
    # are never reused (an empty table would number the next event 1).
    store.sweep(rule(max_age_s=1, now=time.time() + 10)).result(30)
    store.sweep(rule(max_age_s=1, now=time.time() + 20)).result(30)
    assert kept(store) == [2_500]
    assert store.submit([outcome(10_000)]).result(30).durable_sequence == 2_501
    # Idempotency covers the log that is kept: an event sent again after it was deleted is new.
    again = store.submit([outcome(0), outcome(10_000)]).result(30)
    assert (again.accepted, again.duplicates) == (1, 1)


def test_a_sweep_keeps_every_event_from_keep_from_on(store: EventStore) -> None:
    store.submit([outcome(i) for i in range(1_000)]).result(30)
    result = store.sweep(rule(max_events=10, keep_from=400)).result(30)
    assert (result.deleted, result.first_sequence) == (399, 400)
    assert store.sweep(rule(max_events=10, keep_from=0)).result(30).deleted == 0  # 0: a learner needs all


def filled(path: Path, count: int, text: str | None = None) -> int:
    """A log at ``path`` of ``count`` events; returns its last sequence."""
    store = EventStore(path, synchronous="OFF")
    try:
        return store.submit([outcome(i, text=text) for i in range(count)]).result(60).durable_sequence
    finally:
        store.close()


def test_a_sweep_deletes_in_slices_each_committed_on_its_own(tmp_path: Path) -> None:
    path = tmp_path / "events.sqlite3"
    filled(path, 25_000)
    conn = connect(path, "OFF")
    migrate(conn, path)
    reader = sqlite3.connect(path)
    counts = []
    steps = sweep(conn, rule(max_events=1))
    with pytest.raises(StopIteration) as done:
        while True:
            next(steps)
            assert not conn.in_transaction  # each slice is committed before the writer may take a batch
            counts.append(reader.execute("SELECT count(*) FROM events").fetchone()[0])
    assert SLICE_EVENTS == 10_000 and counts == [15_000, 5_000, 1]
    assert (done.value.value.deleted, done.value.value.slices) == (24_999, 3)
    reader.close()
    conn.close()


def test_batches_commit_between_the_slices_of_a_long_sweep(tmp_path: Path) -> None:
    path = tmp_path / "events.sqlite3"
    filled(path, 300_000)
    store = EventStore(path, synchronous="OFF")
    try:
        finished: list[str] = []
        swept = store.sweep(rule(max_events=1))
        time.sleep(0.02)  # the sweep is under way (30 slices of about 10 ms)
        batch = store.submit([outcome(10**6)])
        swept.add_done_callback(lambda _: finished.append("sweep"))
        batch.add_done_callback(lambda _: finished.append("batch"))
        assert swept.result(60).slices == 30
        assert finished == ["batch", "sweep"]  # not held up by the 30 slices
        assert batch.result().durable_sequence == 300_001
    finally:
        store.close()


def test_a_sweep_that_fails_leaves_the_writer_committing_and_the_next_sweep_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "events.sqlite3"
    filled(path, 30_000)
    store = EventStore(path, synchronous="OFF")
    try:
        # A real write failure, as on a full disk: the writer may not grow a file past 4 KiB.
        writer = writer_of(path)
        limits = resource.prlimit(writer, resource.RLIMIT_FSIZE)
        resource.prlimit(writer, resource.RLIMIT_FSIZE, (4096, limits[1]))
        try:
            with pytest.raises(WriteFailed, match="retention sweep failed"):
                store.sweep(rule(max_events=100)).result(30)
        finally:
            resource.prlimit(writer, resource.RLIMIT_FSIZE, limits)
        assert store.submit([outcome(10**6)]).result(30).durable_sequence == 30_001
        assert store.sweep(rule(max_events=100)).result(30).first_sequence == 29_902
        assert store.write_failure is None  # a sweep's failure is not the commits' (health stays SERVING)
    finally:
        store.close()


def test_pages_that_stay_free_for_an_interval_go_back_to_the_file_system(tmp_path: Path) -> None:
    path = tmp_path / "events.sqlite3"
    filled(path, 20_000, text="a prompt of some length " * 20)
    store = EventStore(path, synchronous="OFF")
    try:
        size = path.stat().st_size
        first = store.sweep(rule(max_events=10)).result(30)
        assert first.released_pages == 0  # what it freed is kept for the next interval's events
        second = store.sweep(rule(max_events=10)).result(30)
        assert second.released_pages > 0.8 * size / 4096
        store.submit([outcome(1)]).result(30)  # the file shrinks at the next checkpoint
    finally:
        store.close()
    assert path.stat().st_size < 0.2 * size


def test_the_replay_buffer_reads_a_log_whose_first_sequences_are_gone(tmp_path: Path) -> None:
    path = tmp_path / "events.sqlite3"
    events = list(generate_swarm(agents=2, events_per_agent=1_500, seed=4))
    store = EventStore(path, synchronous="OFF")
    try:
        upto = store.submit(events).result(30).durable_sequence
        assert store.sweep(rule(max_events=2_000)).result(30).first_sequence == 1_001
    finally:
        store.close()
    kept_ids = [e.event_id for e in events[1_000:]]
    whole = read_replay(path, "", upto, ReplayLimits(recent=0))
    assert [e.event_id for e in whole.events] == kept_ids
    sampled = read_replay(path, "", upto, ReplayLimits(recent=500, older=1_000, run=100))
    assert sampled.total == 2_000 and [e.event_id for e in sampled.events[-500:]] == kept_ids[-500:]
    assert 900 <= len(sampled.events) - 500 <= 1_100 and set(e.event_id for e in sampled.events) <= set(kept_ids)
    agent = events[-1].agent_id
    mine = read_replay(path, agent, upto, ReplayLimits(recent=300, older=100_000))
    assert [e.event_id for e in mine.events] == [e.event_id for e in events[1_000:] if e.agent_id == agent]


async def predictions(stub: Stub, agents: list[str]) -> list[agents_pb2.PredictResponse]:
    return [await stub.Predict(agents_pb2.PredictRequest(agent_id=a, horizon=3, coverage=0.8)) for a in agents]


async def test_learners_restart_after_a_sweep_from_their_snapshots_or_from_what_is_kept(tmp_path: Path) -> None:
    data = tmp_path / "data"
    swarm = [event_to_proto(e) for e in generate_swarm(agents=3, events_per_agent=400, seed=8)]
    agents = sorted({pb.agent_id for pb in swarm})
    limits = {"retention_max_events": 300, "retention_interval_s": 0.1, "online_snapshot_interval_s": 0.05}
    first = DaemonServer(settings(data, **limits))
    await first.start()
    try:
        async with grpc.aio.insecure_channel(first.address) as channel:
            stub = Stub(channel)
            await ingest(stub, swarm)
            await caught_up(first)
            # Once the learners have snapshotted at 1200, the sweep may delete up to the count limit.
            await wait_for(lambda: first.store.count() == 300, "the sweep did not reach the count limit")
            before = await predictions(stub, agents)
    finally:
        await first.stop()
    second = DaemonServer(settings(data, **limits))
    await second.start()
    try:
        async with grpc.aio.insecure_channel(second.address) as channel:
            # The snapshots' anchor (sequence 1200) was kept: the state is the one that learned all 1200.
            assert await predictions(Stub(channel), agents) == before
    finally:
        await second.stop()
    for learner_file in [*data.glob("*.snapshot"), *data.glob("*.agents.sqlite3*")]:  # snapshots and stores
        learner_file.unlink()
    third = DaemonServer(settings(data, **limits))
    await third.start()
    try:
        await caught_up(third)
        expected = reference(data / "events.sqlite3")  # rebuilt from the 300 events kept
        async with grpc.aio.insecure_channel(third.address) as channel:
            for response in await predictions(Stub(channel), agents):
                state = expected[response.agent_id]
                assert response.as_of_sequence == state.applied_seq == 1_200
                want = state.predict(response.agent_id, 3, 0.8)
                assert [(f.target, f.points[0].value) for f in response.forecasts] == [
                    (f.target, want[f.target].points[0][0]) for f in response.forecasts
                ]
    finally:
        await third.stop()


@pytest.mark.parametrize("online_workers", [2, 0])
async def test_a_sweep_keeps_what_a_learner_has_not_snapshotted_yet(tmp_path: Path, online_workers: int) -> None:
    server = DaemonServer(
        settings(
            tmp_path / "data",
            online_workers=online_workers,
            online_snapshot_interval_s=3_600,  # no snapshot before the daemon stops
            retention_max_events=100,
            retention_interval_s=0.05,
        )
    )
    await server.start()
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            await ingest(Stub(channel), [event_to_proto(outcome(i)) for i in range(500)])
        swept = server.metrics.registry.get_sample_value
        await wait_for(lambda: (swept("swarmlearn_event_log_first_sequence") or 0) >= 1, "no sweep after the ingest")
        await asyncio.sleep(0.3)  # several more sweeps
        # A learner that rebuilt from the log has no snapshot yet: a restart would need every event.
        assert server.store.count() == (500 if online_workers else 100)
        assert swept("swarmlearn_retention_deleted_events_total") == (0 if online_workers else 400)
    finally:
        await server.stop()
