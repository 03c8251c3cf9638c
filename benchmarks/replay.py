"""Predict as clients use it: real and synthetic streams replayed one event at a time (EVALUATION.md,
"Online predictions").

    python benchmarks/replay.py [--data vm,stress] [--mode rpc|inprocess] [--agents N] [--events N]
                                [--concurrency 24] [--seed 7] [--json FILE]

Per agent, in timestamp order: before each event from the second on, ``Predict(agent, horizon=1,
coverage=0.8)``; then the event is ingested and its ack awaited, so the next Predict sees it (an
answer whose ``as_of_sequence`` is below the ack's ``durable_sequence``, from a learner that lags
under the replay's load, is asked again). The
same observations feed four simple predictors, each predicting before it learns: naive (the last
value), EWMA 0.1 and 0.3 (started at the first value) and the running mean.

What a target observes is the question clients ask: "how long will the next successful call take,
and how fast will it stream". An event scores ``latency_ms`` and ``tokens_per_second`` when it is an
outcome (TaskCompleted, ResponseReceived, PerformanceUpdate) that succeeded (success_rate >= 0.5 or
unset) and carries the value. The simple predictors learn from exactly those observations; the
daemon is sent every event as it happened (TaskStarted events without metrics, failures with zero
metrics) and must work out what they mean.

Data sets:

- ``vm``: the 48 streams of ``shared/data/vm_noise_pg_westus2`` (one CSV per agent: latency_ms,
  throughput -> tokens_per_second, success_rate 1, PerformanceUpdate).
- ``stress``: synthetic LLM request streams, generated here from ``--seed``: lognormal bodies with
  Pareto tails, isolated artefacts (tokens/s x1000 and latency /1000 from a near-zero generation
  time), timeouts at a cap (failures), failed requests with zero metrics, TaskStarted events with no
  metrics before about half the completions, level shifts at known events, short (150 events) and
  long (2,000) streams.

Modes: ``rpc`` (default) runs a real ``swarmlearn serve`` on loopback and talks to it over gRPC with
the generated stubs (the wire bytes are the same for any daemon version, so an older checkout can be
measured with ``--src``); ``inprocess`` feeds the same protobuf events through the daemon's own
decode, validation and online learner in this process, without transport or store (fast, for
design work; the figures to report are the rpc ones).

Printed per data set and target: the geometric mean over agents of MAE / MAE(naive) for the daemon
and each simple predictor (``gm_vs_naive``), the daemon's geometric mean against the best simple
predictor of each agent (``gm_vs_best``), the worst agent's MAE / MAE(naive) and how many agents are
above 1, 1.05 and 1.10; the share of events inside the daemon's 80 % interval overall, in each
agent's first 100 scored events and in the 100 scored events after each known shift; non-finite
answers; and events replayed per second.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import math
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from swarmlearn_client.v1 import agents_pb2, daemon_pb2, events_pb2, jobs_pb2, service_pb2_grpc

TARGETS = ("latency_ms", "tokens_per_second")
COVERAGE = 0.8
FIRST_EVENTS = 100
AFTER_SHIFT = 100
SIMPLE = ("naive", "ewma0.1", "ewma0.3", "mean")
OUTCOMES = (
    events_pb2.EVENT_TYPE_TASK_COMPLETED,
    events_pb2.EVENT_TYPE_RESPONSE_RECEIVED,
    events_pb2.EVENT_TYPE_PERFORMANCE_UPDATE,
)
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@dataclass
class Stream:
    """One agent's events, in the order they happened, and the indices where a known shift begins."""

    agent_id: str
    events: list[events_pb2.StreamEvent]
    shifts: list[int] = field(default_factory=list)


# -- data sets ---------------------------------------------------------------------------------------


def _stamp(seconds: float) -> Timestamp:
    ts = Timestamp()
    ts.FromNanoseconds(round(seconds * 1e9))
    return ts


