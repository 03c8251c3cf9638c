"""StartTraining's bounds, on a real daemon: a request past one is refused before any job is made."""

from __future__ import annotations

import json

import grpc
import pytest

from swarmlearn_client.v1 import jobs_pb2, service_pb2_grpc


def training(**settings: object) -> str:
    return json.dumps({"training": settings})


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"max_epochs": 10_001}, "max_epochs"),
        ({"config_json": json.dumps({"pad": "x" * 65_536})}, "config_json"),
        ({"config_json": json.dumps({"training": [50]})}, "config_json.training"),
        ({"config_json": training(window=1)}, "config_json.training.window"),
        ({"config_json": training(fine_tune="yes")}, "config_json.training.fine_tune"),
        ({"config_json": training(fine_tune_lr_scale=2)}, "config_json.training.fine_tune_lr_scale"),
        ({"config_json": training(window=10_001)}, "config_json.training.window"),
        ({"config_json": training(window=50.5)}, "config_json.training.window"),
        ({"config_json": training(window=None)}, "config_json.training.window"),
        ({"config_json": training(batch_size=0)}, "config_json.training.batch_size"),
        ({"config_json": training(batch_size=65_537)}, "config_json.training.batch_size"),
        ({"config_json": training(batch_size=True)}, "config_json.training.batch_size"),
        ({"config_json": training(max_steps=0)}, "config_json.training.max_steps"),
        ({"config_json": training(patience=0)}, "config_json.training.patience"),
        ({"config_json": training(learning_rate=0)}, "config_json.training.learning_rate"),
        ({"config_json": training(learning_rate=1.5)}, "config_json.training.learning_rate"),
        ({"config_json": training(learning_rate="fast")}, "config_json.training.learning_rate"),
        ({"config_json": '{"training": {"learning_rate": NaN}}'}, "config_json.training.learning_rate"),
        ({"config_json": training(weight_decay=-0.1)}, "config_json.training.weight_decay"),
        ({"config_json": training(weight_decay=1.01)}, "config_json.training.weight_decay"),
        ({"config_json": training(grid_s=0)}, "config_json.training.grid_s"),
        ({"config_json": '{"training": {"grid_s": Infinity}}'}, "config_json.training.grid_s"),
    ],
)
async def test_training_requests_past_a_bound_are_refused_naming_the_field(
    stub: service_pb2_grpc.SwarmLearnStub, request_fields: dict[str, object], field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.StartTraining(jobs_pb2.StartTrainingRequest(model_kind="lstm", **request_fields))  # type: ignore[arg-type]
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (refused.value.details() or "").startswith(f"{field}: ")
    assert not (await stub.ListJobs(jobs_pb2.ListJobsRequest())).jobs


async def test_training_requests_at_the_bounds_are_accepted(stub: service_pb2_grpc.SwarmLearnStub) -> None:
    at_the_bounds = [
        training(window=2, batch_size=1, max_steps=1, patience=1, learning_rate=1e-9, weight_decay=0, grid_s=1e-3),
        training(window=10_000, batch_size=65_536, max_steps=None, learning_rate=1, weight_decay=1, grid_s=None),
        json.dumps({"pad": "x" * (65_536 - len('{"pad": ""}'))}),
    ]
    for config_json in at_the_bounds:
        job = await stub.StartTraining(
            jobs_pb2.StartTrainingRequest(model_kind="lstm", max_epochs=10_000, config_json=config_json)
        )
        assert job.job_id.startswith("train-")
