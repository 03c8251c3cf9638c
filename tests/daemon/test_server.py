"""Contract and lifecycle: generated code is fresh, health and reflection, graceful stop, unix sockets."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from swarmlearn.config import Settings
from swarmlearn.server import Daemon, DaemonServer, DataDirLocked
from swarmlearn_client import Client
from swarmlearn_client.v1 import events_pb2, service_pb2_grpc
from tests.daemon.pbevents import events

ROOT = Path(__file__).resolve().parents[2]


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_protos.py"), "--out", str(tmp_path / "v1")],
        check=True,
        capture_output=True,
    )
    committed = ROOT / "client" / "swarmlearn_client" / "v1"
    fresh = {p.name: p.read_text() for p in (tmp_path / "v1").iterdir()}
    current = {p.name: p.read_text() for p in committed.iterdir() if p.is_file()}
    assert sorted(fresh) == sorted(current), "run `make protos`"
    stale = [name for name in fresh if fresh[name] != current[name]]
    assert stale == [], f"stale generated files {stale}: run `make protos`"


def test_client_distribution_depends_on_grpcio_and_protobuf_only() -> None:
    requires = importlib.metadata.requires("swarmlearn-client") or []
    assert sorted(r.split(">")[0].split("=")[0].split("<")[0].strip() for r in requires) == ["grpcio", "protobuf"]
    probe = (
        "import sys, swarmlearn_client; "
        "print(sorted(m for m in ('torch', 'river', 'ax', 'swarmlearn') if m in sys.modules))"
    )
    imported = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert imported.strip() == "[]"


async def test_health_and_reflection(server: DaemonServer) -> None:
    async with grpc.aio.insecure_channel(server.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "swarmlearn.v1.SwarmLearn"):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
        responses = reflect.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        names = {s.name async for r in responses for s in r.list_services_response.service}
    assert {"swarmlearn.v1.SwarmLearn", "grpc.health.v1.Health"} <= names


async def test_malformed_requests_are_invalid_argument_without_a_traceback(
    server: DaemonServer, caplog: pytest.LogCaptureFixture
) -> None:
    async def refused(call: object) -> grpc.aio.AioRpcError:
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await call  # type: ignore[misc]
        return failed.value

    corrupt, bad_utf8 = b"\x0a\x05ab", b"\x0a\x02\xff\xfe"  # a field cut short; a string that is not UTF-8
    async with grpc.aio.insecure_channel(server.address) as channel:
        # Unary requests are parsed before any handler runs: ours, and grpc's own health service.
        for method in ("/swarmlearn.v1.SwarmLearn/GetAgentStats", "/grpc.health.v1.Health/Check"):
            for raw in (corrupt, bad_utf8):
                error = await refused(channel.unary_unary(method)(raw))
                assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (method, error)
                assert "could not be parsed" in (error.details() or "")
        watch = channel.unary_stream("/swarmlearn.v1.SwarmLearn/WatchJob")(bad_utf8)
        with pytest.raises(grpc.aio.AioRpcError) as watched:
            _ = [job async for job in watch]
        assert watched.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        # In a stream, the batches before the malformed one are stored and acknowledged.
        ingest = channel.stream_stream(
            "/swarmlearn.v1.SwarmLearn/Ingest", response_deserializer=events_pb2.IngestAck.FromString
        )
        good = events_pb2.EventBatch(batch_id="good", events=events(3)).SerializeToString()
        acks: list[events_pb2.IngestAck] = []
        with pytest.raises(grpc.aio.AioRpcError) as streamed:
            async for ack in ingest(iter([good, corrupt])):
                acks.append(ack)
        assert streamed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "could not be parsed" in (streamed.value.details() or "")
        assert [(a.batch_id, a.accepted) for a in acks] == [("good", 3)]
        # The daemon goes on serving.
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert health.status == health_pb2.HealthCheckResponse.SERVING
    assert server.store.count() == 3
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_graceful_stop_acks_what_it_took_then_ends_streams_with_unavailable(tmp_path: Path) -> None:
    daemon = DaemonServer(Settings(listen="127.0.0.1:0", metrics_listen="", data_dir=tmp_path, grace_period_s=5.0))
    address = await daemon.start()
    channel = grpc.aio.insecure_channel(address)
    stub = service_pb2_grpc.SwarmLearnStub(channel)
    health = health_pb2_grpc.HealthStub(channel)
    call = stub.Ingest()
    for i in range(5):
        await call.write(events_pb2.EventBatch(batch_id=str(i), events=events(200, prefix=f"b{i}")))
    acks = [await call.read() for _ in range(5)]
    assert [a.accepted for a in acks] == [200] * 5

    statuses: list[int] = []

    async def watch_health() -> None:
        async for reply in health.Watch(health_pb2.HealthCheckRequest(service="swarmlearn.v1.SwarmLearn")):
            statuses.append(reply.status)

    watcher = asyncio.create_task(watch_health())
    await asyncio.sleep(0.1)
    stopping = asyncio.create_task(daemon.stop())
    with pytest.raises(grpc.aio.AioRpcError) as ended:
        await call.read()
    assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
    for _ in range(100):
        if health_pb2.HealthCheckResponse.NOT_SERVING in statuses:
            break
        await asyncio.sleep(0.02)
    watcher.cancel()  # a watch is an open RPC: the server would wait the grace period for it
    await stopping
    assert statuses[0] == health_pb2.HealthCheckResponse.SERVING
    assert health_pb2.HealthCheckResponse.NOT_SERVING in statuses
    await channel.close()
    # Stopped means closed: the store commits nothing more, and the data directory is free again.
    restarted = DaemonServer(Settings(listen="127.0.0.1:0", metrics_listen="", data_dir=tmp_path))
    await restarted.start()
    assert restarted.store.count() == 1000
    await restarted.stop()


def test_embedded_daemon_on_a_unix_socket_is_private(tmp_path: Path) -> None:
    sock = Path(f"/tmp/swl-embed-{os.getpid()}.sock")
    try:
        with Daemon(Settings(listen=f"unix:{sock}", metrics_listen="", data_dir=tmp_path)) as daemon:
            assert daemon.address == f"unix:{sock}"
            assert stat.S_IMODE(sock.stat().st_mode) == 0o600
            with Client(daemon.address) as client:
                summary = client.ingest(events(10))
                assert summary.accepted == 10
                assert client.health() == "SERVING"
    finally:
        sock.unlink(missing_ok=True)


def test_a_data_directory_serves_one_daemon(tmp_path: Path) -> None:
    with Daemon(Settings(listen="127.0.0.1:0", metrics_listen="", data_dir=tmp_path)):
        second = Daemon(Settings(listen="127.0.0.1:0", metrics_listen="", data_dir=tmp_path))
        with pytest.raises(DataDirLocked):
            second.start()


def test_systemd_hears_ready_and_stopping(tmp_path: Path) -> None:
    import signal
    import socket

    path = Path(f"/tmp/swl-notify-{os.getpid()}.sock")
    env = dict(os.environ, NOTIFY_SOCKET=str(path), SWARMLEARN_METRICS_LISTEN="", SWARMLEARN_LOG_LEVEL="WARNING")
    command = [sys.executable, "-m", "swarmlearn", "serve", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path)]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(path))
        listener.settimeout(30)
        try:
            daemon = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
            ready = listener.recv(256).decode()
            assert ready.startswith("READY=1\nSTATUS=serving on 127.0.0.1:")
            daemon.send_signal(signal.SIGTERM)
            assert listener.recv(256) == b"STOPPING=1"
            assert daemon.wait(30) == 0
        finally:
            path.unlink(missing_ok=True)


def test_an_exposed_address_without_protection_exits_2(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "swarmlearn", "serve", "--listen", "0.0.0.0:0", "--data-dir", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "refusing to listen on 0.0.0.0:0" in result.stderr


def test_a_failed_start_releases_what_it_took(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        blocked = Daemon(Settings(listen="127.0.0.1:0", metrics_listen=f"127.0.0.1:{port}", data_dir=tmp_path))
        with pytest.raises(OSError):
            blocked.start()
    # The lock, the writer process and the store were released: the same directory starts again.
    with (
        Daemon(Settings(listen="127.0.0.1:0", metrics_listen="", data_dir=tmp_path)) as daemon,
        Client(daemon.address) as client,
    ):
        assert client.ingest(events(3)).accepted == 3


@pytest.mark.parametrize("setting", ["listen", "metrics_listen"])
def test_an_address_in_use_names_the_address_and_its_setting(tmp_path: Path, setting: str) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        addresses = {"listen": "127.0.0.1:0", "metrics_listen": "", setting: address}
        blocked = Daemon(Settings(data_dir=tmp_path, **addresses))  # type: ignore[arg-type]
        before = child_processes()
        with pytest.raises(OSError) as failed:
            blocked.start()
    assert str(failed.value).startswith(f"setting {setting}: cannot bind {address}: ")
    assert "in use" in str(failed.value)
    # Nothing it started outlives it: learner processes spawned while it started were left running.
    assert child_processes() - before == set()


def child_processes() -> set[int]:
    """This process's children that run swarmlearn (from /proc: no psutil)."""
    me, found = os.getpid(), set()
    for entry in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            parent = int(entry.read_text().rsplit(")", 1)[1].split()[1])
            if parent == me and b"swarmlearn" in (entry.parent / "cmdline").read_bytes():
                found.add(int(entry.parent.name))
    return found
