"""The daemon's lifecycle: open the store, serve gRPC, and stop without losing acked data."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import shutil
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio  # type: ignore[attr-defined]
from grpc_reflection.v1alpha import reflection

from swarmlearn._version import __version__
from swarmlearn.config import Settings
from swarmlearn.ingest import Ingestor
from swarmlearn.jobs import JobManager, JobSettings
from swarmlearn.layout import DataDir
from swarmlearn.online import Drift, OnlineLearner, WorkerSettings
from swarmlearn.registry import ModelRegistry
from swarmlearn.server._errors import RETRY_AFTER_MS
from swarmlearn.server._interceptor import RequestInterceptor
from swarmlearn.server._metrics import Metrics
from swarmlearn.server._sdnotify import notify
from swarmlearn.server._security import TokenChecker, check_exposure, load_tokens, server_credentials
from swarmlearn.server._servicer import SwarmLearnServicer
from swarmlearn.server._status import StatusReport
from swarmlearn.store import EventStore, Retention, StoreClosed, WriteFailed
from swarmlearn_client.v1 import service_pb2, service_pb2_grpc

log = logging.getLogger(__name__)

SERVICE_NAME = service_pb2.DESCRIPTOR.services_by_name["SwarmLearn"].full_name


class DataDirLocked(RuntimeError):
    """Another daemon already uses this data directory."""


class AddressUnavailable(OSError):
    """The daemon cannot listen on an address it was given; the message names it and its setting."""


def _lock_data_dir(data_dir: Path) -> IO[str]:
    data_dir.mkdir(parents=True, exist_ok=True)
    # "a", not "w": opening must not wipe the pid of a daemon that holds the lock.
    handle = open(DataDir(data_dir).lock, "a")  # noqa: SIM115 - held for the daemon's life
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise DataDirLocked(f"{data_dir} is in use by another swarmlearn daemon") from None
    handle.truncate(0)
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


class DaemonServer:
    """One daemon in the current event loop: ``await start()``, then ``await stop()``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.address = ""
        self._lock: IO[str] | None = None
        self._store: EventStore | None = None
        self._online: OnlineLearner | None = None
        self._jobs: JobManager | None = None
        self.drift_listeners: list[Callable[[Drift], object]] = []
        """Called on the event loop for every new drift (not for drifts replayed after a restart):
        the training scheduler's trigger."""
        self._grpc: grpc.aio.Server | None = None  # created
        self._server: grpc.aio.Server | None = None  # serving
        self._health = health_aio.HealthServicer()
        self._prober: asyncio.Task[None] | None = None
        self._retainer: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()
        self._stopped = asyncio.Event()
        self.failure: str | None = None
        self.failed = asyncio.Event()
        self.metrics = Metrics(__version__)
        self.metrics_address = ""
        self.started_at = time.time()

    @property
    def store(self) -> EventStore:
        assert self._store is not None, "daemon not started"
        return self._store

    async def start(self) -> str:
        """Open the store, bind, serve; returns the bound address (the real port if 0 was asked).

        If anything fails, what was already acquired (writer process, metrics port, lock) is
        released before the error propagates, so a retry on the same data directory can work.
        """
        try:
            return await self._start()
        except BaseException:
            await self._abandon()
            raise

    @property
    def online(self) -> OnlineLearner:
        assert self._online is not None, "daemon not started"
        return self._online

    async def _abandon(self) -> None:
        if self._retainer is not None:
            self._retainer.cancel()
        if self._grpc is not None:
            await self._grpc.stop(None)
        if self._jobs is not None:
            await self._jobs.stop()
            self._jobs = None
        if self._online is not None:
            await self._online.stop()
            self._online = None
        if self._store is not None:
            await asyncio.to_thread(self._store.close)
            self._store = None
        self.metrics.close()
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    async def _start(self) -> str:
        settings = self.settings
        check_exposure(settings)
        _check_bindable(settings.listen)  # before anything is started that would have to be stopped again
        credentials = server_credentials(settings)
        tokens = TokenChecker(load_tokens(settings.auth_token_file)) if settings.auth_token_file else None
        self._lock = _lock_data_dir(settings.data_dir)
        loop = asyncio.get_running_loop()
        self._store = EventStore(
            settings.db_path,
            synchronous=settings.sqlite_synchronous,
            group_commit_max_events=settings.group_commit_max_events,
            on_writer_exit=lambda reason: loop.call_soon_threadsafe(self._fail, reason),
            on_write_failure=lambda _: loop.call_soon_threadsafe(self._writes_changed),
        )
        self.metrics.track_store(lambda: self.store.durable_sequence, lambda: self.store.size_bytes())
        self.registry = ModelRegistry(DataDir(settings.data_dir).models)
        self._online = OnlineLearner(
            settings.db_path,
            settings.data_dir,
            WorkerSettings(
                snapshot_interval_s=settings.online_snapshot_interval_s,
                max_wait_s=settings.online_max_wait_s,
                answer_within_s=settings.predict_answer_within_s,
                max_lag_events=settings.online_max_lag_events,
                stop_timeout_s=settings.online_stop_timeout_s,
                shards=settings.online_workers,
                resident_agents=settings.online_resident_agents,
                prompt_resident_agents=settings.prompt_resident_agents,
            ),
            log_sequence=self._store.durable_sequence,
            on_drift=self._drift,
            registry=self.registry,
        )
        self._online.start()
        self.metrics.track_online(self._online)
        ingestor = Ingestor(self._store, max_agents=settings.max_agents, on_commit=self._committed)
        self._jobs = JobManager(
            settings.data_dir,
            settings.db_path,
            self.registry,
            JobSettings.from_settings(settings),
            durable_sequence=lambda: self.store.durable_sequence,
            knows_agent=ingestor.knows,
        )
        self._jobs.configure_schedule(
            every_events=settings.retrain_every_events,
            every_s=settings.retrain_every_s,
            on_drift=settings.retrain_on_drift,
            model_kind=settings.retrain_model_kind,
        )
        self.drift_listeners.append(self._jobs.drifted)
        self._jobs.start()
        if settings.retention_max_age_s or settings.retention_max_events:
            self._retainer = asyncio.create_task(self._retain(), name="swarmlearn-retention")
        if settings.metrics_listen:
            self.metrics_address = _serve_metrics(self.metrics, settings.metrics_listen)
        self._grpc = server = grpc.aio.server(
            interceptors=[RequestInterceptor(self.metrics, tokens)],
            options=[
                ("grpc.max_receive_message_length", settings.max_message_bytes),
                ("grpc.max_send_message_length", settings.max_message_bytes),
                ("grpc.so_reuseport", 0),
            ],
        )
        servicer = SwarmLearnServicer(
            settings,
            self._store,
            ingestor,
            self._online,
            self._jobs,
            self.registry,
            self._closing,
            self.metrics,
            self.status,
        )
        service_pb2_grpc.add_SwarmLearnServicer_to_server(servicer, server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
            server,
        )
        # A unix socket is created with the process umask: make it private from the start rather
        # than chmod-ing after others could have connected. (The umask is process-wide, so it is
        # changed for unix sockets only.)
        unix = settings.listen.startswith("unix:")
        previous = os.umask(0o177) if unix else None
        try:
            self.address = _bind(server, settings.listen, credentials)
            await server.start()
        finally:
            if previous is not None:
                os.umask(previous)
        if settings.listen.startswith("unix:") and settings.socket_group:
            path = settings.listen[len("unix:") :]
            shutil.chown(path, group=settings.socket_group)
            os.chmod(path, 0o660)
        await self._health.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
        self._server = server
        log.info(
            "serving on %s (%s), data in %s (%d events stored)%s",
            self.address,
            _protection(settings),
            settings.data_dir,
            self._store.durable_sequence,
            f", metrics on http://{self.metrics_address}/metrics" if self.metrics_address else "",
        )
        return self.address

    def status(self, ingest_streams: int) -> StatusReport:
        """Called on a worker thread by GetStatus: the reads below touch the disk."""
        settings = self.settings
        events, agents = self.store.totals()
        return StatusReport(
            version=__version__,
            started_at=self.started_at,
            uptime_s=time.time() - self.started_at,
            listen=self.address,
            tls=settings.tls,
            client_certificates_required=settings.tls_client_ca is not None,
            token_auth=settings.auth_token_file is not None,
            data_dir=str(settings.data_dir.resolve()),
            events_stored=events,
            durable_sequence=self.store.durable_sequence,
            event_log_bytes=self.store.size_bytes(),
            agent_count=agents,
            ingest_streams=ingest_streams,
            online_sequence=self.online.applied_seq,
            online_agents=self.online.agents,
            online_running=self.online.ready,
            online_restarts=self.online.restarts,
            online_workers=settings.online_workers,
        )

    def _committed(self, seq: int) -> None:
        self.online.committed(seq)
        if self._jobs is not None:
            self._jobs.committed(seq)

    def _drift(self, drift: Drift) -> None:
        if drift.replayed:
            return
        self.metrics.drifts.labels(drift.target).inc()
        for listener in self.drift_listeners:
            listener(drift)

    async def _retain(self) -> None:
        """Every ``retention_interval_s``, a sweep of the log (``store._retention``) that keeps what
        the online learners need to restart from their snapshots."""
        settings = self.settings
        while True:
            await asyncio.sleep(settings.retention_interval_s)
            rule = Retention(
                max_age_s=settings.retention_max_age_s,
                max_events=settings.retention_max_events,
                keep_from=self.online.needed_from,
                now=time.time(),
            )
            try:
                result = await asyncio.wrap_future(self.store.sweep(rule))
            except StoreClosed:
                return
            except WriteFailed:  # logged by the store; the next sweep goes on from where this one stopped
                continue
            self.metrics.record_sweep(result)
            if result.deleted or result.released_pages:
                log.info(
                    "retention: %d events deleted, the log starts at sequence %d; %d free pages released",
                    result.deleted, result.first_sequence, result.released_pages,
                )  # fmt: skip

    def _writes_changed(self) -> None:
        if self.store.write_failure is not None and (self._prober is None or self._prober.done()):
            self._prober = asyncio.ensure_future(self._follow_writes())

    async def _follow_writes(self) -> None:
        """Health NOT_SERVING while commits fail, SERVING again once one succeeds. A probe every
        RETRY_AFTER_MS finds out when the disk takes writes again even if no client sends (as none
        should, told NOT_SERVING)."""
        while self.store.write_failure is not None:
            await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
            while self.store.write_failure is not None:
                await asyncio.sleep(RETRY_AFTER_MS / 1000)
                with contextlib.suppress(WriteFailed, StoreClosed):
                    await asyncio.wrap_future(self.store.probe())
            await self._set_health(health_pb2.HealthCheckResponse.SERVING)

    async def _set_health(self, status: health_pb2.HealthCheckResponse.ServingStatus) -> None:
        for service in ("", SERVICE_NAME):
            await self._health.set(service, status)

    def _fail(self, reason: str) -> None:
        """The daemon can no longer store events: stop admitting them and say so."""
        self.failure = reason
        self.failed.set()
        self._health_update = asyncio.ensure_future(self._health.enter_graceful_shutdown())

    async def stop(self) -> None:
        """Health NOT_SERVING, no new RPCs, in-flight batches committed and acked, store closed."""
        if self._stopped.is_set() or self._server is None:
            return
        log.info("stopping: finishing in-flight batches (grace %.1f s)", self.settings.grace_period_s)
        await self._health.enter_graceful_shutdown()
        self._closing.set()
        for task in (self._prober, self._retainer):
            if task is not None:
                task.cancel()
        await self._server.stop(self.settings.grace_period_s)
        if self._jobs is not None:
            await self._jobs.stop()
        if self._online is not None:
            await self._online.stop()
        if self._store is not None:
            await asyncio.to_thread(self._store.close)
        self.metrics.close()
        if self._lock is not None:
            self._lock.close()
        self._stopped.set()
        log.info("stopped")

    async def wait_stopped(self) -> None:
        await self._stopped.wait()


