"""What was acknowledged survives: graceful restarts, SIGTERM mid-stream, SIGKILL mid-stream, a failing disk."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from swarmlearn.server import SERVICE_NAME, DaemonServer
from swarmlearn.store import EventStore
from swarmlearn_client import AsyncClient, Client
from swarmlearn_client.v1 import events_pb2, service_pb2_grpc
from tests.daemon.conftest import DaemonProcess
from tests.daemon.pbevents import events
from tests.daemon.rpc import ingest


def stored_ids(process: DaemonProcess) -> list[tuple[str, str]]:
    store = EventStore(process.data_dir / "events.sqlite3")
    try:
        return [(e.agent_id, e.event_id) for _, e in store.iter_events()]
    finally:
        store.close()


async def stream_until(
    target: str, on_acks: int, action: threading.Event | None = None
) -> tuple[list[str], grpc.StatusCode | None]:
    """Stream batches of 100 events (batch i holds ids b{i}-*) until the stream breaks.

    After ``on_acks`` acks, sets ``action`` (the test kills or stops the daemon then). Returns the
    acknowledged batch ids and the status code the stream ended with.
    """
    acked: list[str] = []
    async with grpc.aio.insecure_channel(target) as channel:
        stub = service_pb2_grpc.SwarmLearnStub(channel)

        async def batches() -> AsyncIterator[events_pb2.EventBatch]:
            for i in range(100_000):
                yield events_pb2.EventBatch(batch_id=f"b{i}", events=events(100, agent="a", prefix=f"b{i}"))
                await asyncio.sleep(0.001)

        try:
            async for ack in stub.Ingest(batches()):
                assert ack.accepted == 100
                acked.append(ack.batch_id)
                if len(acked) == on_acks and action is not None:
                    action.set()
        except grpc.aio.AioRpcError as exc:
            return acked, exc.code()
    return acked, None


def test_graceful_restart_keeps_every_acked_event(daemon_process: DaemonProcess) -> None:
    daemon_process.start()
    batch = events(2_000, agent="restart")
    with Client(daemon_process.target) as client:
        first = client.ingest(batch, batch_size=250)
    assert first.accepted == 2_000
    assert daemon_process.terminate() == 0
    daemon_process.start()
    # GetAgentStats waits for the online learners, which restart with the daemon: a slow machine
    # needs more than the client's default 10 s for that.
    with Client(daemon_process.target, timeout=60) as client:
        again = client.ingest(batch, batch_size=250)
        assert client.get_agent_stats("restart").event_count == 2_000
    assert (again.accepted, again.duplicates) == (0, 2_000)
    assert daemon_process.terminate() == 0
    assert len(stored_ids(daemon_process)) == 2_000


@pytest.mark.parametrize("signal_name", ["SIGKILL", "SIGTERM"])
async def test_every_acknowledged_batch_survives_the_daemon_dying_mid_stream(
    daemon_process: DaemonProcess, signal_name: str
) -> None:
    daemon_process.start()
    trigger = threading.Event()
    exit_code: list[int] = []

    def stop_when_triggered() -> None:
        trigger.wait(60)
        if signal_name == "SIGKILL":
            daemon_process.kill()
        else:
            exit_code.append(daemon_process.terminate())

    stopper = threading.Thread(target=stop_when_triggered)
    stopper.start()
    acked, status = await stream_until(daemon_process.target, on_acks=20, action=trigger)
    stopper.join()

    assert len(acked) >= 20
    # grpc.aio may report a stream ended while the client writes as INTERNAL "Internal error from
    # Core" instead of the server's status (grpc/grpc#36066); the client retries both.
    assert status in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL)
    if signal_name == "SIGTERM":
        assert exit_code == [0]
    stored = set(stored_ids(daemon_process))
    missing = [b for b in acked if not all(("a", f"{b}-{i}") in stored for i in range(100))]
    assert missing == []
    # The restarted daemon serves the same log.
    daemon_process.start()
    with Client(daemon_process.target, timeout=60) as client:  # the learners rebuild from the log first
        assert client.get_agent_stats("a").event_count == len(stored)


def test_client_resends_unacknowledged_events_after_a_crash_and_nothing_is_stored_twice(
    daemon_process: DaemonProcess,
) -> None:
    daemon_process.start()
    total = 30_000
    acked = 0
    crashed = threading.Event()

    def on_ack(ack: object) -> None:
        nonlocal acked
        acked += 1
        if acked == 5 and not crashed.is_set():
            crashed.set()

    def crash_and_restart() -> None:
        crashed.wait(60)
        daemon_process.kill()
        daemon_process.start()

    restarter = threading.Thread(target=crash_and_restart)
    restarter.start()
    with Client(daemon_process.target) as client:
        summary = client.ingest(events(total, agent="resend"), batch_size=500, reconnect_timeout=60, on_ack=on_ack)
    restarter.join()

    assert summary.reconnects >= 1
    assert summary.accepted + summary.duplicates == total
    assert summary.rejected == 0
    assert daemon_process.terminate() == 0
    ids = stored_ids(daemon_process)
    assert len(ids) == total
    assert len(set(ids)) == total


def writer_pid(daemon_pid: int) -> int:
    from pathlib import Path

    for task in Path(f"/proc/{daemon_pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            if "swarmlearn.store._writer" in Path(f"/proc/{child}/cmdline").read_text():
                return int(child)
    raise LookupError("no writer process")


def test_a_dead_writer_process_stops_the_daemon_with_a_failure_code(daemon_process: DaemonProcess) -> None:
    import os
    import signal

    daemon_process.start()
    assert daemon_process.proc is not None
    with Client(daemon_process.target) as client:
        assert client.ingest(events(100)).accepted == 100
    os.kill(writer_pid(daemon_process.proc.pid), signal.SIGKILL)
    assert daemon_process.proc.wait(30) == 1
    assert daemon_process.proc.stderr is not None
    assert "event log writer exited" in daemon_process.proc.stderr.read().decode()
    # Nothing acknowledged was lost, and the next daemon starts on the same data.
    assert len(stored_ids(daemon_process)) == 100


def writer_of(db_path: Path) -> int:
    """The pid of the event log's writer process for ``db_path`` (from /proc: no psutil)."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            arguments = cmdline.read_bytes().split(b"\0")
            if b"swarmlearn.store._writer" in b" ".join(arguments) and str(db_path).encode() in arguments:
                return int(cmdline.parent.name)
    raise LookupError(f"no writer process for {db_path}")


