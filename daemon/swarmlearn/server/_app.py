"""The daemon's lifecycle: open the store, serve gRPC, and stop without losing acked data."""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import signal
from pathlib import Path
from typing import IO

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio  # type: ignore[attr-defined]
from grpc_reflection.v1alpha import reflection

from swarmlearn.config import Settings
from swarmlearn.ingest import Ingestor
from swarmlearn.server._servicer import SwarmLearnServicer
from swarmlearn.store import EventStore
from swarmlearn_client.v1 import service_pb2, service_pb2_grpc

log = logging.getLogger(__name__)

SERVICE_NAME = service_pb2.DESCRIPTOR.services_by_name["SwarmLearn"].full_name


class DataDirLocked(RuntimeError):
    """Another daemon already uses this data directory."""


def _lock_data_dir(data_dir: Path) -> IO[str]:
    data_dir.mkdir(parents=True, exist_ok=True)
    handle = open(data_dir / "daemon.lock", "w")  # noqa: SIM115 - held for the daemon's life
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise DataDirLocked(f"{data_dir} is in use by another swarmlearn daemon") from None
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
        self._server: grpc.aio.Server | None = None
        self._health = health_aio.HealthServicer()
        self._closing = asyncio.Event()
        self._stopped = asyncio.Event()
        self.failure: str | None = None
        self.failed = asyncio.Event()

    @property
    def store(self) -> EventStore:
        assert self._store is not None, "daemon not started"
        return self._store

    async def start(self) -> str:
        """Open the store, bind, serve; returns the bound address (the real port if 0 was asked)."""
        settings = self.settings
        self._lock = _lock_data_dir(settings.data_dir)
        loop = asyncio.get_running_loop()
        self._store = EventStore(
            settings.db_path,
            synchronous=settings.sqlite_synchronous,
            group_commit_max_events=settings.group_commit_max_events,
            on_writer_exit=lambda reason: loop.call_soon_threadsafe(self._fail, reason),
        )
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", settings.max_message_bytes),
                ("grpc.max_send_message_length", settings.max_message_bytes),
                ("grpc.so_reuseport", 0),
            ]
        )
        servicer = SwarmLearnServicer(settings, self._store, Ingestor(self._store), self._closing)
        service_pb2_grpc.add_SwarmLearnServicer_to_server(servicer, server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
            server,
        )
        self.address = _bind(server, settings.listen)
        await server.start()
        if settings.listen.startswith("unix:"):
            os.chmod(settings.listen[len("unix:") :], 0o600)
        await self._health.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
        self._server = server
        log.info(
            "serving on %s, data in %s (%d events stored)",
            self.address,
            settings.data_dir,
            self._store.durable_sequence,
        )
        return self.address

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
        await self._server.stop(self.settings.grace_period_s)
        if self._store is not None:
            await asyncio.to_thread(self._store.close)
        if self._lock is not None:
            self._lock.close()
        self._stopped.set()
        log.info("stopped")

    async def wait_stopped(self) -> None:
        await self._stopped.wait()


def _bind(server: grpc.aio.Server, listen: str) -> str:
    port = server.add_insecure_port(listen)
    if listen.startswith("unix:"):
        return listen
    if port == 0:
        raise OSError(f"cannot listen on {listen}")
    host = listen.rsplit(":", 1)[0]
    return f"{host}:{port}"


async def serve(settings: Settings) -> int:
    """Run until SIGTERM or SIGINT (exit code 0) or a fatal failure (1), stopping gracefully."""
    daemon = DaemonServer(settings)
    await daemon.start()
    loop = asyncio.get_running_loop()
    stop_requested = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop_requested.set)
    waits = [asyncio.create_task(stop_requested.wait()), asyncio.create_task(daemon.failed.wait())]
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for task in waits:
        task.cancel()
    await daemon.stop()
    if daemon.failure is not None:
        log.critical("stopped after a fatal failure: %s", daemon.failure)
        return 1
    return 0