def _protection(settings: Settings) -> str:
    parts = ["mutual TLS" if settings.tls_client_ca else "TLS" if settings.tls else "plaintext"]
    if settings.auth_token_file:
        parts.append("bearer tokens")
    return ", ".join(parts)


def _check_bindable(listen: str) -> None:
    """Refuse a TCP address something else listens on before a gRPC server is made for it: a server
    whose port could not be added and that never started crashes the process when it is freed later
    (a SIGSEGV in gRPC's core, seen in the test suite), so the common case must not make one."""
    if listen.startswith("unix:"):
        return
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or int(port) == 0:
        return  # gRPC says what is wrong with it; port 0 always binds
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gRPC binds: TIME_WAIT is no conflict
            probe.bind((host, int(port)))
    except OSError as exc:  # anything but "in use" (a name, a family this host lacks) is gRPC's to report
        if exc.errno == errno.EADDRINUSE:
            raise AddressUnavailable(f"setting listen: cannot bind {listen}: {exc.strerror}") from exc


def _bind(server: grpc.aio.Server, listen: str, credentials: grpc.ServerCredentials | None) -> str:
    try:
        port = server.add_insecure_port(listen) if credentials is None else server.add_secure_port(listen, credentials)
    except RuntimeError as exc:
        # grpc says only "Failed to bind" (the reason goes to its own debug log), and nothing of which
        # setting gave the address.
        unix = listen.startswith("unix:")
        why = "no socket can be made at that path" if unix else "the address is in use, or not one of this host's"
        raise AddressUnavailable(f"setting listen: cannot bind {listen}: {why}") from exc
    if listen.startswith("unix:"):
        return listen
    host = listen.rsplit(":", 1)[0]
    return f"{host}:{port}"


