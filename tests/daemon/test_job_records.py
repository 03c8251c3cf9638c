"""Job records in SQLite: a row per job written in place, the import of an earlier release's
jobs.json, and typed requests and specs that survive their round trips."""

from __future__ import annotations

import contextlib
import json
import math
import pickle
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc

from swarmlearn.config import Settings
from swarmlearn.jobs import (
    Job,
    JobRecords,
    JobSettings,
    JobState,
    TrainingRequest,
    TrainingSpec,
    TuningRequest,
    TuningSpec,
)
from swarmlearn.server import DaemonServer
from swarmlearn_client.v1 import jobs_pb2, service_pb2_grpc

Stub = service_pb2_grpc.SwarmLearnStub
SPACE = [{"name": "hidden_size", "type": "choice", "values": [8, 16]}]


def legacy(job_id: str, kind: str, state: str, request: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A record as jobs.json held it (the earlier release's ``Job.to_json``)."""
    return {
        "job_id": job_id, "kind": kind, "scope": "", "model_kind": "lstm", "state": state,
        "created_at": 1_700_000_000.0, "started_at": None, "finished_at": None, "epoch": 0, "total_epochs": 0,
        "train_loss": 0.0, "val_loss": 0.0, "metrics": {}, "model_version": "", "error": "", "note": "",
        "request": request, "trials_done": 0, "total_trials": 0, "best_objective": None, "trials": [], "config": {},
        **fields,
    }  # fmt: skip


def write_legacy(data_dir: Path, records: list[dict[str, Any]]) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "jobs.json").write_text(json.dumps({"format": 1, "jobs": records}))


def daemon(data_dir: Path) -> DaemonServer:
    return DaemonServer(Settings(listen="127.0.0.1:0", metrics_listen="", data_dir=data_dir, grace_period_s=2.0))


async def test_the_jobs_json_of_an_earlier_release_is_imported_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    trial = {"index": 0, "status": "completed", "value": 0.9, "epochs": 2, "params": {"hidden_size": 8}, "error": ""}
    write_legacy(data, [
        legacy("train-done", "training", "succeeded", {"max_epochs": 3, "horizon": 1, "config": {"hidden_size": 16}},
               created_at=1_700_000_001.0, started_at=1_700_000_002.0, finished_at=1_700_000_003.0, epoch=3,
               total_epochs=3, metrics={"latency_ms.mae": 1.5}, model_version="lstm-v1", note="promoted: 0.8"),
        legacy("train-cut", "training", "running", {"max_epochs": 0, "horizon": 1, "config": {}, "scheduled": "600"},
               created_at=1_700_000_004.0),
        legacy("tune-stopped", "tuning", "cancelled",
               {"method": "random", "max_trials": 4, "concurrency": 1, "space": SPACE, "objective": "val_mase",
                "horizon": 1, "upto": 600},
               created_at=1_700_000_005.0, trials_done=1, total_trials=4, best_objective=0.9, trials=[trial]),
    ])  # fmt: skip
    server = daemon(data)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = Stub(channel)
            listed = (await stub.ListJobs(jobs_pb2.ListJobsRequest())).jobs
            assert [j.job_id for j in listed] == ["tune-stopped", "train-cut", "train-done"]
            done, cut, tuned = listed[2], listed[1], listed[0]
            assert done.state == jobs_pb2.JOB_STATE_SUCCEEDED and done.model_version == "lstm-v1"
            assert dict(done.metrics) == {"latency_ms.mae": 1.5} and done.note == "promoted: 0.8"
            assert (done.progress.epoch, done.finished_time.seconds) == (3, 1_700_000_003)
            # A job that was running when the earlier release stopped: cut, as a restart cuts it.
            assert cut.state == jobs_pb2.JOB_STATE_FAILED and "daemon stopped" in cut.error
            assert tuned.state == jobs_pb2.JOB_STATE_CANCELLED and tuned.kind == jobs_pb2.JOB_KIND_TUNING
            assert [(t.index, t.objective, t.params_json) for t in tuned.trials] == [(0, 0.9, '{"hidden_size": 8}')]
    finally:
        await server.stop()
    assert not (data / "jobs.json").exists() and (data / "jobs.json.imported").exists()

    # Cut short between the import's commit and the rename: the next start imports again, and keeps
    # the records as they are now, not as the file had them.
    (data / "jobs.json.imported").rename(data / "jobs.json")
    server = daemon(data)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            again = await Stub(channel).GetJob(jobs_pb2.GetJobRequest(job_id="train-cut"))
    finally:
        await server.stop()
    assert again == cut
    assert not (data / "jobs.json").exists()


@contextlib.contextmanager
def records_db(data_dir: Path) -> Iterator[sqlite3.Connection]:
    with contextlib.closing(sqlite3.connect(data_dir / "jobs.sqlite3", isolation_level=None)) as db:
        yield db


def watch_writes(data_dir: Path) -> None:
    """Triggers in the job records that log every row written, and how."""
    with records_db(data_dir) as db:
        db.executescript("""
            CREATE TABLE touched (job_id TEXT, how TEXT);
            CREATE TRIGGER on_insert AFTER INSERT ON jobs BEGIN INSERT INTO touched VALUES (new.job_id, 'insert'); END;
            CREATE TRIGGER on_update AFTER UPDATE ON jobs BEGIN INSERT INTO touched VALUES (new.job_id, 'update'); END;
            CREATE TRIGGER on_delete AFTER DELETE ON jobs BEGIN INSERT INTO touched VALUES (old.job_id, 'delete'); END;
        """)


def touched(data_dir: Path) -> list[tuple[str, str]]:
    with records_db(data_dir) as db:
        return db.execute("SELECT job_id, how FROM touched ORDER BY rowid").fetchall()


async def test_a_submit_writes_one_row_however_many_jobs_are_kept(tmp_path: Path) -> None:
    """Issue 16: every submit rewrote jobs.json whole (forty large requests made it 40 MB). Now a
    submit inserts one row and a job's changes write its row alone; past 1,000 finished records,
    the oldest is deleted."""
    data = tmp_path / "data"
    request = {"max_epochs": 1, "horizon": 1, "config": {"pad": "x" * 1000}}
    write_legacy(data, [
        legacy(f"train-{i:04d}", "training", "succeeded", request, created_at=1_700_000_000.0 + i)
        for i in range(1000)
    ])  # fmt: skip
    records = JobRecords(data / "jobs.sqlite3")
    records.import_legacy(data)
    records.close()
    watch_writes(data)
    server = daemon(data)
    await server.start()
    try:
        assert touched(data) == []  # a start with no unfinished job writes nothing
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = Stub(channel)
            first = await stub.StartTraining(jobs_pb2.StartTrainingRequest(model_kind="lstm"))
            ended = [j async for j in stub.WatchJob(jobs_pb2.WatchJobRequest(job_id=first.job_id))][-1]
            assert ended.state == jobs_pb2.JOB_STATE_FAILED  # no events to learn from
            writes = touched(data)
            # One row inserted, then updated as the job ran and failed: no other row written.
            assert writes[0] == (first.job_id, "insert") and {job_id for job_id, _ in writes} == {first.job_id}
            # 1,001 finished records now: the next submit makes room.
            second = await stub.StartTraining(jobs_pb2.StartTrainingRequest(model_kind="lstm"))
            after = touched(data)[len(writes) :]
            assert after[:2] == [(second.job_id, "insert"), ("train-0000", "delete")]
    finally:
        await server.stop()
    assert {job_id for job_id, _ in touched(data)} == {first.job_id, second.job_id, "train-0000"}
    with records_db(data) as db:
        assert db.execute("SELECT count(*) FROM jobs").fetchone()[0] == 1001


def test_requests_and_results_round_trip_through_a_row(tmp_path: Path) -> None:
    training = Job(
        "train-a", "agent-7", "tcn", TrainingRequest(max_epochs=5, horizon=3, config={"training": {"window": 20}}),
        state=JobState.SUCCEEDED, epoch=5, train_loss=0.25, val_loss=math.inf, metrics={"latency_ms.mae": 2.0},
    )  # fmt: skip
    tuning = Job(
        "tune-b", "", "lstm", TuningRequest("hyperband", 9, 2, SPACE, "val_mse", upto=1234), total_trials=9,
        trials=[{"index": 0, "status": "failed", "value": None, "epochs": 1, "params": {}, "error": "boom"}],
    )  # fmt: skip
    records = JobRecords(tmp_path / "jobs.sqlite3")
    records.insert(training)
    records.insert(tuning)
    tuning.best_objective, tuning.config = 0.5, {"hidden_size": 8}
    records.update([tuning])
    records.close()
    reopened = JobRecords(tmp_path / "jobs.sqlite3")
    assert reopened.load() == [training, tuning]
    reopened.close()
    assert isinstance(tuning.request, TuningRequest) and tuning.kind == "tuning" and training.kind == "training"


def test_specs_travel_to_a_job_process_whole() -> None:
    settings = JobSettings.from_settings(Settings(ray_address="ray://head:10001", replay_recent_events=500))
    specs = [
        TrainingSpec(
            db=Path("/data/events.sqlite3"), scope="a", kind="lstm", upto=10, settings=settings, horizon=2,
            max_epochs=30, config={"hidden_size": 8}, checkpoint=Path("/data/models/a/lstm-v2.pt"),
            champion=Path("/data/models/a/lstm-v1.pt"), tuned_by="tune-b",
        ),
        TuningSpec(
            db=Path("/data/events.sqlite3"), scope="", kind="tcn", upto=10, settings=settings,
            request=TuningRequest("grid", 0, 1, SPACE, "val_mase", upto=10), directory=Path("/data/tuning/tune-c"),
        ),
    ]  # fmt: skip
    for spec in specs:
        assert pickle.loads(pickle.dumps(spec, protocol=5)) == spec  # as _channel.encode sends it
