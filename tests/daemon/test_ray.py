"""Tuning trials on a real local Ray cluster: the same job contract as the local pool, worker deaths
retried once then failed, cancels reaching the Ray tasks, an unreachable cluster failing only the job.

Ray is imported plainly, not with ``importorskip``: CI installs ``swarmlearn[ray]`` (the Makefile's
install step), and a missing Ray must fail these tests there rather than skip them.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
import ray

from swarmlearn.config import Settings, SettingsError
from swarmlearn.importer import event_to_proto
from swarmlearn.server import DaemonServer
from swarmlearn.synthetic import generate_swarm
from swarmlearn.tuning import Tuner, TunerConfig, TuningCancelled, parse_space
from swarmlearn.tuning._ray import ClusterUnavailable, RayExecutor
from swarmlearn.tuning._trial import RayTrials
from swarmlearn.tuning._tuner import TrialRequest, TrialResult
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


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A two-CPU Ray cluster started by this process; its GCS address lets job processes join it. A
    small object store: the default takes 30 % of memory in /dev/shm, which CI containers keep small."""
    ray.init(
        num_cpus=2,
        object_store_memory=128 * 1024 * 1024,
        include_dashboard=False,
        logging_level=logging.WARNING,
        log_to_driver=False,
    )
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        # The tests' executors and futures hold ObjectRefs; one freed after ray.shutdown() calls into a
        # core worker that is gone and crashes this process (seen as a SIGSEGV tests later). Free them now.
        gc.collect()
        ray.shutdown()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def settings(data_dir: Path, ray_address: str) -> Settings:
    return Settings(
        listen="127.0.0.1:0",
        metrics_listen="",
        data_dir=data_dir,
        tuning_max_epochs=2,
        ray_address=ray_address,
        online_workers=0,
    )


@pytest_asyncio.fixture
async def daemon(tmp_path: Path, cluster: str) -> AsyncIterator[tuple[DaemonServer, Stub]]:
    server = DaemonServer(settings(tmp_path / "data", cluster))
    await server.start()
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = Stub(channel)
            await ingest(stub, [event_to_proto(e) for e in generate_swarm(agents=2, events_per_agent=300, seed=4)])
            yield server, stub
    finally:
        await server.stop()


async def finished(stub: Stub, job_id: str) -> list[jobs_pb2.Job]:
    return [job async for job in stub.WatchJob(jobs_pb2.WatchJobRequest(job_id=job_id))]


def space() -> Any:
    return parse_space("lstm", SPACE)


async def test_tuning_and_training_jobs_run_on_ray_with_the_local_pools_results(
    daemon: tuple[DaemonServer, Stub],
) -> None:
    server, stub = daemon
    drivers = len(ray._private.state.jobs())  # the tuning job's process joins as a driver of its own
    request = jobs_pb2.StartTuningRequest(
        model_kind="lstm", method="random", max_trials=4, concurrency=2, search_space_json=SPACE
    )
    job = await stub.StartTuning(request)
    seen = await finished(stub, job.job_id)
    final = seen[-1]
    assert final.state == jobs_pb2.JOB_STATE_SUCCEEDED, final.error
    assert len(ray._private.state.jobs()) == drivers + 1
    # The contract of test_tuning_jobs: every trial, its objective and epochs, progress, the best config.
    completed = [t for t in final.trials if t.status == "completed"]
    assert len(completed) == 4 == final.progress.total_trials == final.progress.trials_done
    assert all(0 < t.objective < 10 and 1 <= t.epochs <= 2 for t in completed)
    done = [j.progress.trials_done for j in seen]
    assert done == sorted(done)
    best = min(completed, key=lambda t: t.objective)
    assert final.progress.best_objective == pytest.approx(best.objective)
    params = json.loads(best.params_json)
    assert json.loads(final.config_json) == {
        "hidden_size": params["hidden_size"],
        "training": {"learning_rate": params["learning_rate"], "window": params["window"]},
    }
    tuned = server.registry.tuned("", "lstm")
    assert tuned is not None and tuned.job_id == job.job_id
    # A training job on Ray too: its progress per epoch, its checkpoint written where the registry is.
    training = await stub.StartTraining(jobs_pb2.StartTrainingRequest(model_kind="lstm", max_epochs=2))
    seen = await finished(stub, training.job_id)
    made = seen[-1]
    assert made.state == jobs_pb2.JOB_STATE_SUCCEEDED, made.error
    assert len(ray._private.state.jobs()) == drivers + 2
    assert max(j.progress.epoch for j in seen) >= 1  # progress came from the task
    (model,) = (await stub.ListModels(jobs_pb2.ListModelsRequest())).models
    assert json.loads(model.config_json)["tuned_by"] == job.job_id
    assert list((server.registry.root).rglob("lstm-v1.pt"))
    # Cancelling a training job on Ray cancels its task: the job ends long before its 500 epochs.
    long = await stub.StartTraining(jobs_pb2.StartTrainingRequest(model_kind="lstm", max_epochs=500))
    async for current in stub.WatchJob(jobs_pb2.WatchJobRequest(job_id=long.job_id)):
        if current.progress.epoch >= 1:
            await stub.CancelJob(jobs_pb2.CancelJobRequest(job_id=long.job_id))
            break
    cancelled = (await finished(stub, long.job_id))[-1]
    assert cancelled.state == jobs_pb2.JOB_STATE_CANCELLED and cancelled.progress.epoch < 500


