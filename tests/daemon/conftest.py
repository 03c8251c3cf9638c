"""Fixtures that start real daemons: in this test's event loop, on a thread, or as a process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from swarmlearn.config import Settings
from swarmlearn.server import DaemonServer
from swarmlearn_client.v1 import service_pb2_grpc


@pytest_asyncio.fixture
async def server(tmp_path: Path) -> AsyncIterator[DaemonServer]:
    """A daemon on 127.0.0.1, port 0, in the test's event loop."""
    daemon = DaemonServer(
        Settings(listen="127.0.0.1:0", metrics_listen="", data_dir=tmp_path / "data", grace_period_s=2.0)
    )
    await daemon.start()
    yield daemon
    await daemon.stop()


@pytest_asyncio.fixture
async def stub(server: DaemonServer) -> AsyncIterator[service_pb2_grpc.SwarmLearnStub]:
    async with grpc.aio.insecure_channel(server.address) as channel:
        yield service_pb2_grpc.SwarmLearnStub(channel)


class DaemonProcess:
    """``swarmlearn serve`` in a child process, on a unix socket, restartable on the same data."""

    def __init__(self, data_dir: Path, socket_path: Path) -> None:
        self.data_dir = data_dir
        self.target = f"unix:{socket_path}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        self.close()
        env = dict(
            os.environ, SWARMLEARN_LOG_LEVEL="WARNING", SWARMLEARN_GRACE_PERIOD_S="3", SWARMLEARN_METRICS_LISTEN=""
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "swarmlearn", "serve", "--listen", self.target, "--data-dir", str(self.data_dir)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited: {self.proc.stderr.read().decode() if self.proc.stderr else ''}")
            if health(self.target) == "SERVING":
                return
            time.sleep(0.05)
        raise TimeoutError("daemon did not become SERVING")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)

    def close(self) -> None:
        """Close the last process's stderr pipe, kept open after it exits so that a test can read it."""
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()


def health(target: str) -> str:
    try:
        with grpc.insecure_channel(target) as channel:
            response = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1.0)
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))
    except grpc.RpcError:
        return "UNREACHABLE"


@pytest.fixture
def daemon_process(tmp_path: Path) -> Iterator[DaemonProcess]:
    # Unix socket paths are limited to ~100 bytes; pytest's tmp_path can be longer.
    sock_dir = Path(f"/tmp/swl-{os.getpid()}-{time.monotonic_ns()}")
    sock_dir.mkdir()
    process = DaemonProcess(tmp_path / "data", sock_dir / "d.sock")
    yield process
    if process.proc is not None and process.proc.poll() is None:
        process.kill()
    process.close()
    for child in sock_dir.iterdir():
        child.unlink()
    sock_dir.rmdir()
