"""A training job's process: read the scope's events from the log, train one model, judge it.

Started by ``JobManager`` as ``python -c`` calling ``main`` with FD SPEC_JSON (FD: one end of a
socket pair, ``multiprocessing.connection`` framing). Torch lives here only: the daemon never
imports it, and ``torch.set_num_threads`` keeps the job to ``threads`` cores so ingest keeps one.

What it does, in order: read the committed events of the scope (one agent's, or every agent's for
the global scope ``""``) up to the durable sequence the daemon gave it; build the windows
(``StreamDataLoader``); train the kind asked for, warm-started from the scope's champion of the
same kind and shape when there is one; evaluate on the test split the model, the naive forecast, the
online baselines (what Predict would have answered from them at each test window) and the current
champion (on the same windows when its shape allows, else on its own windows of the same events and
period); write the checkpoint; and report. The daemon registers the version and
decides the promotion (``registry.decide``): the registry has one writer.

With ``ray_address`` set (the spec's ``ray``), the same ``train`` runs as one Ray task
(``run_on_ray``): this process reads the events and the champion's checkpoint and ships them, passes
the task's progress on, and writes the checkpoint it sends back, so the daemon sees no difference.

Messages to the daemon: ``("progress", epoch, max_epochs, train_loss, val_loss)`` per epoch, then
one of ``("done", result)``, ``("cancelled",)``, ``("failed", reason)``. From the daemon:
``("cancel",)``, checked before every optimizer step.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import queue
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
import torch

from swarmlearn.models import config_from_dict, config_to_dict, write_checkpoint_bytes
from swarmlearn.online import TARGETS
from swarmlearn.registry._champions import residual_quantiles
from swarmlearn.store import open_reader, read_events
from swarmlearn.training import (
    NotEnoughData,
    Progress,
    Split,
    StreamDataLoader,
    TrainedModel,
    TrainingCancelled,
    TrainingConfig,
    TrainingPipeline,
    evaluate,
    forecast,
)
from swarmlearn.tuning._ray import ClusterUnavailable

_READ_CHUNK = 50_000
_POLL_S = 0.2
_TRAINING_KEYS = frozenset(
    {"window", "grid_s", "batch_size", "max_steps", "patience", "learning_rate", "weight_decay", "seed"}
)


def scope_events(db: Path, scope: str, upto: int) -> list[Any]:
    """The scope's committed events up to ``upto`` (every agent's for the swarm's scope ``""``)."""
    conn = open_reader(db)
    try:
        events, last = [], 0
        while True:
            chunk = read_events(conn, after_seq=last, upto=upto, limit=_READ_CHUNK, agent_id=scope or None)
            events += [event for _, event in chunk]
            if len(chunk) < _READ_CHUNK:
                return events
            last = chunk[-1][0]
    finally:
        conn.close()


def training_config(spec: Mapping[str, Any]) -> TrainingConfig:
    """The job's TrainingConfig: the model kind with the spec's overrides (a ValueError names a bad one)."""
    overrides = dict(spec.get("config") or {})
    training = overrides.pop("training", {}) or {}
    unknown = set(training) - _TRAINING_KEYS
    if unknown:
        raise ValueError(f"config_json.training: unknown setting(s) {sorted(unknown)}; known: {sorted(_TRAINING_KEYS)}")
    model = config_from_dict(spec["kind"], overrides)
    values: dict[str, Any] = {"models": (model,), "horizon": spec["horizon"], **training}
    if spec.get("max_epochs"):
        values["max_epochs"] = spec["max_epochs"]
    return TrainingConfig(**values)


def run(channel: Connection, spec: Mapping[str, Any]) -> tuple[Any, ...]:
    if (spec.get("ray") or {}).get("address"):
        return run_on_ray(channel, spec)
    events = scope_events(Path(spec["db"]), spec["scope"], spec["upto"])

    def should_stop() -> bool:
        while channel.poll(0):
            if channel.recv()[0] == "cancel":
                return True
        return False

    return ("done", train(spec, events, channel.send, should_stop))