def test_a_trial_whose_worker_dies_is_retried_once_then_failed(cluster: str, tmp_path: Path) -> None:
    attempts = tmp_path / "attempts"
    attempts.mkdir()

    def objective(request: TrialRequest) -> TrialResult:
        marker = attempts / f"{request.index}.{len(list(attempts.glob(f'{request.index}.*')))}"
        marker.touch()
        if request.index == 1 or marker.name.endswith(".0"):
            os._exit(1)  # trial 1's worker dies every time, trial 0's on its first attempt only
        return TrialResult(float(request.params["hidden_size"]), request.epochs)

    config = TunerConfig(method="random", max_trials=2, concurrency=2, max_epochs=1, seed=1)
    executor = RayExecutor(cluster, num_cpus=1)
    started = time.monotonic()
    with executor:
        result = Tuner(space(), config, objective, executor, tmp_path / "tuning").run()
    assert time.monotonic() - started < 60, "a dead worker hung the search"
    first, second = result.trials
    assert first.status == "completed" and sorted(p.name for p in attempts.glob("0.*")) == ["0.0", "0.1"]
    assert second.status == "failed" and "WorkerCrashedError" in second.error
    assert sorted(p.name for p in attempts.glob("1.*")) == ["1.0", "1.1"]  # retried once, not more
    assert result.best_trial == first.index


def test_hyperbands_weights_between_rungs_travel_with_the_trials(cluster: str, tmp_path: Path) -> None:
    # A worker on another machine cannot see the job's directory: the weights go there and back as bytes.
    directory = tmp_path / "tuning"

    def objective(request: TrialRequest) -> TrialResult:
        assert not request.save_to.startswith(str(directory)), "the worker was handed the job's own path"
        if request.resume_from:
            previous = request.budget - request.epochs
            assert Path(request.resume_from).read_text() == f"{request.index}@{previous}"
        Path(request.save_to).write_text(f"{request.index}@{request.budget}")
        return TrialResult(float(request.params["hidden_size"]) + 1 / request.budget, request.epochs)

    saved: list[str] = []
    config = TunerConfig(method="hyperband", max_trials=3, max_epochs=3, eta=3, seed=1)
    with RayTrials(cluster, num_cpus=1) as executor:
        tuner = Tuner(space(), config, objective, executor, directory)
        land = tuner._record

        def record(request: TrialRequest, outcome: Any, *, final: bool) -> None:
            if request.save_to:
                saved.append(Path(request.save_to).read_text())
            land(request, outcome, final=final)

        tuner._record = record  # type: ignore[method-assign]
        result = tuner.run()
    assert {t.status for t in result.trials} == {"completed", "early_stopped"}, [t.error for t in result.trials]
    best = result.trials[result.best_trial]
    assert sorted(best.values) == [1, 3] and best.epochs == 3  # resumed at rung 2: 2 more epochs, not 3
    assert sorted(saved) == sorted([f"{t.index}@1" for t in result.trials] + [f"{best.index}@3"])


