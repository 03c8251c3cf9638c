"""A tuning job's process: the Ax experiment, its trials in a pool of worker processes or on Ray.

Started by ``JobManager`` like a training job (``python -c`` calling ``main`` with FD; its
``TuningSpec`` is the first message). Ax's candidate generation (seconds per BoTorch candidate on a
CPU) runs here, never on the daemon's event loop; trials run in ``concurrency`` spawned workers
(``tuning._trial``) that share the job's ``threads``, or, when ``ray_address`` is set, as Ray tasks
on that cluster (``tuning._ray``: the events are read here and shipped once; a cluster that cannot
be reached fails the job, not the daemon). The experiment lives in the job's directory
(``<data_dir>/tuning/<job id>``) and is saved after every trial, so a job the daemon stopped
resumes there when it starts again.

Messages (``_messages``): to the daemon a ``TrialDone`` after every trial's result, then one of
``Done``, ``Paused``, ``Cancelled``, ``JobFailed``; from the daemon ``Cancel`` (end it; its running
trials fail) or ``Stop`` (the daemon is stopping; the experiment is kept to resume: ``Paused``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import multiprocessing
import signal
import sys
import traceback
from concurrent.futures import Executor
from multiprocessing.connection import Connection
from typing import Any

from swarmlearn.jobs._messages import Cancel, Cancelled, Done, JobFailed, Outcome, Paused, Stop, TrialDone
from swarmlearn.jobs._spec import TuningSpec, replay_source
from swarmlearn.tuning import (
    ClusterUnavailable,
    Method,
    TrialSetup,
    Tuner,
    TunerConfig,
    TuningCancelled,
    TuningProgress,
    config_for,
    make_executor,
    make_ray_executor,
    parse_space,
    train_trial,
)


def trial_json(record: Any) -> dict[str, Any]:
    return {
        "index": record.index,
        "status": record.status,
        "value": record.value if math.isfinite(record.value) else None,
        "epochs": record.epochs,
        "params": record.params,
        "error": record.error,
    }


def run(channel: Connection, spec: TuningSpec) -> Outcome:
    request, settings = spec.request, spec.settings
    space = parse_space(spec.kind, json.dumps(request.space))
    config = TunerConfig(
        method=Method(request.method),
        max_trials=request.max_trials,
        concurrency=request.concurrency,
        max_epochs=settings.tuning_max_epochs,
        grid_points=settings.tuning_grid_points,
        max_grid=settings.tuning_max_grid,
        objective=request.objective,
    )
    setup = TrialSetup(replay_source(spec), spec.kind, request.horizon, request.objective)
    context = multiprocessing.get_context("spawn")
    cancel = context.Event()
    ending: list[Cancel | Stop] = []

    def should_stop() -> bool:
        while channel.poll(0):
            message = channel.recv()
            if isinstance(message, Cancel | Stop):
                ending.append(message)
        if ending:
            cancel.set()  # running trials stop at their next optimizer step
        return bool(ending)

    def progress(p: TuningProgress) -> None:
        best = p.best_value if math.isfinite(p.best_value) else None
        channel.send(TrialDone(p.trials_done, p.total_trials, best, trial_json(p.record)))

    executor: Executor
    if settings.ray_address:  # cancelling the tuner's futures cancels their Ray tasks
        executor = make_ray_executor(
            setup, address=settings.ray_address, num_cpus=settings.ray_num_cpus, num_gpus=settings.ray_num_gpus
        )
    else:
        threads = max(1, settings.threads // config.concurrency)
        executor = make_executor(dataclasses.replace(setup, threads=threads), config.concurrency, cancel)
    with executor:
        tuner = Tuner(
            space, config, train_trial, executor, spec.directory, on_progress=progress, should_stop=should_stop
        )
        try:
            result = tuner.run()
        except TuningCancelled:
            if isinstance(ending[0], Stop):
                return Paused()
            tuner.abandon_running()
            return Cancelled()
    return Done(
        {
            "best_params": result.best_params,
            "best_value": result.best_value,
            "best_trial": result.best_trial,
            "config": config_for(spec.kind, result.best_params),
            "trials": [trial_json(r) for r in result.trials],
            "total_epochs": result.total_epochs,
        },
    )


def main() -> None:
    """Command-line entry: ``FD``; the spec is the first message."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the daemon cancels; a Ctrl-C to the group must not
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s swarmlearn tuning job: %(message)s")
    for noisy in ("ax", "botorch", "gpytorch", "linear_operator"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    channel = Connection(int(sys.argv[1]))
    result: Outcome
    try:
        spec = channel.recv()
        assert isinstance(spec, TuningSpec), spec
        result = run(channel, spec)
    except (ValueError, ClusterUnavailable) as exc:
        result = JobFailed(str(exc))
    except Exception:
        result = JobFailed(traceback.format_exc())
    with contextlib.suppress(OSError):  # the daemon is gone
        channel.send(result)
