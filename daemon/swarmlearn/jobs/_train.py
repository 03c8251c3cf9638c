"""A training job's process: read the scope's events from the log, train one model, judge it.

Started by ``JobManager`` as ``python -c`` calling ``main`` with FD (one end of a socket pair,
``multiprocessing.connection`` framing), over which its ``TrainingSpec`` comes first. Torch lives
here only: the daemon never imports it, and ``torch.set_num_threads`` keeps the job to ``threads``
cores so ingest keeps one.

What it does, in order: read the scope's replay buffer (one agent's events, or every agent's for
the global scope ``""``; its latest committed events up to the durable sequence the daemon gave it,
and a sample of older ones: ``training.ReplaySource``, within the settings' replay buffer); build
the windows (``StreamDataLoader``); train the kind asked for, warm-started from the champion that serves the
scope when it is compatible (same kind, model config, window, horizon and grid: ``warm_start``),
else from scratch; compare on the test split, window by window, the model with the naive forecast,
the online aggregate (what Predict would have answered at each test window) and that champion
through its own checkpoint (``judge``: ratios of errors and a paired test); write the checkpoint;
and report. The daemon registers the version and decides the promotion (``registry.decide``): the
registry has one writer.

With ``ray_address`` set, the same ``train`` runs as one Ray task (``run_on_ray``): this process
reads the events and the champion's checkpoint and ships them, passes the task's progress on, and
writes the checkpoint it sends back, so the daemon sees no difference.

Messages (``_messages``): from the daemon the spec, then ``Cancel`` or ``Stop``, checked before every
optimizer step; to the daemon an ``EpochDone`` per epoch, then one of ``Done``, ``Cancelled``,
``JobFailed``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import queue
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
import torch

from swarmlearn.jobs._messages import Cancel, Cancelled, Done, EpochDone, JobFailed, Outcome, Stop
from swarmlearn.jobs._spec import TrainingSpec, replay_source
from swarmlearn.models import config_to_dict, write_checkpoint_bytes
from swarmlearn.names import TARGETS
from swarmlearn.training import (
    JOB_SETTINGS,
    NotEnoughData,
    Progress,
    Replay,
    Split,
    StreamDataLoader,
    TrainedModel,
    TrainingCancelled,
    TrainingConfig,
    TrainingPipeline,
    compare,
    evaluate,
    forecast,
    interval_coverage,
    interval_quantiles,
)
from swarmlearn.tuning import ClusterUnavailable

INTERVAL_CHECK = 0.8
"""The coverage whose share of test points inside is reported (``<target>.coverage80``)."""
_POLL_S = 0.2


def run(channel: Connection, spec: TrainingSpec) -> Outcome:
    if spec.settings.ray_address:
        return run_on_ray(channel, spec)
    replay = replay_source(spec).read()
    return Done(train(spec, replay, channel.send, lambda: _ended(channel)))


def _ended(channel: Connection) -> bool:
    """Whether the daemon said ``Cancel`` or ``Stop`` (both end a training job)."""
    while channel.poll(0):
        if isinstance(channel.recv(), Cancel | Stop):
            return True
    return False


def train(
    spec: TrainingSpec,
    replay: Replay,
    send: Callable[[EpochDone], object],
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Train, judge and save the job's model (``spec.checkpoint``); ``send`` gets the progress
    messages. Returns the result the daemon registers."""
    torch.set_num_threads(max(1, spec.settings.threads))
    config = TrainingConfig.for_job(spec.kind, spec.horizon, spec.config, spec.max_epochs)
    data = StreamDataLoader(replay.events, config, runs=replay.runs)
    champion = TrainedModel.load(spec.champion) if spec.champion is not None else None
    warm, start = warm_start(champion, config)
    if config.fine_tune:
        if warm is not None:
            config = config.fine_tuning()
            start += f"; fine-tuned: at most {config.max_epochs} epochs at learning rate {config.learning_rate:g}"
        else:
            start += "; fine-tuning was asked for, so this is a full training instead"

    def progress(p: Progress) -> None:
        send(EpochDone(p.epoch, p.max_epochs, p.train_loss, p.val_loss))

    report = TrainingPipeline(config).train(
        data, config.models[0], progress=progress, should_stop=should_stop, initial_state=warm
    )
    truth = data.targets(Split.TEST)
    predicted = forecast(report.model.model, data, Split.TEST, config.eval_batch_size)
    rivals, comparisons = judge(data, replay, config, truth, predicted, champion)
    # Predict's intervals when this model serves: quantiles of the validation split's residuals, each
    # divided by its window's scale (the gate's test split stays unseen), and their coverage on the test.
    calibration = forecast(report.model.model, data, Split.VALIDATION, config.eval_batch_size)
    quantiles = interval_quantiles(data.targets(Split.VALIDATION) - calibration, data.target_scales(Split.VALIDATION))
    report.model.metadata["interval_quantiles"] = quantiles
    coverage: dict[str, float] = {}
    if quantiles:
        covered = interval_coverage(truth, predicted, data.target_scales(Split.TEST), quantiles, INTERVAL_CHECK)
        coverage = {f"{t}.coverage80": float(c) for t, c in zip(TARGETS, covered, strict=True)}
    path = spec.checkpoint
    path.parent.mkdir(parents=True, exist_ok=True)
    report.model.save(path)
    return {
            "checkpoint": str(path),
            "metrics": {**_flat(report.test), **coverage},
            "rivals": rivals,
            "comparisons": comparisons,
            "config": {"model": {"kind": report.kind, **config_to_dict(config.models[0])}, "window": data.window,
                       "horizon": data.horizon, "warm_start": warm is not None,
                       "training": {key: getattr(config, key) for key in sorted(JOB_SETTINGS)},
                       "tuned_by": spec.tuned_by},
            "epochs": report.training.epochs,
            "start": start,
            "windows": {split.name.lower(): len(data.starts[split]) for split in Split},
            "replay": replay.summary(),
            "seconds": report.training.seconds,
    }  # fmt: skip


