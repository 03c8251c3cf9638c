"""A tuning trial: the real training loop on one configuration, judged on the validation split.

The tuning job's process runs trials in a pool of worker processes (``make_executor``), or as tasks
on a Ray cluster (``make_ray_executor``; hyperband's weights between rungs travel with the tasks,
as a worker may be on another machine), all sharing one ``TrialSetup``. Each worker gets the
scope's events once (``init_worker``: a local worker reads them from the daemon's SQLite,
read-only, up to the sequence the job was given; a Ray worker gets the copy the job's process read
and put in the cluster's object store) and keeps one ``StreamDataLoader`` per window length;
``train_trial`` builds the configuration's model, trains it with ``fit`` (early stopping on the validation loss,
at most ``request.epochs`` epochs), and returns the objective on the validation split: the geometric
mean over the targets of the validation MASE (``val_mase``) or MSE (``val_mse``). A geometric mean
ranks configurations the same whatever each target's unit, so no target's scale dominates; the
test split is never looked at, so the model later trained with the best configuration is judged
on data the search never saw.
"""

from __future__ import annotations

import dataclasses
import math
import multiprocessing
import os
import tempfile
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from swarmlearn._durable import write_durably
from swarmlearn.tuning._ray import RayExecutor
from swarmlearn.tuning._tuner import TrialRequest, TrialResult

if TYPE_CHECKING:
    from swarmlearn.training import Replay, ReplaySource


@dataclass(frozen=True, slots=True)
class TrialSetup:
    """What every trial of a search shares: the events it learns from, the model kind, the horizon,
    the objective, and torch's threads in each worker."""

    source: ReplaySource
    kind: str
    horizon: int = 1
    objective: str = "val_mase"
    """``val_mase`` or ``val_mse`` (``Objective``)."""
    threads: int = 1


_worker: dict[str, Any] = {}
"""This worker process's setup, events, loaders by window, and the cancel event."""


def make_executor(setup: TrialSetup, concurrency: int, cancel: Any) -> ProcessPoolExecutor:
    """``concurrency`` spawned workers, each reading the events once and sharing the cores evenly."""
    context = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(concurrency, mp_context=context, initializer=init_worker, initargs=(setup, cancel))


def make_ray_executor(setup: TrialSetup, *, address: str, num_cpus: float, num_gpus: float) -> RayExecutor:
    """Trials as Ray tasks at ``address``, each asking for ``num_cpus`` and ``num_gpus``; the events
    are read here, once, and shipped to the cluster (``ClusterUnavailable`` if it cannot be reached)."""
    replay = setup.source.read()
    threads = max(1, int(num_cpus))  # torch's threads: the CPUs the task declared
    return RayTrials(
        address,
        num_cpus=num_cpus,
        num_gpus=num_gpus,
        initializer=init_worker,
        initargs=(dataclasses.replace(setup, threads=threads), None),
        shipped=(replay,),
    )


class RayTrials(RayExecutor):
    """Hyperband's weights between rungs are files in the job's directory, on the job's machine, not
    the worker's: they travel with the task (``remote_trial``) and are written back here."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        (request,) = args
        weights = Path(request.resume_from).read_bytes() if request.resume_from else b""
        return self.submit_then(lambda out: _land(request, out), remote_trial, fn, request, weights)


def remote_trial(
    objective: Callable[[TrialRequest], TrialResult], request: TrialRequest, weights: bytes
) -> tuple[TrialResult, bytes]:
    """``objective`` on a Ray worker: the weights to resume from come as bytes, and the weights it
    ends with go back as bytes, through files of the worker's own."""
    with tempfile.TemporaryDirectory(prefix="swarmlearn-trial-") as tmp:
        resume = os.path.join(tmp, "resume.state") if weights else ""
        if resume:
            Path(resume).write_bytes(weights)
        save = os.path.join(tmp, "save.state") if request.save_to else ""
        result = objective(dataclasses.replace(request, resume_from=resume, save_to=save))
        return result, Path(save).read_bytes() if save and os.path.exists(save) else b""


def _land(request: TrialRequest, out: tuple[TrialResult, bytes]) -> TrialResult:
    result, weights = out
    if request.save_to and weights:
        write_durably(Path(request.save_to), weights)
    return result


def init_worker(setup: TrialSetup, cancel: Any = None, replay: Replay | None = None) -> None:
    """``replay``: given (a Ray worker), else read from the daemon's SQLite (a local worker), the
    same replay buffer as a training job of the scope reads."""
    import torch

    torch.set_num_threads(max(1, setup.threads))
    _worker.update(setup=setup, cancel=cancel, loaders={})
    _worker["replay"] = replay if replay is not None else setup.source.read()


def train_trial(request: TrialRequest) -> TrialResult:
    import torch

    from swarmlearn.models import ForecastShape, build_model
    from swarmlearn.names import TARGETS
    from swarmlearn.training import (
        Split,
        StreamDataLoader,
        TrainingConfig,
        evaluate,
        fit,
        forecast,
        resolve_device,
        seeded,
    )
    from swarmlearn.tuning._space import config_for

    setup: TrialSetup = _worker["setup"]
    overrides = config_for(setup.kind, request.params)
    config = TrainingConfig.for_job(setup.kind, setup.horizon, overrides, request.epochs)
    data = _worker["loaders"].get(config.window)
    if data is None:
        replay = _worker["replay"]
        data = _worker["loaders"][config.window] = StreamDataLoader(replay.events, config, runs=replay.runs)
    shape = ForecastShape(window=data.window, horizon=data.horizon, target_channels=data.target_channels)
    with seeded(config.seed, resolve_device(config.device)):
        model = build_model(config.models[0], shape)
    saved = torch.load(request.resume_from, weights_only=True) if request.resume_from else None
    # A rung's file holds the weights and what the training continues from (its optimizer and random
    # generators); a file written before holds the weights alone.
    initial, resume = (saved["model"], saved) if saved is not None and "optimizer" in saved else (saved, None)
    cancel = _worker["cancel"]
    result = fit(
        model, data, config, initial_state=initial, resume=resume, should_stop=cancel.is_set if cancel else None
    )
    if request.save_to:
        state = {"model": model.state_dict(), **(result.resume or {})}
        write_durably(Path(request.save_to), lambda temporary: torch.save(state, temporary))
    validation = evaluate(
        data.targets(Split.VALIDATION),
        forecast(model, data, Split.VALIDATION, config.eval_batch_size),
        targets=TARGETS,
        naive_scale=data.naive_scale,
        thresholds=config.thresholds,
    )
    metrics = {f"val.{key}": float(value) for key, value in validation.flat().items() if math.isfinite(float(value))}
    metrics["val_loss"] = result.best_val_loss
    if setup.objective == "val_mse":
        value = _geometric_mean([m.mse for m in validation.targets.values()])
    else:
        value = validation.geometric_mase()
    return TrialResult(float(value), result.epochs, metrics)


def _geometric_mean(values: list[float]) -> float:
    array = np.asarray(values, dtype=np.float64)
    if len(array) == 0 or not np.all(np.isfinite(array)) or np.any(array <= 0):
        return math.inf
    return float(np.exp(np.mean(np.log(array))))
