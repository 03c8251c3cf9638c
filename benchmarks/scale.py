"""A baselines learner's memory, snapshot and warm-restart time against the number of agents; and the
whole daemon's (issue 16).

    python benchmarks/scale.py --agents 20000 --events 20 --mode lru      # resident 5,000, the store
    python benchmarks/scale.py --agents 20000 --events 20 --mode whole    # all resident, one pickle file
    python benchmarks/scale.py --agents 20000 --events 20 --mode daemon   # a real `swarmlearn serve`
    python benchmarks/scale.py --agents 5000 --events 20 --mode prompts --resident 100   # the prompt learner

In-process ``OnlineState`` fed AGENTS x EVENTS synthetic events (round-robin), as a learner process
holds it. ``lru``: ``online_resident_agents`` learners in memory, snapshots into an ``AgentStore``
(the first writes every agent; then 1 % of the agents learn one event each and the next snapshot writes
those), warm restart = ``OnlineState.load`` (shared state and ids). ``whole``: the previous design, every
learner in memory, the whole state pickled into one snapshot file, warm restart = unpickling it.
RSS is the process's resident set after learning (``/proc/self/statm``). One JSON line on stdout.

``daemon``: ``swarmlearn serve`` on loopback with a fresh data directory (defaults but ``max_agents``
raised to AGENTS), fed the synthetic swarm of AGENTS agents x EVENTS events in time order (each step
round-robin over the agents, about a third with prompt texts) through the client (one stream,
batches of 1000). Meanwhile another process calls Predict for four of the agents in a loop (latencies
while ingesting, and until the learners caught up), and GetStatus is sampled every 0.5 s (the
learners' apply rate from ``online_sequence``). Memory is summed over the daemon's process tree
(``VmRSS``, which counts pages shared by forked children in each; and ``Pss``, which splits them).
Then SIGTERM to exit, and a warm restart on the same directory to the first Predict answer.

``prompts``: an in-process prompt learner (``online._promptstore.bounded_prompt_learner``, RESIDENT agents
in memory, 0: all of them in a plain dict as before the store) fed the daemon mode's synthetic swarm (the
same generator, time order, about half of the events with prompt texts), with the worker's rule of a
snapshot into its store whenever evicted agents' pickles pending in memory pass 64 MiB; then one final
snapshot. RSS before and after learning, and the learn rate (snapshots included). With ``--tracemalloc``
also the Python heap the learner holds after the final snapshot (pending pickles written; RSS keeps what
the allocator does not give back), per agent: slower, so a separate run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import grpc
from ingest import free_port, wait_ready  # benchmarks/ingest.py

from swarmlearn.events import Event, EventType
from swarmlearn.importer import event_to_proto
from swarmlearn.online import OnlineState, WorkerSettings, _snapshot
from swarmlearn.online._agentstore import AgentStore
from swarmlearn.online._promptstore import bounded_prompt_learner, save_prompts
from swarmlearn.online._worker import _PENDING_LIMIT
from swarmlearn.prompts import PromptLearner
from swarmlearn.synthetic import generate_swarm
from swarmlearn_client import AsyncClient
from swarmlearn_client.v1 import agents_pb2, service_pb2_grpc

PREDICTED = 4  # agents the Predict loop asks about
PREDICT_PAUSE_S = 0.01  # between two of its calls: about 100 a second, not a third busy core


def rss_mib() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def event(agent: int, i: int) -> Event:
    latency = 100.0 + (agent % 50) + 10.0 * ((i * 7919) % 13)
    return Event(
        f"agent-{agent}", f"e-{agent}-{i}", 1.7e9 + 60.0 * i, EventType.TASK_COMPLETED, latency, 40.0, 512.0, 30.0, 1.0
    )


def tree_memory_mib(root: int) -> tuple[float, float]:
    """(sum of VmRSS, sum of Pss) in MiB over ``root`` and its descendants."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):  # gone since the listing
                # The command may hold spaces and parentheses: the fields after its last ")".
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
    tree, grew = {root}, True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= more
        grew = bool(more)
    rss = pss = 0
    for pid in tree:
        try:
            rss += field_kib(Path(f"/proc/{pid}/status").read_text(), "VmRSS:")
            pss += field_kib(Path(f"/proc/{pid}/smaps_rollup").read_text(), "Pss:")
        except OSError:
            pass
    return round(rss / 1024), round(pss / 1024)


def field_kib(text: str, name: str) -> int:
    return next((int(line.split()[1]) for line in text.splitlines() if line.startswith(name)), 0)


def start_daemon(port: int, data_dir: Path, agents: int) -> subprocess.Popen[bytes]:
    env = dict(
        os.environ, SWARMLEARN_LOG_LEVEL="WARNING", SWARMLEARN_METRICS_LISTEN="", SWARMLEARN_MAX_AGENTS=str(agents)
    )
    cmd = [sys.executable, "-m", "swarmlearn", "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", str(data_dir)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)


