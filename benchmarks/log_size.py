"""Ingest at a 10-million-event log against a fresh log (issue 16, retention), side by side in one run.

    python benchmarks/log_size.py [--log-events 10000000] [--events 200000] [--repeat 3] [--cache DIR]

A log of ``--log-events`` events (50 agents, ids as the client makes them: UUIDv7, in the past) is
built once in-process through the writer's own functions (``connect``, ``migrate``, ``commit_group``;
``synchronous=OFF``) and kept under ``--cache``. Then, alternating, real ``swarmlearn serve``
processes ingest the same ``--events`` events (the synthetic swarm, batches of 1000, 20,000 events
unacknowledged, ``synchronous=FULL``) over gRPC into:

- ``fresh``: a new, empty data directory;
- ``big``: the big log;
- ``big+retention``: the big log with ``retention_max_events`` = its length and a sweep every second,
  so the sweeps delete as many events as arrive while the clock runs (a log at its limit).

Before each run on the big log it is cut back to ``--log-events`` (by a sweep, off the clock).

Each configuration runs once with the client's event ids (UUIDv7) and once with random ids (uuid4's
hex). ``online_workers`` = 0 in every run: learners without a snapshot would spend the run replaying
the big log, and this compares the log, not learning. Acked events/s are medians of ``--repeat``
runs (min-max in brackets); ratios are the medians of each repeat's big / fresh pair.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
from ingest import drive, free_port, make_batches, wait_ready  # benchmarks/ingest.py

from swarmlearn.importer import event_to_proto
from swarmlearn.store import Retention
from swarmlearn.store._retention import sweep
from swarmlearn.store._writer import commit_group, connect, migrate
from swarmlearn.synthetic import generate_swarm
from swarmlearn_client._convert import new_event_id
from swarmlearn_client.v1 import events_pb2

AGENTS = 50
CHUNK = 100_000


def build_log(path: Path, count: int) -> float:
    """The big log at ``path``; returns the seconds it took."""
    started = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = connect(path, "OFF")
    migrate(conn, path)
    conn.execute("PRAGMA cache_size=-1000000")  # 1 GB: the index stays in memory while it is built
    first_ms = time.time_ns() // 1_000_000 - count  # one event a millisecond, ending now
    low = (1 << 62) - 1
    for start in range(0, count, CHUNK):
        rows = []
        for i in range(start, min(start + CHUNK, count)):
            random = int.from_bytes(os.urandom(10))
            event_id = f"{(first_ms + i) << 80 | 0x7 << 76 | (random >> 68) << 64 | 0b10 << 62 | random & low:032x}"
            rows.append((f"agent-{i % AGENTS:03d}", event_id, (first_ms + i) / 1000, 2,
                         400.0 + i % 300, 40.0, 512.0, 30.0, 1.0, None, None, None, None, None))  # fmt: skip
        commit_group(conn, [(0, rows)])
        if start // CHUNK % 10 == 9:
            print(f"# built {start + CHUNK:,} events, {time.perf_counter() - started:.0f} s", file=sys.stderr)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return time.perf_counter() - started


def trim(path: Path, count: int) -> None:
    """Cut the log at ``path`` back to its ``count`` newest events."""
    conn = connect(path, "NORMAL")
    migrate(conn, path)
    for _ in sweep(conn, Retention(max_age_s=0, max_events=count, keep_from=None, now=time.time())):
        pass
    conn.close()


def start_daemon(port: int, data_dir: Path, retention_events: int) -> subprocess.Popen[bytes]:
    env = dict(
        os.environ,
        SWARMLEARN_LOG_LEVEL="WARNING",
        SWARMLEARN_METRICS_LISTEN="",
        SWARMLEARN_ONLINE_WORKERS="0",
        SWARMLEARN_RETENTION_MAX_EVENTS=str(retention_events),
        SWARMLEARN_RETENTION_INTERVAL_S="1",
    )
    cmd = [sys.executable, "-m", "swarmlearn", "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", str(data_dir)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)


async def run_once(data_dir: Path, batches: list[events_pb2.EventBatch], retention_events: int) -> float:
    """Acked events/s of one daemon on ``data_dir``."""
    port = free_port()
    proc = start_daemon(port, data_dir, retention_events)
    try:
        await wait_ready(f"127.0.0.1:{port}")
        elapsed, _, acked = await drive(f"127.0.0.1:{port}", batches)
    finally:
        proc.terminate()
        proc.wait(60)
    count = sum(len(b.events) for b in batches)
    if acked != count:
        raise SystemExit(f"acked {acked} of {count} events")
    return count / elapsed


def log_events(path: Path) -> tuple[int, int]:
    with sqlite3.connect(path) as conn:
        first, last = conn.execute("SELECT min(seq), max(seq) FROM events").fetchone()
    return first, last


async def measure(args: argparse.Namespace, big_dir: Path) -> dict[tuple[str, str], list[float]]:
    pool = list(generate_swarm(agents=8, events_per_agent=args.events * args.repeat // 8 + 1, seed=11))
    runs: dict[tuple[str, str], list[float]] = {}
    for repeat in range(args.repeat):
        for ids in args.ids:
            make_id = new_event_id if ids == "uuid7" else (lambda: os.urandom(16).hex())
            events = [event_to_proto(e) for e in pool[repeat * args.events : (repeat + 1) * args.events]]
            for config in ("fresh", "big", "big+retention"):
                batches = make_batches(events, 1000)
                for pb in (e for b in batches for e in b.events):  # new ids per run: no duplicates
                    pb.event_id = make_id()
                if config == "fresh":
                    with tempfile.TemporaryDirectory() as fresh:
                        eps = await run_once(Path(fresh), batches, 0)
                else:
                    trim(big_dir / "events.sqlite3", args.log_events)
                    kept = args.log_events if config == "big+retention" else 0
                    eps = await run_once(big_dir, batches, kept)
                runs.setdefault((ids, config), []).append(eps)
                print(f"# {ids} {config}: {eps:,.0f} events/s", file=sys.stderr)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log-events", type=int, default=10_000_000)
    parser.add_argument("--events", type=int, default=200_000, help="events ingested per run")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--ids", nargs="+", choices=("uuid7", "random"), default=["uuid7", "random"])
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "swarmlearn-log-size")
    args = parser.parse_args()
    built = args.cache / f"log-{args.log_events}" / "events.sqlite3"
    build_s = build_log(built, args.log_events) if not built.exists() else 0.0
    with tempfile.TemporaryDirectory(dir=args.cache) as work:
        big_dir = Path(work)
        shutil.copyfile(built, big_dir / "events.sqlite3")  # the runs add events: the cached log stays as built
        size_gb = (big_dir / "events.sqlite3").stat().st_size / 1e9
        runs = asyncio.run(measure(args, big_dir))
        first, last = log_events(big_dir / "events.sqlite3")
    print(
        f"# {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}, grpcio "
        f"{grpc.__version__}, SQLite {sqlite3.sqlite_version}; big log: {args.log_events:,} events, "
        f"{size_gb:.2f} GB" + (f", built in {build_s:.0f} s" if build_s else " (cached)")
    )
    print(f"# after the runs the big log holds sequences {first:,}..{last:,}")
    print(f"# {args.events:,} events per run, batch 1000; median of {args.repeat} runs (min-max)")
    print("| event ids | fresh ev/s | big ev/s | big / fresh | big+retention ev/s | big+retention / fresh |")
    print("|---" * 6 + "|")
    for ids in args.ids:
        fresh, big, kept = (runs[(ids, c)] for c in ("fresh", "big", "big+retention"))
        print(f"| {ids} | {cell(fresh)} | {cell(big)} | {ratio(big, fresh)} | {cell(kept)} | {ratio(kept, fresh)} |")


def cell(values: list[float]) -> str:
    return f"{statistics.median(values):,.0f} [{min(values):,.0f}-{max(values):,.0f}]"


def ratio(values: list[float], fresh: list[float]) -> str:
    """The median of the paired runs' ratios (each pair ran one after the other)."""
    return f"{statistics.median(v / f for v, f in zip(values, fresh, strict=True)):.2f}"


if __name__ == "__main__":
    main()
