"""Prometheus metrics of one daemon, in a registry of its own (several daemons may share a process)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, start_http_server

from swarmlearn.ingest import IngestResult
from swarmlearn.online import OnlineLearner
from swarmlearn.store import SweepResult

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """Everything the daemon exports; later services add their families here."""

    def __init__(self, version: str) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        Info("swarmlearn_build", "Version of the daemon", registry=r).info({"version": version})
        self.events = Counter(
            "swarmlearn_ingest_events", "Events received by Ingest, by outcome", ["outcome"], registry=r
        )
        self.rejected = Counter(
            "swarmlearn_ingest_rejected_events", "Rejected events by the field at fault", ["field"], registry=r
        )
        self.batches = Counter("swarmlearn_ingest_batches", "Batches acknowledged", registry=r)
        self.ack_seconds = Histogram(
            "swarmlearn_ingest_ack_seconds",
            "From reading a batch to acknowledging it (includes the commit)",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.streams = Gauge("swarmlearn_ingest_streams", "Open Ingest streams", registry=r)
        self.rpc_seconds = Histogram(
            "swarmlearn_rpc_seconds", "Time to answer a unary RPC", ["method"], buckets=_LATENCY_BUCKETS, registry=r
        )
        self.rpc_errors = Counter(
            "swarmlearn_rpc_errors", "RPCs that ended with an error status", ["method", "code"], registry=r
        )
        self.sequence = Gauge("swarmlearn_event_log_sequence", "Highest committed sequence number", registry=r)
        self.log_bytes = Gauge(
            "swarmlearn_event_log_bytes", "Size of the event log on disk (database and WAL)", registry=r
        )
        self.retention_deleted = Counter(
            "swarmlearn_retention_deleted_events", "Events the retention sweeps deleted from the log", registry=r
        )
        self.first_sequence = Gauge(
            "swarmlearn_event_log_first_sequence",
            "Oldest sequence the event log keeps, as of the last retention sweep (0 before the first)",
            registry=r,
        )
        self.online_sequence = Gauge(
            "swarmlearn_online_sequence", "Event log sequence the online learner has applied", registry=r
        )
        self.online_restarts = Gauge(
            "swarmlearn_online_restarts", "Times an online learner process died and was restarted", registry=r
        )
        self.predict_reused = Gauge(
            "swarmlearn_predict_reused",
            "Predict answers given again from the agent's recent forecast while its learner was busy "
            "(setting predict_answer_within_s)",
            registry=r,
        )
        self.drifts = Counter(
            "swarmlearn_online_drifts",
            "Drifts ADWIN found in the online residuals (replays after a restart not counted), by target",
            ["target"],
            registry=r,
        )
        self.snapshot_bytes = Gauge(
            "swarmlearn_online_snapshot_bytes", "Size of the last online snapshots (all learner processes)", registry=r
        )
        self.snapshot_seconds = Gauge(
            "swarmlearn_online_snapshot_seconds", "Longest time the last online snapshots took to write", registry=r
        )
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def track_store(self, sequence: Callable[[], float], size: Callable[[], float]) -> None:
        """Read at scrape time, so the ingest path does no bookkeeping for them."""
        self.sequence.set_function(sequence)
        self.log_bytes.set_function(size)

    def track_online(self, learner: OnlineLearner) -> None:
        self.online_sequence.set_function(lambda: learner.applied_seq)
        self.online_restarts.set_function(lambda: learner.restarts)
        self.predict_reused.set_function(lambda: learner.reused)
        self.snapshot_bytes.set_function(lambda: learner.snapshot_bytes)
        self.snapshot_seconds.set_function(lambda: learner.snapshot_seconds)

    def record_ack(self, result: IngestResult, seconds: float) -> None:
        self.batches.inc()
        self.ack_seconds.observe(seconds)
        if result.accepted:
            self.events.labels("accepted").inc(result.accepted)
        if result.duplicates:
            self.events.labels("duplicate").inc(result.duplicates)
        if result.rejected:
            self.events.labels("rejected").inc(len(result.rejected))
            for rejection in result.rejected:
                self.rejected.labels(rejection.field.split(".", 1)[0]).inc()

    def record_sweep(self, result: SweepResult) -> None:
        self.retention_deleted.inc(result.deleted)
        self.first_sequence.set(result.first_sequence)

    def serve(self, listen: str) -> str:
        """Serve ``/metrics`` over HTTP on ``host:port`` (port 0 picks one); returns the address."""
        host, _, port = listen.rpartition(":")
        self._server, self._thread = start_http_server(int(port), addr=host.strip("[]"), registry=self.registry)
        return f"{host}:{self._server.server_port}"

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