def predict_loop(target: str, out: str, agents: list[str]) -> None:
    """Predict round-robin over ``agents`` until SIGTERM; then (start, seconds, code) per call to ``out``."""
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    calls: list[tuple[float, float, str]] = []
    with grpc.insecure_channel(target) as channel:
        predict = service_pb2_grpc.SwarmLearnStub(channel).Predict
        grpc.channel_ready_future(channel).result(timeout=30)
        print("ready", flush=True)
        for agent in itertools.cycle(agents):
            if stopping:
                break
            started = time.perf_counter()
            try:
                predict(agents_pb2.PredictRequest(agent_id=agent), timeout=30)
                code = "OK"
            except grpc.RpcError as exc:
                code = exc.code().name
            calls.append((started, time.perf_counter() - started, code))
            time.sleep(PREDICT_PAUSE_S)
    Path(out).write_text(json.dumps(calls))


def latency_summary(calls: list[tuple[float, float, str]]) -> dict[str, object]:
    ms = sorted(1000 * seconds for _, seconds, code in calls if code == "OK")
    codes: dict[str, int] = {}
    for _, _, code in calls:
        codes[code] = codes.get(code, 0) + 1
    if len(ms) < 2:
        return {"codes": codes}
    q = statistics.quantiles(ms, n=1000, method="inclusive")
    return {"codes": codes, "p50_ms": round(q[499], 2), "p99_ms": round(q[989], 2), "p999_ms": round(q[998], 2),
            "max_ms": round(ms[-1], 1)}  # fmt: skip


async def learners_started(target: str) -> None:
    """Until the daemon at ``target`` says its learner processes run."""
    async with AsyncClient(target, timeout=30) as client:
        while True:  # polled: the daemon says it only when asked
            if (await client.status()).online_running:
                return
            await asyncio.sleep(0.1)


async def first_answer(target: str, agent: str, deadline_s: float) -> float | None:
    """perf_counter() at the daemon's first Predict answer for ``agent``; None if none came in time."""
    async with grpc.aio.insecure_channel(target) as channel:
        predict = service_pb2_grpc.SwarmLearnStub(channel).Predict
        end = time.perf_counter() + deadline_s
        while time.perf_counter() < end:
            try:
                await predict(agents_pb2.PredictRequest(agent_id=agent), timeout=5)
                return time.perf_counter()
            except grpc.RpcError:
                await asyncio.sleep(0.01)
    return None


async def daemon_run(args: argparse.Namespace) -> dict[str, object]:
    count = args.agents * args.events
    # Built before the clock starts: the driver shares the two cores with the daemon.
    swarm = [event_to_proto(e) for e in generate_swarm(agents=args.agents, events_per_agent=args.events, seed=16)]
    known = [e.agent_id for e in itertools.islice(generate_swarm(agents=args.agents, events_per_agent=1), PREDICTED)]
    result: dict[str, object] = {"mode": "daemon", "agents": args.agents, "events": args.events,
                                 "load_before": os.getloadavg()[0]}  # fmt: skip
    port = free_port()
    target = f"127.0.0.1:{port}"
    data_dir = Path(tempfile.mkdtemp(prefix="swarmlearn-scale-daemon-"))
    out = data_dir.parent / f"{data_dir.name}.predict.json"
    proc = start_daemon(port, data_dir, args.agents)
    try:
        await wait_ready(target)
        await learners_started(target)
        async with AsyncClient(target, timeout=30) as client:
            await asyncio.sleep(3.0)  # the learners load in the background
            result["rss_idle_mib"], result["pss_idle_mib"] = tree_memory_mib(proc.pid)
            samples: list[tuple[float, int, int]] = []

            async def sample() -> None:
                while True:
                    status = await client.status()
                    samples.append((time.perf_counter(), status.durable_sequence, status.online_sequence))
                    await asyncio.sleep(0.5)

            predictor = await asyncio.create_subprocess_exec(
                sys.executable, __file__, "--predict-loop", target, str(out), *known, stdout=subprocess.PIPE
            )
            assert predictor.stdout is not None
            await predictor.stdout.readline()  # "ready": its calls start with the ingest
            sampler = asyncio.create_task(sample())
            started = time.perf_counter()
            summary = await client.ingest(swarm)
            acked_at = time.perf_counter()
            result["ack_eps"] = round(count / (acked_at - started))
            result["accepted"], result["rejected"] = summary.accepted, summary.rejected
            result["rss_after_ingest_mib"], result["pss_after_ingest_mib"] = tree_memory_mib(proc.pid)
            while True:
                if samples and samples[-1][2] >= summary.durable_sequence:
                    result["learned_eps"] = round(count / (samples[-1][0] - started))
                    result["catch_up_after_ack_s"] = round(samples[-1][0] - acked_at, 1)
                    break
                if time.perf_counter() - acked_at > args.catch_up_limit_s:  # measure the rest while behind
                    result["not_caught_up_after_s"] = args.catch_up_limit_s
                    result["learned_when_given_up"] = samples[-1][2]
                    break
                await asyncio.sleep(0.5)
            result["rss_caught_up_mib"], result["pss_caught_up_mib"] = tree_memory_mib(proc.pid)
            predictor.terminate()
            await predictor.wait()
            sampler.cancel()
            calls = json.loads(out.read_text())
            result["predict_while_ingesting"] = latency_summary([c for c in calls if c[0] < acked_at])
            result["predict_until_caught_up"] = latency_summary(calls)
            # The apply rate while ingesting and after: online_sequence's climb (0.5 s samples).
            during = [s for s in samples if s[0] <= acked_at]
            after = [s for s in samples if s[0] >= acked_at]
            for name, part in (("while_ingesting", during), ("after_ingest", after)):
                if len(part) > 1:
                    result[f"apply_eps_{name}"] = round((part[-1][2] - part[0][2]) / (part[-1][0] - part[0][0]))
            result["max_lag_events"] = max(d - o for _, d, o in samples)
        stopping = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        proc.wait(120)
        result["stop_s"] = round(time.perf_counter() - stopping, 2)
        restarting = time.perf_counter()
        proc = start_daemon(port, data_dir, args.agents)
        answered = await first_answer(target, known[0], 120)
        # A restart behind the log answers UNAVAILABLE until the learners are within the lag limit.
        restart_s = None if answered is None else round(answered - restarting, 2)
        result["warm_restart_to_predict_s"] = "none within 120 s" if restart_s is None else restart_s
        result["rss_after_restart_mib"], result["pss_after_restart_mib"] = tree_memory_mib(proc.pid)
        result["load_after"] = os.getloadavg()[0]
    finally:
        proc.terminate()
        proc.wait(120)
        shutil.rmtree(data_dir, ignore_errors=True)
        out.unlink(missing_ok=True)
    return result


