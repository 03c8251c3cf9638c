"""Tuning jobs over RPC on a real daemon: Ax and torch in the job's processes, resumed after a restart."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
import pytest_asyncio

from swarmlearn.config import Settings
from swarmlearn.importer import event_to_proto
from swarmlearn.server import DaemonServer
from swarmlearn.synthetic import generate_swarm
from swarmlearn_client.v1 import jobs_pb2, service_pb2_grpc
from tests.daemon.rpc import ingest

Stub = service_pb2_grpc.SwarmLearnStub
SPACE = json.dumps(
    [
        {"name": "hidden_size", "type": "choice", "values": [8, 16]},
        {"name": "learning_rate", "type": "range", "bounds": [1e-3, 1e-2], "log": True},
        {"name": "window", "type": "choice", "values": [10, 20]},
    ]
)


def settings(data_dir: Path) -> Settings:
    return Settings(listen="127.0.0.1:0", metrics_listen="", data_dir=data_dir, tuning_max_epochs=2, training_threads=2)


@pytest_asyncio.fixture
async def swarm(tmp_path: Path) -> AsyncIterator[tuple[DaemonServer, Stub]]:
    server = DaemonServer(settings(tmp_path / "data"))
    await server.start()
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = Stub(channel)
        await ingest(stub, [event_to_proto(e) for e in generate_swarm(agents=2, events_per_agent=300, seed=4)])
        yield server, stub
    await server.stop()


async def finished(stub: Stub, job_id: str) -> list[jobs_pb2.Job]:
    return [job async for job in stub.WatchJob(jobs_pb2.WatchJobRequest(job_id=job_id))]


BAD_REQUESTS = [
    ({"method": "annealing"}, "method", "one of bayesian"),
    ({"model_kind": "gru"}, "model_kind", "one of lstm"),
    ({"objective": "val_r2"}, "objective", "val_mase"),
    ({"max_trials": 5000}, "max_trials", "at most 1000"),
    ({"search_space_json": '[{"name": "dropout", "bounds": [0.5, 0.1]}]'}, "search_space_json", "min 0.5 > max"),
    ({"search_space_json": '[{"name": "hidden_size", "values": []}]'}, "search_space_json", "non-empty"),
    ({"search_space_json": '[{"name": "colour", "values": [1]}]'}, "search_space_json", "unknown parameter"),
    ({"search_space_json": "{"}, "search_space_json", "not JSON"),
    ({"method": "grid", "max_trials": 10}, "search_space_json", "over the limit of 10"),
]


async def test_bad_tuning_requests_are_refused(swarm: tuple[DaemonServer, Stub]) -> None:
    # One daemon for every case: the search space is checked in a child process, seconds each.
    _, stub = swarm
    for change, field, words in BAD_REQUESTS:
        request = jobs_pb2.StartTuningRequest(model_kind="lstm", method="random")
        for name, value in change.items():
            setattr(request, name, value)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.StartTuning(request)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, change
        details = refused.value.details() or ""
        assert details.startswith(f"{field}:") and words in details, details
    assert not (await stub.ListJobs(jobs_pb2.ListJobsRequest())).jobs
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await stub.StartTuning(jobs_pb2.StartTuningRequest(model_kind="lstm", scope="ghost"))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.timeout(400)  # six trials, a restart and a training job, on a small CPU
async def test_a_tuning_job_resumes_after_a_restart_and_its_best_config_feeds_the_next_training(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    server = DaemonServer(settings(data_dir))
    await server.start()
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = Stub(channel)
        await ingest(stub, [event_to_proto(e) for e in generate_swarm(agents=2, events_per_agent=300, seed=4)])
        # One trial at a time, so that most of the search is left when the daemon stops.
        request = jobs_pb2.StartTuningRequest(
            model_kind="lstm", method="random", max_trials=6, concurrency=1, search_space_json=SPACE
        )
        job = await stub.StartTuning(request)
        assert job.job_id.startswith("tune-") and job.kind == jobs_pb2.JOB_KIND_TUNING
        assert job.progress.total_trials == 6
        deadline = time.monotonic() + 120
        while not (current := await stub.GetJob(jobs_pb2.GetJobRequest(job_id=job.job_id))).progress.trials_done:
            assert time.monotonic() < deadline, "no trial finished"
            await asyncio.sleep(0.2)
        before = {t.index: t.params_json for t in current.trials if t.status == "completed"}
    await server.stop()
    with contextlib.closing(sqlite3.connect(data_dir / "jobs.sqlite3")) as records:
        (state, record), *_ = records.execute("SELECT state, record FROM jobs").fetchall()
    # Pending, and it will read the events it read before the stop, not the log as it is then.
    assert state == "pending" and json.loads(record)["request"]["upto"] == 600

    server = DaemonServer(settings(data_dir))
    await server.start()
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = Stub(channel)
            seen = await finished(stub, job.job_id)
            final = seen[-1]
            assert final.state == jobs_pb2.JOB_STATE_SUCCEEDED, final.error
            # The same experiment: the trials done before the restart are kept, not redone.
            after = {t.index: t for t in final.trials}
            for index, params in before.items():
                assert after[index].status == "completed" and after[index].params_json == params
            completed = [t for t in final.trials if t.status == "completed"]
            assert len(completed) == 6 and {t.status for t in final.trials} <= {"completed", "interrupted"}
            assert all(0 < t.objective < 10 and 1 <= t.epochs <= 2 for t in completed)
            done = [j.progress.trials_done for j in seen]
            assert done == sorted(done) and done[-1] == final.progress.total_trials == 6
            best = min(completed, key=lambda t: t.objective)
            assert final.progress.best_objective == pytest.approx(best.objective)
            params = json.loads(best.params_json)
            config = json.loads(final.config_json)
            assert config == {
                "hidden_size": params["hidden_size"],
                "training": {"learning_rate": params["learning_rate"], "window": params["window"]},
            }
            assert (data_dir / "tuning" / job.job_id / "experiment.json").exists()
            tuned = server.registry.tuned("", "lstm")
            assert tuned is not None and tuned.config == config and tuned.job_id == job.job_id
            # The next training without a config of its own uses it, and the model records it.
            training = await stub.StartTraining(jobs_pb2.StartTrainingRequest(model_kind="lstm", max_epochs=1))
            made = (await finished(stub, training.job_id))[-1]
            assert made.state == jobs_pb2.JOB_STATE_SUCCEEDED, made.error
            (model,) = (await stub.ListModels(jobs_pb2.ListModelsRequest())).models
    finally:
        await server.stop()
    recorded = json.loads(model.config_json)
    assert recorded["model"]["hidden_size"] == params["hidden_size"] and recorded["window"] == params["window"]
    assert recorded["training"]["learning_rate"] == pytest.approx(params["learning_rate"])
    assert recorded["tuned_by"] == job.job_id


@pytest.mark.timeout(400)
async def test_tune_then_train_over_a_champion_of_another_size(swarm: tuple[DaemonServer, Stub]) -> None:
    """The documented flow with a champion in place: the tuned config has another size, so the next
    training cannot start from the champion's weights (it used to fail: size mismatch for
    lstm.weight_ih_l0, and so would every later training of that kind); it trains from scratch and says
    so. A training of the champion's own config starts from it."""
    _, stub = swarm
    champion_config = json.dumps({"hidden_size": 32, "training": {"window": 20}})
    first = await stub.StartTraining(
        jobs_pb2.StartTrainingRequest(model_kind="lstm", max_epochs=1, config_json=champion_config)
    )
    assert (await finished(stub, first.job_id))[-1].state == jobs_pb2.JOB_STATE_SUCCEEDED
    await stub.PromoteModel(jobs_pb2.PromoteModelRequest(model_kind="lstm", version=1))
    space = json.dumps(
        [
            {"name": "hidden_size", "type": "choice", "values": [8, 12]},
            {"name": "window", "type": "choice", "values": [20, 21]},
        ]
    )
    tuning = await stub.StartTuning(
        jobs_pb2.StartTuningRequest(model_kind="lstm", method="grid", search_space_json=space, concurrency=1)
    )
    tuned = (await finished(stub, tuning.job_id))[-1]
    assert tuned.state == jobs_pb2.JOB_STATE_SUCCEEDED, tuned.error
    size = json.loads(tuned.config_json)["hidden_size"]

    second = await stub.StartTraining(jobs_pb2.StartTrainingRequest(model_kind="lstm", max_epochs=1))
    made = (await finished(stub, second.job_id))[-1]
    assert made.state == jobs_pb2.JOB_STATE_SUCCEEDED, made.error
    assert "trained from scratch" in made.note and f"hidden_size 32, not {size}" in made.note, made.note

    third = await stub.StartTraining(
        jobs_pb2.StartTrainingRequest(model_kind="lstm", max_epochs=1, config_json=champion_config)
    )
    again = (await finished(stub, third.job_id))[-1]
    assert again.state == jobs_pb2.JOB_STATE_SUCCEEDED, again.error
    assert "warm-started from the champion" in again.note, again.note
    models = {
        m.version: json.loads(m.config_json) for m in (await stub.ListModels(jobs_pb2.ListModelsRequest())).models
    }
    assert models[2]["warm_start"] is False and models[3]["warm_start"] is True
