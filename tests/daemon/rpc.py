"""Talking to a test daemon: ingest a list of events, wait for the online learners."""

from __future__ import annotations

import asyncio
import time

from swarmlearn.server import DaemonServer
from swarmlearn_client.v1 import events_pb2, service_pb2_grpc


async def ingest(
    stub: service_pb2_grpc.SwarmLearnStub, pbs: list[events_pb2.StreamEvent], batch: int = 500
) -> list[events_pb2.IngestAck]:
    """Send ``pbs`` in batches over one stream; every event must be acknowledged."""
    requests = [events_pb2.EventBatch(batch_id=str(i), events=pbs[i : i + batch]) for i in range(0, len(pbs), batch)]
    acks = [ack async for ack in stub.Ingest(iter(requests))]
    assert sum(a.accepted + a.duplicates for a in acks) == len(pbs)
    return acks


async def caught_up(server: DaemonServer) -> None:
    """Until every online learner process has applied the whole log (at most 60 s)."""
    deadline = time.monotonic() + 60.0
    while not (server.online.ready and server.online.applied_seq >= server.store.durable_sequence):
        assert time.monotonic() < deadline, "the online learners did not catch up"
        await asyncio.sleep(0.02)
