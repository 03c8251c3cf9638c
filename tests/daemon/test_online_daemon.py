"""The online learner inside a real daemon: Predict, agent stats, drift, restarts and snapshots."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import math
import os
import pickle
import signal
import struct
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from river import stats

from swarmlearn import layout
from swarmlearn.config import Settings
from swarmlearn.importer import event_to_proto
from swarmlearn.online import EXPERTS, Drift, OnlineState
from swarmlearn.online._snapshot import MAGIC, Anchor, SnapshotRejected, StateUnpickler, load, save
from swarmlearn.prompts import Candidate, PromptLearner, Weights
from swarmlearn.server import DaemonServer
from swarmlearn.store import agent_shard, open_reader, read_events
from swarmlearn.synthetic import generate_swarm
from swarmlearn_client import AsyncClient, make_event
from swarmlearn_client.v1 import agents_pb2, daemon_pb2, events_pb2, prompts_pb2, service_pb2_grpc
from tests.daemon.pbevents import BASE_TS, event, events
from tests.daemon.rpc import caught_up, ingest

Stub = service_pb2_grpc.SwarmLearnStub


def reference(db: Path, shards: int = 2) -> dict[str, OnlineState]:
    """Per agent, the state that a learner of its partition (of ``shards``) which never restarted
    has after the whole log: a partition's agents share the swarm's prior, so it is built per partition."""
    conn = open_reader(db)
    out = {}
    for shard in range(shards):
        state = OnlineState()
        for seq, e in read_events(conn, after_seq=0, limit=10**9, shard=(shard, shards)):
            state.learn(e, seq)
        state.advance(int(conn.execute("SELECT max(seq) FROM events").fetchone()[0]))
        out.update(dict.fromkeys(state.agents, state))
    conn.close()
    return out


def prompts_reference(db: Path) -> PromptLearner:
    learner = PromptLearner()
    conn = open_reader(db)
    for seq, e in read_events(conn, after_seq=0, limit=10**9):
        learner.learn(e, seq)
    conn.close()
    return learner


PROMPTS = ("please verify step-by-step with examples", "whatever asap")


async def assert_scores_like(stub: Stub, learner: PromptLearner, agent_id: str) -> None:
    request = prompts_pb2.ScorePromptsRequest(
        agent_id=agent_id, candidates=[prompts_pb2.PromptCandidate(text=t) for t in PROMPTS]
    )
    got = await stub.ScorePrompts(request)
    want = learner.score(agent_id, tuple(Candidate(t) for t in PROMPTS), Weights(), False)
    assert [(r.index, r.score, r.predicted_latency_ms) for r in got.ranked] == [
        (r.index, r.score, r.predicted_latency_ms) for r in want.ranked
    ]


def assert_answers_like(
    response: agents_pb2.PredictResponse, state: OnlineState, horizon: int, coverage: float
) -> None:
    expected = state.predict(response.agent_id, horizon, coverage)
    assert response.as_of_sequence == state.applied_seq
    for forecast in response.forecasts:
        want = expected[forecast.target]
        assert forecast.model_kind == want.kind
        assert forecast.running_mae == want.mae
        assert [(p.value, p.lower, p.upper) for p in forecast.points] == [tuple(p) for p in want.points]


def settings(data_dir: Path, **overrides: Any) -> Settings:
    return Settings(listen="127.0.0.1:0", metrics_listen="", data_dir=data_dir, grace_period_s=2.0, **overrides)


@pytest_asyncio.fixture
async def swarm_daemon(tmp_path: Path) -> AsyncIterator[tuple[DaemonServer, Stub]]:
    """A daemon that has learned a small synthetic swarm (4 agents x 300 events)."""
    server = DaemonServer(settings(tmp_path / "data"))
    await server.start()
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = Stub(channel)
        await ingest(stub, [event_to_proto(e) for e in generate_swarm(agents=4, events_per_agent=300, seed=3)])
        await caught_up(server)
        yield server, stub
    await server.stop()


async def test_predict_answers_from_the_first_acknowledged_event(stub: Stub) -> None:
    await ingest(stub, [event("fresh", "e-0", latency=321.0)])
    response = await stub.Predict(agents_pb2.PredictRequest(agent_id="fresh", horizon=3))
    assert response.as_of_sequence >= 1
    # The log's sequence when asked: the answer says how far behind it the state was (here: not).
    assert response.durable_sequence == response.as_of_sequence
    latency = {f.target: f for f in response.forecasts}["latency_ms"]
    assert latency.model_kind == "online:aggregate"
    assert not latency.HasField("running_mae")  # nothing scored yet
    assert [p.step for p in latency.points] == [1, 2, 3]
    assert [p.value for p in latency.points] == pytest.approx([321.0] * 3)
    assert all(0 < p.lower < p.value < p.upper < math.inf for p in latency.points)  # from the first event


async def test_an_agent_is_known_from_its_commit_even_if_its_stream_was_cancelled(server: DaemonServer) -> None:
    """The known-agent set follows commits: a stream cancelled while its batch commits has stored it,
    and Predict must answer for that agent, not NOT_FOUND until some other batch is acknowledged."""
    batch = events_pb2.EventBatch(
        batch_id="b", events=[event("cancelled", f"e-{i}", latency=100.0 + i % 7) for i in range(10_000)]
    )
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = Stub(channel)
        call = stub.Ingest()
        await call.write(batch)
        deadline = time.monotonic() + 30
        while not server.store._pending:  # handed to the writer, not yet committed
            assert time.monotonic() < deadline
            await asyncio.sleep(0.001)
        call.cancel()
        while server.store.durable_sequence < 10_000:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        response = await stub.Predict(agents_pb2.PredictRequest(agent_id="cancelled"))
        assert response.as_of_sequence >= 1  # the learner answers once it has met the agent
        assert 100.0 <= {f.target: f for f in response.forecasts}["latency_ms"].points[0].value <= 107.0


async def test_what_was_not_set_stays_unset_end_to_end(server: DaemonServer) -> None:
    """An event built by the client without latency, and prompt data without a quality: absent on the
    wire, NULL in the log, not learned (no latency forecast, no mean), while what was set is."""
    async with AsyncClient(server.address) as client:
        async with client.ingest_stream() as stream:
            await stream.send(
                make_event(agent_id="sparse", event_id="s-0", event_type=events_pb2.EVENT_TYPE_TASK_STARTED)
            )
            for i in range(30):
                await stream.send(
                    make_event(
                        agent_id="sparse", event_id=f"s-{i + 1}", event_type=events_pb2.EVENT_TYPE_RESPONSE_RECEIVED,
                        timestamp=BASE_TS + i, tokens_per_second=40.0 + i % 3, prompt_text="verify step by step",
                        prompt_tokens=5,
                    )
                )  # fmt: skip
        assert stream.summary.accepted == 31
        stored = [e for _, e in server.store.iter_events() if e.agent_id == "sparse"]
        assert all(e.latency_ms is None and e.success_rate is None and e.quality_score is None for e in stored)
        assert all(e.response_tokens is None for e in stored) and stored[1].prompt_tokens == 5
        await caught_up(server)
        forecast = await client.predict("sparse")
        assert forecast["latency_ms"].points == () and forecast["latency_ms"].model_kind == "online:none"
        assert forecast["success_rate"].points == ()
        assert 39.0 <= forecast["tokens_per_second"].points[0].value <= 43.0
        stats = await client.get_agent_stats("sparse")
        assert stats.mean_metrics.latency_ms is None and stats.mean_metrics.success_rate is None
        assert stats.mean_metrics.tokens_per_second == pytest.approx(41.0, abs=0.1)
        assert "latency_ms.mean" not in stats.features and "error_rate" not in stats.features
        assert {b.target for b in stats.baselines} == {"tokens_per_second"}
        ranking = await client.score_prompts("sparse", ["verify step by step"])
        assert ranking.ranked[0].index == 0


async def test_predict_refuses_bad_requests_naming_the_field(stub: Stub) -> None:
    await ingest(stub, [event("a", "e-0")])
    cases = [
        (agents_pb2.PredictRequest(agent_id=""), "agent_id:"),
        (agents_pb2.PredictRequest(agent_id="a", targets=["latency_ms", "vibes"]), "targets[1]:"),
        (agents_pb2.PredictRequest(agent_id="a", coverage=1.5), "coverage:"),
        (agents_pb2.PredictRequest(agent_id="a", horizon=49), "horizon:"),
    ]
    for request, field in cases:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.Predict(request)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (refused.value.details() or "").startswith(field), refused.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await stub.Predict(agents_pb2.PredictRequest(agent_id="nobody"))
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    assert "'nobody'" in (unknown.value.details() or "")
    # A subset of targets, in the order asked.
    subset = await stub.Predict(agents_pb2.PredictRequest(agent_id="a", targets=["success_rate", "latency_ms"]))
    assert [f.target for f in subset.forecasts] == ["success_rate", "latency_ms"]


async def test_agent_stats_carry_features_baselines_and_drift(server: DaemonServer, stub: Stub) -> None:
    latencies = [100.0, 130.0, 160.0]
    pbs = [event("a", f"e-{i}", latency=value) for i, value in enumerate(latencies)]
    for i, pb in enumerate(pbs):
        pb.timestamp.seconds = BASE_TS + 22 * 3600 + 30 * i  # 22:00 UTC, 30 s apart
    pbs[2].performance_metrics.success_rate = 0.25  # an error
    await ingest(stub, pbs)
    stats = await stub.GetAgentStats(agents_pb2.GetAgentStatsRequest(agent_id="a"))
    assert stats.online_sequence == 3
    f = stats.features
    assert f["latency_ms.mean"] == pytest.approx(115.0)  # the failed outcome's latency is not learned
    assert f["latency_ms.std"] == pytest.approx(math.sqrt(450.0))  # sample standard deviation
    assert f["error_rate"] == pytest.approx(1 / 3)
    assert f["inter_arrival_s.mean"] == pytest.approx(30.0)
    assert f["last.latency_ms"] == 160.0
    assert f["last.hour_sin"] == pytest.approx(math.sin(2 * math.pi * 22 / 24))
    assert f["last.hour_cos"] == pytest.approx(math.cos(2 * math.pi * 22 / 24))
    assert {"latency_ms.p50", "latency_ms.p99", "tokens_per_second.p95", "latency_ms.ewma"} <= set(f)
    assert len(stats.baselines) == 18  # six experts for each of three targets
    for target in ("latency_ms", "tokens_per_second", "success_rate"):
        mine = [b for b in stats.baselines if b.target == target]
        assert {b.model_kind for b in mine} == {f"online:{e}" for e in EXPERTS}
        assert sum(b.best for b in mine) == 1
        assert sum(b.weight for b in mine) == pytest.approx(1.0)
        assert 0.0 <= stats.interval_coverage[target] <= 1.0
    assert [d.target for d in stats.drift] == ["latency_ms", "tokens_per_second", "success_rate"]
    page = await stub.ListAgents(agents_pb2.ListAgentsRequest())
    assert page.agents[0].features["latency_ms.mean"] == pytest.approx(115.0)
    assert page.agents[0].mean_metrics.latency_ms == pytest.approx(130.0)  # the store's: every value stored


async def test_drift_is_counted_exposed_and_offered_to_listeners(server: DaemonServer, stub: Stub) -> None:
    heard: list[Drift] = []
    server.drift_listeners.append(heard.append)
    pbs = []
    for i in range(500):
        level = 100.0 if i < 400 else 220.0  # a regime shift at event 400
        pb = event("shifty", f"e-{i}", latency=level + (i * 7919 % 13) - 6)
        pb.timestamp.seconds = BASE_TS + 60 * i
        pbs.append(pb)
    await ingest(stub, pbs)
    await caught_up(server)
    latency = [d for d in heard if d.target == "latency_ms"]
    assert latency, "no drift reported for the latency shift"
    assert all(not d.replayed for d in latency)
    assert 400 < latency[0].seq <= 400 + 25  # found within 25 events of the shift
    stats = await stub.GetAgentStats(agents_pb2.GetAgentStatsRequest(agent_id="shifty"))
    drift = {d.target: d for d in stats.drift}["latency_ms"]
    assert drift.drift_count == len(latency)
    assert drift.last_drift_time.seconds == BASE_TS + 60 * (latency[-1].seq - 1)
    metric = server.metrics.registry.get_sample_value("swarmlearn_online_drifts_total", {"target": "latency_ms"})
    assert metric == len(latency)


# Every reason a snapshot is refused is checked in test_snapshot_loads_only_what_checks_out; here one
# stands for all of them: what matters is that the daemon then rebuilds from the log.
# "resharded": the second daemon splits the agents among three learner processes instead of two,
# so no snapshot fits and the stale ones are removed.
@pytest.mark.parametrize("damage", ["none", "corrupted", "resharded"])
async def test_state_after_a_restart_equals_state_without_one(tmp_path: Path, damage: str) -> None:
    data = tmp_path / "data"
    swarm = [event_to_proto(e) for e in generate_swarm(agents=3, events_per_agent=400, seed=8)]
    first = DaemonServer(settings(data))
    await first.start()
    async with grpc.aio.insecure_channel(first.address) as channel:
        await ingest(Stub(channel), swarm[:700])
    await caught_up(first)
    await first.stop()  # graceful: the learner snapshots what it applied
    snapshots = sorted(data.glob("online-*-of-2.agents.sqlite3"))
    assert len(snapshots) == 2  # one store per learner process (online_workers = 2)
    assert not list(data.glob("online-*-wal"))  # closed on stop: all in the store's file
    if damage == "corrupted":
        raw = bytearray(snapshots[0].read_bytes())
        raw[:16] = b"not SQLite at al"
        snapshots[0].write_bytes(bytes(raw))
    second = DaemonServer(settings(data, online_workers=3 if damage == "resharded" else 2))
    await second.start()
    if damage == "resharded":
        assert sorted(p.name for p in data.glob("online-*-of-2*")) == []
    async with grpc.aio.insecure_channel(second.address) as channel:
        stub = Stub(channel)
        await ingest(stub, swarm[700:])
        await caught_up(second)
        expected = reference(data / "events.sqlite3", shards=3 if damage == "resharded" else 2)
        prompts = prompts_reference(data / "events.sqlite3")
        assert len(expected) == 3
        for agent_id, state in expected.items():
            for horizon, coverage in ((1, 0.8), (12, 0.95)):
                request = agents_pb2.PredictRequest(agent_id=agent_id, horizon=horizon, coverage=coverage)
                assert_answers_like(await stub.Predict(request), state, horizon, coverage)
            await assert_scores_like(stub, prompts, agent_id)
    await second.stop()


async def test_the_prompt_learner_holds_two_agents_in_memory_and_drops_an_old_snapshot(tmp_path: Path) -> None:
    """``prompt_resident_agents`` = 2 of 4 agents: ScorePrompts answers as a learner that kept every agent,
    before and after a restart from its store; the whole-state ``prompts.snapshot`` of a release before
    the store is removed at start (never read: the learner rebuilds from the log)."""
    data = tmp_path / "data"
    data.mkdir()
    legacy = data / layout.LEGACY_PROMPTS_SNAPSHOT
    save(legacy, {"prompts": PromptLearner()}, anchor=Anchor(0, "", ""), fingerprint="a release before")
    swarm = [event_to_proto(e) for e in generate_swarm(agents=4, events_per_agent=200, seed=12)]
    for part in (swarm[:500], swarm[500:]):
        server = DaemonServer(settings(data, prompt_resident_agents=2))
        await server.start()
        assert not legacy.exists()
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = Stub(channel)
            await ingest(stub, part)
            await caught_up(server)
            reference_learner = prompts_reference(data / layout.EVENTS)
            for agent_id in sorted(reference_learner.agents):  # type: ignore[attr-defined]
                await assert_scores_like(stub, reference_learner, agent_id)
        await server.stop()
        assert (data / layout.PROMPTS_STORE).exists()


async def test_a_dead_learner_is_restarted_from_its_snapshot_and_the_log(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = DaemonServer(settings(data, online_snapshot_interval_s=0.05))
    await server.start()
    swarm = [event_to_proto(e) for e in generate_swarm(agents=3, events_per_agent=400, seed=9)]
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = Stub(channel)
            await ingest(stub, swarm[:600])
            await caught_up(server)
            await ingest(stub, swarm[600:])  # more than the snapshot holds, for the replay to redo
            process = server.online.shard_of("planner")._process
            assert process is not None
            os.kill(process.pid, signal.SIGKILL)
            deadline = time.monotonic() + 30
            while True:
                try:
                    response = await stub.Predict(agents_pb2.PredictRequest(agent_id="planner", horizon=12))
                except grpc.aio.AioRpcError as exc:
                    assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc
                    assert time.monotonic() < deadline, "the learner was not restarted"
                    await asyncio.sleep(0.1)
                    continue
                break
            await caught_up(server)
            assert server.online.restarts == 1
            status = await stub.GetStatus(daemon_pb2.GetStatusRequest())
            assert status.online_restarts == 1 and status.online_running
            expected = reference(data / "events.sqlite3")["planner"]
            response = await stub.Predict(agents_pb2.PredictRequest(agent_id="planner", horizon=12, coverage=0.8))
            assert_answers_like(response, expected, 12, 0.8)
    finally:
        await server.stop()


def test_snapshot_loads_only_what_checks_out(tmp_path: Path) -> None:
    path = tmp_path / "online.snapshot"
    state = OnlineState()
    for seq, e in enumerate(generate_swarm(agents=2, events_per_agent=50), start=1):
        state.learn(e, seq)
    anchor = Anchor(100, "reviewer", "reviewer-49")
    save(path, {"online": state}, anchor=anchor, fingerprint="f1")
    assert oct(path.stat().st_mode & 0o777) == "0o600"

    def anchor_at(seq: int) -> Anchor | None:
        return anchor if seq == 100 else None

    loaded, got = load(path, fingerprint="f1", anchor_at=anchor_at)
    assert got == anchor and isinstance(loaded, dict)
    assert loaded["online"].predict("planner", 3, 0.9) == state.predict("planner", 3, 0.9)
    with pytest.raises(SnapshotRejected, match="another release or configuration"):
        load(path, fingerprint="f2", anchor_at=anchor_at)
    with pytest.raises(SnapshotRejected, match="does not match the event log"):
        load(path, fingerprint="f1", anchor_at=lambda seq: Anchor(100, "reviewer", "other"))
    raw = path.read_bytes()
    path.write_bytes(raw[:-10])
    with pytest.raises(SnapshotRejected, match="damaged"):
        load(path, fingerprint="f1", anchor_at=anchor_at)
    path.write_bytes(b"hello")
    with pytest.raises(SnapshotRejected, match="not a snapshot"):
        load(path, fingerprint="f1", anchor_at=anchor_at)
    with pytest.raises(SnapshotRejected, match="no snapshot"):
        load(tmp_path / "missing", fingerprint="f1", anchor_at=anchor_at)


class _Exploit:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("echo pwned > /dev/null",))


class _Dunder:
    """The first step from a learner object towards a function's globals."""

    def __reduce__(self) -> tuple[object, tuple[object, str]]:
        return (getattr, (stats.Mean(), "__init__"))


