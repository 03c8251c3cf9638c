"""Online learning under load, and Predict latency beside a raw grpcio unary echo.

    python benchmarks/online.py [--events 200000] [--repeat 3] [--workers 0,1,2] [--predicts 2000]
                                [--baseline-src DIR] [--ingest-only]

Part 1, ingest with learning on. A fresh ``swarmlearn serve`` per run (online_workers = 0, 1, 2;
0 is the foundation's daemon without online learning), fed the same 200,000 pre-built events of a
synthetic swarm of 8 agents at batch 1000 with the client's window (20,000 events unacknowledged),
sqlite synchronous=FULL. Two figures per run: *acked ev/s* (events / time to the last ack) and
*learned ev/s* (events / time until every learner process has applied the last event, read from
GetStatus), the one that says whether learning keeps up. Configurations alternate run by run.

Part 2, Predict and ScorePrompts. One daemon that has learned 6 agents x 2,000 events; sequential
unary calls from a blocking grpcio stub (the way an agent asks): Predict at H = 1 and H = 12,
ScorePrompts with 1 and 100 candidates (new texts in every request), and the same calls to a raw
grpcio server in another process that answers each at once with a fixed message: the transport's
floor. Chunks of calls alternate between the two servers. Last, a small LSTM is trained over RPC
(StartTraining), promoted, and Predict timed again with the torch champion answering, twice: asked
again and again with no new event between (the forecaster may answer from its cache), and with
one new event of the agent ingested (untimed) before each timed call, whose answer must be as of
that event, so it needs a forward pass.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time

import grpc
from ingest import drive, free_port, make_batches, percentile, wait_ready  # benchmarks/ingest.py

from swarmlearn.importer import event_to_proto
from swarmlearn.synthetic import BAD_WORDS, FILLER, GOOD_WORDS, generate_swarm
from swarmlearn_client.v1 import agents_pb2, daemon_pb2, events_pb2, jobs_pb2, prompts_pb2, service_pb2_grpc


class EchoServicer(service_pb2_grpc.SwarmLearnServicer):
    """A fixed Predict answer the size of a real H=1 one, returned without any work."""

    def __init__(self) -> None:
        self.answer = agents_pb2.PredictResponse(
            forecasts=[
                agents_pb2.TargetForecast(
                    target=t,
                    model_kind="online:ewma",
                    running_mae=1.0,
                    points=[agents_pb2.ForecastPoint(step=1, value=1.0, lower=0.5, upper=1.5)],
                )
                for t in ("latency_ms", "tokens_per_second", "success_rate")
            ]
        )

    async def Predict(self, request, context):  # type: ignore[no-untyped-def]
        return self.answer

    async def ScorePrompts(self, request, context):  # type: ignore[no-untyped-def]
        return prompts_pb2.ScorePromptsResponse(agent_id=request.agent_id)


async def run_echo_server(port: int) -> None:
    server = grpc.aio.server()
    service_pb2_grpc.add_SwarmLearnServicer_to_server(EchoServicer(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


def start_daemon(port: int, data_dir: str, workers: int, src: str | None = None) -> subprocess.Popen[bytes]:
    env = dict(
        os.environ,
        SWARMLEARN_LOG_LEVEL="WARNING",
        SWARMLEARN_METRICS_LISTEN="",
        SWARMLEARN_ONLINE_WORKERS=str(workers),
    )
    if src is not None:  # another checkout's daemon (with this environment's packages), for a side-by-side run
        env["PYTHONPATH"] = os.pathsep.join([os.path.join(src, "daemon"), os.path.join(src, "client")])
    cmd = [sys.executable, "-m", "swarmlearn", "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data_dir]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)


def start_echo(port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, __file__, "--echo-server", str(port)])


async def learned_by(target: str, sequence: int) -> float:
    """perf_counter() when every learner process has applied ``sequence``."""
    async with grpc.aio.insecure_channel(target) as channel:
        stub = service_pb2_grpc.SwarmLearnStub(channel)
        while True:
            status = await stub.GetStatus(daemon_pb2.GetStatusRequest())
            if status.online_sequence >= sequence:
                return time.perf_counter()
            await asyncio.sleep(0.01)


async def ingest_once(batches: list, workers: int, src: str | None = None) -> tuple[float, float]:  # type: ignore[type-arg]
    count = sum(len(b.events) for b in batches)
    port = free_port()
    with tempfile.TemporaryDirectory() as data_dir:
        proc = start_daemon(port, data_dir, workers, src)
        target = f"127.0.0.1:{port}"
        try:
            await wait_ready(target)
            if workers:  # the learners start in the background; let them load before the clock starts
                await learned_by(target, 0)
                await asyncio.sleep(3.0)
            start = time.perf_counter()
            elapsed, _, acked = await drive(target, batches)
            learned = (await learned_by(target, count) - start) if workers else elapsed
        finally:
            proc.terminate()
            proc.wait(60)
    if acked != count:
        raise SystemExit(f"acked {acked} of {count} events")
    return count / elapsed, count / learned


def latencies(target: str, method: str, requests: list) -> list[float]:  # type: ignore[type-arg]
    with grpc.insecure_channel(target, options=[("grpc.max_send_message_length", 64 << 20)]) as channel:
        call = getattr(service_pb2_grpc.SwarmLearnStub(channel), method)
        for request in requests[:20]:  # warm the channel and the caches
            call(request)
        out = []
        for request in requests:
            start = time.perf_counter()
            call(request)
            out.append(time.perf_counter() - start)
    return out


def latencies_after_events(
    target: str,
    requests: list[agents_pb2.PredictRequest],
    events: list[events_pb2.StreamEvent],
) -> list[float]:
    """Predict timed right after one new event of its agent was acked (not timed): the first answer
    as of that event counts, so nothing computed before the event can answer it. Answers from before
    the forecaster learned it (``as_of_sequence`` lower) are dropped and asked again."""
    with grpc.insecure_channel(target) as channel:
        stub = service_pb2_grpc.SwarmLearnStub(channel)
        for _ in range(20):  # warm the channel
            stub.Predict(requests[0])
        out = []
        for request, event in zip(requests, events, strict=True):
            batch = events_pb2.EventBatch(batch_id=event.event_id, events=[event])
            (ack,) = list(stub.Ingest(iter([batch])))
            while True:
                start = time.perf_counter()
                answer = stub.Predict(request)
                elapsed = time.perf_counter() - start
                if answer.as_of_sequence >= ack.durable_sequence:
                    out.append(elapsed)
                    break
                time.sleep(0.001)
    return out


async def promote_a_torch_champion(target: str, agent: str) -> None:
    """Train a small LSTM for the swarm over RPC, promote it, and wait until it answers Predict."""
    config = json.dumps({"hidden_size": 32, "num_layers": 1, "training": {"window": 20}})
    async with grpc.aio.insecure_channel(target) as channel:
        stub = service_pb2_grpc.SwarmLearnStub(channel)
        job = await stub.StartTraining(
            jobs_pb2.StartTrainingRequest(model_kind="lstm", max_epochs=3, config_json=config)
        )
        async for state in stub.WatchJob(jobs_pb2.WatchJobRequest(job_id=job.job_id)):
            final = state
        if final.state != jobs_pb2.JOB_STATE_SUCCEEDED:
            raise SystemExit(f"training failed: {final.error}")
        await stub.PromoteModel(jobs_pb2.PromoteModelRequest(model_kind="lstm", version=1))
        while True:
            answer = await stub.Predict(agents_pb2.PredictRequest(agent_id=agent))
            if answer.forecasts[0].model_kind == "torch:lstm":
                return
            await asyncio.sleep(0.1)


def prompt_requests(agents: list[str], count: int, candidates: int) -> list[prompts_pb2.ScorePromptsRequest]:
    """Fresh texts in every request (the daemon caches featurised texts), built from the swarm's words."""
    rng = random.Random(candidates)
    words = [*GOOD_WORDS, *BAD_WORDS, *FILLER]
    return [
        prompts_pb2.ScorePromptsRequest(
            agent_id=agents[i % len(agents)],
            candidates=[
                prompts_pb2.PromptCandidate(text=" ".join(rng.choices(words, k=rng.randint(5, 40))))
                for _ in range(candidates)
            ],
        )
        for i in range(count)
    ]


