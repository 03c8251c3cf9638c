"""Ingest throughput and ack latency: swarmlearn's durable stream beside a raw grpcio echo stream.

    python benchmarks/ingest.py [--events-1000 200000] [--synchronous FULL]

Both servers run as separate processes on loopback and receive the same pre-built EventBatch
payloads from the same pipelined driver (a window of unacknowledged events, as the client keeps).
The echo server parses each batch and acks it at once: that is the transport's limit here.
swarmlearn validates, commits to SQLite (WAL, synchronous=FULL by default) and acks after commit.
Throughput is measured with the client's window (20,000 events unacknowledged), so ack latency
under that load is mostly queueing (Little's law: window / throughput); ack latency with one batch
in flight is the service time. The ratio column is swarmlearn / echo events per second.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import grpc

from swarmlearn.importer import event_to_proto
from swarmlearn.synthetic import generate_swarm
from swarmlearn_client.v1 import events_pb2, service_pb2_grpc

WINDOW_EVENTS = int(os.environ.get("BENCH_WINDOW", "20000"))  # the client's default max_unacked_events


class EchoServicer(service_pb2_grpc.SwarmLearnServicer):
    async def Ingest(self, request_iterator, context):  # type: ignore[no-untyped-def]
        async for batch in request_iterator:
            yield events_pb2.IngestAck(batch_id=batch.batch_id, accepted=len(batch.events))


async def run_echo_server(port: int) -> None:
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)])
    service_pb2_grpc.add_SwarmLearnServicer_to_server(EchoServicer(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_ready(target: str) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        await asyncio.wait_for(channel.channel_ready(), 30.0)


async def drive(
    target: str, batches: list[events_pb2.EventBatch], window: int | None = None
) -> tuple[float, list[float], int]:
    """Send every batch with at most ``window`` batches unacknowledged (default: WINDOW_EVENTS
    events' worth, as the client keeps); return (seconds, ack latencies, events acked)."""
    window = window or max(1, WINDOW_EVENTS // len(batches[0].events))
    sent_at: dict[str, float] = {}
    latencies: list[float] = []
    room = asyncio.Semaphore(window)
    acked = 0
    async with grpc.aio.insecure_channel(
        target, options=[("grpc.max_send_message_length", 64 * 1024 * 1024)]
    ) as channel:
        stub = service_pb2_grpc.SwarmLearnStub(channel)

        async def requests():  # type: ignore[no-untyped-def]
            for batch in batches:
                await room.acquire()
                sent_at[batch.batch_id] = time.perf_counter()
                yield batch

        start = time.perf_counter()
        async for ack in stub.Ingest(requests()):
            latencies.append(time.perf_counter() - sent_at.pop(ack.batch_id))
            acked += ack.accepted + ack.duplicates
            room.release()
        elapsed = time.perf_counter() - start
    return elapsed, latencies, acked


def make_batches(events: list[events_pb2.StreamEvent], size: int) -> list[events_pb2.EventBatch]:
    return [events_pb2.EventBatch(batch_id=str(i), events=events[i : i + size]) for i in range(0, len(events), size)]


def start_server(name: str, port: int, data_dir: str, synchronous: str) -> subprocess.Popen[bytes]:
    if name == "echo":
        cmd = [sys.executable, __file__, "--echo-server", str(port)]
    else:
        cmd = [sys.executable, "-m", "swarmlearn", "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data_dir]
    env = dict(
        os.environ,
        SWARMLEARN_SQLITE_SYNCHRONOUS=synchronous,
        SWARMLEARN_LOG_LEVEL="WARNING",
        SWARMLEARN_METRICS_LISTEN="",
    )
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


async def run_once(
    name: str, batches: list[events_pb2.EventBatch], probe: list[events_pb2.EventBatch], synchronous: str
) -> tuple[float, list[float], list[float]]:
    """One fresh server: (events/s with the client's window, loaded latencies, one-in-flight latencies)."""
    count = sum(len(b.events) for b in batches)
    port = free_port()
    with tempfile.TemporaryDirectory() as data_dir:
        proc = start_server(name, port, data_dir, synchronous)
        try:
            await wait_ready(f"127.0.0.1:{port}")
            elapsed, latencies, acked = await drive(f"127.0.0.1:{port}", batches)
            # Unloaded latency: one batch in flight, fresh event ids (a resend would only
            # measure the duplicate path).
            _, idle_latencies, _ = await drive(f"127.0.0.1:{port}", probe, window=1)
        finally:
            proc.terminate()
            proc.wait(30)
    if acked != count:
        raise SystemExit(f"{name} acked {acked} of {count} events")
    return count / elapsed, latencies, idle_latencies


async def measure(args: argparse.Namespace) -> list[dict[str, float]]:
    counts = {1: args.events_1, 100: args.events_100, 1000: args.events_1000}
    needed = max(counts.values()) + 1000 * args.latency_batches
    pool = [event_to_proto(e) for e in generate_swarm(agents=8, events_per_agent=needed // 8 + 1)]
    rows = []
    for size, count in counts.items():
        batches = make_batches(pool[:count], size)
        probe = make_batches(pool[count : count + size * args.latency_batches], size)
        result: dict[str, float] = {"batch": size, "events": count}
        runs: dict[str, list[float]] = {"echo": [], "swarmlearn": []}
        loaded: dict[str, list[float]] = {"echo": [], "swarmlearn": []}
        idle: dict[str, list[float]] = {"echo": [], "swarmlearn": []}
        # Alternate the two servers, so that the machine's slow and fast spells hit both alike.
        for _ in range(args.repeat):
            for name in ("echo", "swarmlearn"):
                eps, latencies, idle_latencies = await run_once(name, batches, probe, args.synchronous)
                runs[name].append(eps)
                loaded[name] += latencies
                idle[name] += idle_latencies
        for name in ("echo", "swarmlearn"):
            result[f"{name}_eps"] = statistics.median(runs[name])
            result[f"{name}_eps_min"] = min(runs[name])
            result[f"{name}_eps_max"] = max(runs[name])
            result[f"{name}_p50_ms"] = percentile(loaded[name], 50) * 1e3
            result[f"{name}_p99_ms"] = percentile(loaded[name], 99) * 1e3
            result[f"{name}_idle_p50_ms"] = percentile(idle[name], 50) * 1e3
            result[f"{name}_idle_p99_ms"] = percentile(idle[name], 99) * 1e3
        result["ratio"] = statistics.median(s / e for s, e in zip(runs["swarmlearn"], runs["echo"], strict=True))
        rows.append(result)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--echo-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--events-1", type=int, default=5_000)
    parser.add_argument("--events-100", type=int, default=100_000)
    parser.add_argument("--events-1000", type=int, default=200_000)
    parser.add_argument("--latency-batches", type=int, default=100, help="batches sent one at a time")
    parser.add_argument("--repeat", type=int, default=3, help="runs per server and batch size (median shown)")
    parser.add_argument("--synchronous", default="FULL", choices=("FULL", "NORMAL"))
    args = parser.parse_args()
    if args.echo_server:
        asyncio.run(run_echo_server(args.echo_server))
        return
    rows = asyncio.run(measure(args))
    print(
        f"# {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"python {platform.python_version()}, grpcio {grpc.__version__}, sqlite synchronous={args.synchronous}"
    )
    print(f"# median of {args.repeat} runs per cell (min-max in brackets); ratio: median of paired runs")
    print(
        "| batch | echo ev/s | swarmlearn ev/s | ratio | echo ack p50/p99 ms, 1 in flight "
        "| swarmlearn ack p50/p99 ms, 1 in flight | swarmlearn ack p50/p99 ms, 20k events in flight |"
    )
    print("|---" * 7 + "|")
    for r in rows:
        print(
            f"| {r['batch']:.0f} | {r['echo_eps']:,.0f} [{r['echo_eps_min']:,.0f}-{r['echo_eps_max']:,.0f}] "
            f"| {r['swarmlearn_eps']:,.0f} [{r['swarmlearn_eps_min']:,.0f}-{r['swarmlearn_eps_max']:,.0f}] "
            f"| {r['ratio']:.3f} "
            f"| {r['echo_idle_p50_ms']:.2f} / {r['echo_idle_p99_ms']:.2f} "
            f"| {r['swarmlearn_idle_p50_ms']:.2f} / {r['swarmlearn_idle_p99_ms']:.2f} "
            f"| {r['swarmlearn_p50_ms']:.0f} / {r['swarmlearn_p99_ms']:.0f} |"
        )


if __name__ == "__main__":
    main()