def test_a_tampered_snapshot_cannot_run_code(tmp_path: Path) -> None:
    """Even with a matching header (someone who can write the data directory), only learner classes load."""
    path = tmp_path / "online.snapshot"
    save(path, {"online": _Exploit()}, anchor=Anchor(0, "", ""), fingerprint="f")
    assert b"system" in path.read_bytes()
    with pytest.raises(SnapshotRejected, match="not part of a learner state"):
        load(path, fingerprint="f", anchor_at=lambda seq: None)
    save(path, {"online": _Dunder()}, anchor=Anchor(0, "", ""), fingerprint="f")
    with pytest.raises(SnapshotRejected, match="not part of a learner state"):
        load(path, fingerprint="f", anchor_at=lambda seq: None)


async def test_agents_page_shows_online_state_of_every_agent(swarm_daemon: tuple[DaemonServer, Stub]) -> None:
    server, stub = swarm_daemon
    page = await stub.ListAgents(agents_pb2.ListAgentsRequest(page_size=10))
    assert len(page.agents) == 4
    for agent in page.agents:
        assert agent.online_sequence == server.store.durable_sequence
        # The learner's mean is over successful outcomes, the store's over every stored value.
        assert (
            0.7 * agent.mean_metrics.latency_ms
            < agent.features["latency_ms.mean"]
            <= agent.mean_metrics.latency_ms * (1 + 1e-9)
        )
        assert any(b.best and b.HasField("running_mae") for b in agent.baselines)


