"""Training jobs and the model registry over RPC, on a real daemon with real torch job processes."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
import pytest_asyncio

from swarmlearn.config import Settings
from swarmlearn.importer import event_to_proto
from swarmlearn.server import DaemonServer
from swarmlearn.synthetic import generate_swarm
from swarmlearn_client.v1 import agents_pb2, jobs_pb2, service_pb2_grpc
from tests.daemon.pbevents import event
from tests.daemon.rpc import ingest

Stub = service_pb2_grpc.SwarmLearnStub
SMALL = json.dumps({"hidden_size": 16, "num_layers": 1, "training": {"window": 20, "batch_size": 32}})


@pytest_asyncio.fixture
async def swarm(tmp_path: Path) -> AsyncIterator[tuple[DaemonServer, Stub]]:
    server = DaemonServer(Settings(listen="127.0.0.1:0", metrics_listen="", data_dir=tmp_path / "data"))
    await server.start()
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = Stub(channel)
        await ingest(stub, [event_to_proto(e) for e in generate_swarm(agents=3, events_per_agent=400, seed=4)])
        yield server, stub
    await server.stop()


async def finished(stub: Stub, job_id: str) -> list[jobs_pb2.Job]:
    return [job async for job in stub.WatchJob(jobs_pb2.WatchJobRequest(job_id=job_id))]


async def test_a_training_job_streams_progress_and_registers_its_model(swarm: tuple[DaemonServer, Stub]) -> None:
    server, stub = swarm
    job = await stub.StartTraining(jobs_pb2.StartTrainingRequest(model_kind="lstm", max_epochs=3, config_json=SMALL))
    assert job.state == jobs_pb2.JOB_STATE_PENDING and job.job_id.startswith("train-")
    seen = await finished(stub, job.job_id)
    final = seen[-1]
    assert final.state == jobs_pb2.JOB_STATE_SUCCEEDED, final.error
    epochs = [j.progress.epoch for j in seen if j.state == jobs_pb2.JOB_STATE_RUNNING]
    assert epochs == sorted(epochs) and epochs[-1] == 3 and final.progress.total_epochs == 3
    assert final.model_version == "lstm-v1" and {"latency_ms.mae", "success_rate.mase"} <= set(final.metrics)
    models = (await stub.ListModels(jobs_pb2.ListModelsRequest())).models
    assert [(m.scope, m.model_kind, m.version, m.job_id) for m in models] == [("", "lstm", 1, job.job_id)]
    config = json.loads(models[0].config_json)
    assert config["model"] == {"kind": "lstm", "hidden_size": 16, "num_layers": 1, "dropout": 0.2}
    # Promoted exactly when the rule said so, and the job says why.
    assert models[0].champion == final.note.startswith("promoted:"), final.note
    assert "naive" in final.note
    checkpoint = server.registry.checkpoint_path(server.registry.get("", "lstm", 1))
    assert checkpoint.exists() and checkpoint.is_relative_to(server.settings.data_dir / "models")
    # An operator can promote it anyway; Predict then answers from it (hot-swapped), and there is
    # nothing to roll back to.
    promoted = await stub.PromoteModel(jobs_pb2.PromoteModelRequest(model_kind="lstm", version=1))
    assert promoted.champion
    deadline = time.monotonic() + 30
    while True:
        answer = await stub.Predict(agents_pb2.PredictRequest(agent_id="planner", coverage=0.9))
        if answer.forecasts[0].model_kind == "torch:lstm":
            break
        assert time.monotonic() < deadline, "the champion never answered Predict"
        await asyncio.sleep(0.1)
    for forecast in answer.forecasts:
        assert forecast.model_version == "lstm-v1" and forecast.running_mae == final.metrics[f"{forecast.target}.mae"]
        (point,) = forecast.points
        assert point.lower < point.value < point.upper and point.upper - point.lower < 1e6  # from test residuals
    # It forecasts one step: a longer horizon is the online baseline's.
    longer = await stub.Predict(agents_pb2.PredictRequest(agent_id="planner", horizon=3))
    assert longer.forecasts[0].model_kind.startswith("online:")
    with pytest.raises(grpc.aio.AioRpcError) as nothing:
        await stub.RollbackModel(jobs_pb2.RollbackModelRequest())
    assert nothing.value.code() == grpc.StatusCode.NOT_FOUND
    listed = await stub.ListJobs(jobs_pb2.ListJobsRequest(state=jobs_pb2.JOB_STATE_SUCCEEDED))
    assert [j.job_id for j in listed.jobs] == [job.job_id]


async def test_an_agent_scope_is_judged_against_the_swarm_champion_that_serves_it(
    swarm: tuple[DaemonServer, Stub],
) -> None:
    """Predict serves an agent without a champion of its own from the swarm's: that is the rival its
    own model must beat (it used to be compared with no champion at all), and the model it may start
    from when compatible."""
    server, stub = swarm
    job = await stub.StartTraining(jobs_pb2.StartTrainingRequest(model_kind="lstm", max_epochs=2, config_json=SMALL))
    assert (await finished(stub, job.job_id))[-1].state == jobs_pb2.JOB_STATE_SUCCEEDED
    await stub.PromoteModel(jobs_pb2.PromoteModelRequest(model_kind="lstm", version=1))
    assert server.registry.champion("planner") is None
    mine = await stub.StartTraining(
        jobs_pb2.StartTrainingRequest(scope="planner", model_kind="lstm", max_epochs=2, config_json=SMALL)
    )
    final = (await finished(stub, mine.job_id))[-1]
    assert final.state == jobs_pb2.JOB_STATE_SUCCEEDED, final.error
    assert "the champion " in final.note and "warm-started from the champion" in final.note, final.note
    assert "p = " in final.note
    # A fine-tune of that champion: its weights, at most fine_tune_epochs at a tenth of the rate.
    tune = json.dumps({**json.loads(SMALL), "training": {**json.loads(SMALL)["training"], "fine_tune": True}})
    tuned = await stub.StartTraining(
        jobs_pb2.StartTrainingRequest(scope="planner", model_kind="lstm", max_epochs=20, config_json=tune)
    )
    done = (await finished(stub, tuned.job_id))[-1]
    assert done.state == jobs_pb2.JOB_STATE_SUCCEEDED, done.error
    assert "fine-tuned: at most 5 epochs at learning rate 0.0001" in done.note, done.note
    assert done.progress.total_epochs == 5 and done.progress.epoch <= 5
    # Asked for where no compatible champion serves: a full training, and the note says so.
    resized = json.dumps({**json.loads(tune), "hidden_size": 8})
    other = await stub.StartTraining(
        jobs_pb2.StartTrainingRequest(model_kind="lstm", max_epochs=1, config_json=resized)
    )
    full = (await finished(stub, other.job_id))[-1]
    assert full.state == jobs_pb2.JOB_STATE_SUCCEEDED, full.error
    assert "fine-tuning was asked for, so this is a full training instead" in full.note, full.note


async def test_an_ensemble_trains_from_nested_member_configs_and_serves_predict(
    swarm: tuple[DaemonServer, Stub],
) -> None:
    _, stub = swarm
    members = {"lstm": {"hidden_size": 8}, "tcn": {"channels": 8}, "nbeats": {"num_blocks": 1, "layer_width": 32}}
    request = jobs_pb2.StartTrainingRequest(
        model_kind="ensemble", max_epochs=2, config_json=json.dumps({**members, "training": {"window": 20}})
    )
    final = (await finished(stub, (await stub.StartTraining(request)).job_id))[-1]
    assert final.state == jobs_pb2.JOB_STATE_SUCCEEDED, final.error
    (model,) = (await stub.ListModels(jobs_pb2.ListModelsRequest())).models
    config = json.loads(model.config_json)["model"]
    assert config["kind"] == "ensemble" and config["members"] == ["lstm", "tcn", "nbeats"]
    assert (config["lstm"]["hidden_size"], config["lstm"]["num_layers"], config["tcn"]["channels"]) == (8, 1, 8)
    await stub.PromoteModel(jobs_pb2.PromoteModelRequest(model_kind="ensemble", version=1))
    deadline = time.monotonic() + 30
    while (answer := await stub.Predict(agents_pb2.PredictRequest(agent_id="planner"))).forecasts[
        0
    ].model_kind != "torch:ensemble":
        assert time.monotonic() < deadline, "the ensemble never answered Predict"
        await asyncio.sleep(0.1)
    assert all(f.model_version == "ensemble-v1" and f.points[0].lower <= f.points[0].value for f in answer.forecasts)
    # A config the ensemble refuses fails its job (the daemon does not import torch to check it), saying why.
    bad = await stub.StartTraining(
        jobs_pb2.StartTrainingRequest(model_kind="ensemble", config_json='{"members": ["tcn"]}')
    )
    failed = (await finished(stub, bad.job_id))[-1]
    assert failed.state == jobs_pb2.JOB_STATE_FAILED and "two or three of lstm, tcn, nbeats" in failed.error


async def test_cancel_stops_a_running_job_while_predict_and_ingest_keep_answering(
    swarm: tuple[DaemonServer, Stub],
) -> None:
    _, stub = swarm
    long = json.dumps({"hidden_size": 64, "training": {"window": 20, "batch_size": 8, "patience": 1000}})
    job = await stub.StartTraining(jobs_pb2.StartTrainingRequest(model_kind="lstm", max_epochs=500, config_json=long))
    deadline = time.monotonic() + 60
    while (await stub.GetJob(jobs_pb2.GetJobRequest(job_id=job.job_id))).progress.epoch < 1:
        assert time.monotonic() < deadline, "the job never ran an epoch"
        await asyncio.sleep(0.1)
    # While it trains: Predict and ingest answer, timed.
    predict_s, ack_s = [], []
    for i in range(40):
        started = time.perf_counter()
        await stub.Predict(agents_pb2.PredictRequest(agent_id="planner", horizon=3))
        predict_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        acks = await ingest(stub, [event("during", f"d-{i}")])
        ack_s.append(time.perf_counter() - started)
        assert acks[0].accepted == 1
    assert (await stub.GetJob(jobs_pb2.GetJobRequest(job_id=job.job_id))).state == jobs_pb2.JOB_STATE_RUNNING
    assert sorted(predict_s)[-2] < 0.5 and sorted(ack_s)[-2] < 0.5, (max(predict_s), max(ack_s))
    await stub.CancelJob(jobs_pb2.CancelJobRequest(job_id=job.job_id))
    final = (await finished(stub, job.job_id))[-1]
    assert final.state == jobs_pb2.JOB_STATE_CANCELLED
    assert not (await stub.ListModels(jobs_pb2.ListModelsRequest())).models


async def test_bad_training_requests(swarm: tuple[DaemonServer, Stub]) -> None:
    _, stub = swarm
    for request, code, field in (
        (jobs_pb2.StartTrainingRequest(model_kind="transformer"), grpc.StatusCode.INVALID_ARGUMENT, "model_kind:"),
        (
            jobs_pb2.StartTrainingRequest(model_kind="lstm", config_json="{oops"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "config_json:",
        ),
        (jobs_pb2.StartTrainingRequest(model_kind="lstm", horizon=49), grpc.StatusCode.INVALID_ARGUMENT, "horizon:"),
        (jobs_pb2.StartTrainingRequest(model_kind="lstm", scope="nobody"), grpc.StatusCode.NOT_FOUND, "unknown agent"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.StartTraining(request)
        assert refused.value.code() == code and (refused.value.details() or "").startswith(field)
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await stub.GetJob(jobs_pb2.GetJobRequest(job_id="train-nope"))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    # A configuration the model does not have fails the job, saying what was wrong.
    job = await stub.StartTraining(
        jobs_pb2.StartTrainingRequest(model_kind="tcn", config_json=json.dumps({"channels": [8]}))
    )
    final = (await finished(stub, job.job_id))[-1]
    assert final.state == jobs_pb2.JOB_STATE_FAILED and "channels" in final.error


async def test_job_records_survive_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = DaemonServer(Settings(listen="127.0.0.1:0", metrics_listen="", data_dir=data))
    await first.start()
    async with grpc.aio.insecure_channel(first.address) as channel:
        stub = Stub(channel)
        await ingest(stub, [event_to_proto(e) for e in generate_swarm(agents=2, events_per_agent=300, seed=1)])
        done = await stub.StartTraining(
            jobs_pb2.StartTrainingRequest(model_kind="lstm", max_epochs=1, config_json=SMALL)
        )
        await finished(stub, done.job_id)
        slow = json.dumps({"training": {"window": 20, "batch_size": 4, "patience": 1000}})
        running = await stub.StartTraining(
            jobs_pb2.StartTrainingRequest(model_kind="lstm", max_epochs=500, config_json=slow)
        )
        deadline = time.monotonic() + 60
        while (await stub.GetJob(jobs_pb2.GetJobRequest(job_id=running.job_id))).state != jobs_pb2.JOB_STATE_RUNNING:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
    await first.stop()  # stops the running job
    second = DaemonServer(Settings(listen="127.0.0.1:0", metrics_listen="", data_dir=data))
    await second.start()
    try:
        async with grpc.aio.insecure_channel(second.address) as channel:
            stub = Stub(channel)
            before = await stub.GetJob(jobs_pb2.GetJobRequest(job_id=done.job_id))
            assert before.state == jobs_pb2.JOB_STATE_SUCCEEDED and before.model_version == "lstm-v1"
            cut = await stub.GetJob(jobs_pb2.GetJobRequest(job_id=running.job_id))
            assert cut.state == jobs_pb2.JOB_STATE_FAILED and "daemon stopped" in cut.error
            assert [m.version for m in (await stub.ListModels(jobs_pb2.ListModelsRequest())).models] == [1]
    finally:
        await second.stop()


async def test_retraining_is_scheduled_on_new_events_without_piling_up(tmp_path: Path) -> None:
    settings = Settings(
        listen="127.0.0.1:0", metrics_listen="", data_dir=tmp_path / "data",
        retrain_every_events=500, retrain_model_kind="tcn",
    )  # fmt: skip
    server = DaemonServer(settings)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = Stub(channel)
            swarm = [event_to_proto(e) for e in generate_swarm(agents=3, events_per_agent=400, seed=6)]
            await ingest(stub, swarm[:600])  # past 500: one job
            await ingest(stub, swarm[600:])  # past 500 again, while that job is pending or running: none more
            jobs = (await stub.ListJobs(jobs_pb2.ListJobsRequest())).jobs
            assert len(jobs) == 1 and jobs[0].model_kind == "tcn" and jobs[0].scope == ""
            final = (await finished(stub, jobs[0].job_id))[-1]
            assert final.state == jobs_pb2.JOB_STATE_SUCCEEDED, final.error
            assert server.registry.versions(kind="tcn")
    finally:
        await server.stop()


def test_the_online_rival_is_what_predict_would_have_answered_at_each_test_window() -> None:
    from swarmlearn.jobs._train import online_forecasts
    from swarmlearn.online import OnlineState
    from swarmlearn.training import Replay, Split, StreamDataLoader, TrainingConfig

    events = list(generate_swarm(agents=2, events_per_agent=300, seed=3))
    data = StreamDataLoader(events, TrainingConfig(window=20, horizon=2))
    predicted = online_forecasts(Replay(events), data)
    starts = data.starts[Split.TEST]
    assert predicted.shape == (len(starts), 2, 3)
    for i in (0, len(starts) // 2, len(starts) - 1):
        start = int(starts[i])
        agent = data.agents[data.row_agent[start]]
        first_row = int((data.row_agent == data.row_agent[start]).argmax())
        mine = sorted((e for e in events if e.agent_id == agent), key=lambda e: e.timestamp)
        state = OnlineState()
        for e in mine[: start + data.window - first_row]:  # up to the window's last input row
            state.learn(e)
        want = state.predict(agent, 2)
        assert predicted[i].tolist() == [[want[t].points[h].value for t in want] for h in range(2)]


def test_a_grid_model_is_judged_against_the_buckets_naive_forecast_not_event_rivals(tmp_path: Path) -> None:
    from multiprocessing import Pipe

    from swarmlearn.jobs import JobSettings, TrainingSpec
    from swarmlearn.jobs._messages import Done
    from swarmlearn.jobs._train import run
    from swarmlearn.registry import decide
    from swarmlearn.store import EventStore

    store = EventStore(tmp_path / "events.sqlite3")
    try:
        upto = store.submit(list(generate_swarm(agents=2, events_per_agent=400, seed=3))).result(30).durable_sequence
    finally:
        store.close()
    spec = TrainingSpec(
        db=tmp_path / "events.sqlite3", scope="", kind="lstm", upto=upto, horizon=1, max_epochs=1,
        settings=JobSettings.from_settings(Settings()), checkpoint=tmp_path / "grid.pt",
        config={"hidden_size": 8, "num_layers": 1, "training": {"window": 10, "grid_s": 120}},
    )  # fmt: skip
    ours, _ = Pipe()
    on_grid = run(ours, spec)
    # The online aggregate forecasts events, not buckets: the bar is the naive forecast of the buckets.
    assert isinstance(on_grid, Done) and set(on_grid.result["comparisons"]) == {"naive"}
    # A champion on another grid (here: none) cannot be compared, so nothing is promoted automatically.
    per_event = replace(spec, config={"hidden_size": 8, "num_layers": 1, "training": {"window": 10}})
    challenger = run(ours, replace(per_event, champion=tmp_path / "grid.pt", checkpoint=tmp_path / "e.pt"))
    assert isinstance(challenger, Done)
    comparisons = challenger.result["comparisons"]
    assert set(comparisons) == {"naive", "online", "champion"} and comparisons["champion"]["comparable"] is False
    assert "trained from scratch" in challenger.result["start"] and "grid_s 120.0" in challenger.result["start"]
    decision = decide(comparisons)
    assert not decision.promote and "not comparable with the champion" in decision.reason
    # Nor is a champion at another horizon, even of the same kind and grid.
    longer = run(ours, replace(per_event, horizon=3, champion=tmp_path / "e.pt", checkpoint=tmp_path / "h.pt"))
    assert isinstance(longer, Done) and longer.result["comparisons"]["champion"] == {
        "comparable": False, "reason": "it forecasts 1 steps of one event, this model 3",
    }  # fmt: skip


def test_a_tie_with_the_champion_is_not_promoted_and_the_champion_is_judged_by_its_own_scaler(tmp_path: Path) -> None:
    """A champion trained on other data, with a global scaler fitted there: through its own checkpoint
    it forecasts the challenger's test windows exactly as its ``predict`` does, so a challenger that
    forecasts the same ties it (ratio 1, p 1) and is not promoted. Scored with the challenger's scaler
    instead (the old way), the same weights would have forecast something else."""
    import numpy as np

    from swarmlearn.jobs._train import judge
    from swarmlearn.models import config_from_dict
    from swarmlearn.registry import decide
    from swarmlearn.training import (
        Replay,
        Scaling,
        Split,
        StreamDataLoader,
        TrainedModel,
        TrainingConfig,
        TrainingPipeline,
        forecast,
    )

    config = TrainingConfig(
        window=12,
        horizon=2,
        max_epochs=1,
        scaling=Scaling.GLOBAL,
        models=(config_from_dict("lstm", {"hidden_size": 8}),),
    )
    TrainingPipeline(config).run(list(generate_swarm(agents=2, events_per_agent=300, seed=9))).best.save(
        tmp_path / "m.pt"
    )
    champion = TrainedModel.load(tmp_path / "m.pt")
    events = list(generate_swarm(agents=2, events_per_agent=300, seed=3))
    data = StreamDataLoader(events, config)
    predicted = champion.predict(data.windows[data.starts[Split.TEST]][:, : data.window])
    _, comparisons = judge(data, Replay(events), config, data.targets(Split.TEST), predicted, champion)
    assert comparisons["champion"]["ratio"] == pytest.approx(1.0) and comparisons["champion"]["p_value"] == 1.0
    assert not decide(comparisons).promote
    assert not np.allclose(forecast(champion.model, data, Split.TEST, 64), predicted)