def _event(
    agent: str, index: int, seconds: float, kind: int, metrics: dict[str, float] | None
) -> events_pb2.StreamEvent:
    """A StreamEvent whose metrics are set only where given (unset is absent on the wire). The
    metrics message is always present, as ``make_event`` has always sent it: to a daemon whose
    contract has no field presence, an event without metrics reads as zeros."""
    event = events_pb2.StreamEvent(
        event_id=f"{agent}-{index}", timestamp=_stamp(seconds), agent_id=agent, event_type=kind
    )
    event.performance_metrics.SetInParent()
    for name, value in (metrics or {}).items():
        setattr(event.performance_metrics, name, value)
    return event


def vm_streams(root: Path, agents: int | None, limit: int | None) -> list[Stream]:
    files = sorted((root / "vm_noise_pg_westus2").glob("*.csv"))[:agents]
    if not files:
        raise SystemExit(f"no CSV files under {root / 'vm_noise_pg_westus2'} (--data-dir)")
    streams = []
    for path in files:
        agent = path.stem
        rows = []
        with path.open() as handle:
            for row in csv.DictReader(handle):
                seconds = datetime.fromisoformat(row["timestamp"]).timestamp()
                rows.append((seconds, float(row["latency_ms"]), float(row["throughput"])))
        rows.sort(key=lambda r: r[0])
        update = events_pb2.EVENT_TYPE_PERFORMANCE_UPDATE
        events = [
            _event(
                agent, i, seconds, update, {"latency_ms": latency, "tokens_per_second": throughput, "success_rate": 1.0}
            )
            for i, (seconds, latency, throughput) in enumerate(rows[:limit])
        ]
        streams.append(Stream(agent, events))
    return streams