async def test_online_learning_can_be_turned_off(tmp_path: Path) -> None:
    server = DaemonServer(settings(tmp_path / "data", online_workers=0))
    await server.start()
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = Stub(channel)
            await ingest(stub, [event("a", "e-0")])
            with pytest.raises(grpc.aio.AioRpcError) as off:
                await stub.Predict(agents_pb2.PredictRequest(agent_id="a"))
            assert off.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "online_workers" in (off.value.details() or "")
            stats = await stub.GetAgentStats(agents_pb2.GetAgentStatsRequest(agent_id="a"))
            assert stats.event_count == 1 and not stats.features and stats.online_sequence == 0
    finally:
        await server.stop()


def test_agents_are_partitioned_stably() -> None:
    """The partition of an agent must not change between processes or releases (snapshots depend on it)."""
    agents = ("planner", "coder", "reviewer", "retriever")
    assert [agent_shard(a, 2) for a in agents] == [1, 1, 0, 1]  # pinned: CRC-32, not hash()
    assert [agent_shard(a, 7) for a in agents] == [2, 3, 3, 0]
    assert agent_shard("planner", 1) == 0


# -- faults: real learner processes, with the failures injected from outside --------------------


async def wait_for(condition: Any, what: str) -> None:
    deadline = time.monotonic() + 30.0
    while not condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.02)