def prompts_run(args: argparse.Namespace) -> dict[str, object]:
    events = list(generate_swarm(agents=args.agents, events_per_agent=args.events, seed=16))
    fingerprint = _snapshot.fingerprint(WorkerSettings(role="prompts").identity())
    anchor = _snapshot.Anchor(0, "", "")  # no log here: the anchor is not checked
    directory = Path(tempfile.mkdtemp(prefix="swarmlearn-scale-prompts-"))
    store = AgentStore(directory / "prompts.agents.sqlite3") if args.resident else None
    if args.tracemalloc:
        tracemalloc.start()
    learner = bounded_prompt_learner(resident=args.resident) if store is not None else PromptLearner()
    table = learner.agents
    if store is not None:
        table.attach(store, [])  # type: ignore[attr-defined]
    rss_before = rss_mib()
    snapshots = 0
    started = time.perf_counter()
    for seq, item in enumerate(events, start=1):
        learner.learn(item, seq)
        if store is not None and seq % 64 == 0 and table.pending_bytes > _PENDING_LIMIT:  # type: ignore[attr-defined]
            save_prompts(learner, store, anchor=anchor, fingerprint=fingerprint)
            snapshots += 1
    learn_s = time.perf_counter() - started
    result: dict[str, object] = {
        "mode": "prompts",
        "agents": args.agents,
        "events": len(events),
        "prompt_events": sum(e.prompt_text is not None for e in events),
        "resident": args.resident or args.agents,
        "learn_s": round(learn_s, 1),
        "events_per_s": round(len(events) / learn_s),
        "snapshots_while_learning": snapshots,
        "rss_before_mib": round(rss_before),
        "rss_after_mib": round(rss_mib()),
    }
    result["kib_per_agent"] = round((rss_mib() - rss_before) * 1024 / args.agents, 1)
    if store is not None:
        started = time.perf_counter()
        result["final_snapshot_bytes"] = save_prompts(learner, store, anchor=anchor, fingerprint=fingerprint)
        result["final_snapshot_s"] = round(time.perf_counter() - started, 2)
        result["store_mib"] = round(store.path.stat().st_size / 2**20)
        store.close()
    if args.tracemalloc:
        gc.collect()
        result["heap_kib_per_agent"] = round(tracemalloc.get_traced_memory()[0] / 1024 / args.agents, 2)
    shutil.rmtree(directory)
    return result


def main() -> None:
    if sys.argv[1:2] == ["--predict-loop"]:
        predict_loop(sys.argv[2], sys.argv[3], sys.argv[4:])
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--agents", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--mode", choices=("lru", "whole", "daemon", "prompts"), default="lru")
    parser.add_argument("--resident", type=int, default=WorkerSettings().resident_agents)
    parser.add_argument("--tracemalloc", action="store_true", help="prompts: the learner's Python heap")
    parser.add_argument("--catch-up-limit-s", type=float, default=600.0, help="daemon: wait for the learners")
    args = parser.parse_args()
    if args.mode == "daemon":
        print(json.dumps(asyncio.run(daemon_run(args))))
        return
    if args.mode == "prompts":
        print(json.dumps(prompts_run(args)))
        return
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