def stress_streams(seed: int, agents: int | None, limit: int | None) -> list[Stream]:
    """LLM request streams with what real ones have and clean ones lack; reproducible from ``seed``."""
    rng = random.Random(seed)
    streams = []
    for a in range(agents or 300):
        agent = f"llm-{a:03d}"
        long = rng.random() < 0.15
        tasks = 1000 if long else 100
        latency = math.exp(rng.uniform(math.log(200), math.log(8000)))  # median ms
        speed = math.exp(rng.uniform(math.log(8), math.log(150)))  # median tokens/s
        sigma = rng.uniform(0.15, 0.7)
        tail = rng.uniform(1.5, 3.0)  # Pareto shape of the occasional slow request
        cap = rng.choice((30_000.0, 60_000.0, 120_000.0))
        shift_at = rng.randrange(tasks // 4, 3 * tasks // 4) if rng.random() < 0.4 else None
        factor = rng.choice((0.4, 0.5, 2.0, 2.5, 4.0))
        seconds = 1.7e9 + rng.uniform(0, 86_400)
        events: list[events_pb2.StreamEvent] = []
        shifts = []
        for t in range(tasks):
            seconds += rng.expovariate(1 / 20.0)
            if t == shift_at:
                latency *= factor
                speed /= factor
                shifts.append(len(events))
            if rng.random() < 0.5:  # the start of the task: no outcome yet
                events.append(_event(agent, len(events), seconds, events_pb2.EVENT_TYPE_TASK_STARTED, None))
                seconds += 0.001
            body = rng.gauss(0.0, sigma)
            if rng.random() < 0.03:
                body += math.log(rng.paretovariate(tail))  # a slow request
            lat = latency * math.exp(body)
            tps = speed * math.exp(0.6 * rng.gauss(0.0, sigma) - 0.3 * body)
            roll = rng.random()
            if roll < 0.03:  # failed: zero metrics
                metrics = {"latency_ms": 0.0, "tokens_per_second": 0.0, "success_rate": 0.0}
            elif roll < 0.05 or lat > cap:  # timed out at the cap
                metrics = {"latency_ms": cap, "tokens_per_second": 0.0, "success_rate": 0.0}
            elif roll < 0.057:  # an artefact: a near-zero generation time
                metrics = {"latency_ms": lat / 1000, "tokens_per_second": tps * 1000, "success_rate": 1.0}
            else:
                metrics = {"latency_ms": lat, "tokens_per_second": tps, "success_rate": 1.0}
            kind = rng.choice((events_pb2.EVENT_TYPE_TASK_COMPLETED, events_pb2.EVENT_TYPE_RESPONSE_RECEIVED))
            events.append(_event(agent, len(events), seconds + lat / 1000, kind, metrics))
        # In time order, as the agent reports them (a slow completion may land after the next start).
        order = sorted(range(len(events)), key=lambda i: events[i].timestamp.ToNanoseconds())
        position = {old: new for new, old in enumerate(order)}
        events = [events[i] for i in order][:limit]
        streams.append(Stream(agent, events, [position[s] for s in shifts if limit is None or position[s] < limit]))
    return streams


def observed(event: events_pb2.StreamEvent, target: str) -> float | None:
    """The value of ``target`` this event observes, or None (see the module's docstring)."""
    if event.event_type not in OUTCOMES or not event.HasField("performance_metrics"):
        return None
    metrics = event.performance_metrics

    # Read with HasField where the field has presence (the contract since it was made optional);
    # with a contract without presence, every field counts as set.
    def has(name: str) -> bool:
        try:
            return metrics.HasField(name)
        except ValueError:
            return True

    if has("success_rate") and metrics.success_rate < 0.5:
        return None
    return getattr(metrics, target) if has(target) else None


# -- the simple predictors ---------------------------------------------------------------------------


class Simple:
    """naive, EWMA 0.1, EWMA 0.3 and the running mean, each predicting before it learns."""

    def __init__(self) -> None:
        self.n = 0
        self.last = self.e1 = self.e3 = self.total = 0.0

    def predict(self) -> tuple[float, float, float, float] | None:
        if not self.n:
            return None
        return self.last, self.e1, self.e3, self.total / self.n

    def learn(self, y: float) -> None:
        if not self.n:
            self.e1 = self.e3 = y
        else:
            self.e1 += 0.1 * (y - self.e1)
            self.e3 += 0.3 * (y - self.e3)
        self.last = y
        self.total += y
        self.n += 1


@dataclass
class TargetRecord:
    """Per agent and target: absolute errors of each predictor, and interval hits, on scored events."""

    errors: dict[str, list[float]] = field(default_factory=lambda: {name: [] for name in ("daemon", *SIMPLE)})
    inside: list[bool] = field(default_factory=list)
    position: list[int] = field(default_factory=list)
    """The event index of each scored event (to find the ones after a shift)."""


@dataclass
class AgentRecord:
    targets: dict[str, TargetRecord] = field(default_factory=lambda: {t: TargetRecord() for t in TARGETS})
    non_finite_values: int = 0
    non_finite_bounds: int = 0
    errors: list[str] = field(default_factory=list)


Answer = dict[str, tuple[float, float, float]]  # target -> (value, lower, upper)


def score(
    record: AgentRecord, simple: dict[str, Simple], index: int, event: events_pb2.StreamEvent, answer: Answer | None
) -> None:
    """Score the answer made before ``event`` and the simple predictors, then let them learn it."""
    if answer is not None:
        for value, lower, upper in answer.values():
            record.non_finite_values += not math.isfinite(value)
            record.non_finite_bounds += not (math.isfinite(lower) and math.isfinite(upper))
    for target in TARGETS:
        y = observed(event, target)
        if y is None:
            continue
        before = simple[target].predict()
        if before is not None and answer is not None and target in answer:
            value, lower, upper = answer[target]
            out = record.targets[target]
            out.errors["daemon"].append(abs(y - value) if math.isfinite(value) else math.inf)
            for name, guess in zip(SIMPLE, before, strict=True):
                out.errors[name].append(abs(y - guess))
            out.inside.append(lower <= y <= upper)
            out.position.append(index)
        simple[target].learn(y)


# -- replaying ------------------------------------------------------------------------------------------


def _answer(response: agents_pb2.PredictResponse) -> Answer:
    """Step 1 of each target that has a forecast (one the agent has not observed yet has none)."""
    return {f.target: (f.points[0].value, f.points[0].lower, f.points[0].upper) for f in response.forecasts if f.points}


async def replay_rpc(
    streams: Sequence[Stream], concurrency: int, src: Path | None, champion: Champion | None = None
) -> tuple[dict[str, AgentRecord], float]:
    port = _free_port()
    with tempfile.TemporaryDirectory() as data_dir:
        daemon = _start_daemon(port, data_dir, src)
        target = f"127.0.0.1:{port}"
        try:
            async with grpc.aio.insecure_channel(target) as channel:
                await asyncio.wait_for(channel.channel_ready(), 60.0)
                stub = service_pb2_grpc.SwarmLearnStub(channel)
                records = {s.agent_id: AgentRecord() for s in streams}
                starts = dict.fromkeys((s.agent_id for s in streams), 0)
                if champion is not None:
                    starts = await _serve_a_champion(stub, streams, champion)
                queue: asyncio.Queue[Stream] = asyncio.Queue()
                for stream in streams:
                    queue.put_nowait(stream)

                # One Ingest stream per agent replayed at once, as the protocol asks; the daemon lets
                # one connection hold 16 (max_streams_per_connection), so the streams are spread over
                # connections of their own (a channel with a local subchannel pool has its own).
                workers = min(concurrency, len(streams))
                local = [("grpc.use_local_subchannel_pool", 1)]
                channels = [grpc.aio.insecure_channel(target, options=local) for _ in range(-(-workers // 16))]
                stubs = [service_pb2_grpc.SwarmLearnStub(c) for c in channels]

                async def worker(i: int) -> None:
                    ingest_stub = stubs[i % len(stubs)]
                    call = ingest_stub.Ingest()
                    while not queue.empty():
                        stream = queue.get_nowait()
                        await _replay_one(stub, call, stream, records[stream.agent_id], starts[stream.agent_id])
                    await call.done_writing()

                started = time.perf_counter()
                try:
                    await asyncio.gather(*(worker(i) for i in range(workers)))
                finally:
                    for extra in channels:
                        await extra.close()
                elapsed = time.perf_counter() - started
                status = await stub.GetStatus(daemon_pb2.GetStatusRequest())
                if status.events_stored != sum(len(s.events) for s in streams):
                    raise SystemExit(f"stored {status.events_stored} events of {sum(len(s.events) for s in streams)}")
        finally:
            daemon.terminate()
            daemon.wait(120)
    return records, elapsed


@dataclass
class Champion:
    """Serve a torch model: train it over RPC on the first ``share`` of every stream, promote it."""

    kind: str
    config_json: str
    max_epochs: int
    share: float


async def _serve_a_champion(
    stub: service_pb2_grpc.SwarmLearnStub, streams: Sequence[Stream], champion: Champion
) -> dict[str, int]:
    """Ingest the first ``share`` of each stream in bulk, train the swarm's model on it, promote it and
    wait until it answers; returns where each agent's replay starts."""
    starts = {s.agent_id: int(len(s.events) * champion.share) for s in streams}
    history = [e for s in streams for e in s.events[: starts[s.agent_id]]]
    batches = [
        events_pb2.EventBatch(batch_id=f"h{i}", events=history[i : i + 1000]) for i in range(0, len(history), 1000)
    ]
    async for _ in stub.Ingest(iter(batches)):
        pass
    job = await stub.StartTraining(
        jobs_pb2.StartTrainingRequest(
            model_kind=champion.kind, max_epochs=champion.max_epochs, config_json=champion.config_json
        )
    )
    states = [state async for state in stub.WatchJob(jobs_pb2.WatchJobRequest(job_id=job.job_id))]
    final = states[-1] if states else None
    if final is None or final.state != jobs_pb2.JOB_STATE_SUCCEEDED:
        raise SystemExit(f"training failed: {final.error if final else 'no job'}")
    print(f"# champion {final.model_version} ({final.note}); test metrics {dict(final.metrics)}", file=sys.stderr)
    await stub.PromoteModel(jobs_pb2.PromoteModelRequest(model_kind=champion.kind, version=1))
    agent = streams[0].agent_id
    for _ in range(600):
        answer = await stub.Predict(agents_pb2.PredictRequest(agent_id=agent))
        if answer.forecasts[0].model_kind.startswith("torch:"):
            return starts
        await asyncio.sleep(0.1)
    raise SystemExit("the champion never answered Predict")


async def _replay_one(
    stub: service_pb2_grpc.SwarmLearnStub, call: object, stream: Stream, record: AgentRecord, start: int = 0
) -> None:
    """The protocol from event ``start`` on; the events before it (already ingested) only teach the
    simple predictors."""
    simple = {t: Simple() for t in TARGETS}
    for event in stream.events[:start]:
        for target in TARGETS:
            y = observed(event, target)
            if y is not None:
                simple[target].learn(y)
    request = agents_pb2.PredictRequest(agent_id=stream.agent_id, horizon=1, coverage=COVERAGE)
    acked = 0
    for index, event in enumerate(stream.events):
        if index < start:
            continue
        answer = None
        if index:
            answer = await _predict(stub, request, acked, record)
        score(record, simple, index, event, answer)
        await call.write(events_pb2.EventBatch(batch_id=event.event_id, events=[event]))  # type: ignore[attr-defined]
        ack = await call.read()  # type: ignore[attr-defined]
        acked = ack.durable_sequence
        if ack.accepted != 1:
            record.errors.append(f"event {index} not accepted: {ack}")


async def _predict(
    stub: service_pb2_grpc.SwarmLearnStub, request: agents_pb2.PredictRequest, acked: int, record: AgentRecord
) -> Answer | None:
    """Predict as of the agent's last acknowledged event: an answer from a learner that has not applied
    it yet (``as_of_sequence`` lower: it lags under the replay's load) is asked again, as is UNAVAILABLE.
    The protocol measures what the daemon forecasts from the events it has, not how far it lags."""
    for _ in range(400):
        try:
            response = await stub.Predict(request)
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE:
                record.errors.append(f"{exc.code().name}: {exc.details()}")
                return None
        else:
            if response.as_of_sequence >= acked:
                return _answer(response)
        await asyncio.sleep(0.005)
    record.errors.append(f"no answer as of sequence {acked}")
    return None


def replay_inprocess(streams: Sequence[Stream]) -> tuple[dict[str, AgentRecord], float]:
    """The daemon's decode, validation and online learner, called directly (no transport, no store)."""
    from swarmlearn.errors import UnknownAgent
    from swarmlearn.events import validate_event
    from swarmlearn.online import OnlineState
    from swarmlearn.server._convert import decode_batch

    state = OnlineState()
    records = {s.agent_id: AgentRecord() for s in streams}
    seq = 0
    started = time.perf_counter()
    # Agents interleaved by time, as a swarm's events arrive.
    merged = sorted(
        ((event.timestamp.ToNanoseconds(), s.agent_id, i, event) for s in streams for i, event in enumerate(s.events)),
        key=lambda row: (row[0], row[1], row[2]),
    )
    simple = {s.agent_id: {t: Simple() for t in TARGETS} for s in streams}
    for _, agent, index, event in merged:
        answer = None
        if index:
            try:
                forecasts = state.predict(agent, 1, COVERAGE)
            except UnknownAgent as exc:
                records[agent].errors.append(str(exc))
            else:
                answer = {
                    t: (f.points[0].value, f.points[0].lower, f.points[0].upper)
                    for t, f in forecasts.items()
                    if f.points
                }
        score(records[agent], simple[agent], index, event, answer)
        decoded, rejected = decode_batch([event], 1)
        if rejected or validate_event(decoded[0][1]) is not None:
            records[agent].errors.append(f"event {index} rejected: {rejected or validate_event(decoded[0][1])}")
            continue
        seq += 1
        state.learn(decoded[0][1], seq)
    return records, time.perf_counter() - started


def learner_rate(streams: Sequence[Stream]) -> float:
    """Events/s of the online learner alone (decoded events, learned in time order, no predictions)."""
    from swarmlearn.online import OnlineState
    from swarmlearn.server._convert import decode_batch

    decoded = [e for s in streams for _, e in decode_batch(s.events, len(s.events))[0]]
    decoded.sort(key=lambda e: e.timestamp)
    state = OnlineState()
    started = time.perf_counter()
    for seq, event in enumerate(decoded, start=1):
        state.learn(event, seq)
    return len(decoded) / (time.perf_counter() - started)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_daemon(port: int, data_dir: str, src: Path | None) -> subprocess.Popen[bytes]:
    env = dict(os.environ, SWARMLEARN_LOG_LEVEL="WARNING", SWARMLEARN_METRICS_LISTEN="")
    if src is not None:  # another checkout's daemon and client code, with this environment's packages
        env["PYTHONPATH"] = os.pathsep.join([str(src / "daemon"), str(src / "client")])
    cmd = [sys.executable, "-m", "swarmlearn", "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data_dir]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, cwd=data_dir)


# -- summaries ---------------------------------------------------------------------------------------


def _mae(errors: list[float]) -> float:
    return sum(errors) / len(errors)


def _gm(ratios: Iterable[float]) -> float:
    values = [r for r in ratios if math.isfinite(r) and r > 0]
    return math.exp(statistics.fmean(math.log(r) for r in values)) if values else math.nan


def _share(hits: list[bool]) -> float:
    return sum(hits) / len(hits) if hits else math.nan


def summarise(streams: Sequence[Stream], records: dict[str, AgentRecord], target: str) -> dict[str, float | str]:
    by_naive: dict[str, list[float]] = {name: [] for name in ("daemon", *SIMPLE)}
    vs_best, worst, worst_agent, skipped = [], 0.0, "", 0
    inside, first, after = [], [], []
    for stream in streams:
        out = records[stream.agent_id].targets[target]
        if not out.errors["naive"]:
            skipped += 1
            continue
        mae = {name: _mae(errors) for name, errors in out.errors.items()}
        best = min(mae[name] for name in SIMPLE)
        if mae["naive"] == 0 or best == 0:
            skipped += 1
            continue
        for name in by_naive:
            by_naive[name].append(mae[name] / mae["naive"])
        vs_best.append(mae["daemon"] / best)
        if mae["daemon"] / mae["naive"] > worst:
            worst, worst_agent = mae["daemon"] / mae["naive"], stream.agent_id
        inside.extend(out.inside)
        first.extend(out.inside[:FIRST_EVENTS])
        for shift in stream.shifts:
            after.extend([hit for hit, at in zip(out.inside, out.position, strict=True) if at >= shift][:AFTER_SHIFT])
    ratios = by_naive["daemon"]
    per_agent = [
        _share(records[s.agent_id].targets[target].inside)
        for s in streams
        if records[s.agent_id].targets[target].inside
    ]
    return {
        "agents": len(ratios),
        "skipped": skipped,
        **{f"gm_vs_naive.{name}": _gm(values) for name, values in by_naive.items()},
        "gm_vs_best": _gm(vs_best),
        "worst_vs_naive": worst,
        "worst_agent": worst_agent,
        "above_naive": sum(r > 1 for r in ratios),
        "above_naive_5pct": sum(r > 1.05 for r in ratios),
        "above_naive_10pct": sum(r > 1.10 for r in ratios),
        "coverage": _share(inside),
        "coverage_first_100": _share(first),
        "coverage_after_shift": _share(after),
        "agents_covered_within_5": sum(abs(c - COVERAGE) <= 0.05 for c in per_agent) / max(1, len(per_agent)),
        "scored": len(inside),
    }


def print_table(name: str, rows: dict[str, dict[str, float | str]], extra: dict[str, float]) -> None:
    e = extra
    print(f"\n## {name}: {e['agents']:.0f} agents, {e['events']:.0f} events")
    print(
        f"replayed {e['replay_rate']:,.0f} ev/s ({e['mode']}); learner alone {e['learner_rate']:,.0f} ev/s; non-finite"
        f" values {e['non_finite_values']:.0f}, bounds {e['non_finite_bounds']:.0f}; RPC errors {e['rpc_errors']:.0f}"
    )
    print()
    columns = (
        "target", "daemon", "naive", "EWMA 0.1", "EWMA 0.3", "mean", "daemon vs best", "worst vs naive",
        "agents > naive (>5 %, >10 %)", "coverage", "first 100", "after shift", "agents within 5 pts",
    )  # fmt: skip
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for target, s in rows.items():
        cells = [
            target,
            *(f"{s[f'gm_vs_naive.{name}']:.3f}" for name in ("daemon", *SIMPLE)),
            f"**{s['gm_vs_best']:.3f}**",
            f"{s['worst_vs_naive']:.2f} ({s['worst_agent']})",
            f"{s['above_naive']} ({s['above_naive_5pct']}, {s['above_naive_10pct']}) of {s['agents']}",
            *(f"{s[key]:.3f}" for key in ("coverage", "coverage_first_100", "coverage_after_shift")),
            f"{s['agents_covered_within_5']:.0%}",
        ]
        print("| " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="vm,stress", help="comma-separated: vm, stress")
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("SWARMLEARN_SHARED_DATA", DEFAULT_DATA)))
    parser.add_argument("--mode", choices=("rpc", "inprocess"), default="rpc")
    parser.add_argument("--agents", type=int, default=None, help="first N agents of each data set")
    parser.add_argument("--events", type=int, default=None, help="first N events of each agent")
    parser.add_argument("--concurrency", type=int, default=48, help="agents replayed at once (rpc; at most 64 streams)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--src", type=Path, default=None, help="run the daemon of another checkout (rpc)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--champion", default=None, help="a torch kind to train on the first --share and serve (rpc)")
    parser.add_argument("--champion-config", default='{"training": {"window": 20}}', help="its config_json")
    parser.add_argument("--champion-epochs", type=int, default=10)
    parser.add_argument("--share", type=float, default=0.5, help="of each stream, for the champion's training")
    args = parser.parse_args()

    print(
        f"# replay: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()},"
        f" {time.strftime('%Y-%m-%d %H:%M')}, daemon {args.src or 'this checkout'}"
    )
    report = {}
    for name in args.data.split(","):
        if name == "vm":
            streams = vm_streams(args.data_dir, args.agents, args.events)
        elif name == "stress":
            streams = stress_streams(args.seed, args.agents, args.events)
        else:
            raise SystemExit(f"unknown data set {name!r}")
        if args.mode == "rpc":
            champion = None
            if args.champion:
                champion = Champion(args.champion, args.champion_config, args.champion_epochs, args.share)
            records, elapsed = asyncio.run(replay_rpc(streams, args.concurrency, args.src, champion))
        else:
            records, elapsed = replay_inprocess(streams)
        events = sum(len(s.events) for s in streams)
        rows = {target: summarise(streams, records, target) for target in TARGETS}
        extra = {
            "agents": len(streams),
            "events": events,
            "mode": args.mode,
            "replay_rate": events / elapsed,
            "learner_rate": learner_rate(streams) if args.src is None else math.nan,
            "non_finite_values": sum(r.non_finite_values for r in records.values()),
            "non_finite_bounds": sum(r.non_finite_bounds for r in records.values()),
            "rpc_errors": sum(len(r.errors) for r in records.values()),
        }
        for agent, record in records.items():
            for error in record.errors[:3]:
                print(f"  {agent}: {error}", file=sys.stderr)
        print_table(name, rows, extra)
        report[name] = {"summary": extra, "targets": rows}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