async def test_a_drift_reported_before_a_learner_died_is_not_reported_again(tmp_path: Path) -> None:
    server = DaemonServer(settings(tmp_path / "data", online_workers=1))
    heard: list[Drift] = []

    def kill_on_first(drift: Drift) -> None:
        heard.append(drift)
        if len(heard) == 1:  # before the worker's next (throttled) progress report, if any
            process = server.online.shards[0]._process
            assert process is not None
            os.kill(process.pid, signal.SIGKILL)

    server.drift_listeners.append(kill_on_first)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            pbs = []
            for i in range(500):
                pb = event("shifty", f"e-{i}", latency=(100.0 if i < 400 else 220.0) + (i * 7919 % 13) - 6)
                pb.timestamp.seconds = BASE_TS + 60 * i
                pbs.append(pb)
            await ingest(Stub(channel), pbs)
            await wait_for(lambda: server.online.restarts == 1, "the learner was not restarted")
            await caught_up(server)
    finally:
        await server.stop()
    new = [(d.seq, d.target) for d in heard if not d.replayed]
    assert new and len(new) == len(set(new)), f"a drift was reported as new twice: {heard}"


async def test_a_learner_that_keeps_dying_is_restarted_with_a_growing_backoff(tmp_path: Path) -> None:
    server = DaemonServer(settings(tmp_path / "data", online_workers=1))
    await server.start()
    shard = server.online.shards[0]
    kills = 0
    try:
        started = time.monotonic()
        while time.monotonic() - started < 6.0:
            process = shard._process
            if process is not None and process.returncode is None:
                os.kill(process.pid, signal.SIGKILL)
                kills += 1
                await process.wait()
            await asyncio.sleep(0.05)
    finally:
        await server.stop()
    # Backoff 2 s after the first death, then 4 s: a fixed 1 s would allow about six.
    assert kills <= 3 and shard.restarts <= 3, (kills, shard.restarts)


