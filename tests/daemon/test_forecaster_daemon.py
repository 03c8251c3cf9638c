"""The forecaster process inside a real daemon: no torch and no histories until a champion exists."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import grpc

from swarmlearn.config import Settings
from swarmlearn.importer import event_to_proto
from swarmlearn.models import LSTMConfig
from swarmlearn.server import DaemonServer
from swarmlearn.synthetic import generate_swarm
from swarmlearn.training import TrainingConfig, TrainingPipeline
from swarmlearn_client.v1 import agents_pb2, service_pb2_grpc
from tests.daemon.rpc import caught_up, ingest


def maps(pid: int, library: str) -> bool:
    """Whether the process has ``library`` mapped (what importing torch, or River, does)."""
    return library in Path(f"/proc/{pid}/maps").read_text()


async def test_torch_and_histories_come_with_the_first_champion(tmp_path: Path) -> None:
    """Without a champion the forecaster process never imports torch and keeps no agent; once one is
    promoted, agents whose events all came before it get its forecasts without a new event (their
    histories are read from the log)."""
    events = list(generate_swarm(agents=3, events_per_agent=300, seed=4))
    server = DaemonServer(Settings(listen="127.0.0.1:0", metrics_listen="", data_dir=tmp_path / "data"))
    await server.start()
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = service_pb2_grpc.SwarmLearnStub(channel)
            await ingest(stub, [event_to_proto(e) for e in events])
            await caught_up(server)
            answer = await stub.Predict(agents_pb2.PredictRequest(agent_id="planner"))
            assert answer.forecasts[0].model_kind.startswith("online:")
            forecaster = server.online.forecaster
            assert forecaster is not None and forecaster._process is not None
            pid = forecaster._process.pid
            assert forecaster.agents == 0 and not maps(pid, "libtorch")
            # Nor River, which only the baselines and prompts roles learn with (110 MiB).
            baselines = server.online.shards[0]._process
            assert baselines is not None and maps(baselines.pid, "_river_rust") and not maps(pid, "_river_rust")

            config = TrainingConfig(models=(LSTMConfig(hidden_size=16, num_layers=1),), max_epochs=1, window=20)
            model = TrainingPipeline(config).run(events).best
            registry = server.registry
            path = registry.root / "swarm-lstm-1.pt"
            model.save(path)
            registry.register("", model.kind, 1, path, metrics=model.metrics, config={})
            registry.promote("", model.kind, 1)
            deadline = time.monotonic() + 30
            while (answer := await stub.Predict(agents_pb2.PredictRequest(agent_id="planner"))).forecasts[
                0
            ].model_kind != "torch:lstm":
                assert time.monotonic() < deadline, "the champion never answered for an agent of the log"
                await asyncio.sleep(0.1)
            assert answer.forecasts[0].model_version == "lstm-v1"
            assert server.store.durable_sequence == len(events)  # no event since the promotion
            assert maps(pid, "libtorch") and forecaster._process.pid == pid
    finally:
        await server.stop()