def test_an_error_that_says_the_cluster_is_gone_ends_the_search(cluster: str, tmp_path: Path) -> None:
    # Killing this cluster's raylet would end the module's cluster; a trial raising the error stands in.
    def objective(request: TrialRequest) -> TrialResult:
        raise ray.exceptions.LocalRayletDiedError()

    config = TunerConfig(method="random", max_trials=6, concurrency=1, max_epochs=1, seed=1)
    with RayExecutor(cluster, num_cpus=1) as executor:
        tuner = Tuner(space(), config, objective, executor, tmp_path / "tuning")
        with pytest.raises(ClusterUnavailable, match=f"(?s)lost the Ray cluster at '{cluster}'.*raylet died"):
            tuner.run()
    # One trial failed, the next one never ran: not six trials failed one by one.
    assert [t.status for t in tuner.trials.values()] == ["failed", "running"]


def test_cancelling_the_search_cancels_its_ray_tasks(cluster: str, tmp_path: Path) -> None:
    started = tmp_path / "started"
    started.mkdir()

    def objective(request: TrialRequest) -> TrialResult:
        (started / str(request.index)).touch()
        time.sleep(120)
        return TrialResult(1.0, request.epochs)

    futures: list[Future[Any]] = []
    executor = RayExecutor(cluster, num_cpus=1)
    submit = executor.submit

    def recording_submit(fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        futures.append(submit(fn, *args, **kwargs))
        return futures[-1]

    executor.submit = recording_submit  # type: ignore[method-assign]
    config = TunerConfig(method="random", max_trials=2, concurrency=2, max_epochs=1, seed=1)
    tuner = Tuner(
        space(), config, objective, executor, tmp_path / "tuning", should_stop=lambda: len(list(started.iterdir())) == 2
    )
    begun = time.monotonic()
    with executor, pytest.raises(TuningCancelled):
        tuner.run()
    tuner.abandon_running()
    refs = [future.ref for future in futures]  # type: ignore[attr-defined]
    ready, _ = ray.wait(refs, num_returns=len(refs), timeout=30)
    assert len(ready) == 2 and time.monotonic() - begun < 60
    for ref in refs:
        with pytest.raises(ray.exceptions.TaskCancelledError):
            ray.get(ref)
    assert {t.status for t in tuner.trials.values()} == {"failed"}


def test_an_unreachable_ray_client_address_is_a_clear_error_at_once() -> None:
    # In a process of its own: this one is in the test cluster, where connect_ray() has nothing to do.
    address = f"ray://127.0.0.1:{free_port()}"
    script = f"from swarmlearn.tuning import connect_ray; connect_ray({address!r})"
    began = time.monotonic()
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and time.monotonic() - began < 30
    assert f"ClusterUnavailable: cannot reach the Ray cluster at {address!r}" in out.stderr, out.stderr


@pytest.mark.parametrize("address", ["", "auto", "10.0.0.1:6379", "ray://head.example:10001", "[::1]:6379"])
def test_ray_addresses_accepted(address: str) -> None:
    assert Settings(ray_address=address).ray_address == address


@pytest.mark.parametrize(
    ("changes", "name"),
    [
        ({"ray_address": "head"}, "ray_address"),
        ({"ray_address": "ray://head"}, "ray_address"),
        ({"ray_address": "http://head:80"}, "ray_address"),
        ({"ray_num_cpus_per_trial": 0}, "ray_num_cpus_per_trial"),
        ({"ray_num_gpus_per_trial": -1}, "ray_num_gpus_per_trial"),
    ],
)
def test_bad_ray_settings_are_refused(changes: dict[str, Any], name: str) -> None:
    with pytest.raises(SettingsError, match=f"setting {name}"):
        Settings(**changes)


async def test_a_tuning_job_on_an_unreachable_cluster_fails_and_the_daemon_keeps_serving(tmp_path: Path) -> None:
    server = DaemonServer(settings(tmp_path / "data", f"127.0.0.1:{free_port()}"))
    await server.start()
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = Stub(channel)
            await ingest(stub, [event_to_proto(e) for e in generate_swarm(agents=1, events_per_agent=100, seed=4)])
            request = jobs_pb2.StartTuningRequest(model_kind="lstm", method="random", max_trials=2)
            job = await stub.StartTuning(request)
            final = (await finished(stub, job.job_id))[-1]
            assert final.state == jobs_pb2.JOB_STATE_FAILED
            assert "cannot reach the Ray cluster" in final.error, final.error
            listed = await stub.ListJobs(jobs_pb2.ListJobsRequest())  # still serving
            assert [j.job_id for j in listed.jobs] == [job.job_id]
    finally:
        await server.stop()
