"""ScorePrompts in a real daemon: learned from ingested prompt events, validated, variant selection."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
import pytest_asyncio

from swarmlearn.config import Settings
from swarmlearn.importer import event_to_proto
from swarmlearn.server import DaemonServer
from swarmlearn.synthetic import generate_swarm
from swarmlearn_client.v1 import events_pb2, prompts_pb2, service_pb2_grpc
from tests.daemon.pbevents import BASE_TS, event
from tests.daemon.rpc import caught_up, ingest

Stub = service_pb2_grpc.SwarmLearnStub
GOOD = "please verify the result step-by-step with examples and constraints"
BAD = "whatever asap maybe etc the task"


def variant_events(n: int) -> list[events_pb2.StreamEvent]:
    """An agent trying two prompt variants; "b" gets better answers."""
    rng = random.Random(4)
    out = []
    for i in range(n):
        variant = "a" if i % 2 else "b"
        pb = event("chooser", f"v-{i}", latency=500.0 + rng.gauss(0, 20))
        pb.timestamp.seconds = BASE_TS + 60 * i
        pb.attributes["prompt_variant"] = variant
        pb.prompt_data.prompt_text = f"{'verify step-by-step' if variant == 'b' else 'asap whatever'} task {i % 7}"
        pb.prompt_data.prompt_tokens = 6
        pb.prompt_data.response_tokens = 60
        pb.prompt_data.quality_score = (0.85 if variant == "b" else 0.45) + rng.gauss(0, 0.03)
        out.append(pb)
    return out


@pytest_asyncio.fixture
async def learned(tmp_path: Path) -> AsyncIterator[tuple[DaemonServer, Stub]]:
    server = DaemonServer(Settings(listen="127.0.0.1:0", metrics_listen="", data_dir=tmp_path / "data"))
    await server.start()
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = Stub(channel)
        swarm = [event_to_proto(e) for e in generate_swarm(agents=4, events_per_agent=1500, seed=2)]
        await ingest(stub, swarm + variant_events(400))
        await caught_up(server)
        yield server, stub
    await server.stop()


async def test_scores_rank_prompts_by_what_was_learned(learned: tuple[DaemonServer, Stub]) -> None:
    server, stub = learned
    request = prompts_pb2.ScorePromptsRequest(
        agent_id="coder", candidates=[prompts_pb2.PromptCandidate(text=t) for t in (BAD, GOOD)]
    )
    response = await stub.ScorePrompts(request)
    assert [r.index for r in response.ranked] == [1, 0]  # the good words first
    best, worst = response.ranked
    assert best.predicted_quality > worst.predicted_quality + 0.1
    assert best.score > worst.score
    assert 0 < best.uncertainty < 1 and 0 <= best.predicted_success <= 1 and best.predicted_latency_ms > 0
    # How far the answering learner had read the log, and the log's end when asked: caught up here.
    assert response.as_of_sequence == response.durable_sequence == server.store.durable_sequence > 0
    # An agent the daemon never saw borrows the swarm's models, and says so.
    stranger = await stub.ScorePrompts(
        prompts_pb2.ScorePromptsRequest(agent_id="stranger", candidates=request.candidates)
    )
    assert stranger.used_global_model
    assert [r.index for r in stranger.ranked] == [1, 0]


async def test_select_converges_on_the_better_variant_and_still_explores(learned: tuple[DaemonServer, Stub]) -> None:
    _, stub = learned
    request = prompts_pb2.ScorePromptsRequest(
        agent_id="chooser",
        candidates=[prompts_pb2.PromptCandidate(text="x", variant=v) for v in ("a", "b")],
        select=True,
    )
    chosen = Counter([(await stub.ScorePrompts(request)).selected_variant for _ in range(300)])
    assert set(chosen) <= {"a", "b"}
    assert chosen["b"] > 0.75 * 300, chosen
    assert chosen["a"] >= 1, chosen  # not starved


async def test_bad_requests_are_refused_naming_the_field(learned: tuple[DaemonServer, Stub]) -> None:
    _, stub = learned
    one = [prompts_pb2.PromptCandidate(text=GOOD)]
    cases = [
        (prompts_pb2.ScorePromptsRequest(agent_id="", candidates=one), "agent_id"),
        (prompts_pb2.ScorePromptsRequest(agent_id="coder"), "candidates"),
        (
            prompts_pb2.ScorePromptsRequest(agent_id="coder", candidates=one * 101),
            "candidates",
        ),
        (
            prompts_pb2.ScorePromptsRequest(
                agent_id="coder", candidates=[prompts_pb2.PromptCandidate(text="x" * 65_537)]
            ),
            "candidates[0].text",
        ),
        (
            prompts_pb2.ScorePromptsRequest(
                agent_id="coder", candidates=one, weights=prompts_pb2.ObjectiveWeights(latency=-1.0)
            ),
            "weights.latency",
        ),
    ]
    for request, field in cases:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.ScorePrompts(request)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, field
        assert (refused.value.details() or "").startswith(field + ":"), refused.value.details()
    # The daemon keeps answering.
    assert (await stub.ScorePrompts(prompts_pb2.ScorePromptsRequest(agent_id="coder", candidates=one))).ranked


async def test_selections_after_the_last_event_survive_a_restart(tmp_path: Path) -> None:
    """A selection draws from the agent's bandit, which no replay of the log redoes: the stop's snapshot
    keeps those draws even when no event came after the last snapshot, so a restarted daemon draws on
    as one never restarted does (it repeated the draws made before the stop)."""
    request = prompts_pb2.ScorePromptsRequest(
        agent_id="chooser",
        candidates=[prompts_pb2.PromptCandidate(text="x", variant=v) for v in ("a", "b")],
        select=True,
    )

    async def serve(data: Path, *, events: list[events_pb2.StreamEvent] | None = None, draws: int = 0) -> str:
        server = DaemonServer(Settings(listen="127.0.0.1:0", metrics_listen="", data_dir=data))
        await server.start()
        try:
            async with grpc.aio.insecure_channel(server.address) as channel:
                stub = Stub(channel)
                if events:
                    await ingest(stub, events)
                await caught_up(server)
                return "".join([(await stub.ScorePrompts(request)).selected_variant for _ in range(draws)])
        finally:
            await server.stop()

    events = variant_events(400)
    never_restarted = await serve(tmp_path / "reference", events=events, draws=200)
    await serve(tmp_path / "restarted", events=events)  # stopped with a snapshot of every event
    before = await serve(tmp_path / "restarted", draws=100)
    after = await serve(tmp_path / "restarted", draws=100)
    assert before + after == never_restarted
    assert after != before