async def test_stop_kills_a_learner_that_does_not_answer(tmp_path: Path) -> None:
    server = DaemonServer(settings(tmp_path / "data", online_workers=1, online_stop_timeout_s=1.0))
    await server.start()
    await wait_for(lambda: server.online.ready, "the learners did not start")
    process = server.online.shards[0]._process
    assert process is not None
    os.kill(process.pid, signal.SIGSTOP)  # wedged: it will never write its snapshot nor exit
    started = time.monotonic()
    await asyncio.wait_for(server.stop(), 20)
    assert time.monotonic() - started < 10
    assert process.returncode is not None  # killed, not left behind


async def test_a_failed_spawn_is_retried_and_stop_still_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spawn = asyncio.create_subprocess_exec
    refusals = 0

    async def out_of_processes(*args: Any, **kwargs: Any) -> Any:
        nonlocal refusals
        if refusals < 1:
            refusals += 1
            raise OSError(11, "Resource temporarily unavailable")
        return await spawn(*args, **kwargs)

    monkeypatch.setattr(asyncio, "create_subprocess_exec", out_of_processes)
    server = DaemonServer(settings(tmp_path / "data", online_workers=1))
    await server.start()
    try:
        await wait_for(lambda: server.online.ready, "the learner was never started after a failed spawn")
        assert refusals == 1
    finally:
        await asyncio.wait_for(server.stop(), 30)