def warm_start(champion: TrainedModel | None, config: TrainingConfig) -> tuple[dict[str, torch.Tensor] | None, str]:
    """The champion's weights to start from, and how training started, for the job's note.

    Only a champion of the same kind, the same model config (every field: a tuned config of another
    size has other tensors), window, horizon and time grid is a start; anything else trains from
    scratch, and the note says what differed."""
    if champion is None:
        return None, "trained from scratch (no champion to start from)"
    model = config.models[0]
    differences = []
    if champion.kind != model.kind:
        differences.append(f"kind {champion.kind}, not {model.kind}")
    else:
        mine, theirs = config_to_dict(model), config_to_dict(champion.model.config)
        differences += [f"{name} {theirs[name]}, not {mine[name]}" for name in mine if mine[name] != theirs.get(name)]
    if champion.window != config.window:
        differences.append(f"window {champion.window}, not {config.window}")
    if champion.horizon != config.horizon:
        differences.append(f"horizon {champion.horizon}, not {config.horizon}")
    if champion.grid_s != config.grid_s:
        differences.append(f"grid_s {champion.grid_s}, not {config.grid_s}")
    if differences:
        return None, f"trained from scratch (the champion has {'; '.join(differences)})"
    return champion.state_dict(), "warm-started from the champion"


def run_on_ray(channel: Connection, spec: TrainingSpec) -> Outcome:
    """The training as one Ray task (a streaming generator: its progress, then its result) on the
    cluster at ``ray_address``. The events are read here and shipped with the task, the
    champion's checkpoint travels as bytes, and the new checkpoint comes back as bytes to be
    written here, where the registry is. A cancel cancels the task; its worker dying runs it once
    more."""
    import ray

    from swarmlearn.tuning import connect_ray

    settings = spec.settings
    connect_ray(settings.ray_address)
    replay = replay_source(spec).read()
    champion = spec.champion.read_bytes() if spec.champion is not None else b""
    task = ray.remote(remote_training).options(
        num_returns="streaming", num_cpus=settings.ray_num_cpus, num_gpus=settings.ray_num_gpus, max_retries=1
    )
    on_task = dataclasses.replace(
        spec, settings=dataclasses.replace(settings, threads=max(1, int(settings.ray_num_cpus)))
    )
    try:
        stream: Any = task.remote(on_task, replay, champion)  # an ObjectRefGenerator
    except Exception as exc:
        raise ClusterUnavailable(f"lost the Ray cluster at {settings.ray_address!r}: {exc}") from exc
    while True:
        if _ended(channel):
            ray.cancel(stream, force=True)
            return Cancelled()
        if stream.is_finished():
            return JobFailed("the training task ended without a result")
        if not stream.next_ready():
            time.sleep(_POLL_S)
            continue
        message = ray.get(next(stream))  # raises what the task raised
        if isinstance(message, EpochDone):
            channel.send(message)
            continue
        result, checkpoint = message
        path = spec.checkpoint
        path.parent.mkdir(parents=True, exist_ok=True)
        write_checkpoint_bytes(path, checkpoint)
        return Done({**result, "checkpoint": str(path)})


def remote_training(
    spec: TrainingSpec, replay: Replay, champion: bytes
) -> Iterator[EpochDone | tuple[dict[str, Any], bytes]]:
    """On a Ray worker: ``train`` in a thread of its own, its progress yielded as it comes, then
    ``(result, checkpoint bytes)``; the files it reads and writes are the worker's own."""
    messages: queue.Queue[EpochDone | None] = queue.Queue()
    outcome: list[Any] = []
    with tempfile.TemporaryDirectory(prefix="swarmlearn-training-") as tmp:
        local = dataclasses.replace(spec, checkpoint=Path(tmp) / "model.pt", champion=None)
        if champion:
            local = dataclasses.replace(local, champion=Path(tmp) / "champion.pt")
            Path(tmp, "champion.pt").write_bytes(champion)

        def work() -> None:
            try:
                outcome.append(train(local, replay, messages.put))
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
        yield outcome[0], local.checkpoint.read_bytes()