async def predict_bench(args: argparse.Namespace) -> list[dict[str, float | str]]:
    port, echo_port = free_port(), free_port()
    rows = []
    with tempfile.TemporaryDirectory() as data_dir:
        proc = start_daemon(port, data_dir, 2)
        echo = start_echo(echo_port)
        target, echo_target = f"127.0.0.1:{port}", f"127.0.0.1:{echo_port}"
        try:
            await wait_ready(target)
            await wait_ready(echo_target)
            # The first 2,000 steps of every agent now, the rest one at a time for the uncached case.
            later = -(-args.predicts // 6)
            swarm = list(generate_swarm(agents=6, events_per_agent=2000 + later, seed=1))
            events = [event_to_proto(e) for e in swarm[: 6 * 2000]]
            await drive(target, make_batches(events, 1000))
            await learned_by(target, len(events))
            agents = sorted({e.agent_id for e in events})
            held: dict[str, list[events_pb2.StreamEvent]] = {agent: [] for agent in agents}
            for e in swarm[6 * 2000 :]:
                held[e.agent_id].append(event_to_proto(e))
            cells: list[tuple[str, str, int, list]] = [  # type: ignore[type-arg]
                (
                    "Predict",
                    f"H = {horizon}",
                    args.predicts,
                    [
                        agents_pb2.PredictRequest(agent_id=agents[i % len(agents)], horizon=horizon)
                        for i in range(args.predicts)
                    ],
                )
                for horizon in (1, 12)
            ]
            cells += [
                ("ScorePrompts", f"{n} candidates", count, prompt_requests(agents, count, n))
                for n, count in ((1, args.predicts), (100, max(100, args.predicts // 10)))
            ]
            cells.append(("Predict", "H = 1, torch champion, repeated (no event between)", args.predicts, cells[0][3]))
            cells.append(("Predict", "H = 1, torch champion, an event before each", args.predicts, cells[0][3]))
            after = [held[agents[i % len(agents)]][i // len(agents)] for i in range(args.predicts)]
            promoted = False
            for method, label, count, requests in cells:
                if "torch" in label and not promoted:
                    await promote_a_torch_champion(target, agents[0])
                    promoted = True
                times: dict[str, list[float]] = {"echo": [], "swarmlearn": []}
                step = max(20, count // 10)
                for start in range(0, len(requests), step):
                    chunk = requests[start : start + step]
                    times["echo"] += await asyncio.to_thread(latencies, echo_target, method, chunk)
                    if "event before" in label:
                        mine = after[start : start + step]
                        times["swarmlearn"] += await asyncio.to_thread(latencies_after_events, target, chunk, mine)
                    else:
                        times["swarmlearn"] += await asyncio.to_thread(latencies, target, method, chunk)
                row: dict[str, float | str] = {"method": method, "case": label, "calls": len(requests)}
                for name, values in times.items():
                    row[f"{name}_p50_ms"] = percentile(values, 50) * 1e3
                    row[f"{name}_p99_ms"] = percentile(values, 99) * 1e3
                rows.append(row)
        finally:
            for p in (proc, echo):
                p.terminate()
                p.wait(60)
    return rows


async def main_async(args: argparse.Namespace) -> None:
    workers = [int(w) for w in args.workers.split(",")]
    events = [event_to_proto(e) for e in generate_swarm(agents=8, events_per_agent=args.events // 8, seed=0)]
    batches = make_batches(events, 1000)
    daemons = {"this": None} if args.baseline_src is None else {"this": None, "baseline": args.baseline_src}
    acked: dict[tuple[str, int], list[float]] = {(d, w): [] for d in daemons for w in workers}
    learned: dict[tuple[str, int], list[float]] = {(d, w): [] for d in daemons for w in workers}
    for _ in range(args.repeat):
        for w in workers:
            for name, src in daemons.items():  # alternating, so both see the same machine
                a, lr = await ingest_once(batches, w, src)
                acked[name, w].append(a)
                learned[name, w].append(lr)
    print(
        f"# {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"python {platform.python_version()}, grpcio {grpc.__version__}"
    )
    print(f"# ingest: {len(events):,} events, batch 1000, synchronous=FULL; median of {args.repeat} runs [min-max]")
    if args.baseline_src:
        print(f"# baseline: the daemon of {args.baseline_src}, run alternately with this checkout's")
    print("| daemon | online_workers | acked ev/s | learned ev/s | acked vs no learning | learned vs baseline |")
    print("|---|---|---|---|---|---|")
    for name in daemons:
        base = statistics.median(acked[name, 0]) if 0 in workers else None
        for w in workers:
            a, lr = statistics.median(acked[name, w]), statistics.median(learned[name, w])
            ratio = f"{a / base:.2f}" if base else "-"
            runs = learned[name, w]
            learned_cell = "-" if w == 0 else f"{lr:,.0f} [{min(runs):,.0f}-{max(runs):,.0f}]"
            versus = "-"
            if args.baseline_src and w:
                versus = f"{lr / statistics.median(learned['baseline', w]):.2f}"
            acked_cell = f"{a:,.0f} [{min(acked[name, w]):,.0f}-{max(acked[name, w]):,.0f}]"
            print(f"| {name} | {w} | {acked_cell} | {learned_cell} | {ratio} | {versus} |")
    if args.ingest_only:
        return
    rows = await predict_bench(args)
    print()
    print("# unary RPCs, one at a time from a blocking grpcio stub; echo: the same RPC answered at once, no work")
    print("| RPC | case | calls | echo p50 / p99 ms | swarmlearn p50 / p99 ms | p50 ratio |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['method']} | {r['case']} | {r['calls']} | {r['echo_p50_ms']:.3f} / {r['echo_p99_ms']:.3f} "
            f"| {r['swarmlearn_p50_ms']:.3f} / {r['swarmlearn_p99_ms']:.3f} "
            f"| {float(r['swarmlearn_p50_ms']) / float(r['echo_p50_ms']):.2f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--echo-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", default="0,1,2", help="online_workers values to compare (0 = learning off)")
    parser.add_argument("--predicts", type=int, default=2000)
    parser.add_argument("--baseline-src", default=None, help="also run another checkout's daemon, alternately")
    parser.add_argument("--ingest-only", action="store_true", help="skip the RPC latency part")
    args = parser.parse_args()
    if args.echo_server:
        asyncio.run(run_echo_server(args.echo_server))
        return
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
