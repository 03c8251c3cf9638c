"""A small search of each method (bayesian, random, grid, hyperband) over a small LSTM on a synthetic swarm.

    python examples/hyperparameter_search.py

A few minutes on a 2-core CPU. The events go into a real event store, as the daemon keeps them; the
trials run the real training loop in two worker processes (as a tuning job's do) and are scored by
validation MASE, the geometric mean over the three targets. Each method prints its trials, best
first, and the configuration a training job would then use (``swarmlearn train --model-config``).
The daemon's ``StartTuning`` / ``swarmlearn tune`` do the same in a background job.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import tempfile
import time
import warnings
from pathlib import Path

from swarmlearn.store import EventStore
from swarmlearn.synthetic import generate_swarm
from swarmlearn.training import ReplaySource
from swarmlearn.tuning import TrialSetup, Tuner, TunerConfig, config_for, make_executor, parse_space, train_trial

SPACE = json.dumps(
    [
        {"name": "hidden_size", "type": "choice", "values": [16, 32]},
        {"name": "learning_rate", "type": "range", "bounds": [1e-3, 1e-2], "log": True},
        {"name": "window", "type": "choice", "values": [20, 40]},
    ]
)


def main() -> None:
    warnings.filterwarnings("ignore")  # Ax and BoTorch's deprecation and numerical warnings
    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as directory:
        tmp = Path(directory)
        store = EventStore(tmp / "events.sqlite3")
        try:
            upto = store.submit(list(generate_swarm(agents=3, events_per_agent=400, seed=3))).result(60)
        finally:
            store.close()
        setup = TrialSetup(ReplaySource(tmp / "events.sqlite3", "", upto.durable_sequence), "lstm")
        space = parse_space("lstm", SPACE)
        print(f"{upto.durable_sequence} events of 3 agents; search space: {space.to_json()}\n")
        cancel = multiprocessing.get_context("spawn").Event()
        with make_executor(setup, 2, cancel) as executor:
            for method, trials in (("random", 6), ("bayesian", 6), ("grid", 0), ("hyperband", 6)):
                config = TunerConfig(method=method, max_trials=trials, concurrency=2, max_epochs=4, grid_points=2)
                started = time.perf_counter()
                result = Tuner(space, config, train_trial, executor, tmp / method).run()
                print(f"{method}: {len(result.trials)} trials, {result.total_epochs} epochs, "
                      f"{time.perf_counter() - started:.0f} s")  # fmt: skip
                for trial in sorted(result.trials, key=lambda t: t.value):
                    params = ", ".join(
                        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items()
                    )
                    print(f"  trial {trial.index:2d} {trial.status:13s} val MASE {trial.value:7.4f}  {params}")
                print(f"  best: {json.dumps(config_for('lstm', result.best_params))}\n")


if __name__ == "__main__":
    main()
