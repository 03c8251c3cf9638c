"""Tuning trials on the local process pool against a local Ray cluster with the same CPUs.

    python benchmarks/ray_tuning.py [--trials 8] [--concurrency 2] [--epochs 3] [--repeat 2]

An 8-trial random search (the LSTM, a small space: hidden size, learning rate, window) over a
synthetic swarm's events in a real SQLite store, run by the ``Tuner`` a tuning job uses, with
``concurrency`` trials at once, each search in a fresh process as a tuning job's process runs it:
once with the trials in its spawned process pool (``make_executor``), once as Ray tasks on a
cluster of ``concurrency`` CPUs that this script started (``make_ray_executor``: the process joins
the cluster, reads the events once and ships them with ``ray.put``). A fresh process is a fresh Ray
driver, so its workers start cold, as a tuning job's do. Both runs see the same trials (same seed).
"search" counts from the executor's creation to the result; "job process" is the whole process
(imports of torch and Ax included). The runs alternate, ``--repeat`` times each. The cluster's own
start is timed apart, since a sidecar joins a running one. Last, the round trip of an empty task
with warm workers (``submit`` to result, 200 calls): the per-trial cost of the machinery alone.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from concurrent.futures import Executor, ProcessPoolExecutor
from pathlib import Path
from typing import Any

from swarmlearn.store import EventStore
from swarmlearn.synthetic import generate_swarm
from swarmlearn.tuning import Tuner, TunerConfig, parse_space

SPACE = json.dumps(
    [
        {"name": "hidden_size", "type": "choice", "values": [16, 32]},
        {"name": "learning_rate", "type": "range", "bounds": [1e-3, 1e-2], "log": True},
        {"name": "window", "type": "choice", "values": [20, 40]},
    ]
)


def nothing() -> None:
    return None


def search(args: argparse.Namespace) -> None:
    """One search in this process, as a tuning job's process runs it; prints its timings as JSON."""
    from swarmlearn.training import ReplaySource
    from swarmlearn.tuning import TrialSetup
    from swarmlearn.tuning._trial import make_executor, make_ray_executor, train_trial

    quiet()
    spec = json.loads(args.one)
    setup = TrialSetup(ReplaySource(Path(spec["db"]), spec["scope"], spec["upto"]), spec["kind"], spec["horizon"])
    config = TunerConfig(method="random", max_trials=args.trials, concurrency=args.concurrency, max_epochs=args.epochs)
    started = time.perf_counter()
    executor: Executor
    if spec["address"]:
        executor = make_ray_executor(setup, address=spec["address"], num_cpus=1, num_gpus=0)
    else:
        executor = make_executor(setup, args.concurrency, multiprocessing.get_context("spawn").Event())
    ready = time.perf_counter() - started
    with executor:
        result = Tuner(parse_space("lstm", SPACE), config, train_trial, executor, Path(spec["directory"])).run()
    total = time.perf_counter() - started
    assert sum(r.status == "completed" for r in result.trials) == args.trials, [r.error for r in result.trials]
    print(json.dumps({"ready": ready, "total": total}))


def in_a_process(args: argparse.Namespace, spec: dict[str, Any]) -> tuple[float, float]:
    command = [sys.executable, __file__, "--one", json.dumps(spec), "--trials", str(args.trials)]
    command += ["--concurrency", str(args.concurrency), "--epochs", str(args.epochs)]
    started = time.perf_counter()
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    process = time.perf_counter() - started
    timings = json.loads(out.stdout.strip().splitlines()[-1])
    return float(timings["total"]), process


def round_trip(executor: Executor, calls: int = 200) -> float:
    executor.submit(nothing).result()  # warm
    started = time.perf_counter()
    for _ in range(calls):
        executor.submit(nothing).result()
    return (time.perf_counter() - started) / calls * 1e3


def quiet() -> None:
    warnings.filterwarnings("ignore")
    for noisy in ("ax", "botorch", "gpytorch", "linear_operator"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--events-per-agent", type=int, default=600)
    parser.add_argument("--one", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        return search(args)
    quiet()

    import ray

    from swarmlearn.tuning._ray import RayExecutor

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        store = EventStore(tmp / "events.sqlite3")
        try:
            swarm = list(generate_swarm(agents=4, events_per_agent=args.events_per_agent, seed=7))
            upto = store.submit(swarm).result(60).durable_sequence
        finally:
            store.close()
        spec = {"db": str(tmp / "events.sqlite3"), "scope": "", "kind": "lstm", "upto": upto, "horizon": 1}
        began = time.perf_counter()
        ray.init(num_cpus=args.concurrency, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
        cluster_start = time.perf_counter() - began
        address = ray.get_runtime_context().gcs_address

        runs: dict[str, list[tuple[float, float]]] = {"local pool": [], "Ray": []}
        for i in range(args.repeat):
            for name, joins in (("local pool", ""), ("Ray", address)):
                one = {**spec, "address": joins, "directory": str(tmp / f"{name}-{i}")}
                runs[name].append(in_a_process(args, one))
                print(
                    f"{name} run {i}: search {runs[name][-1][0]:.1f} s, process {runs[name][-1][1]:.1f} s", flush=True
                )
        with ProcessPoolExecutor(args.concurrency, mp_context=multiprocessing.get_context("spawn")) as pool:
            pool_trip = round_trip(pool)
        with RayExecutor(address) as remote:
            ray_trip = round_trip(remote)
        ray.shutdown()

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    load = Path("/proc/loadavg").read_text().split()[0]
    print(
        f"\n{platform.processor() or platform.machine()}, {multiprocessing.cpu_count()} CPUs, "
        f"commit {commit}, load average {load} at the end; {args.trials} trials, concurrency "
        f"{args.concurrency}, {args.epochs} epochs, {4 * args.events_per_agent} events\n"
    )
    print("| trials on | search s, each run | median | s per trial | against the pool | job process s (median) |")
    print("|---|---|---|---|---|---|")
    base = statistics.median(total for total, _ in runs["local pool"])
    for name, values in runs.items():
        total = statistics.median(t for t, _ in values)
        process = statistics.median(p for _, p in values)
        overhead = "" if name == "local pool" else f"{total - base:+.1f} s ({(total / base - 1) * 100:+.0f} %)"
        each = ", ".join(f"{t:.1f}" for t, _ in values)
        print(f"| {name} | {each} | {total:.1f} | {total / args.trials:.2f} | {overhead} | {process:.1f} |")
    print(f"\nRay cluster start ({args.concurrency} CPUs, in process): {cluster_start:.1f} s")
    print(f"empty task round trip, warm workers: process pool {pool_trip:.2f} ms, Ray {ray_trip:.2f} ms")


if __name__ == "__main__":
    main()
