"""A training job's time and peak memory against the length of the scope's log (issue 15, the replay buffer).

    python benchmarks/training_job.py [--events 100000,2000000] [--agents 20] [--kind lstm] [--max-steps 60]
                                      [--scope swarm|agent] [--cache DIR]

For each log length: a real event log (``EventStore``, the daemon's writer) of synthetic outcomes of
``--agents`` agents, one event a second each (lognormal latency and throughput with a daily cycle,
2 % failures), built once and kept under ``--cache``; then one training job as the daemon runs it
(``swarmlearn.jobs._train.run`` in a process of its own, with the spec the daemon would send: the
settings' replay buffer, 1 thread, ``--max-steps`` optimizer steps, the naive and online rivals). The
job's wall time, its peak resident memory (``ru_maxrss``), the events it read and the windows per
split are printed, one row per length. Flat in the log's length beyond the buffer is the target.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

BATCH = 50_000
SEED = 3


def build_log(path: Path, events: int, agents: int) -> int:
    """The log at ``path`` with ``events`` events (round-robin over ``agents``); returns its last sequence."""
    from swarmlearn.events import Event, EventType
    from swarmlearn.store import EventStore

    rng = np.random.default_rng(SEED)
    store = EventStore(path, synchronous="OFF", group_commit_max_events=BATCH)
    start = 1_700_000_000.0
    try:
        for first in range(0, events, BATCH):
            n = min(BATCH, events - first)
            index = np.arange(first, first + n)
            t = start + index // agents
            daily = 1 + 0.3 * np.sin(2 * np.pi * t / 86_400)
            latency = rng.lognormal(np.log(800), 0.35, n) * daily
            tps = rng.lognormal(np.log(40), 0.25, n) / daily
            ok = rng.random(n) > 0.02
            batch = [
                Event(f"agent-{i % agents:03d}", f"e{i}", float(ts), EventType.TASK_COMPLETED, float(lat), float(tp),
                      512.0, 30.0, 1.0 if good else 0.0)
                for i, ts, lat, tp, good in zip(index.tolist(), t.tolist(), latency.tolist(), tps.tolist(),
                                                ok.tolist(), strict=True)
            ]  # fmt: skip
            store.submit(batch).result()
        return store.durable_sequence
    finally:
        store.close()


def typed(raw: dict[str, Any]) -> Any:
    """The job's ``TrainingSpec`` from the fields below; an older checkout takes the dict itself."""
    try:
        from swarmlearn.config import Settings
        from swarmlearn.jobs import JobSettings, TrainingSpec
    except ImportError:
        return raw
    settings = Settings(
        training_threads=raw["threads"],
        replay_recent_events=raw["replay"]["recent"],
        replay_older_events=raw["replay"]["older"],
    )
    return TrainingSpec(
        db=Path(raw["db"]), scope=raw["scope"], kind=raw["kind"], upto=raw["upto"],
        settings=JobSettings.from_settings(settings), horizon=raw["horizon"], max_epochs=raw["max_epochs"],
        config=raw["config"], checkpoint=Path(raw["checkpoint"]),
    )  # fmt: skip


def child(spec_json: str) -> None:
    """In the job's own process: ``run`` as the daemon starts it, then one JSON line of figures."""
    from swarmlearn.jobs._train import run

    ours, theirs = socket.socketpair()
    channel, daemon = Connection(ours.detach()), Connection(theirs.detach())
    epochs: list[object] = []

    def drain() -> None:
        try:
            while True:
                epochs.append(daemon.recv())
        except (EOFError, OSError):
            return

    threading.Thread(target=drain, daemon=True).start()
    started = time.perf_counter()
    outcome = run(channel, typed(json.loads(spec_json)))
    seconds = time.perf_counter() - started
    channel.close()
    result = getattr(outcome, "result", None)  # a Done (an older checkout: ("done", result))
    if result is None:
        if outcome[0] != "done":
            raise SystemExit(f"the job ended {outcome}")
        result = outcome[1]
    print(json.dumps({
        "seconds": seconds,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "windows": result["windows"],
        "read": result.get("replay", {}),
        "naive_ratio": result["comparisons"]["naive"].get("ratio"),
    }))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", default="100000,2000000")
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--kind", default="lstm")
    parser.add_argument("--max-steps", type=int, default=60)
    parser.add_argument("--scope", choices=("swarm", "agent"), default="swarm")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "swarmlearn-job-bench")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    from swarmlearn.config import Settings

    settings = Settings()
    print(f"# {platform.node()} {platform.machine()} nproc={os.cpu_count()} python {platform.python_version()}, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load {os.getloadavg()[0]:.1f}")  # fmt: skip
    print("| events in the log | scope | events read | windows train / val / test | job s | peak RSS MB |")
    print("|---|---|---|---|---|---|")
    for events in (int(n) for n in args.events.split(",")):
        db = args.cache / f"{events}x{args.agents}" / "events.db"
        if not db.exists():
            db.parent.mkdir(parents=True, exist_ok=True)
            built = time.perf_counter()
            build_log(db, events, args.agents)
            print(f"# built {db} in {time.perf_counter() - built:.0f} s", file=sys.stderr)
        with tempfile.TemporaryDirectory() as tmp:
            spec = {
                "db": str(db), "scope": "" if args.scope == "swarm" else "agent-000", "kind": args.kind,
                "upto": events, "horizon": 1, "max_epochs": 2, "tuned_by": "", "champion": "",
                "config": {"training": {"max_steps": args.max_steps}}, "checkpoint": os.path.join(tmp, "m.pt"),
                "threads": 1, "ray": {},
                # An older checkout has no replay settings and ignores the key: it reads the whole log.
                "replay": {"recent": getattr(settings, "replay_recent_events", 0),
                           "older": getattr(settings, "replay_older_events", 0)},
            }  # fmt: skip
            out = subprocess.run(
                [sys.executable, __file__, "--child", json.dumps(spec)], check=True, capture_output=True, text=True
            ).stdout
        figures = json.loads(out.strip().splitlines()[-1])
        windows = figures["windows"]
        read = figures["read"].get("events", "all")
        print(f"| {events:,} | {args.scope} | {read if isinstance(read, str) else f'{read:,}'} | "
              f"{windows['train']:,} / {windows['validation']:,} / {windows['test']:,} | {figures['seconds']:.1f} | "
              f"{figures['peak_mb']:,.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