async def test_requests_are_checked_before_the_learner_is_asked(server: DaemonServer, stub: Stub) -> None:
    """INVALID_ARGUMENT whatever the learner's state, NOT_FOUND at once for a stranger."""
    await ingest(stub, [event("a", "e-0")])
    await wait_for(lambda: server.online.ready, "the learners did not start")
    with pytest.raises(grpc.aio.AioRpcError) as overlong:
        await stub.Predict(agents_pb2.PredictRequest(agent_id="x" * 20_000))
    assert overlong.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (overlong.value.details() or "").startswith("agent_id:")
    with pytest.raises(grpc.aio.AioRpcError) as horizon:
        await stub.Predict(agents_pb2.PredictRequest(agent_id="nobody", horizon=49))
    assert horizon.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    processes = [server.online.shard_of("a"), server.online.prompts]
    for shard in processes:
        assert shard is not None and shard._process is not None
        os.kill(shard._process.pid, signal.SIGKILL)
    await wait_for(lambda: not any(p is not None and p.ready for p in processes), "the learners did not die")
    for call, field in (
        (stub.Predict(agents_pb2.PredictRequest(agent_id="a", horizon=49)), "horizon:"),
        (stub.ScorePrompts(prompts_pb2.ScorePromptsRequest(agent_id="a")), "candidates:"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (refused.value.details() or "").startswith(field)
    started = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as stranger:
        await stub.Predict(agents_pb2.PredictRequest(agent_id="nobody"))
    assert stranger.value.code() == grpc.StatusCode.NOT_FOUND
    assert time.monotonic() - started < 1.0  # not held until the learner is back


def test_the_snapshot_unpickler_refuses_what_learner_modules_merely_import(tmp_path: Path) -> None:
    """Protocol 4 resolves dotted names, and learner modules import subprocess, pathlib, ..."""
    marker = tmp_path / "pwned"

    def text(value: str) -> bytes:
        raw = value.encode()
        return b"\x8c" + bytes([len(raw)]) + raw  # SHORT_BINUNICODE

    payload = (
        b"\x80\x04" + text("swarmlearn.online._process") + text("subprocess.Popen") + b"\x93"  # STACK_GLOBAL
        + b"(" + text("touch") + text(str(marker)) + b"t\x85R."  # Popen(("touch", marker))
    )  # fmt: skip
    for module, name in (("swarmlearn.online._worker", "Connection"), ("swarmlearn.online._snapshot", "Path")):
        with pytest.raises(pickle.UnpicklingError):
            StateUnpickler(io.BytesIO(b"")).find_class(module, name)
    path = tmp_path / "online-0-of-1.snapshot"
    save(path, None, anchor=Anchor(0, "", ""), fingerprint="f")  # a valid header ...
    raw = path.read_bytes()
    header_end = raw.index(b"}") + 1
    header = json.loads(raw[len(MAGIC) + 4 : header_end])
    header.update(payload_bytes=len(payload), payload_sha256=hashlib.sha256(payload).hexdigest())
    encoded = json.dumps(header).encode()
    path.write_bytes(MAGIC + struct.pack(">I", len(encoded)) + encoded + payload)  # ... around a crafted pickle
    with pytest.raises(SnapshotRejected, match="not part of a learner state"):
        load(path, fingerprint="f", anchor_at=lambda seq: None)
    assert not marker.exists()


def test_a_failed_snapshot_save_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "online-0-of-1.snapshot"
    target.mkdir()  # os.replace onto a directory fails after the temporary file was written
    with pytest.raises(OSError):
        save(target, {"x": 1}, anchor=Anchor(0, "", ""), fingerprint="f")
    assert list(tmp_path.glob("*.tmp")) == []


def test_predict_refuses_to_answer_from_a_state_too_far_behind_the_log() -> None:
    """Past online_max_lag_events (a restart replaying the log, ingest faster than the learners)
    Predict answers UNAVAILABLE saying how far behind, not a forecast from old state."""
    from swarmlearn.errors import NotReady
    from swarmlearn.server._servicer import check_lag

    check_lag(durable=1_000, applied=900, most=100)
    with pytest.raises(NotReady, match="101 events behind the log, more than online_max_lag_events \\(100\\)"):
        check_lag(durable=1_001, applied=900, most=100)
    check_lag(durable=10**9, applied=0, most=0)  # 0: no limit


async def test_predict_answers_again_while_the_learner_is_busy(tmp_path: Path) -> None:
    """A learner that does not answer within ``predict_answer_within_s`` (here: stopped, as a long
    snapshot write or a burst would keep it) gets the agent's recent answer given again, with its own
    ``as_of_sequence``; a question never answered before still waits for the learner; 0 always waits."""
    server = DaemonServer(
        settings(tmp_path / "data", online_workers=1, online_max_wait_s=0.5, predict_answer_within_s=0.05)
    )
    await server.start()
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = Stub(channel)
            await ingest(stub, events(20, "a"))
            await caught_up(server)
            first = await stub.Predict(agents_pb2.PredictRequest(agent_id="a", horizon=2))
            process = server.online.shards[0]._process
            assert process is not None
            os.kill(process.pid, signal.SIGSTOP)
            try:
                await ingest(stub, events(5, "a", prefix="f"))
                started = time.monotonic()
                again = await stub.Predict(agents_pb2.PredictRequest(agent_id="a", horizon=2))
                assert time.monotonic() - started < 1.0  # the learner's own bound: 0.5 s + 1 s of slack
                assert again.as_of_sequence == first.as_of_sequence < again.durable_sequence
                assert [f.points[0].value for f in again.forecasts] == [f.points[0].value for f in first.forecasts]
                assert server.online.reused == 1
                with pytest.raises(grpc.aio.AioRpcError) as raised:  # another horizon: nothing to give again
                    await stub.Predict(agents_pb2.PredictRequest(agent_id="a", horizon=3))
                assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
            finally:
                os.kill(process.pid, signal.SIGCONT)
            await caught_up(server)
            server.online.answer_within_s = 0.0  # the setting's 0: always wait
            fresh = await stub.Predict(agents_pb2.PredictRequest(agent_id="a", horizon=2))
            assert fresh.as_of_sequence == fresh.durable_sequence > first.as_of_sequence
            os.kill(process.pid, signal.SIGSTOP)
            try:
                with pytest.raises(grpc.aio.AioRpcError) as raised:
                    await stub.Predict(agents_pb2.PredictRequest(agent_id="a", horizon=2))
                assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
            finally:
                os.kill(process.pid, signal.SIGCONT)
    finally:
        await server.stop()


async def test_an_answer_too_far_behind_is_not_given_again(tmp_path: Path) -> None:
    """A recent answer more than ``online_max_lag_events`` behind the log would be refused: the
    learner is awaited instead (here it never answers, so UNAVAILABLE after its own bound)."""
    server = DaemonServer(
        settings(
            tmp_path / "data",
            online_workers=1,
            online_max_wait_s=0.2,
            predict_answer_within_s=0.05,
            online_max_lag_events=3,
        )
    )
    await server.start()
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = Stub(channel)
            await ingest(stub, events(20, "a"))
            await caught_up(server)
            await stub.Predict(agents_pb2.PredictRequest(agent_id="a"))
            process = server.online.shards[0]._process
            assert process is not None
            os.kill(process.pid, signal.SIGSTOP)
            try:
                await ingest(stub, events(5, "a", prefix="f"))  # 5 behind > 3
                with pytest.raises(grpc.aio.AioRpcError) as raised:
                    await stub.Predict(agents_pb2.PredictRequest(agent_id="a"))
                assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
                assert server.online.reused == 0
            finally:
                os.kill(process.pid, signal.SIGCONT)
    finally:
        await server.stop()


async def test_the_answers_kept_to_give_again_are_bounded(tmp_path: Path) -> None:
    """One agent asked at every horizon and many coverages keeps at most ``_RECENT_ANSWERS`` (4,096) of
    them, the least recently answered leaving first: a client cannot grow the daemon's memory by asking."""
    from swarmlearn.online._process import _RECENT_ANSWERS

    server = DaemonServer(settings(tmp_path / "data", online_workers=1))
    await server.start()
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            await ingest(Stub(channel), events(20, "a"))
            await caught_up(server)
        online = server.online
        asked = [(h, c / 100) for c in range(1, 100) for h in range(1, 49)][: _RECENT_ANSWERS + 10]
        for horizon, coverage in asked:
            await online.predict("a", horizon, coverage, min_seq=0)
        assert len(online._recent) == _RECENT_ANSWERS == 4_096
        assert ("a", *asked[9]) not in online._recent and ("a", *asked[10]) in online._recent
        for listener in server.registry.listeners:  # as a promotion or rollback calls them
            listener()
        assert not online._recent
    finally:
        await server.stop()
