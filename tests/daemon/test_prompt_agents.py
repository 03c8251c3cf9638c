"""The prompt learner's agents beyond its memory, and its incremental snapshots (``online._promptstore``
over ``online._agents`` and ``online._agentstore``). Exactness across restarts at any point, with two agents
in memory, is in ``test_learner_contract`` (``prompts-evicting``); here: 20 agents through room for 3, what is
resident, what is written, what an old snapshot becomes."""

from __future__ import annotations

import gc
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from swarmlearn import layout
from swarmlearn.config import Settings, SettingsError
from swarmlearn.events import Event
from swarmlearn.online import WorkerSettings, _snapshot
from swarmlearn.online._agents import AgentTable
from swarmlearn.online._agentstore import AgentStore
from swarmlearn.online._promptstore import bounded_prompt_learner, load_prompts, save_prompts
from swarmlearn.prompts import AgentPrompts, Candidate, PromptLearner, ScoreResult, Weights
from swarmlearn.synthetic import generate_swarm

FINGERPRINT = _snapshot.fingerprint(WorkerSettings(role="prompts").identity())
AGENTS = 20
RESIDENT = 3
CANDIDATES = (
    Candidate("verify the result step-by-step with examples", variant="terse"),
    Candidate("please summarise the data asap", variant="detailed"),
    Candidate("plan the task, then verify the code", prompt_tokens=40),
)


def swarm() -> list[Event]:
    """20 agents x 40 events, prompt events with a variant on every other step (the bandits learn too)."""
    rng = random.Random(3)
    events = []
    for event in generate_swarm(agents=AGENTS, events_per_agent=40, seed=6):
        if event.prompt_text is not None and rng.random() < 0.5:
            event = event._replace(attributes={**event.attributes, "prompt_variant": rng.choice(("terse", "detailed"))})
        events.append(event)
    return events


def anchors(events: list[Event]) -> Callable[[int], _snapshot.Anchor | None]:
    def anchor_at(seq: int) -> _snapshot.Anchor | None:
        if not 0 < seq <= len(events):
            return None
        event = events[seq - 1]
        return _snapshot.Anchor(seq, event.agent_id, event.event_id)

    return anchor_at


def learn(learner: PromptLearner, events: list[Event], start: int = 1) -> PromptLearner:
    for seq, event in enumerate(events, start=start):
        learner.learn(event, seq)
    return learner


def answers(learner: PromptLearner, agents: list[str]) -> list[ScoreResult]:
    """Each agent's ranking, with and without a selection (which draws random numbers), in a fixed order."""
    out = []
    for agent in agents:
        out.append(learner.score(agent, CANDIDATES, Weights(), select=True))
        out.append(learner.score(agent, CANDIDATES, Weights(latency=0.0, cost=0.0), select=False))
    return out


def table(learner: PromptLearner) -> AgentTable[AgentPrompts]:
    agents = learner.agents
    assert isinstance(agents, AgentTable)
    return agents


def agent_ids(events: list[Event]) -> list[str]:
    return sorted({e.agent_id for e in events})


def test_a_bounded_learner_learns_and_answers_as_an_unbounded_one() -> None:
    events = swarm()
    ids = [*agent_ids(events), "nobody"]
    everyone = learn(PromptLearner(), events)
    tight = learn(bounded_prompt_learner(resident=RESIDENT), events)
    assert len(tight.agents) == len(everyone.agents) == AGENTS
    assert sum(1 for agent in everyone.state.agents.values() if agent.prompt_events) > RESIDENT  # type: ignore[attr-defined]
    assert len(table(tight).resident) == RESIDENT
    assert set(table(tight).pending) | set(table(tight).resident) == set(agent_ids(events))  # evicted: pickled
    for _ in range(2):  # the second round reads every agent back after its selection changed its bandit
        assert answers(tight, ids) == answers(everyone, ids)
    assert "nobody" not in tight.agents  # asking does not make an agent known
    # and they go on learning alike: the state the answers came from, evicted and read back, is the same
    more = [e._replace(event_id=f"more-{e.event_id}", timestamp=e.timestamp + 1e5) for e in events[::3]]
    learn(everyone, more, start=len(events) + 1)
    learn(tight, more, start=len(events) + 1)
    assert answers(tight, ids) == answers(everyone, ids)