def train(
    spec: Mapping[str, Any],
    events: list[Any],
    send: Callable[[tuple[Any, ...]], object],
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Train, judge and save the job's model (``spec["checkpoint"]``); ``send`` gets the progress
    messages. Returns the result the daemon registers."""
    torch.set_num_threads(max(1, int(spec.get("threads", 1))))
    config = training_config(spec)
    data = StreamDataLoader(events, config)
    champion = TrainedModel.load(spec["champion"]) if spec.get("champion") else None
    warm = None
    if (
        champion is not None
        and champion.kind == spec["kind"]
        and (champion.window, champion.horizon)
        == (
            data.window,
            data.horizon,
        )
    ):
        warm = champion.state_dict()

    def progress(p: Progress) -> None:
        send(("progress", p.epoch, p.max_epochs, p.train_loss, p.val_loss))

    report = TrainingPipeline(config).train(
        data, config.models[0], progress=progress, should_stop=should_stop, initial_state=warm
    )
    rivals = {"naive": _flat(_evaluation(data, data.naive(Split.TEST), config))}
    if config.grid_s is None:
        # The online baselines forecast events, not a grid's buckets: on a grid there is no like
        # for like with them, and the naive forecast of the buckets is the bar.
        rivals["online"] = _flat(_evaluation(data, online_forecasts(events, data), config))
    if champion is not None and champion.grid_s != config.grid_s:
        # Steps of another length: no comparison, so no automatic promotion (an operator may promote).
        rivals["champion"] = {}
    elif champion is not None:
        rivals["champion"] = _champion_metrics(champion, events, data, config)
    # Residuals on the test split, per step and target: Predict's intervals when this model serves.
    truth = data.targets(Split.TEST)
    predicted = forecast(report.model.model, data, Split.TEST, config.eval_batch_size)
    report.model.metadata["residual_quantiles"] = residual_quantiles(truth - predicted)
    path = Path(spec["checkpoint"])
    path.parent.mkdir(parents=True, exist_ok=True)
    report.model.save(path)
    return {
            "checkpoint": str(path),
            "metrics": _flat(report.test),
            "rivals": rivals,
            "config": {"model": {"kind": report.kind, **config_to_dict(config.models[0])}, "window": data.window,
                       "horizon": data.horizon, "warm_start": warm is not None,
                       "training": {key: getattr(config, key) for key in sorted(_TRAINING_KEYS)},
                       "tuned_by": spec.get("tuned_by", "")},
            "epochs": report.training.epochs,
            "windows": {split.name.lower(): len(data.starts[split]) for split in Split},
            "seconds": report.training.seconds,
    }  # fmt: skip


def run_on_ray(channel: Connection, spec: Mapping[str, Any]) -> tuple[Any, ...]:
    """The training as one Ray task (a streaming generator: its progress, then its result) on the
    cluster at ``spec["ray"]["address"]``. The events are read here and shipped with the task, the
    champion's checkpoint travels as bytes, and the new checkpoint comes back as bytes to be
    written here, where the registry is. A cancel cancels the task; its worker dying runs it once
    more."""
    import ray

    from swarmlearn.tuning._ray import connect

    resources = spec["ray"]
    connect(resources["address"])
    events = scope_events(Path(spec["db"]), spec["scope"], spec["upto"])
    champion = Path(spec["champion"]).read_bytes() if spec.get("champion") else b""
    task = ray.remote(remote_training).options(
        num_returns="streaming", num_cpus=resources["num_cpus"], num_gpus=resources["num_gpus"], max_retries=1
    )
    threads = max(1, int(resources["num_cpus"]))
    try:
        stream: Any = task.remote({**spec, "threads": threads}, events, champion)  # an ObjectRefGenerator
    except Exception as exc:
        raise ClusterUnavailable(f"lost the Ray cluster at {resources['address']!r}: {exc}") from exc
    while True:
        while channel.poll(0):
            if channel.recv()[0] == "cancel":
                ray.cancel(stream, force=True)
                return ("cancelled",)
        if stream.is_finished():
            return ("failed", "the training task ended without a result")
        if not stream.next_ready():
            time.sleep(_POLL_S)
            continue
        message = ray.get(next(stream))  # raises what the task raised
        if message[0] == "progress":
            channel.send(message)
            continue
        result, checkpoint = message[1], message[2]
        path = Path(spec["checkpoint"])
        path.parent.mkdir(parents=True, exist_ok=True)
        write_checkpoint_bytes(path, checkpoint)
        return ("done", {**result, "checkpoint": str(path)})


def remote_training(spec: dict[str, Any], events: list[Any], champion: bytes) -> Iterator[tuple[Any, ...]]:
    """On a Ray worker: ``train`` in a thread of its own, its progress yielded as it comes, then
    ``("done", result, checkpoint bytes)``; the files it reads and writes are the worker's own."""
    messages: queue.Queue[tuple[Any, ...] | None] = queue.Queue()
    outcome: list[Any] = []
    with tempfile.TemporaryDirectory(prefix="swarmlearn-training-") as tmp:
        local = {**spec, "checkpoint": os.path.join(tmp, "model.pt"), "champion": ""}
        if champion:
            local["champion"] = os.path.join(tmp, "champion.pt")
            Path(local["champion"]).write_bytes(champion)

        def work() -> None:
            try:
                outcome.append(train(local, events, messages.put))
            except BaseException as exc:
                outcome.append(exc)
            finally:
                messages.put(None)

        worker = threading.Thread(target=work, name="swarmlearn-training", daemon=True)
        worker.start()
        while (message := messages.get()) is not None:
            yield message
        worker.join()
        if isinstance(outcome[0], BaseException):
            raise outcome[0]
        yield ("done", outcome[0], Path(local["checkpoint"]).read_bytes())


def online_forecasts(events: list[Any], data: StreamDataLoader) -> Any:
    """What the online baselines would have answered at each test window: ``[W, H, T]``.

    An ``OnlineState`` per agent learns its events in the loader's row order (in time order; its
    outcomes are the rows) and, after a test window's last input row, forecasts H steps with the
    aggregate of that moment: Predict's answer then, on the same windows as the model, so the
    comparison is like for like. (Each agent starts from a fresh state: the swarm's prior, which the
    daemon's learners share within a partition, depends on the other agents' timing and is left out.)
    """
    from swarmlearn.online import OnlineState  # River: only when a job runs

    starts = data.starts[Split.TEST]
    after_row: dict[int, list[int]] = {}
    for i, start in enumerate(starts):
        after_row.setdefault(int(start) + data.window - 1, []).append(i)
    by_agent: dict[str, list[Any]] = {}
    for event in events:
        by_agent.setdefault(event.agent_id, []).append(event)
    predicted = np.zeros((len(starts), data.horizon, len(TARGETS)), dtype=np.float64)
    row = 0
    for agent in data.agents:
        state = OnlineState()
        for event in sorted(by_agent[agent], key=lambda e: e.timestamp):  # stable, as the loader's rows
            state.learn(event)
            if not event.event_type.is_outcome:  # learned, but not one of the loader's rows
                continue
            for i in after_row.get(row, ()):
                forecast = state.predict(agent, data.horizon)
                # A target the agent has not observed yet has no forecast: the loader carries its
                # last value (0 before any), so that is what stands in for one.
                last = data.features[row, list(data.target_channels)]
                predicted[i] = [
                    [forecast[t].points[h].value if forecast[t].points else last[j] for j, t in enumerate(TARGETS)]
                    for h in range(data.horizon)
                ]
            row += 1
    return predicted


def _evaluation(data: StreamDataLoader, predicted: Any, config: TrainingConfig) -> Any:
    return evaluate(
        data.targets(Split.TEST), predicted, targets=TARGETS, naive_scale=data.naive_scale, thresholds=config.thresholds
    )


def _champion_metrics(
    champion: TrainedModel, events: list[Any], data: StreamDataLoader, config: TrainingConfig
) -> dict[str, float]:
    if (champion.window, champion.horizon) != (data.window, data.horizon):
        # Its own windows of the same events; the split fractions put its test windows in the same period.
        own = dataclasses.replace(config, window=champion.window, horizon=champion.horizon)
        data = StreamDataLoader(events, own)
    return _flat(_evaluation(data, forecast(champion.model, data, Split.TEST, config.eval_batch_size), config))


def _flat(evaluation: Any) -> dict[str, float]:
    return {key: float(value) for key, value in evaluation.flat().items() if math.isfinite(float(value))}


def main() -> None:
    """Command-line entry: ``FD SPEC_JSON``."""
    fd, spec_json = sys.argv[1:3]
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the daemon cancels; a Ctrl-C to the group must not
    channel = Connection(int(fd))
    try:
        result = run(channel, json.loads(spec_json))
    except TrainingCancelled:
        result = ("cancelled",)
    except (NotEnoughData, ValueError, ClusterUnavailable) as exc:
        result = ("failed", str(exc))
    except Exception:
        result = ("failed", traceback.format_exc())
    with contextlib.suppress(OSError):  # the daemon is gone
        channel.send(result)