def _serve_metrics(metrics: Metrics, listen: str) -> str:
    try:
        return metrics.serve(listen)
    except OSError as exc:  # "[Errno 98] Address already in use" names neither the address nor the setting
        raise AddressUnavailable(
            f"setting metrics_listen: cannot bind {listen}: {exc.strerror or exc}; "
            'choose another port, or "" to turn metrics off'
        ) from exc


async def serve(settings: Settings) -> int:
    """Run until SIGTERM or SIGINT (exit code 0) or a fatal failure (1), stopping gracefully."""
    loop = asyncio.get_running_loop()
    stop_requested = asyncio.Event()
    # Handlers first: a SIGTERM that arrives while starting (or right after READY) still stops
    # the daemon gracefully instead of killing it.
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop_requested.set)
    daemon = DaemonServer(settings)
    await daemon.start()
    # Only here, not in DaemonServer: a host that embeds the daemon answers to systemd itself.
    notify(f"READY=1\nSTATUS=serving on {daemon.address}")
    waits = [asyncio.create_task(stop_requested.wait()), asyncio.create_task(daemon.failed.wait())]
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for task in waits:
        task.cancel()
    notify("STOPPING=1" if daemon.failure is None else f"STOPPING=1\nSTATUS=failed: {daemon.failure}")
    await daemon.stop()
    if daemon.failure is not None:
        log.critical("stopped after a fatal failure: %s", daemon.failure)
        return 1
    return 0