async def health_of(channel: grpc.aio.Channel, service: str) -> str:
    reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service))
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


async def test_a_failing_disk_is_unavailable_and_not_serving_until_writes_work_again(server: DaemonServer) -> None:
    # A real write failure: the writer process may not grow a file past 4 KiB (the write-ahead log
    # is larger already, and one page is 4 KiB), so SQLite's writes fail as on a full disk.
    writer = writer_of(server.settings.db_path)
    async with grpc.aio.insecure_channel(server.address) as channel, AsyncClient(server.address) as client:
        stub = service_pb2_grpc.SwarmLearnStub(channel)
        assert (await client.ingest(events(100, agent="before"))).accepted == 100
        limits = resource.prlimit(writer, resource.RLIMIT_FSIZE)
        resource.prlimit(writer, resource.RLIMIT_FSIZE, (4096, limits[1]))
        try:
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                await ingest(stub, events(100, agent="during"))
            assert failed.value.code() == grpc.StatusCode.UNAVAILABLE, failed.value.details()
            assert "event log" in (failed.value.details() or "") and "retry in" in (failed.value.details() or "")
            assert ("retry-after-ms", "1000") in tuple(failed.value.trailing_metadata() or ())
            for service in ("", SERVICE_NAME):
                assert await health_of(channel, service) == "NOT_SERVING"
            # The client keeps resending what was not acknowledged until the disk takes it.
            sending = asyncio.create_task(client.ingest(events(300, agent="during"), batch_size=50))
            await asyncio.sleep(1.5)
            assert not sending.done()
            assert await health_of(channel, "") == "NOT_SERVING"  # the probes fail too
        finally:
            resource.prlimit(writer, resource.RLIMIT_FSIZE, limits)
        summary = await asyncio.wait_for(sending, timeout=30)
        assert summary.accepted + summary.duplicates == 300 and summary.reconnects >= 1
        for _ in range(50):  # the probe that follows the commits sees it within a second
            if [await health_of(channel, service) for service in ("", SERVICE_NAME)] == ["SERVING"] * 2:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("health did not return to SERVING")
    assert server.store.count() == 400