def test_memory_holds_at_most_the_resident_agents() -> None:
    events = swarm()
    learner = bounded_prompt_learner(resident=RESIDENT)
    gc.collect()
    held = []
    for seq, event in enumerate(events, start=1):
        learner.learn(event, seq)
        if seq % 97 == 0:
            held.append(len(table(learner).resident))
            gc.collect()
            alive = sum(1 for obj in gc.get_objects() if type(obj) is AgentPrompts)
            assert alive <= RESIDENT, f"{alive} AgentPrompts in memory after {seq} events"
    assert max(held) == RESIDENT and len(learner.agents) == AGENTS


def test_a_snapshot_restart_and_replay_answer_as_if_it_never_stopped(tmp_path: Path) -> None:
    events = swarm()
    ids = agent_ids(events)
    middle = len(events) // 2 + 5
    store = AgentStore(tmp_path / layout.PROMPTS_STORE)
    running = bounded_prompt_learner(resident=RESIDENT)
    table(running).attach(store, [])
    learn(running, events[:middle])
    save_prompts(running, store, anchor=anchors(events)(middle), fingerprint=FINGERPRINT)  # type: ignore[arg-type]
    learn(running, events[middle:], start=middle + 1)  # evicts changed agents after the snapshot: a crash now
    reopened = AgentStore(tmp_path / layout.PROMPTS_STORE)
    restarted = load_prompts(reopened, resident=RESIDENT, fingerprint=FINGERPRINT, anchor_at=anchors(events))
    assert restarted.applied_seq == middle
    assert len(restarted.agents) == len(learn(PromptLearner(), events[:middle]).agents)
    assert table(restarted).resident == {}  # a warm restart reads no agent until asked
    learn(restarted, events, start=1)  # the log from the start: what the snapshot had is skipped
    assert answers(restarted, ids) == answers(running, ids) == answers(learn(PromptLearner(), events), ids)
    store.close()


def test_a_snapshot_writes_only_the_agents_that_changed(tmp_path: Path) -> None:
    events = swarm()
    store = AgentStore(tmp_path / layout.PROMPTS_STORE)
    learner = bounded_prompt_learner(resident=RESIDENT)
    table(learner).attach(store, [])
    learn(learner, events)
    end = len(events)
    save_prompts(learner, store, anchor=anchors(events)(end), fingerprint=FINGERPRINT)  # type: ignore[arg-type]
    assert store.db.execute("SELECT count(*) FROM agents").fetchone() == (AGENTS,)
    touched = set(agent_ids(events)[:2])
    late = [
        e._replace(event_id=f"late-{i}", timestamp=e.timestamp + 1e5)
        for i, e in enumerate(events)
        if e.agent_id in touched and e.prompt_text is not None
    ][:30]
    log = events + late
    learn(learner, late, start=end + 1)
    learner.score(agent_ids(events)[5], CANDIDATES, Weights(), select=False)  # reads an agent, changes nothing
    assert set(table(learner).changes()) == touched
    before = store.db.total_changes
    save_prompts(learner, store, anchor=anchors(log)(len(log)), fingerprint=FINGERPRINT)  # type: ignore[arg-type]
    meta_rows = store.db.execute("SELECT count(*) FROM meta").fetchone()[0]
    assert store.db.total_changes - before == len(touched) + meta_rows
    store.close()


def test_prompt_resident_agents_is_validated() -> None:
    with pytest.raises(SettingsError, match="prompt_resident_agents"):
        Settings(prompt_resident_agents=0)
    assert WorkerSettings().prompt_resident_agents == Settings().prompt_resident_agents
