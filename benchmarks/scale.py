"""A baselines learner's memory, snapshot and warm-restart time against the number of agents.

    python benchmarks/scale.py --agents 20000 --events 20 --mode lru      # resident 5,000, the store
    python benchmarks/scale.py --agents 20000 --events 20 --mode whole    # all resident, one pickle file

In-process ``OnlineState`` fed AGENTS x EVENTS synthetic events (round-robin), as a learner process
holds it. ``lru``: ``online_resident_agents`` learners in memory, snapshots into an ``AgentStore``
(the first writes every agent; then 1 % of the agents learn one event each and the next snapshot writes
those), warm restart = ``OnlineState.load`` (shared state and ids). ``whole``: the previous design, every
learner in memory, the whole state pickled into one snapshot file, warm restart = unpickling it.
RSS is the process's resident set after learning (``/proc/self/statm``). One JSON line on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from swarmlearn.events import Event, EventType
from swarmlearn.online import OnlineState, WorkerSettings, _snapshot
from swarmlearn.online._agentstore import AgentStore


def rss_mib() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def event(agent: int, i: int) -> Event:
    latency = 100.0 + (agent % 50) + 10.0 * ((i * 7919) % 13)
    return Event(
        f"agent-{agent}", f"e-{agent}-{i}", 1.7e9 + 60.0 * i, EventType.TASK_COMPLETED, latency, 40.0, 512.0, 30.0, 1.0
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--agents", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--mode", choices=("lru", "whole"), default="lru")
    parser.add_argument("--resident", type=int, default=WorkerSettings().resident_agents)
    args = parser.parse_args()
    settings = WorkerSettings()
    fingerprint = _snapshot.fingerprint(settings.identity())
    anchor = _snapshot.Anchor(0, "", "")  # no log here: the anchor is not checked
    directory = Path(tempfile.mkdtemp(prefix="swarmlearn-scale-"))
    lru = args.mode == "lru"
    state = OnlineState(settings.config, resident=args.resident if lru else None)
    store = AgentStore(directory / "online-0-of-1.agents.sqlite3") if lru else None
    if store is not None:
        state.agents.attach(store, [])
    started = time.perf_counter()
    for i in range(args.events):
        for agent in range(args.agents):
            state.learn(event(agent, i))
    result: dict[str, object] = {
        "mode": args.mode,
        "agents": args.agents,
        "events": args.events,
        "resident": args.resident if lru else args.agents,
        "learn_s": round(time.perf_counter() - started, 1),
        "rss_mib": round(rss_mib()),
    }

    def snapshot() -> tuple[float, int]:
        started = time.perf_counter()
        if store is not None:
            size = state.save(store, anchor=anchor, fingerprint=fingerprint)
        else:
            path = directory / "online-0-of-1.snapshot"
            size = _snapshot.save(path, {"baselines": state}, anchor=anchor, fingerprint=fingerprint)
        return round(time.perf_counter() - started, 2), size

    result["first_snapshot_s"], result["first_snapshot_bytes"] = snapshot()
    for agent in range(0, args.agents, 100):  # 1 % of the agents learn one more event
        state.learn(event(agent, args.events))
    result["next_snapshot_s"], result["next_snapshot_bytes"] = snapshot()
    started = time.perf_counter()
    if store is not None:
        store.close()
        restored = OnlineState.load(
            AgentStore(store.path),
            config=settings.config,
            resident=args.resident,
            fingerprint=fingerprint,
            anchor_at=lambda seq: None,
        )
    else:
        loaded, _ = _snapshot.load(
            directory / "online-0-of-1.snapshot", fingerprint=fingerprint, anchor_at=lambda s: None
        )
        assert isinstance(loaded, dict)
        restored = loaded["baselines"]
    result["warm_restart_s"] = round(time.perf_counter() - started, 2)
    started = time.perf_counter()
    restored.predict("agent-7", 1, 0.8)
    result["first_predict_after_restart_ms"] = round(1000 * (time.perf_counter() - started), 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