def online_forecasts(replay: Replay, data: StreamDataLoader) -> Any:
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
    by_agent: dict[str, list[tuple[int, Any]]] = {}
    for event, run in zip(replay.events, replay.runs, strict=True) if replay.runs else ((e, 0) for e in replay.events):
        by_agent.setdefault(event.agent_id, []).append((run, event))
    predicted = np.zeros((len(starts), data.horizon, len(TARGETS)), dtype=np.float64)
    row = 0
    for agent in data.agents:
        state = OnlineState()
        for _, event in sorted(by_agent[agent], key=lambda p: (p[0], p[1].timestamp)):  # stable, as the loader's rows
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


def judge(
    data: StreamDataLoader,
    replay: Replay,
    config: TrainingConfig,
    truth: Any,
    predicted: Any,
    champion: TrainedModel | None,
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, Any]]]:
    """The rivals' test metrics, and the challenger's comparison with each (``registry.decide``'s
    input): the naive forecast, the online aggregate (not on a time grid: it forecasts events, not
    buckets) and the champion that serves the scope now, each on the same test windows at the same
    horizon, the champion through its own checkpoint (its own scaler). A champion on another grid or
    at another horizon is not comparable: no automatic promotion over it."""
    forecasts = {"naive": data.naive(Split.TEST)}
    if config.grid_s is None:
        forecasts["online"] = online_forecasts(replay, data)
    rivals = {name: _flat(_evaluation(data, f, config)) for name, f in forecasts.items()}
    comparisons: dict[str, dict[str, Any]] = {
        name: compare(truth, predicted, f, naive_scale=data.naive_scale, horizon=data.horizon)._asdict()
        for name, f in forecasts.items()
    }
    if champion is not None:
        if champion.grid_s != config.grid_s or champion.horizon != data.horizon:
            steps = f"steps of {champion.grid_s:g} s" if champion.grid_s else "steps of one event"
            reason = f"it forecasts {champion.horizon} {steps}, this model {data.horizon}"
            if config.grid_s:
                reason += f" of {config.grid_s:g} s"
            comparisons["champion"] = {"comparable": False, "reason": reason}
        else:
            mine, theirs = champion_forecasts(champion, data, config.eval_batch_size)
            if not len(theirs):
                comparisons["champion"] = {"comparable": False, "reason": "no test window is long enough for it"}
            else:
                scores = evaluate(
                    truth[mine], theirs, targets=TARGETS, naive_scale=data.naive_scale, thresholds=config.thresholds
                )
                rivals["champion"] = _flat(scores)
                comparisons["champion"] = compare(
                    truth[mine], predicted[mine], theirs, naive_scale=data.naive_scale, horizon=data.horizon
                )._asdict()
    return rivals, comparisons


def champion_forecasts(champion: TrainedModel, data: StreamDataLoader, batch_size: int) -> tuple[Any, Any]:
    """The champion's forecasts of the test windows it can read (its window of rows ending at the same
    last input row, all of one agent's segment), through its own checkpoint and scaler: ``(which, [W', H, T])``."""
    ends = data.starts[Split.TEST] + data.window - 1  # [W]: each window's last input row
    firsts = ends - champion.window + 1
    owner = data.row_segment
    usable = (firsts >= 0) & (owner[np.maximum(firsts, 0)] == owner[ends])
    which = np.flatnonzero(usable)
    rows = firsts[which][:, None] + np.arange(champion.window)  # [W', L]
    parts = [champion.predict(data.features[rows[i : i + batch_size]]) for i in range(0, len(rows), batch_size)]
    return which, np.concatenate(parts) if parts else np.zeros((0, data.horizon, len(TARGETS)))


def _flat(evaluation: Any) -> dict[str, float]:
    return {key: float(value) for key, value in evaluation.flat().items() if math.isfinite(float(value))}


def main() -> None:
    """Command-line entry: ``FD``; the spec is the first message."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the daemon cancels; a Ctrl-C to the group must not
    channel = Connection(int(sys.argv[1]))
    result: Outcome
    try:
        spec = channel.recv()
        assert isinstance(spec, TrainingSpec), spec
        result = run(channel, spec)
    except TrainingCancelled:
        result = Cancelled()
    except (NotEnoughData, ValueError, ClusterUnavailable) as exc:
        result = JobFailed(str(exc))
    except Exception:
        result = JobFailed(traceback.format_exc())
    with contextlib.suppress(OSError):  # the daemon is gone
        channel.send(result)
