"""The forecaster process's cost without a champion, and the cost of filling agents when one comes.

    python benchmarks/forecaster.py --mode idle [--agents 5000 --events 20]
    python benchmarks/forecaster.py --mode fill [--agents 5000 --events 20]

``idle``: ``swarmlearn serve`` on loopback with a fresh data directory (defaults, ``max_agents``
raised to AGENTS), started with whatever ``PYTHONPATH`` this script runs under (so the same script
measures two checkouts), VmRSS of each process of its tree 10 s after the learners are up, then again
once AGENTS x EVENTS synthetic events were ingested and every learner caught up, and the CPU seconds
each process used from its start to the idle reading and to then. No champion.

``fill``: in this process, a real event log of AGENTS x EVENTS synthetic events (round-robin), a tiny
LSTM (window 50, the training default) trained on a few agents and promoted as the swarm champion,
then ``ChampionState.fill`` until every agent is filled: seconds per 1,000 agents, the longest fill
slice (what a query can wait behind), and RSS grown per agent. One JSON line on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

from ingest import free_port, wait_ready  # benchmarks/ingest.py
from scale import field_kib, learners_started, rss_mib, start_daemon  # benchmarks/scale.py

from swarmlearn.importer import event_to_proto
from swarmlearn.synthetic import generate_swarm
from swarmlearn_client import AsyncClient


def processes(root: int, cpu: bool = False) -> dict[str, float]:
    """VmRSS in MiB (``cpu``: CPU seconds, user + system) of ``root`` and its children, by role (from
    their command lines)."""
    out = {"daemon": measure(Path(f"/proc/{root}"), cpu)}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) != root:
                continue
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            value = measure(entry, cpu)
        except (OSError, IndexError, ValueError):
            continue
        state = [a for a in argv if a.endswith((".snapshot", ".sqlite3")) and not a.endswith("events.sqlite3")]
        name = Path(state[-1]).name if state else "?"
        role = "writer" if "_writer" in " ".join(argv) else name.split(".")[0]
        out[role] = value
    return out


def measure(proc: Path, cpu: bool) -> float:
    if not cpu:
        return field_kib((proc / "status").read_text(), "VmRSS:") // 1024
    fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
    return round((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), 1)  # utime + stime


async def idle_run(args: argparse.Namespace) -> dict[str, object]:
    swarm = [event_to_proto(e) for e in generate_swarm(agents=args.agents, events_per_agent=args.events, seed=16)]
    port = free_port()
    target = f"127.0.0.1:{port}"
    data_dir = Path(tempfile.mkdtemp(prefix="swarmlearn-forecaster-"))
    proc = start_daemon(port, data_dir, args.agents)
    result: dict[str, object] = {"mode": "idle", "agents": args.agents, "events": args.events}
    try:
        await wait_ready(target)
        await learners_started(target)
        async with AsyncClient(target, timeout=30) as client:
            await asyncio.sleep(10.0)
            result["idle_rss_mib"] = processes(proc.pid)
            result["idle_cpu_s"] = processes(proc.pid, cpu=True)
            started = time.perf_counter()
            summary = await client.ingest(swarm)
            while True:
                if (await client.status()).online_sequence >= summary.durable_sequence:
                    break
                await asyncio.sleep(0.2)
            result["ingest_to_caught_up_s"] = round(time.perf_counter() - started, 1)
            result["caught_up_rss_mib"] = processes(proc.pid)
            result["cpu_s"] = processes(proc.pid, cpu=True)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(120)
        shutil.rmtree(data_dir, ignore_errors=True)
    return result


def fill_run(args: argparse.Namespace) -> dict[str, object]:
    from swarmlearn.models import LSTMConfig
    from swarmlearn.online._champions import ChampionState
    from swarmlearn.registry import ModelRegistry
    from swarmlearn.store import EventStore, open_reader
    from swarmlearn.training import TrainingConfig, TrainingPipeline

    directory = Path(tempfile.mkdtemp(prefix="swarmlearn-fill-"))
    try:
        store = EventStore(directory / "events.sqlite3")
        events = list(generate_swarm(agents=args.agents, events_per_agent=args.events, seed=16))
        for i in range(0, len(events), 50_000):
            store.submit(events[i : i + 50_000]).result(120)
        upto = store.durable_sequence
        store.close()
        del events  # not in the forecaster process: its objects would lengthen every collection here
        config = TrainingConfig(models=(LSTMConfig(hidden_size=16, num_layers=1),), max_epochs=1, window=50)
        model = TrainingPipeline(config).run(list(generate_swarm(agents=3, events_per_agent=300, seed=3))).best
        registry = ModelRegistry(directory / "models")
        path = registry.root / "swarm.pt"
        model.save(path)
        registry.register("", model.kind, 1, path, metrics=model.metrics, config={})
        registry.promote("", model.kind, 1)
        db = open_reader(directory / "events.sqlite3")
        state = ChampionState(registry.root)
        state.advance(upto)
        gc.collect()
        before = rss_mib()
        slices: list[float] = []
        started = time.perf_counter()
        while state.filling:
            begun = time.perf_counter()
            state.fill(db)
            slices.append(time.perf_counter() - begun)
        seconds = time.perf_counter() - started
        rows = sum(h.size for h in state.agents.values())
        answered = sum(state.forecast(a, 1, 0.9, serve=False) is not None for a in list(state.agents)[:200])
        return {
            "mode": "fill", "agents": args.agents, "events": args.events, "window": model.window,
            "filled": len(state.agents), "rows_per_agent": round(rows / max(1, len(state.agents)), 1),
            "fill_s": round(seconds, 2), "s_per_1000_agents": round(1000 * seconds / args.agents, 3),
            "slices": len(slices), "longest_slice_ms": round(1000 * max(slices), 2),
            "rss_kib_per_agent": round(1024 * (rss_mib() - before) / args.agents, 2),
            "answered_of_200": answered,
        }  # fmt: skip
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=("idle", "fill"), default="idle")
    parser.add_argument("--agents", type=int, default=5_000)
    parser.add_argument("--events", type=int, default=20)
    args = parser.parse_args()
    result = asyncio.run(idle_run(args)) if args.mode == "idle" else fill_run(args)
    result["load"] = os.getloadavg()[0]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
