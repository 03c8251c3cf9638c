"""Hyperparameter search: each method's overhead per trial, and best validation loss against trials on real series.

    python benchmarks/tuning.py [--trials 20] [--max-epochs 9] [--seeds 1,2] [--initial 5] [--concurrency 1]

Part 1, overhead. Each method runs 16 evaluations of an objective that costs nothing (a bowl over the
LSTM's learning rate and dropout, known optimum), through the same ``Tuner`` a tuning job uses, in
threads: the wall time per evaluation is what Ax and the tuner cost (candidate generation, the
experiment's JSON saved after every result). Grid: 4 x 4 points; hyperband: R = 9, 16 configurations.

Part 2, a real problem. Three AWS CloudWatch series of ``../shared/data/nab_aws_cloudwatch`` (5-minute
steps, about two weeks) become the three targets of one agent, step by step in time order:
``rds_cpu_utilization_cc0c53`` as latency, ``elb_request_count_8c0756`` as tokens/s, and
``ec2_cpu_utilization_5f5533`` / 100 as the success rate. The events go through a real SQLite store;
trials run ``tuning._trial.train_trial`` (the LSTM over ``REAL_SPACE``, horizon 1) in worker
processes, exactly as a tuning job runs them, scored by validation MASE (geometric mean over the
three targets). For bayesian, random and hyperband at the same number of configurations: the best
validation MASE after each finished trial, the epochs spent and the wall time.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import multiprocessing
import platform
import subprocess
import tempfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

from swarmlearn.events import Event, EventType
from swarmlearn.store import EventStore
from swarmlearn.training import ReplaySource
from swarmlearn.tuning import TrialRequest, TrialResult, TrialSetup, Tuner, TunerConfig, TuningProgress, parse_space

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "nab_aws_cloudwatch"
SERIES = ("rds_cpu_utilization_cc0c53.csv", "elb_request_count_8c0756.csv", "ec2_cpu_utilization_5f5533.csv")
REAL_SPACE = json.dumps(
    [
        {"name": "hidden_size", "type": "choice", "values": [16, 32, 64]},
        {"name": "num_layers", "type": "range", "bounds": [1, 2]},
        {"name": "dropout", "type": "range", "bounds": [0.1, 0.5]},
        {"name": "learning_rate", "type": "range", "bounds": [1e-4, 1e-2], "log": True},
        {"name": "window", "type": "choice", "values": [25, 50]},
    ]
)
"""The LSTM's default space with CPU-sized widths: the default's 256 and 512 units over 100-step windows
cost minutes per epoch on one core."""
BOWL = '[{"name": "learning_rate", "bounds": [1e-4, 1e-2], "log": true}, {"name": "dropout", "bounds": [0.1, 0.5]}]'


def bowl(request: TrialRequest) -> TrialResult:
    lr, dropout = request.params["learning_rate"], request.params["dropout"]
    if request.save_to:
        Path(request.save_to).write_text("{}")
    return TrialResult((math.log10(lr) + 2.3) ** 2 + 4 * (dropout - 0.42) ** 2 + 0.5 / request.budget, request.epochs)


def overhead(method: str, tmp: Path) -> tuple[int, float]:
    config = TunerConfig(method=method, max_trials=16 if method != "grid" else 0, max_epochs=9, grid_points=4, seed=1)
    calls = 0

    def counted(request: TrialRequest) -> TrialResult:
        nonlocal calls
        calls += 1
        return bowl(request)

    started = time.perf_counter()
    with ThreadPoolExecutor(1) as executor:
        Tuner(parse_space("lstm", BOWL), config, counted, executor, tmp / method).run()
    return calls, (time.perf_counter() - started) / calls


def nab_events() -> list[Event]:
    columns = []
    for name in SERIES:
        with open(DATA / name) as f:
            rows = sorted(csv.DictReader(f), key=lambda r: r["timestamp"])
        columns.append([(r["timestamp"], float(r["value"])) for r in rows])
    n = min(len(c) for c in columns)
    events = []
    for i in range(n):
        stamp = datetime.strptime(columns[0][i][0], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp()
        latency, tokens, cpu = (c[i][1] for c in columns)
        success = min(1.0, cpu / 100)
        events.append(Event("nab", f"nab-{i}", stamp, EventType.PERFORMANCE_UPDATE, latency, tokens, 0.0, cpu, success))
    return events


class Point(NamedTuple):
    trials: int
    best: float
    epochs: int
    seconds: float


def real_search(method: str, seed: int, setup: TrialSetup, args: argparse.Namespace, tmp: Path) -> list[Point]:
    """The best validation MASE at the full budget after each finished trial of one method."""
    from swarmlearn.tuning._trial import make_executor, train_trial

    config = TunerConfig(
        method=method, max_trials=args.trials, concurrency=args.concurrency, max_epochs=args.max_epochs,
        initialization_trials=args.initial, seed=seed,
    )  # fmt: skip
    curve: list[Point] = []
    started = time.perf_counter()
    cancel = multiprocessing.get_context("spawn").Event()
    with make_executor(setup, args.concurrency, cancel) as executor:
        tuner: Tuner | None = None

        def progress(p: TuningProgress) -> None:
            epochs = sum(r.epochs for r in tuner.trials.values()) if tuner else 0
            curve.append(Point(p.trials_done, p.best_value, epochs, time.perf_counter() - started))

        space = parse_space("lstm", REAL_SPACE)
        tuner = Tuner(space, config, train_trial, executor, tmp / f"real-{method}-{seed}", on_progress=progress)
        tuner.run()
    return curve


def best_after(curve: list[Point], trials: int) -> str:
    """The best full-budget value once ``trials`` configurations had finished ("-" before any)."""
    reached = [p.best for p in curve if p.trials <= trials and not math.isnan(p.best)]
    return f"{reached[-1]:.4f}" if reached else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20, help="configurations per method on the real problem")
    parser.add_argument("--max-epochs", type=int, default=9, help="each trial's full budget (hyperband's R)")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--methods", default="bayesian,random,hyperband")
    parser.add_argument("--seeds", default="1,2", help="one search per method and seed")
    parser.add_argument("--initial", type=int, default=5, help="bayesian: quasi-random trials before BoTorch")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")  # Ax and BoTorch's deprecation and numerical warnings
    logging.disable(logging.WARNING)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {commit}, {platform.processor() or platform.machine()}")
    with tempfile.TemporaryDirectory() as directory:
        tmp = Path(directory)
        print("\n## Overhead per evaluation (an objective that costs nothing)\n")
        print("| method | evaluations | ms per evaluation |")
        print("|---|---:|---:|")
        for method in ("random", "grid", "hyperband", "bayesian"):
            calls, seconds = overhead(method, tmp)
            print(f"| {method} | {calls} | {seconds * 1000:.0f} |", flush=True)

        db = tmp / "events.sqlite3"
        store = EventStore(db)
        try:
            upto = store.submit(nab_events()).result(120).durable_sequence
        finally:
            store.close()
        setup = TrialSetup(ReplaySource(db, "", upto), "lstm")
        print(f"\n## Real problem: {upto} events, LSTM, {args.trials} configurations, R = {args.max_epochs}\n")
        marks = sorted({5, 10, args.trials} - {m for m in (5, 10) if m >= args.trials})
        header = " | ".join(f"best after {m}" for m in marks)
        print(f"| method | seed | {header} | configurations | epochs spent | seconds |")
        print("|---|---:|" + "---:|" * len(marks) + "---:|---:|---:|")
        for method in args.methods.split(","):
            for seed in (int(s) for s in args.seeds.split(",")):
                curve = real_search(method, seed, setup, args, tmp)
                bests = " | ".join(best_after(curve, m) for m in marks)
                last = curve[-1]
                print(
                    f"| {method} | {seed} | {bests} | {last.trials} | {last.epochs} | {last.seconds:.0f} |", flush=True
                )


if __name__ == "__main__":
    main()
